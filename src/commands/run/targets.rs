//! Writing the targets: each selected output, one after another in dependency order, under its
//! memory strategy, through its sink (with the rows its row-level tests reject quarantined or
//! dropped first); then `run_results.json` in the state directory.

use std::sync::Arc;
use std::time::Instant;

use datafusion::common::TableReference;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::datasource::sink::DataSink;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::{DataFrame, SessionContext};

use std::collections::HashMap;

use datafusion::common::ScalarValue;
use futures::StreamExt;

use super::incremental::{Increment, Load, marker, new_load_id, record_of};
use crate::catalog::Catalog;
use crate::catalog::results::{RunResults, Status, TargetResult, write_results};
use crate::checks::quarantine::{RowFilter, quarantine_target};
use crate::checks::split;
use crate::config::incremental::OnNullCursor;
use crate::config::{Mode, OnInvalid, OutputConfig, Policy, Strategy, Target};
use crate::engine::incremental::{
    CursorWatch, MarkerState, StoredMark, column_type, filter_cursor, filter_window, instant_text, window_params,
};
use crate::engine::pipeline::Pipeline;
use crate::error::{Result, df_message};
use crate::memory::peak_rss;
use crate::memory::strategy::{Decision, out_of_memory_hint};
use crate::schema::Evolution;
use crate::sinks;
use crate::sinks::marker::{DeleteRange, LoadExtras};
use crate::util::fmt::{group_digits, human_bytes};
use crate::util::progress::RowCounter;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop at the first failed target (`-x/--fail-fast`); the rest are skipped.
    pub fail_fast: bool,
    /// Draw progress bars (stderr is a terminal and logs are not JSON).
    pub progress: bool,
    /// The allowed drift of each model, applied to existing tables of outputs under `evolve`.
    pub evolutions: std::collections::BTreeMap<String, Evolution>,
    /// What each output loads when it is incremental (one entry per output, in order).
    pub increments: Vec<Option<Increment>>,
    /// Where each committed incremental load is recorded, with the run's id.
    pub catalog: Option<(Catalog, i64)>,
    /// OpenLineage events, when configured.
    pub openlineage: Option<std::sync::Arc<super::openlineage::Emitter>>,
}

/// Runs every output of `pipeline`.
pub async fn run(pipeline: &Pipeline, options: &RunOptions) -> Result<RunResults> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let mut targets = Vec::with_capacity(pipeline.outputs.len());
    let mut decisions = Vec::with_capacity(pipeline.outputs.len());
    for output in &pipeline.outputs {
        let (estimate, decision) = pipeline.decide(output).await?;
        tracing::info!(
            model = %output.model,
            estimate = %human_bytes(estimate.bytes),
            budget = %human_bytes(decision.budget),
            ratio = decision.ratio,
            strategy = decision.strategy.name(),
            "memory strategy: {}",
            decision.reason
        );
        decisions.push(decision);
    }
    let strategies: Vec<Strategy> = decisions.iter().map(|d| d.strategy).collect();
    pipeline.materialize(&pipeline.shared_in_memory(&strategies)).await?;
    let mut stop = false;
    for (i, (output, decision)) in pipeline.outputs.iter().zip(&decisions).enumerate() {
        let increment = options.increments.get(i).cloned().flatten();
        let label = output.target.label(&pipeline.project.config.project_dir);
        if stop {
            targets.push(TargetResult {
                model: output.model.clone(),
                target: label,
                mode: output.mode,
                status: Status::Skipped,
                rows: 0,
                quarantined: 0,
                dropped: 0,
                seconds: 0.0,
                peak_rss_bytes: None,
                strategy: Some(decision.strategy),
                estimate_bytes: Some(decision.estimate),
                error: None,
                incremental: None,
            });
            continue;
        }
        let counter = if options.progress { RowCounter::with_bar(&label) } else { RowCounter::hidden() };
        tracing::debug!(model = %output.model, target = %label, "writing");
        if let Some(emitter) = &options.openlineage {
            emitter.start(pipeline, output).await;
        }
        let begun = Instant::now();
        let outcome = match decision.settings.session(&pipeline.ctx, &pipeline.project.config.datafusion) {
            Ok(ctx) => {
                let policy = output.on_schema_change.unwrap_or(pipeline.project.config.on_schema_change);
                let evolution = match policy {
                    Policy::Evolve => options.evolutions.get(&output.model).cloned().unwrap_or_default(),
                    _ => Evolution::default(),
                };
                match &increment {
                    None => {
                        let plain =
                            Frame { relation: output.model.clone(), mode: output.mode, extras: LoadExtras::default() };
                        write_output(pipeline, &ctx, decision, output, plain, evolution, &counter).await
                    }
                    Some(inc) if inc.is_empty() => Ok(Written::default()),
                    Some(inc) => {
                        write_increments(pipeline, &ctx, decision, output, inc, evolution, &counter, options).await
                    }
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let seconds = begun.elapsed().as_secs_f64();
        let (status, written, error) = match outcome {
            Ok(written) => {
                let rows = written.rows;
                counter.finish(&format!("{rows} rows"));
                if !options.progress {
                    tracing::info!(model = %output.model, target = %label, rows, seconds, "target written");
                }
                if written.quarantined + written.dropped > 0 {
                    tracing::warn!(
                        model = %output.model,
                        target = %label,
                        "{} row(s) failed the model's row-level tests: {}",
                        group_digits(written.quarantined + written.dropped),
                        if written.quarantined > 0 { "quarantined" } else { "dropped (on_invalid: drop)" }
                    );
                }
                (Status::Success, written, None)
            }
            Err(message) => {
                counter.finish("failed");
                let mut message = match out_of_memory_hint(&message, &decision.settings) {
                    Some(hint) => format!("{hint}: {message}"),
                    None => message,
                };
                if crate::engine::diagnose::is_read_error(&message)
                    && let Some((source, file, error)) =
                        crate::engine::diagnose::unreadable_file(pipeline, &output.model).await
                {
                    let dir = pipeline.project.config.project_dir.to_string_lossy().into_owned();
                    let local = file.strip_prefix("file://").unwrap_or(&file);
                    let shown = local.strip_prefix(&format!("{dir}/")).unwrap_or(local);
                    let detail = if message.contains(&error) { String::new() } else { format!(": {error}") };
                    message.push_str(&format!(
                        "\n  in file {shown} (source `{source}`){detail}; fix or remove that file and run again"
                    ));
                }
                let message = format!("{label} (model `{}`): {message}", output.model);
                tracing::error!(model = %output.model, target = %label, "{message}");
                stop = options.fail_fast;
                (Status::Error, Written::default(), Some(message))
            }
        };
        targets.push(TargetResult {
            model: output.model.clone(),
            target: label,
            mode: output.mode,
            status,
            rows: written.rows,
            quarantined: written.quarantined,
            dropped: written.dropped,
            seconds,
            peak_rss_bytes: peak_rss(),
            strategy: Some(decision.strategy),
            estimate_bytes: Some(decision.estimate),
            error,
            incremental: increment.as_ref().map(Increment::describe),
        });
        if let (Some(emitter), Some(result)) = (&options.openlineage, targets.last()) {
            emitter.finish(pipeline, output, result).await;
        }
    }
    let failed = targets.iter().any(|t| t.status != Status::Success);
    let results = RunResults {
        dfpipe_version: env!("CARGO_PKG_VERSION"),
        project: pipeline.project.config.name.clone(),
        started_at: started_at.to_rfc3339(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        status: if failed { Status::Error } else { Status::Success },
        memory_budget_bytes: pipeline.budget.budget,
        peak_rss_bytes: peak_rss(),
        targets,
        error: None,
    };
    write_results(&pipeline.project.config.state_dir, &results)?;
    Ok(results)
}

/// Rows an output wrote, and the rows its row filter (`on_invalid`) kept out.
#[derive(Debug, Clone, Copy, Default)]
struct Written {
    rows: u64,
    quarantined: u64,
    dropped: u64,
}

/// Writes one output in `ctx` (a session with the target's strategy): with `on_invalid: drop`
/// or `quarantine`, the model is scanned once and split ([`split`]): the rows passing its
/// row-level tests go to the target, the others are counted — and quarantined once the target's
/// load has committed, so a failed load leaves the quarantine as it was.
async fn write_output(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    decision: &Decision,
    output: &OutputConfig,
    load: Frame,
    evolution: Evolution,
    counter: &RowCounter,
) -> std::result::Result<Written, String> {
    let model = output.model.as_str();
    let Frame { relation, mode, extras } = load;
    let filter = match output.on_invalid {
        OnInvalid::Fail => RowFilter::default(),
        OnInvalid::Drop | OnInvalid::Quarantine => RowFilter::for_model(&pipeline.project.config.tests, model),
    };
    let spec = WriteSpec { mode, unique_key: output.unique_key.clone(), evolution, extras };
    if filter.is_empty() {
        let df = ctx.table(TableReference::bare(relation.as_str())).await.map_err(|e| df_message(&e))?;
        let rows = write_frame(pipeline, ctx, decision, df, &output.target, spec, counter).await?;
        return Ok(Written { rows, ..Written::default() });
    }
    let quarantine = output.on_invalid == OnInvalid::Quarantine;
    let state_dir = &pipeline.project.config.state_dir;
    let spill = quarantine.then(|| state_dir.join(format!("quarantine-{model}-{}.arrow", std::process::id())));
    if spill.is_some() {
        std::fs::create_dir_all(state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    }
    let annotated = ctx.sql(&filter.annotated_sql(&relation)).await.map_err(|e| df_message(&e))?;
    let stream = annotated.execute_stream().await.map_err(|e| df_message(&e))?;
    let (valid, mut rejected) = split::split(stream, spill.as_deref())?;
    let valid = ctx.read_table(Arc::new(split::one_shot_table(valid).map_err(|e| df_message(&e))?));
    let valid = valid.map_err(|e| df_message(&e))?;
    let rows = write_frame(pipeline, ctx, decision, valid, &output.target, spec, counter).await?;
    if !quarantine {
        return Ok(Written { rows, dropped: rejected.rows(), ..Written::default() });
    }
    // The target committed; the quarantine follows from the spilled rows.
    let target = quarantine_target(&output.target);
    let label = target.label(&pipeline.project.config.project_dir);
    let written = async {
        let path = rejected.finish()?.expect("quarantine spills");
        let rejects = ctx
            .read_arrow(path.to_string_lossy().as_ref(), ArrowReadOptions::default())
            .await
            .map_err(|e| df_message(&e))?;
        // An incremental output's quarantine gains each load's rejects.
        let mode = if output.incremental.is_some() { Mode::Append } else { Mode::Replace };
        let plain =
            WriteSpec { mode, unique_key: vec![], evolution: Evolution::default(), extras: LoadExtras::default() };
        write_frame(pipeline, ctx, decision, rejects, &target, plain, &RowCounter::hidden()).await
    }
    .await;
    match written {
        Ok(_) => Ok(Written { rows, quarantined: rejected.rows(), ..Written::default() }),
        Err(e) => {
            rejected.keep();
            Err(format!(
                "{} rows were written to the target, but its quarantine {label} could not be: {e}; the {} \
                 rejected rows are kept in {}",
                group_digits(rows),
                group_digits(rejected.rows()),
                spill.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
            ))
        }
    }
}

/// How a frame is written: mode, merge key, the schema evolution to apply, and what an
/// incremental load does besides.
struct WriteSpec {
    mode: Mode,
    unique_key: Vec<String>,
    evolution: Evolution,
    extras: LoadExtras,
}

/// What one load of an output reads (a table of the session) and how it writes.
struct Frame {
    relation: String,
    mode: Mode,
    extras: LoadExtras,
}

/// One transaction of an incremental output: the values of `$start`/`$end`/`$last`, the
/// window (time), and what its marker records.
struct Step {
    values: HashMap<String, ScalarValue>,
    window: Option<(chrono::NaiveDateTime, chrono::NaiveDateTime)>,
    state: MarkerState,
}

/// Writes an incremental output: each window (or the one increment) in its own transaction,
/// with its marker; each committed load is recorded in the catalog at once. A failing load
/// stops the output; the loads before it stay committed.
#[allow(clippy::too_many_arguments)]
async fn write_increments(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    decision: &Decision,
    output: &OutputConfig,
    increment: &Increment,
    evolution: Evolution,
    counter: &RowCounter,
    options: &RunOptions,
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
    // The catalog records the committed loads once, when the output is done or stops (the
    // target's markers are the record; a crash before this is repaired from them).
    let mut committed = Vec::new();
    let written =
        write_steps(pipeline, ctx, decision, output, increment, evolution, counter, &mut committed, &mut total).await;
    if let (Some((catalog, run_id)), false) = (&options.catalog, committed.is_empty()) {
        let records: Vec<_> = committed.iter().map(record_of).collect();
        if let Err(e) = catalog.record_loads(*run_id, &label, &records, increment.full_refresh) {
            tracing::warn!(target = %label, "loads committed, but not recorded in the catalog (the next run will): {e}");
        }
    }
    written.map(|()| total)
}

/// The steps of [`write_increments`], each committed load's marker pushed to `committed`.
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
    for (seq, Step { values, window, state }) in steps.into_iter().enumerate() {
        let df = if values.is_empty() {
            ctx.table(TableReference::bare(output.model.as_str())).await.map_err(|e| df_message(&e))?
        } else {
            pipeline.model_with(ctx, &output.model, values).await.map_err(|e| e.to_string())?
        };
        let mut delete = None;
        let mut watch = None;
        let df = match (&increment.load, window) {
            (Load::Windows { column, .. }, Some((start, end))) => {
                let data_type = column_type(&df, column)?;
                let df = filter_window(df, column, start, end)?;
                if !increment.full_refresh {
                    delete = Some(DeleteRange { column: column.clone(), data_type, start, end });
                }
                df
            }
            (Load::Cursor { column, floor, .. }, _) => {
                let df = filter_cursor(df, column, floor.as_ref())?;
                let index = df.schema().as_arrow().index_of(column).map_err(|e| e.to_string())?;
                let w = CursorWatch::new(index, &column_type(&df, column)?)?;
                let stream = df.execute_stream().await.map_err(|e| df_message(&e))?;
                let schema = stream.schema();
                let seen = w.clone();
                let observed = stream.map(move |batch| batch.and_then(|b| seen.observe(&b).map(|()| b)));
                let observed =
                    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, observed));
                watch = Some(w);
                let table = crate::checks::split::one_shot_table(observed).map_err(|e| df_message(&e))?;
                ctx.read_table(std::sync::Arc::new(table)).map_err(|e| df_message(&e))?
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
        let load = Frame { relation: relation.clone(), mode, extras };
        let written = write_output(pipeline, ctx, decision, output, load, evolution.clone(), counter).await;
        ctx.deregister_table(TableReference::bare(relation.as_str())).map_err(|e| df_message(&e))?;
        let written = written?;
        total.rows += written.rows;
        total.quarantined += written.quarantined;
        total.dropped += written.dropped;
        crate::util::fault::crash_point(&format!("after-commit-{seq}"));
        committed.extend(recorded.lock().expect("marker").take());
    }
    Ok(())
}

/// Writes `df` to `target`; returns the rows written or a message saying why not.
async fn write_frame(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    decision: &Decision,
    df: DataFrame,
    target: &Target,
    spec: WriteSpec,
    counter: &RowCounter,
) -> std::result::Result<u64, String> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let before = counter.rows();
    let WriteSpec { mode, unique_key: key, evolution, extras } = spec;
    let sink: Arc<dyn DataSink> = match target {
        Target::DuckDb(target) => {
            // DuckDB's buffers live outside DataFusion's pool: a quarter of the budget when it is bounded.
            let limit = decision.settings.pool_bytes.map(|b| b / 4);
            Arc::new(
                sinks::duckdb::DuckDbSink::new(target.clone(), schema, mode, key, counter.clone())
                    .with_memory_limit(limit)
                    .with_evolution(evolution)
                    .with_extras(extras),
            )
        }
        Target::Postgres { table, dsn, copy_streams, swap_timeout, .. } => Arc::new(
            sinks::postgres::PostgresSink::new(
                sinks::postgres::PostgresTarget {
                    dsn: dsn.clone(),
                    table: table.clone(),
                    copy_streams: *copy_streams,
                    swap_timeout: *swap_timeout,
                },
                schema,
                mode,
                key,
                counter.clone(),
            )
            .with_evolution(evolution)
            .with_extras(extras),
        ),
        Target::Parquet { location, compression, .. } if extras.marker.is_some() => {
            return sinks::parquet_increment::write_increment(df, location, compression, &extras, counter).await;
        }
        Target::Parquet { location, single_file, compression } => {
            let rows = sinks::parquet::write(df, location, *single_file, compression, mode).await?;
            counter.add(rows);
            return Ok(rows);
        }
    };
    // The target is `INSERT INTO <sink> SELECT * FROM <model>`, planned and run by DataFusion.
    let table = sinks::SinkTable::new(sink, mode, target.label(&pipeline.project.config.project_dir));
    let sink_name = TableReference::bare("__dfpipe_sink");
    ctx.register_table(sink_name.clone(), Arc::new(table)).map_err(|e| df_message(&e))?;
    let op = if mode == Mode::Replace { InsertOp::Overwrite } else { InsertOp::Append };
    let written = df.write_table("__dfpipe_sink", DataFrameWriteOptions::new().with_insert_operation(op)).await;
    ctx.deregister_table(sink_name).map_err(|e| df_message(&e))?;
    written.map_err(|e| df_message(&e))?;
    Ok(counter.rows() - before)
}
