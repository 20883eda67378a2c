//! `RawConfig`: exactly what `dfpipe.yml` (or `dfpipe.toml`) holds, before validation.
//!
//! Every struct denies unknown keys, so a typo is an error with a did-you-mean instead of a
//! setting that silently does nothing. Strings may still contain `${VAR}` references here; they
//! are resolved when the raw config is checked into a [`super::Config`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::types::{ConnectionKind, Format, Mode, Naming, OnInvalid, Policy, Severity, Strategy};

/// The config file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The project's name.
    pub name: String,
    /// Input tables by name.
    #[serde(default)]
    pub sources: BTreeMap<String, RawSource>,
    /// Directory of `.sql` models, relative to the project (default `sql`).
    #[serde(default)]
    pub models: Option<String>,
    /// Directory of `.sql` files of `CREATE FUNCTION` statements, relative to the project
    /// (default `udfs`).
    #[serde(default)]
    pub functions: Option<String>,
    /// Named connections outputs can write to.
    #[serde(default)]
    pub connections: BTreeMap<String, RawConnection>,
    /// What to write where; when omitted every model is written to the default warehouse.
    #[serde(default)]
    pub outputs: Option<Vec<RawOutput>>,
    /// Memory budget settings.
    #[serde(default)]
    pub memory: RawMemory,
    /// Object-store client settings (retries).
    #[serde(default)]
    pub storage: RawStorage,
    /// Where dfpipe keeps its state (run results), relative to the project (default `.dfpipe`).
    #[serde(default)]
    pub state_dir: Option<String>,
    /// DataFusion settings passed through as-is, e.g. `execution.batch_size: 16384`.
    #[serde(default)]
    pub datafusion: BTreeMap<String, serde_json::Value>,
    /// Named overlays merged over this config with `--env NAME`.
    #[serde(default)]
    pub environments: BTreeMap<String, serde_json::Value>,
    /// The default `on_schema_change` of sources and outputs (default `evolve`).
    #[serde(default)]
    pub on_schema_change: Option<Policy>,
    /// Declared columns of sources and models, by name, enforced before anything is written.
    #[serde(default)]
    pub contracts: BTreeMap<String, Vec<RawColumnContract>>,
    /// Data tests of sources and models, by name, run before outputs are written.
    #[serde(default)]
    pub tests: BTreeMap<String, Vec<RawTest>>,
    /// Values models read as `$name` placeholders (see [`super::params`]).
    #[serde(default)]
    pub params: BTreeMap<String, super::params::RawParam>,
    /// Where run events go (OpenLineage).
    #[serde(default)]
    pub lineage: Option<RawLineage>,
    /// A Ballista scheduler (`df://HOST:PORT`) the outputs' queries run on.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// `lineage:` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLineage {
    /// OpenLineage run events for each target.
    pub openlineage: Option<RawOpenLineage>,
}

/// `lineage.openlineage:` — an HTTP endpoint (`url`) or a JSON-lines file (`file`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenLineage {
    /// The OpenLineage server (e.g. Marquez's `http://localhost:5000`); events are posted to
    /// `/api/v1/lineage` under it unless the URL has a path.
    pub url: Option<String>,
    /// A file the events are appended to, one JSON object per line.
    pub file: Option<String>,
    /// The jobs' namespace (default: the project's name).
    pub namespace: Option<String>,
    /// A bearer token for the endpoint (use `${VAR}`).
    pub api_key: Option<String>,
    /// How long one post may take (default `5s`).
    pub timeout: Option<String>,
}

/// One data test: exactly one rule key, and optionally `severity`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    /// Columns that must hold no NULL.
    #[serde(default, deserialize_with = "one_or_many")]
    pub not_null: Option<Vec<String>>,
    /// Columns whose combination must be unique.
    #[serde(default, deserialize_with = "one_or_many")]
    pub unique: Option<Vec<String>>,
    /// A column whose non-NULL values must be among `values`.
    pub accepted_values: Option<RawAcceptedValues>,
    /// A column whose non-NULL values must exist in `to`'s `field`.
    pub relationships: Option<RawRelationship>,
    /// A column whose values must lie within `min`..=`max`.
    pub range: Option<RawRange>,
    /// A text column whose non-NULL values must match `pattern`.
    pub regex: Option<RawRegex>,
    /// Bounds on the number of rows.
    pub row_count: Option<RawRowCount>,
    /// A timestamp or date column whose latest value must be at most `max_age` old.
    pub freshness: Option<RawFreshness>,
    /// A SQL condition every row must satisfy (rows where it is false fail; NULL passes).
    pub expression: Option<String>,
    /// A column whose non-NULL values must cast to `type` (a failed cast fails the row).
    pub castable: Option<RawCastable>,
    /// `error` (default: the run stops before writing) or `warn` (reported only).
    pub severity: Option<Severity>,
}

/// `accepted_values: { column, values }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcceptedValues {
    /// The column.
    pub column: String,
    /// The values allowed (strings, numbers or booleans).
    pub values: Vec<serde_json::Value>,
}

/// `relationships: { column, to, field }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelationship {
    /// The referencing column.
    pub column: String,
    /// The referenced source or model.
    pub to: String,
    /// The referenced column.
    pub field: String,
}

/// `range: { column, min, max }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRange {
    /// The column.
    pub column: String,
    /// Smallest allowed value (a number, or a string such as a date).
    pub min: Option<serde_json::Value>,
    /// Largest allowed value.
    pub max: Option<serde_json::Value>,
}

/// `regex: { column, pattern }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegex {
    /// The column.
    pub column: String,
    /// A regular expression (Rust `regex` syntax) the values must match.
    pub pattern: String,
}

/// `row_count: { min, max }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRowCount {
    /// Fewest rows allowed.
    pub min: Option<u64>,
    /// Most rows allowed.
    pub max: Option<u64>,
}

/// `castable: { column, type }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCastable {
    /// The column.
    pub column: String,
    /// The SQL type its values must cast to, e.g. `int`, `date`, `decimal(12,2)`.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// `freshness: { column, max_age }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFreshness {
    /// A timestamp or date column.
    pub column: String,
    /// How old its latest value may be: `30m`, `12h`, `2d`, `1w` (or seconds).
    pub max_age: String,
}

/// One declared column of a contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumnContract {
    /// The column's name.
    pub name: String,
    /// Its SQL type, e.g. `bigint`, `varchar`, `decimal(12,2)` (any when omitted).
    #[serde(default, rename = "type")]
    pub data_type: Option<String>,
    /// Whether it must hold no NULL (default false).
    #[serde(default)]
    pub not_null: bool,
    /// What the column holds, for `dfpipe docs`.
    #[serde(default)]
    pub description: Option<String>,
}

/// One input table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// A file, a glob, a (hive-partitioned) directory, or an object-store URL.
    pub path: String,
    /// The file format; inferred from the extension when omitted.
    #[serde(default)]
    pub format: Option<Format>,
    /// Per-format reading options.
    #[serde(default)]
    pub options: RawSourceOptions,
    /// Column types that replace the inferred ones (CSV and JSON), as SQL type names.
    #[serde(default)]
    pub schema: Option<BTreeMap<String, String>>,
    /// What a run does when this source's schema drifts (default: the project's).
    #[serde(default)]
    pub on_schema_change: Option<Policy>,
    /// Cleaning compiled into the view models read the source through.
    #[serde(default)]
    pub clean: Option<RawClean>,
    /// What the source is, for `dfpipe docs`.
    #[serde(default)]
    pub description: Option<String>,
}

/// `clean:` options of a source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClean {
    /// Column naming: `lower`, `upper`, `snake_case`, `capitalize` (default: as they are).
    pub columns: Option<Naming>,
    /// Casts per column (by its name in the files): `{ amount: "decimal(12,2)" }`.
    #[serde(default)]
    pub casts: BTreeMap<String, String>,
    /// `auto` (every string column whose sampled values all read as one date or timestamp
    /// format) or a list of string columns to parse (an error when no format reads them).
    #[serde(default, deserialize_with = "one_or_many")]
    pub dates: Option<Vec<String>>,
    /// Float columns become DECIMAL(38, this scale).
    pub decimals: Option<u8>,
}

/// Reading options; each applies to the formats named in its doc.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceOptions {
    /// csv: the field delimiter, one character (default `,`).
    pub delimiter: Option<String>,
    /// csv: whether the first line holds column names (default true).
    pub header: Option<bool>,
    /// csv: the quote character (default `"`).
    pub quote: Option<String>,
    /// csv: the escape character (default none).
    pub escape: Option<String>,
    /// csv: lines starting with this character are skipped.
    pub comment: Option<String>,
    /// csv: a regular expression; matching values are read as NULL.
    pub null_regex: Option<String>,
    /// csv: allow quoted values to span lines.
    pub newlines_in_values: Option<bool>,
    /// csv and json: `gzip`, `bzip2`, `xz`, `zstd` or `none`; inferred from the extension.
    pub compression: Option<String>,
    /// csv and json: how many records to read to infer the schema (default 1000).
    pub schema_infer_max_records: Option<usize>,
    /// all formats: the extension files in a directory must have (default `.parquet`, `.csv`,
    /// `.json`).
    pub extension: Option<String>,
}

/// A place outputs can be written to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    /// `duckdb` or `postgres`.
    pub kind: ConnectionKind,
    /// duckdb: the database file, relative to the project.
    pub path: Option<String>,
    /// postgres: the connection string (use `${DATABASE_URL}`; never write a password here).
    pub dsn: Option<String>,
    /// postgres and duckdb: the schema tables are created in when a table name has none.
    pub schema: Option<String>,
    /// postgres: parallel COPY streams (connections) for `replace` loads (default: the number
    /// of cores, at most 4).
    pub copy_streams: Option<usize>,
    /// postgres: how long a load waits for another writer of the same table, and a `replace`
    /// for readers to let go of the old table (`30s`, `5m`; default 5 minutes).
    pub swap_timeout: Option<String>,
}

/// One output: a model written to a connection or a Parquet path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// The model to write.
    pub model: String,
    /// A connection name, or a Parquet path (`.parquet` file or directory ending in `/`).
    #[serde(default)]
    pub to: Option<String>,
    /// The table name (default: the model's name); may be `schema.table`.
    #[serde(default)]
    pub table: Option<String>,
    /// `replace` (default), `append` or `merge`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// merge: the column(s) identifying a row.
    #[serde(default, deserialize_with = "one_or_many")]
    pub unique_key: Option<Vec<String>>,
    /// Parquet: `zstd` (default), `snappy`, `gzip`, `lz4`, `brotli` or `uncompressed`.
    #[serde(default)]
    pub compression: Option<String>,
    /// What a run does when the model's schema drifts (default: the project's); `evolve` also
    /// adds new columns and widens types of an existing table it appends or merges into.
    #[serde(default)]
    pub on_schema_change: Option<Policy>,
    /// What happens to rows failing the model's row-level tests (default `fail`).
    #[serde(default)]
    pub on_invalid: Option<OnInvalid>,
    /// Load only what is new: by time windows, a cursor column, or new files.
    #[serde(default)]
    pub incremental: Option<super::incremental::Incremental>,
}

/// `memory:` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMemory {
    /// Fraction of available RAM left to the OS and other processes (default 0.3).
    pub os_margin: Option<f64>,
    /// A fixed budget instead, such as `4GiB` or `512MiB`.
    pub limit: Option<String>,
    /// Directory for spill files (default: the system's temp directory).
    pub spill_dir: Option<String>,
    /// `auto` (default: decided per target from estimate / budget), `in_memory`, `spill` or
    /// `stream`; `None` is `auto`.
    #[serde(default, deserialize_with = "auto_or_strategy")]
    pub strategy: Option<Strategy>,
    /// Ratio estimate / budget up to which a target runs in memory (default 0.65).
    pub in_memory_below: Option<f64>,
    /// Ratio above which a target streams rather than spills (default 2.0).
    pub stream_above: Option<f64>,
}

/// `storage:` settings for object stores.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// How many times a failed request is retried (default 10).
    pub max_retries: Option<usize>,
    /// Give up retrying after this many seconds (default 180).
    pub retry_timeout_secs: Option<u64>,
}

/// `memory.strategy`: `auto` (no strategy forced) or a [`Strategy`].
fn auto_or_strategy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Strategy>, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Choice {
        Auto,
        InMemory,
        Spill,
        Stream,
    }
    Ok(match Choice::deserialize(d)? {
        Choice::Auto => None,
        Choice::InMemory => Some(Strategy::InMemory),
        Choice::Spill => Some(Strategy::Spill),
        Choice::Stream => Some(Strategy::Stream),
    })
}

/// Accepts `key: id` as well as `key: [id, day]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a column name or a list of column names")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![v.to_string()]))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<String>()? {
                out.push(v);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(Visitor)
}
