//! Dates, timestamps, numbers with reasons, and surrogate keys: the functions that need more
//! than one signature (an optional format, any number of arguments).

use std::sync::Arc;

use chrono::format::{Parsed, StrftimeItems, parse, parse_and_remainder};
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, ArrayRef, Date32Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::cast::as_string_array;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use md5::{Digest, Md5};

/// Date formats `parse_date(s)` tries, in order (chrono syntax, with `%Y` and `%y` read as
/// [`parse_fields`] reads them). Year-first and written-out months are unambiguous; for
/// `01/02/2024` month-first (US) wins over day-first — pass a format (or let the config detect
/// one from a sample) when the data is day-first. Formats with two-digit years (`12/31/24`) come
/// after those with four, in the same order, and only with the year last.
pub const DATE_FORMATS: [&str; 16] = [
    "%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%d-%m-%Y", "%b %d %Y", "%d %b %Y",
    "%B %d %Y", "%d %B %Y", "%d.%m.%y", "%m/%d/%y", "%d/%m/%y", "%d-%m-%y", "%Y-%m",
];

/// Timestamp formats `parse_timestamp(s)` tries after RFC 3339, in order; then the date formats
/// (at midnight).
pub const TIMESTAMP_FORMATS: [&str; 12] = [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%m/%d/%y %H:%M:%S",
    "%d/%m/%y %H:%M:%S",
    "%m/%d/%y %H:%M",
    "%d.%m.%y %H:%M:%S",
];

/// The year a two-digit year stands for, as POSIX `strptime` and Python read `%y`: 69–99 →
/// 1969–1999, 00–68 → 2000–2068.
pub fn full_year(two_digits: u32) -> i32 {
    let y = two_digits as i32 % 100;
    if y >= 69 { 1900 + y } else { 2000 + y }
}

/// Commas and repeated spaces removed, so `Jan 5, 2024` reads as `Jan 5 2024`.
fn normalized(s: &str) -> String {
    s.replace(',', " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// chrono's composite specifiers that hold a year, spelled out so that [`parse_fields`] sees
/// the `%Y` or `%y` inside (`%F` is `%Y-%m-%d`, `%D` and `%x` are `%m/%d/%y`, …).
fn expanded(format: &str) -> String {
    let mut out = String::with_capacity(format.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('F') => out.push_str("%Y-%m-%d"),
            Some('D' | 'x') => out.push_str("%m/%d/%y"),
            Some('v') => out.push_str("%e-%b-%Y"),
            Some('c') => out.push_str("%a %b %e %H:%M:%S %Y"),
            Some(n) => {
                out.push('%');
                out.push(n);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Reads `s` whole with the chrono `format`, except for the year: `%Y` takes exactly four digits
/// and `%y` exactly two, read with [`full_year`]. (chrono's own `%Y` takes `24` — or `1` — as
/// that year AD, and its `%y` turns `69` into 2069.)
pub fn parse_fields(s: &str, format: &str) -> Option<Parsed> {
    let format = expanded(format);
    let bytes = format.as_bytes();
    let mut parsed = Parsed::new();
    let mut rest = s;
    let mut from = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        if matches!(bytes[i + 1], b'Y' | b'y') {
            rest = parse_and_remainder(&mut parsed, rest, StrftimeItems::new(&format[from..i])).ok()?;
            let width = if bytes[i + 1] == b'Y' { 4 } else { 2 };
            let text = rest.trim_start();
            let digits = text.get(..width).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
            let number: u32 = digits.parse().ok()?;
            let year = if width == 2 { full_year(number) } else { number as i32 };
            parsed.set_year(year.into()).ok()?;
            rest = &text[width..];
            from = i + 2;
        }
        i += 2;
    }
    parse(&mut parsed, rest, StrftimeItems::new(&format[from..])).ok()?;
    Some(parsed)
}

/// Parses a date with `format`, or with the first of [`DATE_FORMATS`] that reads it whole.
/// Commas count as spaces in both the text and the format (`'%b %d, %Y'` reads `Jan 5, 2024`).
pub fn parse_date(s: &str, format: Option<&str>) -> Option<NaiveDate> {
    let s = normalized(s);
    if s.is_empty() {
        return None;
    }
    let read = |s: &str, f: &str| parse_fields(s, f)?.to_naive_date().ok();
    match format {
        Some(f) => read(&s, &normalized(f)),
        None => DATE_FORMATS
            .iter()
            .find_map(|f| if *f == "%Y-%m" { read(&format!("{s}-01"), "%Y-%m-%d") } else { read(&s, f) }),
    }
}

/// Parses a timestamp with `format` (an offset it reads converted to UTC), or RFC 3339 (converted
/// to UTC), then [`TIMESTAMP_FORMATS`], then a date at midnight.
pub fn parse_timestamp(s: &str, format: Option<&str>) -> Option<NaiveDateTime> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(f) = format {
        // With an offset in the format (`%z`), converted to UTC as RFC 3339 is, not dropped.
        let parsed = parse_fields(t, f)?;
        return parsed
            .to_datetime()
            .map(|d| d.naive_utc())
            .or_else(|_| parsed.to_naive_datetime_with_offset(0))
            .ok()
            .or_else(|| parsed.to_naive_date().ok().and_then(|d| d.and_hms_opt(0, 0, 0)));
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.naive_utc())
        .ok()
        .or_else(|| TIMESTAMP_FORMATS.iter().find_map(|f| parse_fields(t, f)?.to_naive_datetime_with_offset(0).ok()))
        .or_else(|| parse_date(t, None).and_then(|d| d.and_hms_opt(0, 0, 0)))
}

/// Why `s` is not a number for [`crate::parse_number`] ([`crate::read_number`]'s reason), or
/// `None` when it is (or is blank).
pub fn number_error(s: &str) -> Option<String> {
    if s.trim().is_empty() { None } else { crate::read_number(s).err() }
}

/// A stable key from several values: the MD5 (hex) of their text joined by `-`, NULL written as
/// `_dfpipe_null_` (dbt's `generate_surrogate_key` convention, so keys match across tools).
pub fn surrogate_key(parts: &[Option<&str>]) -> String {
    let text: Vec<&str> = parts.iter().map(|p| p.unwrap_or("_dfpipe_null_")).collect();
    let digest = Md5::digest(text.join("-").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A scalar function over string arguments (any string type, cast to Utf8) or, with
/// `any_args`, over any number of arguments of any type (cast to text).
#[derive(Debug)]
struct TextFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: fn(&[&StringArray], usize) -> ArrayRef,
}

/// Functions are identified by name (which is unique), not by their code's address.
impl PartialEq for TextFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TextFunction {}

impl std::hash::Hash for TextFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for TextFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let texts: Vec<ArrayRef> = arrays.iter().map(|a| cast(a, &DataType::Utf8)).collect::<Result<_, _>>()?;
        let strings: Vec<&StringArray> = texts.iter().map(|a| as_string_array(a)).collect::<Result<_>>()?;
        let out = (self.body)(&strings, rows);
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn function(
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: fn(&[&StringArray], usize) -> ArrayRef,
) -> ScalarUDF {
    ScalarUDF::new_from_impl(TextFunction { name, signature, returns, body })
}

/// One string argument, or a string and a format.
fn with_optional_format() -> Signature {
    Signature::one_of(vec![TypeSignature::String(1), TypeSignature::String(2)], Volatility::Immutable)
}

/// The value at `row` of the optional format argument.
fn format_at<'a>(args: &[&'a StringArray], row: usize) -> Option<&'a str> {
    args.get(1).and_then(|f| f.is_valid(row).then(|| f.value(row)))
}

/// The functions of this module.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        function("parse_date", with_optional_format(), DataType::Date32, |args, rows| {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
            Arc::new(
                (0..rows)
                    .map(|i| {
                        let s = args[0].is_valid(i).then(|| args[0].value(i))?;
                        parse_date(s, format_at(args, i)).map(|d| (d - epoch).num_days() as i32)
                    })
                    .collect::<Date32Array>(),
            )
        }),
        function(
            "parse_timestamp",
            with_optional_format(),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            |args, rows| {
                Arc::new(
                    (0..rows)
                        .map(|i| {
                            let s = args[0].is_valid(i).then(|| args[0].value(i))?;
                            parse_timestamp(s, format_at(args, i)).map(|t| t.and_utc().timestamp_micros())
                        })
                        .collect::<TimestampMicrosecondArray>(),
                )
            },
        ),
        function("number_error", Signature::string(1, Volatility::Immutable), DataType::Utf8, |args, rows| {
            Arc::new(
                (0..rows)
                    .map(|i| args[0].is_valid(i).then(|| args[0].value(i)).and_then(number_error))
                    .collect::<StringArray>(),
            )
        }),
        function("surrogate_key", Signature::variadic_any(Volatility::Immutable), DataType::Utf8, |args, rows| {
            Arc::new(
                (0..rows)
                    .map(|i| {
                        let parts: Vec<Option<&str>> = args.iter().map(|a| a.is_valid(i).then(|| a.value(i))).collect();
                        Some(surrogate_key(&parts))
                    })
                    .collect::<StringArray>(),
            )
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_many_formats() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        assert_eq!(parse_date("2024-02-29", None), d(2024, 2, 29));
        assert_eq!(parse_date("29.02.2024", None), d(2024, 2, 29));
        assert_eq!(parse_date("02/29/2024", None), d(2024, 2, 29));
        assert_eq!(parse_date("29/02/2024", None), d(2024, 2, 29));
        assert_eq!(parse_date("01/02/2024", None), d(2024, 1, 2), "month first when ambiguous");
        assert_eq!(parse_date("01/02/2024", Some("%d/%m/%Y")), d(2024, 2, 1));
        assert_eq!(parse_date("Jan 5, 2024", None), d(2024, 1, 5));
        assert_eq!(parse_date("5 January 2024", None), d(2024, 1, 5));
        assert_eq!(parse_date("20240105", None), d(2024, 1, 5));
        assert_eq!(parse_date("2024-13-01", None), None);
        assert_eq!(parse_date("soon", None), None);
        assert_eq!(parse_date("  ", None), None);
        assert_eq!(parse_date("Jan 5, 2024", Some("%b %d, %Y")), d(2024, 1, 5), "commas in the format too");
        assert_eq!(parse_date("2024-12", None), d(2024, 12, 1));
    }

    #[test]
    fn two_digit_years_are_read_with_the_posix_pivot_never_as_years_ad() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day);
        // Month first when ambiguous, as with four digits; day first when the month cannot be.
        assert_eq!(parse_date("1/2/24", None), d(2024, 1, 2));
        assert_eq!(parse_date("12/31/24", None), d(2024, 12, 31));
        assert_eq!(parse_date("31/12/24", None), d(2024, 12, 31));
        assert_eq!(parse_date("31.12.24", None), d(2024, 12, 31));
        assert_eq!(parse_date("31-12-24", None), d(2024, 12, 31));
        // 69–99 → 19xx, 00–68 → 20xx (POSIX, Python; chrono alone reads 69 as 2069).
        assert_eq!(parse_date("1/2/68", None), d(2068, 1, 2));
        assert_eq!(parse_date("1/2/69", None), d(1969, 1, 2));
        assert_eq!(parse_date("1/2/99", None), d(1999, 1, 2));
        assert_eq!(parse_date("1/2/00", None), d(2000, 1, 2));
        assert_eq!(parse_date("1/2/69", Some("%m/%d/%y")), d(1969, 1, 2));
        assert_eq!(parse_date("1/2/69", Some("%D")), d(1969, 1, 2));
        // `%Y` takes four digits, `%y` two: no year 24, 1 or 202.
        assert_eq!(parse_date("1/2/24", Some("%m/%d/%Y")), None);
        assert_eq!(parse_date("24-1-2", Some("%F")), None);
        assert_eq!(parse_date("1/2/2024", Some("%m/%d/%y")), None);
        assert_eq!(parse_date("1/2/4", None), None);
        assert_eq!(parse_date("1/2/202", None), None);
        assert_eq!(parse_date("1.2.3", None), None);
        assert_eq!(parse_date("24-1", None), None, "no `%Y-%m` with two digits");
        assert_eq!(parse_date("20240105", Some("%Y%m%d")), d(2024, 1, 5));
        assert_eq!(parse_date("240105", Some("%y%m%d")), d(2024, 1, 5));
        assert_eq!(parse_date("240105", None), None);
        // Four digits still read as written, whatever the year.
        assert_eq!(parse_date("0024-01-02", None), d(24, 1, 2));
        // Timestamps alike.
        let ts = |s: &str, f: Option<&str>| parse_timestamp(s, f).map(|t| t.to_string());
        assert_eq!(ts("1/2/24 10:20", None).as_deref(), Some("2024-01-02 10:20:00"));
        assert_eq!(ts("31/12/99 23:59:59", None).as_deref(), Some("1999-12-31 23:59:59"));
        assert_eq!(ts("1/2/24", None).as_deref(), Some("2024-01-02 00:00:00"));
        assert_eq!(ts("1/2/24 10:20", Some("%m/%d/%Y %H:%M")), None);
        assert_eq!(ts("1/2/24 10:20", Some("%m/%d/%y %H:%M")).as_deref(), Some("2024-01-02 10:20:00"));
    }

    #[test]
    fn timestamps_in_many_formats() {
        let ts = |s: &str| parse_timestamp(s, None).map(|t| t.to_string());
        assert_eq!(ts("2024-01-05T10:20:30+02:00").as_deref(), Some("2024-01-05 08:20:30"));
        assert_eq!(ts("2024-01-05 10:20:30.25").as_deref(), Some("2024-01-05 10:20:30.250"));
        assert_eq!(ts("01/05/2024 10:20").as_deref(), Some("2024-01-05 10:20:00"));
        assert_eq!(ts("2024-01-05").as_deref(), Some("2024-01-05 00:00:00"));
        assert_eq!(ts("later"), None);
        assert_eq!(
            parse_timestamp("05|01|2024 10h30", Some("%d|%m|%Y %Hh%M")).map(|t| t.to_string()).as_deref(),
            Some("2024-01-05 10:30:00")
        );
        // An offset the format reads is applied, as RFC 3339's is (it used to be dropped).
        assert_eq!(
            parse_timestamp("05/01/2024 10:30 +0200", Some("%d/%m/%Y %H:%M %z")).map(|t| t.to_string()).as_deref(),
            Some("2024-01-05 08:30:00")
        );
    }

    #[test]
    fn numbers_with_reasons_and_keys() {
        assert_eq!(number_error("12abc").as_deref(), Some("`12abc` is not a number"));
        assert_eq!(number_error("$1,200"), None);
        assert_eq!(number_error(" "), None);
        assert_eq!(number_error("1,5"), None);
        assert_eq!(
            number_error("1,2,3").as_deref(),
            Some(
                "`1,2,3` is not a number: `,` groups its digits 1-1-1, but a thousands separator needs groups of \
                 three after the first (1,234,567)"
            )
        );
        // md5("1-a"), as `echo -n 1-a | md5sum` computes it.
        assert_eq!(surrogate_key(&[Some("1"), Some("a")]), "fd863b01647cb662580dd67b9839d8de");
        assert_ne!(surrogate_key(&[None, Some("a")]), surrogate_key(&[Some(""), Some("a")]));
    }

    #[tokio::test]
    async fn functions_work_in_sql_on_any_string_type() {
        let ctx = datafusion::prelude::SessionContext::new();
        crate::register_all(&ctx);
        let batches = ctx
            .sql(
                "SELECT CAST(parse_date(arrow_cast(d, 'Utf8View')) AS VARCHAR), CAST(parse_date(d, '%d/%m/%Y') AS VARCHAR), \
                        CAST(parse_timestamp(t) AS VARCHAR), number_error(n), surrogate_key(k, d, NULL) \
                 FROM (VALUES ('01/02/2024', '2024-01-05T10:20:30Z', '12abc', 1)) AS v(d, t, n, k)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let row: Vec<String> = (0..5)
            .map(|i| {
                let c = cast(batches[0].column(i), &DataType::Utf8).unwrap();
                as_string_array(&c).unwrap().value(0).to_string()
            })
            .collect();
        assert_eq!(
            row,
            [
                "2024-01-02",
                "2024-02-01",
                "2024-01-05T10:20:30",
                "`12abc` is not a number",
                &surrogate_key(&[Some("1"), Some("01/02/2024"), None])
            ]
        );
    }
}
