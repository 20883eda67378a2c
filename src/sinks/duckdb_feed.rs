//! A load's partitions as a DuckDB table function, so that `INSERT INTO staging SELECT * FROM
//! <feed>()` ingests them on DuckDB's own threads: each partition is read by a task of its own
//! into a lane (a one-batch channel), and each DuckDB thread takes the next rows of a lane, has
//! DuckDB import them into its vectors ([`super::duckdb_arrow`]) and inserts them, while the
//! other threads do the same with the other lanes. A model ending in `ORDER BY` comes as one
//! partition, taken by one thread, so the table keeps the order.
//!
//! The partitions are read by DataFusion's runtime, never by DuckDB's threads: a partition that
//! waits for another (a join's partitions share their build) always has it read, whatever DuckDB
//! does with its threads, and a failed or cancelled load stops the readers at once.
//!
//! A thread takes rows that are ready in a free lane, the one it read last first; if none is
//! ready it waits on a free lane that has not ended, and only when every free lane has ended
//! on those other threads hold. It ends when every lane has. DuckDB may move a scan from one
//! thread to another between calls; the lanes are shared, so no rows are tied to a thread. A
//! stream that fails, or a load cancelled from outside (the run was interrupted), fails the
//! `INSERT`, and the load's transaction rolls back.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use duckdb::core::DataChunkHandle;
use duckdb::vtab::{
    BindInfo, InitInfo, TableFunctionInfo, VTab, record_batch_to_duckdb_data_chunk, to_duckdb_logical_type_for_field,
};
use futures::StreamExt;
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::task::AbortHandle;

use super::duckdb_arrow::ArrowImport;

/// Rows in one of DuckDB's row groups.
const ROW_GROUP_ROWS: u64 = 122_880;

/// What DuckDB holds while ingesting besides the row groups being filled.
const INGEST_BASE: u64 = 64 << 20;

/// The least `memory_limit` DuckDB ingests under.
const INGEST_FLOOR: u64 = 128 << 20;

/// Bytes a column value takes in DuckDB's uncompressed row group, for values of no fixed width
/// (strings: 16 bytes inline, the rest guessed).
const VARIABLE_WIDTH: u64 = 32;

/// DuckDB's `memory_limit` while it ingests rows of `schema` on `threads` threads: the row group
/// each thread fills, plus [`INGEST_BASE`], at least [`INGEST_FLOOR`].
///
/// DuckDB sizes its write buffer from its `memory_limit` (a fifth of it, shared by the threads)
/// and keeps every block it wrote cached up to that limit; under its default (80% of RAM) a
/// load of lineitem SF1 held 462 MiB of DuckDB buffers. With the limit at what the row groups
/// in flight need, each thread writes its row group out as soon as it is full: 350–360 MB peak RSS
/// instead of 557 (benches/README.md), at the same speed.
pub(super) fn ingest_memory_limit(schema: &Schema, threads: u64) -> u64 {
    let row_bytes: u64 =
        schema.fields().iter().map(|f| f.data_type().primitive_width().map_or(VARIABLE_WIDTH, |w| w as u64)).sum();
    (INGEST_BASE + threads * ROW_GROUP_ROWS * row_bytes).max(INGEST_FLOOR)
}

/// What a partition's reader sends into its lane.
enum Message {
    /// The partition's next rows.
    Batch(RecordBatch),
    /// The partition ended cleanly. A lane whose channel closes without it was stopped: its
    /// stream failed or the load was cancelled.
    End,
}

/// One partition's rows on their way to DuckDB.
struct Lane {
    /// Batches from the partition's reader, one at a time.
    rx: mpsc::Receiver<Message>,
    /// Slices of at most one vector of rows from the batch last received, not yet handed over.
    slices: VecDeque<RecordBatch>,
    /// [`Message::End`] arrived.
    ended: bool,
}

/// What a lane gave a thread.
enum Take {
    /// Rows.
    Slice(RecordBatch),
    /// Nothing ready yet (the thread did not wait).
    NotReady,
    /// The lane has ended.
    Ended,
}

thread_local! {
    /// The lane this thread read last: it tries that one first.
    static LAST_LANE: Cell<usize> = const { Cell::new(0) };
}

/// The first error a partition's stream returned (shared with the readers).
type Failure = Arc<Mutex<Option<DataFusionError>>>;

/// The rows of one load, shared by the DuckDB threads that scan them.
pub(super) struct Feed {
    /// The batches' schema (their storage types).
    schema: SchemaRef,
    /// DuckDB's own Arrow import for the schema, where it takes it; else duckdb-rs converts.
    import: Option<ArrowImport>,
    /// DuckDB's vector size: the most rows one call may return.
    vector_size: usize,
    /// The runtime the lanes' channels belong to (DuckDB's threads wait on them through it).
    runtime: tokio::runtime::Handle,
    /// One per partition.
    lanes: Vec<Mutex<Lane>>,
    /// The partitions' readers, stopped by [`Feed::cancel`] and [`Feed::close`].
    readers: Vec<AbortHandle>,
    /// The most DuckDB threads that may scan (set by [`Feed::limit_threads`]).
    threads: AtomicUsize,
    /// The first error a stream returned (the run's own message, reported as it is).
    failure: Failure,
    /// The load was cancelled from outside.
    cancelled: AtomicBool,
    /// Rows handed to DuckDB.
    rows: AtomicU64,
    /// The fault tests' pause point was passed.
    paused: AtomicBool,
    /// Held through the fault tests' pause, so that every thread waits.
    gate: Mutex<()>,
}

/// The message the scan fails with when the load was cancelled before it finished.
const CANCELLED: &str = "dfpipe: the load was cancelled before it finished";

impl Feed {
    /// A feed of `streams` (one per partition, batches of `schema`), each read by a task of its
    /// own on the current runtime from now on.
    pub(super) fn new(schema: SchemaRef, streams: Vec<SendableRecordBatchStream>) -> Arc<Feed> {
        // SAFETY: a constant of the linked DuckDB; no state involved.
        let vector_size = unsafe { duckdb::ffi::duckdb_vector_size() } as usize;
        let import = match ArrowImport::new(&schema) {
            Ok(import) => {
                tracing::debug!("DuckDB's Arrow import takes the load's batches");
                Some(import)
            }
            Err(why) => {
                tracing::debug!("duckdb-rs converts the load's batches: {why}");
                None
            }
        };
        let failure = Failure::default();
        let (mut lanes, mut readers) = (Vec::new(), Vec::new());
        for stream in streams {
            let (tx, rx) = mpsc::channel(1);
            readers.push(tokio::spawn(read_partition(stream, tx, failure.clone())).abort_handle());
            lanes.push(Mutex::new(Lane { rx, slices: VecDeque::new(), ended: false }));
        }
        Arc::new(Feed {
            schema,
            import,
            vector_size,
            runtime: tokio::runtime::Handle::current(),
            threads: AtomicUsize::new(lanes.len().max(1)),
            lanes,
            readers,
            failure,
            cancelled: AtomicBool::new(false),
            rows: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            gate: Mutex::new(()),
        })
    }

    /// Lets at most `threads` DuckDB threads scan (one per lane at most); returns how many.
    pub(super) fn limit_threads(&self, threads: usize) -> usize {
        let threads = self.lanes.len().clamp(1, threads.max(1));
        self.threads.store(threads, Ordering::SeqCst);
        tracing::debug!(partitions = self.lanes.len(), threads, "DuckDB's threads insert the partitions");
        threads
    }

    /// Whether every lane has ended and been handed over, and the load was not cancelled.
    pub(super) fn finished(&self) -> bool {
        !self.cancelled() && self.lanes.iter().all(|lane| lane.lock().is_ok_and(|l| l.ended && l.slices.is_empty()))
    }

    /// Cancels the load: the readers stop, and the scan fails at once (a paused load too).
    pub(super) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.readers.iter().for_each(AbortHandle::abort);
    }

    /// Whether the load was cancelled.
    pub(super) fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Whether a stream returned an error.
    fn failed(&self) -> bool {
        self.failure.lock().map_or(true, |f| f.is_some())
    }

    /// The first error a stream returned, if one did.
    pub(super) fn take_failure(&self) -> Option<DataFusionError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// Stops the readers and drops what the lanes still hold (the table function outlives the
    /// load).
    pub(super) fn close(&self) {
        self.readers.iter().for_each(AbortHandle::abort);
        for lane in &self.lanes {
            if let Ok(mut lane) = lane.lock() {
                lane.rx.close();
                while lane.rx.try_recv().is_ok() {}
                lane.slices.clear();
            }
        }
    }

    /// Rows handed to DuckDB so far.
    pub(super) fn rows(&self) -> u64 {
        self.rows.load(Ordering::SeqCst)
    }

    /// The next slice of at most one vector of rows; `None` once every lane has ended.
    fn next_slice(&self) -> Result<Option<RecordBatch>, String> {
        {
            // Every call passes the gate: a pause holds it, so no thread reads on meanwhile.
            let _gate = self.gate.lock().map_err(|_| POISONED)?;
            if self.rows() > 0 && !self.paused.swap(true, Ordering::SeqCst) {
                // The first rows are in DuckDB's hands; hold the load.
                crate::util::fault::pause_mid_load(|| self.cancelled() || self.failed());
            }
        }
        if self.cancelled() {
            return Err(CANCELLED.to_string());
        }
        let count = self.lanes.len();
        let first = LAST_LANE.with(Cell::get);
        let order = || (0..count).map(move |k| (first + k) % count);
        // Rows ready in a free lane; else wait on a free lane that has not ended.
        for wait in [false, true] {
            for i in order() {
                let Some(mut lane) = self.try_lane(i)? else { continue };
                if let Take::Slice(slice) = self.take(&mut lane, wait)? {
                    LAST_LANE.with(|last| last.set(i));
                    return Ok(Some(slice));
                }
            }
        }
        // Every free lane has ended: wait for those other threads hold, then take what is left.
        for i in order() {
            let mut lane = self.lanes[i].lock().map_err(|_| POISONED)?;
            if let Take::Slice(slice) = self.take(&mut lane, true)? {
                LAST_LANE.with(|last| last.set(i));
                return Ok(Some(slice));
            }
        }
        Ok(None)
    }

    /// Lane `i` if no other thread holds it.
    fn try_lane(&self, i: usize) -> Result<Option<MutexGuard<'_, Lane>>, String> {
        match self.lanes[i].try_lock() {
            Ok(lane) => Ok(Some(lane)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Poisoned(_)) => Err(POISONED.to_string()),
        }
    }

    /// The next slice of `lane`, receiving its next batch when the last one is used up (waiting
    /// for it if `wait`).
    fn take(&self, lane: &mut Lane, wait: bool) -> Result<Take, String> {
        loop {
            if let Some(slice) = lane.slices.pop_front() {
                return Ok(Take::Slice(slice));
            }
            if lane.ended {
                return Ok(Take::Ended);
            }
            let message = if wait {
                self.runtime.block_on(lane.rx.recv())
            } else {
                match lane.rx.try_recv() {
                    Ok(message) => Some(message),
                    Err(TryRecvError::Empty) => return Ok(Take::NotReady),
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            match message {
                Some(Message::Batch(batch)) => {
                    let mut offset = 0;
                    while offset < batch.num_rows() {
                        let len = self.vector_size.min(batch.num_rows() - offset);
                        lane.slices.push_back(batch.slice(offset, len));
                        offset += len;
                    }
                }
                Some(Message::End) => lane.ended = true,
                None => return Err(self.stopped()),
            }
        }
    }

    /// Why a lane closed before its end: the stream's error, else the cancellation.
    fn stopped(&self) -> String {
        match self.failure.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(e) => e.to_string(),
            None if self.cancelled() => CANCELLED.to_string(),
            None => "dfpipe: a partition of the load stopped before its end".to_string(),
        }
    }
}

/// Reads one partition into its lane: its batches, then [`Message::End`]; on an error, records
/// it and closes the lane without `End`. The partition is read ahead by one batch, so that
/// DataFusion's threads read while DuckDB's insert.
async fn read_partition(mut stream: SendableRecordBatchStream, tx: mpsc::Sender<Message>, failure: Failure) {
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(batch) if batch.num_rows() == 0 => {}
            Ok(batch) => {
                if tx.send(Message::Batch(batch)).await.is_err() {
                    return; // the load stopped taking rows
                }
            }
            Err(e) => {
                if let Ok(mut failure) = failure.lock() {
                    failure.get_or_insert(e);
                }
                return;
            }
        }
    }
    let _ = tx.send(Message::End).await;
}

/// The message for a lock a panicking thread left behind.
const POISONED: &str = "the load's feed was poisoned";

/// The table function over a [`Feed`] (its extra info).
pub(super) struct FeedScan;

/// The feed, as the table function's extra info.
type Extra = Arc<Feed>;

impl VTab for FeedScan {
    type InitData = ();
    type BindData = ();

    fn bind(bind: &BindInfo) -> Result<(), Box<dyn std::error::Error>> {
        // SAFETY: the extra info is the `Extra` given to `register`, kept by DuckDB while the
        // function is registered.
        let feed = unsafe { &*bind.get_extra_info::<Extra>() };
        let types = match &feed.import {
            Some(import) => import.column_types()?,
            None => {
                feed.schema.fields().iter().map(|f| to_duckdb_logical_type_for_field(f)).collect::<Result<_, _>>()?
            }
        };
        for (field, column_type) in feed.schema.fields().iter().zip(types) {
            bind.add_result_column(field.name(), column_type);
        }
        Ok(())
    }

    fn init(init: &InitInfo) -> Result<(), Box<dyn std::error::Error>> {
        // SAFETY: as in `bind`.
        let feed = unsafe { &*init.get_extra_info::<Extra>() };
        init.set_max_threads(feed.threads.load(Ordering::SeqCst) as u64);
        Ok(())
    }

    fn func(func: &TableFunctionInfo<Self>, output: &mut DataChunkHandle) -> Result<(), Box<dyn std::error::Error>> {
        // SAFETY: as in `bind`.
        let feed = unsafe { &*func.get_extra_info::<Extra>() };
        match feed.next_slice()? {
            Some(slice) => {
                let rows = slice.num_rows() as u64;
                match &feed.import {
                    Some(import) => import.fill(&slice, output)?,
                    None => record_batch_to_duckdb_data_chunk(&slice, output)?,
                }
                feed.rows.fetch_add(rows, Ordering::Relaxed);
            }
            None => output.set_len(0),
        }
        Ok(())
    }
}

/// Registers the table function `name` over `feed` on `conn`.
pub(super) fn register(conn: &duckdb::Connection, name: &str, feed: &Arc<Feed>) -> Result<(), String> {
    conn.register_table_function_with_extra_info::<FeedScan, Extra>(name, feed).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    #[test]
    fn ingest_limit_covers_a_row_group_per_thread() {
        let narrow = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        assert_eq!(ingest_memory_limit(&narrow, 2), INGEST_FLOOR);
        let wide = Schema::new((0..100).map(|i| Field::new(format!("c{i}"), DataType::Utf8, true)).collect::<Vec<_>>());
        // 100 strings: 3,200 bytes a row, 375 MiB a row group, for each of 4 threads.
        assert_eq!(ingest_memory_limit(&wide, 4), INGEST_BASE + 4 * ROW_GROUP_ROWS * 3_200);
    }
}
