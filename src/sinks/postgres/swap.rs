//! One writer per table, and a `replace` that never blocks readers for long.
//!
//! - Every load takes an advisory lock keyed by the target (database, schema, table): a second
//!   writer of the same table — another run, host or project — waits for the first, up to the
//!   connection's `swap_timeout`, then fails naming the holder.
//! - `replace` fills a hidden table whose name is unique to the run and fits PostgreSQL's 63
//!   bytes, marked by a comment naming its target; hidden tables of dead writers are dropped by
//!   the next writer (which holds the lock, so no live load owns them).
//! - The swap (drop the old table, rename the new one) takes its locks with a short
//!   `lock_timeout` inside a savepoint and retries with backoff up to `swap_timeout`: a reader's
//!   long transaction delays the swap, but new readers never queue behind it for more than one
//!   short attempt. On giving up, the message names the blocking sessions; the old table stays.
//!   An autovacuum of the old table is different: PostgreSQL cancels one that blocks a lock
//!   request only once the request has waited `deadlock_timeout` (1 s by default), so a swap
//!   blocked by an autovacuum waits that long and a little more — else it would wait out the whole
//!   vacuum (measured: 95 s after a load of lineitem SF10, whose old table was being vacuumed).

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

use super::{Failure, PostgresSink, qualified};
use crate::config::POSTGRES_NAME_BYTES;
use crate::util::sql::{literal, quote};

/// How long one attempt to take the swap's locks may wait (and so how long a new reader may
/// queue behind it).
const SWAP_ATTEMPT: Duration = Duration::from_millis(500);
/// The longest pause between two attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// A name for this load's hidden table: `__dfpipe_<8 hex digits>_<table>`, cut to 63 bytes.
pub(super) fn hidden_name(table: &str) -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    let mut name = format!("__dfpipe_{:08x}_{table}", hasher.finish() as u32);
    let mut end = name.len().min(POSTGRES_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// The advisory lock key of a table: 64 bits of FNV-1a over its schema and name.
fn lock_key(schema: &str, table: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"dfpipe\0".iter().chain(schema.as_bytes()).chain(b"\0").chain(table.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// How long a swap attempt must wait for PostgreSQL to cancel an autovacuum worker holding
/// `table` (its `deadlock_timeout` and half a second), or `None` when none holds it.
async fn autovacuum_cancel_wait(client: &Client, table: &str) -> Option<Duration> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                            WHERE l.locktype = 'relation' AND l.relation = to_regclass($1) \
                              AND a.backend_type = 'autovacuum worker'), \
                    (SELECT setting::bigint FROM pg_settings WHERE name = 'deadlock_timeout')",
            &[&table],
        )
        .await
        .ok()?;
    let (held, deadlock_ms): (bool, i64) = (row.get(0), row.get(1));
    held.then(|| Duration::from_millis(deadlock_ms.max(0) as u64) + Duration::from_millis(500))
}

/// `'…ms'` for `SET lock_timeout`.
fn millis(d: Duration) -> String {
    format!("'{}ms'", d.as_millis().max(1))
}

impl PostgresSink {
    /// The comment that marks this target's hidden tables.
    fn hidden_comment(&self, schema: &str) -> String {
        format!("dfpipe: new table for {}", qualified(Some(schema), &self.table.name))
    }

    /// The schema the table is in: its own, or the connection's `current_schema()`.
    async fn schema_of(&self, client: &Client) -> Result<String, Failure> {
        Ok(match &self.table.schema {
            Some(s) => s.clone(),
            None => {
                let row =
                    client.query_one("SELECT current_schema()::text, current_setting('search_path')", &[]).await?;
                row.get::<_, Option<String>>(0).ok_or_else(|| {
                    Failure::Other(format!(
                        "the connection's search_path ({}) names no schema that exists, so table {} has no schema \
                         to go in: create the schema, set a search_path that names one, or write the schema in \
                         the output's table (schema.table)",
                        row.get::<_, String>(1),
                        self.table.name
                    ))
                })?
            }
        })
    }

    /// Takes this target's writer lock — for the transaction `tx`, or (`tx` = `None`) for the
    /// session — waiting up to `swap_timeout` for another writer to finish. Then drops the
    /// hidden tables of writers that died. Returns the schema the table is in.
    pub(super) async fn lock_target(&self, client: &Client, in_transaction: bool) -> Result<String, Failure> {
        let schema = self.schema_of(client).await?;
        let key = lock_key(&schema, &self.table.name);
        // In a transaction, a savepoint keeps it usable after a timeout (to name the holder).
        let (function, scope, savepoint) = if in_transaction {
            ("pg_advisory_xact_lock", "LOCAL ", "SAVEPOINT dfpipe_lock; ")
        } else {
            ("pg_advisory_lock", "", "")
        };
        client.batch_execute(&format!("{savepoint}SET {scope}lock_timeout = {}", millis(self.swap_timeout))).await?;
        if let Err(e) = client.execute(&format!("SELECT {function}($1)"), &[&key]).await {
            if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                if in_transaction {
                    client.batch_execute("ROLLBACK TO SAVEPOINT dfpipe_lock").await?;
                }
                let holders = self.holders(client, &schema, Some(key)).await;
                return Err(Failure::Other(format!(
                    "another writer is loading this table and did not finish within swap_timeout ({}): {holders}; \
                     nothing was changed. Run the loads one after the other, or raise `swap_timeout` on the connection",
                    humantime::format_duration(self.swap_timeout)
                )));
            }
            return Err(e.into());
        }
        client.batch_execute(&format!("SET {scope}lock_timeout = DEFAULT")).await?;
        self.drop_dead_hidden_tables(client, &schema).await?;
        Ok(schema)
    }

    /// Drops hidden tables of this target left by writers that died (the caller holds the lock).
    async fn drop_dead_hidden_tables(&self, client: &Client, schema: &str) -> Result<(), Failure> {
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE '\\_\\_dfpipe\\_%' \
                   AND obj_description(c.oid, 'pg_class') = $2",
                &[&schema, &self.hidden_comment(schema)],
            )
            .await?;
        for row in rows {
            let name: String = row.get(0);
            tracing::info!(table = %self.table, "dropping {name}, left by a load that did not finish");
            client.batch_execute(&format!("DROP TABLE IF EXISTS {}", qualified(Some(schema), &name))).await?;
        }
        Ok(())
    }

    /// Creates the hidden table (dropping one of the same name first), marked as this target's.
    pub(super) fn create_hidden_sql(&self, schema: &str) -> Result<String, String> {
        let hidden = self.new_table();
        Ok(format!(
            "DROP TABLE IF EXISTS {hidden}; CREATE TABLE {hidden} ({}); COMMENT ON TABLE {hidden} IS {}",
            self.column_ddl()?,
            literal(&self.hidden_comment(schema))
        ))
    }

    /// Swaps the hidden table in, inside `tx`: each attempt waits at most [`SWAP_ATTEMPT`] for
    /// the locks; attempts repeat with backoff until `swap_timeout`.
    pub(super) async fn swap(&self, tx: &Transaction<'_>, schema: &str) -> Result<(), Failure> {
        let target = qualified(Some(schema), &self.table.name);
        let swap = format!(
            "DROP TABLE IF EXISTS {target}; ALTER TABLE {} RENAME TO {}",
            self.new_table(),
            quote(&self.table.name)
        );
        let deadline = Instant::now() + self.swap_timeout;
        let mut pause = Duration::from_millis(100);
        let mut attempt = SWAP_ATTEMPT;
        loop {
            tx.batch_execute(&format!("SAVEPOINT dfpipe_swap; SET LOCAL lock_timeout = {}", millis(attempt))).await?;
            match tx.batch_execute(&swap).await {
                Ok(()) => {
                    tx.batch_execute("SET LOCAL lock_timeout = DEFAULT; RELEASE SAVEPOINT dfpipe_swap").await?;
                    return Ok(());
                }
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT dfpipe_swap").await?;
                    if Instant::now() + pause >= deadline {
                        let holders = self.holders(tx.client(), schema, None).await;
                        return Err(Failure::Other(format!(
                            "could not swap in the new table within swap_timeout ({}): {holders} held the table; \
                             it keeps its previous contents. End those sessions, or raise `swap_timeout` on the \
                             connection",
                            humantime::format_duration(self.swap_timeout)
                        )));
                    }
                    attempt = match autovacuum_cancel_wait(tx.client(), &target).await {
                        Some(wait) => {
                            tracing::debug!(table = %target, "an autovacuum holds the table; the next attempt waits {wait:?} for PostgreSQL to cancel it");
                            wait
                        }
                        None => SWAP_ATTEMPT,
                    };
                    tracing::debug!(table = %target, "the swap waits for readers; retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The other sessions holding the table (or, with `key`, its writer lock), for a message:
    /// `pid 123 (application 'psql', idle in transaction since 2026-12-01 15:00:00+00)`.
    async fn holders(&self, client: &Client, schema: &str, key: Option<i64>) -> String {
        let target = qualified(Some(schema), &self.table.name);
        let (classid, objid) = key.map_or((0, 0), |k| ((k as u64 >> 32) as u32, k as u32));
        let rows = client
            .query(
                "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), \
                        coalesce(to_char(coalesce(a.xact_start, a.backend_start), 'YYYY-MM-DD HH24:MI:SSOF'), '') \
                 FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND a.pid IN ( \
                   SELECT l.pid FROM pg_locks l WHERE l.granted AND ( \
                     (l.locktype = 'relation' AND l.relation = to_regclass($1)) OR \
                     (l.locktype = 'advisory' AND l.objsubid = 1 AND l.classid = $2 AND l.objid = $3))) \
                 ORDER BY a.pid",
                &[&target, &classid, &objid],
            )
            .await;
        match rows {
            Ok(rows) if !rows.is_empty() => rows
                .iter()
                .map(|r| {
                    let (pid, app, state, since): (i32, String, String, String) =
                        (r.get(0), r.get(1), r.get(2), r.get(3));
                    format!("pid {pid} (application '{app}', {state} since {since})")
                })
                .collect::<Vec<_>>()
                .join(", "),
            Ok(_) => "sessions that have since finished".to_string(),
            Err(e) => format!("sessions dfpipe could not list ({e})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_are_unique_and_fit() {
        let long = "x".repeat(70);
        let (a, b) = (hidden_name(&long), hidden_name(&long));
        assert_ne!(a, b);
        assert_eq!(a.len(), POSTGRES_NAME_BYTES);
        assert!(a.starts_with("__dfpipe_"));
        let accents = "é".repeat(40);
        assert!(hidden_name(&accents).len() <= POSTGRES_NAME_BYTES);
        assert!(hidden_name("orders").ends_with("_orders"));
    }

    #[test]
    fn lock_keys_differ_by_schema_and_table() {
        assert_ne!(lock_key("a", "bc"), lock_key("ab", "c"));
        assert_eq!(lock_key("public", "t"), lock_key("public", "t"));
    }
}
