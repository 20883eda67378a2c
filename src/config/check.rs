//! Cross-field checks: a [`RawConfig`] becomes a [`Config`] with variables interpolated, paths
//! resolved against the project directory, defaults filled in and every rule that spans several
//! keys checked, each error naming the file and the key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::raw::{self, RawConfig};
use super::sniff::{infer_format, sniff_directory};
use super::types::parquet_compression;
use super::*;
use crate::error::{Error, Result};
use crate::util::suggest::did_you_mean;

/// The start of the names of dfpipe's own tables (`_dfpipe_loads`, `__dfpipe_staging_…`).
const RESERVED_PREFIX: &str = "_dfpipe";

/// Whether a table name is one of dfpipe's own: underscores, then `dfpipe` (any case).
fn is_reserved(name: &str) -> bool {
    let lower = name.to_lowercase();
    let bare = lower.trim_start_matches('_');
    bare.len() < lower.len() && bare.starts_with("dfpipe")
}

/// Turns a [`RawConfig`] into a [`Config`], resolving variables and paths.
pub(crate) struct Checker<'a> {
    pub(crate) text: &'a str,
    pub(crate) label: &'a str,
    pub(crate) vars: Vars,
    pub(crate) project_dir: &'a Path,
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

    pub(crate) fn check(&self, raw: RawConfig, file: PathBuf) -> Result<Config> {
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
        let state_dir =
            self.project_dir.join(self.interpolate(raw.state_dir.as_deref().unwrap_or(".dfpipe"), "state_dir")?);
        let guarded = self.guarded_paths(&sources, &models_dir, &state_dir);
        let outputs = match &raw.outputs {
            None => None,
            Some(outputs) => Some(self.check_outputs(&raw, outputs, &guarded)?),
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
        let strategy = raw.memory.strategy;
        let in_memory_below = raw.memory.in_memory_below.unwrap_or(0.65);
        let stream_above = raw.memory.stream_above.unwrap_or(2.0);
        if !(in_memory_below > 0.0 && in_memory_below <= stream_above) {
            return Err(self.err(format!(
                "memory.in_memory_below ({in_memory_below}) must be above 0 and at most memory.stream_above ({stream_above})"
            )));
        }
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
            // `ballista.*` settings are Ballista's own (they apply on a cluster).
            let key = if key.starts_with("datafusion.") || key.starts_with("ballista.") {
                key.clone()
            } else {
                format!("datafusion.{key}")
            };
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
                max_retries: raw.storage.max_retries.unwrap_or(StorageConfig::default().max_retries),
                retry_timeout_secs: raw
                    .storage
                    .retry_timeout_secs
                    .unwrap_or(StorageConfig::default().retry_timeout_secs),
            },
            state_dir,
            datafusion,
            on_schema_change: raw.on_schema_change.unwrap_or_default(),
            contracts: self.check_contracts(&raw)?,
            tests: self.check_tests(&raw)?,
            params: params::from_config(&raw.params).map_err(|e| self.err(e))?,
            openlineage: self.check_openlineage(&raw)?,
            cluster: match &raw.cluster {
                None => None,
                Some(url) => Some(ClusterUrl::parse(&self.interpolate(url, "cluster")?).map_err(|e| self.err(e))?),
            },
        })
    }

    fn check_openlineage(&self, raw: &RawConfig) -> Result<Option<OpenLineageConfig>> {
        let Some(ol) = raw.lineage.as_ref().and_then(|l| l.openlineage.as_ref()) else { return Ok(None) };
        let sink = match (&ol.url, &ol.file) {
            (Some(url), None) => {
                let url = self.interpolate(url, "lineage.openlineage.url")?;
                let parsed = url::Url::parse(&url).map_err(|e| {
                    self.err(format!(
                        "lineage.openlineage.url `{url}` is not a URL ({e}); write e.g. http://localhost:5000"
                    ))
                })?;
                let url = if parsed.path().trim_matches('/').is_empty() {
                    format!("{}/api/v1/lineage", url.trim_end_matches('/'))
                } else {
                    url
                };
                let api_key = match &ol.api_key {
                    Some(k) => Some(Secret::new(self.interpolate(k, "lineage.openlineage.api_key")?)),
                    None => None,
                };
                OpenLineageSink::Http { url, api_key }
            }
            (None, Some(file)) => {
                OpenLineageSink::File(self.project_dir.join(self.interpolate(file, "lineage.openlineage.file")?))
            }
            _ => {
                return Err(self
                    .err("lineage.openlineage: set exactly one of `url` (an HTTP endpoint) and `file` (JSON lines)"));
            }
        };
        let timeout = match &ol.timeout {
            None => std::time::Duration::from_secs(5),
            Some(t) => humantime::parse_duration(t.trim())
                .map_err(|e| self.err(format!("lineage.openlineage.timeout `{t}` is not a duration ({e})")))?,
        };
        Ok(Some(OpenLineageConfig {
            sink,
            namespace: ol.namespace.clone().unwrap_or_else(|| raw.name.clone()),
            timeout,
        }))
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
                    description: c.description.clone(),
                });
            }
            contracts.insert(name.clone(), checked);
        }
        Ok(contracts)
    }

    fn check_source(&self, name: &str, raw: &raw::RawSource) -> Result<SourceConfig> {
        let what = format!("source `{name}`");
        let path = self.interpolate(&raw.path, &format!("{what} path"))?;
        // The path as messages show it: a URL's password and query values masked.
        let path_shown = crate::util::redact::credentials(&path).into_owned();
        if path.trim().is_empty() {
            return Err(self.err(format!("{what}: `path` must not be empty")));
        }
        let location = self.resolve_location(&path);
        let format = match raw.format {
            Some(f) => f,
            None => infer_format(&location).or_else(|| sniff_directory(&location)).ok_or_else(|| {
                self.err(format!(
                    "{what}: cannot tell the format of `{path_shown}` from its name; add `format: parquet`, `csv` or `json`"
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
            path: path_shown,
            location,
            format,
            options: o.clone(),
            schema,
            on_schema_change: raw.on_schema_change,
            clean,
            description: raw.description.clone(),
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
                if c.dsn.is_some() || c.copy_streams.is_some() || c.swap_timeout.is_some() {
                    return Err(self.err(format!(
                        "connection `{name}`: `dsn`, `copy_streams` and `swap_timeout` are postgres settings; a duckdb connection takes `path`"
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

    fn check_outputs(
        &self,
        raw: &RawConfig,
        outputs: &[raw::RawOutput],
        guarded: &[Guarded],
    ) -> Result<Vec<OutputConfig>> {
        let mut checked = Vec::with_capacity(outputs.len());
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut quarantines = Vec::new();
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
            if let Target::Parquet { single_file, location, .. } = &target {
                self.check_overlap(&what, &to, location, &out.model, guarded)?;
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
            if let Target::DuckDb(DuckDbTarget { table, .. }) | Target::Postgres { table, .. } = &target
                && is_reserved(&table.name)
            {
                return Err(self.err(format!(
                    "{what}: table `{}`: names starting with `{RESERVED_PREFIX}` are dfpipe's own (its load \
                     markers, staging tables); give the output another `table:`",
                    table.name
                )));
            }
            // Two outputs are one target when the database would resolve them to one table.
            let (key, described) = target.identity(self.project_dir);
            if let Some(first) = seen.insert(key, i) {
                return Err(self.err(format!(
                    "outputs[{first}] and outputs[{i}] both write {described}; give one of them another `table:`"
                )));
            }
            let incremental = match &out.incremental {
                None => None,
                Some(incremental) => {
                    let at = self.incremental_at(outputs, i);
                    let place = format!("{at}{what}");
                    Some(self.check_incremental(&place, raw, incremental, mode, &unique_key, &target)?)
                }
            };
            let on_invalid = out.on_invalid.unwrap_or_default();
            if let Target::Postgres { table, .. } = &target {
                let quarantine = on_invalid == OnInvalid::Quarantine;
                self.check_postgres_name_length(&what, table, quarantine)?;
            }
            if on_invalid == OnInvalid::Quarantine {
                let (key, described) = target.quarantine().identity(self.project_dir);
                quarantines.push((key, described, i));
            }
            checked.push(OutputConfig {
                model: out.model.clone(),
                target,
                mode,
                unique_key,
                on_schema_change: out.on_schema_change,
                on_invalid,
                incremental,
            });
        }
        // A quarantine table is written too: no output may write it, and no two share one.
        for (key, described, i) in quarantines {
            if let Some(other) = seen.insert(key, i) {
                return Err(self.err(format!(
                    "outputs[{i}] quarantines its rows into {described}, which outputs[{other}] writes too; \
                     give one of them another `table:`"
                )));
            }
        }
        Ok(checked)
    }

    /// Refuses a PostgreSQL schema or table name PostgreSQL would cut to 63 bytes (two long
    /// names sharing their first 63 bytes would be one table), counting the `_quarantine` a
    /// quarantining output's second table adds.
    fn check_postgres_name_length(&self, what: &str, table: &TableName, quarantine: bool) -> Result<()> {
        let schema = table.schema.iter().map(|s| (s.as_str(), "schema", ""));
        let suffix = if quarantine { "_quarantine" } else { "" };
        for (name, kind, suffix) in schema.chain([(table.name.as_str(), "table", suffix)]) {
            let key = if kind == "schema" { "schema (`table: schema.name`)" } else { "`table:`" };
            let bytes = name.len() + suffix.len();
            if bytes > POSTGRES_NAME_BYTES {
                let counted = if suffix.is_empty() {
                    String::new()
                } else {
                    format!(" with the `{suffix}` of its quarantine table")
                };
                return Err(self.err(format!(
                    "{what}: {kind} name `{name}` is {bytes} bytes long{counted}; PostgreSQL keeps the first \
                     {POSTGRES_NAME_BYTES} bytes of a name, so two long names could be one: choose a shorter \
                     {key}"
                )));
            }
        }
        Ok(())
    }

    /// `line:col: ` of the `incremental:` key of output `i` (the n-th such key in the file).
    fn incremental_at(&self, outputs: &[raw::RawOutput], i: usize) -> String {
        let nth = outputs[..i].iter().filter(|o| o.incremental.is_some()).count();
        super::interpolate::locate_occurrence(self.text, "incremental", nth)
            .map_or_else(String::new, |(line, column)| format!("{line}:{column}: "))
    }

    /// The rules of `incremental:` that span the output: modes, keys, bounds (`place`: the
    /// key's `line:col: ` and the output, for messages).
    fn check_incremental(
        &self,
        place: &str,
        raw_config: &RawConfig,
        raw: &incremental::Incremental,
        mode: Mode,
        unique_key: &[String],
        target: &Target,
    ) -> Result<incremental::IncrementalSpec> {
        use incremental::{Incremental, IncrementalSpec, OnFileChange};
        let err = |msg: String| Error::Config(format!("{}:{place}: incremental: {msg}", self.label));
        if mode == Mode::Replace {
            return Err(err(format!(
                "`by: {}` loads only new data, which `mode: replace` would throw away with the rest; use \
                 `mode: append` or `mode: merge` (and `dfpipe run --full-refresh` to rebuild)",
                raw.kind()
            )));
        }
        if let Target::Parquet { location, single_file, .. } = target {
            if *single_file {
                return Err(err(format!(
                    "an incremental Parquet output is a directory (a path ending in /, not `{location}`): each \
                     load adds its files and a marker file there"
                )));
            }
            if matches!(raw, incremental::Incremental::Cursor { .. }) {
                return Err(err(
                    "`by: cursor` needs `mode: merge`, which Parquet outputs do not support; write to a duckdb \
                     or postgres connection"
                        .to_string(),
                ));
            }
        }
        Ok(match raw {
            Incremental::Time { column, grain, begin, lookback, batch } => {
                let start = incremental::parse_instant(begin).ok_or_else(|| {
                    err(format!(
                        "begin `{begin}` is not a date or timestamp; write e.g. 2024-01-01 or 2024-01-01T06:00:00"
                    ))
                })?;
                if incremental::truncate(start, *grain) != start {
                    return Err(err(format!(
                        "begin `{begin}` is not the start of a {}; windows start on {} boundaries (UTC)",
                        grain.name(),
                        grain.name()
                    )));
                }
                IncrementalSpec::Time {
                    column: column.clone(),
                    grain: *grain,
                    begin: start,
                    lookback: *lookback,
                    batch: batch.get(),
                }
            }
            Incremental::Cursor { column, lag, on_null_cursor } => {
                if mode != Mode::Merge {
                    return Err(err(format!(
                        "`by: cursor` loads changed rows again (an updated row's cursor moves past the mark, and \
                         `lag` reads back before it), so it needs `mode: merge` with `unique_key` (not `mode: {}`) \
                         to keep each row once",
                        mode.name()
                    )));
                }
                let lag =
                    match lag {
                        None => None,
                        Some(text) => Some(humantime::parse_duration(text.trim()).map_err(|e| {
                            err(format!("lag `{text}` is not a duration ({e}); write e.g. `10m` or `2h`"))
                        })?),
                    };
                IncrementalSpec::Cursor { column: column.clone(), lag, on_null_cursor: *on_null_cursor }
            }
            Incremental::Files { source, on_file_change } => {
                if let Some(name) = source
                    && !raw_config.sources.contains_key(name)
                {
                    return Err(err(format!(
                        "source `{name}` is not a source of this project{}",
                        did_you_mean(name, raw_config.sources.keys().map(String::as_str))
                    )));
                }
                if *on_file_change == OnFileChange::Reload && (mode != Mode::Merge || unique_key.is_empty()) {
                    return Err(err(
                        "`on_file_change: reload` loads a changed file's rows again, which needs `mode: merge` \
                         and `unique_key` so they replace the rows loaded before"
                            .to_string(),
                    ));
                }
                IncrementalSpec::Files { source: source.clone(), on_file_change: *on_file_change }
            }
        })
    }

    /// The paths a Parquet output must keep clear of: each local source, the models, the state
    /// directory, and the project directory itself.
    fn guarded_paths(
        &self,
        sources: &BTreeMap<String, SourceConfig>,
        models_dir: &Path,
        state_dir: &Path,
    ) -> Vec<Guarded> {
        let rel = |p: &Path| p.strip_prefix(self.project_dir).unwrap_or(p).display().to_string();
        let mut guarded = vec![
            Guarded { path: normalize(self.project_dir), what: "the project directory".into(), inside_allowed: true },
            Guarded {
                path: normalize(models_dir),
                what: format!("the models directory ({})", rel(models_dir)),
                inside_allowed: false,
            },
            Guarded {
                path: normalize(state_dir),
                what: format!("the state directory ({})", rel(state_dir)),
                inside_allowed: false,
            },
        ];
        guarded.extend(sources.iter().map(|(name, s)| Guarded {
            path: normalize(&glob_root(&s.location)),
            what: format!("source `{name}` ({})", s.path),
            inside_allowed: false,
        }));
        guarded
    }

    /// Refuses a Parquet output that is, contains, or (except for the project directory) lies
    /// inside a guarded path: a replace would delete what is there, an append would mix with it.
    fn check_overlap(&self, what: &str, to: &str, location: &str, model: &str, guarded: &[Guarded]) -> Result<()> {
        let target = normalize(Path::new(location));
        for g in guarded {
            let relation = if target == g.path {
                "is"
            } else if g.path.starts_with(&target) {
                "contains"
            } else if !g.inside_allowed && target.starts_with(&g.path) {
                "lies inside"
            } else {
                continue;
            };
            return Err(self.err(format!(
                "{what}: the Parquet output `{to}` {relation} {}: writing there could delete or mix with those \
                 files; choose a path of its own, such as out/{model}.parquet",
                g.what
            )));
        }
        Ok(())
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
                        // A variable it lacks is reported where the DSN is used (see `Secret`).
                        Some(dsn) => Some(match self.interpolate(dsn, &format!("connection `{to}` dsn")) {
                            Ok(dsn) => Secret::new(dsn),
                            Err(e)
                                if self
                                    .vars
                                    .interpolate(dsn)
                                    .is_err_and(|e| matches!(e, InterpolateError::Missing(_))) =>
                            {
                                Secret::unresolved(e.to_string())
                            }
                            Err(e) => return Err(e),
                        }),
                        None => None,
                    };
                    let copy_streams = match connection.copy_streams {
                        Some(0) => return Err(self.err(format!("connection `{to}`: copy_streams must be at least 1"))),
                        Some(n) => n,
                        None => std::thread::available_parallelism().map_or(1, |n| n.get()).min(4),
                    };
                    let swap_timeout = match connection.swap_timeout.as_deref() {
                        None => DEFAULT_SWAP_TIMEOUT,
                        Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                            self.err(format!(
                                "connection `{to}`: swap_timeout `{text}` is not a duration ({e}); write e.g. `30s` or `5m`"
                            ))
                        })?,
                    };
                    Ok(Target::Postgres { connection: to.to_string(), table, dsn, copy_streams, swap_timeout })
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

/// A path Parquet outputs keep clear of, and how messages name it.
struct Guarded {
    path: PathBuf,
    what: String,
    inside_allowed: bool,
}

/// The directory a glob starts from (`data/*.csv` → `data`), or the path itself.
fn glob_root(location: &str) -> PathBuf {
    let path = Path::new(location.trim_end_matches('/'));
    let mut root = PathBuf::new();
    for part in path.iter() {
        if part.to_string_lossy().contains(['*', '?', '[', '{']) {
            break;
        }
        root.push(part);
    }
    root
}

/// `a/./b/../c/` → `a/c`, without touching the file system (the paths may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
