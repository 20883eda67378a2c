//! The cluster path for real: Ballista's scheduler and two one-slot executors over gRPC on
//! localhost — in this process (dfpipe's own server set-up, `engine::cluster::servers`), and as
//! `dfpipe scheduler` / `dfpipe executor` processes — with shuffles forced over Arrow Flight.
//! Every result written from the cluster is compared, row by row, with the same project run on
//! one machine.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::SessionContext;
use dfpipe::config::StorageConfig;
use dfpipe::engine::cluster::servers::{self, ServerOptions};
use dfpipe::engine::object_stores::Credentials;

use crate::object_store::{BUCKET, Moto, aws_env, seed, store};
use crate::pg;
use crate::util::*;

/// An in-process cluster: a scheduler and `executors` one-slot executors, on free localhost
/// ports, living as long as the test's runtime. `env` carries object-store credentials.
async fn in_process_cluster(executors: usize, env: Vec<(String, String)>) -> SocketAddr {
    let options = ServerOptions { storage: StorageConfig::default(), credentials: Credentials::Given(env) };
    let scheduler = servers::start_in_process_scheduler(&options).await.expect("scheduler");
    for _ in 0..executors {
        servers::start_in_process_executor(scheduler, 1, &options).await.expect("executor");
    }
    scheduler
}

/// Writes `files` Parquet files of 25,000 events each into `dir`.
async fn write_events(dir: &Path, files: usize) {
    write_events_of(dir, files, 25_000).await
}

/// Writes `files` Parquet files of `rows` events each into `dir` (ids 1, 2, … across them).
async fn write_events_of(dir: &Path, files: usize, rows: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let ctx = SessionContext::new();
    for i in 0..files {
        let (from, to) = (i * rows + 1, (i + 1) * rows);
        let df = ctx
            .sql(&format!(
                "SELECT value AS id, value % 13 AS k, CAST(CAST(value * 7 % 1000 AS DECIMAL(12, 2)) / 10 AS DECIMAL(12, 2)) AS amount, \
                 concat('  name ', CAST(value % 5 AS VARCHAR), '  ') AS name FROM generate_series({from}, {to})"
            ))
            .await
            .unwrap();
        let path = dir.join(format!("part-{i}.parquet"));
        df.write_parquet(path.to_str().unwrap(), DataFrameWriteOptions::new().with_single_file_output(true), None)
            .await
            .unwrap();
    }
}

const DIMS: &str = "K,Label,Since\n0,zero,13/01/2024\n1,one,14/01/2024\n2,two,15/01/2024\n3,three,16/01/2024\n\
    4,four,17/01/2024\n5,five,18/01/2024\n6,six,19/01/2024\n7,seven,20/01/2024\n8,eight,21/01/2024\n\
    9,nine,22/01/2024\n10,ten,23/01/2024\n11,eleven,24/01/2024\n";

/// A project with a GROUP BY, a join (a parameter in its filter, a cleaned CSV on one side) and
/// a model using a `udfs/` crate function and a SQL-defined one; written to the DuckDB file
/// `${WH}` and to PostgreSQL schema `${SCHEMA}`. `events` is where the Parquet files are.
fn cluster_project(events: &str) -> Project {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: c\n\
             connections:\n  warehouse: {{ kind: duckdb, path: \"${{WH}}\" }}\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\n\
             sources:\n  events: {{ path: \"{events}\", format: parquet }}\n  \
             dims: {{ path: dims.csv, clean: {{ columns: snake_case, dates: auto }} }}\n\
             params:\n  min_id: 10\n\
             datafusion:\n  ballista.shuffle.force_remote_read: true\n\
             outputs:\n  - model: by_key\n  - model: joined\n  - model: fns\n  \
             - {{ model: by_key, to: pg, table: \"${{SCHEMA}}.by_key\" }}\n  \
             - {{ model: joined, to: pg, table: \"${{SCHEMA}}.joined\" }}\n"
        ),
    );
    p.write("dims.csv", DIMS);
    p.write(
        "sql/by_key.sql",
        "SELECT k, count(*) AS n, sum(amount) AS total, min(id) AS first_id FROM events GROUP BY k\n",
    );
    p.write(
        "sql/joined.sql",
        "SELECT e.id, e.amount, d.label, d.since FROM events e JOIN dims d ON e.k = d.k WHERE e.id % 97 = 0 AND e.id >= $min_id\n",
    );
    p.write("sql/fns.sql", "SELECT id, clean_text(name) AS name, net(amount) AS net FROM events WHERE id % 101 = 0\n");
    p.write("udfs/net.sql", "CREATE FUNCTION net(a DOUBLE) RETURNS DOUBLE RETURN $a * 0.9;\n");
    p
}

/// Every value as text, in a fixed order (DuckDB and PostgreSQL both read this SQL).
const QUERIES: [(&str, &str); 3] = [
    ("by_key", "SELECT k::VARCHAR, n::VARCHAR, total::VARCHAR, first_id::VARCHAR FROM by_key ORDER BY k"),
    ("joined", "SELECT id::VARCHAR, amount::VARCHAR, label, since::VARCHAR FROM joined ORDER BY id"),
    ("fns", "SELECT id::VARCHAR, name, net::VARCHAR FROM fns ORDER BY id"),
];

/// A fresh PostgreSQL schema (the harness blocks; the cluster keeps running on other threads).
fn pg_schema(name: &str) -> String {
    tokio::task::block_in_place(|| pg::schema(name))
}

/// Every output of `p` as written to the DuckDB file `wh` and to PostgreSQL schema `schema`.
fn results(p: &Project, wh: &str, schema: &str) -> Vec<Vec<Vec<String>>> {
    let mut all: Vec<_> = QUERIES.iter().map(|(_, sql)| duckdb_rows(&p.file(wh), sql)).collect();
    for (table, sql) in &QUERIES[..2] {
        all.push(tokio::task::block_in_place(|| {
            pg::query(&sql.replace(&format!("FROM {table}"), &format!("FROM {schema}.{table}")))
        }));
    }
    all
}

/// Runs `p` with `args`, the DuckDB file `wh` and the PostgreSQL schema `schema`, off the
/// runtime's threads (the cluster lives on them).
async fn run(p: &Project, args: &[&str], wh: &str, schema: &str, env: &[(&str, String)]) -> std::process::Output {
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--vars".into(), format!("WH={wh}"), "--vars".into(), format!("SCHEMA={schema}")]);
    let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    env.push(("DFPIPE_PG".into(), tokio::task::block_in_place(pg::database_url).to_string()));
    let dir = p.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_dfpipe"))
            .args(&args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The `computed on the cluster: S stages, T tasks` line of `target`, as (stages, tasks).
fn cluster_work(out: &std::process::Output, target: &str) -> (u32, u32) {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{target}: computed on the cluster: ")))
        .unwrap_or_else(|| panic!("no cluster line for {target} in:\n{text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at =
        |unit: &str| words[words.iter().position(|w| w.trim_end_matches(',') == unit).unwrap() - 1].parse().unwrap();
    (at("stages"), at("tasks"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_by_join_and_functions_on_the_cluster_equal_the_local_run() {
    let scheduler = in_process_cluster(2, vec![]).await;
    let p = cluster_project("events/");
    write_events(&p.file("events"), 4).await;
    // As Spark leaves a directory: its marker and notes are not data, and the source stays a
    // plain listing the executors can read.
    p.write("events/_SUCCESS", "");
    p.write("events/README.md", "# events\n");
    p.write("dims.csv", DIMS);
    let (local, remote) = (pg_schema("cluster_local"), pg_schema("cluster_remote"));
    let out = run(&p, &["run"], "local.duckdb", &local, &[]).await;
    assert_success(&out);
    let url = format!("df://localhost:{}", scheduler.port());
    let out = run(&p, &["run", "--cluster", &url], "remote.duckdb", &remote, &[]).await;
    assert_success(&out);
    let expected = results(&p, "local.duckdb", &local);
    assert_eq!(expected[0].len(), 13, "{expected:?}");
    assert_eq!(expected[0].iter().map(|r| r[1].parse::<u64>().unwrap()).sum::<u64>(), 100_000);
    // Multiples of 97 up to 100,000 (1,030) whose key (id % 13) has a dimension row (0..=11).
    assert_eq!(expected[1].len(), (1..=100_000).filter(|i| i % 97 == 0 && i % 13 != 12).count());
    assert_eq!(expected[2][0][..2], ["101", "name 1"], "{:?}", expected[2][0]);
    assert_eq!(results(&p, "remote.duckdb", &remote), expected);
    // The GROUP BY was cut at its exchange: a stage reading the 4 files, one merging the keys.
    let (stages, tasks) = cluster_work(&out, "warehouse.by_key");
    assert!(stages >= 2 && tasks >= 5, "{stages} stages, {tasks} tasks");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["targets"][0]["cluster"]["scheduler"], url.as_str());
    assert_eq!(results["targets"][0]["cluster"]["stages"], stages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sources_on_s3_are_read_by_the_executors() {
    let moto = Moto::start();
    seed(moto.addr).await;
    let env: Vec<(String, String)> = aws_env(moto.addr).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let scheduler = in_process_cluster(2, env.clone()).await;
    let p = cluster_project(&format!("s3://{BUCKET}/events/"));
    write_events(&p.file("events"), 4).await;
    let s3 = store(moto.addr);
    for entry in std::fs::read_dir(p.file("events")).unwrap() {
        let path = entry.unwrap().path();
        let key = format!("events/{}", path.file_name().unwrap().to_string_lossy());
        let key = object_store::path::Path::from(key);
        object_store::ObjectStoreExt::put(&s3, &key, std::fs::read(&path).unwrap().into()).await.unwrap();
    }
    let (local, remote) = (pg_schema("cluster_s3_local"), pg_schema("cluster_s3_remote"));
    let env: Vec<(&str, String)> = aws_env(moto.addr);
    assert_success(&run(&p, &["run"], "local.duckdb", &local, &env).await);
    let url = format!("df://localhost:{}", scheduler.port());
    let out = run(&p, &["run", "--cluster", &url], "remote.duckdb", &remote, &env).await;
    assert_success(&out);
    let expected = results(&p, "local.duckdb", &local);
    assert_eq!(expected[0].iter().map(|r| r[1].parse::<u64>().unwrap()).sum::<u64>(), 100_000);
    assert_eq!(results(&p, "remote.duckdb", &remote), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_that_fail_and_are_retried_never_write_twice() {
    let scheduler = in_process_cluster(2, vec![]).await;
    let p = cluster_project("events/");
    write_events(&p.file("events"), 4).await;
    let local = pg_schema("cluster_chaos_local");
    assert_success(&run(&p, &["run"], "local.duckdb", &local, &[]).await);
    // Ballista's fault injection: a fifth of the operators fail with an IO error, deterministically
    // (seeded); Ballista retries those tasks (up to 4 times each).
    let yml = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap().replace(
        "  ballista.shuffle.force_remote_read: true\n",
        "  ballista.shuffle.force_remote_read: true\n  ballista.testing.chaos_execution.enabled: true\n  \
         ballista.testing.chaos_execution.probability: 0.2\n  ballista.testing.chaos_execution.fault_type: transient\n  \
         ballista.testing.chaos_execution.seed: '7'\n",
    );
    p.write("dfpipe.yml", &yml);
    let remote = pg_schema("cluster_chaos_remote");
    let url = format!("df://localhost:{}", scheduler.port());
    let out = run(&p, &["run", "--cluster", &url], "remote.duckdb", &remote, &[]).await;
    let expected = results(&p, "local.duckdb", &local);
    if out.status.success() {
        assert_eq!(results(&p, "remote.duckdb", &remote), expected);
    } else {
        // Out of retries: the failed targets were not written at all.
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let text = stdout(&out) + &stderr(&out);
        assert!(text.contains("chaos") || text.contains("Chaos"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_cannot_be_reached_fails_fast_and_writes_nothing() {
    let p = cluster_project("events/");
    write_events(&p.file("events"), 4).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let began = Instant::now();
    let out =
        run(&p, &["run", "--cluster", &format!("df://127.0.0.1:{}", closed.port())], "wh.duckdb", "unused", &[]).await;
    assert!(began.elapsed() < Duration::from_secs(30), "took {:?}", began.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error: cannot reach the cluster's scheduler at df://127.0.0.1:{}: ", closed.port()))
            && err.contains("start one with `dfpipe scheduler`"),
        "{err}"
    );
    assert!(!p.file("wh.duckdb").exists(), "nothing is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sources_are_refused_for_a_remote_cluster_before_anything_runs() {
    let p = cluster_project("events/");
    write_events(&p.file("events"), 1).await;
    let out = run(&p, &["run", "--cluster", "df://cluster.example.com:50050"], "wh.duckdb", "unused", &[]).await;
    assert_error(
        &out,
        2,
        "source `dims` reads the local path dims.csv, which the executors of the cluster at \
         df://cluster.example.com:50050 cannot see; put it on object storage (s3://, gs://, az://, https://) or run \
         the cluster on this machine",
    );
    assert!(!p.file("wh.duckdb").exists());
    let out = run(&p, &["run", "--cluster", "http://x"], "wh.duckdb", "unused", &[]).await;
    assert_error(
        &out,
        2,
        "cluster `http://x`: the scheme must be df://; write the scheduler's address as df://HOST:PORT, e.g. df://localhost:50050",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_shows_the_stages_the_scheduler_cuts() {
    let scheduler = in_process_cluster(2, vec![]).await;
    let p = cluster_project("events/");
    write_events(&p.file("events"), 4).await;
    let url = format!("df://localhost:{}", scheduler.port());
    let out = run(&p, &["plan", "--select", "by_key", "--cluster", &url], "wh.duckdb", "s", &[]).await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains(&format!("  distributed plan (stages cut by the scheduler at {url}):")), "{text}");
    // Stage 1 scans the 4 files in 16 tasks (a cluster job's partitions, not this machine's
    // cores) and hash-partitions by the key; stage 2 merges the partial aggregates.
    assert!(text.contains("=========ResolvedStage[stage_id=1.0, partitions=16]========="), "{text}");
    assert!(text.contains("ShuffleWriterExec: partitioning=Hash([k@0], 16)"), "{text}");
    assert!(text.contains("DataSourceExec: file_groups={16 groups: "), "{text}");
    assert!(text.contains("UnResolvedStage[stage_id=2.0, children=1]"), "{text}");
    assert!(!p.file("wh.duckdb").exists(), "plan writes nothing");
}

/// `dfpipe scheduler` and `dfpipe executor` processes on free localhost ports, killed on drop.
struct Servers {
    scheduler: Child,
    executors: Vec<Child>,
    port: u16,
    work: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A localhost port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server's log file `NAME.log` in `dir`.
fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(format!("{name}.log"))).unwrap()
}

/// Waits until something listens on `port`.
fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} ended ({status}) before listening on {port}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within 60s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Servers {
    /// A scheduler and `executors` one-slot executors, each with its own work directory.
    fn start(executors: usize) -> Servers {
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut scheduler = Command::new(env!("CARGO_BIN_EXE_dfpipe"))
            .args(["scheduler", "--bind", &format!("127.0.0.1:{port}"), "--executor-timeout", "15"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(work.path(), "scheduler"))
            .spawn()
            .unwrap();
        wait_for_port(port, "dfpipe scheduler", &mut scheduler);
        let mut servers = Servers { scheduler, executors: vec![], port, work };
        for i in 0..executors {
            let bind = free_port();
            let dir = servers.work.path().join(format!("executor-{i}"));
            let mut child = Command::new(env!("CARGO_BIN_EXE_dfpipe"))
                .args(["executor", "--scheduler", &format!("127.0.0.1:{port}"), "--bind", &format!("127.0.0.1:{bind}")])
                .args(["--slots", "1", "--work-dir", dir.to_str().unwrap()])
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log_file(servers.work.path(), &format!("executor-{i}")))
                .spawn()
                .unwrap();
            wait_for_port(bind, "dfpipe executor", &mut child);
            servers.executors.push(child);
        }
        servers
    }

    fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }

    /// What server `name` (`scheduler`, `executor-0`, …) logged.
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.work.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The last lines each server logged, to explain a failure.
    fn logs(&self) -> String {
        let mut text = String::new();
        for name in
            std::iter::once("scheduler".to_string()).chain((0..self.executors.len()).map(|i| format!("executor-{i}")))
        {
            let log = self.log(&name);
            let lines: Vec<&str> = log.lines().collect();
            text +=
                &format!("--- {name}.log (last 40 lines)\n{}\n", lines[lines.len().saturating_sub(40)..].join("\n"));
        }
        text
    }

    /// Whether executor `i` has written shuffle output (a task of a job finished there).
    fn has_shuffle_output(&self, i: usize) -> bool {
        walkdir::WalkDir::new(self.work.path().join(format!("executor-{i}")))
            .into_iter()
            .filter_map(Result::ok)
            .any(|e| e.file_type().is_file() && e.metadata().is_ok_and(|m| m.len() > 0))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dfpipe_scheduler_and_executor_processes_run_the_project() {
    let servers = Servers::start(2);
    let p = cluster_project("events/");
    write_events(&p.file("events"), 4).await;
    let (local, remote) = (pg_schema("cluster_proc_local"), pg_schema("cluster_proc_remote"));
    assert_success(&run(&p, &["run"], "local.duckdb", &local, &[]).await);
    let out = run(&p, &["run", "--cluster", &servers.url()], "remote.duckdb", &remote, &[]).await;
    assert_success(&out);
    assert_eq!(results(&p, "remote.duckdb", &remote), results(&p, "local.duckdb", &local));
    assert!(servers.has_shuffle_output(0) && servers.has_shuffle_output(1), "both executors ran tasks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_mid_run_never_leaves_partial_or_doubled_rows() {
    let mut servers = Servers::start(2);
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: k\nconnections:\n  warehouse: { kind: duckdb, path: \"${WH}\" }\n\
         sources:\n  events: { path: events/, format: parquet }\n\
         datafusion:\n  ballista.shuffle.force_remote_read: true\n\
         outputs:\n  - model: groups\n",
    );
    p.write("sql/groups.sql", "SELECT id % 100003 AS g, count(*) AS n, sum(amount) AS total FROM events GROUP BY 1\n");
    let groups = "SELECT g::VARCHAR, n::VARCHAR, total::VARCHAR FROM groups ORDER BY g";
    // The target's previous contents: three of the four files.
    write_events_of(&p.file("events"), 3, 1_000_000).await;
    assert_success(&run(&p, &["run"], "wh.duckdb", "unused", &[]).await);
    let old = duckdb_rows(&p.file("wh.duckdb"), groups);
    write_events_of(&p.file("events"), 4, 1_000_000).await;
    assert_success(&run(&p, &["run"], "expected.duckdb", "unused", &[]).await);
    let expected = duckdb_rows(&p.file("expected.duckdb"), groups);
    assert_ne!(old, expected);

    let mut client = Command::new(env!("CARGO_BIN_EXE_dfpipe"))
        .args(["run", "--cluster", &servers.url(), "--vars", "WH=wh.duckdb"])
        .current_dir(p.path())
        .env_remove("RUST_LOG")
        .stdout(log_file(p.path(), "client-out"))
        .stderr(log_file(p.path(), "client-err"))
        .spawn()
        .unwrap();
    // Executor 0 has finished a task of the job (its shuffle output is on its disk) and the
    // run goes on: kill it there.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !servers.has_shuffle_output(0) {
        assert!(client.try_wait().unwrap().is_none(), "the run ended before executor 0 finished a task");
        assert!(Instant::now() < deadline, "executor 0 ran no task within 120s\n{}", servers.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    servers.executors[0].kill().unwrap();
    servers.executors[0].wait().unwrap();
    assert!(client.try_wait().unwrap().is_none(), "the run had ended when executor 0 was killed: make the job longer");

    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = client.kill();
            let out = std::fs::read_to_string(p.file("client-err.log")).unwrap_or_default();
            panic!("the run did not end within 240s of the kill\nclient: {out}\n{}", servers.logs());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(p.file("client-out.log")).unwrap();
    let err = std::fs::read_to_string(p.file("client-err.log")).unwrap();
    let rows = duckdb_rows(&p.file("wh.duckdb"), groups);
    assert!(
        servers.log("scheduler").contains("heartbeat timed out"),
        "the scheduler lost executor 0\n{}",
        servers.logs()
    );
    if status.success() {
        // Ballista reran the lost work on executor 1: every group exactly once.
        assert_eq!(rows, expected, "{out}");
    } else {
        assert_eq!(status.code(), Some(1), "{out}{err}");
        assert_eq!(rows, old, "a failed run keeps the previous contents");
    }
}
