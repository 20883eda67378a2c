//! Incremental outputs, the engine's side: the state a target's load markers add up to
//! ([`State`]), the time windows a run processes ([`windows`]), the filters that keep a model's
//! output inside a window or past a cursor mark, the values of `$start`, `$end` and `$last`,
//! and the cursor's new mark taken from the rows as they stream to the target ([`CursorWatch`]).
//!
//! Marker states are JSON: `{"complete": [[start, end], …]}` (time: complete UTC windows),
//! `{"mark": {"type": "Timestamp(ns)", "value": "…"}}` (cursor: the Arrow type and the value as
//! text, checked to read back identically), `{"files": [{path, size, modified, etag}, …]}`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::min_max::MaxAccumulator;
use datafusion::logical_expr::{Accumulator, col, lit};
use datafusion::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use crate::config::incremental::{Grain, step, truncate};
use crate::error::df_message;

/// A file as a `by: files` state remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileKey {
    /// Its location.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its last modification, RFC 3339.
    pub modified: String,
    /// Its ETag, where the store gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl FileKey {
    /// The key of a listed file (as [`crate::engine::observe::files_of`] lists it). Local files
    /// carry no ETag (the one object_store makes up for them includes the inode, which a copy
    /// changes): path, size and modification time.
    pub fn of(path: &str, size: u64, modified: &str, etag: Option<&str>) -> FileKey {
        let local = path.starts_with("file://");
        FileKey {
            path: path.to_string(),
            size,
            modified: modified.to_string(),
            etag: if local { None } else { etag.map(String::from) },
        }
    }

    /// Whether `other` (the same path) is the same file: same ETag, or without ETags the same
    /// size and modification time.
    pub fn same_as(&self, other: &FileKey) -> bool {
        match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => a == b,
            _ => self.size == other.size && self.modified == other.modified,
        }
    }
}

/// A cursor mark stored losslessly: its Arrow type and its value as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMark {
    /// The Arrow type, as Arrow writes it.
    #[serde(rename = "type")]
    pub data_type: String,
    /// The value, as Arrow casts it to text.
    pub value: String,
}

impl StoredMark {
    /// Stores `value`; an error when its text would not read back as the same value.
    pub fn store(value: &ScalarValue) -> Result<StoredMark, String> {
        let data_type = value.data_type();
        let text = cast(&value.to_array().map_err(|e| e.to_string())?, &DataType::Utf8).map_err(|e| e.to_string())?;
        let text = text.as_any().downcast_ref::<StringArray>().map(|a| a.value(0).to_string()).unwrap_or_default();
        let stored = StoredMark { data_type: data_type.to_string(), value: text };
        match stored.load() {
            Ok(back) if &back == value => Ok(stored),
            _ => Err(format!("the cursor value {value} of type {data_type} does not read back exactly from text")),
        }
    }

    /// The value stored.
    pub fn load(&self) -> Result<ScalarValue, String> {
        let data_type =
            DataType::from_str(&self.data_type).map_err(|e| format!("mark type {}: {e}", self.data_type))?;
        let text: Arc<dyn Array> = Arc::new(StringArray::from(vec![self.value.as_str()]));
        let array = cast(&text, &data_type).map_err(|e| format!("mark {}: {e}", self.value))?;
        ScalarValue::try_from_array(&array, 0).map_err(|e| e.to_string())
    }
}

/// The state of one marker, by kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MarkerState {
    /// time: complete windows `[start, end)`, UTC, `YYYY-MM-DDTHH:MM:SS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub complete: Vec<(String, String)>,
    /// cursor: the mark after the load (absent when the load saw no row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<StoredMark>,
    /// files: the files the load read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileKey>,
    /// Rows the load wrote.
    #[serde(default)]
    pub rows: u64,
}

/// What a target's markers add up to.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// time: the starts of the complete grains.
    pub complete: BTreeSet<NaiveDateTime>,
    /// cursor: the latest mark.
    pub mark: Option<ScalarValue>,
    /// files: every file loaded, by path (the latest load of a path wins).
    pub files: BTreeMap<String, FileKey>,
    /// The definitions the loads were built with.
    pub definitions: BTreeSet<String>,
    /// Loads, and rows they wrote.
    pub loads: usize,
    /// Rows the loads wrote.
    pub rows: u64,
}

/// The text of an instant in marker states.
pub fn instant_text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

impl State {
    /// Folds markers (oldest first) of `grain` (time outputs) into a state.
    pub fn fold<'a>(
        markers: impl IntoIterator<Item = (&'a str, &'a str)>,
        grain: Option<Grain>,
    ) -> Result<State, String> {
        let mut state = State::default();
        for (state_json, definition) in markers {
            let m: MarkerState =
                serde_json::from_str(state_json).map_err(|e| format!("a load marker does not read: {e}"))?;
            for (start, end) in &m.complete {
                let parse = |t: &str| {
                    crate::config::incremental::parse_instant(t).ok_or_else(|| format!("bad window bound {t}"))
                };
                let (mut t, end) = (parse(start)?, parse(end)?);
                let grain = grain.ok_or("a time marker on an output that is not `by: time`")?;
                while t < end {
                    state.complete.insert(t);
                    t = step(t, grain, 1);
                }
            }
            if let Some(mark) = &m.mark {
                state.mark = Some(mark.load()?);
            }
            for f in m.files {
                state.files.insert(f.path.clone(), f);
            }
            state.definitions.insert(definition.to_string());
            state.loads += 1;
            state.rows += m.rows;
        }
        Ok(state)
    }
}

/// One transaction of a time output: the window `[start, end)` and the grains in it that are
/// complete (the current, unfinished grain is loaded but not recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The window's start (UTC), included.
    pub start: NaiveDateTime,
    /// The window's end (UTC), excluded.
    pub end: NaiveDateTime,
    /// The complete grains `[start, end)` it records, as one range (`None`: none complete).
    pub complete: Option<(NaiveDateTime, NaiveDateTime)>,
}

/// The windows a run processes, in order, `batch` grains at most each: with `restate`, exactly
/// its grains; else every grain from `begin` to `now` not recorded complete, the `lookback`
/// complete grains before the first of them, and the current grain.
pub fn windows(
    grain: Grain,
    begin: NaiveDateTime,
    lookback: u32,
    batch: u32,
    complete: &BTreeSet<NaiveDateTime>,
    now: NaiveDateTime,
    restate: Option<(NaiveDateTime, NaiveDateTime)>,
) -> Vec<Window> {
    let current = truncate(now, grain);
    let mut grains: Vec<NaiveDateTime> = Vec::new();
    match restate {
        Some((from, to)) => {
            let mut t = from;
            while t < to {
                grains.push(t);
                t = step(t, grain, 1);
            }
        }
        None => {
            if begin > now {
                return vec![];
            }
            let mut t = begin;
            while t < current {
                if !complete.contains(&t) {
                    grains.push(t);
                }
                t = step(t, grain, 1);
            }
            let first = grains.first().copied().unwrap_or(current);
            let mut back = Vec::new();
            let mut t = first;
            for _ in 0..lookback {
                t = step(t, grain, -1);
                if t < begin {
                    break;
                }
                back.push(t);
            }
            back.reverse();
            grains.splice(0..0, back);
            grains.push(current);
        }
    }
    // Consecutive grains, `batch` at most, make one window.
    let mut out: Vec<Window> = Vec::new();
    let mut run: Vec<NaiveDateTime> = Vec::new();
    let flush = |run: &mut Vec<NaiveDateTime>, out: &mut Vec<Window>| {
        let (Some(&start), Some(&last)) = (run.first(), run.last()) else { return };
        let end = step(last, grain, 1);
        let complete_end = if end <= now { end } else { last };
        let complete = (complete_end > start).then_some((start, complete_end));
        out.push(Window { start, end, complete });
        run.clear();
    };
    for g in grains {
        let contiguous = run.last().is_some_and(|&l| step(l, grain, 1) == g);
        if !run.is_empty() && (!contiguous || run.len() >= batch as usize) {
            flush(&mut run, &mut out);
        }
        run.push(g);
    }
    flush(&mut run, &mut out);
    out
}

/// `t` as a literal of a `data_type` column (DATE or TIMESTAMP, with or without zone).
fn instant_literal(t: NaiveDateTime, data_type: &DataType) -> Result<ScalarValue, String> {
    let nanos = t.and_utc().timestamp_nanos_opt().ok_or_else(|| format!("{t} is out of range"))?;
    let utc = ScalarValue::TimestampNanosecond(Some(nanos), None);
    match data_type {
        DataType::Timestamp(unit, Some(zone)) => utc_in_zone(&utc, *unit, zone).map_err(|e| e.to_string()),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            utc.cast_to(data_type).map_err(|e| e.to_string())
        }
        other => Err(format!("a `by: time` column must be a DATE or TIMESTAMP, not {other}")),
    }
}

/// `value`, a zoneless timestamp read as UTC, as the same instant in a `unit` column zoned
/// `zone`. A zoned timestamp holds its UTC instant; Arrow's cast from a zoneless one reads the
/// digits as local time in the zone instead (Berlin's midnight, not UTC's), which shifted every
/// window.
pub fn utc_in_zone(
    value: &ScalarValue,
    unit: datafusion::arrow::datatypes::TimeUnit,
    zone: &std::sync::Arc<str>,
) -> datafusion::error::Result<ScalarValue> {
    let zone = Some(zone.clone());
    Ok(match value.cast_to(&DataType::Timestamp(unit, None))? {
        ScalarValue::TimestampSecond(v, None) => ScalarValue::TimestampSecond(v, zone),
        ScalarValue::TimestampMillisecond(v, None) => ScalarValue::TimestampMillisecond(v, zone),
        ScalarValue::TimestampMicrosecond(v, None) => ScalarValue::TimestampMicrosecond(v, zone),
        ScalarValue::TimestampNanosecond(v, None) => ScalarValue::TimestampNanosecond(v, zone),
        other => other,
    })
}

/// Keeps the rows of `df` inside `[start, end)` on `column`, and with `nulls` those whose
/// `column` is NULL too (no window holds them: they are kept only to be counted).
pub fn filter_window(
    df: DataFrame,
    column: &str,
    start: NaiveDateTime,
    end: NaiveDateTime,
    nulls: bool,
) -> Result<DataFrame, String> {
    let data_type = column_type(&df, column)?;
    if matches!(data_type, DataType::Date32 | DataType::Date64) && (start.time() != chrono::NaiveTime::MIN) {
        return Err(format!(
            "column `{column}` is a DATE: windows finer than a day cannot cut it; use `grain: day` or coarser"
        ));
    }
    let c = col(datafusion::common::Column::new_unqualified(column));
    let condition = c
        .clone()
        .gt_eq(lit(instant_literal(start, &data_type)?))
        .and(c.clone().lt(lit(instant_literal(end, &data_type)?)));
    let condition = if nulls { condition.or(c.is_null()) } else { condition };
    df.filter(condition).map_err(|e| df_message(&e))
}

/// The Arrow type of `column` in `df`, or an error naming the columns there are.
pub fn column_type(df: &DataFrame, column: &str) -> Result<DataType, String> {
    let schema = df.schema().as_arrow();
    schema.field_with_name(column).map(|f| f.data_type().clone()).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        format!(
            "the incremental column `{column}` is not a column of the model{} (its columns: {})",
            crate::util::suggest::did_you_mean(column, names.iter().copied()),
            names.join(", ")
        )
    })
}

/// The values of `$start` and `$end` for a window: timestamps (a placeholder compared with a
/// DATE or zoned column takes that column's type).
pub fn window_params(start: NaiveDateTime, end: NaiveDateTime) -> HashMap<String, ScalarValue> {
    let ts = |t: NaiveDateTime| ScalarValue::TimestampNanosecond(t.and_utc().timestamp_nanos_opt(), None);
    HashMap::from([("start".to_string(), ts(start)), ("end".to_string(), ts(end))])
}

/// The lower bound a cursor run reads from: the mark, less the lag.
pub fn cursor_floor(mark: &ScalarValue, lag: Option<std::time::Duration>) -> Result<ScalarValue, String> {
    let Some(lag) = lag else { return Ok(mark.clone()) };
    let nanos = i64::try_from(lag.as_nanos()).map_err(|_| "lag is too long".to_string())?;
    let shifted = match mark {
        ScalarValue::TimestampSecond(Some(v), tz) => {
            ScalarValue::TimestampSecond(Some(v - nanos / 1_000_000_000), tz.clone())
        }
        ScalarValue::TimestampMillisecond(Some(v), tz) => {
            ScalarValue::TimestampMillisecond(Some(v - nanos / 1_000_000), tz.clone())
        }
        ScalarValue::TimestampMicrosecond(Some(v), tz) => {
            ScalarValue::TimestampMicrosecond(Some(v - nanos / 1_000), tz.clone())
        }
        ScalarValue::TimestampNanosecond(Some(v), tz) => ScalarValue::TimestampNanosecond(Some(v - nanos), tz.clone()),
        ScalarValue::Date32(Some(d)) => ScalarValue::Date32(Some(d - (nanos / 86_400_000_000_000) as i32)),
        other => return Err(format!("`lag` applies to timestamp and date cursors, not {}", other.data_type())),
    };
    Ok(shifted)
}

/// Keeps the rows of `df` past `floor` on `column` (rows with a NULL cursor too: they are
/// counted, then loaded or refused).
pub fn filter_cursor(df: DataFrame, column: &str, floor: Option<&ScalarValue>) -> Result<DataFrame, String> {
    let data_type = column_type(&df, column)?;
    let Some(floor) = floor else { return Ok(df) };
    let floor = floor
        .cast_to(&data_type)
        .map_err(|e| format!("the cursor mark {floor} does not fit column `{column}` ({data_type}): {e}"))?;
    let c = col(datafusion::common::Column::new_unqualified(column));
    df.filter(c.clone().gt(lit(floor)).or(c.is_null())).map_err(|e| df_message(&e))
}

/// The cursor's new mark and its NULLs, taken from the batches on their way to the target.
#[derive(Clone)]
pub struct CursorWatch {
    index: usize,
    inner: Arc<Mutex<(MaxAccumulator, u64)>>,
}

impl CursorWatch {
    /// Watches column `index` of type `data_type`.
    pub fn new(index: usize, data_type: &DataType) -> Result<CursorWatch, String> {
        let max = MaxAccumulator::try_new(data_type).map_err(|e| e.to_string())?;
        Ok(CursorWatch { index, inner: Arc::new(Mutex::new((max, 0))) })
    }

    /// Takes a batch into account.
    pub fn observe(&self, batch: &RecordBatch) -> datafusion::error::Result<()> {
        let column = batch.column(self.index);
        let mut inner = self.inner.lock().expect("cursor watch lock");
        inner.1 += column.null_count() as u64;
        inner.0.update_batch(std::slice::from_ref(column))
    }

    /// The largest value seen (`None`: no non-NULL value), and the NULLs seen.
    pub fn result(&self) -> Result<(Option<ScalarValue>, u64), String> {
        let mut inner = self.inner.lock().expect("cursor watch lock");
        let max = inner.0.evaluate().map_err(|e| e.to_string())?;
        Ok(((!max.is_null()).then_some(max), inner.1))
    }
}

/// Drops the rows of `batch` whose column `index` is NULL, adding their count to `dropped`.
pub fn drop_nulls(batch: RecordBatch, index: usize, dropped: &AtomicU64) -> datafusion::error::Result<RecordBatch> {
    let column = batch.column(index);
    if column.null_count() == 0 {
        return Ok(batch);
    }
    dropped.fetch_add(column.null_count() as u64, Ordering::Relaxed);
    let valid = datafusion::arrow::compute::is_not_null(column)?;
    Ok(datafusion::arrow::compute::filter_record_batch(&batch, &valid)?)
}

/// A typed NULL for `$last` before the first load.
pub fn null_of(data_type: &DataType) -> ScalarValue {
    ScalarValue::try_from(data_type).unwrap_or(ScalarValue::Null)
}

/// The fingerprint of an output's definition: its model's SQL and its incremental settings.
pub fn definition(sql: &str, settings: &str) -> String {
    format!("{:016x}", crate::util::fnv1a(sql.trim().as_bytes().iter().chain([0u8].iter()).chain(settings.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        crate::config::incremental::parse_instant(s).unwrap()
    }

    #[test]
    fn windows_fill_gaps_look_back_and_end_with_the_current_grain() {
        let now = t("2024-01-05T10:00:00");
        let done: BTreeSet<_> = [t("2024-01-01"), t("2024-01-02"), t("2024-01-04")].into();
        let w = windows(Grain::Day, t("2024-01-01"), 1, 1, &done, now, None);
        let starts: Vec<String> = w.iter().map(|w| w.start.to_string()).collect();
        // The gap (3rd), one complete grain before it (2nd), the current day (5th).
        assert_eq!(starts, ["2024-01-02 00:00:00", "2024-01-03 00:00:00", "2024-01-05 00:00:00"]);
        assert_eq!(w[2].complete, None);
        assert_eq!(w[1].complete, Some((t("2024-01-03"), t("2024-01-04"))));
        // Batches join consecutive grains only.
        let w = windows(Grain::Day, t("2024-01-01"), 0, 3, &done, now, None);
        let spans: Vec<(String, String)> = w.iter().map(|w| (w.start.to_string(), w.end.to_string())).collect();
        assert_eq!(spans[0], ("2024-01-03 00:00:00".into(), "2024-01-04 00:00:00".into()));
        assert_eq!(spans[1], ("2024-01-05 00:00:00".into(), "2024-01-06 00:00:00".into()));
        let all = windows(Grain::Day, t("2024-01-01"), 0, 10, &BTreeSet::new(), now, None);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].complete, Some((t("2024-01-01"), t("2024-01-05"))));
        assert!(windows(Grain::Day, t("2025-01-01"), 0, 1, &done, now, None).is_empty());
        let restated = windows(Grain::Day, t("2024-01-01"), 0, 1, &done, now, Some((t("2024-01-02"), t("2024-01-04"))));
        assert_eq!(restated.len(), 2);
    }

    #[test]
    fn marks_round_trip_exactly() {
        for value in [
            ScalarValue::TimestampNanosecond(Some(1_700_000_000_123_456_789), None),
            ScalarValue::TimestampMicrosecond(Some(1_700_000_000_123_456), Some("UTC".into())),
            ScalarValue::Int64(Some(i64::MAX)),
            ScalarValue::Float64(Some(0.1 + 0.2)),
            ScalarValue::Decimal128(Some(12345678901234567890), 38, 10),
            ScalarValue::Utf8(Some("zebra".into())),
            ScalarValue::Date32(Some(19_000)),
        ] {
            let stored = StoredMark::store(&value).unwrap();
            assert_eq!(stored.load().unwrap(), value, "{stored:?}");
        }
    }
}
