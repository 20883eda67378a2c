//! `dfpipe lineage MODEL.COLUMN`: where a column comes from (the tree down to source columns),
//! or with `--downstream` everything that derives from it, up to the targets written.

use std::fmt::Write;

use serde_json::{Value, json};

use super::{prepare, select_all};
use crate::cli::LineageFormat;
use crate::config::Config;
use crate::engine::lineage::{ColumnRef, Edges, How, model_edges};
use crate::engine::pipeline::Pipeline;
use crate::error::{EXIT_OK, Error, Result};
use crate::util::suggest::did_you_mean;

/// Prints the lineage of `column` (`relation.column`).
pub async fn command(config: Config, column: &str, downstream: bool, format: LineageFormat) -> Result<u8> {
    let pipeline = prepare(config, &select_all()).await?;
    let edges: Edges =
        pipeline.lineage_plans().await?.into_iter().map(|(model, plan)| (model, model_edges(&plan))).collect();
    let start = resolve(&pipeline, &edges, column)?;
    let tree =
        if downstream { downstream_tree(&pipeline, &edges, &start, None) } else { upstream_tree(&edges, &start, None) };
    match format {
        LineageFormat::Text => {
            let mut out = String::new();
            render(&tree, "", true, true, &mut out);
            crate::out!("{out}");
        }
        LineageFormat::Json => crate::outln!("{}", serde_json::to_string_pretty(&tree).expect("lineage serializes")),
    }
    Ok(EXIT_OK)
}

/// `relation.column`, checked against the models' and sources' columns.
fn resolve(pipeline: &Pipeline, edges: &Edges, text: &str) -> Result<ColumnRef> {
    let Some((relation, column)) = text.split_once('.') else {
        return Err(Error::Usage(format!("lineage: `{text}` is not MODEL.COLUMN (or SOURCE.COLUMN)")));
    };
    let columns: Vec<String> = match edges.get(relation) {
        Some(columns) => columns.iter().map(|(c, _)| c.clone()).collect(),
        None if pipeline.project.config.sources.contains_key(relation) => {
            let mut seen: Vec<String> = edges
                .values()
                .flatten()
                .flat_map(|(_, e)| e.iter())
                .filter(|e| e.from.relation == relation)
                .map(|e| e.from.column.clone())
                .collect();
            seen.sort();
            seen.dedup();
            seen
        }
        None => {
            let known: Vec<&str> = edges
                .keys()
                .map(String::as_str)
                .chain(pipeline.project.config.sources.keys().map(String::as_str))
                .collect();
            return Err(Error::Usage(format!(
                "lineage: no model or source `{relation}`{}",
                did_you_mean(relation, known.iter().copied())
            )));
        }
    };
    if !columns.iter().any(|c| c == column) {
        return Err(Error::Usage(format!(
            "lineage: `{relation}` has no column `{column}` that a model reads{} (its columns: {})",
            did_you_mean(column, columns.iter().map(String::as_str)),
            columns.join(", ")
        )));
    }
    Ok(ColumnRef { relation: relation.to_string(), column: column.to_string() })
}

/// A node of a lineage tree, as printed and as JSON.
fn node(column: &ColumnRef, kind: &str, how: Option<How>, children: Vec<Value>) -> Value {
    json!({
        "relation": column.relation,
        "column": column.column,
        "kind": kind,
        "how": how,
        "children": children,
    })
}

fn upstream_tree(edges: &Edges, column: &ColumnRef, how: Option<How>) -> Value {
    let Some(columns) = edges.get(&column.relation) else {
        return node(column, "source", how, vec![]);
    };
    let children = columns
        .iter()
        .find(|(c, _)| *c == column.column)
        .map(|(_, e)| e.iter().map(|e| upstream_tree(edges, &e.from, Some(e.how))).collect())
        .unwrap_or_default();
    node(column, "model", how, children)
}

fn downstream_tree(pipeline: &Pipeline, edges: &Edges, column: &ColumnRef, how: Option<How>) -> Value {
    let kind = if edges.contains_key(&column.relation) { "model" } else { "source" };
    let mut children: Vec<Value> = edges
        .iter()
        .flat_map(|(model, columns)| {
            columns.iter().flat_map(move |(c, e)| {
                e.iter()
                    .filter(|e| e.from == *column)
                    .map(move |e| (ColumnRef { relation: model.clone(), column: c.clone() }, e.how))
            })
        })
        .map(|(child, how)| downstream_tree(pipeline, edges, &child, Some(how)))
        .collect();
    if kind == "model" {
        let project_dir = &pipeline.project.config.project_dir;
        for output in pipeline.outputs.iter().filter(|o| o.model == column.relation) {
            children.push(json!({
                "relation": output.target.label(project_dir),
                "column": column.column,
                "kind": "target",
                "how": How::Passthrough,
                "children": [],
            }));
        }
    }
    node(column, kind, how, children)
}

/// Draws `tree` with box-drawing branches: `how  relation.column (kind)`.
fn render(tree: &Value, prefix: &str, last: bool, root: bool, out: &mut String) {
    let text = |key: &str| tree[key].as_str().unwrap_or_default().to_string();
    let how = tree["how"].as_str().map(|h| {
        let how: How = serde_json::from_value(json!(h)).expect("a How");
        format!("{}  ", how.describe())
    });
    let label = format!("{}{}.{} ({})", how.unwrap_or_default(), text("relation"), text("column"), text("kind"));
    if root {
        let _ = writeln!(out, "{label}");
    } else {
        let _ = writeln!(out, "{prefix}{}{label}", if last { "└─ " } else { "├─ " });
    }
    let children = tree["children"].as_array().cloned().unwrap_or_default();
    let inner = if root { String::new() } else { format!("{prefix}{}", if last { "   " } else { "│  " }) };
    for (i, child) in children.iter().enumerate() {
        render(child, &inner, i + 1 == children.len(), false, out);
    }
}
