//! `dfpipe_hive_value(text)`: a hive partition folder's value as the writer meant it. Spark and
//! Hive escape characters a path may not hold (`ts=2024-01-01 00%3A00%3A00`) and write a NULL as
//! `__HIVE_DEFAULT_PARTITION__`; DataFusion's listing reads the folder name as it stands, so
//! `city=New%20York` was `New%20York` and a NULL partition the text `__HIVE_DEFAULT_PARTITION__`.
//! This function unescapes the value and gives NULL for the default partition, as DuckDB's and
//! Spark's readers do. A source wraps its partition columns in it only when a folder needs it
//! (`engine::sources`), so other sources keep DataFusion's partition pruning.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The function's name.
pub const NAME: &str = "dfpipe_hive_value";

/// The folder name Hive and Spark write for a NULL partition value.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The function, to register or to call.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(HiveValue { signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable) })
}

/// Registers [`NAME`] (executors of a cluster need it by name).
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(udf());
}

/// `value` (a partition column) as the writer meant it.
pub fn call(value: Expr) -> Expr {
    udf().call(vec![value])
}

/// Whether a folder's value reads otherwise through [`unescape`] than as it stands.
pub fn needs_unescaping(value: &str) -> bool {
    value.contains('%') || value == DEFAULT_PARTITION
}

/// The value of folder `value`: NULL for [`DEFAULT_PARTITION`], else with its `%XX` escapes
/// decoded (left as they are where they do not decode to UTF-8).
fn unescape(value: &str) -> Option<String> {
    if value == DEFAULT_PARTITION {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(value).decode_utf8();
    Some(decoded.map_or_else(|_| value.to_string(), |v| v.into_owned()))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HiveValue {
    signature: Signature,
}

impl ScalarUDFImpl for HiveValue {
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
        let values = arrays[0].as_string::<i32>();
        let mut out = StringBuilder::with_capacity(values.len(), values.value_data().len());
        for value in values.iter() {
            out.append_option(value.and_then(unescape));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_the_default_partition_is_null() {
        assert_eq!(unescape("New%20York").as_deref(), Some("New York"));
        assert_eq!(unescape("2024-01-01 00%3A00%3A00").as_deref(), Some("2024-01-01 00:00:00"));
        assert_eq!(unescape("100%").as_deref(), Some("100%"));
        assert_eq!(unescape("%FF").as_deref(), Some("%FF"));
        assert_eq!(unescape("Paris").as_deref(), Some("Paris"));
        assert_eq!(unescape(DEFAULT_PARTITION), None);
        assert!(needs_unescaping("a%20b") && needs_unescaping(DEFAULT_PARTITION) && !needs_unescaping("x:y"));
    }
}
