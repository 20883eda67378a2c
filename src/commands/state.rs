//! `dfpipe state show|forget`: the state of incremental outputs, read from their targets (the
//! markers committed with the rows), and forgetting loaded files so they load again.

use crate::catalog::Catalog;
use crate::cli::StateCommand;
use crate::commands::run::incremental::{read_target_loads, record_of, rewrite_target_loads};
use crate::config::incremental::{Grain, IncrementalSpec};
use crate::config::{Config, OutputConfig};
use crate::engine::incremental::{MarkerState, State, StoredMark, instant_text};
use crate::error::{EXIT_OK, Error, Result};
use crate::util::fmt::group_digits;

/// Runs a `state` subcommand.
pub async fn command(config: &Config, command: StateCommand) -> Result<u8> {
    match command {
        StateCommand::Show { targets } => show(config, &targets).await,
        StateCommand::Forget { target, files } => forget(config, &target, &files).await,
    }
}

/// The incremental outputs named (by target label or model), all when none is.
fn incremental_outputs<'a>(config: &'a Config, names: &[String]) -> Result<Vec<&'a OutputConfig>> {
    let outputs: Vec<&OutputConfig> = config.outputs.iter().flatten().filter(|o| o.incremental.is_some()).collect();
    if outputs.is_empty() {
        return Err(Error::Usage("no output of this project has `incremental:`".into()));
    }
    let label = |o: &OutputConfig| o.target.label(&config.project_dir);
    for name in names {
        if !outputs.iter().any(|o| &label(o) == name || &o.model == name) {
            let known: Vec<String> = outputs.iter().map(|o| label(o)).collect();
            return Err(Error::Usage(format!(
                "`{name}` is not an incremental output's target or model{} (they are: {})",
                crate::util::suggest::did_you_mean(name, known.iter().map(String::as_str)),
                known.join(", ")
            )));
        }
    }
    Ok(outputs
        .into_iter()
        .filter(|o| names.is_empty() || names.iter().any(|n| n == &label(o) || n == &o.model))
        .collect())
}

fn grain_of(spec: &IncrementalSpec) -> Option<Grain> {
    match spec {
        IncrementalSpec::Time { grain, .. } => Some(*grain),
        _ => None,
    }
}

/// A session with the project's object stores (Parquet targets on object storage).
fn session(config: &Config) -> Result<datafusion::prelude::SessionContext> {
    let budget = crate::memory::MemoryBudget::measure(&config.memory);
    crate::engine::session::build(
        config,
        &crate::memory::strategy::ExecSettings::new(crate::config::Strategy::Spill, &budget),
    )
}

async fn show(config: &Config, names: &[String]) -> Result<u8> {
    let ctx = session(config)?;
    for output in incremental_outputs(config, names)? {
        let spec = output.incremental.as_ref().expect("an incremental output");
        let label = output.target.label(&config.project_dir);
        let held = read_target_loads(&output.target, &ctx).await?;
        let state = State::fold(held.markers.iter().map(|m| (m.state.as_str(), m.definition.as_str())), grain_of(spec))
            .map_err(|e| Error::State(format!("{label}: {e}")))?;
        crate::outln!(
            "{label} (model `{}`, by: {}): {} load(s), {} row(s) written (a window or file loaded again counts again)",
            output.model,
            spec.kind(),
            state.loads,
            group_digits(state.rows)
        );
        match spec {
            IncrementalSpec::Time { grain, begin, .. } => {
                let ranges = ranges(&state, *grain);
                crate::outln!("  complete {}s: {}", grain.name(), state.complete.len());
                for (start, end) in &ranges {
                    crate::outln!("    [{}, {})", instant_text(*start), instant_text(*end));
                }
                if let Some(first) = state.complete.first()
                    && first > begin
                {
                    crate::outln!("  not loaded yet from begin: [{}, {})", instant_text(*begin), instant_text(*first));
                }
            }
            IncrementalSpec::Cursor { column, .. } => match &state.mark {
                Some(mark) => {
                    let text = StoredMark::store(mark).map_or_else(|_| mark.to_string(), |m| m.value);
                    crate::outln!("  mark: {column} = {text} ({})", mark.data_type())
                }
                None => crate::outln!("  mark: none yet (the next run loads every row)"),
            },
            IncrementalSpec::Files { .. } => {
                crate::outln!("  files loaded: {}", state.files.len());
                for path in state.files.keys() {
                    crate::outln!("    {}", shown_path(config, path));
                }
            }
        }
        if state.definitions.len() > 1 {
            crate::outln!(
                "  built with {} different definitions of the model (rebuild with --full-refresh)",
                state.definitions.len()
            );
        }
    }
    Ok(EXIT_OK)
}

/// Consecutive complete grains as `[start, end)` ranges.
fn ranges(state: &State, grain: Grain) -> Vec<(chrono::NaiveDateTime, chrono::NaiveDateTime)> {
    let mut out: Vec<(chrono::NaiveDateTime, chrono::NaiveDateTime)> = Vec::new();
    for &t in &state.complete {
        let end = crate::config::incremental::step(t, grain, 1);
        match out.last_mut() {
            Some(last) if last.1 == t => last.1 = end,
            _ => out.push((t, end)),
        }
    }
    out
}

/// A file's path relative to the project when it lies inside it.
fn shown_path(config: &Config, location: &str) -> String {
    let path = location.strip_prefix("file://").unwrap_or(location);
    std::path::Path::new(path)
        .strip_prefix(&config.project_dir)
        .map_or_else(|_| location.to_string(), |p| p.display().to_string())
}

async fn forget(config: &Config, name: &str, pattern: &str) -> Result<u8> {
    let ctx = session(config)?;
    let outputs = incremental_outputs(config, &[name.to_string()])?;
    let glob =
        glob::Pattern::new(pattern).map_err(|e| Error::Usage(format!("--files `{pattern}` is not a glob: {e}")))?;
    for output in outputs {
        let label = output.target.label(&config.project_dir);
        if !matches!(output.incremental, Some(IncrementalSpec::Files { .. })) {
            return Err(Error::Usage(format!("{label} is not loaded `by: files`; there are no files to forget")));
        }
        let _lock = crate::catalog::lock::ProjectLock::acquire(&config.state_dir, "state forget")?;
        let mut markers = read_target_loads(&output.target, &ctx).await?.markers;
        let mut forgotten = 0;
        for m in &mut markers {
            let mut state: MarkerState = serde_json::from_str(&m.state)
                .map_err(|e| Error::State(format!("{label}: a load marker does not read: {e}")))?;
            let before = state.files.len();
            state.files.retain(|f| {
                let name = f.path.rsplit('/').next().unwrap_or_default();
                !(glob.matches(&f.path) || glob.matches(&shown_path(config, &f.path)) || glob.matches(name))
            });
            forgotten += before - state.files.len();
            m.state = serde_json::to_string(&state).expect("a marker state serializes");
        }
        if forgotten == 0 {
            return Err(Error::Usage(format!(
                "no file loaded into {label} matches `{pattern}` (see `dfpipe state show {label}`)"
            )));
        }
        rewrite_target_loads(&output.target, &ctx, &markers).await?;
        let records: Vec<_> = markers.iter().map(record_of).collect();
        Catalog::new(&config.state_dir).record_loads(0, &label, &records, true)?;
        crate::outln!("{label}: {forgotten} file(s) forgotten; the next run loads them again");
    }
    Ok(EXIT_OK)
}
