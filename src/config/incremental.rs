//! `incremental:` on an output: load only what is new, by time windows, by a cursor column, or
//! by new files.
//!
//! ```yaml
//! outputs:
//!   - model: events_daily
//!     mode: append
//!     incremental: { by: time, column: event_time, grain: day, begin: 2024-01-01, lookback: 2 }
//!   - model: customers
//!     mode: merge
//!     unique_key: id
//!     incremental: { by: cursor, column: updated_at, lag: 10m }
//!   - model: raw_orders
//!     mode: append
//!     incremental: { by: files, source: orders }
//! ```
//!
//! Every rule serde can check (a required key, a known grain, a non-negative count) is checked
//! while parsing, so its error carries the file, line and column; the rules that span the
//! output (modes, keys) are checked with the output.

use serde::Deserialize;

/// The size of one time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    /// One hour.
    Hour,
    /// One calendar day (UTC).
    Day,
    /// One calendar month (UTC).
    Month,
    /// One calendar year (UTC).
    Year,
}

impl Grain {
    /// The name written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
            Grain::Month => "month",
            Grain::Year => "year",
        }
    }
}

/// What a cursor run does with rows whose cursor is NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNullCursor {
    /// Stop the run before writing (exit 3).
    #[default]
    Error,
    /// Load them (a merge keeps them once) and report how many.
    Warn,
}

/// What a files run does with a file it loaded before and that has changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFileChange {
    /// Stop the run before writing (exit 3), naming the file.
    #[default]
    Error,
    /// Load it again (needs `mode: merge`, so its rows replace the earlier ones).
    Reload,
    /// Leave it as loaded.
    Ignore,
}

impl OnFileChange {
    /// The name written in the config.
    pub fn name(self) -> &'static str {
        match self {
            OnFileChange::Error => "error",
            OnFileChange::Reload => "reload",
            OnFileChange::Ignore => "ignore",
        }
    }
}

/// `incremental:` as written, one shape per `by:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase", deny_unknown_fields)]
pub enum Incremental {
    /// Half-open UTC windows `[$start, $end)` of `grain` on `column`, from `begin`.
    Time {
        /// The output column the windows are cut on (DATE or TIMESTAMP, with or without zone).
        column: String,
        /// The window size.
        grain: Grain,
        /// The first window's start: `2024-01-01` or `2024-01-01T06:00:00` (UTC).
        begin: String,
        /// Complete windows before the first one a run processes that it processes again.
        #[serde(default)]
        lookback: u32,
        /// Windows per transaction.
        #[serde(default = "one")]
        batch: std::num::NonZeroU32,
    },
    /// Rows whose `column` is past the last loaded maximum (the high-water mark).
    Cursor {
        /// The cursor column (any ordered type: a number, a timestamp, a date, text).
        column: String,
        /// How far before the mark rows are read again (`10m`, `2h`; time cursors only).
        #[serde(default)]
        lag: Option<String>,
        /// Rows with a NULL cursor: `error` (default) or `warn`.
        #[serde(default)]
        on_null_cursor: OnNullCursor,
    },
    /// Files of a source that this output has not loaded yet.
    Files {
        /// The source whose new files are read (optional when the model reads one source).
        #[serde(default)]
        source: Option<String>,
        /// A loaded file that changed since: `error` (default), `reload` or `ignore`.
        #[serde(default)]
        on_file_change: OnFileChange,
    },
}

fn one() -> std::num::NonZeroU32 {
    std::num::NonZeroU32::MIN
}

impl Incremental {
    /// `time`, `cursor` or `files`.
    pub fn kind(&self) -> &'static str {
        match self {
            Incremental::Time { .. } => "time",
            Incremental::Cursor { .. } => "cursor",
            Incremental::Files { .. } => "files",
        }
    }
}

/// A checked `incremental:`: `begin` and `lag` parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum IncrementalSpec {
    /// `by: time`.
    Time {
        /// The output column windows are cut on.
        column: String,
        /// The window size.
        grain: Grain,
        /// The first window's start (UTC), on a grain boundary.
        begin: chrono::NaiveDateTime,
        /// Complete windows before the first processed one that are processed again.
        lookback: u32,
        /// Windows per transaction.
        batch: u32,
    },
    /// `by: cursor`.
    Cursor {
        /// The cursor column.
        column: String,
        /// How far before the mark rows are read again.
        lag: Option<std::time::Duration>,
        /// Rows with a NULL cursor.
        on_null_cursor: OnNullCursor,
    },
    /// `by: files`.
    Files {
        /// The source whose new files are read, when named.
        source: Option<String>,
        /// A loaded file that changed since.
        on_file_change: OnFileChange,
    },
}

impl IncrementalSpec {
    /// `time`, `cursor` or `files`.
    pub fn kind(&self) -> &'static str {
        match self {
            IncrementalSpec::Time { .. } => "time",
            IncrementalSpec::Cursor { .. } => "cursor",
            IncrementalSpec::Files { .. } => "files",
        }
    }
}

/// The start of the `grain` holding `t`.
pub fn truncate(t: chrono::NaiveDateTime, grain: Grain) -> chrono::NaiveDateTime {
    use chrono::{Datelike, Timelike};
    let day = t.date();
    let start = match grain {
        Grain::Hour => return day.and_hms_opt(t.hour(), 0, 0).expect("an hour of a day"),
        Grain::Day => day,
        Grain::Month => day.with_day(1).expect("the first of a month"),
        Grain::Year => chrono::NaiveDate::from_ymd_opt(day.year(), 1, 1).expect("the first of a year"),
    };
    start.and_hms_opt(0, 0, 0).expect("midnight")
}

/// `t` (a grain start) moved by `n` grains.
pub fn step(t: chrono::NaiveDateTime, grain: Grain, n: i64) -> chrono::NaiveDateTime {
    match grain {
        Grain::Hour => t + chrono::Duration::hours(n),
        Grain::Day => t + chrono::Duration::days(n),
        Grain::Month | Grain::Year => {
            let months = if grain == Grain::Year { n * 12 } else { n };
            let moved = if months >= 0 {
                t.checked_add_months(chrono::Months::new(months as u32))
            } else {
                t.checked_sub_months(chrono::Months::new((-months) as u32))
            };
            moved.expect("a date within chrono's range")
        }
    }
}

/// Parses `begin` (or `--start` / `--end`): a date or a date and time, read as UTC.
pub fn parse_instant(text: &str) -> Option<chrono::NaiveDateTime> {
    let text = text.trim();
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day.and_hms_opt(0, 0, 0);
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
            return Some(t);
        }
    }
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_with_defaults() {
        let t: Incremental = serde_saphyr::from_str("{ by: time, column: ts, grain: day, begin: 2024-01-01 }").unwrap();
        assert_eq!(
            t,
            Incremental::Time {
                column: "ts".into(),
                grain: Grain::Day,
                begin: "2024-01-01".into(),
                lookback: 0,
                batch: one()
            }
        );
        assert!(serde_saphyr::from_str::<Incremental>("{ by: time, column: ts, grain: day }").is_err());
        assert!(serde_saphyr::from_str::<Incremental>("{ by: time, column: ts, grain: week, begin: x }").is_err());
        assert!(
            serde_saphyr::from_str::<Incremental>("{ by: time, column: ts, grain: day, begin: x, lookback: -1 }")
                .is_err()
        );
        let f: Incremental = serde_saphyr::from_str("{ by: files }").unwrap();
        assert_eq!(f, Incremental::Files { source: None, on_file_change: OnFileChange::Error });
        assert!(serde_saphyr::from_str::<Incremental>("{ by: files, colour: red }").is_err());
    }

    #[test]
    fn instants() {
        let day = parse_instant("2024-01-31").unwrap();
        assert_eq!(day.to_string(), "2024-01-31 00:00:00");
        assert_eq!(parse_instant("2024-01-31T06:00:00Z").unwrap().to_string(), "2024-01-31 06:00:00");
        assert_eq!(parse_instant("2024-01-31T06:00:00+01:00").unwrap().to_string(), "2024-01-31 05:00:00");
        assert!(parse_instant("yesterday").is_none());
        let t = parse_instant("2024-03-31T17:45:00").unwrap();
        assert_eq!(truncate(t, Grain::Hour).to_string(), "2024-03-31 17:00:00");
        assert_eq!(truncate(t, Grain::Month).to_string(), "2024-03-01 00:00:00");
        assert_eq!(step(truncate(t, Grain::Month), Grain::Month, -1).to_string(), "2024-02-01 00:00:00");
        assert_eq!(step(truncate(t, Grain::Year), Grain::Year, 1).to_string(), "2025-01-01 00:00:00");
    }
}
