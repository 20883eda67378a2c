//! DuckDB target: [`DuckDbSink`], a DataFusion sink (behind [`super::SinkTable`]) that loads the
//! model's partitions with `INSERT INTO staging SELECT * FROM <feed>()`, a table function over
//! them from which DuckDB's threads take rows and insert them in parallel
//! ([`super::duckdb_feed`]). A model ending in `ORDER BY` comes as one stream, inserted by one
//! thread, in order, so the table keeps it.
//!
//! Every load runs in one DuckDB transaction on a blocking thread; each partition is read a
//! batch ahead of DuckDB (so memory does not grow with the table):
//! - `replace` loads a new table beside the old one, then drops the old one and renames the new
//!   one, and commits: readers see the old table or the new one, a failure leaves the old one.
//! - `append` loads a staging table, then `INSERT INTO target BY NAME SELECT * FROM staging`.
//! - `merge` loads a staging table, checks its keys are unique, deletes the target rows whose
//!   keys it holds and inserts it.
//!
//! If a stream fails, the run is interrupted, or the process dies, the transaction never commits.
//!
//! Table names resolve as DuckDB resolves them, without regard to case even when quoted:
//! `table: Orders` is the existing table `orders`, which keeps its name. Only `replace` drops
//! a table (the old one, after the new one is loaded); `append` and `merge` into a missing
//! table rename the staging table into place. Every merge checks its key is unique first.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, LargeListArray, ListArray, RecordBatch, StringArray, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, IntervalMonthDayNanoType, IntervalUnit, Schema, SchemaRef,
};
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use duckdb::OptionalExt;
use futures::StreamExt;

use super::duckdb_feed::{self, Feed};
use super::marker::{LOADS_TABLE, LoadExtras, LoadMarker, TargetLoads, create_loads_sql, insert_load_sql};
use super::partitioned::PartitionedSink;
use super::{missing_column_message, null_key_message};
use crate::config::{DuckDbTarget, Mode};
use crate::schema::{Evolution, logical_type, widens};
use crate::util::duckdb_file;
use crate::util::progress::RowCounter;
use crate::util::sql::quote;

/// Numbers the table functions of this process's loads (each load registers its own).
static FEEDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Streams record batches into a DuckDB table (see the module docs for the modes).
#[derive(Debug)]
pub struct DuckDbSink {
    target: DuckDbTarget,
    schema: SchemaRef,
    mode: Mode,
    unique_key: Vec<String>,
    counter: RowCounter,
    memory_limit: Option<u64>,
    evolution: Evolution,
    extras: LoadExtras,
}

impl DuckDbSink {
    /// A sink loading rows of `schema` into `target` in `mode`.
    pub fn new(
        target: DuckDbTarget,
        schema: SchemaRef,
        mode: Mode,
        unique_key: Vec<String>,
        counter: RowCounter,
    ) -> Self {
        DuckDbSink {
            target,
            schema,
            mode,
            unique_key,
            counter,
            memory_limit: None,
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

    /// Sets DuckDB's own `memory_limit` (it spills to `<file>.tmp` beyond it).
    pub fn with_memory_limit(mut self, bytes: Option<u64>) -> Self {
        self.memory_limit = bytes;
        self
    }
}

impl DisplayAs for DuckDbSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DuckDbSink: {} ({}) mode={}", self.target.table, self.target.path.display(), self.mode.name())
    }
}

#[async_trait]
impl DataSink for DuckDbSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// One stream (rows in an order the table keeps, through `DataSinkExec`): one lane, so one
    /// DuckDB thread inserts it, in order.
    async fn write_all(&self, data: SendableRecordBatchStream, context: &Arc<TaskContext>) -> DfResult<u64> {
        self.write_partitions(vec![data], context).await
    }
}

#[async_trait]
impl PartitionedSink for DuckDbSink {
    async fn write_partitions(
        &self,
        data: Vec<SendableRecordBatchStream>,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let storage = storage_schema(&self.schema).map_err(DataFusionError::Plan)?;
        let streams = data.into_iter().map(|stream| self.storage_stream(stream, &storage)).collect();
        let feed = Feed::new(storage.clone(), streams);
        let job = LoadJob {
            path: self.target.path.clone(),
            schema_name: self.target.table.schema.clone().unwrap_or_else(|| "main".to_string()),
            table: self.target.table.name.clone(),
            mode: self.mode,
            unique_key: self.unique_key.clone(),
            schema: self.schema.clone(),
            memory_limit: self.memory_limit,
            evolution: self.evolution.clone(),
            extras: self.extras.clone(),
            storage,
            feed: feed.clone(),
        };
        // Dropping this future (an interrupted run) cancels the load: it rolls back.
        let _cancel = CancelOnDrop(feed.clone());
        let loaded =
            tokio::task::spawn_blocking(move || job.run()).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        if let Some(e) = feed.take_failure() {
            return Err(e);
        }
        loaded.map_err(|e| DataFusionError::Execution(format!("DuckDB {}: {e}", self.target.table)))?;
        Ok(feed.rows())
    }
}

impl DuckDbSink {
    /// `stream` with its batches in their storage types, counted as they are read.
    fn storage_stream(&self, stream: SendableRecordBatchStream, storage: &SchemaRef) -> SendableRecordBatchStream {
        let (counter, to) = (self.counter.clone(), storage.clone());
        let batches = stream.map(move |batch| {
            let batch = to_storage(batch?, &to)?;
            counter.add(batch.num_rows() as u64);
            Ok(batch)
        });
        Box::pin(RecordBatchStreamAdapter::new(storage.clone(), batches))
    }
}

/// Cancels a load's feed when dropped (after the load, it does nothing).
struct CancelOnDrop(Arc<Feed>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The load, run on a blocking thread with its own DuckDB connection.
struct LoadJob {
    path: PathBuf,
    schema_name: String,
    table: String,
    mode: Mode,
    unique_key: Vec<String>,
    /// The model's schema: the table's column types come from it (the batches arrive in
    /// their [`storage_type`]s).
    schema: SchemaRef,
    memory_limit: Option<u64>,
    evolution: Evolution,
    extras: LoadExtras,
    /// The batches' schema as they arrive (their storage types).
    storage: SchemaRef,
    /// The rows, taken by DuckDB's threads.
    feed: Arc<Feed>,
}

impl LoadJob {
    fn run(self) -> Result<(), String> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let conn = duckdb_file::open(&self.path, false, duckdb_file::lock_wait())?;
        let sql = |conn: &duckdb::Connection, sql: &str| conn.execute_batch(sql).map_err(|e| e.to_string());
        set_memory_limit(&conn, self.memory_limit)?;
        sql(&conn, "BEGIN TRANSACTION")?;
        let result = self.load(&conn);
        // The table function stays registered while the database is open: let go of the rows.
        self.feed.close();
        match result {
            // An interrupted run commits nothing, even a load that got all its rows.
            Ok(true) if !self.feed.cancelled() => sql(&conn, "COMMIT"),
            Ok(_) => {
                let _ = sql(&conn, "ROLLBACK");
                Err("the load was cancelled before it finished; the table was left as it was".to_string())
            }
            Err(e) => {
                let _ = sql(&conn, "ROLLBACK");
                Err(e)
            }
        }
    }

    /// Loads inside the open transaction; `Ok(false)` when the stream stopped without a commit.
    fn load(&self, conn: &duckdb::Connection) -> Result<bool, String> {
        let schema = quote(&self.schema_name);
        let staging_name = match self.mode {
            Mode::Replace => format!("__dfpipe_new_{}", self.table),
            Mode::Append | Mode::Merge => format!("__dfpipe_staging_{}", self.table),
        };
        let staging = format!("{schema}.{}", quote(&staging_name));
        // Every column nullable, as CREATE TABLE … AS makes it: a literal's NOT NULL in the plan
        // is no contract, and as a constraint it broke later appends of NULLs.
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| Ok(format!("{} {}", quote(f.name()), duckdb_type(f.data_type())?)))
            .collect::<Result<Vec<_>, String>>()?
            .join(", ");
        let exec = |sql: &str| conn.execute_batch(sql).map_err(|e| e.to_string());
        if self.schema_name != "main" {
            exec(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
        }
        exec(&format!("DROP TABLE IF EXISTS {staging}; CREATE TABLE {staging} ({columns})"))?;

        // While the rows arrive DuckDB gets only what ingesting needs (see `ingest_memory_limit`);
        // the checks, the merge and the swap that read them get the load's own limit back.
        let threads: i64 = conn
            .query_row("SELECT current_setting('threads')::BIGINT", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        let ingest = duckdb_feed::ingest_memory_limit(&self.storage, threads.max(1) as u64);
        set_memory_limit(conn, Some(self.memory_limit.map_or(ingest, |limit| limit.min(ingest))))?;
        let committed = self.insert_from_feed(conn, &staging, threads.max(1) as usize)?;
        set_memory_limit(conn, self.memory_limit)?;
        if !committed {
            return Ok(false);
        }

        // DuckDB resolves table names without regard to case, quoted or not: `Orders` is the
        // table `orders`. Look the target up the same way, and keep its own spelling.
        let existing = table_named(conn, &self.schema_name, &self.table)?;
        let name = existing.clone().unwrap_or_else(|| self.table.clone());
        let target = format!("{schema}.{}", quote(&name));
        if existing.is_some() && self.mode != Mode::Replace {
            if !self.evolution.is_empty() {
                self.evolve_table(conn, &target, &name)?;
            }
            self.check_columns(conn, &target)?;
        }
        if self.mode == Mode::Merge {
            self.check_unique_key(conn, &staging)?;
        }
        if existing.is_some()
            && let Some(range) = &self.extras.delete
        {
            exec(&format!("DELETE FROM {target} WHERE {}", range.predicate()))?;
        }
        let rename = format!("ALTER TABLE {staging} RENAME TO {}", quote(&name));
        match (self.mode, existing.is_some()) {
            (Mode::Replace, true) => exec(&format!("DROP TABLE {target}; {rename}"))?,
            // A new table: the staging table becomes it; nothing is ever dropped here.
            (_, false) => exec(&rename)?,
            (Mode::Append, true) => {
                exec(&format!("INSERT INTO {target} BY NAME SELECT * FROM {staging}; DROP TABLE {staging}"))?
            }
            (Mode::Merge, true) => {
                let matches = self
                    .unique_key
                    .iter()
                    .map(|k| format!("t.{k} = s.{k}", k = quote(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                exec(&format!(
                    "DELETE FROM {target} AS t WHERE EXISTS (SELECT 1 FROM {staging} AS s WHERE {matches}); \
                     INSERT INTO {target} BY NAME SELECT * FROM {staging}; DROP TABLE {staging}"
                ))?;
            }
        }
        self.record_marker(conn, &schema)?;
        Ok(true)
    }

    /// Inserts the feed's rows into `staging` with `INSERT … SELECT` from a table function over
    /// them, on up to `threads` of DuckDB's threads, one per lane at most (a single stream, as
    /// an ordered model comes, is inserted by one thread, in order); whether every row arrived
    /// (`false`: the load was cancelled).
    fn insert_from_feed(&self, conn: &duckdb::Connection, staging: &str, threads: usize) -> Result<bool, String> {
        let lanes = self.feed.limit_threads(threads);
        let function = format!("__dfpipe_feed_{}", FEEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        duckdb_feed::register(conn, &function, &self.feed)?;
        // Rows in any order is what lets DuckDB insert on all its threads at once.
        let parallel = lanes > 1;
        if parallel {
            conn.execute_batch("SET preserve_insertion_order = false").map_err(|e| e.to_string())?;
        }
        let inserted = conn.execute_batch(&format!("INSERT INTO {staging} SELECT * FROM {function}()"));
        if parallel {
            let _ = conn.execute_batch("RESET preserve_insertion_order");
        }
        match inserted {
            Ok(()) if self.feed.finished() => Ok(true),
            Ok(()) | Err(_) if self.feed.cancelled() => Ok(false),
            Ok(()) => Err("not every partition of the load arrived; nothing was committed".to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records the load's marker (forgetting the earlier ones on a full refresh).
    fn record_marker(&self, conn: &duckdb::Connection, schema: &str) -> Result<(), String> {
        if self.extras.marker.is_none() && !self.extras.reset {
            return Ok(());
        }
        let loads = format!("{schema}.{}", quote(LOADS_TABLE));
        conn.execute_batch(&create_loads_sql(&loads)).map_err(|e| e.to_string())?;
        let key = self.table.to_lowercase();
        if self.extras.reset {
            conn.execute(&format!("DELETE FROM {loads} WHERE target = ?"), [&key]).map_err(|e| e.to_string())?;
        }
        if let Some(marker) = &self.extras.marker {
            let m = marker()?;
            conn.execute(&insert_load_sql(&loads), [&key, &m.load_id, &m.kind, &m.state, &m.definition])
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Merging: the new rows' key must be unique and not NULL (on every merge, into a new
    /// table too).
    fn check_unique_key(&self, conn: &duckdb::Connection, staging: &str) -> Result<(), String> {
        let keys: Vec<String> = self.unique_key.iter().map(|k| quote(k)).collect();
        let any_null = keys.iter().map(|k| format!("{k} IS NULL")).collect::<Vec<_>>().join(" OR ");
        let nulls: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {staging} WHERE {any_null}"), [], |row| row.get(0))
            .map_err(|e| format!("checking the merge key ({}): {e}", self.unique_key.join(", ")))?;
        if nulls > 0 {
            return Err(null_key_message(&self.unique_key, nulls as u64));
        }
        let key_list = keys.join(", ");
        let duplicate: Option<String> = conn
            .query_row(
                &format!(
                    "SELECT CAST(ROW({key_list}) AS VARCHAR) FROM {staging} GROUP BY {key_list} HAVING count(*) > 1 LIMIT 1"
                ),
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| format!("checking the merge key ({}): {e}", self.unique_key.join(", ")))?;
        match duplicate {
            None => Ok(()),
            Some(dup) => Err(format!(
                "merge key ({}) is not unique in the new rows: {dup} appears more than once",
                self.unique_key.join(", ")
            )),
        }
    }
}

/// Sets DuckDB's `memory_limit` to `bytes`, or back to DuckDB's default (80% of RAM).
fn set_memory_limit(conn: &duckdb::Connection, bytes: Option<u64>) -> Result<(), String> {
    let sql = match bytes {
        Some(bytes) => format!("SET memory_limit = '{}MiB'", (bytes >> 20).max(1)),
        None => "RESET memory_limit".to_string(),
    };
    conn.execute_batch(&sql).map_err(|e| e.to_string())
}

impl LoadJob {
    /// The arrow schema of an existing table.
    fn table_schema(conn: &duckdb::Connection, target: &str) -> Result<SchemaRef, String> {
        conn.prepare(&format!("SELECT * FROM {target} LIMIT 0"))
            .and_then(|mut stmt| stmt.query_arrow([]).map(|arrow| arrow.get_schema()))
            .map_err(|e| e.to_string())
    }

    /// Appending or merging: every model column must be in the table.
    fn check_columns(&self, conn: &duckdb::Connection, target: &str) -> Result<(), String> {
        let held = Self::table_schema(conn, target)?;
        match self.schema.fields().iter().find(|f| held.field_with_name(f.name()).is_err()) {
            None => Ok(()),
            Some(f) => Err(missing_column_message(f.name(), target, held.fields().iter().map(|f| f.name().as_str()))),
        }
    }

    /// Under `evolve`: adds the columns the model gained, widens those it widened, drops NOT NULL
    /// from those that became nullable.
    fn evolve_table(&self, conn: &duckdb::Connection, target: &str, name: &str) -> Result<(), String> {
        let held = Self::table_schema(conn, target)?;
        let not_null: Vec<String> = conn
            .prepare(
                "SELECT column_name FROM duckdb_columns() \
                 WHERE lower(schema_name) = lower(?) AND table_name = ? AND NOT is_nullable",
            )
            .and_then(|mut stmt| {
                stmt.query_map([self.schema_name.as_str(), name], |row| row.get::<_, String>(0))?.collect()
            })
            .map_err(|e| e.to_string())?;
        let named = |list: &[String], f: &Field| list.iter().any(|n| n == f.name());
        let mut alter = Vec::new();
        for f in self.schema.fields() {
            let column = quote(f.name());
            match held.field_with_name(f.name()) {
                Err(_) if self.evolution.adds(f.name()) => {
                    alter.push(format!("ALTER TABLE {target} ADD COLUMN {column} {}", duckdb_type(f.data_type())?))
                }
                Err(_) => {}
                Ok(now) => {
                    if self.evolution.widens(f.name())
                        && widens(&logical_type(now.data_type()), &logical_type(f.data_type()))
                    {
                        alter.push(format!(
                            "ALTER TABLE {target} ALTER COLUMN {column} SET DATA TYPE {}",
                            duckdb_type(f.data_type())?
                        ));
                    }
                    if named(&self.evolution.nullable, f) && not_null.iter().any(|n| n == f.name()) {
                        alter.push(format!("ALTER TABLE {target} ALTER COLUMN {column} DROP NOT NULL"));
                    }
                }
            }
        }
        if !alter.is_empty() {
            tracing::info!(table = %target, "on_schema_change: evolve: {}", alter.join("; "));
            conn.execute_batch(&alter.join(";\n")).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The table `schema.name` as DuckDB resolves it (without regard to case, quoted or not), by
/// its own spelling; `None` when there is none.
fn table_named(conn: &duckdb::Connection, schema: &str, name: &str) -> Result<Option<String>, String> {
    conn.query_row(
        "SELECT table_name FROM information_schema.tables \
         WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?)",
        [schema, name],
        |row| row.get(0),
    )
    .optional()
    .map_err(|e| e.to_string())
}

/// What `target` holds of its incremental loads (its markers, whether it exists and has rows).
pub fn read_loads(target: &DuckDbTarget) -> Result<TargetLoads, String> {
    if !target.path.exists() {
        return Ok(TargetLoads::default());
    }
    let conn = duckdb_file::open(&target.path, true, duckdb_file::lock_wait())?;
    let schema = target.table.schema.clone().unwrap_or_else(|| "main".into());
    let lookup = |name: &str| table_named(&conn, &schema, name);
    let mut loads = TargetLoads::default();
    if let Some(name) = lookup(&target.table.name)? {
        loads.exists = true;
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {}.{})", quote(&schema), quote(&name));
        loads.has_rows = conn.query_row(&sql, [], |row| row.get(0)).map_err(|e| e.to_string())?;
    }
    if lookup(LOADS_TABLE)?.is_some() {
        let sql = format!(
            "SELECT target, load_id, kind, state, definition FROM {}.{} WHERE target = ? ORDER BY loaded_at, load_id",
            quote(&schema),
            quote(LOADS_TABLE)
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([target.table.name.to_lowercase()], |r| {
                Ok(LoadMarker {
                    target: r.get(0)?,
                    load_id: r.get(1)?,
                    kind: r.get(2)?,
                    state: r.get(3)?,
                    definition: r.get(4)?,
                })
            })
            .map_err(|e| e.to_string())?;
        loads.markers = rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    }
    Ok(loads)
}

/// Rewrites the markers of `target` to `markers` in one transaction (`dfpipe state forget`).
pub fn rewrite_loads(target: &DuckDbTarget, markers: &[LoadMarker]) -> Result<(), String> {
    let mut conn = duckdb_file::open(&target.path, false, duckdb_file::lock_wait())?;
    let schema = target.table.schema.clone().unwrap_or_else(|| "main".into());
    let loads = format!("{}.{}", quote(&schema), quote(LOADS_TABLE));
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    tx.execute_batch(&create_loads_sql(&loads)).map_err(|e| e.to_string())?;
    tx.execute(&format!("DELETE FROM {loads} WHERE target = ?"), [target.table.name.to_lowercase()])
        .map_err(|e| e.to_string())?;
    for m in markers {
        tx.execute(&insert_load_sql(&loads), [&m.target, &m.load_id, &m.kind, &m.state, &m.definition])
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}

/// The DuckDB column type for a column of the model's Arrow type.
pub fn duckdb_type(data_type: &DataType) -> Result<String, String> {
    use datafusion::arrow::datatypes::TimeUnit::*;
    Ok(match data_type {
        DataType::Dictionary(_, values) => duckdb_type(values)?,
        DataType::Float16 => "FLOAT".into(),
        DataType::Decimal256(..) => return duckdb_type(&storage_type(data_type)?),
        DataType::Null => "INTEGER".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            format!("DECIMAL({p},{s})")
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "BLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Timestamp(Second, None) => "TIMESTAMP_S".into(),
        DataType::Timestamp(Millisecond, None) => "TIMESTAMP_MS".into(),
        DataType::Timestamp(Microsecond, None) => "TIMESTAMP".into(),
        DataType::Timestamp(Nanosecond, None) => "TIMESTAMP_NS".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Duration(_) | DataType::Interval(_) => "INTERVAL".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("{}[]", duckdb_type(f.data_type())?),
        DataType::FixedSizeList(f, n) => format!("{}[{n}]", duckdb_type(f.data_type())?),
        DataType::Struct(fields) => {
            let inner = fields
                .iter()
                .map(|f| Ok(format!("{} {}", quote(f.name()), duckdb_type(f.data_type())?)))
                .collect::<Result<Vec<_>, String>>()?;
            format!("STRUCT({})", inner.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("MAP({}, {})", duckdb_type(kv[0].data_type())?, duckdb_type(kv[1].data_type())?)
            }
            other => return Err(format!("unexpected map layout {other}")),
        },
        other => return Err(format!("Arrow type {other} has no DuckDB column type; CAST it in the model")),
    })
}

/// A note for each top-level decimal column of more than 18 digits (with a scale DuckDB's
/// 18-digit decimals take), which DuckDB stores as a 128-bit integer: twice the bytes of one of
/// up to 18 digits, slower to write and to aggregate. DataFusion's decimal arithmetic widens to
/// such types (a product of two DECIMAL(15,2) is DECIMAL(38,4)) where DuckDB's SQL narrows.
pub fn wide_decimal_notes(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .filter_map(|field| match field.data_type() {
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s)
                if (19..=38).contains(p) && (0..=18).contains(s) =>
            {
                Some(format!(
                    "column `{name}` is DECIMAL({p},{s}), which DuckDB stores as a 128-bit integer (twice the \
                 bytes of DECIMAL(18,{s}), slower to write and to aggregate); if its values fit in 18 digits, \
                 CAST it in the model: CAST(… AS DECIMAL(18,{s})) AS {alias}",
                    name = field.name(),
                    alias = plain_or_quoted(field.name())
                ))
            }
            _ => None,
        })
        .collect()
}

/// `name` as SQL writes it: bare when it is a lowercase identifier, else quoted.
fn plain_or_quoted(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c == '_' || c.is_ascii_lowercase())
        && chars.all(|c| c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit());
    if plain { name.to_string() } else { quote(name) }
}

/// The type a column is handed to DuckDB's feed as: the Arrow type itself where duckdb-rs (which
/// converts what DuckDB's import does not take) takes it, otherwise the nearest type it takes
/// without loss (dictionaries become their values, half floats become floats, decimal256 of 38
/// digits or fewer becomes decimal128). Intervals and durations travel as text that DuckDB
/// casts to the table's INTERVAL column: duckdb-rs (1.10506) rebuilds interval arrays from
/// their values and drops their validity, so a NULL would arrive as `00:00:00`.
fn storage_type(data_type: &DataType) -> Result<DataType, String> {
    Ok(match data_type {
        DataType::Interval(_) | DataType::Duration(_) => DataType::Utf8,
        DataType::Dictionary(_, values) => storage_type(values)?,
        DataType::Float16 => DataType::Float32,
        DataType::Decimal256(p, s) if *p <= 38 => DataType::Decimal128(*p, *s),
        DataType::Decimal256(p, s) => {
            return Err(format!("DECIMAL({p},{s}) has more than the 38 digits DuckDB stores; CAST it in the model"));
        }
        DataType::List(f) => DataType::List(Arc::new(storage_field(f)?)),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(storage_field(f)?)),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| storage_field(f).map(Arc::new)).collect::<Result<Fields, String>>()?)
        }
        DataType::Null => DataType::Int32,
        other => other.clone(),
    })
}

fn storage_field(field: &Field) -> Result<Field, String> {
    Ok(field.clone().with_data_type(storage_type(field.data_type())?))
}

/// The schema batches are converted to before they reach DuckDB.
fn storage_schema(schema: &Schema) -> Result<SchemaRef, String> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| storage_field(f).map_err(|e| format!("column `{}`: {e}", f.name())))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

fn to_storage(batch: RecordBatch, storage: &SchemaRef) -> DfResult<RecordBatch> {
    if batch.schema().fields().iter().zip(storage.fields()).all(|(a, b)| a.data_type() == b.data_type()) {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(storage.fields())
        .map(|(c, f)| to_storage_array(c, f.data_type()))
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(storage.clone(), columns)?)
}

/// One column converted to its [`storage_type`], through lists and structs.
fn to_storage_array(array: &ArrayRef, to: &DataType) -> DfResult<ArrayRef> {
    Ok(match (array.data_type(), to) {
        (from, to) if from == to => array.clone(),
        (DataType::Interval(_) | DataType::Duration(_), _) => interval_text(array)?,
        (DataType::List(_), DataType::List(field)) => {
            let list = array.as_list::<i32>();
            let values = to_storage_array(list.values(), field.data_type())?;
            Arc::new(ListArray::try_new(field.clone(), list.offsets().clone(), values, list.nulls().cloned())?)
        }
        (DataType::LargeList(_), DataType::LargeList(field)) => {
            let list = array.as_list::<i64>();
            let values = to_storage_array(list.values(), field.data_type())?;
            Arc::new(LargeListArray::try_new(field.clone(), list.offsets().clone(), values, list.nulls().cloned())?)
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let parts = array.as_struct();
            let columns = parts
                .columns()
                .iter()
                .zip(fields)
                .map(|(c, f)| to_storage_array(c, f.data_type()))
                .collect::<DfResult<Vec<_>>>()?;
            Arc::new(StructArray::try_new(fields.clone(), columns, parts.nulls().cloned())?)
        }
        _ => cast(array, to)?,
    })
}

/// Intervals and durations as DuckDB interval text (`1 months 2 days 3000000 microseconds`),
/// NULL kept NULL. DuckDB holds microseconds: finer digits are cut, as its own cast does.
fn interval_text(array: &ArrayRef) -> DfResult<ArrayRef> {
    let intervals = cast(array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
    let text: StringArray = intervals
        .as_primitive::<IntervalMonthDayNanoType>()
        .iter()
        .map(|v| v.map(|v| format!("{} months {} days {} microseconds", v.months, v.days, v.nanoseconds / 1000)))
        .collect();
    Ok(Arc::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_types() {
        assert_eq!(duckdb_type(&DataType::Decimal128(12, 2)).unwrap(), "DECIMAL(12,2)");
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        assert_eq!(duckdb_type(&list).unwrap(), "BIGINT[]");
        let st = DataType::Struct(vec![Field::new("a b", DataType::Utf8, true)].into());
        assert_eq!(duckdb_type(&st).unwrap(), "STRUCT(\"a b\" VARCHAR)");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn storage_types() {
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(storage_type(&dict).unwrap(), DataType::Utf8);
        assert_eq!(storage_type(&DataType::Decimal256(20, 2)).unwrap(), DataType::Decimal128(20, 2));
        assert!(storage_type(&DataType::Decimal256(50, 2)).is_err());
    }
}
