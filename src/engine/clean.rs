//! A source's `clean:` options, compiled into the SQL of the view models read it through: column
//! naming, casts, date and timestamp parsing with the format detected from a sample, decimal
//! precision for floats (a CSV source's floats made decimal are read from their text, see
//! `engine::sources`, and reach the view decimal already). The raw listing table is registered as `__dfpipe_raw_<source>`;
//! `dfpipe plan` prints the view's SQL.
//!
//! A detected format is checked on every row, not only the sample: a value it does not read
//! stops the query with the source, column, format and value ([`REQUIRE_PARSED`]), never a
//! silent NULL. Blank values are NULL.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::exec_err;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use dfpipe_udfs::parse::{DATE_FORMATS, TIMESTAMP_FORMATS, parse_date, parse_timestamp};

use crate::config::{CleanConfig, Naming};
use crate::util::sql::{literal, quote};

/// `dfpipe_require_parsed(parsed, raw, context)`: `parsed`, unless it is NULL where the text
/// `raw` is not blank — then an error: `<context>: the value `raw` does not parse …`.
pub const REQUIRE_PARSED: &str = "dfpipe_require_parsed";

/// Registers [`REQUIRE_PARSED`].
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(RequireParsed {
        signature: Signature::one_of(vec![TypeSignature::Any(3)], Volatility::Immutable),
    }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RequireParsed {
    signature: Signature,
}

impl ScalarUDFImpl for RequireParsed {
    fn name(&self) -> &str {
        REQUIRE_PARSED
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let context = match &args.args[2] {
            ColumnarValue::Scalar(s) => s.to_string(),
            ColumnarValue::Array(_) => return exec_err!("{REQUIRE_PARSED}: the context must be a literal"),
        };
        let parsed = args.args[0].clone();
        let arrays = ColumnarValue::values_to_arrays(&args.args[..2])?;
        let raw = cast(&arrays[1], &DataType::Utf8)?;
        let raw = raw.as_string::<i32>();
        let failed =
            (0..arrays[0].len()).find(|&i| arrays[0].is_null(i) && raw.is_valid(i) && !raw.value(i).trim().is_empty());
        if let Some(i) = failed {
            return exec_err!(
                "{context}: the value `{}` does not parse; fix it in the data, or parse the column in a model \
                 (parse_date/parse_timestamp without a format try every known format)",
                raw.value(i)
            );
        }
        Ok(parsed)
    }
}

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

/// The date or timestamp formats every sampled value of a string column parses with, if any:
/// `(is_timestamp, formats)`. One format, or else a four-digit-year format with its two-digit
/// twin (`%m/%d/%Y`, `%m/%d/%y`) when the sample mixes `1/2/2024` and `1/2/24`: each value is
/// read by the first that reads it. Date formats are tried first, in [`DATE_FORMATS`] order, each
/// alone before any pair, so a pair never overrides a single format's day/month order.
pub fn detect_format(values: &[&str]) -> Option<(bool, Vec<&'static str>)> {
    if values.is_empty() {
        return None;
    }
    for (timestamp, list) in [(false, &DATE_FORMATS[..]), (true, &TIMESTAMP_FORMATS[..])] {
        let reads_all = |formats: &[&str]| {
            values.iter().all(|v| {
                formats.iter().any(|f| {
                    if timestamp { parse_timestamp(v, Some(f)).is_some() } else { parse_date(v, Some(f)).is_some() }
                })
            })
        };
        let candidates = || list.iter().copied().filter(|f| *f != "%Y-%m");
        if let Some(format) = candidates().find(|f| reads_all(&[f])) {
            return Some((timestamp, vec![format]));
        }
        let mut pairs = candidates().filter_map(|f| {
            let twin = f.replace("%Y", "%y");
            list.iter().copied().find(|t| *t == twin && *t != f).map(|t| [f, t])
        });
        if let Some(pair) = pairs.find(|pair| reads_all(pair)) {
            return Some((timestamp, pair.to_vec()));
        }
    }
    None
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
    let is_float = |t: &DataType| matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64);
    let is_text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    // A CSV or JSON float it makes decimal is read as DECIMAL(38, scale) before this view.
    if let Some(scale) = clean.decimals
        && !schema
            .fields()
            .iter()
            .any(|f| is_float(f.data_type()) || f.data_type() == &DataType::Decimal128(38, scale as i8))
    {
        // Numbers written with a comma or a currency sign are read as text, which it does not touch.
        let text: Vec<&str> =
            schema.fields().iter().filter(|f| is_text(f.data_type())).map(|f| f.name().as_str()).collect();
        tracing::warn!(
            "source `{source}`: clean.decimals: {scale} changes nothing: no column is read as a float{}; \
             a text column of numbers is cast with clean.casts (e.g. {{ price: 'DECIMAL(12, {scale})' }}) \
             once its values are plain numbers",
            match text.is_empty() {
                true => String::new(),
                false => format!(" (text: {})", text.join(", ")),
            }
        );
    }
    let mut select = Vec::new();
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for field in schema.fields() {
        let name = field.name();
        let column = quote(name);
        let cast_to = clean.casts.iter().find(|(c, _)| c == name).map(|(_, t)| t);
        let wants_date = clean.auto_dates || clean.dates.contains(name);
        let is_text = is_text(field.data_type());
        let is_float = is_float(field.data_type());
        let expr = if let Some(t) = cast_to {
            // A float cast to an integer is rounded, halves to even, as DuckDB and PostgreSQL cast
            // it (Arrow's cast cut the fraction: 2.7 became 2); DataFusion's `round` takes halves
            // away from zero, so a half is rounded as half the value, doubled.
            let to_integer = crate::engine::sql_types::sql_type_to_arrow(ctx, t).await.is_ok_and(|d| d.is_integer());
            match is_float && to_integer {
                true => format!(
                    "CAST(CASE WHEN abs({column} - trunc({column})) = 0.5 THEN 2 * round({column} / 2) \
                     ELSE round({column}) END AS {t})"
                ),
                false => format!("CAST({column} AS {t})"),
            }
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
            let checked = |function: &str, formats: &[&str], what: &str| {
                let named: Vec<String> = formats.iter().map(|f| format!("`{f}`")).collect();
                let context = format!(
                    "source `{source}`, column `{name}`: clean.dates read it as {what}s in format {} \
                     (detected from up to {DATE_SAMPLE_ROWS} sampled values)",
                    named.join(" or ")
                );
                let calls: Vec<String> = formats.iter().map(|f| format!("{function}({column}, '{f}')")).collect();
                let parsed = if calls.len() == 1 { calls.join("") } else { format!("coalesce({})", calls.join(", ")) };
                format!("{REQUIRE_PARSED}({parsed}, {column}, {})", literal(&context))
            };
            match detect_format(&refs) {
                Some((false, formats)) => checked("parse_date", &formats, "date"),
                Some((true, formats)) => checked("parse_timestamp", &formats, "timestamp"),
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
        } else if let (Some(scale), true) = (clean.decimals, is_float) {
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
        assert_eq!(detect_format(&["2024-01-31", "2023-12-01"]), Some((false, vec!["%Y-%m-%d"])));
        // 13/01 rules out month-first.
        assert_eq!(detect_format(&["01/02/2024", "13/01/2024"]), Some((false, vec!["%d/%m/%Y"])));
        assert_eq!(detect_format(&["01/02/2024", "12/31/2024"]), Some((false, vec!["%m/%d/%Y"])));
        assert_eq!(
            detect_format(&["2024-01-31 10:00:00", "2024-02-01 11:30:00.5"]),
            Some((true, vec!["%Y-%m-%d %H:%M:%S%.f"]))
        );
        // Two-digit years: `%y`, never `%Y` read as the year 24 (nor year-first as 0001-02-24).
        assert_eq!(detect_format(&["1/2/24", "12/31/24"]), Some((false, vec!["%m/%d/%y"])));
        assert_eq!(detect_format(&["1/2/24", "13/1/24"]), Some((false, vec!["%d/%m/%y"])));
        assert_eq!(detect_format(&["1/2/24 10:00", "12/31/99 11:30"]), Some((true, vec!["%m/%d/%y %H:%M"])));
        // A sample mixing both is read by the pair, keeping one day/month order.
        assert_eq!(detect_format(&["1/2/24", "1/2/2024"]), Some((false, vec!["%m/%d/%Y", "%m/%d/%y"])));
        assert_eq!(detect_format(&["13/1/24", "1/2/2024"]), Some((false, vec!["%d/%m/%Y", "%d/%m/%y"])));
        assert_eq!(detect_format(&["13/1/24", "1/13/2024"]), None);
        assert_eq!(detect_format(&["1/2/24", "2024-01-02"]), None);
        assert_eq!(detect_format(&["2024-01-31", "soon"]), None);
        assert_eq!(detect_format(&[]), None);
    }
}
