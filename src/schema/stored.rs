//! How snapshots are stored: Arrow types as a JSON of dfpipe's own, stable across Arrow
//! releases (Arrow's `Display` text is not: an upgrade that respells a type would make every
//! column look retyped).
//!
//! Format 2 (current): `{"format": 2, "columns": [{"name": "id", "type": "int64", "nullable":
//! false}, …]}`. A type without parameters is a string (`"int64"`, `"utf8"`, `"date32"`); one
//! with parameters is an object tagged by `"type"`: `{"type": "decimal128", "precision": 12,
//! "scale": 2}`, `{"type": "timestamp", "unit": "us", "tz": "UTC"}`, `{"type": "list", "item":
//! <column>}`, `{"type": "struct", "fields": [<column>, …]}`. Format 1 (dfpipe before it) was a
//! bare array of columns whose type was Arrow's display text; it is still read.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use serde_json::{Value, json};

use super::snapshot::{Column, Snapshot};

/// The snapshot format this dfpipe writes.
pub const FORMAT: u64 = 2;

impl Snapshot {
    /// The columns as the catalog stores them, in the current format.
    pub fn to_json(&self) -> String {
        let columns: Vec<Value> =
            self.columns.iter().map(|c| column_value(&c.name, &c.data_type, c.nullable)).collect();
        json!({ "format": FORMAT, "columns": columns }).to_string()
    }

    /// Reads a stored snapshot, in the current format or format 1.
    pub fn from_json(text: &str) -> Result<Snapshot, String> {
        from_json(text)
    }

    /// A fingerprint of names, types (in their stored form, so stable across Arrow releases)
    /// and nullability: FNV-1a, 64 bits, hex.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::new();
        for c in &self.columns {
            let data_type = type_value(&c.data_type).to_string();
            bytes.extend(c.name.bytes().chain([0]).chain(data_type.bytes()).chain([0, c.nullable as u8, 0xff]));
        }
        format!("{:016x}", crate::util::fnv1a(&bytes))
    }
}

fn from_json(text: &str) -> Result<Snapshot, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let (columns, legacy) = match &value {
        Value::Array(columns) => (columns, true),
        Value::Object(o) => match (o.get("format").and_then(Value::as_u64), o.get("columns")) {
            (Some(FORMAT), Some(Value::Array(columns))) => (columns, false),
            (format, _) => {
                return Err(format!(
                    "snapshot format {} is not one this dfpipe reads (it reads 1 and {FORMAT}); upgrade dfpipe",
                    format.map_or("?".to_string(), |f| f.to_string())
                ));
            }
        },
        _ => return Err("a stored snapshot is not a JSON object".to_string()),
    };
    let columns = columns
        .iter()
        .map(|c| {
            let (name, data_type, nullable) = if legacy { legacy_column(c)? } else { column(c)? };
            Ok(Column { name, data_type, nullable })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Snapshot { columns })
}

/// Whether stored text is in the current format.
pub fn is_current(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v.get("format").and_then(Value::as_u64) == Some(FORMAT))
}

fn column_value(name: &str, data_type: &DataType, nullable: bool) -> Value {
    json!({ "name": name, "type": type_value(data_type), "nullable": nullable })
}

fn field_value(f: &Field) -> Value {
    column_value(f.name(), f.data_type(), f.is_nullable())
}

fn column(v: &Value) -> Result<(String, DataType, bool), String> {
    let name = v.get("name").and_then(Value::as_str).ok_or("a stored column has no name")?;
    let data_type = type_of(v.get("type").ok_or_else(|| format!("stored column `{name}` has no type"))?)
        .map_err(|e| format!("stored column `{name}`: {e}"))?;
    let nullable = v.get("nullable").and_then(Value::as_bool).unwrap_or(true);
    Ok((name.to_string(), data_type, nullable))
}

fn field(v: &Value) -> Result<Field, String> {
    let (name, data_type, nullable) = column(v)?;
    Ok(Field::new(name, data_type, nullable))
}

/// Format 1: `{"name": …, "type": "<Arrow's display text>", "nullable": …}`.
fn legacy_column(v: &Value) -> Result<(String, DataType, bool), String> {
    let name = v.get("name").and_then(Value::as_str).ok_or("a stored column has no name")?;
    let text = v.get("type").and_then(Value::as_str).unwrap_or_default();
    let data_type = DataType::from_str(text)
        .map_err(|e| format!("stored column `{name}`: type `{text}` (format 1) is not readable: {e}"))?;
    let nullable = v.get("nullable").and_then(Value::as_bool).unwrap_or(true);
    Ok((name.to_string(), data_type, nullable))
}

fn unit_name(unit: &TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

fn unit_of(v: &Value) -> Result<TimeUnit, String> {
    Ok(match v.get("unit").and_then(Value::as_str) {
        Some("s") => TimeUnit::Second,
        Some("ms") => TimeUnit::Millisecond,
        Some("us") => TimeUnit::Microsecond,
        Some("ns") => TimeUnit::Nanosecond,
        other => return Err(format!("unknown time unit {other:?}")),
    })
}

/// The stored form of one type.
pub fn type_value(data_type: &DataType) -> Value {
    use DataType::*;
    let simple = |name: &str| Value::String(name.to_string());
    match data_type {
        Null => simple("null"),
        Boolean => simple("boolean"),
        Int8 => simple("int8"),
        Int16 => simple("int16"),
        Int32 => simple("int32"),
        Int64 => simple("int64"),
        UInt8 => simple("uint8"),
        UInt16 => simple("uint16"),
        UInt32 => simple("uint32"),
        UInt64 => simple("uint64"),
        Float16 => simple("float16"),
        Float32 => simple("float32"),
        Float64 => simple("float64"),
        Utf8 => simple("utf8"),
        LargeUtf8 => simple("large_utf8"),
        Utf8View => simple("utf8_view"),
        Binary => simple("binary"),
        LargeBinary => simple("large_binary"),
        BinaryView => simple("binary_view"),
        Date32 => simple("date32"),
        Date64 => simple("date64"),
        Decimal32(p, s) => json!({"type": "decimal32", "precision": p, "scale": s}),
        Decimal64(p, s) => json!({"type": "decimal64", "precision": p, "scale": s}),
        Decimal128(p, s) => json!({"type": "decimal128", "precision": p, "scale": s}),
        Decimal256(p, s) => json!({"type": "decimal256", "precision": p, "scale": s}),
        Timestamp(unit, tz) => json!({"type": "timestamp", "unit": unit_name(unit), "tz": tz.as_deref()}),
        Time32(unit) => json!({"type": "time32", "unit": unit_name(unit)}),
        Time64(unit) => json!({"type": "time64", "unit": unit_name(unit)}),
        Duration(unit) => json!({"type": "duration", "unit": unit_name(unit)}),
        Interval(unit) => json!({"type": "interval", "unit": match unit {
            IntervalUnit::YearMonth => "year_month",
            IntervalUnit::DayTime => "day_time",
            IntervalUnit::MonthDayNano => "month_day_nano",
        }}),
        FixedSizeBinary(size) => json!({"type": "fixed_size_binary", "size": size}),
        List(f) => json!({"type": "list", "item": field_value(f)}),
        LargeList(f) => json!({"type": "large_list", "item": field_value(f)}),
        ListView(f) => json!({"type": "list_view", "item": field_value(f)}),
        LargeListView(f) => json!({"type": "large_list_view", "item": field_value(f)}),
        FixedSizeList(f, size) => json!({"type": "fixed_size_list", "size": size, "item": field_value(f)}),
        Struct(fields) => {
            json!({"type": "struct", "fields": fields.iter().map(|f| field_value(f)).collect::<Vec<_>>()})
        }
        Map(entries, sorted) => json!({"type": "map", "entries": field_value(entries), "sorted": sorted}),
        Dictionary(key, value) => json!({"type": "dictionary", "key": type_value(key), "value": type_value(value)}),
        // Unions and run-end encodings: no source dfpipe reads produces them; kept readable.
        other => json!({"type": "arrow", "text": other.to_string()}),
    }
}

/// Reads [`type_value`]'s output.
pub fn type_of(v: &Value) -> Result<DataType, String> {
    use DataType::*;
    if let Some(name) = v.as_str() {
        return Ok(match name {
            "null" => Null,
            "boolean" => Boolean,
            "int8" => Int8,
            "int16" => Int16,
            "int32" => Int32,
            "int64" => Int64,
            "uint8" => UInt8,
            "uint16" => UInt16,
            "uint32" => UInt32,
            "uint64" => UInt64,
            "float16" => Float16,
            "float32" => Float32,
            "float64" => Float64,
            "utf8" => Utf8,
            "large_utf8" => LargeUtf8,
            "utf8_view" => Utf8View,
            "binary" => Binary,
            "large_binary" => LargeBinary,
            "binary_view" => BinaryView,
            "date32" => Date32,
            "date64" => Date64,
            other => return Err(format!("unknown type `{other}`")),
        });
    }
    let tag = v.get("type").and_then(Value::as_str).ok_or_else(|| format!("unknown type {v}"))?;
    let number = |key: &str| v.get(key).and_then(Value::as_i64).ok_or_else(|| format!("{tag} without `{key}`"));
    let item = || field(v.get("item").ok_or_else(|| format!("{tag} without `item`"))?).map(Arc::new);
    Ok(match tag {
        "decimal32" => Decimal32(number("precision")? as u8, number("scale")? as i8),
        "decimal64" => Decimal64(number("precision")? as u8, number("scale")? as i8),
        "decimal128" => Decimal128(number("precision")? as u8, number("scale")? as i8),
        "decimal256" => Decimal256(number("precision")? as u8, number("scale")? as i8),
        "timestamp" => Timestamp(unit_of(v)?, v.get("tz").and_then(Value::as_str).map(Into::into)),
        "time32" => Time32(unit_of(v)?),
        "time64" => Time64(unit_of(v)?),
        "duration" => Duration(unit_of(v)?),
        "interval" => Interval(match v.get("unit").and_then(Value::as_str) {
            Some("year_month") => IntervalUnit::YearMonth,
            Some("day_time") => IntervalUnit::DayTime,
            Some("month_day_nano") => IntervalUnit::MonthDayNano,
            other => return Err(format!("unknown interval unit {other:?}")),
        }),
        "fixed_size_binary" => FixedSizeBinary(number("size")? as i32),
        "list" => List(item()?),
        "large_list" => LargeList(item()?),
        "list_view" => ListView(item()?),
        "large_list_view" => LargeListView(item()?),
        "fixed_size_list" => FixedSizeList(item()?, number("size")? as i32),
        "struct" => Struct(
            v.get("fields")
                .and_then(Value::as_array)
                .ok_or("struct without `fields`")?
                .iter()
                .map(field)
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        "map" => Map(
            Arc::new(field(v.get("entries").ok_or("map without `entries`")?)?),
            v.get("sorted").and_then(Value::as_bool).unwrap_or(false),
        ),
        "dictionary" => Dictionary(
            Box::new(type_of(v.get("key").ok_or("dictionary without `key`")?)?),
            Box::new(type_of(v.get("value").ok_or("dictionary without `value`")?)?),
        ),
        "arrow" => {
            let text = v.get("text").and_then(Value::as_str).unwrap_or_default();
            DataType::from_str(text).map_err(|e| format!("type `{text}`: {e}"))?
        }
        other => return Err(format!("unknown type `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        use DataType::*;
        let item = |t: DataType| Arc::new(Field::new("item", t, true));
        let types = [
            Null,
            Boolean,
            Int8,
            UInt64,
            Float16,
            Utf8View,
            BinaryView,
            Date64,
            Decimal32(9, 2),
            Decimal256(76, -3),
            Timestamp(TimeUnit::Nanosecond, Some("Europe/Paris".into())),
            Timestamp(TimeUnit::Second, None),
            Time32(TimeUnit::Millisecond),
            Duration(TimeUnit::Microsecond),
            Interval(IntervalUnit::DayTime),
            FixedSizeBinary(16),
            List(item(Int32)),
            LargeList(item(Utf8)),
            FixedSizeList(item(Float32), 3),
            Struct(vec![Field::new("a", Int64, false), Field::new("b", List(item(Date32)), true)].into()),
            Map(
                Arc::new(Field::new(
                    "entries",
                    Struct(vec![Field::new("key", Utf8, false), Field::new("value", Int64, true)].into()),
                    false,
                )),
                false,
            ),
            Dictionary(Box::new(Int16), Box::new(Utf8)),
        ];
        for t in types {
            assert_eq!(type_of(&type_value(&t)).unwrap(), t, "{}", type_value(&t));
        }
    }

    #[test]
    fn stored_text_is_pinned() {
        let snapshot = Snapshot {
            columns: vec![
                Column { name: "id".into(), data_type: DataType::Int64, nullable: false },
                Column { name: "price".into(), data_type: DataType::Decimal128(12, 2), nullable: true },
                Column {
                    name: "at".into(),
                    data_type: DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    nullable: true,
                },
            ],
        };
        let text = snapshot.to_json();
        assert_eq!(
            text,
            r#"{"columns":[{"name":"id","nullable":false,"type":"int64"},{"name":"price","nullable":true,"type":{"precision":12,"scale":2,"type":"decimal128"}},{"name":"at","nullable":true,"type":{"type":"timestamp","tz":"UTC","unit":"us"}}],"format":2}"#
        );
        assert!(is_current(&text));
        assert_eq!(from_json(&text).unwrap(), snapshot);
    }

    #[test]
    fn format_1_is_read() {
        let old = r#"[{"name":"id","type":"Int64","nullable":false},{"name":"price","type":"Decimal128(12, 2)","nullable":true}]"#;
        let snapshot = from_json(old).unwrap();
        assert_eq!(snapshot.columns[1].data_type, DataType::Decimal128(12, 2));
        assert!(!is_current(old));
        assert!(from_json(r#"{"format":9,"columns":[]}"#).unwrap_err().contains("upgrade dfpipe"));
    }
}
