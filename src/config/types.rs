//! The plain values a config holds — modes, policies, strategies, formats, table names,
//! secrets, sizes — each deserialized straight from the config by serde.

use serde::{Deserialize, Serialize};

/// How much a failing test matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The run stops before writing (exit code 3).
    #[default]
    Error,
    /// Reported; the run goes on.
    Warn,
}

/// Column naming rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    /// As the files name them.
    #[default]
    Keep,
    /// `Order ID` → `order id`.
    Lower,
    /// `order_id` → `ORDER_ID`.
    Upper,
    /// `Order ID` → `order_id`, `customerName` → `customer_name`.
    SnakeCase,
    /// `ORDER_ID` → `Order_id`.
    Capitalize,
}

/// The file formats dfpipe reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Comma (or otherwise) separated values.
    Csv,
    /// Newline-delimited JSON (one object per line).
    #[serde(alias = "ndjson", alias = "jsonl")]
    Json,
}

impl Format {
    /// The lowercase name used in configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Connection kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    /// An embedded DuckDB database file.
    Duckdb,
    /// A PostgreSQL server.
    Postgres,
}

/// What an output does with rows that fail its model's row-level tests (not_null,
/// accepted_values, range, regex, expression).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// The tests run before writing; an error-level failure stops the run.
    #[default]
    Fail,
    /// Failing rows are left out, and counted.
    Drop,
    /// Failing rows go, with the test, the column and the reason, to `<table>_quarantine` (a
    /// `_quarantine` Parquet file or directory for Parquet outputs), and are counted.
    Quarantine,
}

/// How an output treats what the target already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Swap in a complete new table atomically.
    Replace,
    /// Add the rows, all or nothing.
    Append,
    /// Upsert on `unique_key`.
    Merge,
}

impl Mode {
    /// The lowercase name used in configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Replace => "replace",
            Mode::Append => "append",
            Mode::Merge => "merge",
        }
    }
}

/// `on_schema_change`: what a run does when a schema differs from its accepted baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Any change stops the run before anything is written.
    Fail,
    /// Report the changes and go on; targets are loaded as they are (a column the table lacks
    /// fails its load).
    Warn,
    /// Apply safe changes (added columns, widened types, relaxed nullability, order) and adapt
    /// the targets to them; unsafe ones (removed, narrowed or retyped columns) still fail.
    #[default]
    Evolve,
    /// Say nothing and go on.
    Ignore,
}

impl Policy {
    /// The name written in dfpipe.yml.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Fail => "fail",
            Policy::Warn => "warn",
            Policy::Evolve => "evolve",
            Policy::Ignore => "ignore",
        }
    }
}

/// How a target is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Strategy {
    /// Everything in memory: no pool limit, large batches, shared models computed once.
    InMemory,
    /// A spilling pool of the budget: sorts, aggregates and sort-merge joins spill to disk.
    Spill,
    /// Lean streaming: small batches, fewer partitions, spilling where an operator must hold data.
    Stream,
}

impl Strategy {
    /// The name used in the config and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::InMemory => "in_memory",
            Strategy::Spill => "spill",
            Strategy::Stream => "stream",
        }
    }
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

/// A value that must never be printed: `Debug` and `Display` show `***`. A connection's DSN
/// whose `${VAR}` is not set is held unresolved, with the message saying so: commands that
/// never connect (`runs`, `docs`, `lineage`…) then work without it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(std::result::Result<String, String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Secret(Ok(value))
    }

    /// A value that could not be resolved, and why (which variable is not set, and how to set it).
    pub fn unresolved(why: String) -> Self {
        Secret(Err(why))
    }

    /// The value itself, for the one place that needs it (opening a connection); the reason
    /// when it could not be resolved.
    pub fn expose(&self) -> std::result::Result<&str, String> {
        self.0.as_deref().map_err(String::clone)
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
    (number >= 0.0).then_some((number * multiplier as f64) as u64)
}

/// DataFusion's spelling of a Parquet codec, with a sensible level.
pub fn parquet_compression(name: &str) -> Option<String> {
    Some(match name {
        "zstd" => "zstd(3)".into(),
        "gzip" => "gzip(6)".into(),
        "brotli" => "brotli(4)".into(),
        "snappy" | "lz4" | "uncompressed" => name.into(),
        _ => return None,
    })
}

/// A Ballista scheduler's address, from `df://HOST[:PORT]` (port 50050 when omitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    /// Host name or IP address.
    pub host: String,
    /// gRPC port.
    pub port: u16,
}

impl ClusterUrl {
    /// Ballista's default scheduler port.
    pub const DEFAULT_PORT: u16 = 50050;

    /// Parses `df://HOST[:PORT]`; the message says what a valid one looks like.
    pub fn parse(text: &str) -> std::result::Result<ClusterUrl, String> {
        let hint = "write the scheduler's address as df://HOST:PORT, e.g. df://localhost:50050";
        let url = url::Url::parse(text).map_err(|e| format!("cluster `{text}` is not a URL ({e}); {hint}"))?;
        if url.scheme() != "df" {
            return Err(format!("cluster `{text}`: the scheme must be df://; {hint}"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("cluster `{text}` names no host; {hint}"))?;
        if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
            return Err(format!("cluster `{text}`: only a host and a port are expected; {hint}"));
        }
        Ok(ClusterUrl {
            host: host.trim_matches(['[', ']']).to_string(),
            port: url.port().unwrap_or(Self::DEFAULT_PORT),
        })
    }

    /// `HOST:PORT`, an IPv6 host in brackets.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The scheduler's gRPC endpoint, `http://HOST:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.authority())
    }

    /// Whether the scheduler runs on this machine (its executors then may see local paths).
    pub fn is_local(&self) -> bool {
        self.host == "localhost" || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "df://{}", self.authority())
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
    fn cluster_urls() {
        let url = ClusterUrl::parse("df://sched").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.to_string()), ("sched", 50050, "df://sched:50050".to_string()));
        assert_eq!(url.endpoint(), "http://sched:50050");
        assert!(!url.is_local());
        assert!(ClusterUrl::parse("df://127.0.0.1:7000").unwrap().is_local());
        assert!(ClusterUrl::parse("df://localhost:7000").unwrap().is_local());
        let v6 = ClusterUrl::parse("df://[::1]:7000").unwrap();
        assert_eq!((v6.endpoint(), v6.is_local()), ("http://[::1]:7000".to_string(), true));
        assert_eq!(
            ClusterUrl::parse("df://h:1/x").unwrap_err(),
            "cluster `df://h:1/x`: only a host and a port are expected; write the scheduler's address as \
             df://HOST:PORT, e.g. df://localhost:50050"
        );
        assert!(ClusterUrl::parse("sched:50050").is_err());
    }

    #[test]
    fn table_names() {
        assert_eq!(TableName::parse("t").unwrap().to_string(), "t");
        assert_eq!(TableName::parse("s.t").unwrap().schema.as_deref(), Some("s"));
        assert!(TableName::parse("a.b.c").is_none());
        assert!(TableName::parse(".t").is_none());
    }
}
