//! A snapshot of a relation's columns, and the logical types drift is judged on.

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Serialize;
use serde::ser::SerializeStruct;

/// One column of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its logical Arrow type (see [`logical_type`]).
    pub data_type: DataType,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// For people and JSON output: the type as Arrow displays it (the catalog stores its own
/// stable form: see the `stored` module).
impl Serialize for Column {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Column", 3)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("type", &self.data_type.to_string())?;
        s.serialize_field("nullable", &self.nullable)?;
        s.end()
    }
}

/// The columns of a source, model or target at one point in time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
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
                data_type: logical_type(f.data_type()),
                nullable: f.is_nullable(),
            })
            .collect();
        Snapshot { columns }
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
        // A column that held only NULLs (its type never seen) fits any type.
        (Null, _) => true,
        (Float16, Float32 | Float64) | (Float32, Float64) => true,
        (Int8 | Int16 | UInt8 | UInt16, Float32) => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Float64) => true,
        (List(a), List(b)) => widens(a.data_type(), b.data_type()),
        // A finer unit up to microseconds holds every value (and any real date) exactly;
        // nanoseconds reach only the years 1677–2262. The time zone must stay.
        (Timestamp(a, tz_a), Timestamp(b, tz_b)) => tz_a == tz_b && a < b && *b != TimeUnit::Nanosecond,
        _ => false,
    }
}
