//! A pause point for fault tests: kill or interrupt a run while a load is in progress.
//!
//! When `DFPIPE_TEST_PAUSE_MID_LOAD` names a file, a sink that has written its first batch into
//! its open transaction creates that file and waits (until its input is gone, at most ten
//! minutes) before it goes on. A test waits for the file, then sends its signal: the fault
//! lands during the load, never before or after it. Unset (always, outside tests), it costs
//! one environment lookup per load.

use std::time::{Duration, Instant};

/// The environment variable naming the file to create when the load is paused.
pub const PAUSE_MID_LOAD: &str = "DFPIPE_TEST_PAUSE_MID_LOAD";

/// If the pause is asked for, signals it and blocks until `released()` or ten minutes pass.
/// Called on a blocking thread, once per load, after its first batch is written.
pub fn pause_mid_load(released: impl Fn() -> bool) {
    let Some(path) = std::env::var_os(PAUSE_MID_LOAD) else { return };
    if let Err(e) = std::fs::write(&path, b"paused\n") {
        tracing::warn!("{PAUSE_MID_LOAD}: cannot write {}: {e}", std::path::Path::new(&path).display());
        return;
    }
    let start = Instant::now();
    while !released() && start.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(20));
    }
}
