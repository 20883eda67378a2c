//! `dfpipe schema show | diff | history | accept`: the schemas the catalog remembers, read for
//! people, and new baselines accepted.

use super::{prepare, select_all};
use crate::catalog::drift::check;
use crate::catalog::lock::ProjectLock;
use crate::catalog::results::RunResults;
use crate::catalog::{Catalog, Kind};
use crate::cli::SchemaCommand;
use crate::config::Config;
use crate::engine::observe::{Observed, observe};
use crate::engine::pipeline::Pipeline;
use crate::error::{EXIT_CHECK_FAILED, EXIT_OK, Error, Result};
use crate::schema::{Snapshot, diff};
use crate::util::suggest::did_you_mean;

/// Runs one `dfpipe schema` subcommand; prints its report.
pub async fn command(config: Config, command: SchemaCommand) -> Result<u8> {
    let catalog = Catalog::new(&config.state_dir);
    match command {
        SchemaCommand::History { name } => crate::out!("{}", history(&catalog, &name)?),
        SchemaCommand::Show { names } => {
            let pipeline = prepare(config, &select_all()).await?;
            crate::out!("{}", show(&pipeline, &catalog, &names).await?);
        }
        SchemaCommand::Diff { names } => {
            let pipeline = prepare(config, &select_all()).await?;
            let (text, refused) = diff_now(&pipeline, &catalog, &names).await?;
            crate::out!("{text}");
            if refused {
                return Ok(EXIT_CHECK_FAILED);
            }
        }
        SchemaCommand::Accept { names } => {
            let lock = ProjectLock::acquire(&config.state_dir, "schema accept")?;
            let pipeline = prepare(config, &select_all()).await?;
            crate::out!("{}", accept(&lock, &pipeline, &catalog, &names).await?);
        }
    }
    Ok(EXIT_OK)
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
async fn show(pipeline: &Pipeline, catalog: &Catalog, names: &[String]) -> Result<String> {
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
async fn diff_now(pipeline: &Pipeline, catalog: &Catalog, names: &[String]) -> Result<(String, bool)> {
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
fn history(catalog: &Catalog, name: &str) -> Result<String> {
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
/// catalog run of its own (under the project's `lock`); returns what was accepted.
async fn accept(lock: &ProjectLock, pipeline: &Pipeline, catalog: &Catalog, names: &[String]) -> Result<String> {
    let observed = observe(pipeline).await?;
    let picked = pick(&observed, names)?;
    let started_at = chrono::Utc::now();
    let run_id = catalog.begin_run(lock, &pipeline.project.config.name, "schema accept", started_at)?;
    let schemas: Vec<(Kind, String, Snapshot)> =
        picked.iter().map(|o| (o.kind, o.name.clone(), o.snapshot.clone())).collect();
    catalog.record_schemas(run_id, &schemas, true)?;
    let results = RunResults::finished_without_targets(&pipeline.project.config.name, started_at);
    catalog.finish_run(run_id, &results, Some("success"), &[])?;
    Ok(picked
        .iter()
        .map(|o| {
            format!("accepted {} as the baseline (fingerprint {}, run #{run_id})\n", o.label, o.snapshot.fingerprint())
        })
        .collect())
}
