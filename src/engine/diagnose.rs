//! After a target fails while reading its data: which file. DataFusion's decoders report what
//! is wrong (`snappy: corrupt input`, a value that does not parse) but not where; each file of
//! the sources the model reads is then read whole on its own until one fails, and for JSON the
//! line where a key changed its type is found.

use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::config::{Format, SourceConfig};
use crate::engine::observe::files_of;
use crate::engine::pipeline::Pipeline;
use crate::error::df_message;

/// Whether `message` reads as a failure to decode data (worth finding the file for).
pub fn is_read_error(message: &str) -> bool {
    const SIGNS: [&str; 14] = [
        "Cast error",
        "too large to store in a Decimal",
        "Parquet error",
        "snappy",
        "corrupt",
        "Csv error",
        "Json error",
        "Parser error",
        "whilst decoding",
        "Invalid UTF8",
        "zstd",
        "gzip",
        "unexpected end of file",
        "Error parsing",
    ];
    SIGNS.iter().any(|s| message.to_lowercase().contains(&s.to_lowercase()))
}

/// A file that does not read whole.
pub struct Unreadable {
    /// The source it belongs to.
    pub source: String,
    /// Its location.
    pub file: String,
    /// What fails when it is read alone.
    pub error: String,
    /// Where in it, when found: a JSON line, a CSV column.
    pub detail: Option<String>,
    /// The detail places the value on its line of the file, so Arrow's own CSV position (see
    /// [`without_csv_position`]) is better left out of messages.
    pub placed: bool,
}

/// The first file of the sources `model` reads (directly or upstream) that does not read whole:
pub async fn unreadable_file(pipeline: &Pipeline, model: &str) -> Option<Unreadable> {
    // Each file is read in one piece, so a CSV error's record number counts from its start.
    let mut state = pipeline.ctx.state();
    state.config_mut().options_mut().optimizer.repartition_file_scans = false;
    let ctx = SessionContext::new_with_state(state);
    for name in pipeline.project.sources_upstream(model) {
        let source = pipeline.project.config.sources.get(&name)?;
        let Ok(files) = files_of(pipeline, &name).await else { continue };
        for file in files {
            if let Err(e) = read_whole(&ctx, source, &file.path, None).await {
                let place = csv_position(&e).map(|(_, record)| record_place(source, record));
                let (detail, placed) = match source.format {
                    Format::Json => match crate::engine::json_keys::type_change(&file.path) {
                        Some(change) => (Some(change), false),
                        None => (failing_column(&ctx, source, &file.path, None).await, false),
                    },
                    Format::Csv => {
                        let column = failing_column(&ctx, source, &file.path, place.as_deref()).await;
                        let placed = column.is_some() && place.is_some();
                        (column, placed)
                    }
                    Format::Parquet => (None, false),
                };
                return Some(Unreadable { source: name, file: file.path, error: e, detail, placed });
            }
        }
    }
    None
}

/// Arrow's CSV position in `message` (` for column 1 at line 3`): where it stands in the
/// message, and the record it names — counted from 0 at the file's first line (the header, if
/// any) when the file is read in one piece.
fn csv_position(message: &str) -> Option<(std::ops::Range<usize>, u64)> {
    const COLUMN: &str = " for column ";
    const LINE: &str = " at line ";
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let start = message.find(COLUMN)?;
    let column_end = start + COLUMN.len() + digits(&message[start + COLUMN.len()..]);
    let line_start = column_end + message[column_end..].strip_prefix(LINE).map(|_| LINE.len())?;
    let end = line_start + digits(&message[line_start..]);
    let record = message[line_start..end].parse().ok()?;
    Some((start..end, record))
}

/// Where record `record` (see [`csv_position`]) is in the file, as a user opening it counts.
fn record_place(source: &SourceConfig, record: u64) -> String {
    match source.options.newlines_in_values.unwrap_or(false) {
        false => format!("on line {} of the file", record + 1),
        true => format!("in record {record} of the file (the header is record 0; a value may span lines)"),
    }
}

/// Arrow's CSV position (`for column 1 at line 3`) taken out of `message`: it counts columns
/// from 0 and records from the start of the piece of the file a reader was given, not lines.
pub fn without_csv_position(message: &str) -> String {
    match csv_position(message) {
        Some((at, _)) => format!("{}{}", &message[..at.start], &message[at.end..]),
        None => message.to_string(),
    }
}

/// Reads one file of `source` to its end (only `column`, when given).
async fn read_whole(
    ctx: &SessionContext,
    source: &SourceConfig,
    file: &str,
    column: Option<&str>,
) -> Result<(), String> {
    let single = SourceConfig { location: file.to_string(), ..source.clone() };
    let table = crate::engine::sources::listing_table(ctx, &single).await.map_err(|e| e.to_string())?;
    let mut df = ctx.read_table(table).map_err(|e| df_message(&e))?;
    if let Some(column) = column {
        df = df.select(vec![datafusion::logical_expr::ident(column)]).map_err(|e| df_message(&e))?;
    }
    let mut stream = df.execute_stream().await.map_err(|e| df_message(&e))?;
    while let Some(batch) = stream.next().await {
        batch.map_err(|e| df_message(&e))?;
    }
    Ok(())
}

/// For a CSV or JSON file that does not read: the first column that does not read alone, where
/// in the file (`place`, when known), and what to do.
async fn failing_column(
    ctx: &SessionContext,
    source: &SourceConfig,
    file: &str,
    place: Option<&str>,
) -> Option<String> {
    let single = SourceConfig { location: file.to_string(), ..source.clone() };
    let table = crate::engine::sources::listing_table(ctx, &single).await.ok()?;
    let place = place.map(|p| format!(" {p}")).unwrap_or_default();
    for field in table.schema().fields() {
        if read_whole(ctx, source, file, Some(field.name())).await.is_err() {
            return Some(format!(
                "column `{}` ({}) holds it{place}; correct the value, or read the column as text with \
                 `schema: {{ {}: varchar }}` on the source and convert it in a model",
                field.name(),
                field.data_type(),
                field.name()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARROW: &str =
        "Parser error: Error while parsing value 'x' as type 'Int32' for column 1 at line 3. Row data: '[5,x]'";

    #[test]
    fn arrow_csv_positions_are_read_and_taken_out() {
        assert_eq!(csv_position(ARROW).map(|(_, record)| record), Some(3));
        assert_eq!(csv_position("Cast error: Cannot cast string 'x' to value of Int32 type"), None);
        assert_eq!(
            without_csv_position(ARROW),
            "Parser error: Error while parsing value 'x' as type 'Int32'. Row data: '[5,x]'"
        );
        assert_eq!(without_csv_position("no position here"), "no position here");
    }
}
