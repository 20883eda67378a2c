//! The process's allocator: jemalloc, for Rust's allocations and DuckDB's C++ alike, with one
//! arena, freed pages given back within a second, and huge pages only while an external sort runs.
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
//! - `thp:always`: jemalloc marks the memory it maps for transparent huge pages (2 MiB pages,
//!   `MADV_HUGEPAGE`), and the process keeps them off ([`small_pages`], from `main`) except while
//!   an external sort runs ([`HugePages`]). A sort's first phase copies every row out of a buffer
//!   of hundreds of MiB, from random places; with huge pages for the whole process (`MALLOC_CONF`
//!   with `thp:always`, before this guard) the SF10 sort took 0.887× the wall time (farm-bench,
//!   3 pairs; system time 12.8 → 8.9 s, user 103 → 99 s) at 7 MiB more peak.
//!   Elsewhere they only cost memory: the PostgreSQL load of lineitem SF1 peaked 4.5 MiB higher
//!   (median of 6 pairs) and the DuckDB load took the same time (0.991×, 8 pairs).
//!
//! A machine with many cores may do better with more arenas: `MALLOC_CONF=narenas:<cores>`.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// jemalloc's settings for dfpipe, as its `malloc_conf` (see the module docs).
pub const CONFIG: &CStr = c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0,thp:always";

/// Whether [`small_pages`] was called: [`HugePages`] changes nothing otherwise (a library user
/// keeps the system's setting).
static MANAGED: AtomicBool = AtomicBool::new(false);

/// How many [`HugePages`] are held.
static HOLDERS: Mutex<usize> = Mutex::new(0);

/// Turns transparent huge pages off for the process until a [`HugePages`] is held (a no-op
/// outside Linux). `main` calls it first thing.
pub fn small_pages() {
    MANAGED.store(true, Ordering::SeqCst);
    set_huge_pages(false);
}

/// While one is held, memory the process touches for the first time may be given huge pages
/// (when [`small_pages`] has turned them off; see the module docs). Holders nest: the last one
/// dropped turns them off again.
#[must_use = "huge pages end when it is dropped"]
pub struct HugePages(());

impl HugePages {
    /// Huge pages until the returned value (and every other one held) is dropped.
    pub fn hold() -> HugePages {
        let mut holders = HOLDERS.lock().unwrap_or_else(PoisonError::into_inner);
        if *holders == 0 {
            set_huge_pages(true);
        }
        *holders += 1;
        HugePages(())
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let mut holders = HOLDERS.lock().unwrap_or_else(PoisonError::into_inner);
        *holders -= 1;
        if *holders == 0 {
            set_huge_pages(false);
        }
    }
}

/// Allows or forbids transparent huge pages for the whole process, when it manages them.
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
fn set_huge_pages(on: bool) {
    if !MANAGED.load(Ordering::SeqCst) {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `PR_SET_THP_DISABLE` takes a flag and zeros, no pointers. A kernel without it
    // refuses the call, and the process keeps the pages it had.
    unsafe {
        libc::prctl(
            libc::PR_SET_THP_DISABLE,
            libc::c_ulong::from(!on),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
}
