//! The process's allocator: jemalloc, for Rust's allocations and DuckDB's C++ alike, with one
//! arena and freed pages given back within a second.
//!
//! jemalloc replaces the C library's `malloc` for the whole process (`tikv-jemalloc-sys` with
//! `override_allocator_on_supported_platforms`; the binary also makes it Rust's global
//! allocator) and reads [`CONFIG`] before `main` (`MALLOC_CONF`, when set, overrides it).
//! Before it, glibc's malloc was tuned as far as it went (mmap threshold fixed, one arena per
//! core, heap trimmed before each spill of the external sort), and still spent much of the
//! system time mapping, zeroing and unmapping large blocks. Measured on this project's jobs
//! (benches/README.md, 2026-12-05): the lineitem SF1 load into a DuckDB file and the SF10 sort
//! under 512 MiB take less time, the sorts under a limit peak lower, and no trimming is needed.
//!
//! The settings, each measured on the SF10 sort under 512 MiB (one run each, peak RSS):
//! - `narenas:1`: one arena, so what one thread frees another reuses: 396 MiB, against 451 MiB
//!   with two arenas, 583 MiB with jemalloc's default (four per core) and 596 MiB with one per
//!   CPU (`percpu_arena`), which also took more system time. The DuckDB load, where four
//!   threads allocate at once, took the same time with one arena as with two (farm-bench, 12
//!   pairs: 0.996×).
//! - `dirty_decay_ms:1000,muzzy_decay_ms:0`: freed pages go back to the system about a second
//!   after they were freed, directly (no lazily freed pages still counted in RSS). Giving them
//!   back at once (`dirty_decay_ms:0`) held the sort to 399 MiB but took 2.65× its time.
//!
//! A machine with many cores may do better with more arenas: `MALLOC_CONF=narenas:<cores>`.

use std::ffi::CStr;

/// jemalloc's settings for dfpipe, as its `malloc_conf` (see the module docs).
pub const CONFIG: &CStr = c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0";
