//! Column-level lineage from DataFusion's logical plans (never from the SQL text).
//!
//! Each model's plan is taken as the SQL planner builds it, before the analyzer inlines views:
//! a reference to another model or a source is then a `TableScan` of that name — one hop of
//! lineage — while CTEs, subqueries, joins, unions, aggregates and window functions are nodes to
//! trace through. For every output column of a model, [`model_edges`] gives the columns of the
//! relations it reads that it derives from, and how ([`How`]); chaining hops across models
//! (`SELECT *` chains included) leads to source columns.

use std::collections::BTreeSet;

use datafusion::common::Column;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use serde::Serialize;

/// How a column derives from an upstream one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// The same values under the same name.
    Passthrough,
    /// The same values under another name.
    Renamed,
    /// Computed by an expression (a function, arithmetic, a CASE, a window function).
    Computed,
    /// Aggregated (SUM, COUNT, ...).
    Aggregated,
    /// Not a value source: the rows kept depend on it through a join key.
    JoinKey,
    /// Not a value source: the rows kept depend on it through a filter.
    Filter,
}

impl How {
    /// The words shown in a lineage tree.
    pub fn describe(self) -> &'static str {
        match self {
            How::Passthrough => "passed through",
            How::Renamed => "renamed",
            How::Computed => "computed",
            How::Aggregated => "aggregated",
            How::JoinKey => "join key",
            How::Filter => "filter",
        }
    }

    /// Whether the column's values come from the upstream column (as opposed to which rows).
    pub fn carries_values(self) -> bool {
        !matches!(self, How::JoinKey | How::Filter)
    }

    /// Two steps in a row: the stronger transformation wins; a row influence stays one.
    pub fn then(self, next: How) -> How {
        self.max(next)
    }
}

/// A column of a source or model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ColumnRef {
    /// The source or model.
    pub relation: String,
    /// The column.
    pub column: String,
}

/// One hop: an upstream column and how a column derives from it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Edge {
    /// The upstream column.
    pub from: ColumnRef,
    /// How.
    pub how: How,
}

/// Every model's columns and their one-hop edges, by model.
pub type Edges = std::collections::BTreeMap<String, Vec<(String, Vec<Edge>)>>;

/// The source columns `model.column` derives from (through every model between), each with
/// how: the strongest transformation along its paths.
pub fn source_columns(edges: &Edges, model: &str, column: &str) -> std::collections::BTreeMap<ColumnRef, How> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![(ColumnRef { relation: model.to_string(), column: column.to_string() }, None::<How>, 0usize)];
    while let Some((at, how, depth)) = stack.pop() {
        let Some(columns) = edges.get(&at.relation) else {
            if let Some(how) = how {
                let entry = out.entry(at).or_insert(how);
                *entry = (*entry).max(how);
            }
            continue;
        };
        if depth > 64 {
            continue;
        }
        for (_, hops) in columns.iter().filter(|(c, _)| *c == at.column) {
            for e in hops {
                let next = match how {
                    Some(h) => h.then(e.how),
                    None => e.how,
                };
                stack.push((e.from.clone(), Some(next), depth + 1));
            }
        }
    }
    out
}

/// For each output column of a model's `plan` (unanalyzed, as the SQL planner built it), the
/// upstream columns it derives from — one hop, to the sources and models the SQL names.
pub fn model_edges(plan: &LogicalPlan) -> Vec<(String, Vec<Edge>)> {
    tracing::trace!("lineage of\n{}", plan.display_indent_schema());
    plan.schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let mut edges: BTreeSet<Edge> = BTreeSet::new();
            trace(plan, i, How::Passthrough, &mut edges);
            // A value source is listed once, with its strongest derivation, before row influences.
            let mut edges: Vec<Edge> = edges.into_iter().collect();
            edges.sort_by(|a, b| {
                (!a.how.carries_values(), &a.from, a.how).cmp(&(!b.how.carries_values(), &b.from, b.how))
            });
            edges.dedup_by(|b, a| a.from == b.from && a.how.carries_values() == b.how.carries_values());
            (field.name().clone(), edges)
        })
        .collect()
}

/// How an output expression relates to the columns it reads.
fn how_of(expr: &Expr, output_name: &str) -> How {
    match expr {
        Expr::Column(c) => {
            if c.name == output_name {
                How::Passthrough
            } else {
                How::Renamed
            }
        }
        Expr::Alias(alias) => match alias.expr.as_ref() {
            Expr::Column(c) if c.name == alias.name => How::Passthrough,
            Expr::Column(_) => How::Renamed,
            inner => how_of(inner, output_name).max(How::Computed),
        },
        Expr::AggregateFunction(_) => How::Aggregated,
        _ => {
            let mut aggregated = false;
            let _ = expr.apply(|e| {
                aggregated |= matches!(e, Expr::AggregateFunction(_));
                Ok(TreeNodeRecursion::Continue)
            });
            if aggregated { How::Aggregated } else { How::Computed }
        }
    }
}

/// Traces the columns `expr` reads in `input`, each as `how`, and any scalar subquery in it.
/// An expression that reads no column (`count(*)`, a constant) still depends on which rows
/// there are: the filters and join keys below.
fn trace_expr(expr: &Expr, input: &LogicalPlan, how: How, edges: &mut BTreeSet<Edge>) {
    if expr.column_refs().is_empty() {
        row_influences(input, edges);
    }
    for column in expr.column_refs() {
        if let Some(j) = index_of(input, column) {
            trace(input, j, how, edges);
        }
    }
    let _ = expr.apply(|e| {
        match e {
            Expr::ScalarSubquery(subquery) => trace(&subquery.subquery, 0, how.then(How::Computed), edges),
            Expr::Exists(exists) => trace_all(&exists.subquery.subquery, How::Filter, edges),
            Expr::InSubquery(in_subquery) => trace_all(&in_subquery.subquery.subquery, How::Filter, edges),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

/// Every column of `plan`, as `how` (a subquery whose rows decide which rows are kept).
fn trace_all(plan: &LogicalPlan, how: How, edges: &mut BTreeSet<Edge>) {
    for i in 0..plan.schema().fields().len() {
        trace(plan, i, how, edges);
    }
}

/// The columns a join matches on (`USING`, `ON` equalities and any other `ON` condition).
fn join_keys(j: &datafusion::logical_expr::Join, edges: &mut BTreeSet<Edge>) {
    for (l, r) in &j.on {
        trace_expr(l, &j.left, How::JoinKey, edges);
        trace_expr(r, &j.right, How::JoinKey, edges);
    }
    if let Some(filter) = &j.filter {
        for column in filter.column_refs() {
            for side in [&j.left, &j.right] {
                if let Ok(k) = side.schema().index_of_column(column) {
                    trace(side, k, How::JoinKey, edges);
                }
            }
        }
    }
}

/// The filters and join keys of `plan`, down to the relations it reads.
fn row_influences(plan: &LogicalPlan, edges: &mut BTreeSet<Edge>) {
    match plan {
        LogicalPlan::TableScan(_) => {}
        LogicalPlan::Filter(f) => {
            trace_expr(&f.predicate, &f.input, How::Filter, edges);
            row_influences(&f.input, edges);
        }
        LogicalPlan::Join(j) => {
            join_keys(j, edges);
            row_influences(&j.left, edges);
            row_influences(&j.right, edges);
        }
        other => {
            for input in other.inputs() {
                row_influences(input, edges);
            }
        }
    }
}

fn index_of(plan: &LogicalPlan, column: &Column) -> Option<usize> {
    plan.schema().index_of_column(column).ok().or_else(|| plan.schema().index_of_column_by_name(None, &column.name))
}

/// Adds the upstream columns of output column `i` of `plan`, reached with `how` so far.
fn trace(plan: &LogicalPlan, i: usize, how: How, edges: &mut BTreeSet<Edge>) {
    // Row influences stay row influences whatever the value path below them does.
    let step = |next: How| if how.carries_values() { how.then(next) } else { how };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let column = plan.schema().field(i).name().clone();
            edges.insert(Edge { from: ColumnRef { relation: scan.table_name.table().to_string(), column }, how });
        }
        LogicalPlan::Projection(p) => {
            let name = plan.schema().field(i).name();
            trace_expr(&p.expr[i], &p.input, step(how_of(&p.expr[i], name)), edges);
        }
        LogicalPlan::Aggregate(a) => {
            let name = plan.schema().field(i).name();
            let groups = a.group_expr.len();
            if i < groups {
                trace_expr(&a.group_expr[i], &a.input, step(how_of(&a.group_expr[i], name)), edges);
            } else if let Some(expr) = a.aggr_expr.get(i - groups) {
                trace_expr(expr, &a.input, step(How::Aggregated), edges);
            }
        }
        LogicalPlan::Window(w) => {
            let width = w.input.schema().fields().len();
            if i < width {
                trace(&w.input, i, how, edges);
            } else if let Some(expr) = w.window_expr.get(i - width) {
                trace_expr(expr, &w.input, step(How::Computed), edges);
            }
        }
        LogicalPlan::Filter(f) => {
            trace(&f.input, i, how, edges);
            trace_expr(&f.predicate, &f.input, How::Filter, edges);
        }
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            let right = j.right.schema().fields().len();
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti => trace(&j.left, i, how, edges),
                JoinType::RightSemi | JoinType::RightAnti => trace(&j.right, i, how, edges),
                _ if i < left => trace(&j.left, i, how, edges),
                _ if i < left + right => trace(&j.right, i - left, how, edges),
                _ => {} // a mark column
            }
            join_keys(j, edges);
        }
        LogicalPlan::Union(u) => {
            // The output takes the first input's names: a column of another name is renamed.
            let name = plan.schema().field(i).name();
            for input in &u.inputs {
                let renamed = input.schema().field(i).name() != name;
                trace(input, i, if renamed { step(How::Renamed) } else { how }, edges);
            }
        }
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {}
        other => {
            // Nodes that keep their input's columns (aliases, sorts, limits, DISTINCT, ...): by
            // position when the width matches, else by name.
            let inputs = other.inputs();
            let name = plan.schema().field(i).name();
            for input in inputs {
                if input.schema().fields().len() == plan.schema().fields().len() {
                    trace(input, i, how, edges);
                } else if let Some(j) = input.schema().fields().iter().position(|f| f.name() == name) {
                    trace(input, j, how, edges);
                }
            }
        }
    }
}
