//! Incremental outputs in a run: before anything is checked or written, each one's state is
//! read from its target (the `_dfpipe_loads` markers committed with the rows), reconciled with
//! the catalog, and turned into what this run loads ([`Increment`]): the time windows, the
//! cursor's floor, or the new files (the source is narrowed to them). The targets step then
//! writes each window (or the one increment) as its own transaction with its marker.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDateTime;
use datafusion::common::ScalarValue;

use crate::catalog::{Catalog, LoadRecord};
use crate::config::incremental::{Grain, IncrementalSpec, OnFileChange, OnNullCursor, step, truncate};
use crate::config::{Mode, OutputConfig, Target};
use crate::engine::incremental::{FileKey, State, Window, cursor_floor, definition, window_params, windows};
use crate::engine::observe::files_of;
use crate::engine::pipeline::Pipeline;
use crate::error::{Error, Result};
use crate::sinks::marker::{LoadMarker, TargetLoads};

/// What the command line asks of incremental outputs.
#[derive(Debug, Clone, Default)]
pub struct IncrementalOptions {
    /// `--full-refresh`: rebuild from `begin` / all files / no mark, swapped in with the state reset.
    pub full_refresh: bool,
    /// `--start T --end T`: restate exactly those time grains.
    pub restate: Option<(NaiveDateTime, NaiveDateTime)>,
}

impl IncrementalOptions {
    /// From the command line: `--full-refresh`, `--start`, `--end` (instants, UTC).
    pub fn parse(full_refresh: bool, start: Option<String>, end: Option<String>) -> Result<IncrementalOptions> {
        let instant = |flag: &str, text: String| {
            crate::config::incremental::parse_instant(&text).ok_or_else(|| {
                Error::Usage(format!(
                    "{flag} `{text}` is not a date or timestamp; write e.g. 2024-03-01 or 2024-03-01T06:00:00"
                ))
            })
        };
        let restate = match (start, end) {
            (Some(s), Some(e)) => Some((instant("--start", s)?, instant("--end", e)?)),
            _ => None,
        };
        if full_refresh && restate.is_some() {
            return Err(Error::Usage(
                "--full-refresh rebuilds everything; --start/--end restate some windows: use one".into(),
            ));
        }
        Ok(IncrementalOptions { full_refresh, restate })
    }
}

/// What a run loads for one incremental output.
#[derive(Debug, Clone)]
pub struct Increment {
    /// What is loaded.
    pub load: Load,
    /// The fingerprint of the output's definition.
    pub definition: String,
    /// Rebuild and reset the state in the same commit.
    pub full_refresh: bool,
    /// The target key its markers use.
    pub target_key: String,
}

/// The loads of an increment.
#[derive(Debug, Clone)]
pub enum Load {
    /// `by: time`: one transaction per window.
    Windows {
        /// The column windows cut.
        column: String,
        /// The windows, in order.
        windows: Vec<Window>,
        /// The grain (for the marker's text).
        grain: Grain,
    },
    /// `by: cursor`: rows past `floor` (all rows when `None`).
    Cursor {
        /// The column.
        column: String,
        /// The mark less the lag.
        floor: Option<ScalarValue>,
        /// The mark before this run.
        mark: Option<ScalarValue>,
        /// Rows with a NULL cursor.
        on_null_cursor: OnNullCursor,
    },
    /// `by: files`: the files read (the source is narrowed to them).
    Files {
        /// The source.
        source: String,
        /// The files loaded now.
        files: Vec<FileKey>,
    },
}

impl Increment {
    /// One line for the summary and `dfpipe plan`.
    pub fn describe(&self) -> String {
        let refresh = if self.full_refresh { "full refresh: " } else { "" };
        let text = match &self.load {
            Load::Windows { windows, .. } if windows.is_empty() => "no window to load".to_string(),
            Load::Windows { windows, .. } => {
                let (first, last) = (&windows[0], &windows[windows.len() - 1]);
                format!(
                    "{} window(s) [{}, {})",
                    windows.len(),
                    crate::engine::incremental::instant_text(first.start),
                    crate::engine::incremental::instant_text(last.end)
                )
            }
            Load::Cursor { column, floor: Some(floor), .. } => {
                let text = crate::engine::incremental::StoredMark::store(floor)
                    .map_or_else(|_| floor.to_string(), |m| m.value);
                format!("rows with {column} > {text}")
            }
            Load::Cursor { .. } => "all rows (no mark yet)".to_string(),
            Load::Files { files, source } if files.is_empty() => format!("no new files in source `{source}`"),
            Load::Files { files, source } => format!("{} new file(s) of source `{source}`", files.len()),
        };
        format!("{refresh}{text}")
    }

    /// `time`, `cursor` or `files`.
    pub fn load_kind(&self) -> &'static str {
        match &self.load {
            Load::Windows { .. } => "time",
            Load::Cursor { .. } => "cursor",
            Load::Files { .. } => "files",
        }
    }

    /// Whether there is nothing to load (the target is left untouched).
    pub fn is_empty(&self) -> bool {
        match &self.load {
            Load::Windows { windows, .. } => windows.is_empty(),
            Load::Files { files, .. } => files.is_empty(),
            Load::Cursor { .. } => false,
        }
    }
}

/// The key the target's markers use for `target`.
fn target_key(target: &Target) -> String {
    match target {
        Target::DuckDb(t) => t.table.name.to_lowercase(),
        Target::Postgres { table, .. } => table.name.clone(),
        Target::Parquet { location, .. } => location.clone(),
    }
}

/// Reads `output`'s markers from its target (`ctx` knows the object stores of Parquet ones).
pub async fn read_target_loads(target: &Target, ctx: &datafusion::prelude::SessionContext) -> Result<TargetLoads> {
    match target {
        Target::DuckDb(t) => crate::sinks::duckdb::read_loads(t).map_err(Error::Run),
        Target::Postgres { dsn, table, .. } => {
            crate::sinks::postgres::loads::read_loads(dsn.as_ref(), table).await.map_err(Error::Run)
        }
        Target::Parquet { location, .. } => {
            crate::sinks::parquet_increment::read_loads(location, ctx).await.map_err(Error::Run)
        }
    }
}

/// Rewrites `output`'s markers in its target.
pub async fn rewrite_target_loads(
    target: &Target,
    ctx: &datafusion::prelude::SessionContext,
    markers: &[LoadMarker],
) -> Result<()> {
    match target {
        Target::DuckDb(t) => crate::sinks::duckdb::rewrite_loads(t, markers).map_err(Error::Run),
        Target::Postgres { dsn, table, .. } => {
            crate::sinks::postgres::loads::rewrite_loads(dsn.as_ref(), table, markers).await.map_err(Error::Run)
        }
        Target::Parquet { location, .. } => {
            crate::sinks::parquet_increment::rewrite_loads(location, ctx, markers).await.map_err(Error::Run)
        }
    }
}

/// A marker as the catalog records it.
pub fn record_of(m: &LoadMarker) -> LoadRecord {
    LoadRecord {
        load_id: m.load_id.clone(),
        kind: m.kind.clone(),
        state: m.state.clone(),
        definition: m.definition.clone(),
    }
}

/// The state of `output`: its target's markers, the catalog brought in line with them. A target
/// missing loads the catalog records (dropped, emptied or restored outside dfpipe) is an error.
pub async fn reconciled_state(
    pipeline: &Pipeline,
    catalog: &Catalog,
    run_id: Option<i64>,
    output: &OutputConfig,
    spec: &IncrementalSpec,
    full_refresh: bool,
) -> Result<(State, Vec<LoadMarker>)> {
    let label = output.target.label(&pipeline.project.config.project_dir);
    let held = read_target_loads(&output.target, &pipeline.ctx).await?;
    let recorded = catalog.loads(&label)?;
    let held_ids: BTreeSet<&str> = held.markers.iter().map(|m| m.load_id.as_str()).collect();
    let recorded_ids: BTreeSet<&str> = recorded.iter().map(|r| r.load_id.as_str()).collect();
    let grain = match spec {
        IncrementalSpec::Time { grain, .. } => Some(*grain),
        _ => None,
    };
    let refresh_hint = format!("rebuild it with `dfpipe run --full-refresh -s {}`", output.model);
    if full_refresh {
        // Rebuilt from scratch, state reset in the same commit: what is there does not matter.
        return Ok((State::default(), held.markers));
    }
    if !recorded.is_empty() && !held.exists {
        return Err(Error::State(format!(
            "{label}: the catalog records {} incremental load(s) of this target, but the table is gone \
             (dropped outside dfpipe?); {refresh_hint}",
            recorded.len()
        )));
    }
    if held_ids != recorded_ids {
        if held_ids.iter().any(|id| !recorded_ids.contains(id)) {
            // Loads the target committed and the catalog missed (a crash between the two): the
            // target is right.
            tracing::warn!(
                target = %label,
                "the catalog missed load(s) the target committed (an earlier run stopped between the two); \
                 taking the target's record"
            );
            if let Some(run_id) = run_id {
                let records: Vec<LoadRecord> = held.markers.iter().map(record_of).collect();
                catalog.record_loads(run_id, &label, &records, true)?;
            }
        } else {
            return Err(Error::State(format!(
                "{label}: the catalog records {} incremental load(s) the target does not hold (its \
                 `{}` table was changed, or the target restored, outside dfpipe); {refresh_hint}",
                recorded_ids.difference(&held_ids).count(),
                crate::sinks::marker::LOADS_TABLE
            )));
        }
    }
    let state = State::fold(held.markers.iter().map(|m| (m.state.as_str(), m.definition.as_str())), grain)
        .map_err(|e| Error::State(format!("{label}: {e}")))?;
    if held.exists && !held.has_rows && state.rows > 0 {
        return Err(Error::State(format!(
            "{label}: the target is empty, but its incremental loads wrote {} row(s) (emptied outside dfpipe?); \
             {refresh_hint}",
            state.rows
        )));
    }
    Ok((state, held.markers))
}

/// Plans every incremental output of the run: reads and reconciles state, narrows `by: files`
/// sources to their new files, binds `$start`/`$end`/`$last`. One entry per output. Without a
/// run (`dfpipe plan`), the catalog is only read.
pub async fn plan(
    pipeline: &Pipeline,
    catalog: &Catalog,
    run_id: Option<i64>,
    options: &IncrementalOptions,
) -> Result<Vec<Option<Increment>>> {
    let now = crate::util::fault::now();
    let mut out = Vec::with_capacity(pipeline.outputs.len());
    let mut run_values = BTreeMap::new();
    let mut narrowed: BTreeMap<String, String> = BTreeMap::new();
    if options.restate.is_some()
        && !pipeline.outputs.iter().any(|o| matches!(o.incremental, Some(IncrementalSpec::Time { .. })))
    {
        return Err(Error::Usage("--start/--end restate windows of `by: time` outputs, and none is selected".into()));
    }
    for output in &pipeline.outputs {
        let Some(spec) = &output.incremental else {
            out.push(None);
            continue;
        };
        let label = output.target.label(&pipeline.project.config.project_dir);
        let (state, _) = reconciled_state(pipeline, catalog, run_id, output, spec, options.full_refresh).await?;
        let model = &pipeline.project.models[&output.model];
        let definition = definition(&model.sql, &format!("{spec:?}"));
        if !state.definitions.is_empty() && !state.definitions.contains(&definition) {
            tracing::warn!(
                target = %label,
                "model `{}` or its incremental settings changed since earlier loads: the rows loaded before were \
                 built with the old definition (rebuild them with --full-refresh, or restate windows with --start/--end)",
                output.model
            );
        }
        let full_refresh = options.full_refresh;
        let load = match spec {
            IncrementalSpec::Time { column, grain, begin, lookback, batch } => {
                let restate = match options.restate {
                    Some((s, e)) => {
                        for (bound, name) in [(s, "--start"), (e, "--end")] {
                            if truncate(bound, *grain) != bound {
                                return Err(Error::Usage(format!(
                                    "{name} {bound} is not on a {} boundary of output `{}` (windows start at {} boundaries, UTC)",
                                    grain.name(),
                                    output.model,
                                    grain.name()
                                )));
                            }
                        }
                        if e <= s {
                            return Err(Error::Usage("--end must be after --start".into()));
                        }
                        Some((s, e))
                    }
                    None => None,
                };
                let windows = if full_refresh {
                    let end = step(truncate(now, *grain), *grain, 1);
                    let current = truncate(now, *grain);
                    if *begin > now {
                        vec![]
                    } else {
                        vec![Window { start: *begin, end, complete: (current > *begin).then_some((*begin, current)) }]
                    }
                } else {
                    windows(*grain, *begin, *lookback, *batch, &state.complete, now, restate)
                };
                if let (Some(first), Some(last)) = (windows.first(), windows.last()) {
                    run_values.insert(output.model.clone(), window_params(first.start, last.end));
                }
                Load::Windows { column: column.clone(), windows, grain: *grain }
            }
            IncrementalSpec::Cursor { column, lag, on_null_cursor } => {
                let mark = if full_refresh { None } else { state.mark.clone() };
                if let (Some(ScalarValue::Date32(Some(_))), None) = (&mark, lag) {
                    // Rows dated the mark's day that arrive after this load would never load.
                    tracing::warn!(
                        target = %label,
                        "the cursor `{column}` is a DATE and `lag` is not set: rows added later with the date of \
                         the last load ({}) will not be loaded; set `lag: 1d` to merge that day again on each run",
                        mark.as_ref().map(ScalarValue::to_string).unwrap_or_default()
                    );
                }
                let floor = match &mark {
                    Some(m) => Some(cursor_floor(m, *lag).map_err(|e| Error::Config(format!("{label}: {e}")))?),
                    None => None,
                };
                run_values.insert(
                    output.model.clone(),
                    HashMap::from([("last".to_string(), floor.clone().unwrap_or(ScalarValue::Null))]),
                );
                Load::Cursor { column: column.clone(), floor, mark, on_null_cursor: *on_null_cursor }
            }
            IncrementalSpec::Files { source, on_file_change } => {
                let source = files_source(pipeline, output, source.as_deref())?;
                let listed = files_of(pipeline, &source).await?;
                let mut files = Vec::new();
                let mut changed = Vec::new();
                for file in &listed {
                    let key = FileKey::of(&file.path, file.size, &file.modified, file.etag.as_deref());
                    match state.files.get(&key.path) {
                        _ if full_refresh => files.push(key),
                        None => files.push(key),
                        Some(before) if before.same_as(&key) => {}
                        Some(_) => changed.push(key),
                    }
                }
                if !changed.is_empty() {
                    match on_file_change {
                        OnFileChange::Error => {
                            let paths: Vec<&str> = changed.iter().take(5).map(|f| f.path.as_str()).collect();
                            // Forgetting a file loads all its rows again: under merge they replace
                            // the earlier ones, under append they join them (each row twice).
                            let reload = match output.mode {
                                Mode::Merge => format!(
                                    "set `on_file_change: reload` to load them again, `ignore` to keep what was \
                                     loaded, or `dfpipe state forget {label} --files GLOB` to reload them once"
                                ),
                                _ => format!(
                                    "set `on_file_change: ignore` to keep what was loaded, or load them again with \
                                     {refresh} (`dfpipe state forget` would append their rows a second time; \
                                     `on_file_change: reload` needs mode merge)",
                                    refresh = format_args!("`dfpipe run --full-refresh -s {}`", output.model)
                                ),
                            };
                            return Err(Error::State(format!(
                                "{label}: {} file(s) of source `{source}` changed since they were loaded: {}{}; {reload}",
                                changed.len(),
                                paths.join(", "),
                                if changed.len() > 5 { ", …" } else { "" }
                            )));
                        }
                        OnFileChange::Reload => files.extend(changed),
                        OnFileChange::Ignore => {
                            tracing::info!(target = %label, "{} changed file(s) ignored (on_file_change: ignore)", changed.len())
                        }
                    }
                }
                if let Some(other) = narrowed.insert(source.clone(), output.model.clone()) {
                    // `-s` selects models: two outputs of one model cannot be run apart.
                    return Err(Error::Usage(if other == output.model {
                        format!(
                            "source `{source}` is read by new files for two outputs of `{other}` ({label} is one), \
                             and a run reads a source's new files for one model: give one of the outputs a model \
                             of its own (a copy of {}) and run the two one at a time (-s)",
                            pipeline.project.models[&other].file.display()
                        )
                    } else {
                        format!(
                            "source `{source}` is read by new files for both `{other}` and `{}`; run them one at a \
                             time (-s)",
                            output.model
                        )
                    }));
                }
                Load::Files { source, files }
            }
        };
        out.push(Some(Increment { load, definition, full_refresh, target_key: target_key(&output.target) }));
    }
    let mut keep = BTreeMap::new();
    for (source, model) in &narrowed {
        let readers: Vec<&str> = pipeline
            .outputs
            .iter()
            .filter(|o| &o.model != model && pipeline.project.reads(&o.model, source))
            .map(|o| o.model.as_str())
            .collect();
        if !readers.is_empty() {
            return Err(Error::Usage(format!(
                "source `{source}` is read by new files only for `{model}`, and whole by {}; run them separately (-s)",
                readers.join(", ")
            )));
        }
        let Some(Load::Files { files, .. }) =
            out.iter().flatten().map(|i| &i.load).find(|l| matches!(l, Load::Files { source: s, .. } if s == source))
        else {
            continue;
        };
        keep.insert(source.clone(), files.iter().map(|f| f.path.clone()).collect::<BTreeSet<String>>());
    }
    pipeline.apply_increments(keep, run_values).await?;
    Ok(out)
}

/// The source a `by: files` output reads new files of: the one named, else the only one its
/// model reads.
fn files_source(pipeline: &Pipeline, output: &OutputConfig, named: Option<&str>) -> Result<String> {
    let sources = pipeline.project.sources_upstream(&output.model);
    match named {
        Some(name) if sources.iter().any(|s| s == name) => Ok(name.to_string()),
        Some(name) => Err(Error::Config(format!(
            "output of model `{}`: incremental source `{name}` is not read by the model (it reads {})",
            output.model,
            sources.join(", ")
        ))),
        None if sources.len() == 1 => Ok(sources[0].clone()),
        None => Err(Error::Config(format!(
            "output of model `{}`: `by: files` needs `source:` because the model reads {} sources ({})",
            output.model,
            sources.len(),
            sources.join(", ")
        ))),
    }
}

/// The marker of one load: `state` as JSON, ids ordered by time.
pub fn marker(
    increment: &Increment,
    load_id: String,
    state: &crate::engine::incremental::MarkerState,
    kind: &str,
) -> LoadMarker {
    LoadMarker {
        target: increment.target_key.clone(),
        load_id,
        kind: kind.to_string(),
        state: serde_json::to_string(state).expect("a marker state serializes"),
        definition: increment.definition.clone(),
    }
}

/// A load id that sorts after every earlier one: UTC time to the microsecond, then the process.
pub fn new_load_id(seq: usize) -> String {
    format!("{}-{}-{seq:04}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f"), std::process::id())
}
