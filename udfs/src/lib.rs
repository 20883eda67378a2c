//! Cleaning functions registered in every dfpipe session, usable from any model:
//!
//! | function | does |
//! |---|---|
//! | `clean_text(s)` | trims, collapses every run of whitespace (tabs, newlines, no-break spaces) to one space; blank becomes NULL |
//! | `parse_number(s)` | lenient number parsing: `"$1,234.50"` → 1234.5, `"1.234,5"` → 1234.5, `"€ 3,50"` → 3.5, `"(12)"` → -12, `"7%"` → 0.07; NULL when it is not a number (`"1,2,3"`: a thousands separator groups by three) |
//! | `snake_case(s)` | `"Order ID"` → `order_id`, `"customerName"` → `customer_name` |
//! | `parse_date(s [, format])` | a DATE from ISO, `31.12.2024`, `12/31/2024`, `31/12/2024`, `Dec 31, 2024`, `20241231`, …, or a chrono `format`; NULL when unreadable (month-first when ambiguous) |
//! | `parse_timestamp(s [, format])` | a TIMESTAMP (µs, UTC) from RFC 3339 (offsets converted), `2024-12-31 23:59:59.5`, `12/31/2024 23:59`, a date (midnight), …, or a chrono `format` (its `%z` offset converted too) |
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

/// Parses numbers as people write them: currency symbols, thousands separators, decimal commas,
/// accounting parentheses, a trailing percent sign, a leading `+`. `None` when the text is not a
/// number; [`read_number`] says why.
pub fn parse_number(s: &str) -> Option<f64> {
    read_number(s).ok()
}

/// [`parse_number`]'s reading of `s`: the number, or why it is none (`number_error`'s text,
/// ``"`12abc` is not a number"``).
///
/// Digits may be grouped by `,`, `.`, `'`, `_` or spaces, and a group separator is only read as
/// one when every group after the first has exactly three digits and the first has one to three
/// (no leading zero): `1,234,567.5`, `1.234.567,5`, `1 234,5`, `1'234.50`. Otherwise:
/// - with both `,` and `.`, the last one is the decimal mark (`1.234,56` → 1234.56,
///   `1,234.56` → 1234.56); it appears once, the other only before it;
/// - a lone `.` is the decimal mark (`1.234` → 1.234, `0.125` → 0.125);
/// - a lone `,` before exactly three digits groups thousands (`1,234` → 1234, as pandas and
///   Polars read it with `thousands=','`), unless the digits before it cannot be a first group
///   (`0,125` → 0.125, `1234,567` → 1234.567); before any other number of digits it is the
///   decimal mark (`1,5` → 1.5, `€ 3,50` → 3.5);
/// - digits grouped otherwise (`1,2,3`, `12,34,567`, `1 5`) are not a number, never a guess.
pub fn read_number(s: &str) -> Result<f64, String> {
    let text = s.trim();
    let not_a_number = || format!("`{text}` is not a number");
    let because = |why: String| format!("`{text}` is not a number: {why}");
    let mut body = text;
    let mut negative = false;
    if body.len() >= 2 && body.starts_with('(') && body.ends_with(')') {
        negative = true;
        body = body[1..body.len() - 1].trim();
    }
    let percent = body.ends_with('%');
    if percent {
        body = body[..body.len() - 1].trim();
    }
    // Currency symbols and whitespace go; whitespace (or a symbol) between two digits is a group
    // separator, so `1 000` groups thousands but `1 5` is no number.
    let chars: Vec<char> = body.chars().map(|c| if matches!(c, '$' | '€' | '£' | '¥') { ' ' } else { c }).collect();
    let mut t = String::with_capacity(body.len());
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_whitespace() {
            t.push(c);
        } else if t.ends_with(|p: char| p.is_ascii_digit())
            && chars[i..].iter().find(|n| !n.is_whitespace()).is_some_and(|n| n.is_ascii_digit())
        {
            t.push(' ');
        }
    }
    let (sign, unsigned) = match t.strip_prefix(['+', '-']) {
        Some(rest) => (&t[..1], rest),
        None => ("", t.as_str()),
    };
    if negative && !sign.is_empty() {
        return Err(because("a sign inside accounting parentheses".into()));
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], &unsigned[i + 1..]),
        None => (unsigned, ""),
    };
    let exponent_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if !mantissa.chars().all(|c| c.is_ascii_digit() || matches!(c, ',' | '.' | '\'' | '_' | ' '))
        || !mantissa.chars().any(|c| c.is_ascii_digit())
        || (unsigned.len() > mantissa.len()
            && (exponent_digits.is_empty() || !exponent_digits.chars().all(|c| c.is_ascii_digit())))
    {
        return Err(not_a_number());
    }
    let separators: Vec<char> = mantissa.chars().filter(|c| !c.is_ascii_digit()).collect();
    let mut kinds: Vec<char> = Vec::new();
    for c in &separators {
        if !kinds.contains(c) {
            kinds.push(*c);
        }
    }
    let named = |c: char| if c == ' ' { "a space".to_string() } else { format!("`{c}`") };
    let (thousands, decimal) = match kinds.as_slice() {
        [] => (None, None),
        [k @ ('.' | ',')] if separators.len() == 1 && (*k == '.' || !grouped(mantissa, ',')) => (None, Some(*k)),
        [k] => (Some(*k), None),
        [first, second] => {
            let last = *separators.last().expect("two kinds of separator");
            let other = if last == *first { *second } else { *first };
            let times = separators.iter().filter(|c| **c == last).count();
            if !matches!(last, ',' | '.') || times > 1 {
                return Err(because(format!(
                    "{} and {} both separate its digits, and {} cannot be its decimal mark",
                    named(other),
                    named(last),
                    named(last)
                )));
            }
            (Some(other), Some(last))
        }
        _ => {
            let list: Vec<String> = kinds.iter().map(|c| named(*c)).collect();
            return Err(because(format!(
                "{} all separate its digits (a number has at most a thousands separator and a decimal mark)",
                list.join(", ")
            )));
        }
    };
    let (whole, fraction) = match decimal.and_then(|d| mantissa.split_once(d)) {
        Some((w, f)) => (w, f),
        None => (mantissa, ""),
    };
    if let Some(sep) = thousands
        && !grouped(whole, sep)
    {
        let sizes: Vec<String> = whole.split(sep).map(|g| g.len().to_string()).collect();
        return Err(because(format!(
            "{} groups its digits {}, but a thousands separator needs groups of three after the first \
             (1,234,567)",
            named(sep),
            sizes.join("-")
        )));
    }
    let digits: String = whole.chars().filter(char::is_ascii_digit).collect();
    let exponent = if exponent.is_empty() { String::new() } else { format!("e{exponent}") };
    let mut value: f64 = format!("0{digits}.{fraction}{exponent}").parse().map_err(|_| not_a_number())?;
    if !value.is_finite() {
        return Err(because("out of the range of a double".into()));
    }
    if percent {
        value /= 100.0;
    }
    Ok(if negative || sign == "-" { -value } else { value })
}

/// Whether `sep` groups the digits of `whole` in thousands: a first group of one to three digits
/// without a leading zero, then groups of exactly three.
fn grouped(whole: &str, sep: char) -> bool {
    let mut groups = whole.split(sep);
    let first = groups.next().unwrap_or("");
    (1..=3).contains(&first.len())
        && !first.starts_with('0')
        && first.chars().all(|c| c.is_ascii_digit())
        && groups.all(|g| g.len() == 3 && g.chars().all(|c| c.is_ascii_digit()))
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
        assert_eq!(parse_number("1e400"), None);
        assert_eq!(parse_number("-$5"), Some(-5.0));
        assert_eq!(parse_number("1_000"), Some(1000.0));
        assert_eq!(parse_number("1'234.50"), Some(1234.5));
        assert_eq!(parse_number("5."), Some(5.0));
        assert_eq!(parse_number(".5"), Some(0.5));
    }

    #[test]
    fn a_separator_groups_thousands_only_in_groups_of_three() {
        // Grouped thousands, either convention.
        assert_eq!(parse_number("1,234,567.5"), Some(1234567.5));
        assert_eq!(parse_number("1.234.567,5"), Some(1234567.5));
        assert_eq!(parse_number("1.234.567"), Some(1234567.0));
        assert_eq!(parse_number("1 234,56"), Some(1234.56));
        assert_eq!(parse_number("1\u{a0}234\u{a0}567"), Some(1234567.0));
        // With both, the last is the decimal mark.
        assert_eq!(parse_number("1.234,56"), Some(1234.56));
        assert_eq!(parse_number("1,234.56"), Some(1234.56));
        assert_eq!(parse_number("(1.234,56 €)"), Some(-1234.56));
        // A lone comma before anything but three digits is a decimal comma.
        assert_eq!(parse_number("1,5"), Some(1.5));
        assert_eq!(parse_number("€ 3,50"), Some(3.5));
        assert_eq!(parse_number("3,50 €"), Some(3.5));
        assert_eq!(parse_number("12,5%"), Some(0.125));
        assert_eq!(parse_number("1,2345"), Some(1.2345));
        assert_eq!(parse_number("-1,5e3"), Some(-1500.0));
        // A lone comma before three digits groups thousands, unless the digits before it cannot
        // be a first group; a lone point is always the decimal mark.
        assert_eq!(parse_number("1,234"), Some(1234.0));
        assert_eq!(parse_number("$1,200"), Some(1200.0));
        assert_eq!(parse_number("0,125"), Some(0.125));
        assert_eq!(parse_number("1234,567"), Some(1234.567));
        assert_eq!(parse_number("1.234"), Some(1.234));
        assert_eq!(parse_number("0.125"), Some(0.125));
        // Anything else is no number, with the reason.
        for (text, reason) in [
            (
                "1,2,3",
                "`1,2,3` is not a number: `,` groups its digits 1-1-1, but a thousands separator needs groups of three after the first (1,234,567)",
            ),
            (
                "12,34,567",
                "`12,34,567` is not a number: `,` groups its digits 2-2-3, but a thousands separator needs groups of three after the first (1,234,567)",
            ),
            (
                "1 5",
                "`1 5` is not a number: a space groups its digits 1-1, but a thousands separator needs groups of three after the first (1,234,567)",
            ),
            (
                "1,23.45",
                "`1,23.45` is not a number: `,` groups its digits 1-2, but a thousands separator needs groups of three after the first (1,234,567)",
            ),
            (
                "1234,567.5",
                "`1234,567.5` is not a number: `,` groups its digits 4-3, but a thousands separator needs groups of three after the first (1,234,567)",
            ),
            (
                "1.2,3.4",
                "`1.2,3.4` is not a number: `,` and `.` both separate its digits, and `.` cannot be its decimal mark",
            ),
            (
                "1,234 5",
                "`1,234 5` is not a number: `,` and a space both separate its digits, and a space cannot be its decimal mark",
            ),
            (
                "1,234.567,8",
                "`1,234.567,8` is not a number: `.` and `,` both separate its digits, and `,` cannot be its decimal mark",
            ),
            (
                "1'234.567,8",
                "`1'234.567,8` is not a number: `'`, `.`, `,` all separate its digits (a number has at most a thousands separator and a decimal mark)",
            ),
            ("(-12)", "`(-12)` is not a number: a sign inside accounting parentheses"),
            ("1e400", "`1e400` is not a number: out of the range of a double"),
            ("12abc", "`12abc` is not a number"),
            ("1e", "`1e` is not a number"),
            ("$", "`$` is not a number"),
        ] {
            assert_eq!(parse_number(text), None, "{text}");
            assert_eq!(read_number(text), Err(reason.to_string()), "{text}");
        }
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
