//! Data tests (`tests:` in dfpipe.yml): each compiled to a SQL query over the source or model
//! view that returns the failing rows (or, for `row_count` and `freshness`, one figure), run on
//! DataFusion before any output is written, and by `dfpipe test`.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::Serialize;

use crate::config::{DataTest, Rule, Severity};
use crate::engine::pipeline::Pipeline;
use crate::error::{Error, Result, df_message};
use crate::util::fmt::group_digits;
use crate::util::sql::quote;

/// Failing rows shown per failed test.
const SAMPLES: usize = 5;

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It holds.
    Pass,
    /// It does not, at severity `warn`.
    Warn,
    /// It does not, at severity `error`.
    Fail,
}

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// The source or model.
    pub relation: String,
    /// The test, e.g. `not_null(order_id)`.
    pub test: String,
    /// Pass, warn or fail.
    pub outcome: Outcome,
    /// Failing rows (for `row_count`: the row count; `freshness`: the age in seconds).
    pub failures: u64,
    /// Why it failed, with sample rows.
    pub message: Option<String>,
}

/// The query returning the rows of `relation` that break `rule`: row-level rules share the
/// row filters' predicates ([`crate::checks::quarantine::failing_rows_sql`]); `unique` returns the
/// duplicated keys. `None` for `row_count` and `freshness`, which compute one figure.
pub fn failing_rows_sql(relation: &str, rule: &Rule) -> Option<String> {
    let from = quote(relation);
    match rule {
        Rule::Unique(columns) => {
            let list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
            let list = list.join(", ");
            Some(format!("SELECT {list}, count(*) AS occurrences FROM {from} GROUP BY {list} HAVING count(*) > 1"))
        }
        Rule::Relationships { column, to, field } => Some(format!(
            "SELECT * FROM {from} AS child WHERE child.{c} IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM {to} AS parent WHERE parent.{f} = child.{c})",
            c = quote(column),
            to = quote(to),
            f = quote(field)
        )),
        rule => crate::checks::quarantine::failing_rows_sql(relation, rule),
    }
}

/// Runs the tests of `relations`. With `filtered_rows_apply`, row-level tests of a model whose
/// outputs all filter rows (`on_invalid: drop | quarantine`) are left to those filters.
pub async fn run(pipeline: &Pipeline, relations: &[String], filtered_rows_apply: bool) -> Result<Vec<TestResult>> {
    let mut results = Vec::new();
    let left_to_filter =
        |t: &DataTest| filtered_rows_apply && t.rule.is_row_level() && pipeline.filters_rows(&t.relation);
    for test in pipeline.project.config.tests.iter().filter(|t| relations.contains(&t.relation) && !left_to_filter(t)) {
        results.push(run_one(pipeline, test).await?);
    }
    Ok(results)
}

async fn run_one(pipeline: &Pipeline, test: &DataTest) -> Result<TestResult> {
    let name = test.rule.name();
    let fail = |e: datafusion::error::DataFusionError| {
        Error::Config(format!("tests.{}: {name}: {}", test.relation, df_message(&e)))
    };
    if let Rule::Relationships { to, .. } = &test.rule {
        pipeline.ensure_registered(to).await?;
    }
    let ctx = &pipeline.ctx;
    let (failures, detail) = match &test.rule {
        Rule::RowCount { min, max } => {
            let rows =
                scalar_u64(ctx, &format!("SELECT count(*) FROM {}", quote(&test.relation))).await.map_err(fail)?;
            let bad = min.is_some_and(|m| rows < m) || max.is_some_and(|m| rows > m);
            let bounds = match (min, max) {
                (Some(a), Some(b)) => format!("between {} and {}", group_digits(*a), group_digits(*b)),
                (Some(a), None) => format!("at least {}", group_digits(*a)),
                (None, Some(b)) => format!("at most {}", group_digits(*b)),
                (None, None) => String::new(),
            };
            (u64::from(bad), bad.then(|| format!("{} rows, expected {bounds}", group_digits(rows))))
        }
        Rule::Freshness { column, max_age_secs, max_age } => {
            let sql = format!(
                "SELECT CAST(to_unixtime(now()) - to_unixtime(max({c})) AS BIGINT) FROM {}",
                quote(&test.relation),
                c = quote(column)
            );
            let age = scalar_i64(ctx, &sql).await.map_err(fail)?;
            match age {
                None => (1, Some(format!("`{column}` has no value (no rows, or all NULL)"))),
                Some(age) if age > *max_age_secs as i64 => {
                    (1, Some(format!("the latest `{column}` is {} old, more than {max_age}", human_age(age))))
                }
                Some(_) => (0, None),
            }
        }
        rule => {
            let sql = failing_rows_sql(&test.relation, rule).expect("row-level rule");
            let count = scalar_u64(ctx, &format!("SELECT count(*) FROM ({sql})")).await.map_err(fail)?;
            if count == 0 {
                (0, None)
            } else {
                let batches =
                    ctx.sql(&format!("{sql} LIMIT {SAMPLES}")).await.map_err(fail)?.collect().await.map_err(fail)?;
                let what = if matches!(rule, Rule::Unique(_)) { "duplicated key(s)" } else { "failing row(s)" };
                (count, Some(format!("{} {what}, e.g.:\n{}", group_digits(count), samples(&batches))))
            }
        }
    };
    let outcome = match (failures, test.severity) {
        (0, _) => Outcome::Pass,
        (_, Severity::Warn) => Outcome::Warn,
        (_, Severity::Error) => Outcome::Fail,
    };
    Ok(TestResult { relation: test.relation.clone(), test: name, outcome, failures, message: detail })
}

/// The first value of the first column of `sql`'s result, as an integer (None: no row or NULL).
pub async fn scalar_i64(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> datafusion::error::Result<Option<i64>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(None) };
    let column = datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Int64)?;
    let values = column.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().expect("cast to Int64");
    Ok(values.is_valid(0).then(|| values.value(0)))
}

/// [`scalar_i64`] for counts: none or negative is 0.
pub async fn scalar_u64(ctx: &datafusion::prelude::SessionContext, sql: &str) -> datafusion::error::Result<u64> {
    Ok(scalar_i64(ctx, sql).await?.unwrap_or(0).max(0) as u64)
}

/// Sample rows as `    col=value, col=value` lines.
fn samples(batches: &[RecordBatch]) -> String {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = String::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> =
            batch.columns().iter().filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok()).collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .zip(&formatters)
                .map(|(f, fmt)| format!("{}={}", f.name(), fmt.value(row)))
                .collect();
            out.push_str(&format!("      {}\n", cells.join(", ")));
        }
    }
    out.trim_end().to_string()
}

/// `3d 4h`, `5h 12m`, `42s`.
fn human_age(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The report `dfpipe test` prints, and the error a run stops with.
pub fn report(results: &[TestResult]) -> String {
    let mut out = String::new();
    for r in results {
        let tag = match r.outcome {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
        };
        out.push_str(&format!("{tag}  {} {}", r.relation, r.test));
        if let Some(message) = &r.message {
            out.push_str(&format!(": {message}"));
        }
        out.push('\n');
    }
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    out.push_str(&format!(
        "{} passed, {} warned, {} failed\n",
        count(Outcome::Pass),
        count(Outcome::Warn),
        count(Outcome::Fail)
    ));
    out
}

/// The error for failed error-level tests: each failure with its samples.
pub fn failed(results: &[TestResult]) -> Option<Error> {
    let failed: Vec<&TestResult> = results.iter().filter(|r| r.outcome == Outcome::Fail).collect();
    if failed.is_empty() {
        return None;
    }
    let mut text = format!("{} data test(s) failed: nothing was written\n", failed.len());
    for r in failed {
        text.push_str(&format!("  {} {}: {}\n", r.relation, r.test, r.message.as_deref().unwrap_or("failed")));
    }
    text.push_str("fix the data or the model, or set `severity: warn` on the test");
    Some(Error::Test(text))
}
