//! Connecting: the DSN from the config (`${DATABASE_URL}`), else `DATABASE_URL`, else libpq's
//! `PG*` variables, which with the password file also fill in what a DSN leaves out
//! ([`super::libpq_env`]); TLS by `sslmode` (see [`super::tls`]); retries with exponential backoff;
//! messages that never include the password.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio_postgres::{Client, Config};

use super::tls::{RustlsConnector, SslMode, TlsOptions};

/// A connected client, and why its connection closed if it did (the server's FATAL message,
/// which the client itself only sees as "connection closed").
pub struct Connection {
    /// The client.
    pub client: Client,
    closed: Arc<Mutex<Option<String>>>,
}

impl Connection {
    /// Describes `e`, naming the server's reason when the connection was closed under us.
    pub async fn describe(&self, e: &tokio_postgres::Error) -> String {
        // A FATAL error ends the session: the server sends it, then closes the connection. Which
        // of the two the client sees first is a race; both are the same failure.
        let fatal = e.as_db_error().is_some_and(|d| matches!(d.severity(), "FATAL" | "PANIC"));
        if fatal {
            return format!("the server closed the connection, so nothing was committed: {}", describe(e));
        }
        if !e.is_closed() {
            return describe(e);
        }
        // The connection task records the reason as it ends, a moment after the client notices.
        for _ in 0..20 {
            if let Some(reason) = self.closed.lock().expect("not poisoned").clone() {
                return format!("the server closed the connection, so nothing was committed: {reason}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        format!("the server closed the connection, so nothing was committed: {}", describe(e))
    }
}

/// Connection attempts before giving up.
const ATTEMPTS: u32 = 5;

/// How long one connection attempt may take unless the DSN's `connect_timeout` says otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Refuses a URL whose user and password part holds more than one `@`: the parser would take
/// the tail of the password for the host, and messages naming the host would show it.
fn check_userinfo(dsn: &str) -> Result<(), String> {
    let Some(rest) = dsn.strip_prefix("postgres://").or_else(|| dsn.strip_prefix("postgresql://")) else {
        return Ok(());
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if authority.matches('@').count() > 1 {
        return Err("the PostgreSQL connection string has more than one `@` before the host (it is not shown \
                    because it may hold a password): percent-encode reserved characters in the user name and \
                    password, `@` as %40, `:` as %3A, `/` as %2F"
            .to_string());
    }
    Ok(())
}

/// The hosts, for messages: only names that parsed cleanly (a name holding `@`, `:` or `/`
/// came from a malformed DSN and may hold part of a password).
fn hosts(config: &Config) -> String {
    config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name)
                if !name.contains(['@', '/', ':']) || name.parse::<std::net::Ipv6Addr>().is_ok() =>
            {
                name.clone()
            }
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            _ => "(a host that did not parse cleanly)".to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The hosts and ports `config` names, as `db.example.com port 5432` (a DSN that names no port
/// means PostgreSQL's 5432, as for libpq).
fn server(config: &Config) -> String {
    let ports = match config.get_ports() {
        [] => "5432".to_string(),
        ports => ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
    };
    format!("{} port {ports}", hosts(config))
}

/// Where and how to connect: the server settings and the TLS that goes with them.
pub struct Settings {
    config: Config,
    mode: SslMode,
    tls: RustlsConnector,
}

/// Builds the connection settings. Errors never echo the DSN, which may hold a password.
pub fn config(dsn: Option<&str>) -> Result<Settings, String> {
    let from_env = std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty());
    let (mut config, tls, driverless) = match dsn.map(str::to_string).or(from_env) {
        Some(dsn) => {
            check_userinfo(&dsn)?;
            let (dsn, tls) = TlsOptions::split_dsn(&dsn)?;
            let (dsn, driverless) = super::dsn_keys::take(&dsn, &DRIVERLESS_KEYS);
            let config = dsn.parse::<Config>().map_err(|e| unreadable_dsn(&e))?;
            (config, tls, driverless)
        }
        None => {
            let var = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
            let mut c = Config::new();
            c.host(var("PGHOST").unwrap_or_else(|| "localhost".into()));
            if let Some(port) = var("PGPORT") {
                c.port(port.parse().map_err(|_| format!("PGPORT `{port}` is not a port number"))?);
            }
            c.user(var("PGUSER").or_else(|| var("USER")).unwrap_or_else(|| "postgres".into()));
            if let Some(password) = var("PGPASSWORD") {
                c.password(password);
            }
            if let Some(db) = var("PGDATABASE") {
                c.dbname(&db);
            }
            if let Some(secs) = var("PGCONNECT_TIMEOUT") {
                let secs: u64 =
                    secs.parse().map_err(|_| format!("PGCONNECT_TIMEOUT `{secs}` is not a number of seconds"))?;
                c.connect_timeout(Duration::from_secs(secs));
            }
            (c, TlsOptions::from_env()?, Vec::new())
        }
    };
    super::libpq_env::fill(&mut config);
    // After the environment: `PGAPPNAME` comes before `fallback_application_name`, as in libpq.
    for (key, value) in driverless {
        apply_driverless(&mut config, &key, &value)?;
    }
    // A host that never answers must not hang the run (libpq's `connect_timeout` or
    // `PGCONNECT_TIMEOUT` set it; each attempt gets this long).
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("dfpipe");
    }
    config.ssl_mode(tls.mode.negotiation());
    Ok(Settings { config, mode: tls.mode, tls: tls.connector()? })
}

/// libpq options tokio-postgres does not read, which dfpipe takes itself: they change nothing
/// it does, or say what it does anyway (see [`apply_driverless`]). DSNs copied from libpq-based
/// tools (psql, dbt, SQLAlchemy) carry them.
const DRIVERLESS_KEYS: [&str; 3] = ["client_encoding", "fallback_application_name", "gssencmode"];

/// Applies one of [`DRIVERLESS_KEYS`]: `client_encoding` must be UTF-8, which dfpipe always
/// speaks; `fallback_application_name` names the session when neither `application_name` nor
/// `PGAPPNAME` does;
/// `gssencmode` may be `disable` or `prefer` (dfpipe has no GSSAPI encryption, and libpq
/// without it connects as under `disable`), not `require`.
fn apply_driverless(config: &mut Config, key: &str, value: &str) -> Result<(), String> {
    let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(value.trim()));
    match key {
        "client_encoding" if is(&["UTF8", "UTF-8", "UNICODE", "auto"]) => Ok(()),
        "client_encoding" => Err(format!(
            "client_encoding `{value}` in the PostgreSQL connection string: dfpipe always talks UTF8 to the \
             server (the server converts to the database's encoding); leave it out or set UTF8"
        )),
        "fallback_application_name" => {
            if config.get_application_name().is_none() {
                config.application_name(value);
            }
            Ok(())
        }
        _ if is(&["disable", "prefer"]) => Ok(()),
        _ => Err(format!(
            "gssencmode `{value}` in the PostgreSQL connection string: dfpipe does not encrypt with GSSAPI; \
             use sslmode=require (or verify-full) for an encrypted connection, or gssencmode=prefer"
        )),
    }
}

/// libpq's connection keywords: the only option names a message may show (an unknown "option"
/// can be the tail of a password with a space in it, or after a `&` in a URL's password).
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Why a connection string does not read, without any of its text but a libpq keyword: an
/// option of libpq's that dfpipe's driver does not take, or one whose value does not read, is
/// named; a name libpq does not know is not (it may be part of a password).
fn unreadable_dsn(e: &tokio_postgres::Error) -> String {
    let cause = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
    let quoted = |prefix: &str| {
        let name = cause.strip_prefix(prefix)?.strip_suffix('`')?;
        Some(name.to_string()).filter(|n| LIBPQ_KEYWORDS.contains(&n.as_str()))
    };
    let why = match (quoted("unknown option `"), quoted("invalid value for option `")) {
        (Some(name), _) => format!(": libpq's option `{name}` is not one dfpipe takes (leave it out)"),
        (None, Some(name)) => format!(": the value of option `{name}` does not read"),
        _ if cause.starts_with("unknown option `") => ": it has an option libpq does not know".to_string(),
        _ => String::new(),
    };
    format!(
        "the PostgreSQL connection string is not valid{why} (check it against libpq's forms, \
         postgres://user@host:5432/dbname with options after `?`, or host=... port=... dbname=...; it is not shown \
         because it may hold a password)"
    )
}

/// Whether retrying cannot help: the server refused us (authentication, a missing database),
/// or TLS failed (a certificate that does not verify does not start verifying on the next
/// attempt). A server that is starting up, shutting down or out of connection slots may take
/// us a moment later, so those are retried.
fn is_permanent(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let transient = [
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
        ];
        return !transient.contains(db.code());
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let tls = inner.downcast_ref::<rustls::Error>().is_some()
            || inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|i| i.is::<rustls::Error>())
            || inner.to_string().contains("does not support TLS");
        if tls {
            return true;
        }
        source = inner.source();
    }
    false
}

/// Why one connection attempt failed.
#[derive(Debug)]
enum Attempt {
    Failed(tokio_postgres::Error),
    TimedOut(Duration),
}

impl Attempt {
    fn is_permanent(&self) -> bool {
        match self {
            Attempt::Failed(e) => is_permanent(e),
            Attempt::TimedOut(_) => false,
        }
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Failed(e) => f.write_str(&describe(e)),
            Attempt::TimedOut(limit) => write!(f, "no answer within {}", humantime::format_duration(*limit)),
        }
    }
}

/// Connects, retrying with exponential backoff (0.25 s, 0.5 s, 1 s, 2 s) unless retrying cannot
/// help; the connection task runs on its own.
pub async fn connect(settings: &Settings) -> Result<Connection, String> {
    let config = &settings.config;
    let attempts = AtomicU32::new(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_factor(2.0)
        .with_max_times(ATTEMPTS as usize - 1);
    // tokio-postgres limits only the socket's connect to `connect_timeout`; like libpq, the
    // whole attempt (TLS, startup, authentication) gets that long, so a server that accepts
    // and never answers cannot hang the run.
    let limit = config.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let outcome = (|| async {
        attempts.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(limit, config.connect(settings.tls.clone())).await {
            Ok(connected) => connected.map_err(Attempt::Failed),
            Err(_) => Err(Attempt::TimedOut(limit)),
        }
    })
    .retry(backoff)
    .when(|e| !e.is_permanent())
    .notify(|e, delay| {
        let attempt = attempts.load(Ordering::Relaxed);
        tracing::warn!("cannot connect to PostgreSQL (attempt {attempt} of {ATTEMPTS}): {e}; retrying in {delay:?}");
    })
    .await;
    match outcome {
        Ok((client, connection)) => {
            let closed = Arc::new(Mutex::new(None));
            let reason = closed.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("postgres connection closed: {e}");
                    *reason.lock().expect("not poisoned") = Some(describe(&e));
                }
            });
            Ok(Connection { client, closed })
        }
        Err(last) => {
            let reason = match &last {
                Attempt::TimedOut(_) => format!("{last} (connect_timeout in the DSN, or PGCONNECT_TIMEOUT)"),
                Attempt::Failed(e) if settings.mode.verifies() && is_permanent(e) && e.as_db_error().is_none() => {
                    format!(
                        "{last} (sslmode verify-ca/verify-full check the server's certificate against sslrootcert: \
                         point it at the CA that signed the server's certificate, or use sslmode=require to \
                         encrypt without verifying)"
                    )
                }
                Attempt::Failed(_) => last.to_string(),
            };
            Err(format!(
                "cannot connect to PostgreSQL at {} after {} attempt(s): {reason}",
                server(config),
                attempts.load(Ordering::Relaxed)
            ))
        }
    }
}

/// A tokio-postgres error with the server's message, detail and context when there is one.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            if let Some(context) = db.where_() {
                s.push_str(&format!(" [{context}]"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_options_the_driver_lacks_are_taken_or_refused_by_name() {
        let settings = |dsn: &str| config(Some(dsn)).map(|s| s.config);
        let url = settings(
            "postgres://u@h/db?gssencmode=disable&client_encoding=utf8&fallback_application_name=psql&sslmode=disable",
        )
        .unwrap();
        assert_eq!((url.get_application_name(), url.get_dbname()), (Some("psql"), Some("db")));
        let named = settings("host=h application_name=mine fallback_application_name=psql gssencmode=prefer").unwrap();
        assert_eq!(named.get_application_name(), Some("mine"));
        assert_eq!(settings("host=h").unwrap().get_application_name(), Some("dfpipe"));
        assert_eq!(
            settings("postgres://u:secret@h/db?client_encoding=LATIN1").err().unwrap(),
            "client_encoding `LATIN1` in the PostgreSQL connection string: dfpipe always talks UTF8 to the server \
             (the server converts to the database's encoding); leave it out or set UTF8"
        );
        let refused = settings("host=h password=secret gssencmode=require").err().unwrap();
        assert!(
            refused.starts_with("gssencmode `require` in the PostgreSQL connection string: ")
                && !refused.contains("secret")
        );
    }

    #[test]
    fn the_server_is_named_with_its_port_or_postgres_default() {
        let named = |dsn: &str| server(&dsn.parse::<Config>().expect("a valid DSN"));
        assert_eq!(named("host=/var/run/postgresql dbname=x"), "/var/run/postgresql port 5432");
        assert_eq!(named("postgresql://db.example.com:6543/x"), "db.example.com port 6543");
        assert_eq!(named("host=a,b port=1,2"), "a,b port 1,2");
    }
}
