//! Column contracts (`contracts:` in the config): declared columns must be present, of the
//! declared type, and (for `not_null`) hold no NULL. Checked before anything is written.

use crate::config::ColumnContract;
use crate::engine::observe::Observed;
use crate::engine::pipeline::Pipeline;
use crate::error::{Error, Result, df_message};
use crate::schema::logical_type;
use crate::util::sql::quote;

/// Checks the declared columns of every needed source and model: presence, type, and (with a
/// scan of the declared columns) NOT NULL. Every violation is listed.
pub async fn check(pipeline: &Pipeline, observed: &[Observed]) -> Result<()> {
    let contracts = &pipeline.project.config.contracts;
    let mut violations = Vec::new();
    for o in observed {
        let Some(columns) = contracts.get(&o.name) else { continue };
        violations.extend(contract_violations(pipeline, o, columns).await?);
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::Contract(format!("contract violated: nothing was written\n  {}", violations.join("\n  "))))
    }
}

async fn contract_violations(pipeline: &Pipeline, o: &Observed, columns: &[ColumnContract]) -> Result<Vec<String>> {
    let mut violations = Vec::new();
    let mut not_null = Vec::new();
    for declared in columns {
        let Some(found) = o.snapshot.columns.iter().find(|c| c.name == declared.name) else {
            let names: Vec<&str> = o.snapshot.columns.iter().map(|c| c.name.as_str()).collect();
            violations.push(format!(
                "{}: declared column `{}` is missing (its columns: {})",
                o.label,
                declared.name,
                names.join(", ")
            ));
            continue;
        };
        if let Some(sql_type) = &declared.sql_type {
            let data_type = crate::engine::sql_types::sql_type_to_arrow(&pipeline.ctx, sql_type)
                .await
                .map_err(|e| Error::Config(format!("contracts.{}: column `{}`: {e}", o.name, declared.name)))?;
            let expected = logical_type(&data_type);
            if found.data_type != expected {
                violations.push(format!(
                    "{}: column `{}` is declared {sql_type} ({expected}) but is {}; CAST it in the model or fix the contract",
                    o.label, declared.name, found.data_type
                ));
            }
        }
        if declared.not_null && found.nullable {
            not_null.push(declared.name.clone());
        }
    }
    if !not_null.is_empty() {
        let counts: Vec<String> =
            not_null.iter().map(|c| format!("count(*) FILTER (WHERE {} IS NULL)", quote(c))).collect();
        let sql = format!("SELECT {} FROM {}", counts.join(", "), quote(&o.name));
        let fail = |e: datafusion::error::DataFusionError| {
            Error::Run(format!("{}: checking the contract's NOT NULL columns: {}", o.label, df_message(&e)))
        };
        let batches = pipeline.ctx.sql(&sql).await.map_err(fail)?.collect().await.map_err(fail)?;
        let batch = &batches[0];
        for (i, column) in not_null.iter().enumerate() {
            let nulls = batch
                .column(i)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .map_or(0, |a| a.value(0));
            if nulls > 0 {
                violations.push(format!(
                    "{}: column `{column}` is declared not null but {} row(s) hold NULL",
                    o.label,
                    crate::util::fmt::group_digits(nulls as u64)
                ));
            }
        }
    }
    Ok(violations)
}
