//! The `tests:` section checked: each test is one [`Rule`] with a [`Severity`].

use super::raw::RawTest;
use super::types::Severity;

/// A checked data test of one source or model.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTest {
    /// The source or model tested.
    pub relation: String,
    /// What must hold.
    pub rule: Rule,
    /// What a failure does.
    pub severity: Severity,
}

/// What a test checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// No NULL in any of the columns.
    NotNull(Vec<String>),
    /// The combination of the columns is unique.
    Unique(Vec<String>),
    /// Non-NULL values of `column` are among `values`.
    AcceptedValues {
        /// The column.
        column: String,
        /// The allowed values.
        values: Vec<serde_json::Value>,
    },
    /// Non-NULL values of `column` exist in `to`.`field`.
    Relationships {
        /// The referencing column.
        column: String,
        /// The referenced source or model.
        to: String,
        /// The referenced column.
        field: String,
    },
    /// Values of `column` lie within the bounds.
    Range {
        /// The column.
        column: String,
        /// The lower bound.
        min: Option<serde_json::Value>,
        /// The upper bound.
        max: Option<serde_json::Value>,
    },
    /// Non-NULL values of `column` match `pattern`.
    Regex {
        /// The column.
        column: String,
        /// The regular expression.
        pattern: String,
    },
    /// The number of rows is within the bounds.
    RowCount {
        /// Fewest rows.
        min: Option<u64>,
        /// Most rows.
        max: Option<u64>,
    },
    /// The latest value of `column` is at most `max_age_secs` old.
    Freshness {
        /// The column.
        column: String,
        /// The age allowed, in seconds.
        max_age_secs: u64,
        /// The age as written.
        max_age: String,
    },
    /// Every row satisfies the SQL condition.
    Expression(String),
    /// Non-NULL values of `column` cast to `sql_type`.
    Castable {
        /// The column.
        column: String,
        /// The SQL type.
        sql_type: String,
    },
}

impl Rule {
    /// Whether the rule judges each row on its own (and so can filter rows).
    pub fn is_row_level(&self) -> bool {
        matches!(
            self,
            Rule::NotNull(_)
                | Rule::AcceptedValues { .. }
                | Rule::Range { .. }
                | Rule::Regex { .. }
                | Rule::Expression(_)
                | Rule::Castable { .. }
        )
    }

    /// A short name for messages and the catalog: `not_null(order_id, customer_id)`.
    pub fn name(&self) -> String {
        match self {
            Rule::NotNull(c) => format!("not_null({})", c.join(", ")),
            Rule::Unique(c) => format!("unique({})", c.join(", ")),
            Rule::AcceptedValues { column, .. } => format!("accepted_values({column})"),
            Rule::Relationships { column, to, field } => format!("relationships({column} → {to}.{field})"),
            Rule::Range { column, .. } => format!("range({column})"),
            Rule::Regex { column, .. } => format!("regex({column})"),
            Rule::RowCount { .. } => "row_count".into(),
            Rule::Freshness { column, .. } => format!("freshness({column})"),
            Rule::Expression(e) => format!("expression({e})"),
            Rule::Castable { column, sql_type } => format!("castable({column} as {sql_type})"),
        }
    }
}

/// Checks one raw test of `relation`; `what` names it in messages (`tests.orders[2]`).
pub fn check(relation: &str, raw: &RawTest, what: &str) -> Result<DataTest, String> {
    let mut rules = Vec::new();
    let columns = |list: &Vec<String>, key: &str| -> Result<Vec<String>, String> {
        if list.is_empty() { Err(format!("{what}: {key} needs at least one column")) } else { Ok(list.clone()) }
    };
    if let Some(c) = &raw.not_null {
        rules.push(Rule::NotNull(columns(c, "not_null")?));
    }
    if let Some(c) = &raw.unique {
        rules.push(Rule::Unique(columns(c, "unique")?));
    }
    if let Some(a) = &raw.accepted_values {
        if a.values.is_empty() {
            return Err(format!("{what}: accepted_values needs at least one value"));
        }
        if let Some(bad) = a.values.iter().find(|v| !(v.is_string() || v.is_number() || v.is_boolean())) {
            return Err(format!("{what}: accepted_values: {bad} is not a string, number or boolean"));
        }
        rules.push(Rule::AcceptedValues { column: a.column.clone(), values: a.values.clone() });
    }
    if let Some(r) = &raw.relationships {
        rules.push(Rule::Relationships { column: r.column.clone(), to: r.to.clone(), field: r.field.clone() });
    }
    if let Some(r) = &raw.range {
        if r.min.is_none() && r.max.is_none() {
            return Err(format!("{what}: range needs `min`, `max` or both"));
        }
        for bound in [&r.min, &r.max].into_iter().flatten() {
            if !(bound.is_number() || bound.is_string()) {
                return Err(format!("{what}: range bound {bound} is not a number or a string"));
            }
        }
        rules.push(Rule::Range { column: r.column.clone(), min: r.min.clone(), max: r.max.clone() });
    }
    if let Some(r) = &raw.regex {
        rules.push(Rule::Regex { column: r.column.clone(), pattern: r.pattern.clone() });
    }
    if let Some(r) = &raw.row_count {
        if r.min.is_none() && r.max.is_none() {
            return Err(format!("{what}: row_count needs `min`, `max` or both"));
        }
        rules.push(Rule::RowCount { min: r.min, max: r.max });
    }
    if let Some(f) = &raw.freshness {
        let max_age_secs = parse_age(&f.max_age).ok_or_else(|| {
            format!("{what}: freshness.max_age `{}` is not an age; write e.g. 30m, 12h, 2d or 1w", f.max_age)
        })?;
        rules.push(Rule::Freshness { column: f.column.clone(), max_age_secs, max_age: f.max_age.clone() });
    }
    if let Some(c) = &raw.castable {
        if !c.data_type.chars().all(|ch| ch.is_alphanumeric() || " (),_".contains(ch)) {
            return Err(format!("{what}: castable.type `{}` is not a SQL type", c.data_type));
        }
        rules.push(Rule::Castable { column: c.column.clone(), sql_type: c.data_type.clone() });
    }
    if let Some(e) = &raw.expression {
        if e.trim().is_empty() {
            return Err(format!("{what}: expression must not be empty"));
        }
        rules.push(Rule::Expression(e.clone()));
    }
    match rules.len() {
        1 => Ok(DataTest {
            relation: relation.to_string(),
            rule: rules.remove(0),
            severity: raw.severity.unwrap_or_default(),
        }),
        0 => Err(format!(
            "{what}: no rule; use one of not_null, unique, accepted_values, relationships, range, regex, castable, row_count, freshness, expression"
        )),
        _ => Err(format!(
            "{what}: one rule per test, found {}; write each as its own list item",
            rules.iter().map(|r| r.name()).collect::<Vec<_>>().join(" and ")
        )),
    }
}

/// `30s`, `30m`, `12h`, `2d`, `1w`, `1h 30m` (humantime's durations), or plain seconds.
pub fn parse_age(text: &str) -> Option<u64> {
    let text = text.trim();
    text.parse().ok().or_else(|| humantime::parse_duration(text).ok().map(|d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_per_test() {
        let raw = RawTest { not_null: Some(vec!["a".into()]), ..Default::default() };
        assert_eq!(check("t", &raw, "tests.t[0]").unwrap().rule, Rule::NotNull(vec!["a".into()]));
        let two = RawTest { expression: Some("a > 0".into()), ..raw.clone() };
        assert_eq!(
            check("t", &two, "tests.t[0]").unwrap_err(),
            "tests.t[0]: one rule per test, found not_null(a) and expression(a > 0); write each as its own list item"
        );
        assert!(check("t", &RawTest::default(), "x").unwrap_err().starts_with("x: no rule; use one of"));
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("2d"), Some(172_800));
        assert_eq!(parse_age("90"), Some(90));
        assert_eq!(parse_age("1w"), Some(604_800));
        assert_eq!(parse_age("two days"), None);
    }
}
