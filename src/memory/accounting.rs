//! Under a fixed limit (`--memory-limit`, `memory.limit`) the limit bounds the whole process, not
//! only DataFusion's pool. The pool gets what is left once the rest is set aside:
//!
//! - **process**: what the process holds when the target starts (the async runtime, the session
//!   and catalog), read from `/proc/self/statm` once the code that planning touched is let go
//!   ([`super::code_pages`]), plus [`CODE_WHILE_LOADING`] for the code the load maps back. Read
//!   without the release, it was 66–94 MiB for the same target from one `dfpipe plan` to the
//!   next (debug build), which called 150 MiB too small for a join `dfpipe run` ran under; with
//!   it, 53.5–54.1 MiB;
//! - **writer**: what the target's writer holds outside the pool — the Parquet writer's open row
//!   group (its size is capped to fit: [`Accounting::parquet_row_group_rows`]), DuckDB (its
//!   `memory_limit` is this share less what it holds outside it), PostgreSQL's COPY buffers;
//! - **slack**: a tenth of the limit for what no pool counts: batches in flight between
//!   operators and threads, the readers' page buffers and the allocator's free lists.
//!
//! A limit that leaves the pool less than [`MIN_POOL`] is refused before anything runs, naming
//! the smallest limit that works.

use crate::util::fmt::human_bytes;

/// The smallest pool a target is run with: a sort's merge needs a few batches of every spilled
/// run in memory, an aggregate its groups.
pub const MIN_POOL: u64 = 32 << 20;

/// The writer of a target, as far as its memory goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A Parquet file or directory.
    Parquet {
        /// The estimated decoded size of one row.
        row_bytes: u64,
    },
    /// The embedded DuckDB file.
    DuckDb,
    /// PostgreSQL.
    Postgres {
        /// COPY connections at once.
        streams: usize,
    },
}

/// Rows of one Parquet row group when the limit does not decide (DataFusion's default).
const DEFAULT_ROW_GROUP_ROWS: u64 = 1 << 20;

/// The fewest rows per Parquet row group dfpipe writes under a limit (DuckDB writes 122,880).
const MIN_ROW_GROUP_ROWS: u64 = 1 << 16;

/// The split of a fixed limit between the process, the writer, the slack and the pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Accounting {
    /// The limit.
    pub limit: u64,
    /// Resident when the target starts.
    pub process: u64,
    /// Set aside for the writer.
    pub writer: u64,
    /// Which writer, in words.
    pub writer_name: &'static str,
    /// Set aside for what no pool counts.
    pub slack: u64,
    /// DataFusion's pool: the rest.
    pub pool: u64,
    /// Rows per Parquet row group, when the writer is Parquet.
    pub row_group_rows: Option<u64>,
}

/// The least of the limit a DuckDB target gets.
const DUCKDB_MIN_SHARE: u64 = 64 << 20;

/// What a DuckDB load holds outside DuckDB's `memory_limit` (its catalog, the threads' chunks):
/// with the whole share as its limit, a sorted 8M-row load (tests/memory.rs) peaked 23 MiB above
/// a 256 MiB process limit; with this much of the share kept aside, 200 MiB (debug build).
const DUCKDB_UNMANAGED: u64 = 40 << 20;

/// DuckDB's `memory_limit` for a target whose share of the process limit is `share`: the share
/// less what DuckDB holds outside its buffer manager, at least 16 MiB.
pub fn duckdb_memory_limit(share: u64) -> u64 {
    share.saturating_sub(DUCKDB_UNMANAGED).max(16 << 20)
}

impl Accounting {
    /// Splits `limit` for a process holding `process` bytes now and writing with `writer`; an
    /// error naming the smallest workable limit when the pool would be under [`MIN_POOL`].
    pub fn new(limit: u64, process: u64, writer: Writer) -> Result<Accounting, String> {
        let slack = limit / 10;
        let (writer_bytes, writer_name, row_group_rows) = match writer {
            Writer::Parquet { row_bytes } => {
                let rows = Self::parquet_row_group_rows(limit, row_bytes);
                // The open row group, encoded (about half its decoded size, usually far less).
                (rows * row_bytes.max(1) / 2, "Parquet writer (one row group)", Some(rows))
            }
            // DuckDB: a quarter of the limit, at least 64 MiB; its `memory_limit` is
            // [`duckdb_memory_limit`] of that share.
            Writer::DuckDb => ((limit / 4).max(DUCKDB_MIN_SHARE), "DuckDB target", None),
            Writer::Postgres { streams } => (streams.max(1) as u64 * (4 << 20), "PostgreSQL COPY buffers", None),
        };
        let reserved = process + writer_bytes + slack;
        let pool = limit.saturating_sub(reserved);
        if pool < MIN_POOL {
            // Rounded up to 16 MiB: the process's own size varies a little from run to run.
            let smallest =
                (((process + writer_bytes + MIN_POOL) as f64 / 0.9).ceil() as u64).next_multiple_of(16 << 20);
            return Err(format!(
                "a memory limit of {} is too small for this target: the process holds {} already, the {writer_name} \
                 needs {}, and DataFusion needs at least {} to sort, join or aggregate; the smallest workable limit \
                 is about {} (--memory-limit {}MiB)",
                human_bytes(limit),
                human_bytes(process),
                human_bytes(writer_bytes),
                human_bytes(MIN_POOL),
                human_bytes(smallest),
                smallest >> 20
            ));
        }
        Ok(Accounting { limit, process, writer: writer_bytes, writer_name, slack, pool, row_group_rows })
    }

    /// Rows per Parquet row group under `limit` for rows of `row_bytes`: the open row group
    /// (encoded, about half its decoded size) gets at most an eighth of the limit.
    pub fn parquet_row_group_rows(limit: u64, row_bytes: u64) -> u64 {
        (limit / 8 * 2 / row_bytes.max(1)).clamp(MIN_ROW_GROUP_ROWS, DEFAULT_ROW_GROUP_ROWS)
    }

    /// One line for `dfpipe plan`.
    pub fn describe(&self) -> String {
        let rows = self.row_group_rows.map(|r| format!("; row groups of {r} rows")).unwrap_or_default();
        format!(
            "limit {} = process {} + {} {} + slack {} + DataFusion pool {}{rows}",
            human_bytes(self.limit),
            human_bytes(self.process),
            self.writer_name,
            human_bytes(self.writer),
            human_bytes(self.slack),
            human_bytes(self.pool)
        )
    }
}

/// What the code and read-only data a load runs in take once mapped back after a release: the
/// load itself runs in 13–17 MiB of code and 15 MiB of read-only data, and starting its plans
/// maps more for a moment, until the periodic release lets go of it
/// ([`super::code_pages::release_periodically`]).
pub const CODE_WHILE_LOADING: u64 = 40 << 20;

/// What the process holds for a target about to start: resident bytes once the code that was
/// touched so far is let go, plus [`CODE_WHILE_LOADING`] (None where it cannot be read).
pub fn process_holds() -> Option<u64> {
    super::code_pages::release();
    resident().map(|bytes| bytes + CODE_WHILE_LOADING)
}

/// Bytes resident in this process now (Linux; None elsewhere).
pub fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_what_the_rest_leaves() {
        let a = Accounting::new(256 << 20, 70 << 20, Writer::DuckDb).unwrap();
        assert_eq!((a.writer, a.slack), (64 << 20, (256 << 20) / 10));
        assert_eq!(a.pool, (256 << 20) - (70 << 20) - (64 << 20) - (256 << 20) / 10);
        let p = Accounting::new(512 << 20, 70 << 20, Writer::Parquet { row_bytes: 160 }).unwrap();
        assert_eq!(p.row_group_rows, Some((512 << 20) / 8 * 2 / 160));
    }

    #[test]
    fn a_limit_too_small_names_the_smallest_that_works() {
        let err = Accounting::new(100 << 20, 70 << 20, Writer::DuckDb).unwrap_err();
        assert!(
            err.starts_with("a memory limit of 100.0 MiB is too small for this target: the process holds 70.0 MiB"),
            "{err}"
        );
        assert!(err.ends_with("the smallest workable limit is about 192.0 MiB (--memory-limit 192MiB)"), "{err}");
        let ok = Accounting::new(192 << 20, 70 << 20, Writer::DuckDb).unwrap();
        assert!(ok.pool >= MIN_POOL);
    }

    #[test]
    fn resident_is_read_on_linux() {
        assert!(resident().unwrap() > 1 << 20);
    }
}
