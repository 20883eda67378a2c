//! dfpipe: SQL-first data pipelines on Apache DataFusion.
//!
//! Data flows one way: [`config`] (dfpipe.yml → checked [`config::Config`]) → [`project`]
//! (SQL models and their DAG) → [`engine`] (one DataFusion session: sources as listing tables,
//! models as views; each output's [`memory`] strategy) → [`sinks`] (DuckDB, PostgreSQL,
//! Parquet). Beside the flow, [`checks`] test the data, [`schema`] compares snapshots and the
//! [`catalog`] remembers every run and schema. [`commands`] orchestrate one command each;
//! [`cli`] holds the arguments; [`util`] and [`error`] are leaves everything may use.
//!
//! Each module's doc says what it owns and what it may import; nothing imports upward.
#![deny(missing_docs)]

pub mod catalog;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod memory;
pub mod project;
pub mod schema;
pub mod sinks;
pub mod util;

use cli::{Cli, Command};
use config::LoadOptions;
use error::Result;

/// Runs a parsed command line; returns the exit code for a command that completed (errors are
/// returned as [`error::Error`] and map to codes with [`error::Error::exit_code`]).
pub async fn execute(cli: Cli) -> Result<u8> {
    let load = LoadOptions {
        env: cli.global.env.clone(),
        vars: cli::parse_vars(&cli.global.vars)?,
        params: cli::parse_pairs("--param", &cli.global.params)?,
        memory_limit: cli.global.memory_limit,
        strategy: cli.global.strategy,
        cluster: cli.global.cluster.clone(),
    };
    let Cli { global, command } = cli;
    let project = global.project.clone();
    // `run` handles Ctrl-C itself (it records the interruption); the others just stop.
    if let Command::Run { select, fail_fast, full_refresh, start, end } = command {
        let incremental = commands::run::incremental::IncrementalOptions::parse(full_refresh, start, end)?;
        return commands::run::command(&project, &load, &select, fail_fast, &incremental, &global).await;
    }
    tokio::select! {
        outcome = other_command(command, &project, &load) => outcome,
        _ = tokio::signal::ctrl_c() => Err(error::Error::Interrupted),
    }
}

/// Every command but `run`.
async fn other_command(command: Command, project: &std::path::Path, load: &LoadOptions) -> Result<u8> {
    match command {
        Command::Init { dir, orders, force } => commands::init::command(&dir, orders, force),
        Command::Run { .. } => unreachable!("`run` is dispatched by execute"),
        Command::Plan { select } => commands::plan::command(config::load(project, load)?, &select).await,
        Command::Test { select } => commands::test::command(config::load(project, load)?, &select).await,
        Command::Schema { command } => commands::schema::command(config::load(project, load)?, command).await,
        Command::Lineage { column, downstream, format } => {
            commands::lineage::command(config::load(project, load)?, &column, downstream, format).await
        }
        Command::Docs { out, serve, port } => {
            commands::docs::command(config::load(project, load)?, out.as_deref(), serve, port).await
        }
        Command::State { command } => commands::state::command(&config::load(project, load)?, command).await,
        Command::Runs { limit, format } => {
            commands::runs::command(&config::load(project, load)?, limit as usize, format)
        }
        Command::Query { sql, format, connection } => {
            commands::query::command(&config::load(project, load)?, &sql, format, connection.as_deref())
        }
        Command::Scheduler { bind, executor_timeout } => commands::cluster::scheduler(bind, executor_timeout).await,
        Command::Executor { scheduler, slots, bind, external_host, work_dir } => {
            let options = commands::cluster::ExecutorArgs { scheduler, slots, bind, external_host, work_dir };
            commands::cluster::executor(options, load.memory_limit).await
        }
    }
}
