//! `merge`: the new rows are copied into a temporary staging table, their key is checked to be
//! unique and not NULL there, the staging table is analysed, then the target's rows with those
//! keys are deleted (an `=` join: by probes of the key's index when the target is over ten times
//! larger, else as the planner likes) and the staging rows inserted — all inside the load's
//! transaction.

use datafusion::execution::SendableRecordBatchStream;
use tokio_postgres::Transaction;

use super::copy::{ColumnTypes, batches};
use super::{Failure, PostgresSink};
use crate::sinks::null_key_message;
use crate::util::sql::quote;

impl PostgresSink {
    /// Merges `data` into the existing `target` on the unique key; returns the rows merged.
    pub(super) async fn merge(
        &self,
        tx: &Transaction<'_>,
        target: &str,
        column_list: &str,
        types: ColumnTypes,
        data: SendableRecordBatchStream,
    ) -> Result<u64, Failure> {
        let stage = quote(&format!("__dfpipe_stage_{}", self.table.name));
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {column_list} FROM {target} WITH NO DATA"
        ))
        .await?;
        let rows = self.copier(&stage, column_list, types)?.copy(tx, batches(data)).await?;
        let keys: Vec<String> = self.unique_key.iter().map(|k| quote(k)).collect();
        let key_list = keys.join(", ");
        // NULL keys first: two of them would be reported as a duplicate `()`.
        let any_null = keys.iter().map(|k| format!("{k} IS NULL")).collect::<Vec<_>>().join(" OR ");
        let nulls: i64 = tx.query_one(&format!("SELECT count(*) FROM {stage} WHERE {any_null}"), &[]).await?.get(0);
        if nulls > 0 {
            return Err(Failure::Other(null_key_message(&self.unique_key, nulls as u64)));
        }
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
        let matches = keys.iter().map(|k| format!("t.{k} = s.{k}")).collect::<Vec<_>>().join(" AND ");
        tx.batch_execute(&format!("ANALYZE {stage}")).await?;
        // Few new rows against a large indexed table: probe the key's index row by row rather
        // than hash-join a scan of the whole table (which the planner prefers, misjudging how
        // clustered the keys are). Scoped to the DELETE.
        let probe = self.probe_by_index(tx, target, rows).await?;
        if probe {
            tx.batch_execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off").await?;
        }
        tx.batch_execute(&format!("DELETE FROM {target} AS t USING {stage} AS s WHERE {matches}")).await?;
        if probe {
            tx.batch_execute("SET LOCAL enable_hashjoin = DEFAULT; SET LOCAL enable_mergejoin = DEFAULT").await?;
        }
        tx.batch_execute(&format!("INSERT INTO {target} ({column_list}) SELECT {column_list} FROM {stage}")).await?;
        Ok(rows)
    }

    /// Whether the target has an index led by the merge key and holds over ten times the new
    /// rows: then deleting the matches by index probes beats scanning the table.
    async fn probe_by_index(&self, tx: &Transaction<'_>, target: &str, new_rows: u64) -> Result<bool, Failure> {
        let row = tx
            .query_one(
                "SELECT c.reltuples::float8, EXISTS ( \
                   SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisvalid AND \
                     (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(i.indkey[0:cardinality($2::text[]) - 1]) \
                        WITH ORDINALITY AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) \
                     @> $2::text[]) \
                 FROM pg_class c WHERE c.oid = to_regclass($1)",
                &[&target, &self.unique_key],
            )
            .await?;
        let (table_rows, indexed): (f64, bool) = (row.get(0), row.get(1));
        Ok(indexed && table_rows > 10.0 * new_rows as f64)
    }
}
