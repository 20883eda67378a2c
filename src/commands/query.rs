//! `dfpipe query "SQL"`: runs SQL through DuckDB on the warehouse file (read-only) and prints
//! the result as a table, CSV or JSON.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, DecimalType, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::cli::QueryFormat;
use crate::config::{Config, DEFAULT_CONNECTION};
use crate::error::{EXIT_OK, Error, Result};
use crate::util::suggest::did_you_mean;

/// `dfpipe query`: runs `sql` on the DuckDB file of `connection` (default: the warehouse) and
/// prints the result; a closed pipe (`| head`) is not an error.
pub fn command(config: &Config, sql: &str, format: QueryFormat, connection: Option<&str>) -> Result<u8> {
    let path = duckdb_path(config, connection)?;
    let batches = query(&path, sql)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match print(&batches, format, &mut out).and_then(|_| out.flush()) {
        Ok(()) => Ok(EXIT_OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(EXIT_OK),
        Err(e) => Err(Error::Run(format!("cannot write the result: {e}"))),
    }
}

/// The DuckDB file of connection `name` (default: the warehouse).
fn duckdb_path(config: &Config, name: Option<&str>) -> Result<std::path::PathBuf> {
    let name = name.unwrap_or(DEFAULT_CONNECTION);
    let postgres = config
        .outputs
        .iter()
        .flatten()
        .any(|o| matches!(&o.target, crate::config::Target::Postgres { connection, .. } if connection == name));
    if postgres {
        return Err(Error::Usage(format!(
            "connection `{name}` is PostgreSQL; `dfpipe query` reads DuckDB files: query PostgreSQL with psql"
        )));
    }
    config.duckdb_files.get(name).cloned().ok_or_else(|| {
        Error::Usage(format!(
            "no DuckDB connection named `{name}`{}; DuckDB connections: {}",
            did_you_mean(name, config.duckdb_files.keys().map(String::as_str)),
            config.duckdb_files.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Runs `sql` against the DuckDB file at `path`.
pub fn query(path: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    if !path.exists() {
        return Err(Error::Usage(format!("no DuckDB file at {} yet; run `dfpipe run` first", path.display())));
    }
    if sql.trim().trim_matches(';').trim().is_empty() {
        return Err(Error::Usage(
            "no SQL to run: pass a query, e.g. dfpipe query \"SELECT * FROM my_model LIMIT 10\"".to_string(),
        ));
    }
    let conn = crate::util::duckdb_file::open(path, true, crate::util::duckdb_file::lock_wait()).map_err(Error::Run)?;
    let failed = |e: duckdb::Error| {
        let text = e.to_string();
        // DuckDB suggests its own catalog tables for a name it lacks; list the file's instead.
        let tables = || -> Option<String> {
            let mut stmt = conn
                .prepare(
                    "SELECT string_agg(CASE WHEN schema_name = 'main' THEN '' ELSE schema_name || '.' END || table_name, \
                     ', ' ORDER BY schema_name, table_name) FROM duckdb_tables() WHERE NOT internal \
                     AND table_name NOT LIKE '\\_dfpipe%' ESCAPE '\\'",
                )
                .ok()?;
            stmt.query_row([], |row| row.get::<_, Option<String>>(0)).ok()?
        };
        match text.contains("Catalog Error: Table with name") {
            true => {
                let first = text.lines().next().unwrap_or_default();
                let listed = tables().unwrap_or_else(|| "none yet".to_string());
                Error::Run(format!("query failed: {first}\ntables in {}: {listed}", path.display()))
            }
            false => Error::Run(format!("query failed: {text}")),
        }
    };
    let mut statement = conn.prepare(sql).map_err(failed)?;
    let arrow = statement.query_arrow([]).map_err(|e| Error::Run(format!("query failed: {e}")))?;
    let schema = arrow.get_schema();
    let mut batches: Vec<RecordBatch> = arrow.collect();
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    batches.iter().map(wide_decimals).collect::<std::result::Result<_, _>>().map_err(|e| Error::Run(e.to_string()))
}

/// `batch` with its 38-digit decimals widened to 76 digits where a value has more: DuckDB hands
/// a `HUGEINT` over as `DECIMAL(38,0)`, which holds 39-digit values that Arrow then printed a
/// digit short (123456789012345678901234567890123456789 as 12345678901234567890123456789012345678).
fn wide_decimals(batch: &RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    let beyond = |column: &ArrayRef| match column.data_type() {
        DataType::Decimal128(p, _) => column
            .as_primitive::<Decimal128Type>()
            .iter()
            .flatten()
            .any(|v| !Decimal128Type::is_valid_decimal_precision(v, *p)),
        _ => false,
    };
    if !batch.columns().iter().any(beyond) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match column.data_type() {
            DataType::Decimal128(_, scale) if beyond(column) => {
                let wide = DataType::Decimal256(76, *scale);
                columns.push(cast(column, &wide)?);
                fields.push(field.as_ref().clone().with_data_type(wide));
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
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
            // NULLs are written as `null`, as DuckDB's JSON output does (not left out).
            let mut writer = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
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
