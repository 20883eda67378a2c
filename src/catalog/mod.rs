//! The schema catalog: an embedded DuckDB file, `<state_dir>/catalog.duckdb`, remembering every
//! run, the schema of every source, model and target it saw, the files it read, and the drift
//! it found, so analysts can query run history with any DuckDB client.
//!
//! Tables (times are UTC):
//! - `runs`: one row per run: id, command, start and end, status, strategy, rows, peak RSS, error;
//! - `schemas`: one row per relation per run: kind (`source`, `model`, `target`), name,
//!   fingerprint, columns (JSON in dfpipe's own stable type format, `{"format": 2, "columns":
//!   [{"name", "type", "nullable"}]}`, see [`crate::schema::stored`]), and whether it is an
//!   accepted baseline;
//! - `catalog_meta`: the catalog's format (older catalogs are migrated when opened for writing);
//! - `source_files`: the files each source read: path, size, modified time, ETag;
//! - `targets`: per target: model, mode, status, rows, quarantined and dropped rows, seconds,
//!   strategy, estimate, error;
//! - `drift`: each change found: relation, change, column, before, after, policy, outcome;
//! - `tests`: each data test: relation, test, outcome (`pass`, `warn`, `fail`), failures, message;
//! - `loads`: each committed load of an incremental output: target, load id, kind, state (JSON:
//!   complete windows, the cursor mark, the files read), definition. The target holds the same
//!   record (its `_dfpipe_loads` table, committed with the rows): a run that finds the two apart
//!   (a crash between the target's commit and this record) brings the catalog in line with the
//!   target.
//!
//! The connection is opened per operation and closed at once, so readers (`dfpipe schema`,
//! `dfpipe runs`, a DuckDB client) are only locked out for milliseconds; an open waits a
//! bounded time (`DFPIPE_LOCK_WAIT`, default 10 s) for a client that holds the file.
//!
//! Files: `store` (the DuckDB file), [`lock`] (one command per project), [`results`] (what a
//! run did, as `run_results.json` and the `runs`/`targets` rows), [`drift`] (observed schemas
//! judged against the accepted baselines).
//!
//! May import: [`crate::config`], [`crate::schema`], [`crate::memory`] (peak RSS),
//! [`crate::engine`] (what a run observed),
//! [`crate::checks`] (test results), [`crate::util`]. Commands import the catalog, never the
//! reverse.

pub mod drift;
pub mod lock;
pub mod results;
mod store;

pub use crate::schema::Kind;
pub use store::{CATALOG_FILE, CRASHED, Catalog, LoadRecord, RunRecord, SchemaRecord};
