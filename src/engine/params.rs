//! Binding `params:` / `--param` values into a model's plan: each `$name` placeholder becomes a
//! literal through DataFusion's own parameter machinery (`DataFrame::with_param_values`), before
//! the model becomes a view — so filters on parameters reach the scan (partition pruning,
//! Parquet statistics) as any literal does. Nothing is substituted into SQL text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::{DataFrame, SessionContext};

use crate::config::params::{Param, ParamValue};
use crate::engine::sql_types::sql_type_to_arrow;
use crate::error::{Error, Result, df_message};

/// The placeholders dfpipe binds itself in the model of an incremental output.
pub const RUN_BOUND: [&str; 3] = ["start", "end", "last"];

/// Binds the placeholders of `df`, the plan of model `model` (file `file`); returns the bound
/// plan and the names it used (`bound`: values dfpipe sets for this model, over `params`). A placeholder without a value, or a value that does not fit
/// where the placeholder stands, is an error naming the file and the parameter.
pub async fn bind(
    ctx: &SessionContext,
    df: DataFrame,
    params: &BTreeMap<String, Param>,
    bound: &HashMap<String, ScalarValue>,
    model: &str,
    file: &Path,
) -> Result<(DataFrame, BTreeSet<String>)> {
    let fail = |message: String| Error::Project(format!("model `{model}` ({}): {message}", file.display()));
    let wanted = df.logical_plan().get_parameter_types().map_err(|e| fail(df_message(&e)))?;
    if wanted.is_empty() {
        return Ok((df, BTreeSet::new()));
    }
    let mut values: HashMap<String, ScalarValue> = HashMap::new();
    for (id, wanted) in &wanted {
        let name = id.trim_start_matches('$');
        if let Some(value) = bound.get(name) {
            let value = match wanted {
                Some(wanted) if value.is_null() => ScalarValue::try_from(wanted).map_err(|e| fail(df_message(&e)))?,
                // dfpipe's window bounds are UTC instants: the same instant in a zoned column.
                Some(DataType::Timestamp(unit, Some(zone)))
                    if matches!(value.data_type(), DataType::Timestamp(_, None)) =>
                {
                    crate::engine::incremental::utc_in_zone(value, *unit, zone).map_err(|e| fail(df_message(&e)))?
                }
                Some(wanted) if value.data_type() != *wanted => fit(value, wanted).ok_or_else(|| {
                    fail(format!("`${name}` ({value}) does not fit where it stands, a value of type {wanted}"))
                })?,
                _ => value.clone(),
            };
            values.insert(name.to_string(), value);
            continue;
        }
        let Some(param) = params.get(name) else {
            if RUN_BOUND.contains(&name) {
                return Err(fail(format!(
                    "`${name}` is bound by dfpipe only in the model of an output with `incremental:` ({}), \
                     and this model is not one",
                    if name == "last" { "by: cursor" } else { "by: time" }
                )));
            }
            let known: Vec<&str> = params.keys().map(String::as_str).collect();
            return Err(fail(format!(
                "parameter `${name}` has no value: set it under `params:` in the config or pass --param {name}=VALUE{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (parameters with values: {})", known.join(", "))
                }
            )));
        };
        let value =
            scalar(ctx, param).await.map_err(|e| fail(format!("parameter `${name}` ({}): {e}", param.source(name))))?;
        let value = match wanted {
            Some(wanted) if value.data_type() != *wanted => fit(&value, wanted).ok_or_else(|| {
                fail(format!(
                    "parameter `${name}` stands where a value of type {wanted} is expected, but {} = {} is not one",
                    param.source(name),
                    param.value
                ))
            })?,
            _ => value,
        };
        values.insert(name.to_string(), value);
    }
    let used = values.keys().cloned().collect();
    let df = df.with_param_values(ParamValues::from(values)).map_err(|e| fail(df_message(&e)))?;
    Ok((df, used))
}

/// The value as a scalar: of its declared SQL type, else as YAML or the command line typed it.
async fn scalar(ctx: &SessionContext, param: &Param) -> std::result::Result<ScalarValue, String> {
    let value = match &param.value {
        ParamValue::Bool(b) => ScalarValue::Boolean(Some(*b)),
        ParamValue::Int(i) => ScalarValue::Int64(Some(*i)),
        ParamValue::Float(x) => ScalarValue::Float64(Some(*x)),
        ParamValue::Text(s) => ScalarValue::Utf8(Some(s.clone())),
    };
    let Some(sql_type) = &param.sql_type else { return Ok(value) };
    let data_type = sql_type_to_arrow(ctx, sql_type).await?;
    let text = match &param.value {
        ParamValue::Text(s) => s.clone(),
        other => other.to_string(),
    };
    ScalarValue::Utf8(Some(text.clone()))
        .cast_to(&data_type)
        .ok()
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("`{text}` is not a {sql_type}"))
}

/// `value` as a `wanted`, when it converts without loss (an integer to a wider or decimal
/// type, text that reads as the type, ...).
fn fit(value: &ScalarValue, wanted: &DataType) -> Option<ScalarValue> {
    let cast = value.cast_to(wanted).ok().filter(|v| !v.is_null())?;
    // Round trip: a cast that drops digits (2.5 → 2) or wraps does not come back the same.
    let back = cast.cast_to(&value.data_type()).ok()?;
    let same = match (value, &back) {
        (ScalarValue::Utf8(Some(a)), ScalarValue::Utf8(Some(b))) => a.trim() == b.trim() || wanted.is_temporal(),
        _ => &back == value,
    };
    same.then_some(cast)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fit_only_without_loss() {
        let int = ScalarValue::Int64(Some(10));
        assert_eq!(fit(&int, &DataType::Int32), Some(ScalarValue::Int32(Some(10))));
        assert_eq!(fit(&ScalarValue::Float64(Some(2.5)), &DataType::Int64), None);
        assert_eq!(fit(&ScalarValue::Int64(Some(300)), &DataType::Int8), None);
        assert_eq!(fit(&ScalarValue::Utf8(Some("abc".into())), &DataType::Int64), None);
        assert_eq!(
            fit(&ScalarValue::Utf8(Some("2024-01-31".into())), &DataType::Date32),
            Some(ScalarValue::Date32(Some(19753)))
        );
        assert_eq!(fit(&int, &DataType::Utf8), Some(ScalarValue::Utf8(Some("10".into()))));
    }
}
