//! A model's planning error as a compiler reports one: `sql/model.sql:LINE:COL: message`, the
//! offending line, a caret under the span, and a did-you-mean. The position comes from
//! DataFusion's `Diagnostic` (spans are collected: `sql_parser.collect_spans`), else from the
//! SQL parser's `at Line: N, Column: M`, else the statement's first line.

use std::path::Path;

use datafusion::common::{Diagnostic, SchemaError};
use datafusion::error::DataFusionError;

use crate::error::df_message;
use crate::util::suggest::did_you_mean;

/// A position in the SQL text: 1-based line and column, and how many columns it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    line: usize,
    column: usize,
    width: usize,
}

/// Renders `error`, raised planning the SQL `sql` of `file`; `relations` are the names a
/// query may read (for a did-you-mean on a missing table).
pub fn render(file: &Path, sql: &str, error: &DataFusionError, relations: &[String]) -> String {
    let diagnostic = error.diagnostic();
    let (message, position) = match diagnostic {
        Some(d) => (describe(d, error), d.span.map(|s| span_position(sql, s))),
        None => parser_position(&df_message(error)),
    };
    let message = plain(&message);
    let position = position
        .unwrap_or_else(|| if message.contains("found: EOF") { end_position(sql) } else { statement_position(sql) });
    let message = format!("{message}{}", suggestion(error, diagnostic, relations));
    located(file, sql, position, &message)
}

/// `file:line:col: message`, the line, and a caret under the position.
fn located(file: &Path, sql: &str, position: Position, message: &str) -> String {
    let mut out = format!("{}:{}:{}: {message}", file.display(), position.line, position.column);
    if let Some(text) = sql.lines().nth(position.line - 1) {
        let gutter = position.line.to_string().len();
        let caret_at: usize = text.chars().take(position.column - 1).map(|c| if c == '\t' { 4 } else { 1 }).sum();
        out.push_str(&format!(
            "\n{:>gutter$} | {}\n{:>gutter$} | {}{}",
            position.line,
            text.replace('\t', "    "),
            "",
            " ".repeat(caret_at),
            "^".repeat(position.width.max(1))
        ));
    }
    out
}

/// The diagnostic's message with its notes and helps (which carry the detail).
fn describe(d: &Diagnostic, error: &DataFusionError) -> String {
    let mut message = d.message.clone();
    if message.is_empty() {
        message = df_message(error);
    }
    // "possible column …" notes: the did-you-mean says it once.
    let notes: Vec<&str> =
        d.notes.iter().map(|n| n.message.as_str()).filter(|m| !m.starts_with("possible column")).collect();
    if !notes.is_empty() {
        message.push_str(&format!(" ({})", notes.join(", ")));
    }
    for help in &d.helps {
        message.push_str(&format!("; {}", help.message));
    }
    message
}

fn span_position(sql: &str, span: datafusion::common::Span) -> Position {
    let (start, end) = (span.start, span.end);
    let line = (start.line as usize).max(1);
    let column = (start.column as usize).max(1);
    let width = if end.line == start.line && end.column > start.column {
        (end.column - start.column) as usize
    } else {
        sql.lines().nth(line - 1).map_or(1, |l| l.chars().count().saturating_sub(column - 1).max(1))
    };
    Position { line, column, width }
}

/// `… at Line: 3, Column: 8` (sqlparser's errors): the message without it, and the position.
fn parser_position(message: &str) -> (String, Option<Position>) {
    let Some(at) = message.rfind(" at Line: ") else { return (message.to_string(), None) };
    let rest = &message[at + " at Line: ".len()..];
    let mut parts = rest.split(", Column: ");
    let line = parts.next().and_then(|l| l.trim().parse::<usize>().ok());
    let column =
        parts.next().and_then(|c| c.trim().trim_end_matches(|ch: char| !ch.is_ascii_digit()).parse::<usize>().ok());
    match (line, column) {
        (Some(line), Some(column)) if line > 0 && column > 0 => {
            (message[..at].to_string(), Some(Position { line, column, width: 1 }))
        }
        _ => (message.to_string(), None),
    }
}

/// The parser's message without its wrapping (`SQL error: ParserError("…")`).
fn plain(message: &str) -> String {
    let inner = message
        .strip_prefix("SQL error: ParserError(\"")
        .or_else(|| message.strip_prefix("SQL error: TokenizerError(\""))
        .map_or(message, |m| m.trim_end_matches("\")").trim_end_matches('"'));
    inner.replace("sql parser error: ", "")
}

/// `message` about the first whole-word occurrence of `word` in `sql` (outside `--` comments),
/// rendered as [`render`] does; at the statement when the word is not found.
pub fn at_word(file: &Path, sql: &str, word: &str, message: &str) -> String {
    let position = find_word(sql, word).unwrap_or_else(|| statement_position(sql));
    located(file, sql, position, message)
}

fn find_word(sql: &str, word: &str) -> Option<Position> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    for (i, text) in sql.lines().enumerate() {
        let code = text.split("--").next().unwrap_or("");
        let lower = code.to_lowercase();
        let target = word.to_lowercase();
        let mut from = 0;
        while let Some(found) = lower[from..].find(&target) {
            let at = from + found;
            let before = lower[..at].chars().next_back();
            let after = lower[at + target.len()..].chars().next();
            if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
                let column = lower[..at].chars().count() + 1;
                return Some(Position { line: i + 1, column, width: word.chars().count() });
            }
            from = at + target.len();
        }
    }
    None
}

/// No span: the statement's first line that is not a comment or blank, underlined whole.
fn statement_position(sql: &str) -> Position {
    for (i, text) in sql.lines().enumerate() {
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        let column = text.len() - trimmed.len() + 1;
        return Position { line: i + 1, column, width: trimmed.trim_end().chars().count() };
    }
    Position { line: 1, column: 1, width: 1 }
}

/// Just after the last character that is not blank or a comment line: where "found: EOF" is.
fn end_position(sql: &str) -> Position {
    let lines: Vec<&str> = sql.lines().collect();
    for (i, text) in lines.iter().enumerate().rev() {
        let trimmed = text.trim_end();
        if !trimmed.is_empty() && !trimmed.trim_start().starts_with("--") {
            return Position { line: i + 1, column: trimmed.chars().count() + 1, width: 1 };
        }
    }
    Position { line: 1, column: 1, width: 1 }
}

/// A did-you-mean for a missing column (among the columns in scope) or table (among
/// `relations`).
fn suggestion(error: &DataFusionError, diagnostic: Option<&Diagnostic>, relations: &[String]) -> String {
    let mut e = error;
    loop {
        match e {
            DataFusionError::SchemaError(inner, _) => {
                if let SchemaError::FieldNotFound { field, valid_fields } = inner.as_ref() {
                    let names: Vec<&str> = valid_fields.iter().map(|c| c.name.as_str()).collect();
                    let hint = did_you_mean(&field.name, names.iter().copied());
                    let mut unique: Vec<&str> = names.clone();
                    unique.sort();
                    unique.dedup();
                    return format!("{hint} (columns here: {})", unique.join(", "));
                }
                return String::new();
            }
            DataFusionError::Diagnostic(_, source) | DataFusionError::Context(_, source) => e = source,
            _ => break,
        }
    }
    let Some(d) = diagnostic else { return String::new() };
    let Some(table) = d.message.strip_prefix("table '").and_then(|m| m.strip_suffix("' not found")) else {
        return String::new();
    };
    let bare = table.rsplit('.').next().unwrap_or(table);
    did_you_mean(bare, relations.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_positions_and_fallbacks() {
        let (message, position) = parser_position(
            "SQL error: ParserError(\"Expected: end of statement, found: FROM at Line: 3, Column: 8\")",
        );
        assert_eq!(plain(&message), "Expected: end of statement, found: FROM");
        assert_eq!(position, Some(Position { line: 3, column: 8, width: 1 }));
        assert_eq!(statement_position("-- about\n\n  SELECT 1\n"), Position { line: 3, column: 3, width: 8 });
    }
}
