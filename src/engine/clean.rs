//! A source's `clean:` options, compiled into the SQL of the view models read it through: column
//! naming, casts, date and timestamp parsing with the format detected from a sample, decimal
//! precision for floats. The raw listing table is registered as `__dfpipe_raw_<source>`;
//! `dfpipe plan` prints the view's SQL.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::prelude::SessionContext;
use dfpipe_udfs::parse::{DATE_FORMATS, TIMESTAMP_FORMATS, parse_date, parse_timestamp};

use crate::config::{CleanConfig, Naming};
use crate::util::sql::quote;

/// Rows sampled per string column to detect a date format.
pub const DATE_SAMPLE_ROWS: usize = 1000;

/// The name the raw listing table of `source` is registered under.
pub fn raw_table(source: &str) -> String {
    format!("__dfpipe_raw_{source}")
}

/// Applies a naming rule.
pub fn rename(name: &str, naming: Naming) -> String {
    match naming {
        Naming::Keep => name.to_string(),
        Naming::Lower => name.to_lowercase(),
        Naming::Upper => name.to_uppercase(),
        Naming::SnakeCase => dfpipe_udfs::snake_case(name),
        Naming::Capitalize => {
            let lower = name.to_lowercase();
            let mut chars = lower.chars();
            chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        }
    }
}

/// The date or timestamp format every sampled value of a string column parses with, if any:
/// `(is_timestamp, format)`. Date formats are tried first, in [`DATE_FORMATS`] order.
pub fn detect_format(values: &[&str]) -> Option<(bool, &'static str)> {
    if values.is_empty() {
        return None;
    }
    let all = |f: &dyn Fn(&str) -> bool| values.iter().all(|v| f(v));
    if let Some(format) = DATE_FORMATS.iter().find(|f| **f != "%Y-%m" && all(&|v| parse_date(v, Some(f)).is_some())) {
        return Some((false, format));
    }
    TIMESTAMP_FORMATS.iter().find(|f| all(&|v| parse_timestamp(v, Some(f)).is_some())).map(|f| (true, *f))
}

/// The view's SQL over the raw table with `schema`; errors name the option at fault.
pub async fn view_sql(
    ctx: &SessionContext,
    source: &str,
    schema: &Schema,
    clean: &CleanConfig,
) -> Result<String, String> {
    let raw = quote(&raw_table(source));
    for column in clean.casts.iter().map(|(c, _)| c).chain(&clean.dates) {
        if schema.field_with_name(column).is_err() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(format!("clean: no column `{column}` (its columns: {})", names.join(", ")));
        }
    }
    let mut select = Vec::new();
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for field in schema.fields() {
        let name = field.name();
        let column = quote(name);
        let cast_to = clean.casts.iter().find(|(c, _)| c == name).map(|(_, t)| t);
        let wants_date = clean.auto_dates || clean.dates.contains(name);
        let is_text = matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let expr = if let Some(t) = cast_to {
            format!("CAST({column} AS {t})")
        } else if wants_date && is_text {
            let sample = ctx
                .sql(&format!("SELECT {column} FROM {raw} WHERE {column} IS NOT NULL LIMIT {DATE_SAMPLE_ROWS}"))
                .await
                .map_err(|e| e.to_string())?
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            let mut values = Vec::new();
            for batch in &sample {
                let text = cast(batch.column(0), &DataType::Utf8).map_err(|e| e.to_string())?;
                let text = text.as_string::<i32>();
                values.extend((0..text.len()).filter(|i| text.is_valid(*i)).map(|i| text.value(i).to_string()));
            }
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            match detect_format(&refs) {
                Some((false, format)) => format!("parse_date({column}, '{format}')"),
                Some((true, format)) => format!("parse_timestamp({column}, '{format}')"),
                None if clean.dates.contains(name) => {
                    return Err(format!(
                        "clean.dates: column `{name}`: no single date or timestamp format reads all of {} sampled value(s), e.g. `{}`; CAST or parse it in a model",
                        refs.len(),
                        refs.iter()
                            .find(|v| parse_date(v, None).is_none() && parse_timestamp(v, None).is_none())
                            .or(refs.first())
                            .unwrap_or(&"")
                    ));
                }
                None => column.clone(),
            }
        } else if let (Some(scale), DataType::Float16 | DataType::Float32 | DataType::Float64) =
            (clean.decimals, field.data_type())
        {
            format!("CAST({column} AS DECIMAL(38, {scale}))")
        } else {
            column.clone()
        };
        let renamed = rename(name, clean.columns);
        if let Some(first) = names.insert(renamed.clone(), name) {
            return Err(format!(
                "clean.columns: columns `{first}` and `{name}` both become `{renamed}`; rename one in a model instead"
            ));
        }
        select.push(format!("{expr} AS {}", quote(&renamed)));
    }
    Ok(format!("SELECT {} FROM {raw}", select.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_rules() {
        assert_eq!(rename("Order ID", Naming::SnakeCase), "order_id");
        assert_eq!(rename("order_id", Naming::Upper), "ORDER_ID");
        assert_eq!(rename("ORDER_ID", Naming::Capitalize), "Order_id");
        assert_eq!(rename("MiXed", Naming::Lower), "mixed");
        assert_eq!(rename("As Is", Naming::Keep), "As Is");
    }

    #[test]
    fn formats_are_detected_from_every_sampled_value() {
        assert_eq!(detect_format(&["2024-01-31", "2023-12-01"]), Some((false, "%Y-%m-%d")));
        // 13/01 rules out month-first.
        assert_eq!(detect_format(&["01/02/2024", "13/01/2024"]), Some((false, "%d/%m/%Y")));
        assert_eq!(detect_format(&["01/02/2024", "12/31/2024"]), Some((false, "%m/%d/%Y")));
        assert_eq!(
            detect_format(&["2024-01-31 10:00:00", "2024-02-01 11:30:00.5"]),
            Some((true, "%Y-%m-%d %H:%M:%S%.f"))
        );
        assert_eq!(detect_format(&["2024-01-31", "soon"]), None);
        assert_eq!(detect_format(&[]), None);
    }
}
