//! The DataFusion side of a project: one session ([`session`]) with object stores
//! ([`object_stores`]) and SQL-defined functions ([`functions`]); sources registered as listing
//! tables ([`sources`]) behind their cleaning views ([`clean`]); models as views, their `$name`
//! placeholders bound ([`params`]); the prepared
//! [`pipeline`] with each output's memory decision (a model several targets read
//! [`computed_once`] when it fits); what a run observes of it before
//! writing ([`observe`]: schemas, files read); column [`lineage`] read from the plans; and the
//! [`cluster`] path (outputs' queries run on Ballista, scheduler and executor set-up).
//!
//! May import: [`crate::config`], [`crate::project`], [`crate::memory`], [`crate::schema`],
//! [`crate::util`]. Never the checks, the catalog, the sinks or the commands.

pub mod clean;
pub mod cluster;
pub mod computed_once;
pub mod diagnose;
pub mod functions;
pub mod hive_value;
pub mod incremental;
pub mod json_keys;
pub mod lineage;
pub mod new_files;
pub mod object_stores;
pub mod observe;
pub mod params;
pub mod pipeline;
pub mod plain_decimal;
pub mod session;
pub mod source_files;
pub mod sources;
pub mod sql_types;
