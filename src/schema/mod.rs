//! Schema drift: a snapshot of a relation's columns, the changes between two snapshots, and
//! what a project's `on_schema_change` policy makes of them.
//!
//! Types are compared as logical types: `Utf8`, `LargeUtf8` and `Utf8View` are one type, as
//! are the binary variants, and a dictionary is its value type, so a reader that switches
//! physical layouts is not drift.
//!
//! Pure: nothing here reads files or databases. May import: [`crate::config`] (the policy type)
//! and Arrow. Used by the catalog, the checks, the run and the sinks.

mod diff;
mod snapshot;
pub mod stored;

use serde::Serialize;

pub use diff::{Change, ChangeKind, Evolution, diff, refused};
pub use snapshot::{Column, Snapshot, logical_type, widens};

/// What a schema belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An input table.
    Source,
    /// A `.sql` model's output.
    Model,
    /// What was written to a target.
    Target,
}

impl Kind {
    /// The name stored in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Model => "model",
            Kind::Target => "target",
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::config::Policy;

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
        assert!(widens(&Null, &Utf8) && widens(&Null, &Int64) && !widens(&Utf8, &Null));
    }

    #[test]
    fn timestamp_units_and_zones_are_classified_deliberately() {
        use DataType::Timestamp;
        use datafusion::arrow::datatypes::TimeUnit::*;
        let utc = || Some("UTC".into());
        let kind = |a: DataType, b: DataType| {
            diff(&snap(&[("t", a, true)]), &snap(&[("t", b, true)])).iter().map(|c| c.kind).collect::<Vec<_>>()
        };
        assert_eq!(kind(Timestamp(Second, None), Timestamp(Microsecond, None)), [ChangeKind::Widened]);
        assert_eq!(kind(Timestamp(Millisecond, utc()), Timestamp(Microsecond, utc())), [ChangeKind::Widened]);
        assert_eq!(kind(Timestamp(Microsecond, None), Timestamp(Millisecond, None)), [ChangeKind::Narrowed]);
        assert_eq!(kind(Timestamp(Nanosecond, None), Timestamp(Microsecond, None)), [ChangeKind::Narrowed]);
        assert_eq!(kind(Timestamp(Microsecond, None), Timestamp(Nanosecond, None)), [ChangeKind::Retyped]);
        assert_eq!(kind(Timestamp(Microsecond, None), Timestamp(Microsecond, utc())), [ChangeKind::Retyped]);
        assert_eq!(
            kind(Timestamp(Second, utc()), Timestamp(Microsecond, Some("+01:00".into()))),
            [ChangeKind::Retyped]
        );
    }

    #[test]
    fn policies_refuse() {
        let changes = diff(&snap(&[("a", DataType::Int32, true)]), &snap(&[("b", DataType::Int32, true)]));
        assert_eq!(refused(Policy::Fail, &changes).len(), 2);
        assert_eq!(refused(Policy::Evolve, &changes).len(), 1);
        assert_eq!(refused(Policy::Warn, &changes).len(), 0);
    }
}
