//! One scan of a model, split by its row filter (`on_invalid`): valid rows stream on to the
//! target; invalid ones are counted and, for `quarantine`, spilled to an Arrow IPC file as they
//! pass. The quarantine is written from that file once the target's load has committed, so the
//! model is computed once — `now()`, `random()` or a source that changes between scans cannot
//! make "rows in = loaded + quarantined + dropped" false — and a failed load leaves the
//! quarantine as it was.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::{filter_record_batch, not};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::StreamExt;

/// The column of the annotated scan that is TRUE for a row failing the filter.
pub const INVALID_FLAG: &str = "_dfpipe_invalid";

/// The rows the split kept out of the target: how many, and (for `quarantine`) the file they
/// were spilled to. The file is removed when this is dropped, unless [`Rejected::keep`] is called.
#[derive(Debug)]
pub struct Rejected {
    rows: Arc<AtomicU64>,
    spill: Option<Arc<Mutex<Spill>>>,
    kept: bool,
}

struct Spill {
    path: PathBuf,
    writer: Option<FileWriter<File>>,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spill({})", self.path.display())
    }
}

impl Rejected {
    /// Rows that failed the filter (so far; final once the valid stream has ended).
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Finishes the spill file and returns its path (`None` without one).
    pub fn finish(&self) -> Result<Option<PathBuf>, String> {
        let Some(spill) = &self.spill else { return Ok(None) };
        let mut spill = spill.lock().expect("not poisoned");
        if let Some(mut writer) = spill.writer.take() {
            writer.finish().map_err(|e| format!("finishing {}: {e}", spill.path.display()))?;
        }
        Ok(Some(spill.path.clone()))
    }

    /// Keeps the spill file (the quarantine could not be written from it).
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Rejected {
    fn drop(&mut self) {
        if let (Some(spill), false) = (&self.spill, self.kept) {
            let path = spill.lock().map(|s| s.path.clone());
            if let Ok(path) = path {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Splits `annotated` — the model's columns, then [`INVALID_FLAG`], then the quarantine's
/// extra columns — into the valid rows (the model's columns) and the [`Rejected`] ones, spilled
/// to `spill` (model columns and extra columns) when given.
pub fn split(
    annotated: SendableRecordBatchStream,
    spill: Option<&Path>,
) -> Result<(SendableRecordBatchStream, Rejected), String> {
    let schema = annotated.schema();
    let flag = schema.index_of(INVALID_FLAG).map_err(|e| e.to_string())?;
    let valid_columns: Vec<usize> = (0..flag).collect();
    let rejected_columns: Vec<usize> = (0..schema.fields().len()).filter(|i| *i != flag).collect();
    let valid_schema = Arc::new(schema.project(&valid_columns).map_err(|e| e.to_string())?);
    let spill = match spill {
        Some(path) => {
            let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let writer = FileWriter::try_new(file, &schema.project(&rejected_columns).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            Some(Arc::new(Mutex::new(Spill { path: path.to_path_buf(), writer: Some(writer) })))
        }
        None => None,
    };
    let rejected = Rejected { rows: Arc::default(), spill: spill.clone(), kept: false };
    let rows = rejected.rows.clone();
    let valid = annotated.map(move |batch| {
        let batch = batch?;
        let invalid = batch.column(flag).as_boolean();
        let failing = invalid.true_count();
        if failing == 0 {
            return Ok(batch.project(&valid_columns)?);
        }
        rows.fetch_add(failing as u64, Ordering::Relaxed);
        if let Some(spill) = &spill {
            let out = filter_record_batch(&batch.project(&rejected_columns)?, invalid)?;
            let mut spill = spill.lock().expect("not poisoned");
            if let Some(writer) = spill.writer.as_mut() {
                writer.write(&out)?;
            }
        }
        Ok(filter_record_batch(&batch.project(&valid_columns)?, &not(invalid)?)?)
    });
    Ok((Box::pin(RecordBatchStreamAdapter::new(valid_schema, valid)), rejected))
}

/// A table that yields `stream` once, so a stream can be written like any other DataFrame.
pub fn one_shot_table(stream: SendableRecordBatchStream) -> DfResult<StreamingTable> {
    let schema = stream.schema();
    StreamingTable::try_new(schema.clone(), vec![Arc::new(OneShot { schema, stream: Mutex::new(Some(stream)) })])
}

struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneShot")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.stream.lock().expect("not poisoned").take() {
            Some(stream) => stream,
            None => {
                let error = DataFusionError::Internal("a split stream was executed twice".into());
                Box::pin(RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::once(async move { Err::<RecordBatch, _>(error) }),
                ))
            }
        }
    }
}
