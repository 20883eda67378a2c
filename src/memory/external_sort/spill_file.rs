//! A sort's spill files: written and read past the page cache (`O_DIRECT`) and uncompressed while
//! the disk keeps up, compressed with LZ4 through the page cache once it does not.
//!
//! Every byte a sort spills is copied into the page cache when written (into pages the kernel
//! must first clear) and out of it when read: on lineitem SF10 under 512 MiB the kernel's copy
//! was 16% of the first phase's CPU, and LZ4's compression another 15% (benches/README.md). A
//! fast disk needs neither; a slow one needs both. Compression pays when the disk time it saves
//! (the bytes it takes off) is more than the CPU time it costs: with LZ4 compressing `L` bytes a
//! second to a fraction `r` of their size, when the disk writes slower than `L × (1 − r)`. Both
//! sides are measured, not assumed: LZ4 is timed once on the first rows spilled, and the sort's
//! waits on its direct writes are timed (they are written on a thread of their own while the
//! sort goes on, [`DirectWriter`], so the sort waits only when the disk falls behind). Once the
//! runs written so far (at least [`JUDGED_BYTES`] of them) went to disk slower than that
//! break-even as the sort saw it, on the whole, its later runs are compressed and written
//! through the page cache, as they are where the temporary directory does not take `O_DIRECT`
//! (tmpfs). Lineitem SF10 under 512 MiB took 0.86× the time with every run direct, the disk at
//! 0.54 GB/s and LZ4 at 0.60 (benches/README.md): reading runs back uncompressed and past the
//! page cache saves CPU too, so the break-even leans to direct writes.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::execution::disk_manager::{DiskManager, RefCountedTempFile};

use super::reclaim::{Reclaimer, ReclaimingFile};

/// The alignment direct I/O asks of buffers, file offsets and lengths.
const ALIGN: usize = 4096;

/// The bytes a direct writer gathers before it writes them.
const WRITE_BLOCK: usize = 1 << 20;

/// The bytes a direct reader reads at once: about one of the run's batches, so that the merge of
/// many runs holds little beside them.
const READ_BLOCK: usize = 256 << 10;

/// The buffer a reader of a file written through the page cache reads through (`BufReader`'s
/// default).
const BUFFERED_READ: usize = 8 << 10;

/// The bytes written directly before their speed is judged: one slow moment of a shared disk
/// (single runs of lineitem SF10 went from 90 to 550 MB/s here) does not decide it.
const JUDGED_BYTES: u64 = 256 << 20;

/// Where a sort's runs go, and whether they are compressed (see the module).
#[derive(Debug)]
pub struct SpillDisk {
    manager: Arc<DiskManager>,
    compress: AtomicBool,
    /// The direct write rate (bytes a second) below which compressing pays, timed on the first
    /// rows spilled (see the module).
    break_even: OnceLock<f64>,
    /// The bytes written directly so far, and the time spent waiting on them.
    direct: Mutex<(u64, Duration)>,
    /// Frees the runs' disk space as they are read ([`super::reclaim`]); its thread is started
    /// by the first run written, so a sort that never spills starts none.
    reclaimer: OnceLock<Reclaimer>,
}

impl SpillDisk {
    /// Spill files of `manager`'s temporary directory, direct and uncompressed to begin with.
    pub fn new(manager: Arc<DiskManager>) -> SpillDisk {
        SpillDisk {
            manager,
            compress: AtomicBool::new(false),
            break_even: OnceLock::new(),
            direct: Mutex::default(),
            reclaimer: OnceLock::new(),
        }
    }

    /// What frees the runs' disk space as they are read.
    pub fn reclaimer(&self) -> &Reclaimer {
        self.reclaimer.get_or_init(Reclaimer::new)
    }

    /// A new temporary file for a run, and its writer.
    pub fn create(&self) -> datafusion::error::Result<(RefCountedTempFile, SpillWriter)> {
        let file = self.manager.create_tmp_file("dfpipe sort run")?;
        if !self.compress.load(Ordering::Relaxed) {
            match open_direct(OpenOptions::new().write(true).truncate(true), file.path()) {
                Ok(direct) => return Ok((file, SpillWriter::Direct(DirectWriter::new(direct)?))),
                Err(e) => {
                    tracing::debug!(error = %e, "the temporary directory does not take direct I/O: runs are compressed");
                    self.compress.store(true, Ordering::Relaxed);
                }
            }
        }
        let buffered = BufWriter::new(File::create(file.path())?);
        Ok((file, SpillWriter::Buffered(buffered)))
    }

    /// Times LZ4 on `batch`, rows about to be spilled, unless it was timed already (or the batch
    /// is empty).
    pub fn time_compression(&self, batch: &RecordBatch) {
        if self.break_even.get().is_none()
            && batch.num_rows() > 0
            && let Some(rate) = compression_break_even(batch)
        {
            let _ = self.break_even.set(rate);
        }
    }

    /// Notes a direct writer's run: its bytes, and how long the sort waited on the disk for them.
    /// The direct writes so far slower than compression's break-even (once LZ4 was timed and
    /// enough was written) turn compression on.
    fn written(&self, bytes: u64, waited: Duration) {
        tracing::trace!(bytes, waited_ms = waited.as_millis() as u64, "a sort run was written directly");
        let Some(&break_even) = self.break_even.get() else { return };
        let (bytes, waited) = {
            let mut direct = self.direct.lock().unwrap_or_else(|e| e.into_inner());
            direct.0 += bytes;
            direct.1 += waited;
            *direct
        };
        if bytes < JUDGED_BYTES || waited.is_zero() {
            return;
        }
        let rate = bytes as f64 / waited.as_secs_f64();
        if rate < break_even && !self.compress.swap(true, Ordering::Relaxed) {
            tracing::debug!(
                bytes_per_second = rate as u64,
                break_even = break_even as u64,
                "direct writes are slow enough for compression to pay: later runs are compressed"
            );
        }
    }
}

/// The direct write rate below which compressing rows like `batch` pays: `L × (1 − r)` (see the
/// module), LZ4 timed as the IPC writer compresses a run (the faster of two tries, in bytes of
/// the batch's uncompressed IPC encoding), or `None` if it cannot be timed.
fn compression_break_even(batch: &RecordBatch) -> Option<f64> {
    let encode = |compression| -> Option<(u64, Duration)> {
        let options = IpcWriteOptions::default().try_with_compression(compression).ok()?;
        let start = Instant::now();
        let mut writer = StreamWriter::try_new_with_options(Counter(0), &batch.schema(), options).ok()?;
        writer.write(batch).ok()?;
        writer.finish().ok()?;
        Some((writer.get_ref().0, start.elapsed()))
    };
    let (bytes, _) = encode(None)?;
    let (compressed, fastest) =
        (0..2).filter_map(|_| encode(Some(CompressionType::LZ4_FRAME))).min_by_key(|(_, t)| *t)?;
    if bytes == 0 || fastest.is_zero() {
        return None;
    }
    let saved = 1.0 - (compressed as f64 / bytes as f64).min(1.0);
    Some(bytes as f64 / fastest.as_secs_f64() * saved)
}

/// A writer that counts the bytes it is given and keeps none.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0 += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens `path` with `options` and `O_DIRECT` (an error where the platform has no such flag).
fn open_direct(options: &mut OpenOptions, path: &std::path::Path) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_DIRECT).open(path)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (options, path);
        Err(io::Error::new(io::ErrorKind::Unsupported, "no O_DIRECT here"))
    }
}

/// A buffer whose bytes start at an [`ALIGN`]ed address.
struct AlignedBuffer {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuffer {
    fn new(len: usize) -> AlignedBuffer {
        let bytes = vec![0u8; len + ALIGN];
        let start = bytes.as_ptr().align_offset(ALIGN);
        AlignedBuffer { bytes, start, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

/// A run's file being written: directly or through the page cache.
pub enum SpillWriter {
    /// Past the page cache, uncompressed.
    Direct(DirectWriter),
    /// Through the page cache, compressed by the IPC writer.
    Buffered(BufWriter<File>),
}

impl SpillWriter {
    /// The compression the IPC writer applies to what it writes here.
    pub fn compression(&self) -> Option<CompressionType> {
        match self {
            SpillWriter::Direct(_) => None,
            SpillWriter::Buffered(_) => Some(CompressionType::LZ4_FRAME),
        }
    }

    /// Writes out what is left and tells `disk` how fast it went; whether the file is direct.
    pub fn finish(self, disk: &SpillDisk) -> io::Result<bool> {
        match self {
            SpillWriter::Direct(writer) => {
                let (bytes, waited) = writer.finish()?;
                disk.written(bytes, waited);
                Ok(true)
            }
            SpillWriter::Buffered(mut writer) => {
                writer.flush()?;
                Ok(false)
            }
        }
    }
}

impl Write for SpillWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            SpillWriter::Direct(writer) => writer.write(data),
            SpillWriter::Buffered(writer) => writer.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // A direct writer writes whole blocks only, until it finishes.
        match self {
            SpillWriter::Direct(_) => Ok(()),
            SpillWriter::Buffered(writer) => writer.flush(),
        }
    }
}

/// Gathers bytes into an aligned block and hands each whole block to a thread of its own
/// ("dfpipe-spill"), which writes it with `O_DIRECT` while the next one fills: a direct write
/// keeps its caller waiting until the disk has the bytes, and a sort that waited there left a
/// core idle for every second the disk took (lineitem SF10 under 512 MiB spills 8.3 GB: ~14 s of
/// a core at 0.6 GB/s, in a first phase of 46 s; benches/README.md). Two blocks at most, one
/// filled and one written. The last block is padded to the alignment and the file cut back to
/// what was written.
pub struct DirectWriter {
    block: AlignedBuffer,
    filled: usize,
    written: u64,
    /// The time the writer's caller waited for the disk: for a block to fill while both were in
    /// use, and for the last writes.
    waited: Duration,
    /// Full blocks to write, and the length of each.
    to_write: SyncSender<(AlignedBuffer, usize)>,
    /// Blocks written, to fill again.
    spare: Receiver<AlignedBuffer>,
    /// The writing thread, which returns the file (taken when it is joined).
    thread: Option<JoinHandle<io::Result<File>>>,
}

impl DirectWriter {
    fn new(file: File) -> io::Result<DirectWriter> {
        let (to_write, blocks) = sync_channel::<(AlignedBuffer, usize)>(1);
        let (spare_tx, spare) = sync_channel(2);
        spare_tx.send(AlignedBuffer::new(WRITE_BLOCK)).expect("the receiver is here");
        let thread = thread::Builder::new().name("dfpipe-spill".into()).spawn(move || {
            let mut file = file;
            for (block, len) in blocks {
                file.write_all(&block.as_slice()[..len])?;
                let _ = spare_tx.send(block);
            }
            Ok(file)
        })?;
        let block = AlignedBuffer::new(WRITE_BLOCK);
        Ok(DirectWriter { block, filled: 0, written: 0, waited: Duration::ZERO, to_write, spare, thread: Some(thread) })
    }

    /// Hands the first `len` bytes of the block (a multiple of [`ALIGN`]) to the writing thread
    /// and takes a spare block to fill, waiting for one if both are in use. An error of the
    /// thread's write is returned here (or by [`DirectWriter::finish`]).
    fn write_block(&mut self, len: usize) -> io::Result<()> {
        let start = Instant::now();
        let spare = self.spare.recv();
        self.waited += start.elapsed();
        let Ok(spare) = spare else { return Err(self.failed()) };
        let full = std::mem::replace(&mut self.block, spare);
        if self.to_write.send((full, len)).is_err() {
            return Err(self.failed());
        }
        Ok(())
    }

    /// The error the writing thread stopped with (it stops early only on an error, having
    /// dropped its channels: joining it does not wait).
    fn failed(&mut self) -> io::Error {
        join(self.thread.take()).err().unwrap_or_else(stopped)
    }

    /// Writes the last bytes and waits for the writes; the bytes written and the time the caller
    /// waited on the disk.
    fn finish(mut self) -> io::Result<(u64, Duration)> {
        let bytes = self.written + self.filled as u64;
        if self.filled > 0 {
            let padded = self.filled.next_multiple_of(ALIGN);
            self.block.as_mut_slice()[self.filled..padded].fill(0);
            self.write_block(padded)?;
        }
        let DirectWriter { to_write, thread, waited, .. } = self;
        drop(to_write);
        let start = Instant::now();
        join(thread)?.set_len(bytes)?;
        Ok((bytes, waited + start.elapsed()))
    }
}

/// Waits for a direct writer's thread to end: the file, or the error it stopped with.
fn join(thread: Option<JoinHandle<io::Result<File>>>) -> io::Result<File> {
    match thread.map(JoinHandle::join) {
        Some(Ok(ended)) => ended,
        _ => Err(stopped()),
    }
}

/// The error of a direct writer whose thread is gone without one of its own (a panic).
fn stopped() -> io::Error {
    io::Error::other("the spill file's writing thread stopped")
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(WRITE_BLOCK - self.filled);
        self.block.as_mut_slice()[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        if self.filled == WRITE_BLOCK {
            self.write_block(WRITE_BLOCK)?;
            self.written += WRITE_BLOCK as u64;
            self.filled = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens a run's file to read once from start to end: directly if it was written so (and the
/// directory still takes it), with what was read freed by `reclaimer` as it goes.
pub fn open(path: &std::path::Path, direct: bool, reclaimer: &Reclaimer) -> io::Result<Box<dyn Read + Send>> {
    // Open to write as well: a file's blocks are freed through a descriptor that may write it.
    if direct && let Ok(file) = open_direct(OpenOptions::new().read(true).write(true), path) {
        return Ok(Box::new(DirectReader {
            file: reclaimer.reading(file),
            block: AlignedBuffer::new(READ_BLOCK),
            start: 0,
            end: 0,
            done: false,
        }));
    }
    Ok(Box::new(BufReader::with_capacity(
        BUFFERED_READ,
        reclaimer.reading(OpenOptions::new().read(true).write(true).open(path)?),
    )))
}

/// The bytes a reader from [`open`] holds besides the batches it decodes.
pub fn read_buffer_bytes(direct: bool) -> usize {
    if direct { READ_BLOCK } else { BUFFERED_READ }
}

/// Reads a file with `O_DIRECT`, a block at a time.
struct DirectReader {
    file: ReclaimingFile,
    block: AlignedBuffer,
    start: usize,
    end: usize,
    done: bool,
}

impl DirectReader {
    /// Reads the next block; a read that ends short of an aligned length is the file's end (the
    /// offset after it is not aligned, so nothing more could be read directly).
    fn fill(&mut self) -> io::Result<()> {
        let mut filled = 0;
        while filled < READ_BLOCK {
            let n = self.file.read(&mut self.block.as_mut_slice()[filled..])?;
            filled += n;
            if n == 0 || filled % ALIGN != 0 {
                self.done = true;
                break;
            }
        }
        (self.start, self.end) = (0, filled);
        Ok(())
    }
}

impl Read for DirectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.block.as_slice()[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that tell their places apart.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    fn round_trip(disk: &SpillDisk, len: usize, piece: usize) -> (bool, Vec<u8>, u64) {
        let data = pattern(len);
        let (file, mut writer) = disk.create().unwrap();
        for chunk in data.chunks(piece.max(1)) {
            writer.write_all(chunk).unwrap();
        }
        let direct = writer.finish(disk).unwrap();
        let size = std::fs::metadata(file.path()).unwrap().len();
        let mut back = Vec::new();
        open(file.path(), direct, disk.reclaimer()).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data, "{len} bytes written {piece} at a time");
        (direct, back, size)
    }

    #[test]
    fn files_read_back_as_written_whatever_their_length_and_the_writes_pieces() {
        let disk = SpillDisk::new(Arc::new(DiskManager::builder().build().unwrap()));
        for (len, piece) in [
            (0, 1),
            (1, 1),
            (ALIGN, 1000),
            (ALIGN + 1, 7),
            (WRITE_BLOCK, WRITE_BLOCK),
            (WRITE_BLOCK + READ_BLOCK - 3, 65_537),
            (3 * WRITE_BLOCK + 5, 3 * WRITE_BLOCK + 5),
        ] {
            let (_, back, size) = round_trip(&disk, len, piece);
            assert_eq!(size, back.len() as u64, "the file is cut back to what was written");
        }
    }

    #[test]
    fn a_write_that_fails_on_the_writing_thread_fails_the_writer() {
        let disk = SpillDisk::new(Arc::new(DiskManager::builder().build().unwrap()));
        let (file, _) = disk.create().unwrap();
        // A file opened to read only: the writing thread's first write fails with EBADF.
        let read_only = || DirectWriter::new(open_direct(OpenOptions::new().read(true), file.path()).unwrap()).unwrap();
        let mut writer = read_only();
        let e = writer.write_all(&pattern(3 * WRITE_BLOCK)).expect_err("the second block finds the thread stopped");
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        let mut writer = read_only();
        writer.write_all(&pattern(ALIGN + 1)).unwrap();
        let e = writer.finish().expect_err("the last block's write fails");
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
    }

    #[test]
    fn slow_direct_writes_make_later_runs_compressed() {
        let disk = SpillDisk::new(Arc::new(DiskManager::builder().build().unwrap()));
        disk.written(JUDGED_BYTES, Duration::from_secs(100));
        assert!(disk.create().unwrap().1.compression().is_none(), "no write is slow before LZ4 was timed");
        disk.break_even.set(300e6).unwrap();
        let (_, writer) = disk.create().unwrap();
        // This machine's temporary directory takes direct I/O (a loud failure where it does not).
        assert!(writer.compression().is_none(), "the first run is written directly and uncompressed");
        disk.written(10 << 20, Duration::from_secs(1));
        assert!(disk.create().unwrap().1.compression().is_none(), "10 MiB are too few to judge the disk by");
        disk.written(1000 << 20, Duration::from_millis(500));
        assert!(disk.create().unwrap().1.compression().is_none(), "1,010 MiB in 1.5 s is not slow");
        disk.written(1000 << 20, Duration::from_secs(6));
        let (_, writer) = disk.create().unwrap();
        assert_eq!(
            writer.compression(),
            Some(CompressionType::LZ4_FRAME),
            "2,010 MiB in 7.5 s is slower than 300 MB/s"
        );
        assert!(!round_trip(&disk, 5 * ALIGN + 3, 4096).0, "and written through the page cache");
    }

    #[test]
    fn compression_is_timed_once_on_the_first_rows_spilled() {
        use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
        let disk = SpillDisk::new(Arc::new(DiskManager::builder().build().unwrap()));
        let rows = |n: i64| {
            let ids = Int64Array::from_iter_values(0..n);
            let notes = StringArray::from_iter_values((0..n).map(|i| format!("note {}", i % 97)));
            RecordBatch::try_from_iter([("id", Arc::new(ids) as ArrayRef), ("note", Arc::new(notes) as ArrayRef)])
                .unwrap()
        };
        disk.time_compression(&rows(0));
        assert!(disk.break_even.get().is_none(), "no rows, no timing");
        disk.time_compression(&rows(50_000));
        let rate = *disk.break_even.get().expect("timed");
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        disk.time_compression(&rows(10));
        assert_eq!(disk.break_even.get(), Some(&rate), "timed once");
        // xorshift64: bytes LZ4 finds no repeats in.
        let noise: Vec<i64> = std::iter::successors(Some(0x2545_F491_4F6C_DD1D_u64), |&x| {
            let x = x ^ (x << 13);
            let x = x ^ (x >> 7);
            Some(x ^ (x << 17))
        })
        .take(50_000)
        .map(|x| x as i64)
        .collect();
        let incompressible =
            RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(noise)) as ArrayRef)]).unwrap();
        assert_eq!(compression_break_even(&incompressible), Some(0.0), "nothing saved, never worth it");
    }
}
