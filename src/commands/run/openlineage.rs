//! OpenLineage run events (spec 2-0-2): per target, a START before it is written and a COMPLETE
//! or FAIL after, sharing a run id; the job is the target, its inputs the sources the model
//! reads (with their schema), its output the target (schema, column lineage from the plans, row
//! count). Posted to an HTTP endpoint or appended to a JSON-lines file. An endpoint that cannot
//! be reached is reported once as a warning and the run goes on without it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::catalog::results::{Status, TargetResult};
use crate::config::{OpenLineageConfig, OpenLineageSink, OutputConfig, Secret, Target};
use crate::engine::lineage::{Edges, How, model_edges, source_columns};
use crate::engine::pipeline::Pipeline;

const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PRODUCER: &str = concat!("https://github.com/dfpipe/dfpipe/tree/v", env!("CARGO_PKG_VERSION"));

/// Emits the events of one run.
pub struct Emitter {
    config: OpenLineageConfig,
    client: Option<reqwest::Client>,
    given_up: AtomicBool,
    edges: Edges,
    run_ids: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").field("namespace", &self.config.namespace).finish_non_exhaustive()
    }
}

/// A facet: its fields, with `_producer` and `_schemaURL`.
fn facet(schema: &str, mut fields: Value) -> Value {
    fields["_producer"] = json!(PRODUCER);
    fields["_schemaURL"] = json!(format!("https://openlineage.io/spec/facets/{schema}"));
    fields
}

impl Emitter {
    /// An emitter for `pipeline`'s run (column lineage read from its plans now).
    pub async fn new(pipeline: &Pipeline, config: &OpenLineageConfig) -> Emitter {
        let edges = match pipeline.lineage_plans().await {
            Ok(plans) => plans.into_iter().map(|(model, plan)| (model, model_edges(&plan))).collect(),
            Err(e) => {
                tracing::warn!("OpenLineage: no column lineage ({e})");
                Edges::new()
            }
        };
        let client = match &config.sink {
            OpenLineageSink::Http { .. } => reqwest::Client::builder().timeout(config.timeout).build().ok(),
            OpenLineageSink::File(_) => None,
        };
        Emitter { config: config.clone(), client, given_up: AtomicBool::new(false), edges, run_ids: Mutex::default() }
    }

    /// The START event of `output`.
    pub async fn start(&self, pipeline: &Pipeline, output: &OutputConfig) {
        let event = self.event(pipeline, output, "START", None).await;
        self.send(event).await;
    }

    /// The COMPLETE or FAIL event of `output`.
    pub async fn finish(&self, pipeline: &Pipeline, output: &OutputConfig, result: &TargetResult) {
        let kind = if result.status == Status::Success { "COMPLETE" } else { "FAIL" };
        let event = self.event(pipeline, output, kind, Some(result)).await;
        self.send(event).await;
    }

    async fn event(
        &self,
        pipeline: &Pipeline,
        output: &OutputConfig,
        kind: &str,
        result: Option<&TargetResult>,
    ) -> Value {
        let config = &pipeline.project.config;
        let label = output.target.label(&config.project_dir);
        let run_id = self
            .run_ids
            .lock()
            .expect("run ids")
            .entry(label.clone())
            .or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone();
        let schema_of = |df: &datafusion::prelude::DataFrame| {
            let fields: Vec<Value> = df
                .schema()
                .fields()
                .iter()
                .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            facet("1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet", json!({"fields": fields}))
        };
        let mut inputs = Vec::new();
        let mut input_names: BTreeMap<String, (String, String)> = BTreeMap::new();
        for name in pipeline.project.sources_upstream(&output.model) {
            let source = &config.sources[&name];
            let (namespace, dataset) = location_dataset(&source.location);
            let mut dataset_json = json!({"namespace": namespace, "name": dataset});
            if let Ok(df) = pipeline.ctx.table(name.as_str()).await {
                dataset_json["facets"] = json!({"schema": schema_of(&df)});
            }
            input_names.insert(name.clone(), (namespace, dataset));
            inputs.push(dataset_json);
        }
        let (namespace, name) = target_dataset(&output.target);
        let mut facets = serde_json::Map::new();
        if let Ok(df) = pipeline.ctx.table(output.model.as_str()).await {
            facets.insert("schema".into(), schema_of(&df));
            let mut fields = serde_json::Map::new();
            for column in df.schema().fields().iter().map(|f| f.name().clone()) {
                let input_fields: Vec<Value> = source_columns(&self.edges, &output.model, &column)
                    .into_iter()
                    .filter_map(|(from, how)| {
                        let (namespace, name) = input_names.get(&from.relation)?;
                        let (kind, subtype) = transformation(how);
                        Some(json!({
                            "namespace": namespace, "name": name, "field": from.column,
                            "transformations": [{"type": kind, "subtype": subtype, "description": how.describe(), "masking": false}]
                        }))
                    })
                    .collect();
                if !input_fields.is_empty() {
                    fields.insert(column, json!({"inputFields": input_fields}));
                }
            }
            facets.insert(
                "columnLineage".into(),
                facet(
                    "1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
                    json!({"fields": fields}),
                ),
            );
        }
        let mut output_json = json!({"namespace": namespace, "name": name, "facets": facets});
        let mut run_facets = serde_json::Map::new();
        if let Some(r) = result {
            if r.status == Status::Success {
                output_json["outputFacets"] = json!({"outputStatistics": facet(
                    "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
                    json!({"rowCount": r.rows})
                )});
            } else if let Some(message) = &r.error {
                run_facets.insert(
                    "errorMessage".into(),
                    facet(
                        "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
                        json!({"message": message, "programmingLanguage": "rust"}),
                    ),
                );
            }
        }
        let sql = pipeline.project.models.get(&output.model).map(|m| m.sql.clone()).unwrap_or_default();
        json!({
            "eventType": kind,
            "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "run": {"runId": run_id, "facets": run_facets},
            "job": {
                "namespace": self.config.namespace,
                "name": label,
                "facets": {
                    "jobType": facet("2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                        json!({"processingType": "BATCH", "integration": "DFPIPE", "jobType": "TARGET"})),
                    "sql": facet("1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet", json!({"query": sql})),
                }
            },
            "inputs": inputs,
            "outputs": [output_json],
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
        })
    }

    async fn send(&self, event: Value) {
        if self.given_up.load(Ordering::Relaxed) {
            return;
        }
        let line = event.to_string();
        let outcome = match &self.config.sink {
            OpenLineageSink::File(path) => append(path, &line),
            OpenLineageSink::Http { url, api_key } => self.post(url, api_key.as_ref(), line).await,
        };
        if let Err(e) = outcome {
            self.given_up.store(true, Ordering::Relaxed);
            let e = crate::util::redact::credentials(&e);
            tracing::warn!("OpenLineage events are not sent for the rest of this run: {e}");
        }
    }

    async fn post(&self, url: &str, api_key: Option<&Secret>, body: String) -> Result<(), String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let mut request = client.post(url).header("content-type", "application/json").body(body);
        if let Some(key) = api_key {
            request = request.bearer_auth(key.expose()?);
        }
        // reqwest's errors name the URL, never the headers (the key).
        let response = request.send().await.map_err(|e| format!("cannot post to {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        Ok(())
    }
}

fn append(path: &std::path::Path, line: &str) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    writeln!(file, "{line}").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// OpenLineage's naming of a file or object: `file` + absolute path, `s3://bucket` + key.
fn location_dataset(location: &str) -> (String, String) {
    match location.split_once("://") {
        Some(("file", path)) => ("file".into(), path.to_string()),
        Some((scheme, rest)) => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            (format!("{scheme}://{bucket}"), key.to_string())
        }
        None => ("file".into(), location.trim_end_matches('/').to_string()),
    }
}

/// A target's dataset: a DuckDB table by file, a PostgreSQL table by host and database (no
/// user, no password), a Parquet path as a file.
fn target_dataset(target: &Target) -> (String, String) {
    match target {
        Target::DuckDb(t) => (
            format!("duckdb://{}", t.path.display()),
            format!("{}.{}", t.table.schema.as_deref().unwrap_or("main"), t.table.name),
        ),
        Target::Postgres { dsn, table, .. } => {
            let config: Option<tokio_postgres::Config> = dsn.as_ref().and_then(|d| d.expose().ok()?.parse().ok());
            let host = config
                .as_ref()
                .and_then(|c| {
                    c.get_hosts().first().map(|h| match h {
                        tokio_postgres::config::Host::Tcp(name) => name.clone(),
                        #[cfg(unix)]
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                })
                .unwrap_or_else(|| "localhost".into());
            let port = config.as_ref().and_then(|c| c.get_ports().first().copied()).unwrap_or(5432);
            let database =
                config.as_ref().and_then(|c| c.get_dbname().map(String::from)).unwrap_or_else(|| "postgres".into());
            (
                format!("postgres://{host}:{port}"),
                format!("{database}.{}.{}", table.schema.as_deref().unwrap_or("public"), table.name),
            )
        }
        Target::Parquet { location, .. } => location_dataset(location),
    }
}

/// OpenLineage's transformation type and subtype for how a column derives from another.
fn transformation(how: How) -> (&'static str, &'static str) {
    match how {
        How::Passthrough | How::Renamed => ("DIRECT", "IDENTITY"),
        How::Computed => ("DIRECT", "TRANSFORMATION"),
        How::Aggregated => ("DIRECT", "AGGREGATION"),
        How::JoinKey => ("INDIRECT", "JOIN"),
        How::Filter => ("INDIRECT", "FILTER"),
    }
}
