//! A load in one transaction on one connection, holding the table's writer lock: `replace`
//! (fill a hidden table, then swap it in), `append` and `merge` into an existing table (created
//! when missing), with the schema evolution `evolve` allows applied first.

use datafusion::execution::SendableRecordBatchStream;

use super::copy::batches;
use super::{Failure, PostgresSink, qualified};
use crate::config::Mode;
use crate::util::sql::quote;

impl PostgresSink {
    pub(super) async fn load_in(
        &self,
        client: &mut tokio_postgres::Client,
        data: SendableRecordBatchStream,
    ) -> Result<u64, Failure> {
        let tx = client.transaction().await?;
        let schema = self.table.schema.as_deref();
        if let Some(s) = schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(s))).await?;
        }
        let in_schema = self.lock_target(tx.client(), true).await?;
        let target = qualified(schema, &self.table.name);
        let exists: bool = tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&target]).await?.get(0);
        let column_list = self.column_list();

        let rows = match (self.mode, exists) {
            (Mode::Replace, _) => {
                tx.batch_execute(&self.create_hidden_sql(&in_schema)?).await?;
                let copier = self.copier(&self.new_table(), &column_list, self.created_types())?;
                let rows = copier.copy(&tx, batches(data)).await?;
                self.swap(&tx, &in_schema).await?;
                rows
            }
            (Mode::Append, false) => {
                tx.batch_execute(&format!("CREATE TABLE {target} ({})", self.column_ddl()?)).await?;
                self.copier(&target, &column_list, self.created_types())?.copy(&tx, batches(data)).await?
            }
            // A first merge still checks the key: through the staging table, into the new table.
            (Mode::Merge, false) => {
                tx.batch_execute(&format!("CREATE TABLE {target} ({})", self.column_ddl()?)).await?;
                self.merge(&tx, &target, &column_list, self.created_types(), data).await?
            }
            (Mode::Append, true) => {
                self.evolve_table(&tx, &target).await?;
                self.delete_range(tx.client(), &target).await?;
                let types = self.existing_types(&tx, &target).await?;
                self.copier(&target, &column_list, types)?.copy(&tx, batches(data)).await?
            }
            (Mode::Merge, true) => {
                self.evolve_table(&tx, &target).await?;
                self.delete_range(tx.client(), &target).await?;
                let types = self.existing_types(&tx, &target).await?;
                self.merge(&tx, &target, &column_list, types, data).await?
            }
        };
        self.record_marker(tx.client()).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
