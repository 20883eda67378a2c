//! `dfpipe schema …` and `dfpipe runs`: the catalog, read for people (and for scripts, as JSON).

use crate::catalog::observe::{Observed, check, observe};
use crate::catalog::{Catalog, Kind, RunRecord};
use crate::drift::diff;
use crate::error::{Error, Result};
use crate::memory::human_bytes;
use crate::pipeline::Pipeline;
use crate::suggest::did_you_mean;

/// Output formats of `dfpipe runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// A JSON array.
    Json,
}

fn unknown(name: &str, observed: &[Observed]) -> Error {
    Error::Usage(format!(
        "no source or model named `{name}` in this project{}",
        did_you_mean(name, observed.iter().map(|o| o.name.as_str()))
    ))
}

/// The observed relations `names` asks for (all when empty).
fn pick<'a>(observed: &'a [Observed], names: &[String]) -> Result<Vec<&'a Observed>> {
    if names.is_empty() {
        return Ok(observed.iter().collect());
    }
    names.iter().map(|n| observed.iter().find(|o| &o.name == n).ok_or_else(|| unknown(n, observed))).collect()
}

/// `dfpipe schema show [NAME]`: the current schema of each source and model, with its baseline.
pub async fn show(pipeline: &Pipeline, catalog: &Catalog, names: &[String]) -> Result<String> {
    let observed = observe(pipeline).await?;
    let picked = pick(&observed, names)?;
    let relations: Vec<(Kind, &str)> = picked.iter().map(|o| (o.kind, o.name.as_str())).collect();
    let mut out = String::new();
    for (o, baseline) in picked.iter().zip(catalog.baselines(&relations)?) {
        let status = match &baseline {
            None => "no baseline yet (the next successful run records it)".to_string(),
            Some(b) if b.snapshot == o.snapshot => format!("matches the baseline of run #{}", b.run_id),
            Some(b) => format!("differs from the baseline of run #{} (see `dfpipe schema diff {}`)", b.run_id, o.name),
        };
        out.push_str(&format!("{}  fingerprint {}; {status}\n", o.label, o.snapshot.fingerprint()));
        out.push_str(&o.snapshot.describe());
    }
    Ok(out)
}

/// `dfpipe schema diff [NAME]`: each current schema against its baseline. Returns the text and
/// whether a policy would refuse a change.
pub async fn diff_now(pipeline: &Pipeline, catalog: &Catalog, names: &[String]) -> Result<(String, bool)> {
    let observed = observe(pipeline).await?;
    let picked: Vec<Observed> = pick(&observed, names)?.into_iter().cloned().collect();
    let report = check(catalog, &picked)?;
    let mut out = String::new();
    for finding in &report.findings {
        out.push_str(&finding.describe());
    }
    let unchanged = picked.len() - report.findings.len();
    out.push_str(&format!(
        "{} changed, {unchanged} unchanged or without a baseline{}\n",
        report.findings.len(),
        if report.refused() {
            "; a run would stop: `dfpipe schema accept NAME` takes a change as the new baseline"
        } else {
            ""
        }
    ));
    Ok((out, report.refused()))
}

/// `dfpipe schema history NAME`: every schema recorded for NAME, newest first, each with its
/// changes from the one before.
pub fn history(catalog: &Catalog, name: &str) -> Result<String> {
    let records = catalog.schemas(None, name, false, 1000)?;
    if records.is_empty() {
        return Err(Error::Usage(format!("the catalog holds no schema of `{name}` (a run records it)")));
    }
    let mut out = String::new();
    // Group consecutive records with the same fingerprint: a schema is shown once per change.
    let mut i = 0;
    while i < records.len() {
        let record = &records[i];
        let mut j = i + 1;
        while j < records.len() && records[j].fingerprint == record.fingerprint && records[j].kind == record.kind {
            j += 1;
        }
        let runs = if j - i > 1 {
            format!("runs #{}–#{}", records[j - 1].run_id, record.run_id)
        } else {
            format!("run #{}", record.run_id)
        };
        out.push_str(&format!(
            "{} `{}` {runs} ({}), fingerprint {}{}\n",
            record.kind,
            record.name,
            record.recorded_at.split('.').next().unwrap_or(&record.recorded_at),
            record.fingerprint,
            if records[i..j].iter().any(|r| r.accepted) { ", accepted" } else { "" }
        ));
        match records[j..].iter().find(|r| r.kind == record.kind) {
            Some(older) => {
                for change in diff(&older.snapshot, &record.snapshot) {
                    out.push_str(&format!("    {}\n", change.describe()));
                }
            }
            None => out.push_str(&record.snapshot.describe()),
        }
        i = j;
    }
    Ok(out)
}

/// `dfpipe schema accept NAME…`: records the current schemas as the new baselines, in a
/// catalog run of its own; returns what was accepted.
pub async fn accept(pipeline: &Pipeline, catalog: &Catalog, names: &[String]) -> Result<String> {
    let observed = observe(pipeline).await?;
    let picked = pick(&observed, names)?;
    let started_at = chrono::Utc::now();
    let run_id = catalog.begin_run(&pipeline.project.config.name, "schema accept", started_at)?;
    let schemas: Vec<(Kind, String, crate::drift::Snapshot)> =
        picked.iter().map(|o| (o.kind, o.name.clone(), o.snapshot.clone())).collect();
    catalog.record_schemas(run_id, &schemas, true)?;
    let results = crate::run::RunResults::finished_without_targets(&pipeline.project.config.name, started_at);
    catalog.finish_run(run_id, &results, Some("success"), &[])?;
    Ok(picked
        .iter()
        .map(|o| {
            format!("accepted {} as the baseline (fingerprint {}, run #{run_id})\n", o.label, o.snapshot.fingerprint())
        })
        .collect())
}

/// `dfpipe runs`: the most recent runs.
pub fn runs(catalog: &Catalog, limit: usize, format: Format) -> Result<String> {
    let runs = catalog.runs(limit)?;
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(&runs).expect("runs serialize") + "\n",
        Format::Table => runs_table(&runs),
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
            r.rows.map_or_else(|| "-".into(), |n| crate::run::group_digits(n.max(0) as u64)),
            r.elapsed_seconds.map_or_else(|| "-".into(), |s| format!("{s:.2}")),
            r.peak_rss_bytes.map_or_else(|| "-".into(), |b| human_bytes(b.max(0) as u64)),
        ]);
    }
    let mut out = crate::run::table(&rows, header.len());
    for r in runs.iter().filter(|r| r.error.is_some()) {
        let first = r.error.as_deref().unwrap_or_default().lines().next().unwrap_or_default();
        out.push_str(&format!("#{}: {first}\n", r.run_id));
    }
    out
}
