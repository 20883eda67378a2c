//! Helpers that read like the domain: a throwaway project directory, the built binary, and
//! DuckDB read-back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary project directory, removed when dropped.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// An empty project directory.
    pub fn new() -> Project {
        Project { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// The `dfpipe init` demo with `orders` orders.
    pub fn demo(orders: usize) -> Project {
        let p = Project::new();
        let out = p.dfpipe(&["init", ".", "--orders", &orders.to_string()]);
        assert_success(&out);
        p
    }

    /// The project directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `rel`, creating directories.
    pub fn write(&self, rel: &str, contents: &str) -> &Project {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    /// Runs the built `dfpipe` in the project directory.
    pub fn dfpipe(&self, args: &[&str]) -> Output {
        self.dfpipe_env(args, &[])
    }

    /// Runs the built `dfpipe` with extra environment variables.
    pub fn dfpipe_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dfpipe"));
        cmd.args(args).current_dir(self.path()).env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("dfpipe runs")
    }

    /// Runs the built `dfpipe` like [`Self::dfpipe`], but kills it and panics if it has not
    /// ended within `limit` (a hang fails the test instead of stalling the suite). Its output
    /// goes to files, so a full pipe cannot stall it.
    pub fn dfpipe_within(&self, args: &[&str], limit: std::time::Duration) -> Output {
        let (out, err) = (self.file(".dfpipe-test.stdout"), self.file(".dfpipe-test.stderr"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_dfpipe"))
            .args(args)
            .current_dir(self.path())
            .env_remove("RUST_LOG")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("dfpipe runs");
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > limit {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!(
                    "dfpipe {} did not end within {} s\nstderr:\n{}",
                    args.join(" "),
                    limit.as_secs(),
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        Output { status, stdout: std::fs::read(&out).unwrap(), stderr: std::fs::read(&err).unwrap() }
    }

    /// Starts `dfpipe run -q` with `env`, paused once its first batch is in the load's open
    /// transaction (`DFPIPE_TEST_PAUSE_MID_LOAD`, see `util::fault` in the crate); returns when
    /// it is. The load goes on when the returned pause file is removed.
    pub fn spawn_paused_mid_load(&self, env: &[(&str, &str)]) -> (std::process::Child, PathBuf) {
        let flag = self.file("paused");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dfpipe"))
            .args(["run", "-q"])
            .current_dir(self.path())
            .envs(env.iter().copied())
            .env("DFPIPE_TEST_PAUSE_MID_LOAD", &flag)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !flag.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("dfpipe ended ({status}) before its load started");
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(120), "the load never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (child, flag)
    }

    /// Lets the load paused by [`Project::spawn_paused_mid_load`] go on (its pause file
    /// removed), and returns once the next load has paused in turn (the file is back).
    pub fn resume_until_the_next_load_pauses(pause: &Path) {
        std::fs::remove_file(pause).unwrap();
        let start = std::time::Instant::now();
        while !pause.exists() {
            assert!(start.elapsed() < std::time::Duration::from_secs(120), "the next load never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Path of a file in the project.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// Runs `sql` on the project's DuckDB file and returns every value as text.
    pub fn duckdb(&self, sql: &str) -> Vec<Vec<String>> {
        duckdb_rows(&self.file("dfpipe.duckdb"), sql)
    }
}

/// CSV text `id,v` with a row `i,<tag>i` for each `i` in `range`.
pub fn rows_csv(range: std::ops::RangeInclusive<u32>, tag: &str) -> String {
    let mut s = String::from("id,v\n");
    for i in range {
        s.push_str(&format!("{i},{tag}{i}\n"));
    }
    s
}

/// Every row of `sql` on the DuckDB file at `path`, values cast to VARCHAR ("NULL" for null).
pub fn duckdb_rows(path: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn = duckdb::Connection::open(path).expect("open duckdb");
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let n = row.as_ref().column_count();
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            let v: duckdb::types::Value = row.get(i).unwrap();
            values.push(match v {
                duckdb::types::Value::Null => "NULL".to_string(),
                duckdb::types::Value::Text(s) => s,
                other => format!("{other:?}"),
            });
        }
        out.push(values);
    }
    out
}

/// A single value of `sql`.
pub fn one(rows: Vec<Vec<String>>) -> String {
    assert_eq!(rows.len(), 1, "expected one row, got {rows:?}");
    rows.into_iter().next().unwrap().into_iter().next().unwrap()
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Panics with both streams unless the command exited 0.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "dfpipe failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

/// Asserts the exit code and that stderr holds the line(s) `error: {message}` exactly.
pub fn assert_error(out: &Output, code: i32, message: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stdout:\n{}\nstderr:\n{err}", stdout(out));
    assert!(
        err.lines().any(|l| l == format!("error: {message}")) || err.contains(&format!("error: {message}\n")),
        "expected the error\n  error: {message}\nstderr was:\n{err}"
    );
}

/// Writes `batch` as the Parquet file `path` (`properties`: the writer's, e.g. a codec),
/// creating its directory.
pub fn write_parquet_batch(
    path: &Path,
    batch: &datafusion::arrow::array::RecordBatch,
    properties: Option<datafusion::parquet::file::properties::WriterProperties>,
) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), properties).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

/// Every batch of the Parquet file at `path`.
pub fn read_parquet(path: &Path) -> Vec<datafusion::arrow::array::RecordBatch> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
