//! `dfpipe plan`: the DAG, the memory settings in force, and each target's optimized
//! DataFusion logical plan. Nothing is written.

use std::fmt::Write;

use datafusion::common::TableReference;

use super::prepare;
use super::run::incremental::{self, Increment, IncrementalOptions};
use crate::cli::SelectArgs;
use crate::config::{Config, Target};
use crate::engine::pipeline::Pipeline;
use crate::error::{EXIT_OK, Error, Result, df_message};
use crate::util::fmt::human_bytes;

/// `dfpipe plan`: prepares the selected outputs (checking everything `run` checks) and prints
/// their plans.
pub async fn command(config: Config, select: &SelectArgs) -> Result<u8> {
    let catalog = crate::catalog::Catalog::new(&config.state_dir);
    let pipeline = prepare(config, select).await?;
    super::check_connections(&pipeline)?;
    pipeline.check_cluster().await?;
    // What incremental outputs would load now (the catalog is only read).
    let increments = incremental::plan(&pipeline, &catalog, None, &IncrementalOptions::default()).await?;
    crate::out!("{}", render(&pipeline, &increments).await?);
    Ok(EXIT_OK)
}

/// Renders the plan of every selected output (`increments`: what each incremental one loads).
pub async fn render(pipeline: &Pipeline, increments: &[Option<Increment>]) -> Result<String> {
    let project = &pipeline.project;
    let config = &project.config;
    let mut out = String::new();
    let _ = writeln!(out, "project {} ({})", config.name, config.file.display());
    let _ = writeln!(out, "\nmodels, in dependency order:");
    for name in &project.order {
        let model = &project.models[name];
        let mut reads: Vec<String> = model.source_deps.iter().map(|s| format!("source {s}")).collect();
        reads.extend(model.model_deps.iter().map(|m| format!("model {m}")));
        let _ = writeln!(
            out,
            "  {name} ({}) <- {}",
            model.file.display(),
            if reads.is_empty() { "nothing".to_string() } else { reads.join(", ") }
        );
    }
    if !config.params.is_empty() {
        let _ = writeln!(out, "\nparameters, bound into the plans below as literals:");
        for (name, param) in &config.params {
            let typed = param.sql_type.as_ref().map_or_else(String::new, |t| format!(" as {t}"));
            let _ = writeln!(out, "  ${name} = {}{typed} ({})", param.value, param.source(name));
        }
    }
    if !pipeline.cleaned.is_empty() {
        let _ = writeln!(out, "\nsources cleaned (clean:), as models read them:");
        for (name, sql) in &pipeline.cleaned {
            let _ = writeln!(out, "  {name} = {sql}");
        }
    }
    let _ = writeln!(out, "\nmemory:");
    for line in pipeline.budget.describe() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "  strategy thresholds: in_memory when estimate / budget ≤ {}, stream above {}, else spill{}",
        config.memory.in_memory_below,
        config.memory.stream_above,
        config.memory.strategy.map_or_else(String::new, |s| format!(" (forced: {})", s.name()))
    );
    if pipeline.outputs.is_empty() {
        let _ = writeln!(out, "\nno targets selected");
    }
    for (i, output) in pipeline.outputs.iter().enumerate() {
        let label = output.target.label(&config.project_dir);
        let _ = writeln!(out, "\ntarget {label} <- model {} (mode {})", output.model, output.mode.name());
        if let Some(Some(increment)) = increments.get(i) {
            let _ = writeln!(
                out,
                "  incremental (by: {}): a run now loads {}",
                increment.load_kind(),
                increment.describe()
            );
        }
        let (estimate, decision) = pipeline.decide(output).await?;
        for line in estimate.describe() {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(
            out,
            "  budget: {}; estimate / budget = {:.2} → strategy {} ({})",
            human_bytes(decision.budget),
            decision.ratio,
            decision.strategy.name(),
            decision.reason
        );
        if let Some(accounting) = &decision.accounting {
            let _ = writeln!(out, "  memory: {}", accounting.describe());
        }
        let _ = writeln!(out, "  datafusion: {}", decision.settings.describe());
        let _ = writeln!(out, "  plan:");
        let df = pipeline
            .ctx
            .table(TableReference::bare(output.model.as_str()))
            .await
            .map_err(|e| Error::Project(format!("model `{}`: {}", output.model, df_message(&e))))?;
        let plan = df
            .clone()
            .into_optimized_plan()
            .map_err(|e| Error::Project(format!("model `{}`: {}", output.model, df_message(&e))))?;
        for line in plan.display_indent().to_string().lines() {
            let _ = writeln!(out, "    {line}");
        }
        if let Target::DuckDb(_) = &output.target {
            for note in crate::sinks::duckdb::wide_decimal_notes(df.schema().as_arrow()) {
                let _ = writeln!(out, "  note: {note}");
            }
        }
        if let Some(cluster) = &pipeline.cluster {
            // The scheduler's own cut of the query into stages, as a run would submit it.
            let remote = cluster.session(&pipeline.ctx)?;
            let fail = |e: String| Error::Run(format!("model `{}` on the cluster {}: {e}", output.model, cluster.url));
            cluster.check_plan(&remote, &df).map_err(fail)?;
            let stages = cluster.explain(&remote, df.clone()).await.map_err(fail)?;
            let _ = writeln!(out, "  distributed plan (stages cut by the scheduler at {}):", cluster.url);
            for line in stages.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    Ok(out)
}
