//! `dfpipe_plain_decimal(text)`: a number in e-notation written out in plain digits
//! (`1.005e0` → `1.005`, `-12.5E-3` → `-0.0125`), other text unchanged. A CSV column read as
//! a decimal is cast from its text, which rounds past the scale as DuckDB and PostgreSQL do;
//! Arrow's cast reads no exponent, and going through a float would lose digits
//! (`9007199254740993e0` became `…992`), so the exponent is applied to the digits as text first.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The function's name.
pub const NAME: &str = "dfpipe_plain_decimal";

/// The function, to register or to call.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PlainDecimal { signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable) })
}

/// Registers [`NAME`] (executors of a cluster need it by name).
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(udf());
}

/// `text` with its e-notation written out.
pub fn call(text: Expr) -> Expr {
    udf().call(vec![text])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PlainDecimal {
    signature: Signature,
}

impl ScalarUDFImpl for PlainDecimal {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = arrays[0].as_string::<i32>();
        let plain: StringArray = text
            .iter()
            .map(|value| {
                value.map(|v| {
                    if v.contains(['e', 'E']) { plain(v).unwrap_or_else(|| v.to_string()) } else { v.to_string() }
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(plain) as ArrayRef))
    }
}

/// `value` (`[+-]digits[.digits]e[+-]digits`) in plain digits; None if it is not such a number
/// (the cast then reports it) or its exponent is beyond any decimal's 76 digits.
fn plain(value: &str) -> Option<String> {
    let (mantissa, exponent) = value.trim().split_once(['e', 'E'])?;
    let exponent: i64 = exponent.parse().ok().filter(|e: &i64| e.abs() <= 100)?;
    let (sign, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let digits = format!("{int}{frac}");
    // Where the point falls among the digits once the exponent moves it.
    let point = int.len() as i64 + exponent;
    let plain = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    };
    Some(format!("{sign}{plain}"))
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn exponents_move_the_point_in_the_digits() {
        assert_eq!(plain("1.005e0").as_deref(), Some("1.005"));
        assert_eq!(plain("9007199254740993e0").as_deref(), Some("9007199254740993"));
        assert_eq!(plain("1.23456789012345678E+17").as_deref(), Some("123456789012345678"));
        assert_eq!(plain("-12.5E-3").as_deref(), Some("-0.0125"));
        assert_eq!(plain("1.5e3").as_deref(), Some("1500"));
        assert_eq!(plain(" +.5e1 ").as_deref(), Some("5"));
        assert_eq!(plain("5.e-1").as_deref(), Some("0.5"));
        assert_eq!(plain("1e-7").as_deref(), Some("0.0000001"));
        for not_a_number in ["1.5 EUR", "e5", "1e", "1e5.5", "0x1e3", "1e999"] {
            assert_eq!(plain(not_a_number), None, "{not_a_number}");
        }
    }
}
