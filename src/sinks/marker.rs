//! What an incremental load writes besides its rows, in the same transaction: the deletion of
//! the window it restates ([`DeleteRange`]) and a [`LoadMarker`] row in the target database's
//! `_dfpipe_loads` table (a marker file for Parquet), so the target itself says which loads it
//! holds — and a crash between the target's commit and the catalog's record is repaired from it.

use datafusion::arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use crate::util::sql::quote;

/// The table, beside each incrementally loaded table (same schema), recording its loads.
pub const LOADS_TABLE: &str = "_dfpipe_loads";

/// One committed incremental load of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadMarker {
    /// The table (or Parquet directory) loaded, as its loads table keys it.
    pub target: String,
    /// Unique per load.
    pub load_id: String,
    /// `time`, `cursor` or `files`.
    pub kind: String,
    /// What the load completed (windows, the new mark, the files), as JSON.
    pub state: String,
    /// A fingerprint of the model and settings the load was built with.
    pub definition: String,
}

/// The rows of one window, deleted before the window's rows are inserted again.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRange {
    /// The column the window is cut on.
    pub column: String,
    /// Its Arrow type (DATE, TIMESTAMP with or without time zone).
    pub data_type: DataType,
    /// The window's start (UTC), included.
    pub start: chrono::NaiveDateTime,
    /// The window's end (UTC), excluded.
    pub end: chrono::NaiveDateTime,
}

impl DeleteRange {
    /// `"col" >= <start> AND "col" < <end>`, with literals both DuckDB and PostgreSQL read as the
    /// column's type.
    pub fn predicate(&self) -> String {
        let literal = |t: chrono::NaiveDateTime| match &self.data_type {
            DataType::Date32 | DataType::Date64 => format!("DATE '{}'", t.format("%Y-%m-%d")),
            DataType::Timestamp(_, Some(_)) => format!("TIMESTAMPTZ '{}+00'", t.format("%Y-%m-%d %H:%M:%S")),
            _ => format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S")),
        };
        let column = quote(&self.column);
        format!("{column} >= {} AND {column} < {}", literal(self.start), literal(self.end))
    }
}

/// Builds a load's marker once its rows are all written (a cursor's mark is the largest value
/// the rows carried), just before the load commits.
pub type MarkerFn = std::sync::Arc<dyn Fn() -> Result<LoadMarker, String> + Send + Sync>;

/// What an incremental load does in its transaction besides writing its rows.
#[derive(Clone, Default)]
pub struct LoadExtras {
    /// Rows deleted first (a restated window).
    pub delete: Option<DeleteRange>,
    /// The marker recorded with the rows.
    pub marker: Option<MarkerFn>,
    /// Forget the target's earlier markers (a full refresh).
    pub reset: bool,
}

impl std::fmt::Debug for LoadExtras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadExtras")
            .field("delete", &self.delete)
            .field("marker", &self.marker.is_some())
            .field("reset", &self.reset)
            .finish()
    }
}

/// What a target holds of its incremental loads.
#[derive(Debug, Clone, Default)]
pub struct TargetLoads {
    /// Whether the table (or directory) exists.
    pub exists: bool,
    /// Whether it holds any row (or data file).
    pub has_rows: bool,
    /// Its markers, oldest first.
    pub markers: Vec<LoadMarker>,
}

/// `CREATE TABLE IF NOT EXISTS` of the loads table (`qualified`: its quoted, qualified name);
/// the same DDL in DuckDB and PostgreSQL.
pub fn create_loads_sql(qualified: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {qualified} (target VARCHAR NOT NULL, load_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, \
         state VARCHAR NOT NULL, definition VARCHAR NOT NULL, loaded_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
}

/// The `INSERT` of one marker into the loads table (`qualified`), with parameters `$1`…`$5`
/// for target, load id, kind, state and definition; the same SQL in DuckDB and PostgreSQL.
pub fn insert_load_sql(qualified: &str) -> String {
    format!("INSERT INTO {qualified} (target, load_id, kind, state, definition) VALUES ($1, $2, $3, $4, $5)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn predicates_read_as_the_column_type() {
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2024, 1, d).unwrap().and_hms_opt(0, 0, 0).unwrap();
        let range = |data_type| DeleteRange { column: "ts".into(), data_type, start: day(1), end: day(2) };
        assert_eq!(range(DataType::Date32).predicate(), r#""ts" >= DATE '2024-01-01' AND "ts" < DATE '2024-01-02'"#);
        assert_eq!(
            range(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))).predicate(),
            r#""ts" >= TIMESTAMPTZ '2024-01-01 00:00:00+00' AND "ts" < TIMESTAMPTZ '2024-01-02 00:00:00+00'"#
        );
        assert_eq!(
            range(DataType::Timestamp(TimeUnit::Nanosecond, None)).predicate(),
            r#""ts" >= TIMESTAMP '2024-01-01 00:00:00' AND "ts" < TIMESTAMP '2024-01-02 00:00:00'"#
        );
    }
}
