//! Sources on S3, for real: a local moto S3 server (`pip install 'moto[server]'`), reached
//! through a proxy that fails the first requests with 503 so dfpipe's retries are exercised.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

pub(crate) const BUCKET: &str = "dfpipe-test";

/// A moto S3 server on a free loopback port, stopped on drop.
pub(crate) struct Moto {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Moto {
    pub(crate) fn start() -> Moto {
        let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}); the S3 tests need it: pip install 'moto[server]' (.ci/run does)"
                )
            });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {addr} within 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, addr }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers the first `failures` connections with `503 Slow Down`, then forwards to `upstream`.
async fn flaky_proxy(upstream: SocketAddr, failures: usize) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failed = Arc::new(AtomicUsize::new(0));
    let forwarded = Arc::new(AtomicUsize::new(0));
    let (f, w) = (failed.clone(), forwarded.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            if f.load(Ordering::SeqCst) < failures {
                f.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = client
                        .write_all(b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    let _ = client.shutdown().await;
                });
            } else {
                w.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }
    });
    (addr, failed, forwarded)
}

pub(crate) fn aws_env(endpoint: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", format!("http://{endpoint}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// A client of the test bucket on the moto server at `moto`.
pub(crate) fn store(moto: SocketAddr) -> object_store::aws::AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(format!("http://{moto}"))
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap()
}

/// Creates the bucket and uploads three CSV files of 1,000 rows each.
pub(crate) async fn seed(moto: SocketAddr) {
    let mut s = tokio::net::TcpStream::connect(moto).await.unwrap();
    s.write_all(
        format!("PUT /{BUCKET} HTTP/1.1\r\nHost: {moto}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
    let store = store(moto);
    for file in 0..3 {
        let mut csv = String::from("id,amount\n");
        for i in 0..1000 {
            let id = file * 1000 + i;
            csv.push_str(&format!("{id},{}\n", id % 97));
        }
        store.put(&ObjectPath::from(format!("orders/part-{file}.csv")), csv.into()).await.unwrap();
    }
}

fn s3_project(storage: &str) -> Project {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!("name: s3\nsources:\n  orders: {{ path: \"s3://{BUCKET}/orders/*.csv\" }}\nstorage: {storage}\n"),
    );
    p.write("sql/totals.sql", "SELECT count(*) AS n, sum(amount) AS total, count(DISTINCT id) AS ids FROM orders\n");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_s3_through_retries() {
    let moto = Moto::start();
    seed(moto.addr).await;
    let (proxy, failed, forwarded) = flaky_proxy(moto.addr, 3).await;
    let p = s3_project("{ max_retries: 5 }");
    let env = aws_env(proxy);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = tokio::task::block_in_place(|| p.dfpipe_env(&["run", "-q"], &env));
    assert_success(&out);
    assert_eq!(failed.load(Ordering::SeqCst), 3, "the proxy failed exactly 3 requests");
    assert!(forwarded.load(Ordering::SeqCst) >= 1);
    let expected_total: u64 = (0..3000u64).map(|id| id % 97).sum();
    assert_eq!(
        p.duckdb("SELECT CAST(n AS VARCHAR), CAST(total AS VARCHAR), CAST(ids AS VARCHAR) FROM totals"),
        vec![vec!["3000".to_string(), expected_total.to_string(), "3000".to_string()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_with_a_clear_error() {
    let moto = Moto::start();
    seed(moto.addr).await;
    let (proxy, failed, _) = flaky_proxy(moto.addr, usize::MAX).await;
    let p = s3_project("{ max_retries: 2 }");
    let env = aws_env(proxy);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = tokio::task::block_in_place(|| p.dfpipe_env(&["run"], &env));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error: source `orders` (s3://{BUCKET}/orders/*.csv): cannot list files: ")),
        "{err}"
    );
    assert!(err.contains("503"), "{err}");
    assert_eq!(failed.load(Ordering::SeqCst), 3, "one request and two retries");
    assert!(!p.file("dfpipe.duckdb").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_s3_files_are_named() {
    let moto = Moto::start();
    seed(moto.addr).await;
    let p = Project::new();
    p.write("dfpipe.yml", &format!("name: s3\nsources:\n  orders: {{ path: \"s3://{BUCKET}/nothing/*.parquet\" }}\n"));
    p.write("sql/m.sql", "SELECT * FROM orders\n");
    let env = aws_env(moto.addr);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = tokio::task::block_in_place(|| p.dfpipe_env(&["run"], &env));
    assert_error(
        &out,
        1,
        &format!(
            "source `orders` (s3://{BUCKET}/nothing/*.parquet): no files found at s3://{BUCKET}/nothing/*.parquet; check the path (relative paths start at the project directory)"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_replace_on_s3_never_duplicates_rows() {
    let moto = Moto::start();
    seed(moto.addr).await;
    let env = aws_env(moto.addr);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // A file a crashed run left in the output prefix: the next replace removes it too.
    let store = store(moto.addr);
    store.put(&ObjectPath::from("out/left-by-a-crash.parquet"), "not parquet".into()).await.unwrap();
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: s3\nsources:\n  orders: {{ path: \"s3://{BUCKET}/orders/*.csv\" }}\n\
             outputs:\n  - model: copied\n    to: s3://{BUCKET}/out/\n"
        ),
    );
    p.write("sql/copied.sql", "SELECT * FROM orders\n");
    for _ in 0..3 {
        assert_success(&tokio::task::block_in_place(|| p.dfpipe_env(&["run", "-q"], &env)));
    }
    let reader = Project::new();
    reader.write(
        "dfpipe.yml",
        &format!("name: r\nsources:\n  out: {{ path: \"s3://{BUCKET}/out/\", format: parquet }}\n"),
    );
    reader.write("sql/n.sql", "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM out\n");
    assert_success(&tokio::task::block_in_place(|| reader.dfpipe_env(&["run", "-q"], &env)));
    assert_eq!(
        reader.duckdb("SELECT CAST(n AS VARCHAR), CAST(ids AS VARCHAR) FROM n"),
        vec![vec!["3000".to_string(), "3000".to_string()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_parquet_on_s3_loads_new_files_and_drops_uncommitted_ones() {
    let moto = Moto::start();
    seed(moto.addr).await;
    let env = aws_env(moto.addr);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: s3\nsources:\n  orders: {{ path: \"s3://{BUCKET}/orders/*.csv\" }}\n\
             outputs:\n  - model: copied\n    to: s3://{BUCKET}/inc/\n    mode: append\n    incremental: {{ by: files }}\n"
        ),
    );
    p.write("sql/copied.sql", "SELECT * FROM orders\n");
    let run = |extra: &[(&str, &str)]| {
        let mut all = env.clone();
        all.extend_from_slice(extra);
        tokio::task::block_in_place(|| p.dfpipe_env(&["run"], &all))
    };
    assert_success(&run(&[]));
    let store = store(moto.addr);
    let mut csv = String::from("id,amount\n");
    for id in 3000..4000 {
        csv.push_str(&format!("{id},{}\n", id % 97));
    }
    store.put(&ObjectPath::from("orders/part-3.csv"), csv.into()).await.unwrap();
    // Crashed after its files were copied in, before its marker: they never count.
    let crashed = run(&[("DFPIPE_TEST_CRASH_AT", "before-marker")]);
    assert!(stderr(&crashed).contains("crash point before-marker"), "{}", stderr(&crashed));
    let out = run(&[]);
    assert_success(&out);
    assert!(stdout(&out).contains("1 new file(s) of source `orders`"), "{}", stdout(&out));
    let nothing = run(&[]);
    assert!(stdout(&nothing).contains("no new files in source `orders`"), "{}", stdout(&nothing));

    let markers: Vec<_> = store.list(Some(&ObjectPath::from("inc/_dfpipe_loads"))).try_collect().await.unwrap();
    assert_eq!(markers.len(), 2);
    let reader = Project::new();
    reader.write(
        "dfpipe.yml",
        &format!("name: r\nsources:\n  out: {{ path: \"s3://{BUCKET}/inc/\", format: parquet }}\n"),
    );
    reader.write("sql/n.sql", "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM out\n");
    assert_success(&tokio::task::block_in_place(|| reader.dfpipe_env(&["run", "-q"], &env)));
    assert_eq!(
        reader.duckdb("SELECT CAST(n AS VARCHAR), CAST(ids AS VARCHAR) FROM n"),
        vec![vec!["4000".to_string(), "4000".to_string()]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_append_on_s3_that_fails_adds_no_file() {
    let moto = Moto::start();
    seed(moto.addr).await;
    let env = aws_env(moto.addr);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store = store(moto.addr);
    let put = |name: &str, body: String| {
        let store = &store;
        let path = ObjectPath::from(format!("raw/{name}"));
        async move { store.put(&path, body.into()).await.unwrap() }
    };
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: s3\nsources:\n  raw: {{ path: \"s3://{BUCKET}/raw/*.csv\", schema: {{ v: VARCHAR }} }}\n\
             outputs:\n  - {{ model: m, to: \"s3://{BUCKET}/app/\", mode: append }}\n\
             datafusion: {{ datafusion.execution.target_partitions: 2 }}\n"
        ),
    );
    p.write("sql/m.sql", "SELECT id, CAST(v AS BIGINT) AS v FROM raw\n");
    put("a.csv", rows_csv(1..=100, "")).await;
    assert_success(&tokio::task::block_in_place(|| p.dfpipe_env(&["run", "-q"], &env)));
    let objects = || async {
        let listed: Vec<_> = store.list(Some(&ObjectPath::from("app"))).try_collect().await.unwrap();
        let mut names: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
        names.sort();
        names
    };
    let before = objects().await;
    assert_eq!(before.len(), 1, "{before:?}");

    // Two inputs, two partitions: the larger one's last row fails the write after some of its
    // output files are complete in the prefix.
    put("a.csv", rows_csv(1..=1000, "")).await;
    put("b.csv", rows_csv(1..=400_000, "") + "400001,oops\n").await;
    let out = tokio::task::block_in_place(|| p.dfpipe_env(&["run", "-q"], &env));
    assert_error(&out, 1, "Cannot cast string 'oops' to value of Int64 type");
    assert_eq!(objects().await, before);
}
