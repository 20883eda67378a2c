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

use crate::catalog::results::{RunResults, Status, TargetResult, write_results};
use crate::checks::quarantine::{RowFilter, quarantine_target};
use crate::checks::split;
use crate::config::{Mode, OnInvalid, OutputConfig, Policy, Strategy, Target};
use crate::engine::pipeline::Pipeline;
use crate::error::{Result, df_message};
use crate::memory::peak_rss;
use crate::memory::strategy::{Decision, out_of_memory_hint};
use crate::schema::Evolution;
use crate::sinks;
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
    for (output, decision) in pipeline.outputs.iter().zip(&decisions) {
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
            });
            continue;
        }
        let counter = if options.progress { RowCounter::with_bar(&label) } else { RowCounter::hidden() };
        tracing::debug!(model = %output.model, target = %label, "writing");
        let begun = Instant::now();
        let outcome = match decision.settings.session(&pipeline.ctx, &pipeline.project.config.datafusion) {
            Ok(ctx) => {
                let policy = output.on_schema_change.unwrap_or(pipeline.project.config.on_schema_change);
                let evolution = match policy {
                    Policy::Evolve => options.evolutions.get(&output.model).cloned().unwrap_or_default(),
                    _ => Evolution::default(),
                };
                write_output(pipeline, &ctx, decision, output, evolution, &counter).await
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
                let message = match out_of_memory_hint(&message, &decision.settings) {
                    Some(hint) => format!("{hint}: {message}"),
                    None => message,
                };
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
        });
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
    evolution: Evolution,
    counter: &RowCounter,
) -> std::result::Result<Written, String> {
    let model = output.model.as_str();
    let filter = match output.on_invalid {
        OnInvalid::Fail => RowFilter::default(),
        OnInvalid::Drop | OnInvalid::Quarantine => RowFilter::for_model(&pipeline.project.config.tests, model),
    };
    let spec = WriteSpec { mode: output.mode, unique_key: output.unique_key.clone(), evolution };
    if filter.is_empty() {
        let df = ctx.table(TableReference::bare(model)).await.map_err(|e| df_message(&e))?;
        let rows = write_frame(pipeline, ctx, decision, df, &output.target, spec, counter).await?;
        return Ok(Written { rows, ..Written::default() });
    }
    let quarantine = output.on_invalid == OnInvalid::Quarantine;
    let state_dir = &pipeline.project.config.state_dir;
    let spill = quarantine.then(|| state_dir.join(format!("quarantine-{model}-{}.arrow", std::process::id())));
    if spill.is_some() {
        std::fs::create_dir_all(state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    }
    let annotated = ctx.sql(&filter.annotated_sql(model)).await.map_err(|e| df_message(&e))?;
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
        let plain = WriteSpec { mode: Mode::Replace, unique_key: vec![], evolution: Evolution::default() };
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

/// How a frame is written: mode, merge key, and the schema evolution to apply.
struct WriteSpec {
    mode: Mode,
    unique_key: Vec<String>,
    evolution: Evolution,
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
    let WriteSpec { mode, unique_key: key, evolution } = spec;
    let sink: Arc<dyn DataSink> = match target {
        Target::DuckDb(target) => {
            // DuckDB's buffers live outside DataFusion's pool: a quarter of the budget when it is bounded.
            let limit = decision.settings.pool_bytes.map(|b| b / 4);
            Arc::new(
                sinks::duckdb::DuckDbSink::new(target.clone(), schema, mode, key, counter.clone())
                    .with_memory_limit(limit)
                    .with_evolution(evolution),
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
            .with_evolution(evolution),
        ),
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
    Ok(counter.rows())
}
