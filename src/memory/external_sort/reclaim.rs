//! Gives a sort's disk space back while its merge reads the runs, on a thread of its own.
//!
//! Freeing a file's blocks holds the thread that frees them for as long as the file system
//! takes: where it discards freed blocks as it frees them (ext4 mounted with `discard`, as cloud
//! disks often are), removing a 100 MB file took ~70 ms here. Every run of a sort ends at about
//! the same moment, at the end of the merge, and the thread reading the runs removed them one
//! after another while the merge waited for its batches: ~5 s of lineitem SF10's ~75 s under
//! 512 MiB (82 runs, 8.3 GB). Instead each run's reader hands every [`RECLAIM_BYTES`] it has
//! read to the "dfpipe-reclaim" thread, which punches them out of the file
//! (`fallocate(PUNCH_HOLE)`) while the merge goes on, and a run's file is removed there too
//! once read. A file system that cannot punch holes frees the whole file when it is removed.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::thread;

/// The bytes of a run read before they are punched out of its file (all runs end together, so
/// at most this much of each is left to free at the end).
const RECLAIM_BYTES: u64 = 8 << 20;

/// The block size ranges are punched in (a partial block would be zeroed, not freed).
const BLOCK: u64 = 4096;

/// Work for the reclaiming thread.
enum Job {
    /// Free `(offset, length)` of the file: bytes already read.
    Punch(Arc<File>, u64, u64),
    /// Drop a value (a run's file) there, not where it went out of use.
    Drop(Box<dyn Send>),
}

/// Hands read parts of spill files, and the files, to a thread that frees them (see the module).
/// The thread ends once every clone is dropped; where it cannot be started, the work is done in
/// place.
#[derive(Clone, Debug)]
pub struct Reclaimer {
    jobs: Option<Sender<Job>>,
}

impl Reclaimer {
    /// Starts the reclaiming thread.
    pub fn new() -> Reclaimer {
        let (jobs, todo) = channel::<Job>();
        let spawned = thread::Builder::new().name("dfpipe-reclaim".into()).spawn(move || {
            while let Ok(job) = todo.recv() {
                run(job);
            }
        });
        match spawned {
            Ok(_) => Reclaimer { jobs: Some(jobs) },
            Err(e) => {
                tracing::debug!(error = %e, "no thread to free spill files on: they are freed where they are read");
                Reclaimer { jobs: None }
            }
        }
    }

    /// Reads `file` from its current offset, punching out what was read as it goes (`file` must
    /// be open to write for that: Linux frees a file's blocks only through such a descriptor).
    pub fn reading(&self, file: File) -> ReclaimingFile {
        ReclaimingFile { file: Arc::new(file), read: 0, reclaimed: 0, reclaimer: self.clone() }
    }

    /// `value`, dropped on the reclaiming thread when the returned guard is dropped.
    pub fn drop_later<T: Send + 'static>(&self, value: T) -> DropLater<T> {
        DropLater { value: Some(value), reclaimer: self.clone() }
    }

    fn send(&self, job: Job) {
        match &self.jobs {
            // A thread gone (a panic) hands the job back: it is done here.
            Some(jobs) => {
                if let Err(returned) = jobs.send(job) {
                    run(returned.0);
                }
            }
            None => run(job),
        }
    }
}

fn run(job: Job) {
    match job {
        Job::Punch(file, offset, len) => punch(&file, offset, len),
        Job::Drop(value) => drop(value),
    }
}

/// Frees `len` bytes of `file` from `offset`, keeping its length; a file system that cannot is
/// left as it is (the file is freed whole when removed).
#[cfg(target_os = "linux")]
fn punch(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else { return };
    // SAFETY: fallocate(2) on an open descriptor; the range lies inside the file and was read.
    let result = unsafe {
        libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, offset, len)
    };
    if result != 0 {
        tracing::trace!(error = %io::Error::last_os_error(), "a read part of a spill file was not freed");
    }
}

#[cfg(not(target_os = "linux"))]
fn punch(_file: &File, _offset: u64, _len: u64) {}

/// A spill file being read once from start to end, whose read part is freed every
/// [`RECLAIM_BYTES`] (see the module).
pub struct ReclaimingFile {
    file: Arc<File>,
    /// Bytes read so far.
    read: u64,
    /// Bytes punched out (or handed to be) so far, a multiple of [`BLOCK`].
    reclaimed: u64,
    reclaimer: Reclaimer,
}

impl Read for ReclaimingFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = (&*self.file).read(out)?;
        self.read += n as u64;
        let read_blocks = self.read / BLOCK * BLOCK;
        if read_blocks - self.reclaimed >= RECLAIM_BYTES {
            self.reclaimer.send(Job::Punch(self.file.clone(), self.reclaimed, read_blocks - self.reclaimed));
            self.reclaimed = read_blocks;
        }
        Ok(n)
    }
}

/// A value dropped on the reclaiming thread ([`Reclaimer::drop_later`]).
pub struct DropLater<T: Send + 'static> {
    value: Option<T>,
    reclaimer: Reclaimer,
}

impl<T: Send + 'static> Drop for DropLater<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.reclaimer.send(Job::Drop(Box::new(value)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;
    use std::sync::mpsc::sync_channel;

    use super::*;

    /// Sends the name of the thread it is dropped on.
    struct Marker(std::sync::mpsc::SyncSender<String>);

    impl Drop for Marker {
        fn drop(&mut self) {
            let _ = self.0.send(thread::current().name().unwrap_or_default().to_string());
        }
    }

    /// Waits until the reclaiming thread has done everything handed to it so far (jobs run in
    /// order); returns the thread's name.
    fn settled(reclaimer: &Reclaimer) -> String {
        let (tx, rx) = sync_channel(1);
        drop(reclaimer.drop_later(Marker(tx)));
        rx.recv().unwrap()
    }

    #[test]
    fn what_a_run_reader_has_read_is_freed_and_what_it_has_not_reads_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let bytes: Vec<u8> = (0..40u64 << 20).map(|i| (i % 251) as u8).collect();
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        File::open(&path).unwrap().sync_all().unwrap();
        let on_disk = || std::fs::metadata(&path).unwrap().blocks() * 512;
        let before = on_disk();
        assert!(before >= 40 << 20, "{before}");
        let from = |offset: u64| {
            let mut file = File::open(&path).unwrap();
            file.seek(SeekFrom::Start(offset)).unwrap();
            let mut rest = Vec::new();
            file.read_to_end(&mut rest).unwrap();
            rest
        };

        let reclaimer = Reclaimer::new();
        let mut reader = reclaimer.reading(File::options().read(true).write(true).open(&path).unwrap());
        // 17 MiB and a few bytes, in odd pieces: two punches, each at least 8 MiB.
        let mut read = vec![0u8; (17 << 20) + 5];
        for piece in read.chunks_mut(100_003) {
            reader.read_exact(piece).unwrap();
        }
        assert_eq!(read, bytes[..read.len()]);
        assert_eq!(settled(&reclaimer), "dfpipe-reclaim");
        // Two punches of at least 8 MiB each, up to a block boundary at most what was read; the
        // file system may free a few blocks of its own bookkeeping with them (ext4: 5 here).
        let freed = before - on_disk();
        assert!(freed >= 16 << 20 && freed <= read.len() as u64 + (64 << 10), "freed {freed} of {} read", read.len());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40 << 20, "the file keeps its length");
        assert!(from(read.len() as u64) == bytes[read.len()..], "every byte not read yet is still there");

        // The rest reads back as written, and once all is read, less than the last 8 MiB are left
        // (freed when the file is removed).
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, bytes[read.len()..]);
        settled(&reclaimer);
        let freed = before - on_disk();
        assert!(freed > (40 << 20) - RECLAIM_BYTES, "all 40 MiB were read: {freed} freed");
    }

    #[test]
    fn a_dropped_run_file_is_dropped_on_the_reclaiming_thread() {
        let reclaimer = Reclaimer::new();
        let (tx, rx) = sync_channel(1);
        let guard = reclaimer.drop_later(Marker(tx));
        assert!(rx.try_recv().is_err(), "not dropped while the guard lives");
        drop(guard);
        assert_eq!(rx.recv().unwrap(), "dfpipe-reclaim");
    }
}
