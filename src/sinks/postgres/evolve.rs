//! The existing table's side: its column types (batches are cast to them), and the changes
//! `on_schema_change: evolve` applies to it (added columns, widened types, dropped NOT NULL).

use datafusion::arrow::datatypes::Field;
use tokio_postgres::Transaction;

use super::copy::ColumnTypes;
use super::{Failure, PostgresSink, types};
use crate::schema::{logical_type, widens};
use crate::sinks::missing_column_message;
use crate::util::sql::quote;

impl PostgresSink {
    /// Under `evolve`: adds the columns the model gained, widens those it widened, drops NOT NULL
    /// from those that became nullable.
    pub(super) async fn evolve_table(&self, tx: &Transaction<'_>, target: &str) -> Result<(), Failure> {
        if self.evolution.is_empty() {
            return Ok(());
        }
        let rows = tx
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&target],
            )
            .await?;
        let existing: Vec<(String, String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
        let named = |list: &[String], f: &Field| list.iter().any(|n| n == f.name());
        let mut alter = Vec::new();
        for f in self.schema.fields() {
            let pg = || types::pg_type(f.data_type()).map_err(|e| format!("column `{}`: {e}", f.name()));
            let column = quote(f.name());
            match existing.iter().find(|(name, ..)| name == f.name()) {
                None if self.evolution.adds(f.name()) => alter.push(format!("ADD COLUMN {column} {}", pg()?)),
                None => {}
                Some((_, pg_now, not_null)) => {
                    let held = types::arrow_for_pg(pg_now, f.data_type()).map(|t| logical_type(&t));
                    if self.evolution.widens(f.name())
                        && held.is_some_and(|held| widens(&held, &logical_type(f.data_type())))
                    {
                        alter.push(format!("ALTER COLUMN {column} TYPE {}", pg()?));
                    }
                    if named(&self.evolution.nullable, f) && *not_null {
                        alter.push(format!("ALTER COLUMN {column} DROP NOT NULL"));
                    }
                }
            }
        }
        if !alter.is_empty() {
            tracing::info!(table = %target, "on_schema_change: evolve: {}", alter.join(", "));
            tx.batch_execute(&format!("ALTER TABLE {target} {}", alter.join(", "))).await?;
        }
        Ok(())
    }

    /// The types batches are cast to for an existing table: whatever its columns hold, arrays
    /// with their own element type.
    pub(super) async fn existing_types(&self, tx: &Transaction<'_>, target: &str) -> Result<ColumnTypes, Failure> {
        let rows = tx
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                        CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&target],
            )
            .await?;
        let existing: Vec<(String, String, u32)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
        let mut types = ColumnTypes::default();
        for f in self.schema.fields() {
            let Some((_, pg, element)) = existing.iter().find(|(name, ..)| name == f.name()) else {
                let names = existing.iter().map(|(n, ..)| n.as_str());
                return Err(missing_column_message(f.name(), target, names).into());
            };
            let arrow = types::arrow_for_pg(pg, f.data_type()).ok_or_else(|| {
                format!(
                    "column `{}`: dfpipe cannot write PostgreSQL type {pg} yet; CAST the column in the model",
                    f.name()
                )
            })?;
            types.arrow.push(arrow);
            types.array_elements.push((*element != 0).then_some(*element));
        }
        Ok(types)
    }
}
