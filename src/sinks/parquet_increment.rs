//! Incremental loads into a Parquet directory (local, or a prefix on an object store), which
//! has no transactions: a load's rows are written aside, moved into the directory as
//! `part-<load id>-<n>.parquet`, and committed by its marker, `_dfpipe_loads/<load id>.json`
//! (locally written aside, synced and renamed into place; on an object store one PUT). Data
//! files whose load has no marker were never committed, and the next load deletes them.
//!
//! A restated time window supersedes the files of earlier loads inside it: a load whose window
//! lies wholly inside is superseded whole; one that overlaps it is rewritten without the
//! window's rows, as part of the new load. The superseded files are listed in the new marker and
//! deleted once it is committed (again by the next load, if a crash came first). Until then a
//! reader listing the directory may see both the old and the new rows of the window: Parquet
//! directories give readers no isolation. A full refresh of a local directory builds a whole new
//! directory (its marker inside) and swaps it in as `replace` does; on an object store its
//! files and marker are written first and everything else under the prefix deleted after.
//!
//! Every column is written nullable, as in any Parquet output (see [`super::parquet`]), the
//! rewritten files of a restated window included.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ScalarValue;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext, col, lit};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::marker::{LoadExtras, LoadMarker, TargetLoads};
use super::nullable::nullable_columns;
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

/// A Parquet output directory: local (synced renames) or an object-store prefix.
#[async_trait]
trait Dir: Send + Sync {
    /// Whether it exists (a prefix always does).
    fn exists(&self) -> bool;
    /// The names of its data files (`part-*.parquet`), sorted.
    async fn data_files(&self) -> Result<Vec<String>, String>;
    /// The texts of its marker files.
    async fn marker_texts(&self) -> Result<Vec<String>, String>;
    /// Writes a marker whole: the commit of its load.
    async fn put_marker(&self, load_id: &str, text: String) -> Result<(), String>;
    /// Deletes a data file or a marker (`_dfpipe_loads/<id>.json`).
    async fn delete(&self, name: &str) -> Result<(), String>;
    /// Where DataFusion writes a load's files first (ends in `/`).
    fn staging(&self) -> String;
    /// Makes the staging area empty and ready.
    fn prepare_staging(&self) -> Result<(), String>;
    /// Moves the staged Parquet files in as `part-<load id>-<n>.parquet`; their names.
    async fn take_staged(&self, load_id: &str) -> Result<Vec<String>, String>;
    /// Forgets what is left of the staging area.
    async fn drop_staging(&self);
    /// Where DataFusion reads the data file `name`.
    fn file_location(&self, name: &str) -> String;
}

fn is_data_file(name: &str) -> bool {
    name.starts_with("part-") && name.ends_with(".parquet")
}

/// A local directory.
struct LocalDir {
    dir: PathBuf,
    staging: PathBuf,
}

#[async_trait]
impl Dir for LocalDir {
    fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    async fn data_files(&self) -> Result<Vec<String>, String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(vec![]) };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_data_file(n))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn marker_texts(&self) -> Result<Vec<String>, String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(LOADS_DIR)) else { return Ok(vec![]) };
        let mut texts = Vec::new();
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")) {
            texts.push(std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?);
        }
        Ok(texts)
    }

    async fn put_marker(&self, load_id: &str, text: String) -> Result<(), String> {
        let loads = self.dir.join(LOADS_DIR);
        std::fs::create_dir_all(&loads).map_err(|e| format!("cannot create {}: {e}", loads.display()))?;
        let path = loads.join(format!("{load_id}.json"));
        let tmp = loads.join(format!(".{load_id}.json.tmp"));
        std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        sync_dir(&loads)
    }

    async fn delete(&self, name: &str) -> Result<(), String> {
        match std::fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("cannot remove {name}: {e}")),
            _ => Ok(()),
        }
    }

    fn staging(&self) -> String {
        format!("{}/", self.staging.display())
    }

    fn prepare_staging(&self) -> Result<(), String> {
        remove(&self.staging);
        std::fs::create_dir_all(&self.staging).map_err(|e| format!("cannot create {}: {e}", self.staging.display()))
    }

    async fn take_staged(&self, load_id: &str) -> Result<Vec<String>, String> {
        sync_tree(&self.staging)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let names = move_files(&self.staging, &self.dir, load_id)?;
        sync_dir(&self.dir)?;
        Ok(names)
    }

    async fn drop_staging(&self) {
        remove(&self.staging);
    }

    fn file_location(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

/// Moves every Parquet file under `from` into `to` as `part-<load id>-<n>.parquet`; their names.
fn move_files(from: &Path, to: &Path, load_id: &str) -> Result<Vec<String>, String> {
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
    Ok(names)
}

/// A prefix on an object store.
struct RemoteDir {
    store: Arc<dyn ObjectStore>,
    /// The location as configured, ending in `/`.
    url: String,
    prefix: ObjectPath,
    staging: String,
}

impl RemoteDir {
    fn path(&self, name: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/{name}", self.prefix.as_ref().trim_end_matches('/')))
    }

    async fn list(&self, under: &ObjectPath) -> Result<Vec<ObjectPath>, String> {
        self.store
            .list(Some(under))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| format!("cannot list {}: {e}", self.url))
    }
}

#[async_trait]
impl Dir for RemoteDir {
    fn exists(&self) -> bool {
        true
    }

    async fn data_files(&self) -> Result<Vec<String>, String> {
        let mut names: Vec<String> = self
            .list(&self.prefix)
            .await?
            .into_iter()
            .filter_map(|p| p.as_ref().strip_prefix(&format!("{}/", self.prefix.as_ref())).map(String::from))
            .filter(|n| !n.contains('/') && is_data_file(n))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn marker_texts(&self) -> Result<Vec<String>, String> {
        let mut texts = Vec::new();
        for path in self.list(&self.path(LOADS_DIR)).await?.into_iter().filter(|p| p.as_ref().ends_with(".json")) {
            let fail = |e: object_store::Error| format!("cannot read {path}: {e}");
            let bytes = self.store.get(&path).await.map_err(fail)?.bytes().await.map_err(fail)?;
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(texts)
    }

    async fn put_marker(&self, load_id: &str, text: String) -> Result<(), String> {
        let path = self.path(&format!("{LOADS_DIR}/{load_id}.json"));
        self.store.put(&path, text.into()).await.map(|_| ()).map_err(|e| format!("cannot write {path}: {e}"))
    }

    async fn delete(&self, name: &str) -> Result<(), String> {
        match self.store.delete(&self.path(name)).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(format!("cannot delete {name} under {}: {e}", self.url)),
        }
    }

    fn staging(&self) -> String {
        format!("{}{}/", self.url, self.staging)
    }

    fn prepare_staging(&self) -> Result<(), String> {
        Ok(())
    }

    async fn take_staged(&self, load_id: &str) -> Result<Vec<String>, String> {
        let mut staged: Vec<ObjectPath> = self.list(&self.path(&self.staging)).await?;
        staged.retain(|p| p.as_ref().ends_with(".parquet"));
        staged.sort();
        let mut names = Vec::with_capacity(staged.len());
        for (n, from) in staged.iter().enumerate() {
            let name = format!("part-{load_id}-{n:05}.parquet");
            self.store
                .copy(from, &self.path(&name))
                .await
                .map_err(|e| format!("cannot copy {from} into {}: {e}", self.url))?;
            names.push(name);
        }
        self.drop_staging().await;
        Ok(names)
    }

    async fn drop_staging(&self) {
        if let Ok(left) = self.list(&self.path(&self.staging)).await {
            for path in left {
                let _ = self.store.delete(&path).await;
            }
        }
    }

    fn file_location(&self, name: &str) -> String {
        format!("{}{name}", self.url)
    }
}

/// The directory at `location`; `ctx` supplies the object store of a URL.
fn open_dir(location: &str, ctx: &SessionContext) -> Result<Box<dyn Dir>, String> {
    if !location.contains("://") {
        let dir = PathBuf::from(location.trim_end_matches('/'));
        let staging = hidden(&dir, "tmp", std::process::id());
        return Ok(Box::new(LocalDir { dir, staging }));
    }
    let url = format!("{}/", location.trim_end_matches('/'));
    let listing = ListingTableUrl::parse(&url).map_err(|e| df_message(&e))?;
    let store = ctx.runtime_env().object_store(listing.object_store()).map_err(|e| df_message(&e))?;
    let prefix = listing.prefix().clone();
    let staging = format!(".dfpipe-staging-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    Ok(Box::new(RemoteDir { store, url, prefix, staging }))
}

async fn markers(dir: &dyn Dir) -> Result<Vec<MarkerFile>, String> {
    let mut out = Vec::new();
    for text in dir.marker_texts().await? {
        out.push(serde_json::from_str::<MarkerFile>(&text).map_err(|e| format!("a load marker does not read: {e}"))?);
    }
    out.sort_by(|a, b| a.marker.load_id.cmp(&b.marker.load_id));
    Ok(out)
}

/// What the directory at `location` holds of its incremental loads.
pub async fn read_loads(location: &str, ctx: &SessionContext) -> Result<TargetLoads, String> {
    let dir = open_dir(location, ctx)?;
    Ok(TargetLoads {
        exists: dir.exists(),
        has_rows: !dir.data_files().await?.is_empty(),
        markers: markers(dir.as_ref()).await?.into_iter().map(|m| m.marker).collect(),
    })
}

/// Rewrites the markers of the directory at `location` to `updated` (`dfpipe state forget`):
/// each keeps its files and window, with its new state.
pub async fn rewrite_loads(location: &str, ctx: &SessionContext, updated: &[LoadMarker]) -> Result<(), String> {
    let dir = open_dir(location, ctx)?;
    for mut file in markers(dir.as_ref()).await? {
        if let Some(m) = updated.iter().find(|m| m.load_id == file.marker.load_id) {
            file.marker = m.clone();
            let text = serde_json::to_string_pretty(&file).expect("a marker serializes");
            dir.put_marker(&file.marker.load_id, text).await?;
        }
    }
    Ok(())
}

/// Deletes what no committed load owns: data files of loads without a marker (never
/// committed), and files a committed load superseded.
async fn recover(dir: &dyn Dir, committed: &[MarkerFile]) -> Result<(), String> {
    let ids: BTreeSet<&str> = committed.iter().map(|m| m.marker.load_id.as_str()).collect();
    let superseded: BTreeSet<&str> = committed.iter().flat_map(|m| m.supersedes.iter().map(String::as_str)).collect();
    for name in dir.data_files().await? {
        let id = name.trim_start_matches("part-").rsplit_once('-').map_or("", |(id, _)| id);
        if !ids.contains(id) || superseded.contains(name.as_str()) {
            let why = if ids.contains(id) { "superseded by a later load" } else { "its load never committed" };
            tracing::info!("removing {name}: {why}");
            dir.delete(&name).await?;
        }
    }
    Ok(())
}

/// `t` (UTC) as a value of a `data_type` column.
fn instant(
    t: chrono::NaiveDateTime,
    data_type: &datafusion::arrow::datatypes::DataType,
) -> datafusion::error::Result<ScalarValue> {
    ScalarValue::TimestampNanosecond(t.and_utc().timestamp_nanos_opt(), None).cast_to(data_type)
}

fn window_text(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
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
    let session = SessionContext::new_with_state(
        datafusion::execution::SessionStateBuilder::new()
            .with_runtime_env(df.task_ctx().runtime_env())
            .with_default_features()
            .build(),
    );
    let dir = open_dir(location, &session)?;
    let committed = markers(dir.as_ref()).await?;
    if dir.exists() {
        recover(dir.as_ref(), &committed).await?;
    }
    dir.prepare_staging()?;
    let result = stage(&session, dir.as_ref(), &committed, df, compression, extras, counter).await;
    let (rows, marker, supersedes) = match result {
        Ok(done) => done,
        Err(e) => {
            dir.drop_staging().await;
            return Err(e);
        }
    };
    let window = extras.delete.as_ref().map(|r| (window_text(r.start), window_text(r.end)));
    if extras.reset && !location.contains("://") {
        // A full refresh of a local directory: the new directory (its marker inside) replaces
        // the old one whole.
        let local = PathBuf::from(location.trim_end_matches('/'));
        let staging = hidden(&local, "tmp", std::process::id());
        let load_id = marker.load_id.clone();
        let files = move_files(&staging, &staging, &load_id)?;
        sync_tree(&staging)?;
        let fresh = LocalDir { dir: staging.clone(), staging: staging.clone() };
        let text = serde_json::to_string_pretty(&MarkerFile { marker, files, window, supersedes: vec![] })
            .expect("a marker serializes");
        fresh.put_marker(&load_id, text).await?;
        let parent = local.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        swap_into_place(&staging, &local)?;
        return Ok(rows);
    }
    let before = if extras.reset { dir.data_files().await? } else { vec![] };
    let files = dir.take_staged(&marker.load_id).await?;
    crate::util::fault::crash_point("before-marker");
    let load_id = marker.load_id.clone();
    let text = serde_json::to_string_pretty(&MarkerFile { marker, files, window, supersedes: supersedes.clone() })
        .expect("a marker serializes");
    // The commit: the marker in place.
    dir.put_marker(&load_id, text).await?;
    for name in &supersedes {
        let _ = dir.delete(name).await;
    }
    if extras.reset {
        // A full refresh on an object store: what was there before goes now.
        for name in before {
            let _ = dir.delete(&name).await;
        }
        for old in &committed {
            let _ = dir.delete(&format!("{LOADS_DIR}/{}.json", old.marker.load_id)).await;
        }
    }
    Ok(rows)
}

/// Writes the load's rows (and the rewrites of the loads it partly supersedes) into the staging
/// area; builds its marker. Returns the rows, the marker and the superseded files.
async fn stage(
    session: &SessionContext,
    dir: &dyn Dir,
    committed: &[MarkerFile],
    df: DataFrame,
    compression: &str,
    extras: &LoadExtras,
    counter: &RowCounter,
) -> Result<(u64, LoadMarker, Vec<String>), String> {
    let mut options = TableParquetOptions::default();
    options.global.compression = Some(compression.to_string());
    let write_options = || DataFrameWriteOptions::new().with_insert_operation(InsertOp::Append);
    let staging = dir.staging();
    let df = nullable_columns(df)?;
    let rows = written(df.write_parquet(&staging, write_options(), Some(options.clone())).await)?;
    counter.add(rows);
    // Earlier loads inside a restated window are superseded; those overlapping it are rewritten
    // without its rows, into this load.
    let mut supersedes = Vec::new();
    if let (Some(range), false) = (&extras.delete, extras.reset) {
        let present: BTreeSet<String> = dir.data_files().await?.into_iter().collect();
        for old in committed {
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
            for (i, name) in old.files.iter().filter(|n| present.contains(*n)).enumerate() {
                if !inside {
                    let kept = session
                        .read_parquet(dir.file_location(name), ParquetReadOptions::default())
                        .await
                        .and_then(|t| {
                            let c = col(datafusion::common::Column::new_unqualified(range.column.as_str()));
                            let start = lit(instant(range.start, &range.data_type)?);
                            let end = lit(instant(range.end, &range.data_type)?);
                            t.filter(c.clone().lt(start).or(c.clone().gt_eq(end)).or(c.is_null()))
                        })
                        .map_err(|e| df_message(&e))?;
                    let out = format!("{staging}kept-{}-{i}/", old.marker.load_id);
                    let kept = nullable_columns(kept)?;
                    written(kept.write_parquet(&out, write_options(), Some(options.clone())).await)?;
                }
                supersedes.push(name.clone());
            }
        }
    }
    let marker = match &extras.marker {
        Some(build) => build()?,
        None => return Err("an incremental Parquet load without a marker".to_string()),
    };
    Ok((rows, marker, supersedes))
}
