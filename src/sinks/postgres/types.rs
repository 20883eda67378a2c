//! Which PostgreSQL type each Arrow type becomes, and which Arrow type an existing PostgreSQL
//! column needs (the binary format is type-specific, so batches are cast to it first).

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// The PostgreSQL column type for an Arrow type, for `CREATE TABLE`.
pub fn pg_type(data_type: &DataType) -> Result<String, String> {
    Ok(match data_type {
        DataType::Null | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20,0)".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) if *s >= 0 && (*s as u8) <= *p => {
            format!("numeric({p},{s})")
        }
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => "numeric".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Dictionary(_, values) => pg_type(values)?,
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::Struct(_) | DataType::Map(_, _) => "jsonb".into(),
        DataType::List(f) | DataType::LargeList(f)
            if !matches!(f.data_type(), DataType::List(_) | DataType::LargeList(_)) =>
        {
            format!("{}[]", pg_type(f.data_type())?)
        }
        other => return Err(format!("Arrow type {other} has no PostgreSQL mapping yet; CAST it in the model")),
    })
}

/// A type name as PostgreSQL's `format_type` prints it, taken apart:
/// `character varying(20)[]` is the name `character varying`, the modifiers `20` and one array
/// dimension; `timestamp(3) without time zone` is `timestamp without time zone` with `3`.
#[derive(Debug, PartialEq, Eq)]
pub struct PgTypeName<'a> {
    /// The name without modifiers or array brackets, e.g. `timestamp without time zone`.
    pub name: String,
    /// What was inside the parentheses, e.g. `10,2`.
    pub modifiers: Option<&'a str>,
    /// Array dimensions (`[]` pairs at the end).
    pub dimensions: usize,
}

impl<'a> PgTypeName<'a> {
    /// Parses `format_type`'s output.
    pub fn parse(printed: &'a str) -> PgTypeName<'a> {
        let mut rest = printed.trim();
        let mut dimensions = 0;
        while let Some(inner) = rest.strip_suffix("[]") {
            dimensions += 1;
            rest = inner.trim_end();
        }
        let (name, modifiers) = match (rest.find('('), rest.find(')')) {
            (Some(open), Some(close)) if open < close => {
                let name = format!("{} {}", rest[..open].trim_end(), rest[close + 1..].trim_start());
                (name.trim().to_string(), Some(rest[open + 1..close].trim()))
            }
            _ => (rest.to_string(), None),
        };
        PgTypeName { name, modifiers, dimensions }
    }

    /// `(precision, scale)` of a `numeric(p[,s])`.
    fn precision_scale(&self) -> Option<(u32, u32)> {
        let inner = self.modifiers?;
        let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
        Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
    }
}

/// The Arrow type to encode for an existing column of PostgreSQL type `pg` (as `format_type`
/// prints it: modifiers and `[]` allowed), given the model's Arrow type. `None` when dfpipe
/// cannot write that column type.
pub fn arrow_for_pg(pg: &str, model: &DataType) -> Option<DataType> {
    let parsed = PgTypeName::parse(pg);
    match parsed.dimensions {
        0 => scalar_for_pg(&parsed, model),
        1 => match model {
            DataType::List(f) | DataType::LargeList(f) => {
                let element = PgTypeName { dimensions: 0, ..parsed };
                let element = scalar_for_pg(&element, f.data_type())?;
                Some(DataType::List(std::sync::Arc::new(datafusion::arrow::datatypes::Field::new(
                    "item", element, true,
                ))))
            }
            _ => None,
        },
        _ => None,
    }
}

fn scalar_for_pg(pg: &PgTypeName, model: &DataType) -> Option<DataType> {
    Some(match pg.name.as_str() {
        "boolean" => DataType::Boolean,
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "double precision" => DataType::Float64,
        "text" | "character varying" | "character" | "name" => DataType::Utf8,
        "bytea" => DataType::Binary,
        "date" => DataType::Date32,
        "timestamp without time zone" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp with time zone" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "time without time zone" => DataType::Time64(TimeUnit::Microsecond),
        // `interval`, and intervals restricted to fields (`interval year to month`).
        interval if interval == "interval" || interval.starts_with("interval ") => {
            DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
        }
        "jsonb" if matches!(model, DataType::Struct(_) | DataType::Map(_, _)) => model.clone(),
        "numeric" => match pg.precision_scale() {
            Some((p, s)) if p <= 38 => DataType::Decimal128(p as u8, s as i8),
            Some((p, s)) if p <= 76 => DataType::Decimal256(p as u8, s as i8),
            Some(_) => return None,
            // Unconstrained numeric takes any scale: keep exact decimals and integers as they are.
            None => match model {
                DataType::Decimal128(_, _) | DataType::Decimal256(_, _) | DataType::UInt64 => model.clone(),
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => DataType::Decimal128(38, 0),
                _ => DataType::Decimal128(38, 10),
            },
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_to_pg() {
        assert_eq!(pg_type(&DataType::Decimal128(12, 2)).unwrap(), "numeric(12,2)");
        assert_eq!(pg_type(&DataType::UInt32).unwrap(), "bigint");
        assert_eq!(pg_type(&DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))).unwrap(), "timestamptz");
    }

    #[test]
    fn pg_to_arrow() {
        assert_eq!(arrow_for_pg("numeric(15,2)", &DataType::Int32), Some(DataType::Decimal128(15, 2)));
        assert_eq!(arrow_for_pg("bigint", &DataType::Int32), Some(DataType::Int64));
        assert_eq!(arrow_for_pg("character varying(20)", &DataType::Utf8View), Some(DataType::Utf8));
        assert_eq!(arrow_for_pg("jsonb", &DataType::Utf8), None);
        let ts = DataType::Timestamp(TimeUnit::Nanosecond, None);
        assert_eq!(
            arrow_for_pg("timestamp(3) without time zone", &ts),
            Some(DataType::Timestamp(TimeUnit::Microsecond, None))
        );
        let list = |t: DataType| DataType::new_list(t, true);
        assert_eq!(arrow_for_pg("numeric(10,2)[]", &list(DataType::Float64)), Some(list(DataType::Decimal128(10, 2))));
        assert_eq!(arrow_for_pg("character varying(20)[]", &list(DataType::Utf8View)), Some(list(DataType::Utf8)));
        assert_eq!(arrow_for_pg("integer[]", &DataType::Int32), None);
        assert_eq!(arrow_for_pg("integer[][]", &list(DataType::Int32)), None);
    }

    #[test]
    fn type_names_taken_apart() {
        assert_eq!(
            PgTypeName::parse("timestamp(3) with time zone"),
            PgTypeName { name: "timestamp with time zone".into(), modifiers: Some("3"), dimensions: 0 }
        );
        assert_eq!(
            PgTypeName::parse("numeric(10,2)[]"),
            PgTypeName { name: "numeric".into(), modifiers: Some("10,2"), dimensions: 1 }
        );
        assert_eq!(
            PgTypeName::parse("interval year to month"),
            PgTypeName { name: "interval year to month".into(), modifiers: None, dimensions: 0 }
        );
    }
}
