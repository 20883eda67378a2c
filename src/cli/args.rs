//! The command line, with clap: what each command does and the flags they share.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Strategy;

const ABOUT: &str = "SQL-first data pipelines on Apache DataFusion";

const LONG_ABOUT: &str = "\
dfpipe runs data pipelines written as plain SQL. A project is one config file (dfpipe.yml)
and a directory of .sql files: every file is a model (a view named after the file) that may
read sources and other models by name. dfpipe parses the SQL to find the dependencies, plans
each output as one DataFusion query from the source files to the target, and writes it to an
embedded DuckDB file (the default), Parquet, or PostgreSQL.

Start here:
  dfpipe init demo && cd demo     create a project with sample data
  dfpipe plan                     see the DAG, the memory budget and each query plan
  dfpipe test                     run the data tests declared in dfpipe.yml
  dfpipe run                      check schemas and tests, then write every output
  dfpipe runs                     what recent runs did
  dfpipe query \"SELECT * FROM daily_revenue LIMIT 5\"";

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  a run failed: a source, a query or a target (failed targets keep their old contents)
  2  usage or config error: bad flags, invalid dfpipe.yml, SQL that does not parse,
     unknown references, dependency cycles
  3  a check stopped the run before it wrote anything: schema drift its on_schema_change
     policy refuses, a violated contract, or a failed data test (also `dfpipe test`)
  4  another dfpipe command is running on the project (its lock is held)
  130  interrupted (Ctrl-C): what targets were writing was not committed

Environment:
  DATABASE_URL, PG*             PostgreSQL connection (use ${VAR} in dsn:)
  AWS_*, GOOGLE_*, AZURE_*      object-store credentials and endpoints
  DFPIPE_LOCK_WAIT              how long to wait for a DuckDB file another process holds
                                (default 10s), e.g. an analyst's session on the warehouse
  RUST_LOG                      log filter, e.g. RUST_LOG=dfpipe=debug";

/// `dfpipe`: the command line.
#[derive(Debug, Parser)]
#[command(name = "dfpipe", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The project directory; its config is DIR/dfpipe.yml (or dfpipe.toml).
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    pub project: PathBuf,
    /// A variable for ${KEY} in the config; wins over the environment. Repeatable.
    #[arg(long = "vars", global = true, value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// A value for `$KEY` in the models' SQL (bound into the plan, not pasted into the text);
    /// wins over `params:` in the config. Repeatable: --param day=2024-01-31 --param min=10.
    #[arg(long = "param", global = true, value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Apply the overrides of `environments.NAME` from the config (e.g. dev, prod, a tenant).
    #[arg(long, global = true, value_name = "NAME")]
    pub env: Option<String>,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Memory budget for queries, e.g. 512MiB or 4GiB (overrides memory.limit in the config).
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_memory_limit)]
    pub memory_limit: Option<u64>,
    /// Force a memory strategy for every target instead of deciding from estimate / budget:
    /// in_memory (no spilling), spill (spilling pool), stream (small batches, spilling pool).
    #[arg(long, global = true, value_enum, value_name = "STRATEGY")]
    pub strategy: Option<Strategy>,
    /// Run the outputs' queries on a Ballista cluster (`dfpipe scheduler` + `dfpipe executor`);
    /// this process still writes the targets. Overrides `cluster:` in the config.
    #[arg(long, global = true, value_name = "df://HOST:PORT", env = "DFPIPE_CLUSTER")]
    pub cluster: Option<String>,
}

fn parse_memory_limit(s: &str) -> Result<u64, String> {
    crate::config::parse_size(s)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a size; write e.g. 512MiB or 4GiB"))
}

/// Orders `dfpipe init` generates unless `--orders` says otherwise.
pub const DEMO_ORDERS: usize = 100_000;

/// Output formats of `dfpipe query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Output formats of `dfpipe runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunsFormat {
    /// An aligned table.
    Table,
    /// A JSON array.
    Json,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Model selection, dbt style.
#[derive(Debug, Args, Default, Clone)]
pub struct SelectArgs {
    /// Models to include: NAME, NAME+ (and downstream), +NAME (and upstream). Repeatable or
    /// space-separated. Default: all.
    #[arg(short, long, value_name = "SELECTOR", num_args = 1..)]
    pub select: Vec<String>,
    /// Models to leave out, same syntax as --select.
    #[arg(long, value_name = "SELECTOR", num_args = 1..)]
    pub exclude: Vec<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a project with three models and generated sample data.
    ///
    /// The project runs as-is: no network, no server. Its output is an embedded DuckDB file
    /// (dfpipe.duckdb) and a Parquet file.
    Init {
        /// Where to create it (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// How many sample orders to generate.
        #[arg(long, default_value_t = DEMO_ORDERS)]
        orders: usize,
        /// Overwrite the demo files of an existing project.
        #[arg(long)]
        force: bool,
    },
    /// Show the DAG, the memory settings and each target's optimized logical plan.
    ///
    /// Checks everything `run` checks (config, SQL, sources) without writing anything.
    Plan {
        /// Which models.
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Check schemas, contracts and data tests, then write the outputs.
    ///
    /// Before anything is written: schema drift against the catalog's baselines (on_schema_change),
    /// declared contracts, and error-level data tests; any failure exits with 3. Targets then
    /// run in dependency order; each is written atomically (a failed target keeps its previous
    /// contents). Results go to <state_dir>/run_results.json and the catalog.
    Run {
        /// Which models.
        #[command(flatten)]
        select: SelectArgs,
        /// Stop at the first failed target and skip the rest.
        #[arg(short = 'x', long)]
        fail_fast: bool,
        /// Incremental outputs: rebuild from `begin` (time), from every file (files) or without a
        /// mark (cursor), and swap the result in with the state reset, in one commit. A failure
        /// leaves the old table and the old state.
        #[arg(long)]
        full_refresh: bool,
        /// `by: time` outputs: restate the windows from this instant (UTC, on a grain boundary,
        /// e.g. 2024-03-01 or 2024-03-01T06:00:00); needs --end.
        #[arg(long, requires = "end", value_name = "T")]
        start: Option<String>,
        /// `by: time` outputs: restate the windows up to this instant (excluded); needs --start.
        #[arg(long, requires = "start", value_name = "T")]
        end: Option<String>,
    },
    /// Run the data tests (`tests:` in dfpipe.yml) of the selected models and their sources.
    ///
    /// Prints PASS, WARN or FAIL per test, with the failing rows' count and a few samples.
    /// Exits with 3 when an error-level test fails. `run` runs the same tests before writing.
    Test {
        /// Which models.
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Inspect and accept the schemas the catalog remembers (drift detection).
    ///
    /// Every run records the schema of each source, model and target in the catalog
    /// (<state_dir>/catalog.duckdb); a successful run's source and model schemas become the
    /// baselines the next run is checked against before it writes anything.
    Schema {
        /// What to do.
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Write the project's documentation: a static page (no network needed) with the DAG,
    /// every source, model and target, column lineage, tests, schema history and runs.
    ///
    /// Open `<state_dir>/docs/index.html` (or `--out DIR`) in a browser; `--serve` serves it.
    Docs {
        /// Where to write the site (default `<state_dir>/docs`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Serve it on localhost after writing it.
        #[arg(long)]
        serve: bool,
        /// The port `--serve` listens on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// The state of incremental outputs: complete windows, cursor marks, loaded files.
    ///
    /// The state is read from each target (its `_dfpipe_loads` table, committed with the rows),
    /// so it is what the next run will act on.
    State {
        /// What to do.
        #[command(subcommand)]
        command: StateCommand,
    },
    /// List recent runs from the catalog: status, strategy, rows, time, peak memory.
    Runs {
        /// How many runs (at least 1).
        #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = RunsFormat::Table)]
        format: RunsFormat,
    },
    /// Where a column comes from, or (--downstream) what derives from it.
    ///
    /// Read from DataFusion's plans of the models, not from the SQL text: through CTEs,
    /// subqueries, joins, unions, aggregates, window functions and `SELECT *` chains, down to
    /// source columns. Each step says how: passed through, renamed, computed, aggregated, or
    /// only a join key or a filter. Example: dfpipe lineage daily_revenue.revenue
    Lineage {
        /// MODEL.COLUMN, or SOURCE.COLUMN with --downstream.
        column: String,
        /// Everything that derives from the column, up to the targets written.
        #[arg(long)]
        downstream: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = LineageFormat::Text)]
        format: LineageFormat,
    },
    /// Run SQL against the DuckDB warehouse (read-only) and print the result.
    Query {
        /// The SQL, in DuckDB's dialect.
        sql: String,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
        /// The DuckDB connection to query (default: warehouse).
        #[arg(long, short, value_name = "NAME")]
        connection: Option<String>,
    },
    /// Start a Ballista scheduler for `dfpipe run --cluster df://HOST:PORT`.
    ///
    /// Runs until stopped. Executors (`dfpipe executor`) register with it; clients send it each
    /// output's query, and it plans the query, cuts it into stages and hands tasks to the
    /// executors. It reads object stores with the `AWS_*`/`GOOGLE_*`/`AZURE_*` credentials of its
    /// environment. Example: dfpipe scheduler --bind 0.0.0.0:50050
    Scheduler {
        /// The address to listen on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// Seconds an executor may go silent before its tasks are run on others (at least 10).
        /// An executor whose slots are all busy is silent until a task ends: keep this above
        /// the longest task, or its work is run twice (the result stays right).
        #[arg(long, value_name = "SECONDS", default_value_t = 180)]
        executor_timeout: u64,
    },
    /// Start a Ballista executor that runs the tasks of a scheduler's jobs.
    ///
    /// Runs until stopped. It has dfpipe's functions, reads object stores with the credentials
    /// of its environment, and bounds its tasks' memory by --memory-limit (default: the RAM
    /// really available), split evenly between its slots. It asks the scheduler for tasks and
    /// serves shuffle data to other executors and clients on --bind.
    /// Example: dfpipe executor --scheduler localhost:50050 --bind 0.0.0.0:50051 --slots 4
    Executor {
        /// The scheduler to register with.
        #[arg(long, value_name = "HOST:PORT", default_value = "localhost:50050")]
        scheduler: String,
        /// Tasks run at once (default: one per core).
        #[arg(long, value_name = "N")]
        slots: Option<usize>,
        /// The address to serve shuffle data on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
        bind: std::net::SocketAddr,
        /// The host name the scheduler, other executors and clients reach this one by (default:
        /// --bind's address).
        #[arg(long, value_name = "HOST")]
        external_host: Option<String>,
        /// Where shuffle files and spills go (default: a temporary directory).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
}

/// How `dfpipe lineage` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LineageFormat {
    /// A tree.
    Text,
    /// Nested JSON: relation, column, kind (source, model, target), how, children.
    Json,
}

/// `dfpipe schema …`.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// The current schema of sources and models (all, or those named), and whether it matches
    /// its baseline.
    Show {
        /// Sources or models.
        names: Vec<String>,
    },
    /// What changed since the baseline, as a run would report it. Exits with 3 when a run
    /// would stop on it.
    Diff {
        /// Sources or models.
        names: Vec<String>,
    },
    /// Every schema recorded for a source, model or target, newest first, with its changes.
    History {
        /// A source, model or target label (e.g. warehouse.daily_revenue).
        name: String,
    },
    /// Take the current schema as the new baseline (after an intended change).
    Accept {
        /// Sources or models.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `dfpipe state …`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Per incremental output (all, or those whose target or model is named): its kind, loads,
    /// complete windows and gaps, cursor mark, or loaded files.
    Show {
        /// Targets (e.g. warehouse.events) or models.
        targets: Vec<String>,
    },
    /// Make loaded files of a `by: files` output load again at the next run.
    Forget {
        /// The target (e.g. warehouse.events) or its model.
        target: String,
        /// Files to forget: a glob matched against each file's path relative to the project, its
        /// full location, and its name (e.g. 'data/2024-01-*.csv').
        #[arg(long, value_name = "GLOB")]
        files: String,
    },
}

/// Splits `--vars KEY=VALUE` flags.
pub fn parse_vars(vars: &[String]) -> crate::error::Result<std::collections::BTreeMap<String, String>> {
    parse_pairs("--vars", vars)
}

/// Splits repeated `FLAG KEY=VALUE` flags.
pub fn parse_pairs(flag: &str, pairs: &[String]) -> crate::error::Result<std::collections::BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| crate::error::Error::Usage(format!("{flag} {kv}: expected KEY=VALUE")))
        })
        .collect()
}
