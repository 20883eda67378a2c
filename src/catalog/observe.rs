//! What a run sees before it writes anything: the schema of every source and model it reads,
//! the files behind each source, the drift against the catalog's baselines (judged by each
//! relation's `on_schema_change` policy), and the declared column contracts.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::physical_plan::ExecutionPlan;

use super::{Catalog, FileIdentity, Kind};
use crate::config::ColumnContract;
use crate::drift::{Change, Policy, Snapshot, diff, logical_type};
use crate::error::{Error, Result, df_message};
use crate::pipeline::Pipeline;
use crate::sinks::quote;

/// A source or model as the run sees it.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Source or model.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Its columns now.
    pub snapshot: Snapshot,
    /// Its `on_schema_change` policy.
    pub policy: Policy,
    /// How messages name it: ``source `orders` (data/orders.csv)``, ``model `daily` (sql/daily.sql)``.
    pub label: String,
}

/// The schemas of the sources and models the selected outputs read, sources first.
pub async fn observe(pipeline: &Pipeline) -> Result<Vec<Observed>> {
    let config = &pipeline.project.config;
    let rel = |p: &std::path::Path| p.strip_prefix(&config.project_dir).unwrap_or(p).display().to_string();
    let mut observed = Vec::new();
    for name in pipeline.needed_sources() {
        let source = &config.sources[&name];
        observed.push(Observed {
            kind: Kind::Source,
            snapshot: schema_of(pipeline, &name).await?,
            policy: source.on_schema_change.unwrap_or(config.on_schema_change),
            label: format!("source `{name}` ({})", source.path),
            name,
        });
    }
    for name in pipeline.needed_models() {
        // A model takes the strictest policy of the outputs writing it, else the project's.
        let policy = pipeline
            .outputs
            .iter()
            .filter(|o| o.model == name)
            .map(|o| o.on_schema_change.unwrap_or(config.on_schema_change))
            .min_by_key(|p| strictness(*p))
            .unwrap_or(config.on_schema_change);
        observed.push(Observed {
            kind: Kind::Model,
            snapshot: schema_of(pipeline, &name).await?,
            policy,
            label: format!("model `{name}` ({})", rel(&pipeline.project.models[&name].file)),
            name,
        });
    }
    Ok(observed)
}

/// Lower is stricter.
fn strictness(policy: Policy) -> u8 {
    match policy {
        Policy::Fail => 0,
        Policy::Evolve => 1,
        Policy::Warn => 2,
        Policy::Ignore => 3,
    }
}

async fn schema_of(pipeline: &Pipeline, name: &str) -> Result<Snapshot> {
    let df = pipeline
        .ctx
        .table(TableReference::bare(name))
        .await
        .map_err(|e| Error::Project(format!("`{name}`: {}", df_message(&e))))?;
    Ok(Snapshot::of(df.schema().as_arrow()))
}

/// The files each needed source reads (after listing), from its scan plan.
pub async fn source_files(pipeline: &Pipeline) -> Result<Vec<(String, Vec<FileIdentity>)>> {
    let mut out = Vec::new();
    for name in pipeline.needed_sources() {
        let fail =
            |e: datafusion::error::DataFusionError| Error::Source(format!("source `{name}`: {}", df_message(&e)));
        let df = pipeline.ctx.table(TableReference::bare(name.as_str())).await.map_err(fail)?;
        let plan: Arc<dyn ExecutionPlan> = df.create_physical_plan().await.map_err(fail)?;
        let mut scans = Vec::new();
        crate::estimate::collect_scans(&plan, &mut scans);
        let mut files: BTreeMap<String, FileIdentity> = BTreeMap::new();
        for scan in &scans {
            for file in scan.file_groups.iter().flat_map(|g| g.files()) {
                let meta = &file.object_meta;
                let path = format!("{}{}", scan.object_store_url.as_str(), meta.location);
                files.entry(path.clone()).or_insert(FileIdentity {
                    path,
                    size: meta.size,
                    modified: meta.last_modified.to_rfc3339(),
                    etag: meta.e_tag.clone(),
                });
            }
        }
        out.push((name, files.into_values().collect()));
    }
    Ok(out)
}

/// Drift found in one relation.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The relation.
    pub observed: Observed,
    /// The run whose accepted schema it was compared with.
    pub baseline_run: i64,
    /// Every change.
    pub changes: Vec<Change>,
    /// The changes its policy refuses.
    pub refused: Vec<Change>,
}

impl Finding {
    /// A readable diff: a heading naming the relation, one line per change.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{}: schema changed since run #{} (on_schema_change: {}):\n",
            self.observed.label,
            self.baseline_run,
            self.observed.policy.name()
        );
        for change in &self.changes {
            let refused = self.refused.contains(change);
            out.push_str(&format!("    {}{}\n", change.describe(), if refused { "   ← refused" } else { "" }));
        }
        out
    }
}

/// The drift of every observed relation against its baseline.
#[derive(Debug, Clone, Default)]
pub struct DriftReport {
    /// Relations whose schema changed.
    pub findings: Vec<Finding>,
}

impl DriftReport {
    /// Each drifted model's allowed changes, as target tables under `evolve` apply them.
    pub fn evolutions(&self) -> BTreeMap<String, crate::drift::Evolution> {
        self.findings
            .iter()
            .filter(|f| f.observed.kind == Kind::Model)
            .map(|f| (f.observed.name.clone(), crate::drift::Evolution::of(&f.changes)))
            .collect()
    }

    /// Whether any policy refused a change: the run must stop before writing.
    pub fn refused(&self) -> bool {
        self.findings.iter().any(|f| !f.refused.is_empty())
    }

    /// The error for a refused drift: every refused relation's diff and what to do.
    pub fn error(&self) -> Error {
        let mut text = String::from("schema drift: nothing was written\n");
        for f in self.findings.iter().filter(|f| !f.refused.is_empty()) {
            text.push_str(&format!("  {}", f.describe()));
        }
        let names: Vec<&str> =
            self.findings.iter().filter(|f| !f.refused.is_empty()).map(|f| f.observed.name.as_str()).collect();
        text.push_str(&format!(
            "if the change is intended, accept the new schema with `dfpipe schema accept {}`, or set \
             on_schema_change (fail | warn | evolve | ignore) on the source or output",
            names.join(" ")
        ));
        Error::Drift(text)
    }
}

/// Compares each observed schema with its accepted baseline.
pub fn check(catalog: &Catalog, observed: &[Observed]) -> Result<DriftReport> {
    let mut report = DriftReport::default();
    let relations: Vec<(Kind, &str)> = observed.iter().map(|o| (o.kind, o.name.as_str())).collect();
    for (o, baseline) in observed.iter().zip(catalog.baselines(&relations)?) {
        let Some(baseline) = baseline else { continue };
        let changes = diff(&baseline.snapshot, &o.snapshot);
        if changes.is_empty() {
            continue;
        }
        let refused = o.policy.refused(&changes).into_iter().cloned().collect();
        report.findings.push(Finding { observed: o.clone(), baseline_run: baseline.run_id, changes, refused });
    }
    Ok(report)
}

/// Checks the declared columns of every needed source and model: presence, type, and (with a
/// scan of the declared columns) NOT NULL. Every violation is listed.
pub async fn check_contracts(pipeline: &Pipeline, observed: &[Observed]) -> Result<()> {
    let contracts = &pipeline.project.config.contracts;
    let mut violations = Vec::new();
    for o in observed {
        let Some(columns) = contracts.get(&o.name) else { continue };
        violations.extend(contract_violations(pipeline, o, columns).await?);
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::Contract(format!("contract violated: nothing was written\n  {}", violations.join("\n  "))))
    }
}

async fn contract_violations(pipeline: &Pipeline, o: &Observed, columns: &[ColumnContract]) -> Result<Vec<String>> {
    let mut violations = Vec::new();
    let mut not_null = Vec::new();
    for declared in columns {
        let Some(found) = o.snapshot.columns.iter().find(|c| c.name == declared.name) else {
            let names: Vec<&str> = o.snapshot.columns.iter().map(|c| c.name.as_str()).collect();
            violations.push(format!(
                "{}: declared column `{}` is missing (its columns: {})",
                o.label,
                declared.name,
                names.join(", ")
            ));
            continue;
        };
        if let Some(sql_type) = &declared.sql_type {
            let data_type = crate::sources::sql_type_to_arrow(&pipeline.ctx, sql_type)
                .await
                .map_err(|e| Error::Config(format!("contracts.{}: column `{}`: {e}", o.name, declared.name)))?;
            let expected = logical_type(&data_type).to_string();
            if found.data_type != expected {
                violations.push(format!(
                    "{}: column `{}` is declared {sql_type} ({expected}) but is {}; CAST it in the model or fix the contract",
                    o.label, declared.name, found.data_type
                ));
            }
        }
        if declared.not_null && found.nullable {
            not_null.push(declared.name.clone());
        }
    }
    if !not_null.is_empty() {
        let counts: Vec<String> =
            not_null.iter().map(|c| format!("count(*) FILTER (WHERE {} IS NULL)", quote(c))).collect();
        let sql = format!("SELECT {} FROM {}", counts.join(", "), quote(&o.name));
        let fail = |e: datafusion::error::DataFusionError| {
            Error::Run(format!("{}: checking the contract's NOT NULL columns: {}", o.label, df_message(&e)))
        };
        let batches = pipeline.ctx.sql(&sql).await.map_err(fail)?.collect().await.map_err(fail)?;
        let batch = &batches[0];
        for (i, column) in not_null.iter().enumerate() {
            let nulls = batch
                .column(i)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .map_or(0, |a| a.value(0));
            if nulls > 0 {
                violations.push(format!(
                    "{}: column `{column}` is declared not null but {} row(s) hold NULL",
                    o.label,
                    crate::run::group_digits(nulls as u64)
                ));
            }
        }
    }
    Ok(violations)
}

/// Everything checked before a run writes: records the files and schemas the run sees in run
/// `run_id` (they become baselines when the run succeeds), reports drift by policy, enforces
/// contracts. An error stops the run before anything is written; otherwise the report says what
/// drifted.
pub async fn preflight(pipeline: &Pipeline, catalog: &Catalog, run_id: i64) -> Result<DriftReport> {
    let observed = observe(pipeline).await?;
    let schemas: Vec<_> = observed.iter().map(|o| (o.kind, o.name.clone(), o.snapshot.clone())).collect();
    catalog.record_schemas(run_id, &schemas, false)?;
    catalog.record_files(run_id, &source_files(pipeline).await?)?;
    let report = check(catalog, &observed)?;
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
        return Err(report.error());
    }
    check_contracts(pipeline, &observed).await?;
    Ok(report)
}

/// The schema each written target received (its model's), by target label.
pub async fn target_schemas(pipeline: &Pipeline, results: &crate::run::RunResults) -> Vec<(String, Snapshot)> {
    let mut out = Vec::new();
    for t in results.targets.iter().filter(|t| t.status == crate::run::Status::Success) {
        if let Ok(snapshot) = schema_of(pipeline, &t.model).await {
            out.push((t.target.clone(), snapshot));
        }
    }
    out
}
