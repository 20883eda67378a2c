//! Leaf helpers used across dfpipe: SQL quoting, did-you-mean suggestions, human-readable
//! numbers and tables, the row counter sinks and progress bars share, opening a DuckDB file
//! another process may hold, credentials masked in the URLs of messages, and the pause point
//! fault tests use.
//!
//! May import: nothing from dfpipe (only [`crate::error`]'s types). Everything else may import it.

pub mod duckdb_file;
pub mod fault;
pub mod fmt;
pub mod progress;
pub mod redact;
pub mod sql;
pub mod sql_errors;
pub mod suggest;

/// FNV-1a, 64 bits: a fingerprint that stays the same across builds and platforms (the
/// standard library's hasher does not promise that).
pub fn fnv1a<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= *byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
