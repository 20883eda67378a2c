//! `dfpipe run`: one run per project at a time (the lock), recorded in the catalog from its
//! start. First what incremental outputs load ([`incremental`]: state read from the targets,
//! reconciled with the catalog, new files narrowed); then, before anything is written, schemas
//! (drift against the baselines, contracts) and error-level data tests; then the targets
//! ([`targets`]: each through `write`, an incremental one window by window through
//! `increments`, with [`openlineage`] events), the catalog records and the summary
//! ([`summary`]).

pub mod incremental;
mod increments;
pub mod openlineage;
mod summary;
pub mod targets;
mod write;

use std::io::IsTerminal;
use std::path::Path;

use crate::catalog::Catalog;
use crate::catalog::drift::{self, DriftReport};
use crate::catalog::lock::ProjectLock;
use crate::catalog::results::{RunResults, Status, TargetResult, write_results};
use crate::checks::{contracts, data_tests};
use crate::cli::{GlobalArgs, LogFormat, SelectArgs};
use crate::config::{self, LoadOptions, Policy, Target};
use crate::engine::observe;
use crate::engine::pipeline::Pipeline;
use crate::error::{EXIT_OK, Error, Result};
use crate::schema::Snapshot;
use crate::util::duckdb_file;

use incremental::IncrementalOptions;
pub use summary::summary;
pub use targets::{RunOptions, run};

/// Runs the selected outputs of the project in `project_dir`; returns the exit code, or the
/// error that stopped the run. Once the run is recorded as started, every way it ends —
/// an error, a refused check, Ctrl-C — is recorded in the catalog and `run_results.json`.
pub async fn command(
    project_dir: &Path,
    load: &LoadOptions,
    select: &SelectArgs,
    fail_fast: bool,
    incremental: &IncrementalOptions,
    global: &GlobalArgs,
) -> Result<u8> {
    let started_at = chrono::Utc::now();
    let config = config::load(project_dir, load)?;
    let (name, state_dir) = (config.name.clone(), config.state_dir.clone());
    // One run per project at a time; the catalog records it from its start.
    let lock = ProjectLock::acquire(&state_dir, "run")?;
    let catalog = Catalog::new(&state_dir);
    let finished = targets::Finished::default();
    let stopped = |e: Error, run_id: Option<i64>| {
        let mut results = RunResults::failed(&name, started_at, e.to_string());
        // Targets that finished before the run stopped (Ctrl-C) are reported with it.
        results.targets = finished.lock().map(|f| f.clone()).unwrap_or_default();
        let status = match &e {
            Error::Drift(_) => "drift",
            Error::Contract(_) => "contract",
            Error::Test(_) => "test",
            Error::State(_) => "state",
            Error::Interrupted => "interrupted",
            _ => "error",
        };
        let recorded = run_id.map(|id| catalog.finish_run(id, &results, Some(status), &[]));
        for outcome in [Some(write_results(&state_dir, &results)), recorded].into_iter().flatten() {
            if let Err(write_error) = outcome {
                tracing::warn!("{write_error}");
            }
        }
        e
    };
    let run_id = catalog.begin_run(&lock, &name, "run", started_at).map_err(|e| stopped(e, None))?;
    let outcome = tokio::select! {
        outcome = check_and_write(config, select, fail_fast, incremental, global, (&catalog, run_id), &finished) => outcome,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    };
    let (pipeline, results) = outcome.map_err(|e| stopped(e, Some(run_id)))?;
    if !global.quiet {
        crate::out!("{}", summary(&results));
    }
    // The targets are written; recording them is what is left.
    let schemas = target_schemas(&pipeline, &results).await;
    let recorded = match results.status {
        Status::Success => catalog.accept_run(run_id),
        _ => Ok(()),
    }
    .and_then(|()| catalog.finish_run(run_id, &results, None, &schemas));
    if let Err(e) = recorded {
        return Err(Error::Run(format!("the targets were written, but the run could not be recorded: {e}")));
    }
    let failed: Vec<&TargetResult> = results.targets.iter().filter(|t| t.status == Status::Error).collect();
    // Under JSON logs each was logged as it failed, with its model and target.
    for target in failed.iter().filter(|_| !crate::cli::logging::is_json()) {
        crate::errln!("error: {}", target.error.as_deref().unwrap_or("failed"));
    }
    if failed.is_empty() {
        Ok(EXIT_OK)
    } else {
        Err(Error::TargetsFailed { failed: failed.len(), total: results.targets.len() })
    }
}

/// Plans the run, checks the DuckDB files it writes are free, runs the checks, writes the
/// targets.
async fn check_and_write(
    config: config::Config,
    select: &SelectArgs,
    fail_fast: bool,
    incremental: &IncrementalOptions,
    global: &GlobalArgs,
    (catalog, run_id): (&Catalog, i64),
    finished: &targets::Finished,
) -> Result<(Pipeline, RunResults)> {
    let pipeline = super::prepare(config, select).await?;
    super::check_connections(&pipeline)?;
    pipeline.check_cluster().await?;
    warehouses_free(&pipeline)?;
    // Incremental outputs: state read and reconciled, new files narrowed, before any check
    // reads the sources (so checks see what the run loads).
    let increments = incremental::plan(&pipeline, catalog, Some(run_id), incremental).await?;
    let drift = checks(&pipeline, catalog, run_id, &increments).await?;
    let progress = !global.quiet && global.log_format == LogFormat::Text && std::io::stderr().is_terminal();
    let options = RunOptions {
        fail_fast,
        progress,
        evolutions: drift.evolutions(),
        increments,
        catalog: Some((catalog.clone(), run_id)),
        openlineage: match &pipeline.project.config.openlineage {
            Some(config) => Some(std::sync::Arc::new(openlineage::Emitter::new(&pipeline, config).await)),
            None => None,
        },
        finished: finished.clone(),
    };
    // Planned and checked: the code that took is not needed while the targets load (the
    // periodic release started in `main` lets go of what starting their plans touches).
    crate::memory::code_pages::release();
    let results = run(&pipeline, &options).await;
    Ok((pipeline, results?))
}

/// Before anything is computed: every DuckDB file the run writes can be opened for writing.
/// Another process holding one (an analyst's session) is named now, not after the work.
fn warehouses_free(pipeline: &Pipeline) -> Result<()> {
    let files: std::collections::BTreeSet<&Path> = pipeline
        .outputs
        .iter()
        .filter_map(|o| match &o.target {
            Target::DuckDb(t) if t.path.exists() => Some(t.path.as_path()),
            _ => None,
        })
        .collect();
    for file in files {
        duckdb_file::open(file, false, duckdb_file::lock_wait()).map_err(Error::Run)?;
    }
    Ok(())
}

/// What a run checks before it writes: schemas (drift, contracts), then data tests.
async fn checks(
    pipeline: &Pipeline,
    catalog: &Catalog,
    run_id: i64,
    increments: &[Option<incremental::Increment>],
) -> Result<DriftReport> {
    let drift = preflight(pipeline, catalog, run_id).await?;
    // Data tests cover what the run writes: not the inputs of an incremental output with nothing
    // new (a `row_count` on a source narrowed to no new files would fail on an empty input).
    let writes: Vec<bool> = (0..pipeline.outputs.len())
        .map(|i| !increments.get(i).and_then(Option::as_ref).is_some_and(incremental::Increment::is_empty))
        .collect();
    let relations = pipeline.relations_read_by(&writes);
    let results = data_tests::run(pipeline, &relations, true).await?;
    catalog.record_tests(run_id, &results)?;
    for r in results.iter().filter(|r| r.outcome == data_tests::Outcome::Warn) {
        tracing::warn!(relation = %r.relation, "data test {} failed: {}", r.test, r.message.as_deref().unwrap_or(""));
    }
    match data_tests::failed(&results) {
        Some(e) => Err(e),
        None => Ok(drift),
    }
}

/// Everything checked before a run writes: records the files and schemas the run sees in run
/// `run_id` (they become baselines when the run succeeds), reports drift by policy, enforces
/// contracts. An error stops the run before anything is written; otherwise the report says what
/// drifted.
async fn preflight(pipeline: &Pipeline, catalog: &Catalog, run_id: i64) -> Result<DriftReport> {
    let observed = observe::observe(pipeline).await?;
    let schemas: Vec<_> = observed.iter().map(|o| (o.kind, o.name.clone(), o.snapshot.clone())).collect();
    catalog.record_schemas(run_id, &schemas, false)?;
    catalog.record_files(run_id, &observe::source_files(pipeline).await?)?;
    let report = drift::check(catalog, &observed)?;
    for finding in &report.findings {
        let o = &finding.observed;
        catalog.record_drift(run_id, o.kind, &o.name, &finding.changes, o.policy, !finding.refused.is_empty())?;
        let text = finding.describe();
        match o.policy {
            _ if !finding.refused.is_empty() => {}
            Policy::Warn => tracing::warn!(name = %o.name, "{}", text.trim_end()),
            Policy::Evolve => tracing::info!(name = %o.name, "{}", text.trim_end()),
            Policy::Fail | Policy::Ignore => tracing::debug!(name = %o.name, "{}", text.trim_end()),
        }
    }
    if report.refused() {
        let refused: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| !f.refused.is_empty())
            .map(|f| f.observed.name.as_str())
            .filter(|name| pipeline.outputs.iter().any(|o| o.incremental.is_some() && o.model == *name))
            .collect();
        return match (report.error(), refused.is_empty()) {
            (Error::Drift(text), false) => Err(Error::Drift(format!(
                "{text}\nincremental outputs keep the rows loaded before, which have the old columns: after \
                 accepting the change, rebuild them with `dfpipe run --full-refresh -s {}`",
                refused.join(" -s ")
            ))),
            (e, _) => Err(e),
        };
    }
    contracts::check(pipeline, &observed).await?;
    Ok(report)
}

/// The schema each written target received (its model's), by target label.
async fn target_schemas(pipeline: &Pipeline, results: &RunResults) -> Vec<(String, Snapshot)> {
    let mut out = Vec::new();
    for t in results.targets.iter().filter(|t| t.status == Status::Success) {
        if let Ok(snapshot) = observe::schema_of(pipeline, &t.model).await {
            out.push((t.target.clone(), snapshot));
        }
    }
    out
}
