//! The summary table `dfpipe run` prints when it is done.

use crate::catalog::results::{RunResults, Status};
use crate::config::Strategy;
use crate::util::fmt::{group_digits, human_bytes, table};

/// The summary table printed after a run.
pub fn summary(results: &RunResults) -> String {
    let header = [
        "target", "model", "mode", "status", "strategy", "rows", "rejected", "seconds", "rows/s", "estimate",
        "peak RSS",
    ];
    let mut rows: Vec<Vec<String>> = results
        .targets
        .iter()
        .map(|t| {
            vec![
                t.target.clone(),
                t.model.clone(),
                t.mode.name().to_string(),
                match t.status {
                    Status::Success => "ok",
                    Status::Error => "ERROR",
                    Status::Skipped => "skipped",
                }
                .to_string(),
                t.strategy.map_or("-", Strategy::name).to_string(),
                group_digits(t.rows),
                match (t.quarantined, t.dropped) {
                    (0, 0) => "-".to_string(),
                    (q, 0) => format!("{} quarantined", group_digits(q)),
                    (0, d) => format!("{} dropped", group_digits(d)),
                    (q, d) => format!("{} quarantined, {} dropped", group_digits(q), group_digits(d)),
                },
                format!("{:.2}", t.seconds),
                if t.seconds > 0.0 && t.status == Status::Success {
                    group_digits((t.rows as f64 / t.seconds) as u64)
                } else {
                    "-".into()
                },
                t.estimate_bytes.map_or_else(|| "-".into(), human_bytes),
                t.peak_rss_bytes.map_or_else(|| "-".into(), human_bytes),
            ]
        })
        .collect();
    rows.insert(0, header.map(String::from).to_vec());
    // Figures (from `rows` on) align right.
    let mut out = table(&rows, 5);
    for t in results.targets.iter().filter(|t| t.incremental.is_some()) {
        out.push_str(&format!("{}: {}\n", t.target, t.incremental.as_deref().unwrap_or_default()));
    }
    for t in &results.targets {
        if let Some(work) = &t.cluster {
            out.push_str(&format!("{}: computed on the cluster: {}\n", t.target, work.describe()));
        }
    }
    let ok = results.targets.iter().filter(|t| t.status == Status::Success).count();
    let rows_total: u64 = results.targets.iter().map(|t| t.rows).sum();
    let rejected: u64 = results.targets.iter().map(|t| t.quarantined + t.dropped).sum();
    out.push_str(&format!(
        "{ok} of {} targets written, {} rows{} in {:.2}s, peak RSS {}\n",
        results.targets.len(),
        group_digits(rows_total),
        if rejected > 0 { format!(" ({} rejected by row-level tests)", group_digits(rejected)) } else { String::new() },
        results.elapsed_seconds,
        results.peak_rss_bytes.map_or_else(|| "-".into(), human_bytes)
    ));
    out
}
