//! A load's batches as a DuckDB table function, so that `INSERT INTO staging SELECT * FROM
//! <feed>()` ingests them on DuckDB's own threads: each thread takes the next slice of rows
//! and converts it from Arrow into DuckDB's vectors while the others convert theirs, and DuckDB
//! inserts in parallel — where one appender converted and appended every row on one thread.
//!
//! The feed reads the same channel the appender did: batches, then `Commit`. A stream that ends
//! without `Commit` (the run failed or was cancelled) fails the `INSERT`, and the load's
//! transaction rolls back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use duckdb::core::DataChunkHandle;
use duckdb::vtab::{
    BindInfo, InitInfo, TableFunctionInfo, VTab, record_batch_to_duckdb_data_chunk, to_duckdb_logical_type_for_field,
};
use tokio::sync::mpsc;

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
    /// A feed of the batches of `schema` arriving on `rx`.
    pub(super) fn new(schema: SchemaRef, rx: mpsc::Receiver<Message>) -> Arc<Feed> {
        // SAFETY: a constant of the linked DuckDB; no state involved.
        let vector_size = unsafe { duckdb::ffi::duckdb_vector_size() } as usize;
        Arc::new(Feed {
            schema,
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
        for field in feed.schema.fields() {
            bind.add_result_column(field.name(), to_duckdb_logical_type_for_field(field)?);
        }
        Ok(())
    }

    fn init(init: &InitInfo) -> Result<(), Box<dyn std::error::Error>> {
        init.set_max_threads(u64::MAX);
        Ok(())
    }

    fn func(func: &TableFunctionInfo<Self>, output: &mut DataChunkHandle) -> Result<(), Box<dyn std::error::Error>> {
        // SAFETY: as in `bind`.
        let feed = unsafe { &*func.get_extra_info::<Extra>() };
        match feed.next_slice()? {
            Some(slice) => {
                record_batch_to_duckdb_data_chunk(&slice, output)?;
                feed.rows.fetch_add(slice.num_rows() as u64, Ordering::Relaxed);
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
