//! The project config: `dfpipe.yml` (or `dfpipe.toml`) parsed into [`RawConfig`], then checked
//! into [`Config`], which the rest of dfpipe uses without re-checking anything.
//!
//! Steps, in order: read the file; parse it strictly (unknown keys are errors with a
//! did-you-mean, and errors carry the file, line and column); merge the `--env` overlay; resolve
//! `${VAR}` references; resolve paths against the project directory; check cross-field rules.

pub mod data_tests;
mod interpolate;
pub mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use data_tests::{DataTest, Rule};
pub use interpolate::{InterpolateError, Vars, locate};
pub use raw::{ConnectionKind, Format, Mode, Naming, OnInvalid, Policy, RawConfig, RawSourceOptions, Severity};

use crate::error::{Error, Result};
use crate::strategy::Strategy;
use crate::suggest::{did_you_mean, enrich_serde_message};

/// File names dfpipe looks for in the project directory, in order.
pub const CONFIG_FILES: [&str; 3] = ["dfpipe.yml", "dfpipe.yaml", "dfpipe.toml"];
/// The connection an output without `to:` writes to.
pub const DEFAULT_CONNECTION: &str = "warehouse";
/// The DuckDB file of the implicit `warehouse` connection.
pub const DEFAULT_DUCKDB_FILE: &str = "dfpipe.duckdb";

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

/// A table name, optionally schema-qualified.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    /// The schema, if given.
    pub schema: Option<String>,
    /// The table.
    pub name: String,
}

impl TableName {
    /// Parses `table` or `schema.table`.
    pub fn parse(s: &str) -> Option<TableName> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [name] if !name.is_empty() => Some(TableName { schema: None, name: name.to_string() }),
            [schema, name] if !schema.is_empty() && !name.is_empty() => {
                Some(TableName { schema: Some(schema.to_string()), name: name.to_string() })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that needs it (opening a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
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

/// Finds the config file of the project in `dir`.
pub fn find_config_file(dir: &Path) -> Result<PathBuf> {
    CONFIG_FILES.iter().map(|name| dir.join(name)).find(|p| p.is_file()).ok_or_else(|| {
        Error::Config(format!(
            "no dfpipe.yml in {}: run `dfpipe init {}` to create a project there, or pass --project DIR",
            dir.display(),
            dir.display()
        ))
    })
}

/// Reads, parses and checks the config of the project in `project_dir`.
pub fn load(project_dir: &Path, options: &LoadOptions) -> Result<Config> {
    let project_dir = std::path::absolute(project_dir)
        .map_err(|e| Error::Config(format!("cannot resolve project directory {}: {e}", project_dir.display())))?;
    let file = find_config_file(&project_dir)?;
    let text =
        std::fs::read_to_string(&file).map_err(|e| Error::Config(format!("cannot read {}: {e}", file.display())))?;
    let label = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let raw = parse(&text, &label, is_toml(&file))?;
    let raw = match &options.env {
        Some(env) => apply_environment(raw, &text, &label, is_toml(&file), env)?,
        None => raw,
    };
    let checker =
        Checker { text: &text, label: &label, vars: Vars::new(options.vars.clone()), project_dir: &project_dir };
    let mut config = checker.check(raw, file.clone())?;
    if let Some(limit) = options.memory_limit {
        config.memory.limit = Some(limit);
    }
    if options.strategy.is_some() {
        config.memory.strategy = options.strategy;
    }
    Ok(config)
}

fn is_toml(file: &Path) -> bool {
    file.extension().is_some_and(|e| e == "toml")
}

/// Parses config text strictly; errors name `label` with line and column.
pub fn parse(text: &str, label: &str, toml: bool) -> Result<RawConfig> {
    let (message, place) = if toml {
        match toml::from_str::<RawConfig>(text) {
            Ok(raw) => return Ok(raw),
            Err(e) => (e.message().to_string(), e.span().map(|span| line_and_column(text, span.start))),
        }
    } else {
        match serde_saphyr::from_str::<RawConfig>(text) {
            Ok(raw) => return Ok(raw),
            Err(e) => {
                let place = e.location().map(|l| (l.line() as usize, l.column() as usize)).filter(|(l, _)| *l > 0);
                let message = e.without_snippet().to_string();
                // serde-saphyr renders "error: line L column C: message"; the place is shown our way.
                let message = match message.split_once(": ") {
                    Some((head, rest)) if head.starts_with("error") || head.starts_with("line ") => rest
                        .split_once(": ")
                        .filter(|(h, _)| h.starts_with("line "))
                        .map_or(rest, |(_, r)| r)
                        .to_string(),
                    _ => message,
                };
                (message, place)
            }
        }
    };
    let message = enrich_serde_message(&strip_location(&message));
    Err(Error::Config(match place {
        Some((line, column)) => format!("{label}:{line}:{column}: {message}\n{}", snippet(text, line, column)),
        None => format!("{label}: {message}"),
    }))
}

/// Drops an " at line L, column C" a parser put inside its message: dfpipe shows the place as
/// `file:line:column` in front.
fn strip_location(message: &str) -> String {
    let Some(at) = message.find(" at line ") else { return message.to_string() };
    let rest = &message[at + " at line ".len()..];
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let after_line = &rest[digits(rest)..];
    let Some(col) = after_line.strip_prefix(", column ") else { return message.to_string() };
    format!("{}{}", &message[..at], &col[digits(col)..])
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

/// The offending line with a caret under the column.
fn snippet(text: &str, line: usize, column: usize) -> String {
    let source = text.lines().nth(line - 1).unwrap_or_default();
    let gutter = line.to_string();
    format!("{gutter} | {source}\n{} | {}^", " ".repeat(gutter.len()), " ".repeat(column.saturating_sub(1)))
}

fn parse_value(text: &str, toml: bool) -> std::result::Result<serde_json::Value, String> {
    if toml {
        toml::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())
    }
}

/// Merges `environments.<env>` over the rest of the config.
fn apply_environment(raw: RawConfig, text: &str, label: &str, toml: bool, env: &str) -> Result<RawConfig> {
    let Some(overlay) = raw.environments.get(env) else {
        let known: Vec<&str> = raw.environments.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "--env {env}: {label} declares no environment `{env}`{}{}",
            if known.is_empty() { String::new() } else { format!(" (declared: {})", known.join(", ")) },
            did_you_mean(env, known.iter().copied())
        )));
    };
    let mut base = parse_value(text, toml).map_err(|e| Error::Config(format!("{label}: {e}")))?;
    merge(&mut base, overlay);
    serde_json::from_value::<RawConfig>(base)
        .map_err(|e| Error::Config(format!("{label}: environments.{env}: {}", enrich_serde_message(&e.to_string()))))
}

/// Deep-merges `overlay` into `base`: objects merge key by key, everything else replaces.
fn merge(base: &mut serde_json::Value, overlay: &serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(base), serde_json::Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

/// Parses sizes such as `512MiB`, `4GB`, `2g`, `1048576`. Binary and decimal suffixes both
/// count in powers of 1024, as memory settings usually mean.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    (number >= 0.0).then(|| (number * multiplier as f64) as u64)
}

/// Turns a [`RawConfig`] into a [`Config`], resolving variables and paths.
struct Checker<'a> {
    text: &'a str,
    label: &'a str,
    vars: Vars,
    project_dir: &'a Path,
}

impl Checker<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Config(format!("{}: {msg}", self.label))
    }

    /// Resolves `${VAR}` in `value`; `what` says where it is used, for messages.
    fn interpolate(&self, value: &str, what: &str) -> Result<String> {
        self.vars.interpolate(value).map_err(|e| match e {
            InterpolateError::Missing(name) => {
                let place = locate(self.text, &format!("${{{name}"))
                    .map_or_else(String::new, |(l, c)| format!("{l}:{c}: "));
                Error::Config(format!(
                    "{}:{place}{what}: environment variable {name} is not set; export it, pass --vars {name}=VALUE, or write ${{{name}:-default}}",
                    self.label
                ))
            }
            InterpolateError::Malformed(text) => {
                self.err(format!("{what}: malformed variable reference `{text}`; write ${{NAME}} or ${{NAME:-default}}"))
            }
        })
    }

    /// A local path relative to the project, or a URL, resolved.
    fn resolve_location(&self, path: &str) -> String {
        if path.contains("://") {
            path.to_string()
        } else {
            let p = Path::new(path);
            let abs = if p.is_absolute() { p.to_path_buf() } else { self.project_dir.join(p) };
            let mut s = abs.to_string_lossy().into_owned();
            if path.ends_with('/') && !s.ends_with('/') {
                s.push('/');
            }
            s
        }
    }

    fn check(&self, raw: RawConfig, file: PathBuf) -> Result<Config> {
        if raw.name.trim().is_empty() {
            return Err(self.err("`name` must not be empty"));
        }
        let mut sources = BTreeMap::new();
        for (name, source) in &raw.sources {
            sources.insert(name.clone(), self.check_source(name, source)?);
        }
        let models_dir = self.project_dir.join(self.interpolate(raw.models.as_deref().unwrap_or("sql"), "models")?);
        let functions_dir =
            self.project_dir.join(self.interpolate(raw.functions.as_deref().unwrap_or("udfs"), "functions")?);

        let default_target = self.duckdb_target(&raw, DEFAULT_CONNECTION, None)?;
        let mut duckdb_files = BTreeMap::from([(DEFAULT_CONNECTION.to_string(), default_target.path.clone())]);
        for (name, connection) in &raw.connections {
            if connection.kind == ConnectionKind::Duckdb {
                duckdb_files.insert(name.clone(), self.duckdb_target(&raw, name, None)?.path);
            }
        }
        let outputs = match &raw.outputs {
            None => None,
            Some(outputs) => Some(self.check_outputs(&raw, outputs)?),
        };

        let os_margin = raw.memory.os_margin.unwrap_or(0.3);
        if !(0.0..=0.95).contains(&os_margin) {
            return Err(self.err(format!("memory.os_margin must be between 0 and 0.95, got {os_margin}")));
        }
        let limit =
            match &raw.memory.limit {
                None => None,
                Some(s) => {
                    let s = self.interpolate(s, "memory.limit")?;
                    Some(parse_size(&s).filter(|n| *n > 0).ok_or_else(|| {
                        self.err(format!("memory.limit: `{s}` is not a size; write e.g. 512MiB or 4GiB"))
                    })?)
                }
            };
        let spill_dir = match &raw.memory.spill_dir {
            None => None,
            Some(s) => Some(self.project_dir.join(self.interpolate(s, "memory.spill_dir")?)),
        };
        let strategy = match raw.memory.strategy.as_deref() {
            None | Some("auto") => None,
            Some(name) => Some(Strategy::from_name(name).ok_or_else(|| {
                self.err(format!("memory.strategy: `{name}` is not one of auto, in_memory, spill, stream"))
            })?),
        };
        let in_memory_below = raw.memory.in_memory_below.unwrap_or(0.65);
        let stream_above = raw.memory.stream_above.unwrap_or(2.0);
        if !(in_memory_below > 0.0 && in_memory_below <= stream_above) {
            return Err(self.err(format!(
                "memory.in_memory_below ({in_memory_below}) must be above 0 and at most memory.stream_above ({stream_above})"
            )));
        }
        let state_dir =
            self.project_dir.join(self.interpolate(raw.state_dir.as_deref().unwrap_or(".dfpipe"), "state_dir")?);

        let mut datafusion = Vec::new();
        for (key, value) in &raw.datafusion {
            let value = match value {
                serde_json::Value::String(s) => self.interpolate(s, &format!("datafusion.{key}"))?,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(
                        self.err(format!("datafusion.{key}: expected a string, number or boolean, got {other}"))
                    );
                }
            };
            let key = if key.starts_with("datafusion.") { key.clone() } else { format!("datafusion.{key}") };
            datafusion.push((key, value));
        }

        Ok(Config {
            name: raw.name.clone(),
            project_dir: self.project_dir.to_path_buf(),
            file,
            sources,
            models_dir,
            functions_dir,
            outputs,
            default_target,
            duckdb_files,
            memory: MemoryConfig { os_margin, limit, spill_dir, strategy, in_memory_below, stream_above },
            storage: StorageConfig {
                max_retries: raw.storage.max_retries.unwrap_or(10),
                retry_timeout_secs: raw.storage.retry_timeout_secs.unwrap_or(180),
            },
            state_dir,
            datafusion,
            on_schema_change: raw.on_schema_change.unwrap_or_default(),
            contracts: self.check_contracts(&raw)?,
            tests: self.check_tests(&raw)?,
        })
    }

    fn check_tests(&self, raw: &RawConfig) -> Result<Vec<DataTest>> {
        let mut tests = Vec::new();
        for (relation, list) in &raw.tests {
            for (i, test) in list.iter().enumerate() {
                tests.push(
                    data_tests::check(relation, test, &format!("tests.{relation}[{i}]")).map_err(|e| self.err(e))?,
                );
            }
        }
        Ok(tests)
    }

    fn check_contracts(&self, raw: &RawConfig) -> Result<BTreeMap<String, Vec<ColumnContract>>> {
        let mut contracts = BTreeMap::new();
        for (name, columns) in &raw.contracts {
            let mut seen = BTreeSet::new();
            let mut checked = Vec::with_capacity(columns.len());
            for c in columns {
                if !seen.insert(c.name.as_str()) {
                    return Err(self.err(format!("contracts.{name}: column `{}` is declared twice", c.name)));
                }
                checked.push(ColumnContract {
                    name: c.name.clone(),
                    sql_type: c.data_type.clone(),
                    not_null: c.not_null,
                });
            }
            contracts.insert(name.clone(), checked);
        }
        Ok(contracts)
    }

    fn check_source(&self, name: &str, raw: &raw::RawSource) -> Result<SourceConfig> {
        let what = format!("source `{name}`");
        let path = self.interpolate(&raw.path, &format!("{what} path"))?;
        if path.trim().is_empty() {
            return Err(self.err(format!("{what}: `path` must not be empty")));
        }
        let location = self.resolve_location(&path);
        let format = match raw.format {
            Some(f) => f,
            None => infer_format(&location).or_else(|| sniff_directory(&location)).ok_or_else(|| {
                self.err(format!(
                    "{what}: cannot tell the format of `{path}` from its name; add `format: parquet`, `csv` or `json`"
                ))
            })?,
        };
        let o = &raw.options;
        let csv_only = [
            ("delimiter", o.delimiter.is_some()),
            ("header", o.header.is_some()),
            ("quote", o.quote.is_some()),
            ("escape", o.escape.is_some()),
            ("comment", o.comment.is_some()),
            ("null_regex", o.null_regex.is_some()),
            ("newlines_in_values", o.newlines_in_values.is_some()),
        ];
        let text_only = [
            ("compression", o.compression.is_some()),
            ("schema_infer_max_records", o.schema_infer_max_records.is_some()),
        ];
        for (option, set) in csv_only {
            if set && format != Format::Csv {
                return Err(
                    self.err(format!("{what}: option `{option}` applies to csv sources, not {}", format.name()))
                );
            }
        }
        for (option, set) in text_only {
            if set && format == Format::Parquet {
                return Err(self.err(format!("{what}: option `{option}` applies to csv and json sources, not parquet")));
            }
        }
        for (option, value) in
            [("delimiter", &o.delimiter), ("quote", &o.quote), ("escape", &o.escape), ("comment", &o.comment)]
        {
            if let Some(v) = value
                && v.len() != 1
            {
                return Err(
                    self.err(format!("{what}: option `{option}` must be a single one-byte character, got {v:?}"))
                );
            }
        }
        if let Some(c) = &o.compression
            && !["gzip", "bzip2", "xz", "zstd", "none"].contains(&c.as_str())
        {
            return Err(self.err(format!("{what}: compression `{c}` is not one of gzip, bzip2, xz, zstd, none")));
        }
        let schema: Vec<(String, String)> = raw.schema.clone().unwrap_or_default().into_iter().collect();
        if !schema.is_empty() && format == Format::Parquet {
            return Err(self.err(format!(
                "{what}: `schema` overrides apply to csv and json sources; Parquet files carry their own types (CAST in the model instead)"
            )));
        }
        let clean = match &raw.clean {
            None => None,
            Some(c) => {
                if c.decimals.is_some_and(|d| d > 38) {
                    return Err(self.err(format!("{what}: clean.decimals must be at most 38")));
                }
                let dates = c.dates.clone().unwrap_or_default();
                let auto_dates = dates == ["auto"];
                Some(CleanConfig {
                    columns: c.columns.unwrap_or_default(),
                    casts: c.casts.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    auto_dates,
                    dates: if auto_dates { vec![] } else { dates },
                    decimals: c.decimals,
                })
            }
        };
        Ok(SourceConfig {
            name: name.to_string(),
            path,
            location,
            format,
            options: o.clone(),
            schema,
            on_schema_change: raw.on_schema_change,
            clean,
        })
    }

    /// The DuckDB target of connection `name`, or of the implicit warehouse.
    fn duckdb_target(&self, raw: &RawConfig, name: &str, table: Option<TableName>) -> Result<DuckDbTarget> {
        let table = table.unwrap_or(TableName { schema: None, name: String::new() });
        match raw.connections.get(name) {
            None => Ok(DuckDbTarget {
                connection: name.to_string(),
                path: self.project_dir.join(DEFAULT_DUCKDB_FILE),
                table,
            }),
            Some(c) if c.kind == ConnectionKind::Duckdb => {
                if c.dsn.is_some() || c.copy_streams.is_some() {
                    return Err(self.err(format!(
                        "connection `{name}`: `dsn` and `copy_streams` are postgres settings; a duckdb connection takes `path`"
                    )));
                }
                let path = self.interpolate(c.path.as_deref().unwrap_or(DEFAULT_DUCKDB_FILE), &format!("connection `{name}` path"))?;
                let table = match (&table.schema, &c.schema) {
                    (None, Some(schema)) => TableName { schema: Some(schema.clone()), ..table },
                    _ => table,
                };
                Ok(DuckDbTarget { connection: name.to_string(), path: self.project_dir.join(path), table })
            }
            Some(_) => Err(self.err(format!(
                "connection `{name}` is a postgres connection; outputs without `to:` go to `{DEFAULT_CONNECTION}`, which must be a duckdb connection"
            ))),
        }
    }

    fn check_outputs(&self, raw: &RawConfig, outputs: &[raw::RawOutput]) -> Result<Vec<OutputConfig>> {
        let mut checked = Vec::with_capacity(outputs.len());
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, out) in outputs.iter().enumerate() {
            let what = format!("outputs[{i}] (model `{}`)", out.model);
            let mode = out.mode.unwrap_or(Mode::Replace);
            let unique_key = out.unique_key.clone().unwrap_or_default();
            match (mode, unique_key.is_empty()) {
                (Mode::Merge, true) => {
                    return Err(
                        self.err(format!("{what}: mode `merge` needs `unique_key` (a column or a list of columns)"))
                    );
                }
                (Mode::Replace | Mode::Append, false) => {
                    return Err(
                        self.err(format!("{what}: `unique_key` only applies to mode `merge`, not `{}`", mode.name()))
                    );
                }
                _ => {}
            }
            let table_text = match &out.table {
                Some(t) => self.interpolate(t, &format!("{what} table"))?,
                None => out.model.clone(),
            };
            let table = TableName::parse(&table_text)
                .ok_or_else(|| self.err(format!("{what}: table `{table_text}` is not `name` or `schema.name`")))?;
            let to = match &out.to {
                Some(to) => self.interpolate(to, &format!("{what} to"))?,
                None => DEFAULT_CONNECTION.to_string(),
            };
            let target = self.resolve_target(raw, &what, &to, out, table)?;
            if let Target::Parquet { single_file, .. } = &target {
                if mode == Mode::Merge {
                    return Err(
                        self.err(format!("{what}: Parquet outputs support `replace` and `append`, not `merge`"))
                    );
                }
                if mode == Mode::Append && *single_file {
                    return Err(self.err(format!(
                        "{what}: cannot append to the single Parquet file `{to}`; write to a directory (a path ending in /) to append files"
                    )));
                }
            }
            let key = target.label(self.project_dir);
            if let Some(first) = seen.insert(key.clone(), i) {
                return Err(self.err(format!(
                    "outputs[{first}] and outputs[{i}] both write `{key}`; give one of them another `table:`"
                )));
            }
            checked.push(OutputConfig {
                model: out.model.clone(),
                target,
                mode,
                unique_key,
                on_schema_change: out.on_schema_change,
                on_invalid: out.on_invalid.unwrap_or_default(),
            });
        }
        Ok(checked)
    }

    fn resolve_target(
        &self,
        raw: &RawConfig,
        what: &str,
        to: &str,
        out: &raw::RawOutput,
        table: TableName,
    ) -> Result<Target> {
        if let Some(connection) = raw.connections.get(to) {
            if out.compression.is_some() {
                return Err(
                    self.err(format!("{what}: `compression` applies to Parquet outputs, not connection `{to}`"))
                );
            }
            return match connection.kind {
                ConnectionKind::Duckdb => Ok(Target::DuckDb(self.duckdb_target(raw, to, Some(table))?)),
                ConnectionKind::Postgres => {
                    if connection.path.is_some() {
                        return Err(self.err(format!(
                            "connection `{to}`: `path` is a duckdb setting; a postgres connection takes `dsn`"
                        )));
                    }
                    let table = match (&table.schema, &connection.schema) {
                        (None, Some(schema)) => TableName { schema: Some(schema.clone()), ..table },
                        _ => table,
                    };
                    let dsn = match &connection.dsn {
                        Some(dsn) => Some(Secret::new(self.interpolate(dsn, &format!("connection `{to}` dsn"))?)),
                        None => None,
                    };
                    let copy_streams = match connection.copy_streams {
                        Some(0) => return Err(self.err(format!("connection `{to}`: copy_streams must be at least 1"))),
                        Some(n) => n,
                        None => std::thread::available_parallelism().map_or(1, |n| n.get()).min(4),
                    };
                    Ok(Target::Postgres { connection: to.to_string(), table, dsn, copy_streams })
                }
            };
        }
        if to == DEFAULT_CONNECTION {
            return Ok(Target::DuckDb(self.duckdb_target(raw, to, Some(table))?));
        }
        let single_file = to.ends_with(".parquet");
        if single_file || to.ends_with('/') {
            if out.table.is_some() {
                return Err(
                    self.err(format!("{what}: `table` applies to connections; a Parquet output is named by its path"))
                );
            }
            let compression = parquet_compression(out.compression.as_deref().unwrap_or("zstd")).ok_or_else(|| {
                self.err(format!(
                    "{what}: compression `{}` is not one of zstd, snappy, gzip, lz4, brotli, uncompressed",
                    out.compression.as_deref().unwrap_or_default()
                ))
            })?;
            return Ok(Target::Parquet { location: self.resolve_location(to), single_file, compression });
        }
        let mut known: BTreeSet<&str> = raw.connections.keys().map(String::as_str).collect();
        known.insert(DEFAULT_CONNECTION);
        Err(self.err(format!(
            "{what}: `to: {to}` is neither a connection ({}) nor a Parquet path (a file ending in .parquet or a directory ending in /){}",
            known.iter().copied().collect::<Vec<_>>().join(", "),
            did_you_mean(to, known.iter().copied())
        )))
    }
}

/// DataFusion's spelling of a Parquet codec, with a sensible level.
fn parquet_compression(name: &str) -> Option<String> {
    Some(match name {
        "zstd" => "zstd(3)".into(),
        "gzip" => "gzip(6)".into(),
        "brotli" => "brotli(4)".into(),
        "snappy" | "lz4" | "uncompressed" => name.into(),
        _ => return None,
    })
}

/// The format of the first data file in a local directory (hive layouts included), skipping
/// hidden and `_`-prefixed files such as `_SUCCESS`.
fn sniff_directory(location: &str) -> Option<Format> {
    let mut stack = vec![PathBuf::from(location)];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let Some(format) = infer_format(&path.to_string_lossy()) {
                return Some(format);
            }
        }
    }
    None
}

/// The format a path's extension implies (`.csv.gz` is csv).
pub fn infer_format(location: &str) -> Option<Format> {
    let name = location.trim_end_matches('/').rsplit('/').next().unwrap_or(location).to_ascii_lowercase();
    let name = ["gz", "bz2", "xz", "zst"]
        .iter()
        .find_map(|c| name.strip_suffix(&format!(".{c}")).map(str::to_string))
        .unwrap_or(name);
    let ext = name.rsplit_once('.')?.1;
    match ext {
        "parquet" | "parq" | "pq" => Some(Format::Parquet),
        "csv" | "tsv" | "txt" => Some(Format::Csv),
        "json" | "ndjson" | "jsonl" => Some(Format::Json),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("4GB"), Some(4 << 30));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("12 parsecs"), None);
    }

    #[test]
    fn formats_from_names() {
        assert_eq!(infer_format("/d/orders/*.parquet"), Some(Format::Parquet));
        assert_eq!(infer_format("s3://b/x.csv.gz"), Some(Format::Csv));
        assert_eq!(infer_format("/d/x.ndjson"), Some(Format::Json));
        assert_eq!(infer_format("/d/orders/"), None);
    }

    #[test]
    fn table_names() {
        assert_eq!(TableName::parse("t").unwrap().to_string(), "t");
        assert_eq!(TableName::parse("s.t").unwrap().schema.as_deref(), Some("s"));
        assert!(TableName::parse("a.b.c").is_none());
        assert!(TableName::parse(".t").is_none());
    }

    #[test]
    fn merge_is_deep() {
        let mut base = serde_json::json!({"a": {"x": 1, "y": 2}, "b": [1]});
        merge(&mut base, &serde_json::json!({"a": {"y": 3}, "b": [2]}));
        assert_eq!(base, serde_json::json!({"a": {"x": 1, "y": 3}, "b": [2]}));
    }
}
