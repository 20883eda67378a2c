//! The catalog store: the file attached for each operation (held briefly, so an analyst may
//! open the catalog between them; an attach waits a bounded time for one who holds it), the
//! DDL, and the reads and writes of runs, schemas, files, targets, tests and drift.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use duckdb::{Connection, OptionalExt, params};
use serde::Serialize;

use super::lock::ProjectLock;
use super::results::{RunResults, Status};
use crate::checks::data_tests::TestResult;
use crate::config::Policy;
use crate::engine::observe::FileIdentity;
use crate::error::{Error, Result};
use crate::schema::{Change, Kind, Snapshot, stored};
use crate::util::duckdb_file::{self, Attached};
use crate::util::redact;

/// The catalog's file name in the state directory.
pub const CATALOG_FILE: &str = "catalog.duckdb";

const DDL: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id BIGINT PRIMARY KEY, project VARCHAR, command VARCHAR, dfpipe_version VARCHAR,
    started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR, strategy VARCHAR,
    targets INTEGER, rows BIGINT, elapsed_seconds DOUBLE, memory_budget_bytes BIGINT,
    peak_rss_bytes BIGINT, error VARCHAR);
CREATE TABLE IF NOT EXISTS schemas (
    run_id BIGINT, kind VARCHAR, name VARCHAR, fingerprint VARCHAR, columns VARCHAR,
    accepted BOOLEAN, recorded_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS source_files (
    run_id BIGINT, source VARCHAR, path VARCHAR, size BIGINT, modified TIMESTAMP, etag VARCHAR);
CREATE TABLE IF NOT EXISTS targets (
    run_id BIGINT, model VARCHAR, target VARCHAR, mode VARCHAR, status VARCHAR, rows BIGINT,
    quarantined BIGINT, dropped BIGINT, seconds DOUBLE, strategy VARCHAR, estimate_bytes BIGINT, peak_rss_bytes BIGINT, error VARCHAR);
ALTER TABLE targets ADD COLUMN IF NOT EXISTS quarantined BIGINT;
ALTER TABLE targets ADD COLUMN IF NOT EXISTS dropped BIGINT;
CREATE TABLE IF NOT EXISTS tests (
    run_id BIGINT, relation VARCHAR, test VARCHAR, outcome VARCHAR, failures BIGINT, message VARCHAR);
CREATE TABLE IF NOT EXISTS catalog_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS loads (
    target VARCHAR, load_id VARCHAR, kind VARCHAR, state VARCHAR, definition VARCHAR, run_id BIGINT,
    recorded_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS drift (
    run_id BIGINT, kind VARCHAR, name VARCHAR, change VARCHAR, column_name VARCHAR,
    before VARCHAR, after VARCHAR, policy VARCHAR, outcome VARCHAR);
";

/// The status of a run that ended without recording its end (killed with `kill -9`, out of
/// memory, the machine stopped): set by the next run to take the project's lock.
pub const CRASHED: &str = "crashed";

/// The catalog's format. 2: snapshots store types in dfpipe's own stable JSON
/// ([`crate::schema::stored`]); 1 stored Arrow's display text. Opening a catalog for writing
/// migrates it; a catalog of a newer format is refused.
pub const CATALOG_FORMAT: i64 = 2;

/// A recorded schema.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaRecord {
    /// The run that recorded it (or the `schema accept` that did).
    pub run_id: i64,
    /// `source`, `model` or `target`.
    pub kind: String,
    /// The relation's name.
    pub name: String,
    /// [`Snapshot::fingerprint`].
    pub fingerprint: String,
    /// The columns.
    pub snapshot: Snapshot,
    /// Whether it is a baseline drift is judged against.
    pub accepted: bool,
    /// When, UTC.
    pub recorded_at: String,
}

/// One row of `dfpipe runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: i64,
    /// `run` or `schema accept`.
    pub command: String,
    /// Start, UTC.
    pub started_at: String,
    /// End, UTC (None while running, or if the process died).
    pub finished_at: Option<String>,
    /// `running`, `success`, `error`, `drift`, `contract`, `test`, `state`, `interrupted` (Ctrl-C)
    /// or [`CRASHED`] (ended without recording its end, found by a later run).
    pub status: String,
    /// The strategies the targets ran with, comma-separated.
    pub strategy: Option<String>,
    /// Targets attempted.
    pub targets: Option<i32>,
    /// Rows written.
    pub rows: Option<i64>,
    /// Wall-clock seconds.
    pub elapsed_seconds: Option<f64>,
    /// Peak RSS in bytes.
    pub peak_rss_bytes: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The catalog of one project.
#[derive(Debug, Clone)]
pub struct Catalog {
    path: PathBuf,
}

/// A timestamp as the catalog stores it: UTC, microseconds.
fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

impl Catalog {
    /// The catalog in `state_dir` (created on first write).
    pub fn new(state_dir: &Path) -> Catalog {
        Catalog { path: state_dir.join(CATALOG_FILE) }
    }

    /// The catalog's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, e: impl std::fmt::Display) -> Error {
        Error::Run(format!("schema catalog {}: {e}", self.path.display()))
    }

    /// Opens the catalog for writing, creating its tables: the first time in this process, or
    /// when the file is new (the DDL and the format check take ~2 ms an operation otherwise).
    fn open(&self) -> Result<Attached> {
        /// The catalogs this process has created the tables of and migrated.
        static PREPARED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.fail(e))?;
        }
        let new = !self.path.exists();
        let mut conn = duckdb_file::attach(&self.path, false, duckdb_file::lock_wait()).map_err(|e| self.fail(e))?;
        let mut prepared = PREPARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if new || !prepared.contains(&self.path) {
            conn.execute_batch(DDL).map_err(|e| self.fail(e))?;
            self.migrate(&mut conn)?;
            prepared.insert(self.path.clone());
        }
        Ok(conn)
    }

    /// Brings an older catalog to [`CATALOG_FORMAT`], in one transaction.
    fn migrate(&self, conn: &mut Connection) -> Result<()> {
        let format: Option<String> = conn
            .query_row("SELECT value FROM catalog_meta WHERE key = 'format'", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.fail(e))?;
        let format = format.and_then(|f| f.parse::<i64>().ok()).unwrap_or(1);
        if format == CATALOG_FORMAT {
            return Ok(());
        }
        if format > CATALOG_FORMAT {
            return Err(self.fail(format!(
                "written by a newer dfpipe (catalog format {format}; this dfpipe knows {CATALOG_FORMAT}): upgrade dfpipe"
            )));
        }
        let tx = conn.transaction().map_err(|e| self.fail(e))?;
        let rows: Vec<(i64, String, String)> = tx
            .prepare("SELECT rowid, name, columns FROM schemas")
            .and_then(|mut stmt| stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
            .map_err(|e| self.fail(e))?;
        let mut migrated = 0;
        for (rowid, name, columns) in rows {
            if stored::is_current(&columns) {
                continue;
            }
            let snapshot = Snapshot::from_json(&columns).map_err(|e| {
                self.fail(format!("migrating the schema of {name} to catalog format {CATALOG_FORMAT}: {e}"))
            })?;
            tx.execute(
                "UPDATE schemas SET columns = ?, fingerprint = ? WHERE rowid = ?",
                params![snapshot.to_json(), snapshot.fingerprint(), rowid],
            )
            .map_err(|e| self.fail(e))?;
            migrated += 1;
        }
        tx.execute("INSERT OR REPLACE INTO catalog_meta VALUES ('format', ?)", params![CATALOG_FORMAT.to_string()])
            .map_err(|e| self.fail(e))?;
        tx.commit().map_err(|e| self.fail(e))?;
        if migrated > 0 {
            tracing::info!("schema catalog migrated to format {CATALOG_FORMAT}: {migrated} snapshots rewritten");
        }
        Ok(())
    }

    /// Opens the catalog read-only; `None` when no run has written it yet.
    fn read(&self) -> Result<Option<Attached>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let conn = duckdb_file::attach(&self.path, true, duckdb_file::lock_wait()).map_err(|e| self.fail(e))?;
        Ok(Some(conn))
    }

    /// Records the start of a run; returns its id. Taking the project's lock (`_lock`, the proof)
    /// means no earlier run is still going, so any still marked `running` ended without
    /// recording its end (killed, out of memory, the machine stopped): it is marked
    /// [`CRASHED`] in the same transaction, its end left unknown.
    pub fn begin_run(
        &self,
        _lock: &ProjectLock,
        project: &str,
        command: &str,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<i64> {
        let mut conn = self.open()?;
        let tx = conn.transaction().map_err(|e| self.fail(e))?;
        let id: i64 = tx
            .query_row("SELECT coalesce(max(run_id), 0) + 1 FROM runs", [], |r| r.get(0))
            .map_err(|e| self.fail(e))?;
        let crashed = tx
            .execute(
                "UPDATE runs SET status = ?, error = ? WHERE status = 'running'",
                params![CRASHED, format!("ended without recording its end (killed or crashed); found by run #{id}")],
            )
            .map_err(|e| self.fail(e))?;
        if crashed > 0 {
            tracing::warn!("{crashed} earlier run(s) ended without recording their end; marked `{CRASHED}`");
        }
        tx.execute(
            "INSERT INTO runs (run_id, project, command, dfpipe_version, started_at, status) VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMP), 'running')",
            params![id, project, command, env!("CARGO_PKG_VERSION"), stamp(started_at)],
        )
        .map_err(|e| self.fail(e))?;
        tx.commit().map_err(|e| self.fail(e))?;
        Ok(id)
    }

    /// Records the end of a run, its targets and their schemas. `status` overrides the
    /// results' own (e.g. `drift`).
    pub fn finish_run(
        &self,
        run_id: i64,
        results: &RunResults,
        status: Option<&str>,
        target_schemas: &[(String, Snapshot)],
    ) -> Result<()> {
        let mut conn = self.open()?;
        let tx = conn.transaction().map_err(|e| self.fail(e))?;
        let mut strategies: Vec<&str> = results.targets.iter().filter_map(|t| t.strategy.map(|s| s.name())).collect();
        strategies.sort();
        strategies.dedup();
        let rows: u64 = results.targets.iter().map(|t| t.rows).sum();
        let status = status.unwrap_or(if results.status == Status::Success { "success" } else { "error" });
        // The failed targets' own errors say more than the run's count of them.
        let failed: Vec<&str> = results.targets.iter().filter_map(|t| t.error.as_deref()).collect();
        let error = match failed.is_empty() {
            true => results.error.clone(),
            false => Some(failed.join("\n")),
        };
        let error = error.map(|e| redact::credentials(&e).into_owned());
        tx.execute(
            "UPDATE runs SET finished_at = CAST(? AS TIMESTAMP), status = ?, strategy = ?, targets = ?, rows = ?, \
             elapsed_seconds = ?, memory_budget_bytes = ?, peak_rss_bytes = ?, error = ? WHERE run_id = ?",
            params![
                stamp(chrono::Utc::now()),
                status,
                (!strategies.is_empty()).then(|| strategies.join(",")),
                results.targets.len() as i64,
                rows as i64,
                results.elapsed_seconds,
                results.memory_budget_bytes as i64,
                results.peak_rss_bytes.map(|b| b as i64),
                error,
                run_id
            ],
        )
        .map_err(|e| self.fail(e))?;
        for t in &results.targets {
            tx.execute(
                "INSERT INTO targets (run_id, model, target, mode, status, rows, quarantined, dropped, seconds, strategy, \
                 estimate_bytes, peak_rss_bytes, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    run_id,
                    t.model,
                    t.target,
                    t.mode.name(),
                    serde_json::to_value(t.status).ok().and_then(|v| v.as_str().map(String::from)),
                    t.rows as i64,
                    t.quarantined as i64,
                    t.dropped as i64,
                    t.seconds,
                    t.strategy.map(|s| s.name()),
                    t.estimate_bytes.map(|b| b as i64),
                    t.peak_rss_bytes.map(|b| b as i64),
                    t.error.as_deref().map(redact::credentials)
                ],
            )
            .map_err(|e| self.fail(e))?;
        }
        for (name, snapshot) in target_schemas {
            insert_schema(&tx, run_id, "target", name, snapshot, false).map_err(|e| self.fail(e))?;
        }
        tx.commit().map_err(|e| self.fail(e))
    }

    /// Records the schemas run `run_id` observed; accepted ones are baselines.
    pub fn record_schemas(&self, run_id: i64, observed: &[(Kind, String, Snapshot)], accepted: bool) -> Result<()> {
        let mut conn = self.open()?;
        let tx = conn.transaction().map_err(|e| self.fail(e))?;
        for (kind, name, snapshot) in observed {
            insert_schema(&tx, run_id, kind.name(), name, snapshot, accepted).map_err(|e| self.fail(e))?;
        }
        tx.commit().map_err(|e| self.fail(e))
    }

    /// Makes the source and model schemas run `run_id` recorded the new baselines.
    pub fn accept_run(&self, run_id: i64) -> Result<()> {
        let conn = self.open()?;
        conn.execute("UPDATE schemas SET accepted = true WHERE run_id = ? AND kind <> 'target'", params![run_id])
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Records the files each source read.
    pub fn record_files(&self, run_id: i64, files: &[(String, Vec<FileIdentity>)]) -> Result<()> {
        let mut conn = self.open()?;
        let tx = conn.transaction().map_err(|e| self.fail(e))?;
        {
            let mut appender = tx.appender("source_files").map_err(|e| self.fail(e))?;
            for (source, list) in files {
                for f in list {
                    let modified = chrono::DateTime::parse_from_rfc3339(&f.modified)
                        .map(|t| stamp(t.with_timezone(&chrono::Utc)))
                        .ok();
                    appender
                        .append_row(params![run_id, source, f.path, f.size as i64, modified, f.etag])
                        .map_err(|e| self.fail(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.fail(e))
    }

    /// Records the changes found in one relation and what the policy made of them.
    pub fn record_drift(
        &self,
        run_id: i64,
        kind: Kind,
        name: &str,
        changes: &[Change],
        policy: Policy,
        refused: bool,
    ) -> Result<()> {
        let mut conn = self.open()?;
        let tx = conn.transaction().map_err(|e| self.fail(e))?;
        for c in changes {
            let outcome = if refused && crate::schema::refused(policy, std::slice::from_ref(c)).len() == 1 {
                "refused"
            } else {
                "allowed"
            };
            tx.execute(
                "INSERT INTO drift VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![run_id, kind.name(), name, c.kind.name(), c.column, c.before, c.after, policy.name(), outcome],
            )
            .map_err(|e| self.fail(e))?;
        }
        tx.commit().map_err(|e| self.fail(e))
    }

    /// Records the data tests a run ran.
    pub fn record_tests(&self, run_id: i64, results: &[TestResult]) -> Result<()> {
        let mut conn = self.open()?;
        let tx = conn.transaction().map_err(|e| self.fail(e))?;
        for r in results {
            let outcome = serde_json::to_value(&r.outcome).ok().and_then(|v| v.as_str().map(String::from));
            tx.execute(
                "INSERT INTO tests VALUES (?, ?, ?, ?, ?, ?)",
                params![run_id, r.relation, r.test, outcome, r.failures as i64, r.message],
            )
            .map_err(|e| self.fail(e))?;
        }
        tx.commit().map_err(|e| self.fail(e))
    }

    /// The accepted baseline (the latest accepted schema) of each relation, read through one
    /// connection, in their order.
    pub fn baselines(&self, relations: &[(Kind, &str)]) -> Result<Vec<Option<SchemaRecord>>> {
        let Some(conn) = self.read()? else { return Ok(vec![None; relations.len()]) };
        relations
            .iter()
            .map(|(kind, name)| Ok(self.query_schemas(&conn, Some(*kind), name, true, 1)?.into_iter().next()))
            .collect()
    }

    /// Recorded schemas of `name` (of `kind`, when given), newest first; only baselines when
    /// `accepted_only`.
    pub fn schemas(
        &self,
        kind: Option<Kind>,
        name: &str,
        accepted_only: bool,
        limit: usize,
    ) -> Result<Vec<SchemaRecord>> {
        match self.read()? {
            Some(conn) => self.query_schemas(&conn, kind, name, accepted_only, limit),
            None => Ok(vec![]),
        }
    }

    fn query_schemas(
        &self,
        conn: &Connection,
        kind: Option<Kind>,
        name: &str,
        accepted_only: bool,
        limit: usize,
    ) -> Result<Vec<SchemaRecord>> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT run_id, kind, name, fingerprint, columns, accepted, CAST(recorded_at AS VARCHAR) FROM schemas \
                 WHERE name = ? AND (? IS NULL OR kind = ?) AND (accepted OR NOT ?) \
                 ORDER BY recorded_at DESC, run_id DESC LIMIT ?",
            )
            .map_err(|e| self.fail(e))?;
        let kind = kind.map(Kind::name);
        let rows = stmt
            .query_map(params![name, kind, kind, accepted_only, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (run_id, kind, name, fingerprint, columns, accepted, recorded_at) = row.map_err(|e| self.fail(e))?;
            let snapshot = Snapshot::from_json(&columns).map_err(|e| self.fail(format!("schema of {name}: {e}")))?;
            out.push(SchemaRecord { run_id, kind, name, fingerprint, snapshot, accepted, recorded_at });
        }
        Ok(out)
    }

    /// The most recent runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let Some(conn) = self.read()? else { return Ok(vec![]) };
        let mut stmt = conn
            .prepare(
                "SELECT run_id, command, CAST(started_at AS VARCHAR), CAST(finished_at AS VARCHAR), status, strategy, \
                 targets, rows, elapsed_seconds, peak_rss_bytes, error FROM runs ORDER BY run_id DESC LIMIT ?",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(RunRecord {
                    run_id: r.get(0)?,
                    command: r.get(1)?,
                    started_at: r.get(2)?,
                    finished_at: r.get(3)?,
                    status: r.get(4)?,
                    strategy: r.get(5)?,
                    targets: r.get(6)?,
                    rows: r.get(7)?,
                    elapsed_seconds: r.get(8)?,
                    peak_rss_bytes: r.get(9)?,
                    error: r.get(10)?,
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| self.fail(e))
    }
}

/// One incremental load of a target, as the catalog records it (the target's own marker is
/// the original: see the catalog's module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadRecord {
    /// Unique per load.
    pub load_id: String,
    /// `time`, `cursor` or `files`.
    pub kind: String,
    /// What it completed, as JSON.
    pub state: String,
    /// The fingerprint of the definition it was built with.
    pub definition: String,
}

impl Catalog {
    /// Rows of a read-only `sql` over the catalog's tables, as JSON objects (for `dfpipe docs`);
    /// none when no run has written the catalog yet. Timestamps should be cast to VARCHAR.
    pub fn rows_json(&self, sql: &str) -> Result<Vec<serde_json::Value>> {
        let Some(conn) = self.read()? else { return Ok(vec![]) };
        let mut stmt = conn.prepare(sql).map_err(|e| self.fail(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.fail(e))?;
        let names: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let mut object = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                use duckdb::types::Value as V;
                let value: V = row.get(i).map_err(|e| self.fail(e))?;
                let json = match value {
                    V::Null => serde_json::Value::Null,
                    V::Boolean(b) => b.into(),
                    V::TinyInt(n) => n.into(),
                    V::SmallInt(n) => n.into(),
                    V::Int(n) => n.into(),
                    V::BigInt(n) => n.into(),
                    V::HugeInt(n) => (n as f64).into(),
                    V::Float(x) => (x as f64).into(),
                    V::Double(x) => x.into(),
                    V::Text(t) => t.into(),
                    other => format!("{other:?}").into(),
                };
                object.insert(name.clone(), json);
            }
            out.push(serde_json::Value::Object(object));
        }
        Ok(out)
    }

    /// The loads recorded for target `target` (its label), oldest first.
    pub fn loads(&self, target: &str) -> Result<Vec<LoadRecord>> {
        let Some(conn) = self.read()? else { return Ok(vec![]) };
        let exists: bool = conn
            .query_row("SELECT count(*) > 0 FROM information_schema.tables WHERE table_name = 'loads'", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.fail(e))?;
        if !exists {
            return Ok(vec![]);
        }
        let mut stmt = conn
            .prepare(
                "SELECT load_id, kind, state, definition FROM loads WHERE target = ? ORDER BY recorded_at, load_id",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map(params![target], |r| {
                Ok(LoadRecord { load_id: r.get(0)?, kind: r.get(1)?, state: r.get(2)?, definition: r.get(3)? })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| self.fail(e))
    }

    /// Records loads of `target` that run `run_id` committed; with `replace`, they become its only
    /// loads (a full refresh, or the catalog brought in line with the target).
    pub fn record_loads(&self, run_id: i64, target: &str, loads: &[LoadRecord], replace: bool) -> Result<()> {
        let mut conn = self.open()?;
        let tx = conn.transaction().map_err(|e| self.fail(e))?;
        if replace {
            tx.execute("DELETE FROM loads WHERE target = ?", params![target]).map_err(|e| self.fail(e))?;
        }
        for l in loads {
            tx.execute(
                "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, CAST(? AS TIMESTAMP))",
                params![target, l.load_id, l.kind, l.state, l.definition, run_id, stamp(chrono::Utc::now())],
            )
            .map_err(|e| self.fail(e))?;
        }
        tx.commit().map_err(|e| self.fail(e))
    }
}

fn insert_schema(
    conn: &Connection,
    run_id: i64,
    kind: &str,
    name: &str,
    snapshot: &Snapshot,
    accepted: bool,
) -> duckdb::Result<usize> {
    conn.execute(
        "INSERT INTO schemas VALUES (?, ?, ?, ?, ?, ?, CAST(? AS TIMESTAMP))",
        params![run_id, kind, name, snapshot.fingerprint(), snapshot.to_json(), accepted, stamp(chrono::Utc::now())],
    )
}
