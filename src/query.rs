//! `dfpipe query "SQL"`: runs SQL through DuckDB on the warehouse file (read-only) and prints
//! the result as a table, CSV or JSON.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::error::{Error, Result};

/// Output formats of `dfpipe query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Runs `sql` against the DuckDB file at `path`.
pub fn query(path: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    if !path.exists() {
        return Err(Error::Usage(format!("no DuckDB file at {} yet; run `dfpipe run` first", path.display())));
    }
    let config =
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).map_err(|e| Error::Run(e.to_string()))?;
    let conn = duckdb::Connection::open_with_flags(path, config)
        .map_err(|e| Error::Run(format!("cannot open {}: {e}", path.display())))?;
    let mut statement = conn.prepare(sql).map_err(|e| Error::Run(format!("query failed: {e}")))?;
    let arrow = statement.query_arrow([]).map_err(|e| Error::Run(format!("query failed: {e}")))?;
    let schema = arrow.get_schema();
    let mut batches: Vec<RecordBatch> = arrow.collect();
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// Writes `batches` to `out` in `format`.
pub fn print(batches: &[RecordBatch], format: QueryFormat, out: &mut dyn Write) -> std::io::Result<()> {
    let to_io = |e: datafusion::arrow::error::ArrowError| std::io::Error::other(e.to_string());
    match format {
        QueryFormat::Table => writeln!(out, "{}", pretty_format_batches(batches).map_err(to_io)?),
        QueryFormat::Csv => {
            let mut writer = datafusion::arrow::csv::Writer::new(out);
            for batch in batches {
                writer.write(batch).map_err(to_io)?;
            }
            Ok(())
        }
        QueryFormat::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs).map_err(to_io)?;
            writer.finish().map_err(to_io)?;
            let mut bytes = writer.into_inner();
            if bytes.is_empty() {
                bytes.extend_from_slice(b"[]");
            }
            out.write_all(&bytes)?;
            writeln!(out)
        }
    }
}
