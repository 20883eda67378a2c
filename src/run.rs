//! `dfpipe run`: writes each selected output, one after another in dependency order, then
//! reports a summary and writes `run_results.json` to the state directory.

use std::sync::Arc;
use std::time::Instant;

use datafusion::common::TableReference;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::sink::DataSink;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::{DataFrame, SessionContext};
use serde::Serialize;

use crate::config::{Mode, OnInvalid, OutputConfig, Policy, Target};
use crate::drift::Evolution;
use crate::error::{Error, Result, df_message};
use crate::memory::{human_bytes, peak_rss};
use crate::pipeline::Pipeline;
use crate::progress::RowCounter;
use crate::quarantine::{RowFilter, quarantine_target};
use crate::sinks;
use crate::strategy::{Decision, Strategy, out_of_memory_hint};

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

/// What happened to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written and committed.
    Success,
    /// Failed; the target keeps its previous contents.
    Error,
    /// Not attempted because an earlier target failed under `--fail-fast`.
    Skipped,
}

/// One target's outcome, as written to `run_results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    /// The model written.
    pub model: String,
    /// The target, e.g. `warehouse.daily_revenue` (never holds secrets).
    pub target: String,
    /// `replace`, `append` or `merge`.
    pub mode: Mode,
    /// The outcome.
    pub status: Status,
    /// Rows written.
    pub rows: u64,
    /// Rows failing the model's row-level tests sent to the quarantine (`on_invalid: quarantine`).
    pub quarantined: u64,
    /// Rows failing them left out (`on_invalid: drop`).
    pub dropped: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak RSS of the process when the target finished, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// The memory strategy it ran with.
    pub strategy: Option<Strategy>,
    /// The estimated decoded bytes it read.
    pub estimate_bytes: Option<u64>,
    /// The error, for a failed target.
    pub error: Option<String>,
}

/// The whole run, as written to `run_results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunResults {
    /// The dfpipe version.
    pub dfpipe_version: &'static str,
    /// The project's name.
    pub project: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub finished_at: String,
    /// Wall-clock seconds.
    pub elapsed_seconds: f64,
    /// `success` when every target succeeded, else `error`.
    pub status: Status,
    /// The memory budget the run had.
    pub memory_budget_bytes: u64,
    /// Peak RSS of the whole run.
    pub peak_rss_bytes: Option<u64>,
    /// One entry per target, in the order they ran.
    pub targets: Vec<TargetResult>,
    /// Why the run stopped before any target ran (config, SQL or source errors).
    pub error: Option<String>,
}

impl RunResults {
    /// The results of a command that wrote no target and succeeded (`schema accept`).
    pub fn finished_without_targets(project: &str, started_at: chrono::DateTime<chrono::Utc>) -> RunResults {
        RunResults {
            status: Status::Success,
            error: None,
            ..Self::failed_before_start(project, started_at, String::new())
        }
    }

    /// The results of a run that failed before any target ran.
    pub fn failed_before_start(project: &str, started_at: chrono::DateTime<chrono::Utc>, error: String) -> RunResults {
        let now = chrono::Utc::now();
        RunResults {
            dfpipe_version: env!("CARGO_PKG_VERSION"),
            project: project.to_string(),
            started_at: started_at.to_rfc3339(),
            finished_at: now.to_rfc3339(),
            elapsed_seconds: (now - started_at).num_milliseconds() as f64 / 1000.0,
            status: Status::Error,
            memory_budget_bytes: 0,
            peak_rss_bytes: peak_rss(),
            targets: vec![],
            error: Some(error),
        }
    }
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
/// or `quarantine`, only the rows passing the model's row-level tests, the others counted (and
/// quarantined first, so a failed quarantine leaves the target untouched).
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
    let mut written = Written::default();
    let df = if filter.is_empty() {
        ctx.table(TableReference::bare(model)).await.map_err(|e| df_message(&e))?
    } else {
        if output.on_invalid == OnInvalid::Quarantine {
            let rejects = ctx.sql(&filter.quarantine_sql(model)).await.map_err(|e| df_message(&e))?;
            let target = quarantine_target(&output.target);
            let label = target.label(&pipeline.project.config.project_dir);
            let rejected = RowCounter::hidden();
            let plain = WriteSpec { mode: Mode::Replace, unique_key: vec![], evolution: Evolution::default() };
            write_frame(pipeline, ctx, decision, rejects, &target, plain, &rejected)
                .await
                .map_err(|e| format!("quarantine {label}: {e}"))?;
            written.quarantined = rejected.rows();
        } else {
            written.dropped =
                crate::quality::scalar_u64(ctx, &filter.count_invalid_sql(model)).await.map_err(|e| df_message(&e))?;
        }
        ctx.sql(&filter.valid_sql(model)).await.map_err(|e| df_message(&e))?
    };
    let spec = WriteSpec { mode: output.mode, unique_key: output.unique_key.clone(), evolution };
    written.rows = write_frame(pipeline, ctx, decision, df, &output.target, spec, counter).await?;
    Ok(written)
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
        Target::Postgres { table, dsn, copy_streams, .. } => Arc::new(
            sinks::postgres::PostgresSink::new(
                sinks::postgres::PostgresTarget { dsn: dsn.clone(), table: table.clone(), copy_streams: *copy_streams },
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

/// Writes `run_results.json` into the state directory `dir` (atomically: write, then rename).
pub fn write_results(dir: &std::path::Path, results: &RunResults) -> Result<()> {
    let path = dir.join("run_results.json");
    let fail = |e: std::io::Error| Error::Run(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let json = serde_json::to_string_pretty(results).expect("results serialize");
    let tmp = dir.join(".run_results.json.tmp");
    std::fs::write(&tmp, json).map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)
}

/// The summary table printed after a run.
pub fn summary(results: &RunResults) -> String {
    let header = [
        "target", "model", "mode", "status", "strategy", "rows", "rejected", "seconds", "rows/s", "estimate",
        "peak RSS",
    ];
    let mut rows: Vec<Vec<String>> = results
        .targets
        .iter()
        .map(|t| {
            vec![
                t.target.clone(),
                t.model.clone(),
                t.mode.name().to_string(),
                match t.status {
                    Status::Success => "ok",
                    Status::Error => "ERROR",
                    Status::Skipped => "skipped",
                }
                .to_string(),
                t.strategy.map_or("-", Strategy::name).to_string(),
                group_digits(t.rows),
                match (t.quarantined, t.dropped) {
                    (0, 0) => "-".to_string(),
                    (q, 0) => format!("{} quarantined", group_digits(q)),
                    (0, d) => format!("{} dropped", group_digits(d)),
                    (q, d) => format!("{} quarantined, {} dropped", group_digits(q), group_digits(d)),
                },
                format!("{:.2}", t.seconds),
                if t.seconds > 0.0 && t.status == Status::Success {
                    group_digits((t.rows as f64 / t.seconds) as u64)
                } else {
                    "-".into()
                },
                t.estimate_bytes.map_or_else(|| "-".into(), human_bytes),
                t.peak_rss_bytes.map_or_else(|| "-".into(), human_bytes),
            ]
        })
        .collect();
    rows.insert(0, header.map(String::from).to_vec());
    // Figures (from `rows` on) align right.
    let mut out = table(&rows, 5);
    let ok = results.targets.iter().filter(|t| t.status == Status::Success).count();
    let rows_total: u64 = results.targets.iter().map(|t| t.rows).sum();
    let rejected: u64 = results.targets.iter().map(|t| t.quarantined + t.dropped).sum();
    out.push_str(&format!(
        "{ok} of {} targets written, {} rows{} in {:.2}s, peak RSS {}\n",
        results.targets.len(),
        group_digits(rows_total),
        if rejected > 0 { format!(" ({} rejected by row-level tests)", group_digits(rejected)) } else { String::new() },
        results.elapsed_seconds,
        results.peak_rss_bytes.map_or_else(|| "-".into(), human_bytes)
    ));
    out
}

/// Rows of cells as aligned columns two spaces apart; columns from `right_from` on align
/// right (figures), the others left.
pub fn table(rows: &[Vec<String>], right_from: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| if i >= right_from { format!("{c:>w$}") } else { format!("{c:<w$}") })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `1234567` → `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1234567), "1,234,567");
    }
}
