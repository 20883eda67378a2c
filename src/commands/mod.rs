//! One file per command: each loads what it needs, runs, prints, and returns its exit code.
//! The orchestration of a run (lock, catalog, checks, targets, summary) lives in [`run`].
//!
//! May import everything below it: [`crate::cli`] (argument types), [`crate::config`],
//! [`crate::project`], [`crate::engine`], [`crate::memory`], [`crate::checks`],
//! [`crate::schema`], [`crate::catalog`], [`crate::sinks`], [`crate::util`]. Only `lib.rs`
//! imports the commands.

pub mod cluster;
pub mod docs;
pub mod init;
pub mod lineage;
pub mod plan;
pub mod query;
pub mod run;
pub mod runs;
pub mod schema;
pub mod state;
pub mod test;

use crate::cli::SelectArgs;
use crate::config::Config;
use crate::engine::pipeline::Pipeline;
use crate::error::{Error, Result};
use crate::project::{Project, Selection};

/// Loads the project of `config` and prepares the pipeline of the selected outputs.
pub async fn prepare(config: Config, select: &SelectArgs) -> Result<Pipeline> {
    let project = Project::load(config)?;
    let selection = Selection { select: select.select.clone(), exclude: select.exclude.clone() };
    Pipeline::prepare(project, &selection).await
}

/// Before anything runs: each selected PostgreSQL target's connection string reads (its
/// variables are set, its options known, its port a number), so a typo is a config error that
/// `plan` names too, not a failed target after the work. Commands that never connect skip it.
fn check_connections(pipeline: &Pipeline) -> Result<()> {
    for output in &pipeline.outputs {
        if let crate::config::Target::Postgres { connection, dsn, .. } = &output.target {
            let dsn = dsn.as_ref().map(crate::config::Secret::expose).transpose().map_err(Error::Config)?;
            crate::sinks::postgres::connect::config(dsn)
                .map_err(|e| Error::Config(format!("connection `{connection}`: {e}")))?;
        }
    }
    Ok(())
}

/// Every model: the selection of commands that take no `--select`.
fn select_all() -> SelectArgs {
    SelectArgs::default()
}
