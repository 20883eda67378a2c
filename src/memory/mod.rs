//! Memory: the budget a run has ([`budget`]: the RAM really available, the cgroup, the
//! margin, `--memory-limit`), the decoded size each target will read ([`estimate`]), and the
//! strategy each target runs with and the DataFusion settings it maps to ([`strategy`]); under a
//! fixed limit, how it is split between the process, the writer and the pool ([`accounting`]);
//! the allocator's tuning that makes the split hold ([`allocator`]), the external sort that
//! replaces DataFusion's for sorts into one partition ([`external_sort`]), each sort partition's share
//! of the pool ([`sort_share`]), the compaction of string views before a sort buffers them and
//! after it emits them, so the pool counts what is held ([`compact_views`]), the room a sort
//! leaves for the merge that spills it ([`merge_room`]), the pass-through node both put beside
//! sorts ([`sort_steps`]),
//! the sort-merge joins of one-partition plans ([`spilling_joins`]), letting go of the code that
//! setup touched ([`code_pages`]), and the cache that keeps Parquet footers without their page
//! indexes ([`footer_cache`]).
//!
//! May import: [`crate::config`] and [`crate::util`]; Arrow/DataFusion types only otherwise.

pub mod accounting;
pub mod allocator;
pub mod budget;
pub mod code_pages;
pub mod compact_views;
pub mod estimate;
pub mod external_sort;
pub mod footer_cache;
pub mod merge_room;
pub mod sort_share;
pub mod sort_steps;
pub mod spilling_joins;
pub mod strategy;

pub use budget::{MemoryBudget, peak_rss};
