//! dfpipe: SQL-first data pipelines on Apache DataFusion.
//!
//! Data flows one way: [`config`] (dfpipe.yml → checked [`config::Config`]) → [`project`]
//! (SQL models and their DAG) → [`pipeline`] (one DataFusion session: sources as listing tables,
//! models as views) → [`run`] (each output planned as `INSERT INTO target SELECT * FROM model`
//! under the [`memory`] budget and a per-target [`strategy`]) → [`sinks`] (DuckDB, PostgreSQL,
//! Parquet). Beside them, the [`catalog`] remembers every run and schema, and [`drift`] judges
//! schema changes before anything is written.
#![deny(missing_docs)]

pub mod catalog;
pub mod clean;
pub mod cli;
pub mod config;
pub mod drift;
pub mod error;
pub mod estimate;
pub mod explain;
pub mod functions;
pub mod history;
pub mod init;
pub mod logging;
pub mod memory;
pub mod object_stores;
pub mod pipeline;
pub mod progress;
pub mod project;
pub mod quality;
pub mod quarantine;
pub mod query;
pub mod run;
pub mod session;
pub mod sinks;
pub mod sources;
pub mod strategy;
pub mod suggest;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use cli::{Cli, Command, LogFormat, SelectArgs};
use config::LoadOptions;
use error::{Error, Result};
use pipeline::Pipeline;
use project::{Project, Selection};

/// Runs a parsed command line; returns the exit code for a run that completed (errors are
/// returned as [`Error`] and map to codes with [`Error::exit_code`]).
pub async fn execute(cli: Cli) -> Result<u8> {
    let load = LoadOptions {
        env: cli.global.env.clone(),
        vars: parse_vars(&cli.global.vars)?,
        memory_limit: cli.global.memory_limit,
        strategy: cli.global.strategy,
    };
    match cli.command {
        Command::Init { dir, orders, force } => {
            init::init(&dir, orders, force)?;
            println!("created a dfpipe project in {}\nnext: cd {} && dfpipe run", dir.display(), dir.display());
            Ok(error::EXIT_OK)
        }
        Command::Plan { select } => {
            let pipeline = prepare(config::load(&cli.global.project, &load)?, &select).await?;
            print!("{}", explain::render(&pipeline).await?);
            Ok(error::EXIT_OK)
        }
        Command::Run { select, fail_fast } => {
            let started_at = chrono::Utc::now();
            let config = config::load(&cli.global.project, &load)?;
            let (name, state_dir) = (config.name.clone(), config.state_dir.clone());
            // One run per project at a time; the catalog records it from its start.
            let _lock = catalog::lock::ProjectLock::acquire(&state_dir, "run")?;
            let catalog = catalog::Catalog::new(&state_dir);
            let run_id = catalog.begin_run(&name, "run", started_at)?;
            let prepared = match prepare(config, &select).await {
                Ok(pipeline) => checks(&pipeline, &catalog, run_id).await.map(|report| (pipeline, report)),
                Err(e) => Err(e),
            };
            let (pipeline, drift) = match prepared {
                Ok(prepared) => prepared,
                Err(e) => {
                    let results = run::RunResults::failed_before_start(&name, started_at, e.to_string());
                    let status = match &e {
                        Error::Drift(_) => "drift",
                        Error::Contract(_) => "contract",
                        Error::Test(_) => "test",
                        _ => "error",
                    };
                    for outcome in [
                        run::write_results(&state_dir, &results),
                        catalog.finish_run(run_id, &results, Some(status), &[]),
                    ] {
                        if let Err(write_error) = outcome {
                            tracing::warn!("{write_error}");
                        }
                    }
                    return Err(e);
                }
            };
            let progress =
                !cli.global.quiet && cli.global.log_format == LogFormat::Text && std::io::stderr().is_terminal();
            let options = run::RunOptions { fail_fast, progress, evolutions: drift.evolutions() };
            let results = run::run(&pipeline, &options).await?;
            if results.status == run::Status::Success {
                catalog.accept_run(run_id)?;
            }
            catalog.finish_run(run_id, &results, None, &catalog::observe::target_schemas(&pipeline, &results).await)?;
            if !cli.global.quiet {
                print!("{}", run::summary(&results));
            }
            let failed: Vec<&run::TargetResult> =
                results.targets.iter().filter(|t| t.status == run::Status::Error).collect();
            for target in &failed {
                eprintln!("error: {}", target.error.as_deref().unwrap_or("failed"));
            }
            if failed.is_empty() {
                Ok(error::EXIT_OK)
            } else {
                Err(Error::TargetsFailed { failed: failed.len(), total: results.targets.len() })
            }
        }
        Command::Schema { command } => {
            let config = config::load(&cli.global.project, &load)?;
            let catalog = catalog::Catalog::new(&config.state_dir);
            let state_dir = config.state_dir.clone();
            let all = SelectArgs::default();
            match command {
                cli::SchemaCommand::History { name } => print!("{}", history::history(&catalog, &name)?),
                cli::SchemaCommand::Show { names } => {
                    let pipeline = prepare(config, &all).await?;
                    print!("{}", history::show(&pipeline, &catalog, &names).await?);
                }
                cli::SchemaCommand::Diff { names } => {
                    let pipeline = prepare(config, &all).await?;
                    let (text, refused) = history::diff_now(&pipeline, &catalog, &names).await?;
                    print!("{text}");
                    if refused {
                        return Ok(error::EXIT_CHECK_FAILED);
                    }
                }
                cli::SchemaCommand::Accept { names } => {
                    let _lock = catalog::lock::ProjectLock::acquire(&state_dir, "schema accept")?;
                    let pipeline = prepare(config, &all).await?;
                    print!("{}", history::accept(&pipeline, &catalog, &names).await?);
                }
            }
            Ok(error::EXIT_OK)
        }
        Command::Test { select } => {
            let pipeline = prepare(config::load(&cli.global.project, &load)?, &select).await?;
            let results = quality::run(&pipeline, &pipeline.needed_relations(), false).await?;
            print!("{}", quality::report(&results));
            Ok(if results.iter().any(|r| r.outcome == quality::Outcome::Fail) {
                error::EXIT_CHECK_FAILED
            } else {
                error::EXIT_OK
            })
        }
        Command::Runs { limit, format } => {
            let config = config::load(&cli.global.project, &load)?;
            print!("{}", history::runs(&catalog::Catalog::new(&config.state_dir), limit, format)?);
            Ok(error::EXIT_OK)
        }
        Command::Query { sql, format, connection } => {
            let config = config::load(&cli.global.project, &load)?;
            let path = duckdb_path(&config, connection.as_deref())?;
            let batches = query::query(&path, &sql)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match query::print(&batches, format, &mut out).and_then(|_| out.flush()) {
                Ok(()) => Ok(error::EXIT_OK),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(error::EXIT_OK),
                Err(e) => Err(Error::Run(format!("cannot write the result: {e}"))),
            }
        }
    }
}

/// What a run checks before it writes: schemas (drift, contracts), then data tests.
async fn checks(pipeline: &Pipeline, catalog: &catalog::Catalog, run_id: i64) -> Result<catalog::observe::DriftReport> {
    let drift = catalog::observe::preflight(pipeline, catalog, run_id).await?;
    let results = quality::run(pipeline, &pipeline.needed_relations(), true).await?;
    catalog.record_tests(run_id, &results)?;
    for r in results.iter().filter(|r| r.outcome == quality::Outcome::Warn) {
        tracing::warn!(relation = %r.relation, "data test {} failed: {}", r.test, r.message.as_deref().unwrap_or(""));
    }
    match quality::failed(&results) {
        Some(e) => Err(e),
        None => Ok(drift),
    }
}

async fn prepare(config: config::Config, select: &SelectArgs) -> Result<Pipeline> {
    let project = Project::load(config)?;
    let selection = Selection { select: select.select.clone(), exclude: select.exclude.clone() };
    Pipeline::prepare(project, &selection).await
}

/// The DuckDB file of connection `name` (default: the warehouse).
fn duckdb_path(config: &config::Config, name: Option<&str>) -> Result<std::path::PathBuf> {
    let name = name.unwrap_or(config::DEFAULT_CONNECTION);
    config.duckdb_files.get(name).cloned().ok_or_else(|| {
        Error::Usage(format!(
            "no DuckDB connection named `{name}`{}; DuckDB connections: {}",
            suggest::did_you_mean(name, config.duckdb_files.keys().map(String::as_str)),
            config.duckdb_files.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Splits `--vars KEY=VALUE` flags.
pub fn parse_vars(vars: &[String]) -> Result<BTreeMap<String, String>> {
    vars.iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Error::Usage(format!("--vars {kv}: expected KEY=VALUE")))
        })
        .collect()
}
