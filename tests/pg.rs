//! A real PostgreSQL for the tests: `DFPIPE_TEST_DATABASE_URL` if set, otherwise a throwaway
//! cluster started once per test binary from the local server binaries (`pg_config --bindir`
//! or `/usr/lib/postgresql/*/bin`; as the `postgres` user when running as root). A watchdog
//! stops it and removes its directory when the test process exits. No server is a loud failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The URL of the test server.
pub fn database_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("DFPIPE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_cluster(None).url,
    })
}

/// A local server that accepts TCP connections only over TLS (`hostnossl … reject`), with a
/// certificate for `localhost` signed by a throwaway CA. Always started locally (its TLS set-up
/// is part of the test), whatever `DFPIPE_TEST_DATABASE_URL` says.
pub struct TlsServer {
    /// The TCP port.
    pub port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server presents.
    pub other_ca: PathBuf,
    /// A URL reaching the server through its Unix socket (no TLS there), for checking results.
    pub socket_url: String,
}

/// The TLS test server, started once per test binary.
pub fn tls_server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let certs = std::env::temp_dir().join(format!("dfpipe-test-tls-{}", std::process::id()));
        std::fs::create_dir_all(&certs).unwrap();
        let openssl = |args: &str| {
            let out = Command::new("sh").arg("-c").arg(format!("openssl {args}")).current_dir(&certs).output().unwrap();
            assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(&format!("req -x509 {key} -keyout ca.key -out ca.crt -subj /CN=dfpipe-test-ca -days 2"));
        openssl(&format!("req -x509 {key} -keyout other.key -out other.crt -subj /CN=dfpipe-other-ca -days 2"));
        openssl(&format!("req {key} -keyout server.key -out server.csr -subj /CN=localhost"));
        std::fs::write(certs.join("ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
        openssl(
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext",
        );
        let cluster = start_cluster(Some(&certs));
        let _ = std::fs::remove_file(certs.join("ca.key"));
        TlsServer {
            port: cluster.port,
            ca: certs.join("ca.crt"),
            other_ca: certs.join("other.crt"),
            socket_url: format!("host={} port={} user=postgres dbname=postgres", cluster.dir.display(), cluster.port),
        }
    })
}

fn bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries (initdb, postgres) found via pg_config or /usr/lib/postgresql/*/bin: \
             install the postgresql package, or set DFPIPE_TEST_DATABASE_URL to a server the tests may use"
        )
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Runs a shell script, as `postgres` when we are root (the server refuses to run as root).
fn shell(script: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }
}

/// A started cluster.
struct Cluster {
    url: String,
    port: u16,
    dir: PathBuf,
}

/// Starts a throwaway cluster; with `tls`, a directory holding `server.crt` and `server.key`,
/// the server takes TCP connections only over TLS.
fn start_cluster(tls: Option<&std::path::Path>) -> Cluster {
    let bin = bindir();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("dfpipe-test-pg-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    if is_root() {
        let ok = Command::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]).status().unwrap();
        assert!(ok.success(), "chown of {} to postgres failed", dir.display());
    }
    let (bin, dirs) = (bin.display().to_string(), dir.display().to_string());
    let out =
        shell(&format!("'{bin}/initdb' -D '{dirs}/data' -A trust -U postgres -E UTF8 --no-sync --no-instructions"))
            .output()
            .unwrap();
    assert!(out.status.success(), "initdb failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let mut settings = String::new();
    if let Some(certs) = tls {
        let data = dir.join("data");
        for file in ["server.crt", "server.key"] {
            std::fs::copy(certs.join(file), data.join(file)).unwrap();
        }
        let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
        std::fs::write(data.join("pg_hba.conf"), format!("hostnossl all all 0.0.0.0/0 reject\n{hba}")).unwrap();
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status().unwrap();
            assert!(ok.success(), "chown of {} to postgres failed", data.display());
        }
        std::fs::set_permissions(data.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        settings = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".to_string();
    }
    // The server, and a watchdog that stops it and removes the directory once this process is gone.
    let script = format!(
        "'{bin}/postgres' -D '{dirs}/data' -p {port} -k '{dirs}' -c listen_addresses=127.0.0.1 -c fsync=off \
           -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 {settings} > '{dirs}/log' 2>&1 & pg=$!; \
         while [ -d /proc/{test} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf '{dirs}'",
        test = std::process::id()
    );
    // Never waited for on purpose: the watchdog outlives the tests and stops the server after them.
    #[allow(clippy::zombie_processes)]
    let _watchdog = shell(&script).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(format!("{bin}/pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the test PostgreSQL did not start within 30s; its log:\n{}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Cluster { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), port, dir }
}

/// Runs `sql` (simple query protocol) and returns every value as text ("NULL" for null).
pub fn query(sql: &str) -> Vec<Vec<String>> {
    query_at(database_url(), sql)
}

/// Runs `sql` on the server at `url`, as [`query`] does.
pub fn query_at(url: &str, sql: &str) -> Vec<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let mut rows = Vec::new();
        for message in client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}")) {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                rows.push((0..row.len()).map(|i| row.get(i).unwrap_or("NULL").to_string()).collect());
            }
        }
        rows
    })
}

/// A fresh schema for one test, so tests can run in parallel on one server.
pub fn schema(name: &str) -> String {
    query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"));
    name.to_string()
}

/// A session holding a transaction open (as an analyst's idle `BEGIN; SELECT …` does) until
/// dropped. Its `application_name` is `app`.
pub struct OpenTransaction {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Opens a session named `app`, runs `BEGIN` and `sql` in it, and keeps the transaction open.
pub fn hold_open_transaction(app: &str, sql: &str) -> OpenTransaction {
    hold_open_transaction_at(&format!("{} application_name={app}", key_value_url(database_url())), sql)
}

/// [`hold_open_transaction`] on a session opened with the libpq settings `url`.
pub fn hold_open_transaction_at(url: &str, sql: &str) -> OpenTransaction {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let url = url.to_string();
    let sql = sql.to_string();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client.batch_execute(&format!("BEGIN; {sql}")).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            ready_tx.send(()).unwrap();
            let _ = tokio::task::spawn_blocking(move || released.recv()).await;
            let _ = client.batch_execute("ROLLBACK").await;
        });
    });
    ready.recv().expect("the transaction opened");
    OpenTransaction { release: Some(release), thread: Some(thread) }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `postgres://user@host:port/db` as libpq key-value settings, so more can be appended (a
/// setting appended again overrides the first).
pub fn key_value_url(url: &str) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let password = config.get_password().map_or_else(String::new, |p| {
        format!(" password='{}'", String::from_utf8_lossy(p).replace('\\', "\\\\").replace('\'', "\\'"))
    });
    format!(
        "host={host} port={} user={} dbname={}{password}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("postgres")
    )
}
