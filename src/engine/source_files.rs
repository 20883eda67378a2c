//! Which files a source reads, and whether they read as one table.
//!
//! A directory is read with its subdirectories (hive-style `key=value` folders become
//! columns); files and folders whose names start with `.` or `_` (`_SUCCESS`, `_temporary/`,
//! `.part.crc`) are skipped. A glob follows the shell's rules: `*` and `?` stay within one path
//! segment, `**` crosses them (`data/*.csv` is the top level, `data/**/*.csv` every level).
//!
//! DataFusion reads a CSV source's columns by position, so files whose headers differ (the
//! same columns in another order) would put values under the wrong names: that is refused,
//! naming both files. When DataFusion cannot merge the files' schemas, the file that breaks
//! the merge is named.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::ListingTableUrl;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore};

use crate::error::df_message;

/// Files checked at once for their header or schema.
const FILES_IN_FLIGHT: usize = 8;

/// The files of a source.
pub struct Listed {
    /// The files read, in listing order.
    pub files: Vec<ObjectMeta>,
    /// DataFusion's own listing of the same location holds more files (hidden ones, or ones a
    /// glob's `*` matches only across folders): the table must be narrowed to `files`.
    pub narrowed: bool,
}

/// Lists the files of `url` with `extension` (empty: any), as described in the module doc.
pub async fn list(
    state: &dyn Session,
    store: &dyn ObjectStore,
    url: &ListingTableUrl,
    extension: &str,
) -> Result<Listed, String> {
    let all: Vec<ObjectMeta> = url
        .list_all_files(state, store, extension)
        .await
        .map_err(|e| df_message(&e))?
        .try_collect()
        .await
        .map_err(|e| df_message(&e))?;
    let total = all.len();
    let files: Vec<ObjectMeta> = all.into_iter().filter(|m| wanted(url, &m.location)).collect();
    Ok(Listed { narrowed: files.len() != total, files })
}

/// Whether the file at `location` (under `url`) is one the source reads.
fn wanted(url: &ListingTableUrl, location: &object_store::path::Path) -> bool {
    let Some(segments) = url.strip_prefix(location) else { return false };
    let segments: Vec<&str> = segments.collect();
    match url.get_glob() {
        Some(glob) => {
            // As DataFusion does, hive folders (`key=value`) are not part of what a glob matches.
            let rest: Vec<&str> = segments.into_iter().filter(|s| !s.contains('=')).collect();
            let options = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
            glob.matches_with(&rest.join("/"), options)
        }
        None => !segments.iter().any(|s| s.starts_with('.') || s.starts_with('_')),
    }
}

/// How a file is shown in messages: a local path, or the URL of the file in its store.
pub fn display(url: &ListingTableUrl, location: &object_store::path::Path) -> String {
    match url.scheme() {
        "file" => format!("/{location}"),
        _ => format!("{}{location}", url.object_store().as_str()),
    }
}

/// Each file's columns as `format` reads them on its own, in listing order.
async fn schemas_by_file(
    state: &dyn Session,
    store: &Arc<dyn ObjectStore>,
    format: &Arc<dyn FileFormat>,
    files: &[ObjectMeta],
) -> Vec<datafusion::error::Result<SchemaRef>> {
    futures::stream::iter(files.iter().cloned())
        .map(|file| async move { format.infer_schema(state, store, std::slice::from_ref(&file)).await })
        .buffered(FILES_IN_FLIGHT)
        .collect()
        .await
}

/// Checks that every CSV file has the first file's header (names and order); `header_only`
/// reads the header and no rows.
pub async fn check_same_header(
    state: &dyn Session,
    store: &Arc<dyn ObjectStore>,
    header_only: &Arc<dyn FileFormat>,
    url: &ListingTableUrl,
    files: &[ObjectMeta],
) -> Result<(), String> {
    if files.len() < 2 {
        return Ok(());
    }
    let names = |s: &Schema| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    let schemas = schemas_by_file(state, store, header_only, files).await;
    let mut first: Option<(usize, Vec<String>)> = None;
    for (i, schema) in schemas.into_iter().enumerate() {
        let file = display(url, &files[i].location);
        let schema = schema.map_err(|e| format!("cannot read the header of {file}: {}", df_message(&e)))?;
        let columns = names(&schema);
        match &first {
            None => first = Some((i, columns)),
            Some((j, expected)) if *expected != columns => {
                return Err(format!(
                    "its files do not share one header: {} has `{}`, {file} has `{}`. A CSV source's columns \
                     are read by position, so each of its files must have the same columns in the same order: \
                     fix the header, or give the files sources of their own and combine them by name in a model",
                    display(url, &files[*j].location),
                    expected.join(", "),
                    columns.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// After DataFusion could not merge the files' schemas: the files' schemas read one by one,
/// the columns in `declared` (the source's `schema:`) taking their declared type, merged — or
/// the first file whose schema does not merge with the files before it, and why.
pub async fn merge_by_file(
    state: &dyn Session,
    store: &Arc<dyn ObjectStore>,
    format: &Arc<dyn FileFormat>,
    url: &ListingTableUrl,
    files: &[ObjectMeta],
    declared: &BTreeMap<String, DataType>,
) -> std::result::Result<Schema, String> {
    let mut merged: Option<(Schema, usize)> = None;
    for (i, schema) in schemas_by_file(state, store, format, files).await.into_iter().enumerate() {
        let file = display(url, &files[i].location);
        let schema = match schema {
            Ok(s) => s,
            Err(e) => return Err(format!("{file}: {}", df_message(&e))),
        };
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| match declared.get(f.name()) {
                Some(data_type) => Field::new(f.name(), data_type.clone(), true),
                None => f.as_ref().clone(),
            })
            .collect();
        let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
        merged = match merged {
            None => Some((schema, i)),
            Some((before, first)) => match Schema::try_merge([before, schema]) {
                Ok(m) => Some((m, first)),
                Err(e) => {
                    let earlier = if i - first == 1 {
                        display(url, &files[first].location)
                    } else {
                        format!("the {} files before it (from {})", i - first, display(url, &files[first].location))
                    };
                    return Err(format!(
                        "{file} does not match {earlier}: {}; give the column one type in the source's \
                         `schema:`, or split the files into sources of their own",
                        df_message(&datafusion::error::DataFusionError::from(e))
                    ));
                }
            },
        };
    }
    Ok(merged.map(|(schema, _)| schema).unwrap_or_else(Schema::empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted_at(location: &str, file: &str) -> bool {
        let url = ListingTableUrl::parse(location).unwrap();
        wanted(&url, &object_store::path::Path::from(file))
    }

    #[test]
    fn directories_skip_hidden_files_and_folders_at_any_depth() {
        assert!(wanted_at("/d/", "d/a.csv"));
        assert!(wanted_at("/d/", "d/2024/01/a.csv"));
        assert!(wanted_at("/d/", "d/year=2024/a.csv"));
        assert!(!wanted_at("/d/", "d/_SUCCESS"));
        assert!(!wanted_at("/d/", "d/_temporary/0/a.csv"));
        assert!(!wanted_at("/d/", "d/2024/.a.csv.crc"));
    }

    #[test]
    fn globs_follow_the_shell_star_within_a_folder_double_star_across() {
        assert!(wanted_at("/d/*.csv", "d/a.csv"));
        assert!(!wanted_at("/d/*.csv", "d/2024/a.csv"));
        assert!(wanted_at("/d/**/*.csv", "d/2024/01/a.csv"));
        assert!(wanted_at("/d/**/*.csv", "d/a.csv"));
        assert!(wanted_at("/d/*/*/*.csv", "d/2024/01/a.csv"));
        assert!(!wanted_at("/d/*/*/*.csv", "d/2024/a.csv"));
        assert!(wanted_at("/d/2024/0[12]/*.csv", "d/2024/02/b.csv"));
        // Hive folders are not part of the match, as in DataFusion.
        assert!(wanted_at("/d/*.csv", "d/year=2024/a.csv"));
    }
}
