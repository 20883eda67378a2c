//! What a run did, per target and in all: written to `<state_dir>/run_results.json` and
//! recorded in the catalog.

use serde::Serialize;

use crate::config::{Mode, Strategy};
use crate::error::{Error, Result};
use crate::memory::peak_rss;

/// What happened to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written and committed.
    Success,
    /// Failed; the target keeps its previous contents.
    Error,
    /// Not attempted because an earlier target failed under `--fail-fast`.
    Skipped,
}

/// One target's outcome, as written to `run_results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    /// The model written.
    pub model: String,
    /// The target, e.g. `warehouse.daily_revenue` (never holds secrets).
    pub target: String,
    /// `replace`, `append` or `merge`.
    pub mode: Mode,
    /// The outcome.
    pub status: Status,
    /// Rows written.
    pub rows: u64,
    /// Rows failing the model's row-level tests sent to the quarantine (`on_invalid: quarantine`).
    pub quarantined: u64,
    /// Rows failing them left out (`on_invalid: drop`).
    pub dropped: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak RSS of the process when the target finished, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// The memory strategy it ran with.
    pub strategy: Option<Strategy>,
    /// The estimated decoded bytes it read.
    pub estimate_bytes: Option<u64>,
    /// The error, for a failed target.
    pub error: Option<String>,
    /// What an incremental output loaded (`3 window(s) […)`, `no new files in source …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<String>,
    /// What it took on the cluster (`--cluster`): scheduler, jobs, stages, tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::engine::cluster::ClusterWork>,
}

/// The whole run, as written to `run_results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunResults {
    /// The dfpipe version.
    pub dfpipe_version: &'static str,
    /// The project's name.
    pub project: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub finished_at: String,
    /// Wall-clock seconds.
    pub elapsed_seconds: f64,
    /// `success` when every target succeeded, else `error`.
    pub status: Status,
    /// The memory budget the run had.
    pub memory_budget_bytes: u64,
    /// Peak RSS of the whole run.
    pub peak_rss_bytes: Option<u64>,
    /// One entry per target, in the order they ran.
    pub targets: Vec<TargetResult>,
    /// Why the run stopped as a whole (config, SQL or source errors, a held file, Ctrl-C).
    pub error: Option<String>,
}

impl RunResults {
    /// The results of a command that wrote no target and succeeded (`schema accept`).
    pub fn finished_without_targets(project: &str, started_at: chrono::DateTime<chrono::Utc>) -> RunResults {
        RunResults { status: Status::Success, error: None, ..Self::failed(project, started_at, String::new()) }
    }

    /// The results of a run that stopped with `error` (before its targets ran, or interrupted).
    pub fn failed(project: &str, started_at: chrono::DateTime<chrono::Utc>, error: String) -> RunResults {
        let now = chrono::Utc::now();
        RunResults {
            dfpipe_version: env!("CARGO_PKG_VERSION"),
            project: project.to_string(),
            started_at: started_at.to_rfc3339(),
            finished_at: now.to_rfc3339(),
            elapsed_seconds: (now - started_at).num_milliseconds() as f64 / 1000.0,
            status: Status::Error,
            memory_budget_bytes: 0,
            peak_rss_bytes: peak_rss(),
            targets: vec![],
            error: Some(error),
        }
    }
}

/// Writes `run_results.json` into the state directory `dir` (atomically: write, then rename).
pub fn write_results(dir: &std::path::Path, results: &RunResults) -> Result<()> {
    let path = dir.join("run_results.json");
    let fail = |e: std::io::Error| Error::Run(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let json = serde_json::to_string_pretty(results).expect("results serialize");
    let json = crate::util::redact::credentials(&json);
    let tmp = dir.join(".run_results.json.tmp");
    std::fs::write(&tmp, json.as_bytes()).map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)
}
