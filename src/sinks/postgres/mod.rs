//! PostgreSQL target: [`PostgresSink`], a DataFusion `DataSink` (behind [`super::SinkTable`]),
//! so a target is `INSERT INTO pg_table SELECT * FROM model`, planned and streamed by DataFusion
//! and sent with `COPY ... FROM STDIN (FORMAT binary)` from Arrow columns encoded straight to the
//! wire format ([`encode`]).
//!
//! Every load is one transaction:
//! - `replace` copies into a hidden new table, drops the old table and renames the new one:
//!   readers see the old table or the new one, never a partial one ([`swap`]: one writer per
//!   table, a swap that waits for readers without blocking new ones). The new table
//!   is created from the model's schema: indexes, grants and comments of the old table are not
//!   carried over, and views that depend on it make the drop fail (the load then fails and the
//!   old table stays).
//! - `append` copies into the existing table, casting each column to the table's type (the
//!   table is created when missing).
//! - `merge` copies into a temporary staging table, checks the key is unique there, deletes the
//!   target's rows with those keys and inserts the staging rows.
//!
//! A failure anywhere (a value PostgreSQL cannot hold, the server going away) rolls back.
//!
//! Files: `load` (one transaction), `parallel` (`replace` over several COPY streams), `swap`
//! (the writer lock, the hidden table and the swap), `merge`,
//! `evolve` (the existing table's types and `evolve`'s changes), `copy` (one binary COPY),
//! [`encode`] and [`numeric`] (Arrow → PostgreSQL binary), [`types`] (type mapping),
//! [`connect`] (DSN, retries) and [`tls`].

pub mod connect;
mod copy;
mod dsn_keys;
pub mod encode;
mod evolve;
mod libpq_env;
mod load;
pub mod loads;
mod merge;
pub mod numeric;
mod parallel;
mod swap;
pub mod tls;
pub mod types;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};

use super::marker::{LOADS_TABLE, LoadExtras, create_loads_sql, insert_load_sql};
use crate::config::{Mode, Secret, TableName};
use crate::schema::Evolution;
use crate::util::progress::RowCounter;
use crate::util::sql::quote;

/// Where a PostgreSQL output goes.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    /// The connection string (`None`: `DATABASE_URL`, else `PG*`).
    pub dsn: Option<Secret>,
    /// The table.
    pub table: TableName,
    /// Parallel COPY streams for `replace`.
    pub copy_streams: usize,
    /// How long a load waits for another writer of the table, and a `replace` for readers to
    /// let go of the old table.
    pub swap_timeout: Duration,
}

/// Streams record batches into PostgreSQL with binary COPY (see the module docs).
#[derive(Debug)]
pub struct PostgresSink {
    dsn: Option<Secret>,
    table: TableName,
    streams: usize,
    schema: SchemaRef,
    mode: Mode,
    unique_key: Vec<String>,
    counter: RowCounter,
    evolution: Evolution,
    swap_timeout: Duration,
    /// The hidden table `replace` fills, unique to this load (see [`swap`]).
    hidden: String,
    extras: LoadExtras,
}

impl PostgresSink {
    /// A sink loading rows of `schema` into `target` in `mode`.
    pub fn new(
        target: PostgresTarget,
        schema: SchemaRef,
        mode: Mode,
        unique_key: Vec<String>,
        counter: RowCounter,
    ) -> Self {
        let PostgresTarget { dsn, table, copy_streams, swap_timeout } = target;
        PostgresSink {
            hidden: swap::hidden_name(&table.name),
            swap_timeout,
            dsn,
            table,
            streams: copy_streams,
            schema,
            mode,
            unique_key,
            counter,
            evolution: Evolution::default(),
            extras: LoadExtras::default(),
        }
    }

    /// An incremental load: delete the restated window first and record the load's marker, in
    /// the load's transaction.
    pub fn with_extras(mut self, extras: LoadExtras) -> Self {
        self.extras = extras;
        self
    }

    /// `on_schema_change: evolve`: before appending or merging into an existing table, apply
    /// the model's allowed drift to it (in the load's transaction).
    pub fn with_evolution(mut self, evolution: Evolution) -> Self {
        self.evolution = evolution;
        self
    }
}

impl DisplayAs for PostgresSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PostgresSink: {} mode={}", self.table, self.mode.name())
    }
}

/// `"schema"."name"`, or `"name"`.
fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(s) => format!("{}.{}", quote(s), quote(name)),
        None => quote(name),
    }
}

/// Why a load failed: the server said no (described once the connection's state is known), or
/// dfpipe found a problem itself.
enum Failure {
    Db(tokio_postgres::Error),
    Other(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Other(message)
    }
}

#[async_trait]
impl DataSink for PostgresSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(&self, data: SendableRecordBatchStream, _context: &Arc<TaskContext>) -> DfResult<u64> {
        self.load(data).await.map_err(|e| DataFusionError::Execution(format!("PostgreSQL {}: {e}", self.table)))
    }
}

impl PostgresSink {
    async fn load(&self, data: SendableRecordBatchStream) -> Result<u64, String> {
        let config = connect::config(self.dsn.as_ref().map(Secret::expose).transpose()?)?;
        if self.mode == Mode::Replace && self.streams > 1 {
            return self.replace_in_parallel(&config, data).await;
        }
        let mut connection = connect::connect(&config).await?;
        let result = self.load_in(&mut connection.client, data).await;
        match result {
            Ok(rows) => Ok(rows),
            Err(Failure::Db(e)) => Err(connection.describe(&e).await),
            Err(Failure::Other(message)) => Err(message),
        }
    }

    /// The quoted column list of the model, in order.
    fn column_list(&self) -> String {
        self.schema.fields().iter().map(|f| quote(f.name())).collect::<Vec<_>>().join(", ")
    }

    /// The hidden table a `replace` fills before swapping it in.
    fn new_table(&self) -> String {
        qualified(self.table.schema.as_deref(), &self.hidden)
    }

    /// `"col" type, ...` for a table created from the model's schema. Every column is nullable,
    /// as `CREATE TABLE … AS` makes it: the plan's NOT NULL (a literal's, a count's) is no
    /// contract, and as a constraint it failed later appends of NULLs once the model changed
    /// (contracts' `not_null` is checked before anything is written).
    fn column_ddl(&self) -> Result<String, String> {
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                let ty = types::pg_type(f.data_type()).map_err(|e| format!("column `{}`: {e}", f.name()))?;
                Ok(format!("{} {ty}", quote(f.name())))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(columns.join(", "))
    }

    /// Records the load's marker in the target's schema (forgetting the earlier ones on a full
    /// refresh), inside the load's transaction.
    async fn record_marker(&self, client: &tokio_postgres::Client) -> Result<(), Failure> {
        if self.extras.marker.is_none() && !self.extras.reset {
            return Ok(());
        }
        let loads = qualified(self.table.schema.as_deref(), LOADS_TABLE);
        client.batch_execute(&create_loads_sql(&loads)).await?;
        if self.extras.reset {
            client.execute(&format!("DELETE FROM {loads} WHERE target = $1"), &[&self.table.name]).await?;
        }
        if let Some(marker) = &self.extras.marker {
            let m = marker()?;
            client
                .execute(&insert_load_sql(&loads), &[&self.table.name, &m.load_id, &m.kind, &m.state, &m.definition])
                .await?;
        }
        Ok(())
    }

    /// Deletes the restated window from the existing `target`.
    async fn delete_range(&self, client: &tokio_postgres::Client, target: &str) -> Result<(), tokio_postgres::Error> {
        if let Some(range) = &self.extras.delete {
            client.batch_execute(&format!("DELETE FROM {target} WHERE {}", range.predicate())).await?;
        }
        Ok(())
    }

    /// The types batches are cast to for a table dfpipe created: dictionaries unpacked.
    fn created_types(&self) -> copy::ColumnTypes {
        let arrow = self
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, values) => values.as_ref().clone(),
                other => other.clone(),
            })
            .collect();
        copy::ColumnTypes { arrow, array_elements: Vec::new() }
    }
}
