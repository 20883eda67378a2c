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

/// The Arrow type to encode for an existing column of PostgreSQL type `pg` (as `format_type`
/// prints it), given the model's Arrow type. `None` when dfpipe cannot write that column type.
pub fn arrow_for_pg(pg: &str, model: &DataType) -> Option<DataType> {
    let base = pg.split('(').next().unwrap_or(pg).trim();
    Some(match base {
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
        "interval" => DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano),
        "jsonb" if matches!(model, DataType::Struct(_) | DataType::Map(_, _)) => model.clone(),
        array if array.ends_with("[]") => match model {
            DataType::List(f) | DataType::LargeList(f) => {
                let element = arrow_for_pg(array.trim_end_matches("[]"), f.data_type())?;
                DataType::List(std::sync::Arc::new(datafusion::arrow::datatypes::Field::new("item", element, true)))
            }
            _ => return None,
        },
        "numeric" => match typmod(pg) {
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

fn typmod(pg: &str) -> Option<(u32, u32)> {
    let inner = pg.split_once('(')?.1.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
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
    }
}
