//! The allocator gives freed memory back to the system.
//!
//! glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB);
//! from then on large buffers (Arrow arrays, Parquet pages, spill reads) come from the heap,
//! and once freed they stay in the process as fragments. Measured on the lineitem SF1 sort
//! under a 256 MiB limit (heaptrack): 129 MiB of live heap at the peak, 410 MiB resident.
//! With the threshold fixed at 128 KiB, large blocks keep mappings of their own and are
//! unmapped when freed: 279 MiB resident, as low as jemalloc with eager decay (274 MiB) and
//! lower than mimalloc (314–327 MiB), without a C dependency. See benches/README.md.

/// Fixes glibc's mmap and trim thresholds (a no-op elsewhere). Call once, first thing.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning; it is called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
    }
}
