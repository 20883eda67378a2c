//! Lets go of the machine code that starting a run touched.
//!
//! dfpipe is one large binary (~145 MB of machine code: DataFusion, DuckDB, the PostgreSQL
//! client, object stores; and ~40 MB of read-only data before it). Opening the catalog,
//! registering DataFusion's functions and planning touch code all over it, and the kernel maps a
//! file's pages into the process 64 KiB around each page touched (fault-around): 83 MiB of code
//! was resident 0.1 s into a PostgreSQL load of lineitem SF1, beside 12 MiB of heap, and stayed
//! so. [`release`] unmaps the code and the read-only data (`MADV_DONTNEED`: never written, so
//! their pages stay in the page cache and what runs next maps them again on first use).
//! `dfpipe run` calls it once the run is planned, and [`release_periodically`] from the start of
//! the process, every 10 ms for the first 0.2 s and at doubling waits after: starting up maps up
//! to ~90 MiB of code within 30 ms, starting the plans 40–56 MiB within a tenth of a second while
//! the load's buffers fill, and the load itself runs in 13–17 MiB of code and 15 MiB of read-only
//! data. Every 10 ms rather than 50 took the PostgreSQL load of lineitem SF1 from 99 to 85 MiB
//! peak RSS at the same time, and the DuckDB load's time did not change (farm-bench, 8 pairs
//! each: 1.02 and 1.00; benches/README.md); every 10 ms for a whole second cost the DuckDB load
//! up to 3% (its code mapped back each time).

/// The wait between [`release_periodically`]'s first releases.
const FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// Releases every [`FIRST_WAIT`]: start-up and planning take a tenth of a second or two.
const FIRST_RELEASES: usize = 20;

/// The longest wait of [`release_periodically`]: the code a long load runs stays mapped, what
/// one phase touched (a target's planning, its connections) leaves within this.
const LAST_WAIT: std::time::Duration = std::time::Duration::from_secs(4);

/// Calls [`release`] from a thread of its own for as long as the process lives (a no-op outside
/// Linux): every 10 ms for the first 0.2 s, then after waits twice as long each time, up to
/// 4 s. What code one phase of a run touched (start-up, planning, starting the plans) leaves the
/// process before the next phase's buffers fill; a release costs the code that runs next one page
/// fault per 64 KiB, a millisecond or two for the 30 MiB a load runs in.
pub fn release_periodically() {
    #[cfg(target_os = "linux")]
    {
        let thread = std::thread::Builder::new().name("dfpipe-code-release".into()).stack_size(64 << 10);
        // Without the thread (the process is out of threads) the code simply stays mapped.
        let _ = thread.spawn(|| {
            for wait in waits() {
                std::thread::sleep(wait);
                release();
            }
        });
    }
}

/// The waits between [`release_periodically`]'s releases: [`FIRST_RELEASES`] of [`FIRST_WAIT`],
/// then doubling up to [`LAST_WAIT`], then that forever.
fn waits() -> impl Iterator<Item = std::time::Duration> {
    let doubling = std::iter::successors(Some(FIRST_WAIT * 2), |wait| Some((*wait * 2).min(LAST_WAIT)));
    std::iter::repeat_n(FIRST_WAIT, FIRST_RELEASES).chain(doubling)
}

/// Unmaps this executable's machine code and read-only data from the process (a no-op outside
/// Linux); what runs next maps back what it uses. Safe while other threads run: a thread
/// executing code or reading a constant that was unmapped takes a page fault and continues.
pub fn release() {
    #[cfg(target_os = "linux")]
    {
        let (Ok(maps), Ok(exe)) = (std::fs::read_to_string("/proc/self/maps"), std::fs::read_link("/proc/self/exe"))
        else {
            return;
        };
        for (start, end) in never_written(&maps, &exe.to_string_lossy()) {
            // SAFETY: the range maps this executable and was never writable (machine code, or the
            // constants before it): after MADV_DONTNEED its pages are read again from the file,
            // unchanged. Writable and relocated (RELRO) mappings are never touched.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
}

/// The address ranges of `/proc/self/maps` text that map `exe` and were never writable: its
/// machine code (`r-xp`) and the read-only data the linker puts before the code (`r--p` at a
/// lower file offset: constants, symbol and unwinding tables). The read-only mapping after the
/// code is RELRO (written by the dynamic loader's relocations, then made read-only) and is left
/// alone, as are writable mappings.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn never_written(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mappings: Vec<(usize, usize, &str, u64)> = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
            if fields.nth(2)? != exe {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let hex = |s| usize::from_str_radix(s, 16).ok();
            Some((hex(start)?, hex(end)?, perms, u64::from_str_radix(offset, 16).ok()?))
        })
        .collect();
    let Some(code) = mappings.iter().filter(|m| m.2 == "r-xp").map(|m| m.3).min() else {
        return Vec::new();
    };
    mappings
        .iter()
        .filter(|&&(_, _, perms, offset)| perms == "r-xp" || (perms == "r--p" && offset < code))
        .map(|&(start, end, _, _)| (start, end))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_code_and_the_constants_before_it_are_released() {
        let maps = "\
5587b8000000-5587b89f0000 r--p 00000000 fe:00 10010761 /usr/bin/dfpipe
5587b89f0000-5587c159c000 r-xp 029f0000 fe:00 10010761 /usr/bin/dfpipe
5587c159c000-5587c2000000 r--p 0b59c000 fe:00 10010761 /usr/bin/dfpipe
5587c2000000-5587c2100000 rw-p 0c000000 fe:00 10010761 /usr/bin/dfpipe
7f0000000000-7f0000100000 r-xp 00000000 fe:00 2000 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000300000 rwxp 00000000 00:00 0
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]";
        assert_eq!(
            never_written(maps, "/usr/bin/dfpipe"),
            [(0x5587b8000000, 0x5587b89f0000), (0x5587b89f0000, 0x5587c159c000)]
        );
        assert_eq!(never_written(maps, "/usr/bin/other"), []);
    }

    /// KiB of this executable's code resident now.
    fn code_resident_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap().to_string_lossy().into_owned();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_code = false;
        let mut kib = 0;
        for line in smaps.lines() {
            if line.contains('-') && line.split_whitespace().count() >= 5 && !line.ends_with(" kB") {
                in_code = !never_written(line, &exe).is_empty();
            } else if in_code && let Some(rss) = line.strip_prefix("Rss:") {
                kib += rss.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap();
            }
        }
        kib
    }

    #[test]
    fn releases_come_every_10_ms_for_a_fifth_of_a_second_then_less_often_down_to_every_4_s() {
        let waits: Vec<u128> = waits().take(FIRST_RELEASES + 10).map(|w| w.as_millis()).collect();
        assert_eq!(waits[..FIRST_RELEASES], [10; FIRST_RELEASES]);
        assert_eq!(waits[FIRST_RELEASES..], [20, 40, 80, 160, 320, 640, 1280, 2560, 4000, 4000]);
    }

    #[test]
    fn released_code_leaves_the_process_and_runs_again() {
        // Reading smaps again maps back the little code it runs; the rest stays out. The other
        // tests run beside this one and fault their code back in, so up to five tries: a release
        // that did nothing fails them all.
        let mut tries = Vec::new();
        for _ in 0..5 {
            let before = code_resident_kib();
            release();
            let after = code_resident_kib();
            if before > 0 && after < before / 2 {
                return;
            }
            tries.push(format!("{after} KiB of code resident after release, {before} before"));
        }
        panic!("{}", tries.join("; "));
    }
}
