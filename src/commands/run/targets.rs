//! Writing the targets: each selected output, one after another in dependency order, under its
//! memory strategy, through its sink (`write`; an incremental one window by window,
//! `increments`), with OpenLineage events around it; then `run_results.json` in the
//! state directory.

use std::time::Instant;

use super::incremental::Increment;
use super::write::{Frame, Written, write_output};
use crate::catalog::Catalog;
use crate::catalog::results::{RunResults, Status, TargetResult, write_results};
use crate::config::{OutputConfig, Policy, Strategy};
use crate::engine::pipeline::Pipeline;
use crate::error::{Error, Result, df_message};
use crate::memory::estimate::Estimate;
use crate::memory::peak_rss;
use crate::memory::strategy::{Decision, out_of_memory_hint};
use crate::schema::Evolution;
use crate::sinks::marker::LoadExtras;
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
    /// Each target's result as it finishes, for a run stopped before the rest (Ctrl-C): the
    /// targets that committed are still reported.
    pub finished: Finished,
}

/// The results of the targets finished so far, shared with whoever reports a stopped run.
pub type Finished = std::sync::Arc<std::sync::Mutex<Vec<TargetResult>>>;

/// A target being written: reported among the [`Finished`] if the run stops before it is done
/// (Ctrl-C drops the future writing it), with the rows of the loads it committed (an
/// incremental output's windows commit one by one; any other target commits nothing until it
/// is done).
struct Unfinished<'a> {
    finished: &'a Finished,
    counter: &'a RowCounter,
    /// What to report; None once the target is done.
    result: Option<TargetResult>,
    begun: Instant,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        let Some(mut result) = self.result.take() else { return };
        result.rows = self.counter.committed();
        result.seconds = self.begun.elapsed().as_secs_f64();
        result.peak_rss_bytes = peak_rss();
        result.error = Some(match result.rows {
            0 => "interrupted: nothing of it was committed; it keeps its previous contents".to_string(),
            rows => format!("interrupted: the {rows} rows its loads committed before stay; the rest was not committed"),
        });
        if let Ok(mut finished) = self.finished.lock() {
            finished.push(result);
        }
    }
}

/// Before anything runs on a cluster: every output's query can travel there (a plan reading
/// something only this process holds cannot), named if not.
async fn preflight_cluster(pipeline: &Pipeline, cluster: &crate::engine::cluster::Cluster) -> Result<()> {
    let remote = cluster.session(&pipeline.ctx)?;
    for output in &pipeline.outputs {
        let df = pipeline.ctx.table(output.model.as_str()).await.map_err(|e| Error::Run(df_message(&e)))?;
        cluster.check_plan(&remote, &df).map_err(|e| Error::Run(format!("model `{}`: {e}", output.model)))?;
    }
    Ok(())
}

/// Each output's estimate and memory decision, logged.
async fn decide_all(pipeline: &Pipeline) -> Result<(Vec<Estimate>, Vec<Decision>)> {
    let (mut estimates, mut decisions) = (Vec::new(), Vec::new());
    for output in &pipeline.outputs {
        let (estimate, decision) = pipeline.decide(output).await?;
        log_decision(output, &estimate, &decision, 0);
        estimates.push(estimate);
        decisions.push(decision);
    }
    Ok((estimates, decisions))
}

fn log_decision(output: &OutputConfig, estimate: &Estimate, decision: &Decision, held: u64) {
    tracing::info!(
        model = %output.model,
        estimate = %human_bytes(estimate.bytes),
        budget = %human_bytes(decision.budget),
        ratio = decision.ratio,
        strategy = decision.strategy.name(),
        held = %human_bytes(held),
        "memory strategy: {}",
        decision.reason
    );
}

/// Writes `output` under `decision` (a fresh session with its settings); what was written, or
/// why not.
async fn write_target(
    pipeline: &Pipeline,
    options: &RunOptions,
    output: &OutputConfig,
    decision: &Decision,
    increment: &Option<Increment>,
    counter: &RowCounter,
) -> std::result::Result<Written, String> {
    match decision.settings.session(&pipeline.ctx, &pipeline.project.config.datafusion) {
        Ok(ctx) => {
            let policy = output.on_schema_change.unwrap_or(pipeline.project.config.on_schema_change);
            let evolution = match policy {
                Policy::Evolve => options.evolutions.get(&output.model).cloned().unwrap_or_default().to_table(),
                _ => Evolution::default(),
            };
            match &increment {
                None => {
                    let plain = Frame {
                        relation: output.model.clone(),
                        mode: output.mode,
                        extras: LoadExtras::default(),
                        computed: false,
                    };
                    write_output(pipeline, &ctx, decision, output, plain, evolution, counter).await
                }
                Some(inc) if inc.is_empty() => Ok(Written::default()),
                Some(inc) => {
                    let catalog = options.catalog.as_ref();
                    super::increments::write(pipeline, &ctx, decision, output, inc, evolution, counter, catalog).await
                }
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Runs every output of `pipeline`.
pub async fn run(pipeline: &Pipeline, options: &RunOptions) -> Result<RunResults> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let mut targets = Vec::with_capacity(pipeline.outputs.len());
    let (estimates, mut decisions) = decide_all(pipeline).await?;
    if let Some(cluster) = &pipeline.cluster {
        preflight_cluster(pipeline, cluster).await?;
    } else {
        // Models several in-memory outputs read are computed once, here (on a cluster every
        // output's query runs there whole), in at most half the smallest of their pools; the
        // targets are then decided again with what is left.
        let strategies: Vec<Strategy> = decisions.iter().map(|d| d.strategy).collect();
        let cap = decisions
            .iter()
            .filter(|d| d.strategy == Strategy::InMemory)
            .map(|d| d.settings.pool_bytes.unwrap_or(d.budget))
            .min()
            .unwrap_or(0)
            / 2;
        let held = pipeline.materialize(&pipeline.shared_in_memory(&strategies), cap).await?;
        if held > 0 {
            for (i, output) in pipeline.outputs.iter().enumerate() {
                // The process as it was before: what computing the copy left the allocator
                // holding is not the copy (which `held` counts).
                let process = decisions[i].accounting.as_ref().map_or(0, |a| a.process);
                decisions[i] = pipeline.decide_from(output, &estimates[i], process, held)?;
                log_decision(output, &estimates[i], &decisions[i], held);
            }
        }
    }
    let mut stop = false;
    for (i, (output, decision)) in pipeline.outputs.iter().zip(&decisions).enumerate() {
        let increment = options.increments.get(i).cloned().flatten();
        let label = output.target.label(&pipeline.project.config.project_dir);
        let not_written = |status| TargetResult {
            model: output.model.clone(),
            target: label.clone(),
            mode: output.mode,
            status,
            rows: 0,
            quarantined: 0,
            dropped: 0,
            seconds: 0.0,
            peak_rss_bytes: None,
            strategy: Some(decision.strategy),
            estimate_bytes: Some(decision.estimate),
            error: None,
            incremental: increment.as_ref().map(Increment::describe),
            cluster: None,
        };
        if stop {
            targets.push(TargetResult { incremental: None, ..not_written(Status::Skipped) });
            continue;
        }
        let counter = if options.progress { RowCounter::with_bar(&label) } else { RowCounter::hidden() };
        tracing::debug!(model = %output.model, target = %label, "writing");
        if let Some(emitter) = &options.openlineage {
            emitter.start(pipeline, output).await;
        }
        let begun = Instant::now();
        let mut unfinished = Unfinished {
            finished: &options.finished,
            counter: &counter,
            result: Some(not_written(Status::Error)),
            begun,
        };
        let mut outcome = write_target(pipeline, options, output, decision, &increment, &counter).await;
        // An in_memory strategy dfpipe chose from an estimate that proved short: nothing was
        // committed, so the target runs again under spill, which holds to the same pool. (Not
        // where part of the work may have committed: an increment's loads, a quarantine written
        // after its target.)
        let fallback = match &outcome {
            Err(message)
                if increment.is_none()
                    && output.on_invalid != crate::config::OnInvalid::Quarantine
                    && decision.strategy == Strategy::InMemory
                    && pipeline.project.config.memory.strategy.is_none()
                    && decision.settings.pool_bytes.is_some()
                    && out_of_memory_hint(message, &decision.settings).is_some() =>
            {
                Some(pipeline.spilling(decision))
            }
            _ => None,
        };
        if let Some(spilling) = &fallback {
            tracing::warn!(
                model = %output.model,
                target = %label,
                "in_memory ran out of its {} pool (the estimate was short); running the target again under spill",
                human_bytes(decision.settings.pool_bytes.unwrap_or(0))
            );
            counter.restart();
            outcome = write_target(pipeline, options, output, spilling, &increment, &counter).await;
        }
        unfinished.result = None;
        let decision = fallback.as_ref().unwrap_or(decision);
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
                    && let Some(bad) = crate::engine::diagnose::unreadable_file(pipeline, &output.model).await
                {
                    // The file's own line replaces Arrow's count within a piece of the file.
                    let unplaced = |m: &str| match bad.placed {
                        true => crate::engine::diagnose::without_csv_position(m),
                        false => m.to_string(),
                    };
                    message = unplaced(&message);
                    let bad_error = unplaced(&bad.error);
                    let dir = pipeline.project.config.project_dir.to_string_lossy().into_owned();
                    let local = bad.file.strip_prefix("file://").unwrap_or(&bad.file);
                    let shown = local.strip_prefix(&format!("{dir}/")).unwrap_or(local);
                    let error = if message.contains(&bad_error) { String::new() } else { format!(": {bad_error}") };
                    let detail = bad.detail.map(|d| format!("; {d}")).unwrap_or_default();
                    message.push_str(&format!(
                        "\n  in file {shown} (source `{}`){error}{detail}; fix or remove that file and run again",
                        bad.source
                    ));
                }
                // An incremental output's windows commit one by one: those before the failure stay.
                let committed = counter.committed();
                if committed > 0 {
                    message.push_str(&format!(
                        "\n  the {} rows its loads committed before the failure stay; the next run goes on from there",
                        group_digits(committed)
                    ));
                }
                let message = format!("{label} (model `{}`): {message}", output.model);
                if crate::cli::logging::logs_target_errors() {
                    tracing::error!(model = %output.model, target = %label, "{message}");
                }
                stop = options.fail_fast;
                (Status::Error, Written { rows: committed, ..Written::default() }, Some(message))
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
            cluster: written.cluster.clone(),
        });
        if let (Ok(mut finished), Some(result)) = (options.finished.lock(), targets.last()) {
            finished.push(result.clone());
        }
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
        error: failed.then(|| {
            let failed = targets.iter().filter(|t| t.status == Status::Error).count();
            Error::TargetsFailed { failed, total: targets.len() }.to_string()
        }),
        targets,
    };
    write_results(&pipeline.project.config.state_dir, &results)?;
    Ok(results)
}
