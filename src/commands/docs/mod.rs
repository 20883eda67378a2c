//! `dfpipe docs`: a static site, one self-contained `index.html` (no network, no CDN: the CSS,
//! the script and the data are inside), showing the DAG as an SVG laid out here (sources →
//! models → targets, in layers by depth), and per node its description, columns with types and
//! lineage (a click on a column lights its path through the graph), tests and their last
//! results, schema history, last runs and files read. `--serve` serves it on localhost.

mod page;
mod serve;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{prepare, select_all};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::engine::lineage::{Edges, model_edges};
use crate::engine::pipeline::Pipeline;
use crate::error::{EXIT_OK, Error, Result};

/// Writes the site to `out` (default `<state_dir>/docs`); with `serve`, serves it on `port`.
pub async fn command(config: Config, out: Option<&Path>, serve: bool, port: u16) -> Result<u8> {
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| config.state_dir.join("docs"));
    let catalog = Catalog::new(&config.state_dir);
    let pipeline = prepare(config, &select_all()).await?;
    let data = collect(&pipeline, &catalog).await?;
    std::fs::create_dir_all(&out).map_err(|e| Error::Run(format!("cannot create {}: {e}", out.display())))?;
    let index = out.join("index.html");
    std::fs::write(&index, page::render(&data))
        .map_err(|e| Error::Run(format!("cannot write {}: {e}", index.display())))?;
    crate::outln!("wrote {}", index.display());
    if serve {
        serve::serve(&out, port).await?;
    }
    Ok(EXIT_OK)
}

/// The leading `--` comment block of a model's SQL.
fn description(sql: &str) -> String {
    sql.lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("--") || l.is_empty())
        .filter_map(|l| l.strip_prefix("--"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

/// Everything the page shows, as JSON.
async fn collect(pipeline: &Pipeline, catalog: &Catalog) -> Result<Value> {
    let project = &pipeline.project;
    let config = &project.config;
    let edges: Edges = pipeline.lineage_plans().await?.into_iter().map(|(m, plan)| (m, model_edges(&plan))).collect();
    // Column descriptions come from the contracts (`contracts: {orders: [{name, description}]}`).
    let columns = |name: String| async move {
        let described = |column: &str| {
            config
                .contracts
                .get(&name)
                .and_then(|cs| cs.iter().find(|c| c.name == column))
                .and_then(|c| c.description.clone())
        };
        match pipeline.ctx.table(name.as_str()).await {
            Ok(df) => df
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable(),
                           "description": described(f.name())})
                })
                .collect::<Vec<_>>(),
            Err(_) => vec![],
        }
    };
    let tests_declared: BTreeMap<String, Vec<String>> = config.tests.iter().fold(BTreeMap::new(), |mut m, t| {
        m.entry(t.relation.clone()).or_default().push(t.rule.name());
        m
    });
    let last_tests = catalog.rows_json(
        "SELECT relation, test, outcome, failures, message FROM tests \
         WHERE run_id = (SELECT max(run_id) FROM tests) ORDER BY relation, test",
    )?;
    let files = catalog.rows_json(
        "SELECT source, path, size, CAST(modified AS VARCHAR) AS modified FROM source_files \
         WHERE run_id = (SELECT max(run_id) FROM source_files) ORDER BY source, path",
    )?;
    let history = catalog.rows_json(
        "SELECT kind, name, run_id, fingerprint, accepted, CAST(recorded_at AS VARCHAR) AS recorded_at FROM schemas \
         ORDER BY recorded_at DESC, run_id DESC",
    )?;
    let drift = catalog.rows_json(
        "SELECT run_id, kind, name, change, column_name AS \"column\", before, after, policy, outcome FROM drift ORDER BY run_id DESC",
    )?;
    let targets = catalog.rows_json(
        "SELECT t.run_id, t.target, t.model, t.mode, t.status, t.rows, t.seconds, t.strategy, t.peak_rss_bytes, t.error, \
         CAST(r.started_at AS VARCHAR) AS started_at FROM targets t JOIN runs r USING (run_id) ORDER BY t.run_id DESC",
    )?;
    let runs = catalog.rows_json(
        "SELECT run_id, command, status, CAST(started_at AS VARCHAR) AS started_at, elapsed_seconds, rows, targets, \
         strategy, peak_rss_bytes FROM runs ORDER BY run_id DESC LIMIT 20",
    )?;
    let of = |rows: &[Value], key: &str, name: &str| -> Vec<Value> {
        rows.iter().filter(|r| r[key].as_str() == Some(name)).take(20).cloned().collect()
    };

    let mut nodes = Vec::new();
    let mut graph = Vec::new();
    for (name, source) in &config.sources {
        nodes.push(json!({
            "id": format!("source:{name}"), "kind": "source", "name": name,
            "description": source.description.clone().unwrap_or_default(),
            "path": source.path, "format": source.format.name(),
            "columns": columns(name.clone()).await,
            "tests": tests_declared.get(name).cloned().unwrap_or_default(),
            "test_results": of(&last_tests, "relation", name),
            "history": of(&history, "name", name), "drift": of(&drift, "name", name),
            "files": of(&files, "source", name),
        }));
    }
    for name in &project.order {
        let model = &project.models[name];
        let lineage: BTreeMap<&str, Vec<Value>> = edges
            .get(name)
            .map(|cols| {
                cols.iter()
                    .map(|(c, hops)| {
                        let from = hops
                            .iter()
                            .map(|e| {
                                let kind = if project.models.contains_key(&e.from.relation) { "model" } else { "source" };
                                json!({"node": format!("{kind}:{}", e.from.relation), "column": e.from.column, "how": e.how.describe()})
                            })
                            .collect();
                        (c.as_str(), from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        nodes.push(json!({
            "id": format!("model:{name}"), "kind": "model", "name": name,
            "file": model.file.display().to_string(), "sql": model.sql,
            "description": description(&model.sql),
            "columns": columns(name.clone()).await, "lineage": lineage,
            "tests": tests_declared.get(name).cloned().unwrap_or_default(),
            "test_results": of(&last_tests, "relation", name),
            "history": of(&history, "name", name), "drift": of(&drift, "name", name),
        }));
        for d in &model.source_deps {
            graph.push((format!("source:{d}"), format!("model:{name}")));
        }
        for d in &model.model_deps {
            graph.push((format!("model:{d}"), format!("model:{name}")));
        }
    }
    for output in &project.outputs {
        let label = output.target.label(&config.project_dir);
        nodes.push(json!({
            "id": format!("target:{label}"), "kind": "target", "name": label, "model": output.model,
            "mode": output.mode.name(),
            "columns": columns(output.model.clone()).await,
            "runs": of(&targets, "target", &label),
            "history": of(&history, "name", &label),
        }));
        graph.push((format!("model:{}", output.model), format!("target:{label}")));
    }
    let layout = page::layout(&nodes, &graph);
    Ok(json!({
        "project": config.name,
        "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "nodes": nodes,
        "edges": graph.iter().map(|(a, b)| json!({"from": a, "to": b})).collect::<Vec<_>>(),
        "layout": layout,
        "runs": runs,
    }))
}
