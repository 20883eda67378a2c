//! Opening a DuckDB file that another process may hold.
//!
//! DuckDB lets one process write a file (or several read it). An analyst's open session on the
//! warehouse or the catalog makes every other open fail with "Could not set lock on file". A
//! dfpipe open waits for such a lock a bounded time, retrying with backoff, and when it gives
//! up names the holder as DuckDB reports it (program and PID).
//!
//! [`hold`] keeps a file's database open in this process for a while (the windows of one
//! incremental output): opens meanwhile share it instead of starting and checkpointing a
//! database per load. Every open goes through [`open`], so one process never has two databases
//! on one file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use duckdb::{AccessMode, Config, Connection};

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
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut told = false;
    loop {
        let config = Config::default()
            .access_mode(if read_only { AccessMode::ReadOnly } else { AccessMode::ReadWrite })
            .map_err(|e| e.to_string())?;
        let error = match Connection::open_with_flags(path, config) {
            Ok(conn) => return Ok(conn),
            Err(e) => e.to_string(),
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
