//! Writing an incremental output: its windows (or its one increment) each in their own
//! transaction through [`super::write`], with the load's marker built as the rows
//! stream by (a cursor's new mark is the largest value they carried).

use std::collections::HashMap;

use datafusion::common::{ScalarValue, TableReference};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::incremental::{Increment, Load, marker, new_load_id, record_of};
use super::write::{Frame, Written, write_output};
use crate::catalog::Catalog;
use crate::config::incremental::OnNullCursor;
use crate::config::{Mode, OutputConfig};
use crate::engine::incremental::{
    CursorWatch, MarkerState, StoredMark, column_type, drop_nulls, filter_cursor, filter_window, instant_text,
    window_params,
};
use crate::engine::pipeline::Pipeline;
use crate::error::df_message;
use crate::memory::strategy::Decision;
use crate::schema::Evolution;
use crate::sinks::marker::{DeleteRange, LoadExtras};
use crate::util::progress::RowCounter;

/// One transaction of an incremental output: the values of `$start`/`$end`/`$last`, the
/// window (time), and what its marker records.
struct Step {
    values: HashMap<String, ScalarValue>,
    window: Option<(chrono::NaiveDateTime, chrono::NaiveDateTime)>,
    state: MarkerState,
}

/// Writes an incremental output: each window (or the one increment) in its own transaction,
/// with its marker; the committed loads are recorded in the catalog when the output is done or
/// stops. A failing load stops the output; the loads before it stay committed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    decision: &Decision,
    output: &OutputConfig,
    increment: &Increment,
    evolution: Evolution,
    counter: &RowCounter,
    catalog: Option<&(Catalog, i64)>,
) -> std::result::Result<Written, String> {
    let label = output.target.label(&pipeline.project.config.project_dir);
    let mut total = Written::default();
    // One database for all the windows of a DuckDB target, not one per window.
    let _held = match &output.target {
        crate::config::Target::DuckDb(t) => {
            Some(crate::util::duckdb_file::hold(&t.path, crate::util::duckdb_file::lock_wait())?)
        }
        _ => None,
    };
    // The catalog records the committed loads once, when the output is done or stops, Ctrl-C
    // included (the target's markers are the record; a crash before this is repaired from them).
    let mut record =
        LoadsRecord { catalog, label: &label, full_refresh: increment.full_refresh, committed: Vec::new() };
    let written =
        write_steps(pipeline, ctx, decision, output, increment, evolution, counter, &mut record.committed, &mut total)
            .await;
    drop(record);
    written.map(|()| total)
}

/// The loads an output committed, recorded in the catalog when it is dropped: when the output
/// is done, fails, or the run stops (Ctrl-C drops the future writing it).
struct LoadsRecord<'a> {
    catalog: Option<&'a (Catalog, i64)>,
    label: &'a str,
    full_refresh: bool,
    committed: Vec<crate::sinks::marker::LoadMarker>,
}

impl Drop for LoadsRecord<'_> {
    fn drop(&mut self) {
        let (Some((catalog, run_id)), false) = (self.catalog, self.committed.is_empty()) else { return };
        let records: Vec<_> = self.committed.iter().map(record_of).collect();
        if let Err(e) = catalog.record_loads(*run_id, self.label, &records, self.full_refresh) {
            let label = self.label;
            tracing::warn!(target = %label, "loads committed, but not recorded in the catalog (the next run will): {e}");
        }
    }
}

/// The steps of [`write`], each committed load's marker pushed to `committed`.
#[allow(clippy::too_many_arguments)]
async fn write_steps(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    decision: &Decision,
    output: &OutputConfig,
    increment: &Increment,
    evolution: Evolution,
    counter: &RowCounter,
    committed: &mut Vec<crate::sinks::marker::LoadMarker>,
    total: &mut Written,
) -> std::result::Result<(), String> {
    let mode = if increment.full_refresh { Mode::Replace } else { output.mode };
    let relation = format!("__dfpipe_increment_{}", output.model);
    let steps: Vec<Step> = match &increment.load {
        Load::Windows { windows, .. } => windows
            .iter()
            .map(|w| {
                let complete = w.complete.map(|(a, b)| vec![(instant_text(a), instant_text(b))]).unwrap_or_default();
                Step {
                    values: window_params(w.start, w.end),
                    window: Some((w.start, w.end)),
                    state: MarkerState { complete, ..Default::default() },
                }
            })
            .collect(),
        Load::Cursor { floor, .. } => vec![Step {
            values: HashMap::from([("last".to_string(), floor.clone().unwrap_or(ScalarValue::Null))]),
            window: None,
            state: MarkerState::default(),
        }],
        Load::Files { files, .. } => vec![Step {
            values: HashMap::new(),
            window: None,
            state: MarkerState { files: files.clone(), ..Default::default() },
        }],
    };
    let null_times = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for (seq, Step { values, window, state }) in steps.into_iter().enumerate() {
        let df = if values.is_empty() {
            ctx.table(TableReference::bare(output.model.as_str())).await.map_err(|e| df_message(&e))?
        } else {
            pipeline.model_with(ctx, &output.model, values).await.map_err(|e| e.to_string())?
        };
        let mut delete = None;
        let mut watch = None;
        let mut cursor_job = None;
        let mut computed = false;
        let df = match (&increment.load, window) {
            (Load::Windows { column, .. }, Some((start, end))) => {
                let data_type = column_type(&df, column)?;
                if !increment.full_refresh {
                    delete = Some(DeleteRange { column: column.clone(), data_type, start, end });
                }
                if seq > 0 {
                    filter_window(df, column, start, end, false)?
                } else {
                    // The first window also reads the rows whose time is NULL, to count them:
                    // no window holds them, so they are never loaded, and the run says so.
                    let df = filter_window(df, column, start, end, true)?;
                    let index = df.schema().as_arrow().index_of(column).map_err(|e| e.to_string())?;
                    let (stream, job) = super::write::stream_of(pipeline, ctx, df).await?;
                    cursor_job = job;
                    computed = true;
                    let dropped = null_times.clone();
                    observed_table(ctx, stream, move |b| drop_nulls(b, index, &dropped))?
                }
            }
            (Load::Cursor { column, floor, .. }, _) => {
                let df = filter_cursor(df, column, floor.as_ref())?;
                let index = df.schema().as_arrow().index_of(column).map_err(|e| e.to_string())?;
                let w = CursorWatch::new(index, &column_type(&df, column)?)?;
                let (stream, job) = super::write::stream_of(pipeline, ctx, df).await?;
                cursor_job = job;
                computed = true;
                let seen = w.clone();
                watch = Some(w);
                observed_table(ctx, stream, move |b| seen.observe(&b).map(|()| b))?
            }
            _ => df,
        };
        let (kind, before) = (increment.load_kind(), counter.rows());
        let (inc, rows_counter, load_id) = (increment.clone(), counter.clone(), new_load_id(seq));
        let marker_fn = move || {
            let mut state = state.clone();
            state.rows = rows_counter.rows() - before;
            if let (Some(w), Load::Cursor { mark, on_null_cursor, column, .. }) = (&watch, &inc.load) {
                let (max, nulls) = w.result()?;
                if nulls > 0 && *on_null_cursor == OnNullCursor::Error {
                    return Err(format!(
                        "{nulls} row(s) have a NULL cursor `{column}`; a NULL cursor never passes a mark, so they \
                         would load on every run: filter or COALESCE them in the model, or set \
                         `on_null_cursor: warn` to load them (a merge keeps each once)"
                    ));
                }
                let new_mark = match (mark, max) {
                    (Some(old), Some(new)) if new.partial_cmp(old) == Some(std::cmp::Ordering::Less) => {
                        Some(old.clone())
                    }
                    (_, Some(new)) => Some(new),
                    (old, None) => old.clone(),
                };
                state.mark = new_mark.as_ref().map(StoredMark::store).transpose()?;
                if nulls > 0 {
                    tracing::warn!("{nulls} row(s) with a NULL cursor `{column}` loaded (on_null_cursor: warn)");
                }
            }
            Ok(marker(&inc, load_id.clone(), &state, kind))
        };
        let recorded: std::sync::Arc<std::sync::Mutex<Option<crate::sinks::marker::LoadMarker>>> = Default::default();
        let keep = recorded.clone();
        let extras = LoadExtras {
            delete,
            marker: Some(std::sync::Arc::new(move || {
                let m = marker_fn()?;
                *keep.lock().expect("marker") = Some(m.clone());
                Ok(m)
            })),
            reset: increment.full_refresh,
        };
        ctx.register_table(TableReference::bare(relation.as_str()), df.into_view()).map_err(|e| df_message(&e))?;
        let load = Frame { relation: relation.clone(), mode, extras, computed };
        let written = write_output(pipeline, ctx, decision, output, load, evolution.clone(), counter).await;
        ctx.deregister_table(TableReference::bare(relation.as_str())).map_err(|e| df_message(&e))?;
        // Which window failed: those before it stay loaded, and a rerun starts from it.
        let mut written = written.map_err(|e| match window {
            Some((start, end)) => format!("window [{}, {}): {e}", instant_text(start), instant_text(end)),
            None => e,
        })?;
        if let Some(job) = cursor_job {
            super::write::add_work(&mut written.cluster, job.work().await);
        }
        counter.commit(written.rows);
        total.add(written);
        crate::util::fault::crash_point(&format!("after-commit-{seq}"));
        committed.extend(recorded.lock().expect("marker").take());
        if let (0, Load::Windows { column, .. }) = (seq, &increment.load) {
            let nulls = null_times.load(std::sync::atomic::Ordering::Relaxed);
            if nulls > 0 {
                tracing::warn!(
                    target = %output.target.label(&pipeline.project.config.project_dir),
                    "{nulls} row(s) of `{}` have a NULL `{column}` and are not loaded: no time window holds \
                     them; COALESCE it in the model to load them, or filter them there",
                    output.model
                );
            }
        }
    }
    Ok(())
}

/// `stream` as a frame of one read, each batch passed through `step` on its way.
fn observed_table(
    ctx: &SessionContext,
    stream: datafusion::execution::SendableRecordBatchStream,
    step: impl Fn(datafusion::arrow::array::RecordBatch) -> datafusion::error::Result<datafusion::arrow::array::RecordBatch>
    + Send
    + 'static,
) -> std::result::Result<datafusion::prelude::DataFrame, String> {
    let schema = stream.schema();
    let observed = stream.map(move |batch| batch.and_then(&step));
    let observed = Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, observed));
    let table = crate::checks::split::one_shot_table(observed).map_err(|e| df_message(&e))?;
    ctx.read_table(std::sync::Arc::new(table)).map_err(|e| df_message(&e))
}
