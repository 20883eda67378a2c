//! Parquet target through DataFusion's own writer, streamed batch by batch.
//!
//! Local replaces are atomic from a reader's point of view: the new file (or directory) is
//! written beside the old one under a hidden temporary name and renamed over it only when
//! complete, so a failed run leaves the previous output untouched. `append` (directories only)
//! adds new files with unique names. Object-store outputs are written in place: a single object
//! appears whole or not at all.

use std::path::{Path, PathBuf};

use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::DataFrame;

use crate::config::Mode;
use crate::error::df_message;

/// Writes `df` to `location`; returns the number of rows written.
pub async fn write(
    df: DataFrame,
    location: &str,
    single_file: bool,
    compression: &str,
    mode: Mode,
) -> Result<u64, String> {
    let mut options = TableParquetOptions::default();
    options.global.compression = Some(compression.to_string());
    // Always an append into a fresh location: replacing is done here, by renaming.
    let write_options =
        DataFrameWriteOptions::new().with_single_file_output(single_file).with_insert_operation(InsertOp::Append);
    let local = !location.contains("://");
    if !local || mode == Mode::Append {
        if local {
            std::fs::create_dir_all(location).map_err(|e| format!("cannot create {location}: {e}"))?;
        }
        return written(df.write_parquet(location, write_options, Some(options)).await);
    }

    let target = PathBuf::from(location.trim_end_matches('/'));
    let parent = target.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = parent.join(format!(".{name}.dfpipe-tmp-{}", std::process::id()));
    remove(&staging);
    let mut staging_location = staging.to_string_lossy().into_owned();
    if !single_file {
        std::fs::create_dir_all(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        staging_location.push('/');
    }
    let rows = match written(df.write_parquet(&staging_location, write_options, Some(options)).await) {
        Ok(rows) => rows,
        Err(e) => {
            remove(&staging);
            return Err(e);
        }
    };
    swap_into_place(&staging, &target)?;
    Ok(rows)
}

fn written(result: datafusion::error::Result<Vec<datafusion::arrow::array::RecordBatch>>) -> Result<u64, String> {
    let batches = result.map_err(|e| df_message(&e))?;
    Ok(batches
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::UInt64Array>())
        .map(|c| c.iter().flatten().sum::<u64>())
        .sum())
}

/// Renames `staging` to `target`. A file replaces a file in one rename; a directory is moved
/// aside first, since a rename cannot replace a non-empty directory.
fn swap_into_place(staging: &Path, target: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot move the new output into {}: {e}", target.display());
    if target.is_dir() {
        let old = target.with_file_name(format!(
            ".{}.dfpipe-old-{}",
            target.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        std::fs::rename(target, &old).map_err(fail)?;
        if let Err(e) = std::fs::rename(staging, target) {
            let _ = std::fs::rename(&old, target);
            return Err(fail(e));
        }
        remove(&old);
        Ok(())
    } else {
        std::fs::rename(staging, target).map_err(fail)
    }
}

fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else if path.exists() {
        let _ = std::fs::remove_file(path);
    }
}
