//! Parquet target through DataFusion's own writer, streamed batch by batch.
//!
//! `replace`, local: the new file (or directory) is written beside the old one under a hidden
//! name, synced to disk, and swapped in only when complete, so a failed or killed run leaves
//! the previous output. A file replaces a file in one rename. A directory is swapped by one
//! atomic exchange (`renameat2(RENAME_EXCHANGE)`, Linux); where the file system lacks it, the
//! old directory is moved aside and the new one in, and if a crash falls between those two
//! renames the next write puts the old directory back first. Leftovers of dead processes
//! (`.NAME.dfpipe-tmp-PID`, `.NAME.dfpipe-old-PID`) are cleaned at the next write.
//!
//! `replace`, object store: a single object is put whole. A directory (prefix) gets its new
//! files under fresh names first; only when every one exists are the objects that were there
//! before deleted (those of earlier, crashed runs included), so a rerun never duplicates rows.
//! While the new files are being written, a reader listing the prefix sees the old files and
//! some new ones: object stores have no rename, so this window cannot be closed without a table
//! format. A failed write deletes the new files it made.
//!
//! `append` (directories only), local: the new files are written into a hidden directory beside
//! the target (`.NAME.dfpipe-add-PID`) and synced; the append commits when a marker file is
//! written and synced there, and its files then move into the target under the unique names
//! DataFusion gave them. A failed or killed write adds nothing to the target, and its staging is
//! deleted by the next write; a crash after the commit, with files left to move, is finished by
//! the next write (before it writes anything), so an append is never half applied.
//!
//! `append`, object store: the new files are written in place (no rename there); a failed write
//! deletes the ones it made, as a failed `replace` does. A process killed mid-write leaves the
//! files it finished (an incremental append's marker objects, [`super::parquet_increment`], say
//! which loads count; a plain append has none).
//!
//! Every column is written nullable, whatever the model's plan says ([`super::nullable`]): the
//! files a directory gains over time must read together as one source, and a column that a later
//! load added is NULL in the files written before it. A literal's NOT NULL is not a contract.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::DataFrame;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::nullable::nullable_columns;
use crate::config::Mode;
use crate::error::df_message;

/// Writes `df` to `location`; returns the number of rows written. The writer takes the
/// session's `datafusion.execution.parquet.*` options, the target's compression, and
/// `row_group_rows` (a memory limit's cap) unless the project set the row group size itself.
pub async fn write(
    df: DataFrame,
    location: &str,
    single_file: bool,
    compression: &str,
    mode: Mode,
    row_group_rows: Option<u64>,
) -> Result<u64, String> {
    let df = nullable_columns(df)?;
    let session = df.task_ctx().session_config().options().execution.parquet.clone();
    let mut options = TableParquetOptions { global: session, ..TableParquetOptions::default() };
    options.global.compression = Some(compression.to_string());
    if let Some(rows) = row_group_rows
        && options.global.max_row_group_size == TableParquetOptions::default().global.max_row_group_size
    {
        options.global.max_row_group_size = rows as usize;
    }
    // Always an append into a fresh location: replacing is done here.
    let write_options =
        DataFrameWriteOptions::new().with_single_file_output(single_file).with_insert_operation(InsertOp::Append);
    let local = !location.contains("://");
    if !local {
        if !single_file {
            return write_prefix(df, location, mode, write_options, options).await;
        }
        return written(df.write_parquet(location, write_options, Some(options)).await);
    }
    if mode == Mode::Append {
        let (target, staging, rows) = write_aside(df, location, "add", false, write_options, options).await?;
        commit_append(&staging, &target)?;
        return Ok(rows);
    }
    let (target, staging, rows) = write_aside(df, location, "tmp", single_file, write_options, options).await?;
    swap_into_place(&staging, &target)?;
    Ok(rows)
}

/// Writes `df` beside the local output `location` under a hidden `kind` name (a directory unless
/// `single_file`), once what dead runs left there is cleaned, and syncs it to disk; the target,
/// the staging path and the rows written. A failed write removes what it staged.
async fn write_aside(
    df: DataFrame,
    location: &str,
    kind: &str,
    single_file: bool,
    write_options: DataFrameWriteOptions,
    options: TableParquetOptions,
) -> Result<(PathBuf, PathBuf, u64), String> {
    let target = PathBuf::from(location.trim_end_matches('/'));
    let parent = target.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    recover(&target)?;
    let staging = hidden(&target, kind, std::process::id());
    remove(&staging);
    let mut staging_location = staging.to_string_lossy().into_owned();
    if !single_file {
        std::fs::create_dir_all(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        staging_location.push('/');
    }
    match written(df.write_parquet(&staging_location, write_options, Some(options)).await)
        .and_then(|rows| sync_tree(&staging).map(|()| rows))
    {
        Ok(rows) => Ok((target, staging, rows)),
        Err(e) => {
            remove(&staging);
            Err(e)
        }
    }
}

/// The file whose presence in an append's staging directory commits the append.
const APPEND_COMMITTED: &str = ".dfpipe-committed";

/// Commits the append staged in `staging` (its marker written and synced there) and moves its
/// files into `target` (module doc).
fn commit_append(staging: &Path, target: &Path) -> Result<(), String> {
    crate::util::fault::crash_point("append-staged");
    std::fs::File::create(staging.join(APPEND_COMMITTED))
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot commit the append in {}: {e}", staging.display()))?;
    sync_dir(staging)?;
    move_in(staging, target)
}

/// Moves the files of a committed append from `staging` into `target`, then deletes `staging`.
fn move_in(staging: &Path, target: &Path) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(staging)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name() != APPEND_COMMITTED)
        .map(|e| e.into_path())
        .collect();
    files.sort();
    let mut dirs = BTreeSet::from([target.to_path_buf()]);
    for (n, path) in files.iter().enumerate() {
        let to = target.join(path.strip_prefix(staging).expect("walked under staging"));
        if let Some(dir) = to.parent().filter(|d| !dirs.contains(*d)) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            dirs.insert(dir.to_path_buf());
        }
        std::fs::rename(path, &to)
            .map_err(|e| format!("cannot move {} into {}: {e}", path.display(), target.display()))?;
        if n == 0 {
            crate::util::fault::crash_point("append-moving");
        }
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }
    remove(staging);
    Ok(())
}

pub(super) fn written(
    result: datafusion::error::Result<Vec<datafusion::arrow::array::RecordBatch>>,
) -> Result<u64, String> {
    let batches = result.map_err(|e| df_message(&e))?;
    Ok(batches
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::UInt64Array>())
        .map(|c| c.iter().flatten().sum::<u64>())
        .sum())
}

/// `.NAME.dfpipe-KIND-PID` beside `target`.
pub(super) fn hidden(target: &Path, kind: &str, pid: u32) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.dfpipe-{kind}-{pid}"))
}

/// Cleans what dead processes left beside `target`: a staging copy is deleted; a moved-aside
/// old directory is put back when the target is missing (a crash between the two renames of a
/// swap), else deleted; an append's staging is moved in when the append had committed, else
/// deleted.
fn recover(target: &Path) -> Result<(), String> {
    let Some(parent) = target.parent() else { return Ok(()) };
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let Ok(entries) = std::fs::read_dir(parent) else { return Ok(()) };
    let mut leftovers: Vec<(PathBuf, String)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let rest = file.strip_prefix(&format!(".{name}.dfpipe-"))?;
            let (kind, pid) = rest.split_once('-')?;
            let pid: u32 = pid.parse().ok()?;
            (!alive(pid) && matches!(kind, "tmp" | "old" | "add")).then(|| (e.path(), kind.to_string()))
        })
        .collect();
    // An old directory goes back before an append is finished into it.
    leftovers.sort_by_key(|(path, kind)| (kind == "add", path.clone()));
    for (path, kind) in leftovers {
        if kind == "add" && path.join(APPEND_COMMITTED).exists() {
            tracing::warn!(
                "{}: a crashed run committed an append and did not finish moving its files in; finishing it",
                target.display()
            );
            move_in(&path, target)?;
        } else if kind == "old" && !target.exists() {
            tracing::warn!(
                "{}: a crashed run left the previous output aside as {}; putting it back",
                target.display(),
                path.display()
            );
            std::fs::rename(&path, target).map_err(|e| format!("cannot restore {}: {e}", target.display()))?;
            sync_dir(parent)?;
        } else {
            tracing::info!("removing {}, left by a process that no longer runs", path.display());
            remove(&path);
        }
    }
    Ok(())
}

/// Whether process `pid` is running.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // Signal 0 checks existence and permission without sending anything.
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill(2) with signal 0 has no effect on the target; it only reports.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Puts `staging` where `target` is. A file replaces a file in one rename; a directory is
/// exchanged atomically where the system can, else moved aside and replaced (see the module
/// docs for the recovery).
pub(super) fn swap_into_place(staging: &Path, target: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot move the new output into {}: {e}", target.display());
    let parent = target.parent().unwrap_or(Path::new("."));
    if target.is_dir() {
        match exchange(staging, target) {
            Ok(()) => {
                sync_dir(parent)?;
                remove(staging);
                return Ok(());
            }
            Err(e) => tracing::debug!("atomic exchange unavailable ({e}); swapping by two renames"),
        }
        let old = hidden(target, "old", std::process::id());
        std::fs::rename(target, &old).map_err(fail)?;
        if let Err(e) = std::fs::rename(staging, target) {
            let _ = std::fs::rename(&old, target);
            return Err(fail(e));
        }
        sync_dir(parent)?;
        remove(&old);
        Ok(())
    } else {
        std::fs::rename(staging, target).map_err(fail)?;
        sync_dir(parent)
    }
}

/// Atomically exchanges two paths (Linux `renameat2` with `RENAME_EXCHANGE`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like rename(2) does.
    let result =
        unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
    if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Flushes every file under `path` (or the file itself) and the directories holding them.
pub(super) fn sync_tree(path: &Path) -> Result<(), String> {
    let fail = |p: &Path, e: std::io::Error| format!("cannot sync {} to disk: {e}", p.display());
    for entry in walkdir::WalkDir::new(path).contents_first(true) {
        let entry = entry.map_err(|e| format!("cannot sync {} to disk: {e}", path.display()))?;
        std::fs::File::open(entry.path()).and_then(|f| f.sync_all()).map_err(|e| fail(entry.path(), e))?;
    }
    Ok(())
}

/// Flushes a directory's entries (renames in it) to disk.
pub(super) fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

pub(super) fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else if path.exists() {
        let _ = std::fs::remove_file(path);
    }
}

/// Writes an object-store prefix: the new files, then, for `replace`, the deletion of what was
/// there before (see the module docs); on failure, the deletion of the new files instead.
async fn write_prefix(
    df: DataFrame,
    location: &str,
    mode: Mode,
    write_options: DataFrameWriteOptions,
    options: TableParquetOptions,
) -> Result<u64, String> {
    let url = ListingTableUrl::parse(location).map_err(|e| df_message(&e))?;
    let store = df.task_ctx().runtime_env().object_store(url.object_store()).map_err(|e| df_message(&e))?;
    let prefix = url.prefix().clone();
    let before = list(&store, &prefix).await?;
    let outcome = written(df.write_parquet(location, write_options, Some(options)).await);
    if outcome.is_ok() && mode != Mode::Replace {
        return outcome;
    }
    let after = list(&store, &prefix).await?;
    let (keep, delete): (BTreeSet<_>, Vec<_>) = match &outcome {
        Ok(_) => (after.difference(&before).cloned().collect(), before.into_iter().collect()),
        Err(_) => (before.clone(), after.difference(&before).cloned().collect()),
    };
    for path in delete.iter().filter(|p| !keep.contains(*p)) {
        store.delete(path).await.map_err(|e| format!("cannot delete {path} after writing {location}: {e}"))?;
    }
    outcome
}

/// Every object under `prefix`.
async fn list(store: &Arc<dyn ObjectStore>, prefix: &ObjectPath) -> Result<BTreeSet<ObjectPath>, String> {
    store
        .list(Some(prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| format!("cannot list {prefix}: {e}"))
}
