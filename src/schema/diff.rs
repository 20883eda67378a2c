//! The changes between two snapshots, what a policy refuses of them, and what `evolve` applies
//! to an existing table.

use datafusion::arrow::datatypes::DataType;
use serde::Serialize;

use super::snapshot::{Snapshot, widens};
use crate::config::Policy;

/// What kind of change a column went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new column.
    Added,
    /// A column that is gone.
    Removed,
    /// A type that holds every old value (int32 → int64, float32 → float64, decimal precision up).
    Widened,
    /// The reverse of a widening: old values may not fit.
    Narrowed,
    /// Any other type change (int → text, date → timestamp, ...).
    Retyped,
    /// NULL became allowed or disallowed.
    Nullability,
    /// The same columns in another order.
    Reordered,
}

impl ChangeKind {
    /// Whether `evolve` may apply it: additions, widenings, nullability and order are safe;
    /// removals, narrowings and other type changes are not.
    pub fn is_safe(self) -> bool {
        matches!(self, ChangeKind::Added | ChangeKind::Widened | ChangeKind::Nullability | ChangeKind::Reordered)
    }

    /// The name used in messages and the catalog.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Widened => "widened",
            ChangeKind::Narrowed => "narrowed",
            ChangeKind::Retyped => "retyped",
            ChangeKind::Nullability => "nullability",
            ChangeKind::Reordered => "reordered",
        }
    }
}

/// One change between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The column (for a reorder: every column, comma-separated).
    pub column: String,
    /// The old type, nullability or order.
    pub before: Option<String>,
    /// The new one.
    pub after: Option<String>,
}

impl Change {
    /// One line of a diff: `+ added     discount  Float64`.
    pub fn describe(&self) -> String {
        let sign = match self.kind {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            k if k.is_safe() => '~',
            _ => '!',
        };
        let detail = match (&self.before, &self.after) {
            (Some(b), Some(a)) => format!("{b} → {a}"),
            (Some(b), None) => b.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => String::new(),
        };
        format!("{sign} {:<11} {}  {detail}", self.kind.name(), self.column).trim_end().to_string()
    }
}

/// What a change of type is. Beyond [`widens`]: a timestamp that keeps its time zone and
/// gets a coarser unit is narrowed (sub-unit digits are lost); a change of time zone (or
/// gaining or losing one) is retyped, since the same digits then name other instants; a
/// change to nanoseconds is retyped too, since nanoseconds reach only the years 1677–2262.
fn classify(from: &DataType, to: &DataType) -> ChangeKind {
    if widens(from, to) {
        return ChangeKind::Widened;
    }
    match (from, to) {
        (DataType::Timestamp(a, tz_a), DataType::Timestamp(b, tz_b)) if tz_a == tz_b && b < a => ChangeKind::Narrowed,
        (DataType::Timestamp(..), DataType::Timestamp(..)) => ChangeKind::Retyped,
        _ if widens(to, from) => ChangeKind::Narrowed,
        _ => ChangeKind::Retyped,
    }
}

/// The changes from `old` to `new`, removals and additions first, then per column in the new
/// order, then a reorder if the columns both have are in another order.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<Change> {
    let find = |s: &Snapshot, name: &str| s.columns.iter().position(|c| c.name == name);
    let nullability = |nullable: bool| if nullable { "nullable" } else { "NOT NULL" }.to_string();
    let mut changes = Vec::new();
    for c in &old.columns {
        if find(new, &c.name).is_none() {
            changes.push(Change {
                kind: ChangeKind::Removed,
                column: c.name.clone(),
                before: Some(c.data_type.to_string()),
                after: None,
            });
        }
    }
    for c in &new.columns {
        let Some(i) = find(old, &c.name) else {
            changes.push(Change {
                kind: ChangeKind::Added,
                column: c.name.clone(),
                before: None,
                after: Some(format!("{}{}", c.data_type, if c.nullable { "" } else { " NOT NULL" })),
            });
            continue;
        };
        let was = &old.columns[i];
        if was.data_type != c.data_type {
            changes.push(Change {
                kind: classify(&was.data_type, &c.data_type),
                column: c.name.clone(),
                before: Some(was.data_type.to_string()),
                after: Some(c.data_type.to_string()),
            });
        }
        if was.nullable != c.nullable {
            changes.push(Change {
                kind: ChangeKind::Nullability,
                column: c.name.clone(),
                before: Some(nullability(was.nullable)),
                after: Some(nullability(c.nullable)),
            });
        }
    }
    let common = |a: &Snapshot, b: &Snapshot| -> Vec<String> {
        a.columns.iter().filter(|c| find(b, &c.name).is_some()).map(|c| c.name.clone()).collect()
    };
    let (before, after) = (common(old, new), common(new, old));
    if before != after {
        changes.push(Change {
            kind: ChangeKind::Reordered,
            column: "columns".into(),
            before: Some(before.join(", ")),
            after: Some(after.join(", ")),
        });
    }
    changes
}

/// The changes `policy` refuses: all under `fail`, the unsafe ones under `evolve`, none under
/// `warn` and `ignore`.
pub fn refused(policy: Policy, changes: &[Change]) -> Vec<&Change> {
    match policy {
        Policy::Fail => changes.iter().collect(),
        Policy::Evolve => changes.iter().filter(|c| !c.kind.is_safe()).collect(),
        Policy::Warn | Policy::Ignore => vec![],
    }
}

/// What `evolve` changes in an existing target table: the columns whose drift it allowed and,
/// with [`Evolution::to_table`], every column of the model the table lacks (as dbt's
/// `append_new_columns` compares with the table): a table can be behind the accepted schema,
/// after `dfpipe schema accept`. Types are widened, and NOT NULL dropped, only where the drift
/// did so: a table's own types (a user's DDL) are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evolution {
    /// Whether columns are added by comparing with the table, not only by the drift.
    pub to_table: bool,
    /// Columns the model gained: added to the table.
    pub added: Vec<String>,
    /// Columns whose type the model widened: widened in the table.
    pub widened: Vec<String>,
    /// Columns that became nullable: NOT NULL dropped in the table.
    pub nullable: Vec<String>,
}

impl Evolution {
    /// The evolution a model's changes call for.
    pub fn of(changes: &[Change]) -> Evolution {
        let columns = |kind: ChangeKind, after: Option<&str>| -> Vec<String> {
            changes
                .iter()
                .filter(|c| c.kind == kind && after.is_none_or(|a| c.after.as_deref() == Some(a)))
                .map(|c| c.column.clone())
                .collect()
        };
        Evolution {
            to_table: false,
            added: columns(ChangeKind::Added, None),
            widened: columns(ChangeKind::Widened, None),
            nullable: columns(ChangeKind::Nullability, Some("nullable")),
        }
    }

    /// This evolution, also adding whatever columns the table lacks (see [`Evolution`]).
    pub fn to_table(self) -> Evolution {
        Evolution { to_table: true, ..self }
    }

    /// Whether `column` is added when the table lacks it.
    pub fn adds(&self, column: &str) -> bool {
        self.to_table || self.added.iter().any(|c| c == column)
    }

    /// Whether `column` is widened when the table holds a narrower type.
    pub fn widens(&self, column: &str) -> bool {
        self.widened.iter().any(|c| c == column)
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        !self.to_table && self.added.is_empty() && self.widened.is_empty() && self.nullable.is_empty()
    }
}
