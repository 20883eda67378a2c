//! What a run sees before it writes anything: the schema of every source and model it reads
//! (with the `on_schema_change` policy that judges it) and the files behind each source.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::physical_plan::ExecutionPlan;
use serde::Serialize;

use super::pipeline::Pipeline;
use crate::config::Policy;
use crate::error::{Error, Result, df_message};
use crate::schema::{Kind, Snapshot};

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

/// The current schema of source or model `name`.
pub async fn schema_of(pipeline: &Pipeline, name: &str) -> Result<Snapshot> {
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
        let files = files_of(pipeline, &name).await?;
        out.push((name, files));
    }
    Ok(out)
}

/// The files source `name` reads now (listed afresh), by location.
pub async fn files_of(pipeline: &Pipeline, name: &str) -> Result<Vec<FileIdentity>> {
    let fail = |e: datafusion::error::DataFusionError| Error::Source(format!("source `{name}`: {}", df_message(&e)));
    let df = pipeline.ctx.table(TableReference::bare(name)).await.map_err(fail)?;
    let plan: Arc<dyn ExecutionPlan> = df.create_physical_plan().await.map_err(fail)?;
    let mut scans = Vec::new();
    crate::memory::estimate::collect_scans(&plan, &mut scans);
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
    Ok(files.into_values().collect())
}

/// A file a source read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileIdentity {
    /// Its location (a path in its object store).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its last modification, RFC 3339.
    pub modified: String,
    /// Its ETag, where the store has one.
    pub etag: Option<String>,
}
