//! `dfpipe_plain_decimal(text, type)`: a number in e-notation written out in plain digits
//! (`1.005e0` → `1.005`, `-12.5E-3` → `-0.0125`), other numbers unchanged, and an error naming
//! the value and `type` for text that is no number. A CSV column read as a decimal is cast from
//! its text, which rounds past the scale as DuckDB and PostgreSQL do; Arrow's cast reads no
//! exponent, and going through a float would lose digits (`9007199254740993e0` became `…992`),
//! so the exponent is applied to the digits as text first. Arrow's own error for text that is no
//! number named its default decimal, `Decimal128(38, 10)`, not the column's type.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The function's name.
pub const NAME: &str = "dfpipe_plain_decimal";

/// The function, to register or to call.
pub fn udf() -> ScalarUDF {
    let signature = Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable);
    ScalarUDF::new_from_impl(PlainDecimal { signature })
}

/// Registers [`NAME`] (executors of a cluster need it by name).
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(udf());
}

/// `text` with its e-notation written out, for a cast to `decimal` (named in errors).
pub fn call(text: Expr, decimal: &DataType) -> Expr {
    udf().call(vec![text, datafusion::logical_expr::lit(decimal.to_string())])
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
        let decimal = match &args.args[1] {
            ColumnarValue::Scalar(s) => s.to_string(),
            ColumnarValue::Array(_) => return exec_err!("{NAME}: the type must be a literal"),
        };
        let arrays = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let text = arrays[0].as_string::<i32>();
        let mut plain_values = StringBuilder::with_capacity(text.len(), text.value_data().len());
        for value in text.iter() {
            match value {
                None => plain_values.append_null(),
                Some(v) if is_plain(v) => plain_values.append_value(v),
                Some(v) => match v.contains(['e', 'E']).then(|| plain(v)).flatten() {
                    Some(p) => plain_values.append_value(p),
                    // "Cast error" marks it as a value that does not read (see `engine::diagnose`).
                    None => {
                        return Err(DataFusionError::ArrowError(
                            Box::new(ArrowError::CastError(format!(
                                "the value '{v}' is not a number a {decimal} can hold"
                            ))),
                            None,
                        ));
                    }
                },
            }
        }
        Ok(ColumnarValue::Array(Arc::new(plain_values.finish()) as ArrayRef))
    }
}

/// Whether `value` is a number in plain digits as Arrow's cast reads it: `[+-]digits[.digits]`,
/// `.5` and `5.` too, spaces around it allowed.
fn is_plain(value: &str) -> bool {
    let v = value.trim();
    let v = v.strip_prefix(['-', '+']).unwrap_or(v);
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !(int.is_empty() && frac.is_empty()) && all_digits(int) && all_digits(frac)
}

/// `value` (`[+-]digits[.digits]e[+-]digits`) in plain digits; None if it is not such a number
/// or its exponent is beyond any decimal's 76 digits.
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
    use super::{is_plain, plain};

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

    #[test]
    fn plain_numbers_are_those_arrows_cast_reads() {
        for number in ["1", "-1.5", "+2.", ".5", " 3.25 ", "007"] {
            assert!(is_plain(number), "{number}");
        }
        for not_a_number in ["", ".", "-", "1.5x", "1.2.3", "1 000", "1e5", "NaN", "--1"] {
            assert!(!is_plain(not_a_number), "{not_a_number}");
        }
    }
}
