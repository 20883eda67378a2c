//! The allocator gives freed memory back to the system.
//!
//! glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB);
//! from then on large buffers (Arrow arrays, Parquet pages, spill reads) come from the heap,
//! and once freed they stay in the process as fragments. Measured on the lineitem SF1 sort
//! under a 256 MiB limit (heaptrack): 129 MiB of live heap at the peak, 410 MiB resident.
//! With the threshold fixed at 128 KiB, large blocks keep mappings of their own and are
//! unmapped when freed: 279 MiB resident, as low as jemalloc with eager decay (274 MiB) and
//! lower than mimalloc (314–327 MiB), without a C dependency. See benches/README.md.
//!
//! A run that writes a DuckDB target raises the threshold to 512 KiB ([`reuse_duckdb_blocks`]):
//! DuckDB allocates its 256 KiB blocks with malloc, and below 256 KiB each block was a fresh
//! mapping, zeroed by the kernel on first touch and unmapped when freed. Loading lineitem SF1
//! into a DuckDB file took 11.8 s at 128 KiB and 7.6–8.9 s at 512 KiB (as with glibc's own
//! dynamic threshold). Other runs keep 128 KiB: the PostgreSQL load of lineitem SF1 held 60–63
//! MiB of anonymous memory at 128 KiB and 92 MiB at 512 KiB.
//!
//! glibc also gives each thread that allocates concurrently an arena of its own, up to eight per
//! core, and freed small blocks stay in the arena they came from. With sorts running on every
//! core, the lineitem SF10 sort under 512 MiB peaked at 529 MiB with the default and 462 MiB with
//! one arena per core, at the same speed. Arenas are capped at one per core. One per two cores
//! (one here) held a little less in some jobs, but its threads queue on the one arena's lock:
//! once the sort's runs reached their share, the SF10 sort under 512 MiB took 0.87× and 0.90×
//! the wall time with two arenas (farm-bench, two calls of 3 pairs, 0.92× the CPU; peak 398 /
//! 406 and 431 / 414 MiB); the SF1 sort under 256 MiB, the PostgreSQL and the DuckDB loads of
//! lineitem SF1 took the same time (1.01, 1.01, 0.99) and peaked at 185 / 182, 80 / 80 and 259 /
//! 236 MiB. See benches/README.md. `MALLOC_ARENA_MAX`, when set, wins.

/// glibc's mmap and trim threshold: blocks this large or larger get mappings of their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// The threshold of a run writing a DuckDB target: above DuckDB's 256 KiB blocks.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const DUCKDB_MMAP_THRESHOLD: libc::c_int = 512 << 10;

/// Fixes glibc's mmap and trim thresholds and caps its arenas at one per core unless
/// `MALLOC_ARENA_MAX` is set (a no-op elsewhere). Call once, first thing.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only changes malloc's tuning; it is called before any other thread runs.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, arenas as libc::c_int);
            }
        }
    }
}

/// Raises glibc's mmap threshold above DuckDB's 256 KiB blocks, so that a run writing a DuckDB
/// target reuses them from the heap (see the module docs). Safe to call while threads run.
pub fn reuse_duckdb_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes malloc's own lock to change its tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, DUCKDB_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, DUCKDB_MMAP_THRESHOLD);
    }
}

/// Hands the pages of freed heap blocks back to the system (glibc's `malloc_trim`) when the
/// heap holds more than `free_bytes` freed; a no-op elsewhere. Blocks below the mmap threshold
/// are freed into the heap, and where a live block sits above them the heap cannot shrink: a
/// sort that frees a run's worth of small batches at once, while the other partitions' batches
/// stay, left its heap holding what it freed (lineitem SF10 under 512 MiB: 474 MB anonymous with
/// a 327 MiB pool, 635 MB at the peak). Trimming once a run's blocks are freed costs system time
/// (the next run faults them in again: 35 s of system CPU instead of 17–26), so the sort trims
/// when its buffer is full, before it spills.
pub fn trim_above(free_bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 and malloc_trim take each arena's lock; they free nothing in use.
    unsafe {
        if libc::mallinfo2().fordblks > free_bytes {
            libc::malloc_trim(0);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = free_bytes;
}
