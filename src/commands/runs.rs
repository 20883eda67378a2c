//! `dfpipe runs`: recent runs from the catalog, for people (a table) or scripts (JSON).

use crate::catalog::{Catalog, RunRecord};
use crate::cli::RunsFormat;
use crate::config::Config;
use crate::error::{EXIT_OK, Result};
use crate::util::fmt::{group_digits, human_bytes, table};

/// `dfpipe runs`: the most recent `limit` runs, as a table or JSON.
pub fn command(config: &Config, limit: usize, format: RunsFormat) -> Result<u8> {
    crate::out!("{}", runs(&Catalog::new(&config.state_dir), limit, format)?);
    Ok(EXIT_OK)
}

fn runs(catalog: &Catalog, limit: usize, format: RunsFormat) -> Result<String> {
    let runs = catalog.runs(limit)?;
    Ok(match format {
        RunsFormat::Json => serde_json::to_string_pretty(&runs).expect("runs serialize") + "\n",
        RunsFormat::Table => runs_table(&runs),
    })
}

fn runs_table(runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return "no runs recorded yet\n".into();
    }
    let header = ["run", "started (UTC)", "command", "status", "strategy", "targets", "rows", "seconds", "peak RSS"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in runs {
        rows.push(vec![
            format!("#{}", r.run_id),
            r.started_at.split('.').next().unwrap_or(&r.started_at).to_string(),
            r.command.clone(),
            r.status.clone(),
            r.strategy.clone().unwrap_or_else(|| "-".into()),
            r.targets.map_or_else(|| "-".into(), |t| t.to_string()),
            r.rows.map_or_else(|| "-".into(), |n| group_digits(n.max(0) as u64)),
            r.elapsed_seconds.map_or_else(|| "-".into(), |s| format!("{s:.2}")),
            r.peak_rss_bytes.map_or_else(|| "-".into(), |b| human_bytes(b.max(0) as u64)),
        ]);
    }
    let mut out = table(&rows, header.len());
    for r in runs.iter().filter(|r| r.error.is_some()) {
        let first = r.error.as_deref().unwrap_or_default().lines().next().unwrap_or_default();
        out.push_str(&format!("#{}: {first}\n", r.run_id));
    }
    out
}
