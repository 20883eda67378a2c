//! How much decoded (in-memory Arrow) data a target's plan reads, without reading the data.
//!
//! The physical plan names every file scan with its files (after partition pruning) and the
//! columns it reads (after projection pushdown). Parquet: the footers, fetched by ranged reads,
//! give rows and per-column sizes — fixed-width columns count `rows × width`, byte arrays their
//! unencoded size when the writer recorded it, else the uncompressed page size. CSV and JSON: the
//! first MiB of the first file is decoded and the bytes-per-byte ratio scales the total size.

use std::any::Any;
use std::collections::HashSet;
use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::datasource::physical_plan::{CsvSource, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::util::fmt::{group_digits, human_bytes};

/// Bytes sampled from a CSV or JSON file.
const SAMPLE_BYTES: u64 = 1 << 20;

/// Parquet footers read at once.
const FOOTERS_IN_FLIGHT: usize = 16;

/// The estimate for one target: the sum over its scans.
#[derive(Debug, Clone, Default)]
pub struct Estimate {
    /// Decoded bytes of all scans.
    pub bytes: u64,
    /// One entry per file scan in the plan.
    pub scans: Vec<ScanEstimate>,
    /// What else the plan reads whose size nothing tells before it runs (a generated table:
    /// `range`, `generate_series`): the estimate is then a floor, not a figure.
    pub unknown: Vec<String>,
}

/// The estimate for one file scan.
#[derive(Debug, Clone)]
pub struct ScanEstimate {
    /// `parquet`, `csv` or `json`.
    pub format: String,
    /// The directory or file scanned (the first file's parent when several).
    pub location: String,
    /// Files read.
    pub files: usize,
    /// Their total size.
    pub file_bytes: u64,
    /// Rows, when known exactly (Parquet footers).
    pub rows: Option<u64>,
    /// Decoded bytes of the columns read.
    pub bytes: u64,
    /// The columns read.
    pub columns: Vec<String>,
    /// How the figure was obtained.
    pub method: String,
}

impl Estimate {
    /// Lines for `dfpipe plan`.
    pub fn describe(&self) -> Vec<String> {
        let unknown = match self.unknown.is_empty() {
            true => None,
            false => Some(format!("  and {}, whose size is unknown before it runs", self.unknown.join(", "))),
        };
        if self.scans.is_empty() {
            let what = if unknown.is_some() { "no files" } else { "no files, nor data of unknown size" };
            return vec![format!("estimate: 0 B (the plan reads {what})")].into_iter().chain(unknown).collect();
        }
        let mut lines =
            vec![format!("estimate: {} decoded, from {} file scan(s)", human_bytes(self.bytes), self.scans.len())];
        for scan in &self.scans {
            let rows = scan.rows.map_or_else(String::new, |r| format!(", {} rows", group_digits(r)));
            lines.push(format!(
                "  {} {} ({} file(s), {} on disk{rows}): {} decoded in {} column(s) — {}",
                scan.format,
                scan.location,
                scan.files,
                human_bytes(scan.file_bytes),
                human_bytes(scan.bytes),
                scan.columns.len(),
                scan.method
            ));
        }
        lines.extend(unknown);
        lines
    }
}

/// Estimates the decoded bytes `plan` reads.
pub async fn estimate(ctx: &SessionContext, plan: &Arc<dyn ExecutionPlan>) -> Result<Estimate, String> {
    let mut scans = Vec::new();
    collect_scans(plan, &mut scans);
    let mut estimate = Estimate::default();
    unknown_leaves(plan, &mut estimate.unknown);
    for scan in scans {
        let store = ctx
            .runtime_env()
            .object_store(&scan.object_store_url)
            .map_err(|e| format!("estimating {}: {e}", scan.object_store_url))?;
        let scan = estimate_scan(&scan, store).await?;
        estimate.bytes += scan.bytes;
        estimate.scans.push(scan);
    }
    Ok(estimate)
}

/// Every file scan in the plan.
pub(crate) fn collect_scans(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<FileScanConfig>) {
    let plan_any: &dyn Any = plan.as_ref();
    if let Some(exec) = plan_any.downcast_ref::<DataSourceExec>()
        && let Some(config) = (exec.data_source().as_ref() as &dyn Any).downcast_ref::<FileScanConfig>()
    {
        out.push(config.clone());
    }
    for child in plan.children() {
        collect_scans(child, out);
    }
}

/// The leaves of `plan` that read data of a size unknown before it runs: not a file scan, not
/// in-memory rows (whose statistics are exact), not a single placeholder row.
fn unknown_leaves(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<String>) {
    use datafusion::common::stats::Precision;
    let children = plan.children();
    if children.is_empty() {
        let plan_any: &dyn Any = plan.as_ref();
        let file_scan = plan_any
            .downcast_ref::<DataSourceExec>()
            .is_some_and(|e| (e.data_source().as_ref() as &dyn Any).is::<FileScanConfig>());
        let sized = plan
            .partition_statistics(None)
            .is_ok_and(|s| !matches!(s.num_rows, Precision::Absent) || !matches!(s.total_byte_size, Precision::Absent));
        let placeholder = matches!(plan.name(), "PlaceholderRowExec" | "EmptyExec");
        if !file_scan && !sized && !placeholder {
            let what = match plan.name() {
                "LazyMemoryExec" => "a generated table (range, generate_series)".to_string(),
                other => other.to_string(),
            };
            if !out.contains(&what) {
                out.push(what);
            }
        }
    }
    for child in children {
        unknown_leaves(child, out);
    }
}

async fn estimate_scan(scan: &FileScanConfig, store: Arc<dyn ObjectStore>) -> Result<ScanEstimate, String> {
    // A large file may be split into byte ranges over several partitions: count it once.
    let mut seen = HashSet::new();
    let files: Vec<_> = scan
        .file_groups
        .iter()
        .flat_map(|g| g.files().iter().map(|f| f.object_meta.clone()))
        .filter(|meta| seen.insert(meta.location.clone()))
        .collect();
    let file_schema = scan.file_schema().clone();
    // Column indices past the file schema's are partition columns, which are not read.
    let projection: Vec<usize> = match scan.file_source().projection() {
        Some(p) => p.column_indices().into_iter().filter(|&i| i < file_schema.fields().len()).collect(),
        None => (0..file_schema.fields().len()).collect(),
    };
    let columns: Vec<String> = projection.iter().map(|&i| file_schema.field(i).name().clone()).collect();
    let file_bytes: u64 = files.iter().map(|f| f.size).sum();
    let root = scan.object_store_url.as_str();
    let location = match files.as_slice() {
        [] => "(no files)".to_string(),
        [one] => format!("{root}{}", one.location),
        [first, ..] => format!("{root}{}/…", first.location.as_ref().rsplit_once('/').map_or("", |(dir, _)| dir)),
    };
    let format = scan.file_source().file_type().to_string();
    let mut estimate = ScanEstimate {
        format: format.clone(),
        location,
        files: files.len(),
        file_bytes,
        rows: None,
        bytes: 0,
        columns,
        method: String::new(),
    };
    if files.is_empty() {
        estimate.method = "no files".into();
        return Ok(estimate);
    }
    if format == "parquet" {
        let wanted: HashSet<&str> = estimate.columns.iter().map(String::as_str).collect();
        let footers: Vec<(u64, u64)> = futures::stream::iter(files.iter().cloned())
            .map(|meta| {
                let store = store.clone();
                let wanted = &wanted;
                let schema = &file_schema;
                async move {
                    let mut reader = ParquetObjectReader::new(store, meta.location.clone()).with_file_size(meta.size);
                    let footer = reader
                        .get_metadata(None)
                        .await
                        .map_err(|e| format!("reading the Parquet footer of {}: {e}", meta.location))?;
                    Ok::<_, String>(parquet_decoded(&footer, schema, wanted))
                }
            })
            .buffer_unordered(FOOTERS_IN_FLIGHT)
            .try_collect()
            .await?;
        estimate.rows = Some(footers.iter().map(|(rows, _)| rows).sum());
        estimate.bytes = footers.iter().map(|(_, bytes)| bytes).sum();
        estimate.method = format!("from {} Parquet footer(s)", footers.len());
        return Ok(estimate);
    }
    // CSV or JSON: decode a sample of the first file that holds rows, and scale. Empty and
    // header-only parts (common in Spark output) are skipped.
    let compressed = scan.file_compression_type.is_compressed();
    let non_empty: Vec<_> = files.iter().filter(|f| f.size > 0).collect();
    if non_empty.is_empty() {
        estimate.method = "every file is empty".into();
        return Ok(estimate);
    }
    let mut decoded = None;
    for file in non_empty.iter().take(if compressed { 1 } else { FILES_SAMPLED }) {
        let sample = store
            .get_range(&file.location, 0..file.size.min(SAMPLE_BYTES))
            .await
            .map_err(|e| format!("sampling {}: {e}", file.location))?;
        if compressed {
            break;
        }
        if let Some(found) = decode_sample(scan, &sample, &projection, file.size <= SAMPLE_BYTES)
            .filter(|(sample_bytes, _, rows)| *sample_bytes > 0 && *rows > 0)
        {
            decoded = Some((found, file.size));
            break;
        }
    }
    match decoded {
        Some(((sample_bytes, decoded_bytes, rows), size)) => {
            let ratio = decoded_bytes as f64 / sample_bytes as f64;
            estimate.bytes = (file_bytes as f64 * ratio) as u64;
            if non_empty.len() == 1 && size <= SAMPLE_BYTES {
                estimate.rows = Some(rows);
                estimate.method = format!("decoded the whole file ({} rows)", group_digits(rows));
            } else {
                estimate.method =
                    format!("sampled {} rows: {ratio:.2} decoded bytes per byte on disk", group_digits(rows));
            }
        }
        _ => {
            // A compressed or unreadable sample: assume 4 decoded bytes per stored byte.
            let factor = if compressed { 4 } else { 1 };
            estimate.bytes = file_bytes * factor;
            estimate.method = if compressed {
                "compressed: assumed 4 decoded bytes per byte on disk".into()
            } else {
                "sample not decodable: assumed 1 decoded byte per byte on disk".into()
            };
        }
    }
    Ok(estimate)
}

/// How many non-empty CSV/JSON files are tried before a sample with rows is given up on.
const FILES_SAMPLED: usize = 8;

/// Rows and decoded bytes of the `wanted` columns of one Parquet file.
fn parquet_decoded(
    footer: &datafusion::parquet::file::metadata::ParquetMetaData,
    schema: &Schema,
    wanted: &HashSet<&str>,
) -> (u64, u64) {
    let rows = footer.file_metadata().num_rows().max(0) as u64;
    let mut bytes = 0u64;
    for group in footer.row_groups() {
        let group_rows = group.num_rows().max(0) as u64;
        for column in group.columns() {
            let root = column.column_path().parts().first().map(String::as_str).unwrap_or("");
            if !wanted.contains(root) {
                continue;
            }
            let width = schema.field_with_name(root).ok().and_then(|f| fixed_width(f.data_type()));
            bytes += match width {
                // Nested roots have several leaf columns; only flat ones have a fixed width.
                Some(width) if column.column_path().parts().len() == 1 => group_rows * width,
                _ => {
                    let pages = column.uncompressed_size().max(0) as u64;
                    let unencoded = column.unencoded_byte_array_data_bytes().unwrap_or(0).max(0) as u64;
                    pages.max(unencoded + group_rows * 4)
                }
            };
        }
    }
    (rows, bytes)
}

/// Bytes per value of a fixed-width Arrow type (with its validity bit rounded up to a byte
/// for simplicity), or None for variable-width and nested types.
fn fixed_width(data_type: &DataType) -> Option<u64> {
    match data_type {
        DataType::Boolean => Some(1),
        DataType::Dictionary(..) | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => None,
        t => t.primitive_width().map(|w| w as u64),
    }
}

/// Decodes a CSV or NDJSON sample: (bytes consumed, decoded bytes of the projected columns, rows).
fn decode_sample(scan: &FileScanConfig, sample: &[u8], projection: &[usize], whole: bool) -> Option<(u64, u64, u64)> {
    // Only complete lines: cut after the last newline unless the sample is the whole file.
    let end = if whole { sample.len() } else { sample.iter().rposition(|b| *b == b'\n')? + 1 };
    let sample = &sample[..end];
    let schema: SchemaRef = scan.file_schema().clone();
    let batches: Vec<_> = if let Some(csv) = (scan.file_source().as_ref() as &dyn Any).downcast_ref::<CsvSource>() {
        let mut format = datafusion::arrow::csv::reader::Format::default()
            .with_header(csv.has_header())
            .with_delimiter(csv.delimiter())
            .with_quote(csv.quote());
        if let Some(escape) = csv.escape() {
            format = format.with_escape(escape);
        }
        if let Some(comment) = csv.comment() {
            format = format.with_comment(comment);
        }
        let reader = datafusion::arrow::csv::ReaderBuilder::new(schema)
            .with_format(format)
            .with_projection(projection.to_vec())
            .build(Cursor::new(sample))
            .ok()?;
        reader.collect::<Result<_, _>>().ok()?
    } else {
        let reader = datafusion::arrow::json::ReaderBuilder::new(schema).build(Cursor::new(sample)).ok()?;
        let batches: Vec<_> = reader.collect::<Result<_, _>>().ok()?;
        batches.into_iter().map(|b| b.project(projection)).collect::<Result<_, _>>().ok()?
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let decoded: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    Some((sample.len() as u64, decoded as u64, rows as u64))
}
