//! Leaf helpers used across dfpipe: SQL quoting, did-you-mean suggestions, human-readable
//! numbers and tables, the row counter sinks and progress bars share, opening a DuckDB file
//! another process may hold, and the pause point fault tests use.
//!
//! May import: nothing from dfpipe (only [`crate::error`]'s types). Everything else may import it.

pub mod duckdb_file;
pub mod fault;
pub mod fmt;
pub mod progress;
pub mod sql;
pub mod suggest;
