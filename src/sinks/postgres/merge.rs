//! `merge`: the new rows are copied into a temporary staging table, their key is checked to be
//! unique there, then the target's rows with those keys are deleted and the staging rows
//! inserted — all inside the load's transaction.

use datafusion::arrow::datatypes::DataType;
use datafusion::execution::SendableRecordBatchStream;
use tokio_postgres::Transaction;

use super::copy::batches;
use super::{Failure, PostgresSink};
use crate::util::sql::quote;

impl PostgresSink {
    /// Merges `data` into the existing `target` on the unique key; returns the rows merged.
    pub(super) async fn merge(
        &self,
        tx: &Transaction<'_>,
        target: &str,
        column_list: &str,
        types: Vec<DataType>,
        data: SendableRecordBatchStream,
    ) -> Result<u64, Failure> {
        let stage = quote(&format!("__dfpipe_stage_{}", self.table.name));
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {column_list} FROM {target} WITH NO DATA"
        ))
        .await?;
        let rows = self.copier(&stage, &column_list, types)?.copy(&tx, batches(data)).await?;
        let keys: Vec<String> = self.unique_key.iter().map(|k| quote(k)).collect();
        let key_list = keys.join(", ");
        let duplicate = tx
            .query_opt(
                &format!(
                    "SELECT CAST(ROW({key_list}) AS text) FROM {stage} GROUP BY {key_list} HAVING count(*) > 1 LIMIT 1"
                ),
                &[],
            )
            .await?;
        if let Some(row) = duplicate {
            let key: String = row.get(0);
            return Err(Failure::Other(format!(
                "merge key ({}) is not unique in the new rows: {key} appears more than once",
                self.unique_key.join(", ")
            )));
        }
        let matches =
            keys.iter().map(|k| format!("t.{k} IS NOT DISTINCT FROM s.{k}")).collect::<Vec<_>>().join(" AND ");
        tx.batch_execute(&format!(
            "DELETE FROM {target} AS t USING {stage} AS s WHERE {matches}; \
             INSERT INTO {target} ({column_list}) SELECT {column_list} FROM {stage}"
        ))
        .await?;
        Ok(rows)
    }
}
