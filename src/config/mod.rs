//! The project config: `dfpipe.yml` (or `dfpipe.toml`) parsed into [`RawConfig`], then checked
//! into [`Config`], which the rest of dfpipe uses without re-checking anything.
//!
//! Steps, in order ([`load()`]): read the file; parse it strictly (unknown keys are errors with a
//! did-you-mean, and errors carry the file, line and column); merge the `--env` overlay; resolve
//! `${VAR}` references; resolve paths against the project directory; check cross-field rules
//! ([`check`]).
//!
//! Files: [`raw`] (serde structs, exactly what the file holds), [`types`] (the plain values a
//! config holds: modes, policies, strategies, formats, table names, secrets, sizes), `load`
//! (files, parse errors with snippets, environment overlays), [`check`] (raw → checked),
//! [`interpolate`] (`${VAR}`), [`sniff`] (formats from file names and directories), and
//! [`data_tests`] (the `tests:` rules).
//!
//! May import: [`crate::error`] and [`crate::util`] only. Everything else imports the config.

pub mod check;
pub mod data_tests;
pub mod incremental;
pub mod interpolate;
mod load;
pub mod params;
pub mod raw;
pub mod sniff;
pub mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use data_tests::{DataTest, Rule};
pub use interpolate::{InterpolateError, Vars, locate};
pub use load::{find_config_file, load, parse};
pub use raw::{RawConfig, RawSourceOptions};
pub use sniff::infer_format;
pub use types::{
    ClusterUrl, ConnectionKind, Format, Mode, Naming, OnInvalid, Policy, Secret, Severity, Strategy, TableName,
    parse_size,
};

/// File names dfpipe looks for in the project directory, in order.
pub const CONFIG_FILES: [&str; 3] = ["dfpipe.yml", "dfpipe.yaml", "dfpipe.toml"];
/// The connection an output without `to:` writes to.
pub const DEFAULT_CONNECTION: &str = "warehouse";
/// The DuckDB file of the implicit `warehouse` connection.
pub const DEFAULT_DUCKDB_FILE: &str = "dfpipe.duckdb";

/// The longest name PostgreSQL keeps, in bytes (NAMEDATALEN - 1); it cuts longer ones.
pub const POSTGRES_NAME_BYTES: usize = 63;

/// How long a PostgreSQL load waits for another writer of its table, and a `replace` for
/// readers of the old table, unless the connection sets `swap_timeout`.
pub const DEFAULT_SWAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// How the config was asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--env NAME`.
    pub env: Option<String>,
    /// `--vars KEY=VALUE`, already split.
    pub vars: BTreeMap<String, String>,
    /// `--memory-limit`, in bytes; wins over `memory.limit`.
    pub memory_limit: Option<u64>,
    /// `--strategy`; wins over `memory.strategy`.
    pub strategy: Option<Strategy>,
    /// `--param KEY=VALUE`, already split; wins over `params:`.
    pub params: BTreeMap<String, String>,
    /// `--cluster df://HOST:PORT` (or `DFPIPE_CLUSTER`); wins over `cluster:`.
    pub cluster: Option<String>,
}

/// The checked config of one project.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project's name.
    pub name: String,
    /// The project directory (absolute).
    pub project_dir: PathBuf,
    /// The config file that was read.
    pub file: PathBuf,
    /// Sources by name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// The directory holding the `.sql` models.
    pub models_dir: PathBuf,
    /// The directory holding `.sql` files of `CREATE FUNCTION` statements.
    pub functions_dir: PathBuf,
    /// The declared outputs, or `None` when every model goes to the default warehouse.
    pub outputs: Option<Vec<OutputConfig>>,
    /// Where outputs without `to:` go.
    pub default_target: DuckDbTarget,
    /// The database file of every DuckDB connection (the implicit warehouse included).
    pub duckdb_files: BTreeMap<String, PathBuf>,
    /// Memory settings.
    pub memory: MemoryConfig,
    /// Object-store settings.
    pub storage: StorageConfig,
    /// The state directory (run results, spill files by default).
    pub state_dir: PathBuf,
    /// DataFusion settings to apply, as `(key, value)`.
    pub datafusion: Vec<(String, String)>,
    /// The default `on_schema_change` policy.
    pub on_schema_change: Policy,
    /// Declared columns of sources and models, by name.
    pub contracts: BTreeMap<String, Vec<ColumnContract>>,
    /// Data tests, in the order declared.
    pub tests: Vec<DataTest>,
    /// Values of `$name` placeholders: `params:`, with `--param` over them.
    pub params: BTreeMap<String, params::Param>,
    /// Where OpenLineage run events go, when set.
    pub openlineage: Option<OpenLineageConfig>,
    /// The Ballista scheduler the outputs' queries run on, when set (`df://HOST:PORT`).
    pub cluster: Option<ClusterUrl>,
}

/// Where OpenLineage events go.
#[derive(Debug, Clone)]
pub enum OpenLineageSink {
    /// Posted to this URL (the full endpoint).
    Http {
        /// The endpoint.
        url: String,
        /// A bearer token.
        api_key: Option<Secret>,
    },
    /// Appended to this file as JSON lines.
    File(PathBuf),
}

/// `lineage.openlineage:`, checked.
#[derive(Debug, Clone)]
pub struct OpenLineageConfig {
    /// Where the events go.
    pub sink: OpenLineageSink,
    /// The jobs' namespace.
    pub namespace: String,
    /// How long one post may take.
    pub timeout: std::time::Duration,
}

/// One declared column of a source or model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnContract {
    /// The column's name.
    pub name: String,
    /// Its SQL type as written, if declared.
    pub sql_type: Option<String>,
    /// Whether it must hold no NULL.
    pub not_null: bool,
    /// What it holds (`description:`), for `dfpipe docs`.
    pub description: Option<String>,
}

/// One checked source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The name models refer to.
    pub name: String,
    /// As written in the config (after `${VAR}`), for messages.
    pub path: String,
    /// A URL or absolute local path (possibly with a glob).
    pub location: String,
    /// The file format.
    pub format: Format,
    /// Reading options, checked against the format.
    pub options: RawSourceOptions,
    /// Column type overrides: `(column, SQL type)`.
    pub schema: Vec<(String, String)>,
    /// Its `on_schema_change`, when set.
    pub on_schema_change: Option<Policy>,
    /// Its `clean:` options, when set.
    pub clean: Option<CleanConfig>,
    /// What it is (`description:`), for `dfpipe docs`.
    pub description: Option<String>,
}

/// A source's checked `clean:` options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CleanConfig {
    /// The naming rule.
    pub columns: Naming,
    /// `(column, SQL type)` casts.
    pub casts: Vec<(String, String)>,
    /// Detect date formats in every string column.
    pub auto_dates: bool,
    /// String columns to parse as dates or timestamps.
    pub dates: Vec<String>,
    /// Scale float columns are cast to DECIMAL(38, scale) with.
    pub decimals: Option<u8>,
}

/// A DuckDB table to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuckDbTarget {
    /// The connection's name.
    pub connection: String,
    /// The database file (absolute).
    pub path: PathBuf,
    /// The table.
    pub table: TableName,
}

/// Where an output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A table in an embedded DuckDB file.
    DuckDb(DuckDbTarget),
    /// A Parquet file or directory.
    Parquet {
        /// A URL or absolute local path.
        location: String,
        /// True for a single `.parquet` file, false for a directory of files.
        single_file: bool,
        /// The compression codec, as DataFusion spells it (e.g. `zstd(3)`).
        compression: String,
    },
    /// A PostgreSQL table.
    Postgres {
        /// The connection's name.
        connection: String,
        /// The table.
        table: TableName,
        /// The connection string; `None` means `DATABASE_URL`, else libpq's `PG*` variables.
        dsn: Option<Secret>,
        /// Parallel COPY streams for `replace`.
        copy_streams: usize,
        /// How long a load waits for another writer, and a `replace` for readers.
        swap_timeout: std::time::Duration,
    },
}

impl Target {
    /// A short, secret-free label: `warehouse.daily_revenue`, `out/daily.parquet`.
    pub fn label(&self, project_dir: &Path) -> String {
        match self {
            Target::DuckDb(t) => format!("{}.{}", t.connection, t.table),
            Target::Postgres { connection, table, .. } => format!("{connection}.{table}"),
            Target::Parquet { location, .. } => Path::new(location)
                .strip_prefix(project_dir)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| location.clone()),
        }
    }
}

impl Target {
    /// Where this output's quarantined rows go: `<table>_quarantine` beside a table, or
    /// `<name>_quarantine.parquet` / `<dir>_quarantine/` beside Parquet.
    pub fn quarantine(&self) -> Target {
        let mut target = self.clone();
        match &mut target {
            Target::DuckDb(t) => t.table.name.push_str("_quarantine"),
            Target::Postgres { table, .. } => table.name.push_str("_quarantine"),
            Target::Parquet { location, single_file, .. } => {
                *location = if *single_file {
                    match location.strip_suffix(".parquet") {
                        Some(stem) => format!("{stem}_quarantine.parquet"),
                        None => format!("{location}_quarantine"),
                    }
                } else {
                    format!("{}_quarantine/", location.trim_end_matches('/'))
                };
            }
        }
        target
    }

    /// What two outputs must not share, and how a message names it: a DuckDB table by file,
    /// schema and name without regard to case (DuckDB resolves names that way, quoted or not);
    /// a PostgreSQL table by connection, schema and name exactly as written (dfpipe quotes
    /// them, so PostgreSQL does not fold them); a Parquet output by path.
    pub fn identity(&self, project_dir: &Path) -> (String, String) {
        match self {
            Target::DuckDb(t) => {
                let schema = t.table.schema.as_deref().unwrap_or("main").to_lowercase();
                let name = t.table.name.to_lowercase();
                let file = t.path.strip_prefix(project_dir).unwrap_or(&t.path).display().to_string();
                (
                    format!("duckdb\0{}\0{schema}\0{name}", t.path.display()),
                    format!("DuckDB table `{schema}.{name}` of {file} (DuckDB table names ignore case)"),
                )
            }
            Target::Postgres { connection, table, .. } => {
                let schema = table.schema.as_deref().unwrap_or("public");
                (
                    format!("postgres\0{connection}\0{schema}\0{}", table.name),
                    format!("PostgreSQL table `{schema}.{}` of connection `{connection}`", table.name),
                )
            }
            Target::Parquet { location, .. } => {
                (format!("parquet\0{}", location.trim_end_matches('/')), format!("`{}`", self.label(project_dir)))
            }
        }
    }
}

/// One checked output.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// The model written.
    pub model: String,
    /// Where it goes.
    pub target: Target,
    /// How existing contents are treated.
    pub mode: Mode,
    /// merge: the key columns.
    pub unique_key: Vec<String>,
    /// Its `on_schema_change`, when set.
    pub on_schema_change: Option<Policy>,
    /// What happens to rows failing the model's row-level tests.
    pub on_invalid: OnInvalid,
    /// What a run loads when only new data is to be read.
    pub incremental: Option<incremental::IncrementalSpec>,
}

/// Memory settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    /// Fraction of available RAM kept free.
    pub os_margin: f64,
    /// A fixed budget in bytes, overriding the computed one.
    pub limit: Option<u64>,
    /// Where spill files go.
    pub spill_dir: Option<PathBuf>,
    /// A strategy forced for every target (None: decided per target).
    pub strategy: Option<Strategy>,
    /// Ratio estimate / budget up to which a target runs in memory.
    pub in_memory_below: f64,
    /// Ratio above which a target streams rather than spills.
    pub stream_above: f64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            os_margin: 0.3,
            limit: None,
            spill_dir: None,
            strategy: None,
            in_memory_below: 0.65,
            stream_above: 2.0,
        }
    }
}

/// Object-store client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Retries per request.
    pub max_retries: usize,
    /// Total time a request may spend retrying.
    pub retry_timeout_secs: u64,
}

impl Default for StorageConfig {
    /// 10 retries within 180 s.
    fn default() -> Self {
        StorageConfig { max_retries: 10, retry_timeout_secs: 180 }
    }
}
