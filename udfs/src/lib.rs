//! Cleaning functions registered in every dfpipe session, usable from any model:
//!
//! | function | does |
//! |---|---|
//! | `clean_text(s)` | trims, collapses every run of whitespace (tabs, newlines, no-break spaces) to one space; blank becomes NULL |
//! | `parse_number(s)` | lenient number parsing: `"$1,234.50"` → 1234.5, `"(12)"` → -12, `"7%"` → 0.07; NULL when it is not a number |
//! | `snake_case(s)` | `"Order ID"` → `order_id`, `"customerName"` → `customer_name` |
//! | `parse_date(s [, format])` | a DATE from ISO, `31.12.2024`, `12/31/2024`, `31/12/2024`, `Dec 31, 2024`, `20241231`, …, or a chrono `format`; NULL when unreadable (month-first when ambiguous) |
//! | `parse_timestamp(s [, format])` | a TIMESTAMP (µs, UTC) from RFC 3339 (offsets converted), `2024-12-31 23:59:59.5`, `12/31/2024 23:59`, a date (midnight), …, or a chrono `format` |
//! | `number_error(s)` | why `parse_number(s)` is NULL (``"`12abc` is not a number"``), NULL when it parses or is blank: a quarantine reason |
//! | `surrogate_key(a, b, …)` | a stable key: md5 hex of the values as text joined by `-`, NULL as `_dfpipe_null_` (dbt's convention) |
//!
//! Each takes strings (any of DataFusion's string types, coerced; `surrogate_key` any type) and
//! keeps NULL as NULL.
#![deny(missing_docs)]

pub mod parse;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

/// Registers every function of this crate in `ctx`.
pub fn register_all(ctx: &SessionContext) {
    for udf in all() {
        ctx.register_udf(udf);
    }
}

/// Every function of this crate, ready to register.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        string_udf("clean_text", DataType::Utf8, |a| Arc::new(map_strings(a, clean_text)) as ArrayRef),
        string_udf("parse_number", DataType::Float64, |a| {
            Arc::new(a.iter().map(|v| v.and_then(parse_number)).collect::<Float64Array>()) as ArrayRef
        }),
        string_udf("snake_case", DataType::Utf8, |a| Arc::new(map_strings(a, |s| Some(snake_case(s)))) as ArrayRef),
    ]
    .into_iter()
    .chain(parse::functions())
    .collect()
}

/// A one-argument function over Utf8 (other string types are coerced by DataFusion).
fn string_udf(name: &str, returns: DataType, f: fn(&StringArray) -> ArrayRef) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        returns,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let out = f(as_string_array(&arrays[0])?);
            Ok(if scalar {
                ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&out, 0)?)
            } else {
                ColumnarValue::Array(out)
            })
        }),
    )
}

fn map_strings(input: &StringArray, f: impl Fn(&str) -> Option<String>) -> StringArray {
    let mut out = Vec::with_capacity(input.len());
    for v in input.iter() {
        out.push(v.and_then(&f));
    }
    StringArray::from(out)
}

/// Trims and collapses whitespace; `None` for a blank string.
pub fn clean_text(s: &str) -> Option<String> {
    let cleaned = s.split(char::is_whitespace).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    (!cleaned.is_empty()).then_some(cleaned)
}

/// Parses numbers as people write them: currency symbols, thousands separators, accounting
/// parentheses, a trailing percent sign, a leading `+`. `None` when the text is not a number.
pub fn parse_number(s: &str) -> Option<f64> {
    let mut t: String = s.trim().chars().filter(|c| !c.is_whitespace()).collect();
    let mut negative = false;
    if t.starts_with('(') && t.ends_with(')') {
        negative = true;
        t = t[1..t.len() - 1].to_string();
    }
    let percent = t.ends_with('%');
    if percent {
        t.pop();
    }
    let t: String = t.chars().filter(|c| !matches!(c, '$' | '€' | '£' | '¥' | ',' | '_' | '\'')).collect();
    if t.is_empty()
        || !t.chars().any(|c| c.is_ascii_digit())
        || t.chars().any(|c| c.is_alphabetic() && c != 'e' && c != 'E')
    {
        return None;
    }
    let mut value: f64 = t.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    if percent {
        value /= 100.0;
    }
    Some(if negative { -value } else { value })
}

/// `"Order ID"` → `order_id`, `"customerName"` → `customer_name`, `"HTTPStatus"` → `http_status`.
pub fn snake_case(s: &str) -> String {
    heck::ToSnakeCase::to_snake_case(s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Float64Type;

    #[test]
    fn clean_text_cases() {
        assert_eq!(clean_text("  a \t b\n\u{a0}c  ").as_deref(), Some("a b c"));
        assert_eq!(clean_text(" \t\n"), None);
        assert_eq!(clean_text("x").as_deref(), Some("x"));
    }

    #[test]
    fn parse_number_cases() {
        assert_eq!(parse_number("$1,234.50"), Some(1234.5));
        assert_eq!(parse_number("(12)"), Some(-12.0));
        assert_eq!(parse_number(" 7% "), Some(0.07));
        assert_eq!(parse_number("-3e2"), Some(-300.0));
        assert_eq!(parse_number("+4"), Some(4.0));
        assert_eq!(parse_number("1 000"), Some(1000.0));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("12abc"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("NaN"), None);
    }

    #[test]
    fn snake_case_cases() {
        assert_eq!(snake_case("Order ID"), "order_id");
        assert_eq!(snake_case("customerName"), "customer_name");
        assert_eq!(snake_case("HTTPStatus"), "http_status");
        assert_eq!(snake_case("  already_snake "), "already_snake");
        assert_eq!(snake_case("Unit Price ($)"), "unit_price");
        assert_eq!(snake_case("line2Total"), "line2_total");
    }

    #[tokio::test]
    async fn functions_work_in_sql() {
        let ctx = SessionContext::new();
        register_all(&ctx);
        let batches = ctx
            .sql(
                "SELECT clean_text(c) AS t, parse_number(c) AS n, snake_case(c) AS s \
                  FROM (VALUES (' Unit  Price '), ('$2,500.25'), (NULL)) AS v(c)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &batches[0];
        let t = b.column(0).as_string::<i32>();
        assert_eq!(t.value(0), "Unit Price");
        assert_eq!(t.value(1), "$2,500.25");
        assert!(t.is_null(2));
        let n = b.column(1).as_primitive::<Float64Type>();
        assert!(n.is_null(0));
        assert_eq!(n.value(1), 2500.25);
        assert!(n.is_null(2));
        let s = b.column(2).as_string::<i32>();
        assert_eq!(s.value(0), "unit_price");
        assert_eq!(s.value(1), "2_500_25");
    }
}
