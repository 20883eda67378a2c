//! A load's batches as a DuckDB table function, so that `INSERT INTO staging SELECT * FROM
//! <feed>()` ingests them on DuckDB's own threads: each thread takes the next slice of rows and
//! has it imported into DuckDB's vectors ([`super::duckdb_arrow`]) while the others import
//! theirs, and DuckDB inserts in parallel. A model ending in `ORDER BY` is scanned by one thread,
//! so the table keeps the order.
//!
//! The feed reads a channel of batches, then `Commit`. A stream that ends without `Commit` (the
//! run failed or was cancelled) fails the `INSERT`, and the load's transaction rolls back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use duckdb::core::DataChunkHandle;
use duckdb::vtab::{
    BindInfo, InitInfo, TableFunctionInfo, VTab, record_batch_to_duckdb_data_chunk, to_duckdb_logical_type_for_field,
};
use tokio::sync::mpsc;

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

/// What the loader receives from the stream.
pub(super) enum Message {
    /// Rows to load.
    Batch(RecordBatch),
    /// The stream ended cleanly: finish and commit.
    Commit,
}

/// The rows of one load, shared by the DuckDB threads that scan them.
pub(super) struct Feed {
    /// The batches' schema (their storage types).
    schema: SchemaRef,
    /// DuckDB's own Arrow import for the schema, where it takes it; else duckdb-rs converts.
    import: Option<ArrowImport>,
    /// The most DuckDB threads that may scan the feed: one keeps the rows' order.
    threads: u64,
    /// DuckDB's vector size: the most rows one call may return.
    vector_size: usize,
    /// The channel, and the slices of the batch last taken from it; `None` once closed.
    queue: Mutex<Option<(mpsc::Receiver<Message>, VecDeque<RecordBatch>)>>,
    /// `Commit` arrived.
    committed: AtomicBool,
    /// The stream ended without `Commit`.
    cancelled: AtomicBool,
    /// Rows handed to DuckDB.
    rows: AtomicU64,
    /// The fault tests' pause point was passed.
    paused: AtomicBool,
}

/// The message the scan fails with when the stream stopped before `Commit`.
pub(super) const CANCELLED: &str = "dfpipe: the load's stream ended before it finished";

impl Feed {
    /// A feed of the batches of `schema` arriving on `rx`, scanned by one thread in order when
    /// `ordered`.
    pub(super) fn new(schema: SchemaRef, rx: mpsc::Receiver<Message>, ordered: bool) -> Arc<Feed> {
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
            threads: if ordered { 1 } else { u64::MAX },
            vector_size,
            queue: Mutex::new(Some((rx, VecDeque::new()))),
            committed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            rows: AtomicU64::new(0),
            paused: AtomicBool::new(false),
        })
    }

    /// Whether the stream ended with `Commit`.
    pub(super) fn committed(&self) -> bool {
        self.committed.load(Ordering::SeqCst)
    }

    /// Whether the stream ended without `Commit`.
    pub(super) fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Drops the channel and whatever it still held (the table function outlives the load).
    pub(super) fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
    }

    /// Rows handed to DuckDB so far.
    pub(super) fn rows(&self) -> u64 {
        self.rows.load(Ordering::SeqCst)
    }

    /// The next slice of at most one vector of rows; `None` at the end of the stream.
    fn next_slice(&self) -> Result<Option<RecordBatch>, String> {
        let mut queue = self.queue.lock().map_err(|_| "the load's feed was poisoned".to_string())?;
        let Some((rx, slices)) = queue.as_mut() else {
            return Err(CANCELLED.to_string());
        };
        if self.rows() > 0 && !self.paused.swap(true, Ordering::SeqCst) {
            // The first rows are in DuckDB's hands; hold the feed (so nothing more is read).
            crate::util::fault::pause_mid_load(|| rx.is_closed());
        }
        loop {
            if let Some(slice) = slices.pop_front() {
                return Ok(Some(slice));
            }
            if self.committed() {
                return Ok(None);
            }
            match rx.blocking_recv() {
                Some(Message::Batch(batch)) => {
                    let mut offset = 0;
                    while offset < batch.num_rows() {
                        let len = self.vector_size.min(batch.num_rows() - offset);
                        slices.push_back(batch.slice(offset, len));
                        offset += len;
                    }
                }
                Some(Message::Commit) => self.committed.store(true, Ordering::SeqCst),
                None => {
                    self.cancelled.store(true, Ordering::SeqCst);
                    return Err(CANCELLED.to_string());
                }
            }
        }
    }
}

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
        init.set_max_threads(feed.threads);
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
