//! Hooks for fault tests, inert unless a test sets their variable: a pause point (kill,
//! interrupt or race a run while a load is in progress), a crash point (`DFPIPE_TEST_CRASH_AT`:
//! abort between an incremental load's commit and its catalog record), and a pinned clock
//! (`DFPIPE_TEST_NOW`: which time windows are complete).
//!
//! When `DFPIPE_TEST_PAUSE_MID_LOAD` names a file, a sink that has written its first batch into
//! its open transaction creates that file and waits there until the test removes the file, the
//! load's input goes away, or ten minutes pass. A test waits for the file, then acts: the fault
//! lands during the load, never before or after it. Unset (always, outside tests), it costs one
//! environment lookup per load.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The environment variable naming the file to create when the load is paused.
pub const PAUSE_MID_LOAD: &str = "DFPIPE_TEST_PAUSE_MID_LOAD";

const LONGEST: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(20);

/// Creates the pause file if the pause is asked for; its path while the pause lasts.
fn paused() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(PAUSE_MID_LOAD)?);
    match std::fs::write(&path, b"paused\n") {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!("{PAUSE_MID_LOAD}: cannot write {}: {e}", path.display());
            None
        }
    }
}

/// On a blocking thread: pauses if asked, until the file is removed, `released()` or ten
/// minutes. Called once per load, after its first batch is written.
pub fn pause_mid_load(released: impl Fn() -> bool) {
    let Some(path) = paused() else { return };
    let start = Instant::now();
    while path.exists() && !released() && start.elapsed() < LONGEST {
        std::thread::sleep(POLL);
    }
}

/// In async code: pauses if asked, until the file is removed or ten minutes (dropping the
/// future, as an interrupted run does, ends the pause too).
pub async fn pause_mid_load_async() {
    let Some(path) = paused() else { return };
    let start = Instant::now();
    while path.exists() && start.elapsed() < LONGEST {
        tokio::time::sleep(POLL).await;
    }
}

/// Ends the process at once (no cleanup, as a kill would) when `DFPIPE_TEST_CRASH_AT` names
/// this point; only tests set it.
pub fn crash_point(name: &str) {
    if std::env::var("DFPIPE_TEST_CRASH_AT").is_ok_and(|at| at == name) {
        crate::errln!("crash point {name}: aborting");
        std::process::abort();
    }
}

/// The current UTC time, as incremental runs judge which windows are complete;
/// `DFPIPE_TEST_NOW` (tests only: a day or a timestamp) pins it.
pub fn now() -> chrono::NaiveDateTime {
    let pinned = std::env::var("DFPIPE_TEST_NOW").ok().and_then(|t| {
        chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S")
            .ok()
            .or_else(|| chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
    });
    pinned.unwrap_or_else(|| chrono::Utc::now().naive_utc())
}
