//! Incremental loads into a local Parquet directory, which has no transactions: a load's rows
//! are written aside, moved into the directory as `part-<load id>-<n>.parquet`, and committed by
//! its marker file, `_dfpipe_loads/<load id>.json` (written aside, synced, renamed into place).
//! Data files whose load has no marker were never committed, and the next load deletes them.
//!
//! A restated time window supersedes the files of earlier loads inside it: a load whose window
//! lies wholly inside is superseded whole; one that overlaps it is rewritten without the
//! window's rows, as part of the new load. The superseded files are listed in the new marker and
//! deleted once it is committed (again by the next load, if a crash came first). Until then a
//! reader listing the directory may see both the old and the new rows of the window: Parquet
//! directories give readers no isolation. A full refresh builds a whole new directory (its
//! marker inside) and swaps it in as `replace` does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::common::ScalarValue;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::{DataFrame, ParquetReadOptions, col, lit};
use serde::{Deserialize, Serialize};

use super::marker::{LoadExtras, LoadMarker, TargetLoads};
use super::parquet::{hidden, remove, swap_into_place, sync_dir, sync_tree, written};
use crate::error::df_message;
use crate::util::progress::RowCounter;

/// The directory of marker files inside the output directory.
pub const LOADS_DIR: &str = "_dfpipe_loads";

/// A marker file: the load's marker and what it did to the directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MarkerFile {
    marker: LoadMarker,
    /// The data files the load added (names in the directory).
    files: Vec<String>,
    /// `[start, end)` of a time window (UTC, `YYYY-MM-DD HH:MM:SS`), when the load had one.
    #[serde(default)]
    window: Option<(String, String)>,
    /// Files of earlier loads this one replaced, deleted once it committed.
    #[serde(default)]
    supersedes: Vec<String>,
}

fn markers(dir: &Path) -> Result<Vec<MarkerFile>, String> {
    let loads = dir.join(LOADS_DIR);
    let Ok(entries) = std::fs::read_dir(&loads) else { return Ok(vec![]) };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.push(serde_json::from_str::<MarkerFile>(&text).map_err(|e| format!("{}: {e}", path.display()))?);
        }
    }
    out.sort_by(|a, b| a.marker.load_id.cmp(&b.marker.load_id));
    Ok(out)
}

fn data_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-") && n.ends_with(".parquet"))
        .collect();
    names.sort();
    names
}

/// What the directory at `location` holds of its incremental loads.
pub fn read_loads(location: &str) -> Result<TargetLoads, String> {
    let dir = PathBuf::from(location.trim_end_matches('/'));
    Ok(TargetLoads {
        exists: dir.is_dir(),
        has_rows: !data_files(&dir).is_empty(),
        markers: markers(&dir)?.into_iter().map(|m| m.marker).collect(),
    })
}

/// Rewrites the markers of the directory at `location` to `markers` (`dfpipe state forget`):
/// each keeps its files and window, with its new state.
pub fn rewrite_loads(location: &str, updated: &[LoadMarker]) -> Result<(), String> {
    let dir = PathBuf::from(location.trim_end_matches('/'));
    for mut file in markers(&dir)? {
        if let Some(m) = updated.iter().find(|m| m.load_id == file.marker.load_id) {
            file.marker = m.clone();
            write_marker(&dir, &file)?;
        }
    }
    Ok(())
}

/// Deletes what no committed load owns: data files of loads without a marker (never
/// committed), and files a committed load superseded.
fn recover(dir: &Path, committed: &[MarkerFile]) -> Result<(), String> {
    let ids: BTreeSet<&str> = committed.iter().map(|m| m.marker.load_id.as_str()).collect();
    let superseded: BTreeSet<&str> = committed.iter().flat_map(|m| m.supersedes.iter().map(String::as_str)).collect();
    let mut removed = false;
    for name in data_files(dir) {
        let id = name.trim_start_matches("part-").rsplit_once('-').map_or("", |(id, _)| id);
        if !ids.contains(id) || superseded.contains(name.as_str()) {
            tracing::info!(
                "removing {}: {}",
                name,
                if ids.contains(id) { "superseded by a later load" } else { "its load never committed" }
            );
            std::fs::remove_file(dir.join(&name)).map_err(|e| format!("cannot remove {name}: {e}"))?;
            removed = true;
        }
    }
    if removed { sync_dir(dir) } else { Ok(()) }
}

fn write_marker(dir: &Path, file: &MarkerFile) -> Result<(), String> {
    let loads = dir.join(LOADS_DIR);
    std::fs::create_dir_all(&loads).map_err(|e| format!("cannot create {}: {e}", loads.display()))?;
    let path = loads.join(format!("{}.json", file.marker.load_id));
    let tmp = loads.join(format!(".{}.json.tmp", file.marker.load_id));
    let text = serde_json::to_string_pretty(file).expect("a marker serializes");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| format!("cannot sync {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    sync_dir(&loads)
}

/// Writes one incremental load of `df` into the directory at `location` (see the module docs);
/// returns the rows it added. `counter` counts them before the marker is built.
pub async fn write_increment(
    df: DataFrame,
    location: &str,
    compression: &str,
    extras: &LoadExtras,
    counter: &RowCounter,
) -> Result<u64, String> {
    if location.contains("://") {
        return Err("incremental Parquet outputs are local directories; on object storage write to a database".into());
    }
    let dir = PathBuf::from(location.trim_end_matches('/'));
    let committed = markers(&dir)?;
    if dir.is_dir() {
        recover(&dir, &committed)?;
    }
    let mut options = TableParquetOptions::default();
    options.global.compression = Some(compression.to_string());
    let write_options = || DataFrameWriteOptions::new().with_insert_operation(InsertOp::Append);
    let staging = hidden(&dir, "tmp", std::process::id());
    remove(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let result = async {
        let session = datafusion::prelude::SessionContext::new();
        let rows = written(
            df.write_parquet(&format!("{}/", staging.display()), write_options(), Some(options.clone())).await,
        )?;
        counter.add(rows);
        // Earlier loads inside a restated window are superseded; those overlapping it are
        // rewritten without its rows, into this load.
        let mut supersedes = Vec::new();
        let window = extras.delete.as_ref().map(|r| (r.start, r.end));
        if let (Some(range), false) = (&extras.delete, extras.reset) {
            for old in &committed {
                let span = old.window.as_ref().and_then(|(a, b)| {
                    let parse = |t: &str| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").ok();
                    Some((parse(a)?, parse(b)?))
                });
                let (inside, overlaps) = match span {
                    Some((a, b)) => (a >= range.start && b <= range.end, a < range.end && b > range.start),
                    None => (false, true),
                };
                if !overlaps {
                    continue;
                }
                for name in old.files.iter().filter(|n| dir.join(n).exists()) {
                    if !inside {
                        let kept = session
                            .read_parquet(dir.join(name).to_string_lossy().as_ref(), ParquetReadOptions::default())
                            .await
                            .and_then(|t| {
                                let c = col(datafusion::common::Column::new_unqualified(range.column.as_str()));
                                let start = lit(instant(range.start, &range.data_type)?);
                                let end = lit(instant(range.end, &range.data_type)?);
                                t.filter(c.clone().lt(start).or(c.clone().gt_eq(end)).or(c.is_null()))
                            })
                            .map_err(|e| df_message(&e))?;
                        let out = format!("{}/kept-{name}/", staging.display());
                        written(kept.write_parquet(&out, write_options(), Some(options.clone())).await)?;
                    }
                    supersedes.push(name.clone());
                }
            }
        }
        sync_tree(&staging)?;
        let marker = match &extras.marker {
            Some(build) => build()?,
            None => return Err("an incremental Parquet load without a marker".to_string()),
        };
        Ok::<_, String>((rows, marker, supersedes, window))
    }
    .await;
    let (rows, marker, supersedes, window) = match result {
        Ok(done) => done,
        Err(e) => {
            remove(&staging);
            return Err(e);
        }
    };
    let window =
        window.map(|(a, b)| (a.format("%Y-%m-%d %H:%M:%S").to_string(), b.format("%Y-%m-%d %H:%M:%S").to_string()));
    if extras.reset {
        // A full refresh: the new directory (its marker inside) replaces the old one whole.
        let files = name_files(&staging, &staging, &marker.load_id)?;
        write_marker(&staging, &MarkerFile { marker, files, window, supersedes: vec![] })?;
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        swap_into_place(&staging, &dir)?;
        return Ok(rows);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = name_files(&staging, &dir, &marker.load_id)?;
    sync_dir(&dir)?;
    remove(&staging);
    crate::util::fault::crash_point("before-marker");
    // The commit: the marker file in place.
    write_marker(&dir, &MarkerFile { marker, files, window, supersedes: supersedes.clone() })?;
    for name in &supersedes {
        let _ = std::fs::remove_file(dir.join(name));
    }
    sync_dir(&dir)?;
    Ok(rows)
}

/// `t` (UTC) as a value of a `data_type` column.
fn instant(
    t: chrono::NaiveDateTime,
    data_type: &datafusion::arrow::datatypes::DataType,
) -> datafusion::error::Result<ScalarValue> {
    ScalarValue::TimestampNanosecond(t.and_utc().timestamp_nanos_opt(), None).cast_to(data_type)
}

/// Moves every Parquet file under `from` into `to` as `part-<load id>-<n>.parquet`; their names.
fn name_files(from: &Path, to: &Path, load_id: &str) -> Result<Vec<String>, String> {
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(from)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet") && !p.starts_with(from.join(LOADS_DIR)))
        .collect();
    found.sort();
    let mut names = Vec::with_capacity(found.len());
    for (n, path) in found.into_iter().enumerate() {
        let name = format!("part-{load_id}-{n:05}.parquet");
        std::fs::rename(&path, to.join(&name))
            .map_err(|e| format!("cannot move {} into {}: {e}", path.display(), to.display()))?;
        names.push(name);
    }
    // What the writer left besides the files (empty directories) goes.
    if from != to {
        for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
            if entry.path().is_dir() && entry.file_name() != LOADS_DIR {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(names)
}
