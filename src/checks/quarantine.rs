//! `on_invalid: drop | quarantine`: a model's row-level tests (not_null, accepted_values, range,
//! regex, castable, expression) used as row filters. Each test becomes a predicate that is TRUE exactly
//! when a row fails it (never NULL), so every row is either valid or invalid: rows in = rows
//! loaded + rows quarantined + rows dropped.

use super::split::INVALID_FLAG;
use crate::config::{DataTest, Rule};
use crate::util::sql::{self, quote};

/// The columns a quarantine table adds to the model's.
pub const EXTRA_COLUMNS: [&str; 3] = ["_dfpipe_test", "_dfpipe_column", "_dfpipe_reason"];

/// One row-level check: which test and column, when it fails, and why (all SQL).
#[derive(Debug, Clone, PartialEq)]
struct RowCheck {
    test: String,
    column: String,
    fails: String,
    reason: String,
}

/// A YAML scalar as a SQL literal.
fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => sql::literal(s),
        other => other.to_string(),
    }
}

/// `concat('<column> = ', CAST(<column> AS VARCHAR), '<tail>')`.
fn value_is(column: &str, tail: &str) -> String {
    format!(
        "concat({}, CAST({} AS VARCHAR), {})",
        sql::literal(&format!("{column} = ")),
        quote(column),
        sql::literal(tail)
    )
}

fn row_checks(rule: &Rule) -> Vec<RowCheck> {
    let name = rule.name();
    let check = |column: &str, fails: String, reason: String| RowCheck {
        test: name.clone(),
        column: column.to_string(),
        fails,
        reason,
    };
    match rule {
        Rule::NotNull(columns) => columns
            .iter()
            .map(|c| check(c, format!("{} IS NULL", quote(c)), sql::literal(&format!("{c} is NULL"))))
            .collect(),
        Rule::AcceptedValues { column, values } => {
            let list: Vec<String> = values.iter().map(scalar).collect();
            let shown: Vec<String> =
                values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), String::from)).collect();
            vec![check(
                column,
                format!("({c} IS NOT NULL AND {c} NOT IN ({}))", list.join(", "), c = quote(column)),
                value_is(column, &format!(" is not one of {}", shown.join(", "))),
            )]
        }
        Rule::Range { column, min, max } => {
            let c = quote(column);
            let mut outside = Vec::new();
            if let Some(min) = min {
                outside.push(format!("coalesce({c} < {}, false)", scalar(min)));
            }
            if let Some(max) = max {
                outside.push(format!("coalesce({c} > {}, false)", scalar(max)));
            }
            let bound = |b: &Option<serde_json::Value>| {
                b.as_ref().map_or_else(String::new, |v| v.as_str().map_or_else(|| v.to_string(), String::from))
            };
            let tail = match (min, max) {
                (Some(_), None) => format!(" is below {}", bound(min)),
                (None, Some(_)) => format!(" is above {}", bound(max)),
                _ => format!(" is outside [{}, {}]", bound(min), bound(max)),
            };
            vec![check(column, format!("({})", outside.join(" OR ")), value_is(column, &tail))]
        }
        Rule::Regex { column, pattern } => vec![check(
            column,
            format!(
                "({c} IS NOT NULL AND NOT regexp_like(CAST({c} AS VARCHAR), {}))",
                sql::literal(pattern),
                c = quote(column)
            ),
            value_is(column, &format!(" does not match {pattern}")),
        )],
        Rule::Expression(e) => {
            vec![check("", format!("coalesce(NOT ({e}), false)"), sql::literal(&format!("{e} is false")))]
        }
        Rule::Castable { column, sql_type } => vec![check(
            column,
            format!("({c} IS NOT NULL AND TRY_CAST({c} AS {sql_type}) IS NULL)", c = quote(column)),
            value_is(column, &format!(" does not cast to {sql_type}")),
        )],
        _ => vec![],
    }
}

/// The rows of `relation` failing a row-level `rule` (None for table-level rules): the same
/// predicates as the row filters, so `dfpipe test` and `on_invalid` judge rows alike.
pub fn failing_rows_sql(relation: &str, rule: &Rule) -> Option<String> {
    let checks = row_checks(rule);
    if checks.is_empty() {
        return None;
    }
    let fails: Vec<&str> = checks.iter().map(|c| c.fails.as_str()).collect();
    Some(format!("SELECT * FROM {} WHERE {}", quote(relation), fails.join(" OR ")))
}

/// The row filters of one model: its row-level tests, whatever their severity.
#[derive(Debug, Clone, Default)]
pub struct RowFilter {
    checks: Vec<RowCheck>,
}

impl RowFilter {
    /// The filter from `tests` of `model`.
    pub fn for_model(tests: &[DataTest], model: &str) -> RowFilter {
        let checks = tests.iter().filter(|t| t.relation == model).flat_map(|t| row_checks(&t.rule)).collect();
        RowFilter { checks }
    }

    /// Whether there is nothing to filter on.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// TRUE for a row failing any check.
    fn invalid(&self) -> String {
        let fails: Vec<&str> = self.checks.iter().map(|c| c.fails.as_str()).collect();
        format!("({})", fails.join(" OR "))
    }

    /// Every row of `model`, then [`INVALID_FLAG`] (TRUE when it fails) and, for failing rows,
    /// the quarantine's columns (its first failed test and column, and every reason): the one
    /// scan [`super::split`] divides.
    pub fn annotated_sql(&self, model: &str) -> String {
        let (test, column, reason) = self.extra_columns();
        // Every predicate is TRUE or FALSE by construction; were one NULL, the row would be held
        // back as invalid rather than lost between the two sides of the split.
        format!(
            "SELECT *, coalesce({}, true) AS {INVALID_FLAG}, {test}, {column}, {reason} FROM {}",
            self.invalid(),
            quote(model)
        )
    }

    /// The quarantine's extra columns as select items: first failed test, its column, reasons.
    fn extra_columns(&self) -> (String, String, String) {
        let first = |pick: fn(&RowCheck) -> String| {
            let arms: Vec<String> = self.checks.iter().map(|c| format!("WHEN {} THEN {}", c.fails, pick(c))).collect();
            format!("CASE {} END", arms.join(" "))
        };
        let reasons: Vec<String> =
            self.checks.iter().map(|c| format!("CASE WHEN {} THEN {} END", c.fails, c.reason)).collect();
        (
            format!("{} AS {}", first(|c| sql::literal(&c.test)), EXTRA_COLUMNS[0]),
            format!(
                "{} AS {}",
                first(|c| if c.column.is_empty() { "CAST(NULL AS VARCHAR)".into() } else { sql::literal(&c.column) }),
                EXTRA_COLUMNS[1]
            ),
            format!("concat_ws('; ', {}) AS {}", reasons.join(", "), EXTRA_COLUMNS[2]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;

    #[test]
    fn quarantine_sql_names_test_column_and_reason() {
        let tests = vec![
            DataTest { relation: "m".into(), rule: Rule::NotNull(vec!["id".into()]), severity: Default::default() },
            DataTest {
                relation: "m".into(),
                rule: Rule::AcceptedValues { column: "s".into(), values: vec!["a".into(), 1.into()] },
                severity: Default::default(),
            },
        ];
        let filter = RowFilter::for_model(&tests, "m");
        let annotated = filter.annotated_sql("m");
        assert!(
            annotated.starts_with(
                "SELECT *, coalesce((\"id\" IS NULL OR (\"s\" IS NOT NULL AND \"s\" NOT IN ('a', 1))), true) AS _dfpipe_invalid, "
            ),
            "{annotated}"
        );
        assert!(annotated.contains(
            "concat_ws('; ', CASE WHEN \"id\" IS NULL THEN 'id is NULL' END, CASE WHEN (\"s\" IS NOT NULL AND \"s\" NOT IN ('a', 1)) \
             THEN concat('s = ', CAST(\"s\" AS VARCHAR), ' is not one of a, 1') END) AS _dfpipe_reason FROM \"m\""
        ));
        assert!(RowFilter::for_model(&tests, "other").is_empty());
    }

    #[test]
    fn quarantine_targets_sit_beside_the_output() {
        let parquet = |location: &str, single_file| Target::Parquet {
            location: location.into(),
            single_file,
            compression: "zstd".into(),
        };
        let location = |t: Target| match t {
            Target::Parquet { location, .. } => location,
            _ => unreachable!(),
        };
        assert_eq!(location(parquet("/o/x.parquet", true).quarantine()), "/o/x_quarantine.parquet");
        assert_eq!(location(parquet("/o/x/", false).quarantine()), "/o/x_quarantine/");
    }
}
