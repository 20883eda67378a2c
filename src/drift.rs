//! Schema drift: a snapshot of a relation's columns, the changes between two snapshots, and
//! what a project's `on_schema_change` policy makes of them.
//!
//! Types are compared as logical types: `Utf8`, `LargeUtf8` and `Utf8View` are one type, as
//! are the binary variants, and a dictionary is its value type, so a reader that switches
//! physical layouts is not drift.

use std::str::FromStr;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

/// One column of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its logical Arrow type, as Arrow displays it (`Int64`, `Decimal128(12, 2)`, ...).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// The columns of a source, model or target at one point in time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The columns, in order.
    pub columns: Vec<Column>,
}

impl Snapshot {
    /// The snapshot of an Arrow schema.
    pub fn of(schema: &Schema) -> Snapshot {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                data_type: logical_type(f.data_type()).to_string(),
                nullable: f.is_nullable(),
            })
            .collect();
        Snapshot { columns }
    }

    /// A stable fingerprint of names, types and nullability (FNV-1a, 64 bits, hex).
    pub fn fingerprint(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for c in &self.columns {
            for byte in c.name.bytes().chain([0]).chain(c.data_type.bytes()).chain([0, c.nullable as u8, 0xff]) {
                hash ^= byte as u64;
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{hash:016x}")
    }

    /// The columns as JSON (how the catalog stores them).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.columns).expect("columns serialize")
    }

    /// Reads [`Snapshot::to_json`]'s output.
    pub fn from_json(json: &str) -> Result<Snapshot, String> {
        serde_json::from_str(json).map(|columns| Snapshot { columns }).map_err(|e| e.to_string())
    }

    /// One line per column: `name  type  [NOT NULL]`.
    pub fn describe(&self) -> String {
        let width = self.columns.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
        self.columns
            .iter()
            .map(|c| format!("  {:<width$}  {}{}\n", c.name, c.data_type, if c.nullable { "" } else { " NOT NULL" }))
            .collect()
    }
}

/// The type drift is judged on: physical variants of one logical type are the same type.
pub fn logical_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, values) => logical_type(values),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) => {
            DataType::new_list(logical_type(f.data_type()), true)
        }
        DataType::Struct(fields) => DataType::Struct(
            fields.iter().map(|f| Field::new(f.name(), logical_type(f.data_type()), f.is_nullable())).collect(),
        ),
        other => other.clone(),
    }
}

/// Whether every value of `from` fits `to` exactly (a safe widening), and they differ.
pub fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    /// (signed, bits) of an integer type.
    fn int(t: &DataType) -> Option<(bool, u32)> {
        Some(match t {
            Int8 => (true, 8),
            Int16 => (true, 16),
            Int32 => (true, 32),
            Int64 => (true, 64),
            UInt8 => (false, 8),
            UInt16 => (false, 16),
            UInt32 => (false, 32),
            UInt64 => (false, 64),
            _ => return None,
        })
    }
    /// (precision, scale) of a decimal type.
    fn decimal(t: &DataType) -> Option<(u8, i8)> {
        match t {
            Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => Some((*p, *s)),
            _ => None,
        }
    }
    if from == to {
        return false;
    }
    if let (Some((signed_a, bits_a)), Some((signed_b, bits_b))) = (int(from), int(to)) {
        return bits_b > bits_a && (signed_a == signed_b || signed_b);
    }
    if let (Some((p1, s1)), Some((p2, s2))) = (decimal(from), decimal(to)) {
        return s2 >= s1 && (p2 as i16 - s2 as i16) >= (p1 as i16 - s1 as i16);
    }
    if let (Some((_, bits)), Some((p, s))) = (int(from), decimal(to)) {
        // Digits of the largest value: 8 bits → 3, 16 → 5, 32 → 10, 64 → 19 (u64: 20).
        let digits = match bits {
            8 => 3,
            16 => 5,
            32 => 10,
            _ => 20,
        };
        return p as i16 - s as i16 >= digits;
    }
    match (from, to) {
        (Float16, Float32 | Float64) | (Float32, Float64) => true,
        (Int8 | Int16 | UInt8 | UInt16, Float32) => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Float64) => true,
        (List(a), List(b)) => widens(a.data_type(), b.data_type()),
        _ => false,
    }
}

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
                before: Some(c.data_type.clone()),
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
            let kind = match (DataType::from_str(&was.data_type), DataType::from_str(&c.data_type)) {
                (Ok(a), Ok(b)) if widens(&a, &b) => ChangeKind::Widened,
                (Ok(a), Ok(b)) if widens(&b, &a) => ChangeKind::Narrowed,
                _ => ChangeKind::Retyped,
            };
            changes.push(Change {
                kind,
                column: c.name.clone(),
                before: Some(was.data_type.clone()),
                after: Some(c.data_type.clone()),
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

/// `on_schema_change`: what a run does when a schema differs from its accepted baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Any change stops the run before anything is written.
    Fail,
    /// Report the changes and go on; targets are loaded as they are (a column the table lacks
    /// fails its load).
    Warn,
    /// Apply safe changes (added columns, widened types, relaxed nullability, order) and adapt
    /// the targets to them; unsafe ones (removed, narrowed or retyped columns) still fail.
    #[default]
    Evolve,
    /// Say nothing and go on.
    Ignore,
}

impl Policy {
    /// The name written in dfpipe.yml.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Fail => "fail",
            Policy::Warn => "warn",
            Policy::Evolve => "evolve",
            Policy::Ignore => "ignore",
        }
    }

    /// The changes this policy refuses.
    pub fn refused(self, changes: &[Change]) -> Vec<&Change> {
        match self {
            Policy::Fail => changes.iter().collect(),
            Policy::Evolve => changes.iter().filter(|c| !c.kind.is_safe()).collect(),
            Policy::Warn | Policy::Ignore => vec![],
        }
    }
}

/// What `evolve` changes in an existing target table: only the columns whose drift it allowed
/// (a table that differs from the model for other reasons is left alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evolution {
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
            added: columns(ChangeKind::Added, None),
            widened: columns(ChangeKind::Widened, None),
            nullable: columns(ChangeKind::Nullability, Some("nullable")),
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.widened.is_empty() && self.nullable.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(cols: &[(&str, DataType, bool)]) -> Snapshot {
        Snapshot::of(&Schema::new(cols.iter().map(|(n, t, null)| Field::new(*n, t.clone(), *null)).collect::<Vec<_>>()))
    }

    #[test]
    fn classifies_every_kind_of_change() {
        use DataType::*;
        let old = snap(&[
            ("id", Int32, false),
            ("price", Decimal128(10, 2), true),
            ("qty", Int64, true),
            ("note", Utf8, true),
            ("code", Int64, true),
            ("day", Date32, true),
        ]);
        let new = snap(&[
            ("id", Int64, true),
            ("qty", Int32, true),
            ("price", Decimal128(12, 2), true),
            ("code", Utf8View, true),
            ("day", Date32, true),
            ("extra", Float64, false),
        ]);
        let lines: Vec<String> = diff(&old, &new).iter().map(Change::describe).collect();
        assert_eq!(
            lines,
            [
                "- removed     note  Utf8",
                "~ widened     id  Int32 → Int64",
                "~ nullability id  NOT NULL → nullable",
                "! narrowed    qty  Int64 → Int32",
                "~ widened     price  Decimal128(10, 2) → Decimal128(12, 2)",
                "! retyped     code  Int64 → Utf8",
                "+ added       extra  Float64 NOT NULL",
                "~ reordered   columns  id, price, qty, code, day → id, qty, price, code, day",
            ]
        );
        assert_eq!(diff(&old, &old), vec![]);
        let evolution = Evolution::of(&diff(&old, &new));
        assert_eq!(evolution.added, ["extra"]);
        assert_eq!(evolution.widened, ["id", "price"]);
        assert_eq!(evolution.nullable, ["id"]);
        assert!(Evolution::of(&[]).is_empty());
    }

    #[test]
    fn physical_variants_are_not_drift() {
        let a = snap(&[("s", DataType::Utf8, true)]);
        let b = snap(&[("s", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8View)), true)]);
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), snap(&[("s", DataType::Utf8, false)]).fingerprint());
        assert_eq!(Snapshot::from_json(&a.to_json()).unwrap(), a);
    }

    #[test]
    fn widening_rules() {
        use DataType::*;
        assert!(widens(&Int32, &Int64) && widens(&UInt32, &Int64) && widens(&Float32, &Float64));
        assert!(!widens(&Int64, &Int32) && !widens(&Int32, &UInt64) && !widens(&Int64, &Float64));
        assert!(widens(&Int32, &Decimal128(12, 2)) && !widens(&Int32, &Decimal128(10, 2)));
        assert!(widens(&Decimal128(10, 2), &Decimal128(11, 3)) && !widens(&Decimal128(10, 2), &Decimal128(10, 3)));
    }

    #[test]
    fn policies_refuse() {
        let changes = diff(&snap(&[("a", DataType::Int32, true)]), &snap(&[("b", DataType::Int32, true)]));
        assert_eq!(Policy::Fail.refused(&changes).len(), 2);
        assert_eq!(Policy::Evolve.refused(&changes).len(), 1);
        assert_eq!(Policy::Warn.refused(&changes).len(), 0);
    }
}
