//! A load's partitions as a DuckDB table function, so that `INSERT INTO staging SELECT * FROM
//! <feed>()` ingests them on DuckDB's own threads: each thread reads the next batch of a
//! partition itself (DataFusion decodes and computes it on that thread), has DuckDB import it
//! into its vectors ([`super::duckdb_arrow`]) and inserts it, while the other threads do the
//! same with the other partitions. A model ending in `ORDER BY` comes as one partition, read by
//! one thread, so the table keeps the order.
//!
//! Each thread keeps to one partition (a lane) while it can: a thread takes the lane it read
//! last if no other thread holds it, else any free lane that still has rows, and ends when none
//! has. DuckDB may move a scan from one thread to another between calls; the lanes are shared,
//! so no rows are tied to a thread. A stream that fails, or a load cancelled from outside (the
//! run was interrupted), fails the `INSERT`, and the load's transaction rolls back.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use duckdb::core::DataChunkHandle;
use duckdb::vtab::{
    BindInfo, InitInfo, TableFunctionInfo, VTab, record_batch_to_duckdb_data_chunk, to_duckdb_logical_type_for_field,
};
use futures::StreamExt;

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

/// One partition's rows: its stream and the slices of the batch last read from it.
struct Lane {
    /// `None` once the stream has ended.
    stream: Option<SendableRecordBatchStream>,
    /// Slices of at most one vector of rows, not yet handed to DuckDB.
    slices: VecDeque<RecordBatch>,
}

thread_local! {
    /// The lane this thread read last: it tries that one first.
    static LAST_LANE: Cell<usize> = const { Cell::new(0) };
}

/// The rows of one load, shared by the DuckDB threads that scan them.
pub(super) struct Feed {
    /// The batches' schema (their storage types).
    schema: SchemaRef,
    /// DuckDB's own Arrow import for the schema, where it takes it; else duckdb-rs converts.
    import: Option<ArrowImport>,
    /// DuckDB's vector size: the most rows one call may return.
    vector_size: usize,
    /// The runtime the streams' reads and tasks belong to (DuckDB's threads poll them).
    runtime: tokio::runtime::Handle,
    /// The partitions' streams until [`Feed::start`] makes them lanes.
    streams: Mutex<Vec<SendableRecordBatchStream>>,
    /// One per thread that may scan: set by [`Feed::start`], emptied by [`Feed::close`].
    lanes: OnceLock<Vec<Mutex<Lane>>>,
    /// The first error a stream returned (the run's own message, reported as it is).
    failure: Mutex<Option<DataFusionError>>,
    /// The load was cancelled from outside, or closed.
    cancelled: AtomicBool,
    /// Rows handed to DuckDB.
    rows: AtomicU64,
    /// The fault tests' pause point was passed.
    paused: AtomicBool,
    /// Held through the fault tests' pause, so that every thread waits.
    gate: Mutex<()>,
}

/// The message the scan fails with when the load was cancelled before it finished.
pub(super) const CANCELLED: &str = "dfpipe: the load was cancelled before it finished";

impl Feed {
    /// A feed of `streams` (one per partition, batches of `schema`), polled on `runtime`.
    pub(super) fn new(
        schema: SchemaRef,
        streams: Vec<SendableRecordBatchStream>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Feed> {
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
        Arc::new(Feed {
            schema,
            import,
            vector_size,
            runtime,
            streams: Mutex::new(streams),
            lanes: OnceLock::new(),
            failure: Mutex::new(None),
            cancelled: AtomicBool::new(false),
            rows: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            gate: Mutex::new(()),
        })
    }

    /// Makes the streams into at most `threads` lanes (streams beyond that are read together,
    /// in turn, so every partition keeps moving); returns how many.
    pub(super) fn start(&self, threads: usize) -> Result<usize, String> {
        let streams = std::mem::take(&mut *self.streams.lock().map_err(|_| POISONED)?);
        let count = streams.len().clamp(1, threads.max(1));
        tracing::debug!(partitions = streams.len(), threads = count, "DuckDB's threads read and insert the partitions");
        let mut groups: Vec<Vec<SendableRecordBatchStream>> = (0..count).map(|_| Vec::new()).collect();
        for (i, stream) in streams.into_iter().enumerate() {
            groups[i % count].push(stream);
        }
        let lanes = groups
            .into_iter()
            .map(|mut group| {
                let stream = match group.len() {
                    0 => None,
                    1 => group.pop(),
                    _ => Some(Box::pin(RecordBatchStreamAdapter::new(
                        self.schema.clone(),
                        futures::stream::select_all(group),
                    )) as SendableRecordBatchStream),
                };
                Mutex::new(Lane { stream, slices: VecDeque::new() })
            })
            .collect();
        self.lanes.set(lanes).map_err(|_| "the load's feed was started twice".to_string())?;
        Ok(count)
    }

    /// Whether every lane has been read to its end.
    pub(super) fn finished(&self) -> bool {
        !self.cancelled()
            && self.lanes.get().is_some_and(|lanes| {
                lanes.iter().all(|lane| lane.lock().is_ok_and(|l| l.stream.is_none() && l.slices.is_empty()))
            })
    }

    /// Cancels the load: the scan fails at its next call (and a paused load goes on to fail).
    pub(super) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether the load was cancelled.
    pub(super) fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// The first error a stream returned, if one did.
    pub(super) fn take_failure(&self) -> Option<DataFusionError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// Drops the streams and whatever they still held (the table function outlives the load).
    pub(super) fn close(&self) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.clear();
        }
        for lane in self.lanes.get().into_iter().flatten() {
            if let Ok(mut lane) = lane.lock() {
                lane.stream = None;
                lane.slices.clear();
            }
        }
    }

    /// Rows handed to DuckDB so far.
    pub(super) fn rows(&self) -> u64 {
        self.rows.load(Ordering::SeqCst)
    }

    /// The next slice of at most one vector of rows, from the lane this thread read last if it
    /// is free, else from any free lane; `None` when no free lane has rows left.
    fn next_slice(&self) -> Result<Option<RecordBatch>, String> {
        {
            // Every call passes the gate: a pause holds it, so no thread reads on meanwhile.
            let _gate = self.gate.lock().map_err(|_| POISONED)?;
            if self.rows() > 0 && !self.paused.swap(true, Ordering::SeqCst) {
                // The first rows are in DuckDB's hands; hold the load.
                crate::util::fault::pause_mid_load(|| self.cancelled());
            }
        }
        if self.cancelled() {
            return Err(CANCELLED.to_string());
        }
        let lanes = self.lanes.get().ok_or("the load's feed was not started")?;
        let first = LAST_LANE.with(Cell::get);
        for k in 0..lanes.len() {
            let i = (first + k) % lanes.len();
            let mut lane = match lanes[i].try_lock() {
                Ok(lane) => lane,
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => return Err(POISONED.to_string()),
            };
            if let Some(slice) = self.next_in(&mut lane)? {
                LAST_LANE.with(|last| last.set(i));
                return Ok(Some(slice));
            }
        }
        Ok(None)
    }

    /// The next slice of `lane`, reading its stream's next batch when the last one is used up.
    fn next_in(&self, lane: &mut Lane) -> Result<Option<RecordBatch>, String> {
        loop {
            if let Some(slice) = lane.slices.pop_front() {
                return Ok(Some(slice));
            }
            let Some(stream) = lane.stream.as_mut() else { return Ok(None) };
            match self.runtime.block_on(stream.next()) {
                Some(Ok(batch)) => {
                    let mut offset = 0;
                    while offset < batch.num_rows() {
                        let len = self.vector_size.min(batch.num_rows() - offset);
                        lane.slices.push_back(batch.slice(offset, len));
                        offset += len;
                    }
                }
                Some(Err(e)) => {
                    lane.stream = None;
                    let message = e.to_string();
                    if let Ok(mut failure) = self.failure.lock() {
                        failure.get_or_insert(e);
                    }
                    return Err(message);
                }
                None => lane.stream = None,
            }
        }
    }
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
        init.set_max_threads(feed.lanes.get().map_or(1, Vec::len) as u64);
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
