//! PostgreSQL target: [`PostgresSink`], a DataFusion `DataSink` (behind [`super::SinkTable`]),
//! so a target is `INSERT INTO pg_table SELECT * FROM model`, planned and streamed by DataFusion
//! and sent with `COPY ... FROM STDIN (FORMAT binary)` from Arrow columns encoded straight to the
//! wire format ([`encode`]).
//!
//! Every load is one transaction:
//! - `replace` copies into a new table `__dfpipe_new_<table>`, drops the old table and renames
//!   the new one: readers see the old table or the new one, never a partial one. The new table
//!   is created from the model's schema: indexes, grants and comments of the old table are not
//!   carried over, and views that depend on it make the drop fail (the load then fails and the
//!   old table stays).
//! - `append` copies into the existing table, casting each column to the table's type (the
//!   table is created when missing).
//! - `merge` copies into a temporary staging table, checks the key is unique there, deletes the
//!   target's rows with those keys and inserts the staging rows.
//!
//! A failure anywhere (a value PostgreSQL cannot hold, the server going away) rolls back.

pub mod connect;
pub mod encode;
pub mod numeric;
pub mod tls;
pub mod types;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::{SinkExt, StreamExt};
use tokio_postgres::Transaction;

use super::{missing_column_message, quote};
use crate::config::{Mode, Secret, TableName};
use crate::drift::{Evolution, logical_type, widens};
use crate::progress::RowCounter;

/// Where a PostgreSQL output goes.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    /// The connection string (`None`: `DATABASE_URL`, else `PG*`).
    pub dsn: Option<Secret>,
    /// The table.
    pub table: TableName,
    /// Parallel COPY streams for `replace`.
    pub copy_streams: usize,
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
        let PostgresTarget { dsn, table, copy_streams } = target;
        PostgresSink {
            dsn,
            table,
            streams: copy_streams,
            schema,
            mode,
            unique_key,
            counter,
            evolution: Evolution::default(),
        }
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
        let config = connect::config(self.dsn.as_ref().map(Secret::expose))?;
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

    async fn load_in(
        &self,
        client: &mut tokio_postgres::Client,
        data: SendableRecordBatchStream,
    ) -> Result<u64, Failure> {
        let tx = client.transaction().await?;
        let schema = self.table.schema.as_deref();
        if let Some(s) = schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(s))).await?;
        }
        let target = qualified(schema, &self.table.name);
        let exists: bool = tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&target]).await?.get(0);
        let column_list = self.column_list();

        let rows = match (self.mode, exists) {
            (Mode::Replace, _) => {
                let new = self.new_table();
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {new}; CREATE TABLE {new} ({})", self.column_ddl()?))
                    .await?;
                let rows = self.copier(&new, &column_list, self.created_types())?.copy(&tx, batches(data)).await?;
                tx.batch_execute(&self.swap_sql()).await?;
                rows
            }
            (Mode::Append | Mode::Merge, false) => {
                tx.batch_execute(&format!("CREATE TABLE {target} ({})", self.column_ddl()?)).await?;
                self.copier(&target, &column_list, self.created_types())?.copy(&tx, batches(data)).await?
            }
            (Mode::Append, true) => {
                self.evolve_table(&tx, &target).await?;
                let types = self.existing_types(&tx, &target).await?;
                self.copier(&target, &column_list, types)?.copy(&tx, batches(data)).await?
            }
            (Mode::Merge, true) => {
                self.evolve_table(&tx, &target).await?;
                let types = self.existing_types(&tx, &target).await?;
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
                        &format!("SELECT CAST(ROW({key_list}) AS text) FROM {stage} GROUP BY {key_list} HAVING count(*) > 1 LIMIT 1"),
                        &[],
                    )
                    .await
                    ?;
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
                rows
            }
        };
        tx.commit().await?;
        Ok(rows)
    }

    /// `replace` over several connections: the new table is created (committed, under its hidden
    /// name), filled by parallel COPY streams each in its own transaction, then swapped in by one
    /// transaction. On failure the hidden table is dropped; the target is never touched.
    async fn replace_in_parallel(
        &self,
        config: &connect::Settings,
        data: SendableRecordBatchStream,
    ) -> Result<u64, String> {
        let main = connect::connect(config).await?;
        let new = self.new_table();
        let create_schema = self
            .table
            .schema
            .as_deref()
            .map_or_else(String::new, |s| format!("CREATE SCHEMA IF NOT EXISTS {}; ", quote(s)));
        let copier = self.copier(&new, &self.column_list(), self.created_types())?;
        let setup = format!("{create_schema}DROP TABLE IF EXISTS {new}; CREATE TABLE {new} ({})", self.column_ddl()?);
        if let Err(e) = main.client.batch_execute(&setup).await {
            return Err(main.describe(&e).await);
        }
        let copied = self.copy_in_parallel(config, &copier, data).await;
        let result = match copied {
            Ok(rows) => match main.client.batch_execute(&format!("BEGIN; {}; COMMIT", self.swap_sql())).await {
                Ok(()) => return Ok(rows),
                Err(e) => Err(main.describe(&e).await),
            },
            Err(e) => Err(e),
        };
        let _ = main.client.batch_execute(&format!("ROLLBACK; DROP TABLE IF EXISTS {new}")).await;
        result
    }

    /// Deals the batches round-robin to `self.streams` COPY streams on their own connections.
    async fn copy_in_parallel(
        &self,
        config: &connect::Settings,
        copier: &Copier,
        mut data: SendableRecordBatchStream,
    ) -> Result<u64, String> {
        let mut senders = Vec::with_capacity(self.streams);
        let mut workers = Vec::with_capacity(self.streams);
        for _ in 0..self.streams {
            let (tx, rx) = tokio::sync::mpsc::channel::<Message>(2);
            let mut connection = connect::connect(config).await?;
            let copier = copier.clone();
            workers.push(tokio::spawn(async move {
                let result = async {
                    let tx = connection.client.transaction().await?;
                    let rows = copier.copy(&tx, messages(rx)).await?;
                    tx.commit().await?;
                    Ok::<_, Failure>(rows)
                }
                .await;
                match result {
                    Ok(rows) => Ok(rows),
                    Err(Failure::Db(e)) => Err(connection.describe(&e).await),
                    Err(Failure::Other(m)) => Err(m),
                }
            }));
            senders.push(tx);
        }
        let (mut next, mut before, mut failure) = (0, 0u64, None);
        while let Some(batch) = data.next().await {
            match batch {
                Ok(batch) => {
                    let n = batch.num_rows() as u64;
                    if senders[next].send(Message::Batch(batch, before)).await.is_err() {
                        break; // that stream failed; its error is collected below
                    }
                    before += n;
                    next = (next + 1) % senders.len();
                }
                Err(e) => {
                    failure = Some(crate::error::df_message(&e));
                    break;
                }
            }
        }
        if failure.is_none() {
            for sender in &senders {
                let _ = sender.send(Message::End).await;
            }
        }
        drop(senders);
        let mut rows = 0;
        for worker in workers {
            match worker.await {
                Ok(Ok(n)) => rows += n,
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(e) => failure = failure.or(Some(e.to_string())),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// The quoted column list of the model, in order.
    fn column_list(&self) -> String {
        self.schema.fields().iter().map(|f| quote(f.name())).collect::<Vec<_>>().join(", ")
    }

    /// The hidden table a `replace` fills before swapping it in.
    fn new_table(&self) -> String {
        qualified(self.table.schema.as_deref(), &format!("__dfpipe_new_{}", self.table.name))
    }

    /// Drops the target and renames the hidden table to it (run inside one transaction).
    fn swap_sql(&self) -> String {
        let target = qualified(self.table.schema.as_deref(), &self.table.name);
        format!("DROP TABLE IF EXISTS {target}; ALTER TABLE {} RENAME TO {}", self.new_table(), quote(&self.table.name))
    }

    /// `"col" type [NOT NULL], ...` for a table created from the model's schema.
    fn column_ddl(&self) -> Result<String, String> {
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                let ty = types::pg_type(f.data_type()).map_err(|e| format!("column `{}`: {e}", f.name()))?;
                Ok(format!("{} {ty}{}", quote(f.name()), if f.is_nullable() { "" } else { " NOT NULL" }))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(columns.join(", "))
    }

    /// The types batches are cast to for a table dfpipe created: dictionaries unpacked.
    fn created_types(&self) -> Vec<DataType> {
        self.schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, values) => values.as_ref().clone(),
                other => other.clone(),
            })
            .collect()
    }

    /// Under `evolve`: adds the columns the model gained, widens those it widened, drops NOT NULL
    /// from those that became nullable.
    async fn evolve_table(&self, tx: &Transaction<'_>, target: &str) -> Result<(), Failure> {
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
                None if named(&self.evolution.added, f) => alter.push(format!("ADD COLUMN {column} {}", pg()?)),
                None => {}
                Some((_, pg_now, not_null)) => {
                    let held = types::arrow_for_pg(pg_now, f.data_type()).map(|t| logical_type(&t));
                    if named(&self.evolution.widened, f)
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

    /// The types batches are cast to for an existing table: whatever its columns hold.
    async fn existing_types(&self, tx: &Transaction<'_>, target: &str) -> Result<Vec<DataType>, Failure> {
        let rows = tx
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&target],
            )
            .await?;
        let existing: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let types = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                let Some((_, pg)) = existing.iter().find(|(name, _)| name == f.name()) else {
                    return Err(missing_column_message(f.name(), target, existing.iter().map(|(n, _)| n.as_str())));
                };
                types::arrow_for_pg(pg, f.data_type()).ok_or_else(|| {
                    format!(
                        "column `{}`: dfpipe cannot write PostgreSQL type {pg} yet; CAST the column in the model",
                        f.name()
                    )
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(types)
    }
}

/// What a parallel COPY stream receives.
enum Message {
    /// A batch and the number of rows dealt before it.
    Batch(RecordBatch, u64),
    /// The input ended cleanly: finish the COPY and commit.
    End,
}

/// A stream's batches; a channel that closes without [`Message::End`] is a cancelled load.
fn messages(
    rx: tokio::sync::mpsc::Receiver<Message>,
) -> impl futures::Stream<Item = Result<(RecordBatch, u64), Failure>> {
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Message::Batch(batch, before)) => Some((Ok((batch, before)), Some(rx))),
            Some(Message::End) => None,
            None => Some((Err(Failure::Other("the load was cancelled".to_string())), None)),
        }
    })
}

/// Sends batches through one `COPY ... FROM STDIN (FORMAT binary)`.
#[derive(Debug, Clone)]
struct Copier {
    table: String,
    column_list: String,
    schema: SchemaRef,
    types: Vec<DataType>,
    counter: RowCounter,
}

/// The model's batches, each with the number of rows before it (for row numbers in errors).
fn batches(data: SendableRecordBatchStream) -> impl futures::Stream<Item = Result<(RecordBatch, u64), Failure>> {
    data.scan(0u64, |before, batch| {
        let item = batch.map(|b| {
            let first = *before;
            *before += b.num_rows() as u64;
            (b, first)
        });
        futures::future::ready(Some(item.map_err(|e| Failure::Other(crate::error::df_message(&e)))))
    })
}

impl PostgresSink {
    /// A copier into `table`, after checking every column type can be encoded.
    fn copier(&self, table: &str, column_list: &str, types: Vec<DataType>) -> Result<Copier, String> {
        for (field, ty) in self.schema.fields().iter().zip(&types) {
            if !encode::supported(ty) {
                return Err(format!(
                    "column `{}`: Arrow type {ty} has no PostgreSQL encoding yet; CAST it in the model",
                    field.name()
                ));
            }
        }
        Ok(Copier {
            table: table.to_string(),
            column_list: column_list.to_string(),
            schema: self.schema.clone(),
            types,
            counter: self.counter.clone(),
        })
    }
}

impl Copier {
    /// Streams every batch through binary COPY inside `tx`; returns the rows copied.
    async fn copy(
        &self,
        tx: &Transaction<'_>,
        data: impl futures::Stream<Item = Result<(RecordBatch, u64), Failure>>,
    ) -> Result<u64, Failure> {
        let sink = tx
            .copy_in::<_, Bytes>(&format!("COPY {} ({}) FROM STDIN (FORMAT binary)", self.table, self.column_list))
            .await?;
        futures::pin_mut!(sink);
        futures::pin_mut!(data);
        sink.send(Bytes::from_static(encode::HEADER)).await?;
        let mut encoder = encode::Encoder::default();
        let mut rows = 0u64;
        while let Some(item) = data.next().await {
            let (batch, before) = item?;
            let batch = self.cast(batch, before)?;
            let bytes = encoder
                .encode(&batch)
                .map_err(|e| format!("column `{}`, row {}: {}", e.column, before + e.row as u64 + 1, e.reason))?;
            if let Err(e) = sink.send(Bytes::copy_from_slice(bytes)).await {
                // A closed connection hides the server's reason in the COPY's pending response.
                return Err(match sink.as_mut().finish().await {
                    Err(reason) if reason.as_db_error().is_some() => reason.into(),
                    _ => e.into(),
                });
            }
            rows += batch.num_rows() as u64;
            self.counter.add(batch.num_rows() as u64);
        }
        sink.send(Bytes::from_static(encode::TRAILER)).await?;
        let copied = sink.as_mut().finish().await?;
        if copied != rows {
            return Err(Failure::Other(format!("PostgreSQL reports {copied} rows copied, dfpipe sent {rows}")));
        }
        Ok(rows)
    }

    /// Casts each column to the type it is encoded as; a value that does not fit is an error
    /// naming the column (never a silent NULL).
    fn cast(&self, batch: RecordBatch, rows_before: u64) -> Result<RecordBatch, String> {
        let types = &self.types;
        if batch.columns().iter().zip(types).all(|(c, t)| c.data_type() == t) {
            return Ok(batch);
        }
        let options = CastOptions { safe: false, ..Default::default() };
        let schema = self.schema.clone();
        let columns = batch
            .columns()
            .iter()
            .zip(types)
            .zip(schema.fields())
            .map(|((c, t), f)| {
                if c.data_type() == t {
                    Ok(c.clone())
                } else {
                    cast_with_options(c, t, &options).map_err(|e| {
                        format!(
                            "column `{}` (rows {}..): cannot convert {} to the table's type: {e}",
                            f.name(),
                            rows_before + 1,
                            c.data_type()
                        )
                    })
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        let fields: Vec<_> =
            schema.fields().iter().zip(types).map(|(f, t)| f.as_ref().clone().with_data_type(t.clone())).collect();
        RecordBatch::try_new(Arc::new(datafusion::arrow::datatypes::Schema::new(fields)), columns)
            .map_err(|e| e.to_string())
    }
}
