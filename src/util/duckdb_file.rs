//! Opening a DuckDB file that another process may hold.
//!
//! DuckDB lets one process write a file (or several read it). An analyst's open session on the
//! warehouse or the catalog makes every other open fail with "Could not set lock on file". A
//! dfpipe open waits for such a lock a bounded time, retrying with backoff, and when it gives
//! up names the holder as DuckDB reports it (program and PID).
//!
//! [`hold`] keeps a file's database open in this process for a while (the windows of one
//! incremental output): opens meanwhile share it instead of starting and checkpointing a
//! database per load. Every open of a file goes through [`open`], so one process never has two
//! databases on one file.
//!
//! Starting a DuckDB database costs ~12 ms (its built-in catalog), whatever the file. A file
//! read or written only in short operations (the schema catalog, five or six a run) is instead
//! [`attach`]ed to the process's own in-memory database for each operation and detached after
//! it, which holds the file's lock just as briefly and costs a quarter of an open. Such a file
//! is never also [`open`]ed, and the operations take turns, so it too is one database at a time.

use std::ffi::{CStr, c_char};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use duckdb::{AccessMode, Config, Connection, ffi};

/// How long an open waits for another process to let go of the file, unless
/// `DFPIPE_LOCK_WAIT` says otherwise (`30s`, `2m`).
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The bounded wait: `DFPIPE_LOCK_WAIT` (a humantime duration) or [`LOCK_WAIT`].
pub fn lock_wait() -> Duration {
    std::env::var("DFPIPE_LOCK_WAIT").ok().and_then(|v| humantime::parse_duration(v.trim()).ok()).unwrap_or(LOCK_WAIT)
}

/// The holder of a DuckDB file's lock, from DuckDB's error: `/usr/bin/duckdb (PID 4242) by
/// user ana`. `None` when the error is not a lock conflict.
pub fn lock_holder(error: &str) -> Option<String> {
    if !error.contains("Could not set lock on file") {
        return None;
    }
    let holder = error
        .split_once("Conflicting lock is held in ")
        .map(|(_, rest)| rest.split(". See also").next().unwrap_or(rest).trim().to_string());
    Some(holder.unwrap_or_else(|| "another process".to_string()))
}

/// Opens `path` (read-only when asked), waiting up to `wait` while another process holds it.
/// The error names the file, the holder and what to do.
pub fn open(path: &Path, read_only: bool, wait: Duration) -> Result<Connection, String> {
    let key = held_key(path);
    if let Some((_, conn)) = HELD.lock().expect("held databases").iter().find(|(p, _)| *p == key) {
        return conn.try_clone().map_err(|e| format!("cannot open {}: {e}", path.display()));
    }
    wait_for_lock(path, wait, || {
        let config = Config::default()
            .access_mode(if read_only { AccessMode::ReadOnly } else { AccessMode::ReadWrite })
            .map_err(|e| e.to_string())?;
        Connection::open_with_flags(path, config).map_err(|e| e.to_string())
    })
}

/// Runs `attempt` until it succeeds, fails for another reason than a lock another process
/// holds on `path`, or `wait` is over (retrying with backoff).
fn wait_for_lock<T>(path: &Path, wait: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut told = false;
    loop {
        let error = match attempt() {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        let Some(holder) = lock_holder(&error) else {
            return Err(format!("cannot open {}: {error}", path.display()));
        };
        if start.elapsed() + pause > wait {
            return Err(held_message(path, &holder, wait));
        }
        if !told {
            tracing::info!(
                "{} is held by {holder}; waiting up to {}",
                path.display(),
                humantime::format_duration(wait)
            );
            told = true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The process's in-memory DuckDB (one thread), opened on first use and never closed: files are
/// [`attach`]ed to it, and DuckDB's Arrow import reads its settings from it.
pub fn process_database() -> Result<ffi::duckdb_database, String> {
    /// The database's handle, shared by every thread (DuckDB's databases are thread-safe).
    struct Shared(ffi::duckdb_database);
    // SAFETY: a DuckDB database may be used from any thread; the handle is never closed.
    unsafe impl Send for Shared {}
    // SAFETY: as above.
    unsafe impl Sync for Shared {}
    static DATABASE: OnceLock<Result<Shared, String>> = OnceLock::new();
    let opened = DATABASE.get_or_init(|| {
        // SAFETY: the C API's documented sequence; every out-pointer is initialised before
        // use, and the config and the error string are freed here.
        unsafe {
            let mut config: ffi::duckdb_config = ptr::null_mut();
            if ffi::duckdb_create_config(&mut config) != ffi::DuckDBSuccess {
                return Err("could not create a DuckDB config".into());
            }
            ffi::duckdb_set_config(config, c"threads".as_ptr(), c"1".as_ptr());
            let mut db: ffi::duckdb_database = ptr::null_mut();
            let mut error: *mut c_char = ptr::null_mut();
            let opened = ffi::duckdb_open_ext(c":memory:".as_ptr(), &mut db, config, &mut error);
            ffi::duckdb_destroy_config(&mut config);
            if opened != ffi::DuckDBSuccess {
                let message =
                    if error.is_null() { String::new() } else { CStr::from_ptr(error).to_string_lossy().into() };
                ffi::duckdb_free(error.cast());
                return Err(format!("could not start DuckDB: {message}"));
            }
            Ok(Shared(db))
        }
    });
    opened.as_ref().map(|shared| shared.0).map_err(Clone::clone)
}

/// One operation's turn at the process's database: one file attached at a time, so no file is
/// ever attached twice and no alias is taken.
static ATTACH_TURN: Mutex<()> = Mutex::new(());

/// A file attached to the process's database for one short operation (see the module docs):
/// a connection whose default database is the file, detached (and so checkpointed and let
/// go of) when dropped. Other operations in this process wait for it; an operation must not
/// attach a second file while it holds one.
pub struct Attached {
    conn: Connection,
    path: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

/// The alias a file is attached under.
const ATTACHED_ALIAS: &str = "dfpipe_attached";

/// Attaches `path` (read-only when asked; created when not) to the process's database, waiting
/// up to `wait` while another process holds it. For files this process never [`open`]s: the
/// same file attached and opened at once would be two databases on one file. The error names
/// the file, the holder and what to do.
pub fn attach(path: &Path, read_only: bool, wait: Duration) -> Result<Attached, String> {
    let turn = ATTACH_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let db = process_database()?;
    // SAFETY: the process's database is open for the life of the process, and this connection
    // does not close it.
    let conn = unsafe { Connection::open_from_raw(db) }.map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let file = path.to_string_lossy().replace('\'', "''");
    let mode = if read_only { ", READ_ONLY" } else { "" };
    // A file an earlier operation could not detach is let go of first (its detach is retried).
    let attach = format!(
        "USE memory; DETACH DATABASE IF EXISTS {ATTACHED_ALIAS}; ATTACH '{file}' AS {ATTACHED_ALIAS} (TYPE duckdb{mode}); USE {ATTACHED_ALIAS}"
    );
    wait_for_lock(path, wait, || conn.execute_batch(&attach).map_err(|e| e.to_string()))?;
    Ok(Attached { conn, path: path.to_path_buf(), _turn: turn })
}

impl Deref for Attached {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for Attached {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // Detaching checkpoints the file and lets go of its lock. An open transaction (an
        // operation that failed midway) is rolled back first, as closing a database would.
        let _ = self.conn.execute_batch("ROLLBACK");
        if let Err(e) = self.conn.execute_batch(&format!("USE memory; DETACH {ATTACHED_ALIAS}")) {
            tracing::warn!("could not detach {}: {e}", self.path.display());
        }
    }
}

/// Databases held open by [`hold`], by file.
static HELD: Mutex<Vec<(PathBuf, Connection)>> = Mutex::new(Vec::new());

fn held_key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Keeps the database of a file open (see the module docs) until dropped.
#[must_use]
pub struct Hold {
    key: PathBuf,
}

/// Opens `path` for writing (creating it) and keeps it open until the returned guard drops.
pub fn hold(path: &Path, wait: Duration) -> Result<Hold, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let conn = open(path, false, wait)?;
    let key = held_key(path);
    HELD.lock().expect("held databases").push((key.clone(), conn));
    Ok(Hold { key })
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut held = HELD.lock().expect("held databases");
        if let Some(i) = held.iter().position(|(p, _)| *p == self.key) {
            held.remove(i);
        }
    }
}

/// The message for a file another process kept for longer than `wait`.
pub fn held_message(path: &Path, holder: &str, wait: Duration) -> String {
    format!(
        "{} is open in another process ({holder}), and DuckDB lets only one process write a file; \
         waited {}. Close that session (e.g. a DuckDB shell or notebook on the file) and run again",
        path.display(),
        humantime::format_duration(wait)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_from_duckdb_message() {
        let e = "IO Error: Could not set lock on file \"/p/dfpipe.duckdb\": Conflicting lock is held in \
                 /usr/bin/python3.11 (PID 4242) by user ana. See also https://duckdb.org/docs/stable/connect/concurrency";
        assert_eq!(lock_holder(e).as_deref(), Some("/usr/bin/python3.11 (PID 4242) by user ana"));
        assert_eq!(lock_holder("Catalog Error: Table x does not exist"), None);
    }
}
