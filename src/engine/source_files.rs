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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::config::Format;
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
    /// Those other files.
    pub skipped: Vec<ObjectMeta>,
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
    let (files, skipped): (Vec<ObjectMeta>, Vec<ObjectMeta>) = all.into_iter().partition(|m| wanted(url, &m.location));
    Ok(Listed { narrowed: !skipped.is_empty(), files, skipped })
}

/// The files of a directory source: those of its `format` by name (`.csv`, `.CSV`, `.tsv`,
/// `.json`, `.ndjson`, `.jsonl`, `.parquet`…, compressed or not). A source reads one kind, one
/// compression, so a directory mixing kinds (`a.csv` beside `b.csv.gz`, `.csv` beside `.tsv`)
/// is refused naming one file of each, where a fixed extension would skip some of them without a
/// word; with `declared` compression, files named for another are refused beside files named
/// for it, and read with it when none is (a name need not say its compression). Files of other
/// formats are skipped with a warning, files that are not data (`README.md`) silently.
pub fn of_format(
    files: Vec<ObjectMeta>,
    format: Format,
    declared: Option<FileCompressionType>,
    url: &ListingTableUrl,
    globbed: bool,
) -> Result<DirectoryFiles, String> {
    let mut files = files;
    files.sort_by(|a, b| a.location.cmp(&b.location));
    let mut kinds: Vec<(Kind, ObjectMeta)> = Vec::new();
    let mut others: Vec<ObjectMeta> = Vec::new();
    let mut kept = Vec::new();
    let mut suffixes = BTreeSet::new();
    for file in files {
        let name = file.location.filename().unwrap_or_default();
        // A file a glob names is of the source's format whatever its name (`part-00000`, `.dat`).
        let named = || {
            globbed.then_some((
                Kind { format, compression: declared.unwrap_or(FileCompressionType::UNCOMPRESSED), tab: false },
                "",
            ))
        };
        match kind_of(name).or_else(named) {
            Some((kind, suffix)) if kind.format == format => {
                suffixes.insert(suffix.to_string());
                if !kinds.iter().any(|(k, _)| *k == kind) {
                    kinds.push((kind, file.clone()));
                }
                kept.push((kind, file));
            }
            Some(_) => others.push(file),
            None => {}
        }
    }
    if let Some(first) = others.first() {
        let example = display(url, &first.location);
        tracing::warn!(
            "{}: {} file(s) of another format are not read (e.g. {example}): this source reads {} files; give them \
             a source of their own",
            url.as_str(),
            others.len(),
            format.name()
        );
    }
    let wanted = match (declared, kinds.as_slice()) {
        (Some(c), _) => kinds.iter().find(|(k, _)| k.compression == c).map(|(k, _)| *k),
        (None, [(only, _)]) => Some(*only),
        (None, _) => None,
    };
    // Two kinds to name: the one wanted (or the first found) and another.
    let pair = match wanted.and_then(|w| kinds.iter().find(|(k, _)| *k == w)) {
        Some(chosen) => kinds.iter().find(|(k, _)| Some(*k) != wanted).map(|odd| (odd, chosen)),
        None => kinds.get(1).map(|second| (&kinds[0], second)),
    };
    if let Some(((odd, odd_file), (kind, file))) = pair {
        return Err(format!(
            "{} ({}) and {} ({}) are {} files of different kinds: a source reads one kind; give each kind a \
             source of its own (e.g. a glob such as `*.csv.gz`), or set `options.extension` to the one to read",
            display(url, &odd_file.location),
            odd.describe(),
            display(url, &file.location),
            kind.describe(),
            format.name(),
        ));
    }
    // A declared compression no file is named for is how they are read (names need not say).
    let kind = match (wanted, kinds.first()) {
        (Some(kind), _) => kind,
        (None, Some((named, _))) => Kind { compression: declared.unwrap_or(named.compression), ..*named },
        (None, None) => Kind { format, compression: declared.unwrap_or(FileCompressionType::UNCOMPRESSED), tab: false },
    };
    Ok(DirectoryFiles {
        files: kept.into_iter().map(|(_, f)| f).collect(),
        compression: kind.compression,
        tab: kind.tab,
        suffixes: suffixes.into_iter().collect(),
    })
}

/// What [`of_format`] found in a directory.
pub struct DirectoryFiles {
    /// The files to read.
    pub files: Vec<ObjectMeta>,
    /// Their compression.
    pub compression: FileCompressionType,
    /// Whether they are tab-separated (`.tsv`).
    pub tab: bool,
    /// The suffixes they end with as spelt (`.csv.gz`, `.CSV.gz`).
    pub suffixes: Vec<String>,
}

impl DirectoryFiles {
    /// The suffix they all end with, when they share one: DataFusion's listing can then leave
    /// the other files out itself.
    pub fn suffix(&self) -> Option<&str> {
        match self.suffixes.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// A data file's kind by its name: format, compression, and for CSV whether it is `.tsv`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Kind {
    format: Format,
    compression: FileCompressionType,
    tab: bool,
}

impl Kind {
    fn describe(&self) -> String {
        let name = match self.compression {
            FileCompressionType::GZIP => "gzip",
            FileCompressionType::BZIP2 => "bzip2",
            FileCompressionType::XZ => "xz",
            FileCompressionType::ZSTD => "zstd",
            _ => "uncompressed",
        };
        if self.tab { format!("{name}, tab-separated") } else { name.to_string() }
    }
}

/// The kind of the file named `name`, and its suffix from the extension on (`.CSV.gz`); None for
/// a file whose name does not say (in a directory, `README.md` or `notes.txt` are not data).
fn kind_of(name: &str) -> Option<(Kind, &str)> {
    let lower = name.to_ascii_lowercase();
    let (base, compression) = [
        (".gz", FileCompressionType::GZIP),
        (".bz2", FileCompressionType::BZIP2),
        (".xz", FileCompressionType::XZ),
        (".zst", FileCompressionType::ZSTD),
    ]
    .iter()
    .find_map(|(suffix, c)| lower.strip_suffix(suffix).map(|b| (b.to_string(), *c)))
    .unwrap_or((lower.clone(), FileCompressionType::UNCOMPRESSED));
    let ext = &base[base.rfind('.')? + 1..];
    let (format, tab) = match ext {
        "parquet" | "parq" | "pq" => (Format::Parquet, false),
        "csv" => (Format::Csv, false),
        "tsv" => (Format::Csv, true),
        "json" | "ndjson" | "jsonl" => (Format::Json, false),
        _ => return None,
    };
    let compression = if format == Format::Parquet { FileCompressionType::UNCOMPRESSED } else { compression };
    // ASCII lower-casing keeps byte offsets: the suffix as the name spells it.
    let suffix = &name[base.rfind('.')?..];
    Some((Kind { format, compression, tab }, suffix))
}

/// A source's hive partition columns (see [`partitions`]).
#[derive(Debug)]
pub struct Partitions {
    /// The columns, in folder order.
    pub columns: Vec<String>,
    /// Those whose value some folder holds escaped or as Hive's NULL (`city=New%20York`,
    /// `__HIVE_DEFAULT_PARTITION__`): they are read through [`crate::engine::hive_value`].
    pub escaped: BTreeSet<String>,
}

/// The hive partitions of `files` under `url` (`year=2024/…`): the `key=value` folders
/// that come first between the source's path and each file, which every file must have alike (DataFusion
/// would not read a file without them). DataFusion's own inference looks at ten files of its
/// listing, hidden files and notes among them; this looks at every file read, and only those.
pub fn partitions(url: &ListingTableUrl, files: &[ObjectMeta]) -> Result<Partitions, String> {
    let described = |keys: &[String]| match keys {
        [] => "no partition folders".to_string(),
        keys => format!("partition folders `{}`", keys.join("/")),
    };
    let mut escaped = BTreeSet::new();
    let mut first: Option<(&ObjectMeta, Vec<String>)> = None;
    for file in files {
        let folders = partition_folders(url, file);
        escaped.extend(
            folders
                .iter()
                .filter(|(_, value)| crate::engine::hive_value::needs_unescaping(value))
                .map(|(key, _)| key.clone()),
        );
        let keys: Vec<String> = folders.into_iter().map(|(key, _)| key).collect();
        match &first {
            None => first = Some((file, keys)),
            Some((other, expected)) if *expected != keys => {
                return Err(format!(
                    "{} has {} and {} has {}: every file of a source must sit in the same `key=value` folders \
                     (their values become columns); move them, or give them sources of their own",
                    display(url, &other.location),
                    described(expected),
                    display(url, &file.location),
                    described(&keys)
                ));
            }
            Some(_) => {}
        }
    }
    Ok(Partitions { columns: first.map(|(_, keys)| keys).unwrap_or_default(), escaped })
}

/// The `key=value` folders that come first between `url` and `file`, as (key, value). Leading
/// ones only: DataFusion's scan reads partition values from the first folders, and would drop a
/// file whose first folder is not one (`2024/year=2024/a.csv`).
fn partition_folders(url: &ListingTableUrl, file: &ObjectMeta) -> Vec<(String, String)> {
    let segments: Vec<&str> = url.strip_prefix(&file.location).map(|s| s.collect()).unwrap_or_default();
    let folders = &segments[..segments.len().saturating_sub(1)];
    folders.iter().map_while(|s| s.split_once('=').map(|(key, value)| (key.to_string(), value.to_string()))).collect()
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

/// Checks that every CSV file has the first file's header (names and order), and that the
/// header names each column once; `csv` is the source's format.
pub async fn check_same_header(
    state: &dyn Session,
    store: &Arc<dyn ObjectStore>,
    csv: &CsvFormat,
    url: &ListingTableUrl,
    files: &[ObjectMeta],
) -> Result<(), String> {
    let headers: Vec<_> = futures::stream::iter(files)
        .map(|file| header_of(state, store, csv, file))
        .buffered(FILES_IN_FLIGHT)
        .collect()
        .await;
    let mut first: Option<(usize, Vec<String>)> = None;
    for (i, columns) in headers.into_iter().enumerate() {
        let file = display(url, &files[i].location);
        let columns = columns.map_err(|e| format!("cannot read the header of {file}: {}", df_message(&e)))?;
        match &first {
            None => {
                check_header_names(&columns, &file)?;
                first = Some((i, columns))
            }
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

/// The column names of `file`'s header, as written (DataFusion's inference of one file merges
/// two columns of one name into one).
async fn header_of(
    state: &dyn Session,
    store: &Arc<dyn ObjectStore>,
    csv: &CsvFormat,
    file: &ObjectMeta,
) -> datafusion::error::Result<Vec<String>> {
    let bytes = store.get(&file.location).await?.into_stream().map_err(|e| DataFusionError::ObjectStore(Box::new(e)));
    let chunks = csv.read_to_delimited_chunks_from_stream(bytes.boxed()).await;
    let (schema, _) = csv.infer_schema_from_stream(state, 0, chunks).await?;
    Ok(schema.fields().iter().map(|f| f.name().clone()).collect())
}

/// Refuses a header with a column it does not name, or a name it gives twice: the columns
/// could not be told apart by name.
fn check_header_names(columns: &[String], file: &str) -> Result<(), String> {
    let fix = "fix the header, or set `header: false` on the source and name the columns in a model (they are read \
               as column_1, column_2, …)";
    if let Some(at) = columns.iter().position(|c| c.trim().is_empty()) {
        return Err(format!("column {} of the header of {file} has no name: {fix}", at + 1));
    }
    for (j, name) in columns.iter().enumerate() {
        if let Some(i) = columns[..j].iter().position(|c| c == name) {
            return Err(format!("the header of {file} names columns {} and {} both `{name}`: {fix}", i + 1, j + 1));
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
                    // Parquet files carry their own types: a `schema:` does not apply to them.
                    let advice = if format.get_ext().ends_with("parquet") {
                        "split the files into sources of their own and CAST the column to one type in a model \
                         that unions them, or rewrite the files with one type"
                    } else {
                        "give the column one type in the source's `schema:`, or split the files into sources \
                         of their own"
                    };
                    return Err(format!(
                        "{file} does not match {earlier}: {}; {advice}",
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
