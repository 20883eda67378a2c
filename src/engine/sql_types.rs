//! SQL type names as DataFusion reads them (`DECIMAL(12,2)`, `TIMESTAMP`, `int`), for the types
//! a config declares: source schemas, `clean.casts`, contracts, parameters.

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::error::df_message;

/// The Arrow type DataFusion gives a SQL type name, e.g. `DECIMAL(12,2)` or `TIMESTAMP`.
pub async fn sql_type_to_arrow(ctx: &SessionContext, sql_type: &str) -> std::result::Result<DataType, String> {
    if !sql_type.chars().all(|c| c.is_alphanumeric() || " (),_".contains(c)) {
        return Err(format!("`{sql_type}` is not a SQL type"));
    }
    let df = ctx
        .sql(&format!("SELECT CAST(NULL AS {sql_type}) AS t"))
        .await
        .map_err(|e| format!("`{sql_type}` is not a SQL type DataFusion knows: {}", df_message(&e)))?;
    Ok(df.schema().field(0).data_type().clone())
}
