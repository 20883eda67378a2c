//! Lets go of the machine code that starting a run touched.
//!
//! dfpipe is one large binary (~145 MB of machine code: DataFusion, DuckDB, the PostgreSQL
//! client, object stores). Opening the catalog, registering DataFusion's functions and planning
//! touch code all over it, and the kernel maps a file's pages into the process 64 KiB around
//! each page touched (fault-around): 83 MiB of code was resident 0.1 s into a PostgreSQL load
//! of lineitem SF1, beside 12 MiB of heap, and stayed so. [`release`] unmaps the code
//! (`MADV_DONTNEED`: it is read-only and unchanged, so its pages stay in the page cache and what
//! runs next maps them again on first use). `dfpipe run` calls it once the run is planned, and
//! again a second into the load, when the plans are streaming: starting them had mapped 57 MiB
//! back, the load itself runs in 13–17 MiB. Peak RSS of that load: 172 → 136 MB, same speed
//! (benches/README.md).

/// Unmaps this executable's machine code from the process (a no-op outside Linux); what runs
/// next maps back what it uses. Safe while other threads run: a thread executing code that was
/// unmapped takes a page fault and continues.
pub fn release() {
    #[cfg(target_os = "linux")]
    {
        let (Ok(maps), Ok(exe)) = (std::fs::read_to_string("/proc/self/maps"), std::fs::read_link("/proc/self/exe"))
        else {
            return;
        };
        for (start, end) in code_ranges(&maps, &exe.to_string_lossy()) {
            // SAFETY: the range is a mapping of this executable that is read-only and executable
            // (machine code, never written): after MADV_DONTNEED its pages are read again from
            // the file, unchanged. Writable or relocated (RELRO) mappings are never touched.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
}

/// The address ranges of `/proc/self/maps` text that map `exe` read-only and executable.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn code_ranges(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, perms) = (fields.next()?, fields.next()?);
            let path = fields.nth(3)?;
            if perms != "r-xp" || path != exe {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_read_only_code_is_released() {
        let maps = "\
5587b8000000-5587b89f0000 r--p 00000000 fe:00 10010761 /usr/bin/dfpipe
5587b89f0000-5587c159c000 r-xp 029f0000 fe:00 10010761 /usr/bin/dfpipe
5587c159c000-5587c2000000 r--p 0b59c000 fe:00 10010761 /usr/bin/dfpipe
5587c2000000-5587c2100000 rw-p 0c000000 fe:00 10010761 /usr/bin/dfpipe
7f0000000000-7f0000100000 r-xp 00000000 fe:00 2000 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000300000 rwxp 00000000 00:00 0
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]";
        assert_eq!(code_ranges(maps, "/usr/bin/dfpipe"), [(0x5587b89f0000, 0x5587c159c000)]);
    }

    /// KiB of this executable's code resident now.
    fn code_resident_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap().to_string_lossy().into_owned();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_code = false;
        let mut kib = 0;
        for line in smaps.lines() {
            if line.contains('-') && line.split_whitespace().count() >= 5 && !line.ends_with(" kB") {
                in_code = !code_ranges(line, &exe).is_empty();
            } else if in_code && let Some(rss) = line.strip_prefix("Rss:") {
                kib += rss.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap();
            }
        }
        kib
    }

    #[test]
    fn released_code_leaves_the_process_and_runs_again() {
        let before = code_resident_kib();
        release();
        // Reading smaps again maps back the little code it runs; the rest stays out.
        let after = code_resident_kib();
        assert!(before > 0 && after < before / 2, "{after} KiB of code resident after release, {before} before");
    }
}
