//! Data safety: no configuration, name or fault makes a run destroy what a target, a source or
//! the project already holds.

use crate::util::*;

/// A project reading `raw.csv` through model `m`, with `outputs` as given.
fn project(outputs: &str) -> Project {
    let p = Project::new();
    p.write("sql/m.sql", "SELECT id, v FROM raw\n");
    set_outputs(&p, outputs);
    p
}

fn set_outputs(p: &Project, outputs: &str) {
    p.write(
        "dfpipe.yml",
        &format!("name: t\nsources:\n  raw: {{ path: raw.csv, schema: {{ v: VARCHAR }} }}\noutputs:\n{outputs}"),
    );
}

#[test]
fn duckdb_names_tables_without_regard_to_case_as_duckdb_does() {
    let p = project("  - model: m\n    table: orders\n");
    p.write("raw.csv", &rows_csv(1..=1000, "a"));
    assert_success(&p.dfpipe(&["run", "-q"]));

    // `Orders` is DuckDB's table `orders`: an append adds to it and never drops it.
    set_outputs(&p, "  - model: m\n    table: Orders\n    mode: append\n");
    p.write("raw.csv", &rows_csv(1001..=1100, "b"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT count(*) FROM orders")), "BigInt(1100)");

    // A merge under a third spelling updates the same table.
    set_outputs(&p, "  - model: m\n    table: main.ORDERS\n    mode: merge\n    unique_key: id\n");
    p.write("raw.csv", &rows_csv(1..=10, "c"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT count(*), count(*) FILTER (WHERE v LIKE 'c%') FROM orders"),
        vec![vec!["BigInt(1100)".to_string(), "BigInt(10)".to_string()]]
    );
    // A replace keeps the table's name as it was created.
    set_outputs(&p, "  - model: m\n    table: ORDERS\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"),
        vec![vec!["orders".to_string()]]
    );
    assert_eq!(one(p.duckdb("SELECT count(*) FROM orders")), "BigInt(10)");

    // Two outputs that name one table in two spellings are one target.
    set_outputs(&p, "  - model: m\n    table: Orders\n  - model: m\n    table: main.orders\n    mode: append\n");
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "dfpipe.yml: outputs[0] and outputs[1] both write DuckDB table `main.orders` of dfpipe.duckdb \
         (DuckDB table names ignore case); give one of them another `table:`",
    );
    assert_eq!(one(p.duckdb("SELECT count(*) FROM orders")), "BigInt(10)");

    // A table another output quarantines into is written by it too.
    set_outputs(&p, "  - model: m\n    on_invalid: quarantine\n  - model: m\n    table: M_Quarantine\n");
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "dfpipe.yml: outputs[0] quarantines its rows into DuckDB table `main.m_quarantine` of dfpipe.duckdb \
         (DuckDB table names ignore case), which outputs[1] writes too; give one of them another `table:`",
    );
    // dfpipe's own tables are not outputs.
    set_outputs(&p, "  - model: m\n    table: _dfpipe_loads\n");
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "dfpipe.yml: outputs[0] (model `m`): table `_dfpipe_loads`: names starting with `_dfpipe` are dfpipe's own \
         (its load markers, staging tables); give the output another `table:`",
    );
    assert_eq!(one(p.duckdb("SELECT count(*) FROM orders")), "BigInt(10)");
}

#[test]
fn merge_into_a_new_duckdb_table_checks_the_key() {
    let p = project("  - model: m\n    mode: merge\n    unique_key: id\n");
    p.write("raw.csv", "id,v\n1,a\n2,b\n2,c\n");
    let out = p.dfpipe(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("merge key (id) is not unique in the new rows: (2) appears more than once"),
        "{}",
        stderr(&out)
    );
    assert_eq!(one(p.duckdb("SELECT count(*) FROM information_schema.tables WHERE table_name = 'm'")), "BigInt(0)");
}

#[test]
fn parquet_outputs_may_not_overlap_sources_models_state_or_the_project() {
    let p = Project::new();
    p.write("data/a.csv", "id,v\n1,a\n");
    p.write("data/README", "keep me\n");
    p.write("events/e1.csv", "id\n1\n");
    p.write("sql/m.sql", "SELECT * FROM raw\n");
    let cases = [
        ("data/", "contains source `raw` (data/a.csv)"),
        ("events/", "is source `ev` (events/)"),
        ("events/out/", "lies inside source `ev` (events/)"),
        ("./", "is the project directory"),
        ("../", "contains the project directory"),
        ("sql/", "is the models directory (sql)"),
        ("sql/m.parquet", "lies inside the models directory (sql)"),
        (".dfpipe/m.parquet", "lies inside the state directory (.dfpipe)"),
    ];
    for (to, why) in cases {
        p.write(
            "dfpipe.yml",
            &format!(
                "name: t\nsources:\n  raw: {{ path: data/a.csv }}\n  ev: {{ path: events/, format: csv }}\n\
                 outputs:\n  - model: m\n    to: {to}\n"
            ),
        );
        assert_error(
            &p.dfpipe(&["run"]),
            2,
            &format!(
                "dfpipe.yml: outputs[0] (model `m`): the Parquet output `{to}` {why}: writing there could delete or \
                 mix with those files; choose a path of its own, such as out/m.parquet"
            ),
        );
    }
    assert_eq!(std::fs::read_to_string(p.file("data/a.csv")).unwrap(), "id,v\n1,a\n");
    assert_eq!(std::fs::read_to_string(p.file("data/README")).unwrap(), "keep me\n");
    assert_eq!(std::fs::read_to_string(p.file("events/e1.csv")).unwrap(), "id\n1\n");
    assert_eq!(std::fs::read_to_string(p.file("sql/m.sql")).unwrap(), "SELECT * FROM raw\n");
}

/// Rows in every Parquet file of directory `dir`.
fn parquet_rows(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|f| read_parquet(&f).iter().map(|b| b.num_rows()).sum::<usize>())
        .sum()
}

/// The names in `dir` of what runs leave beside an output (`.NAME.dfpipe-KIND-PID`), sorted.
fn leftovers_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("dfpipe-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_crash_between_the_renames_of_a_directory_swap_is_repaired() {
    let p = project("  - model: m\n    to: out/\n");
    p.write("raw.csv", &rows_csv(1..=100, "a"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(parquet_rows(&p.file("out")), 100);
    // What a crash between the two renames leaves: the old output moved aside by a process
    // that no longer runs (pid 4294967 is above any Linux pid_max), the new one never moved in;
    // and a staging copy of another dead run.
    std::fs::rename(p.file("out"), p.file(".out.dfpipe-old-4294967")).unwrap();
    p.write(".out.dfpipe-tmp-4294966/part.parquet", "half written");
    // The next run fails while it writes (`b1` is no INT; the model's schema stays the same),
    // and still puts the old output back first.
    p.write("sql/m.sql", "SELECT id, v || CAST(CAST(v AS INT) AS VARCHAR) AS v FROM raw\n");
    p.write("raw.csv", &rows_csv(1..=10, "b"));
    assert_eq!(p.dfpipe(&["run", "-q"]).status.code(), Some(1));
    assert_eq!(parquet_rows(&p.file("out")), 100);
    assert_eq!(leftovers_in(p.path()), Vec::<String>::new());
    // A good run replaces it.
    p.write("sql/m.sql", "SELECT id, v FROM raw\n");
    p.write("raw.csv", &rows_csv(1..=7, "c"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(parquet_rows(&p.file("out")), 7);
}

#[test]
fn a_parquet_append_that_fails_or_crashes_adds_nothing_and_a_committed_one_is_finished() {
    let p = Project::new();
    p.write("sql/m.sql", "SELECT id, CAST(v AS BIGINT) AS v FROM raw\n");
    p.write(
        "dfpipe.yml",
        "name: t\nsources:\n  raw: { path: \"raw/*.csv\", schema: { v: VARCHAR } }\noutputs:\n  - { model: m, to: \
         out/d/, mode: append }\ndatafusion: { datafusion.execution.target_partitions: 2 }\n",
    );
    p.write("raw/a.csv", &rows_csv(1..=100, ""));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(parquet_rows(&p.file("out/d")), 100);

    // Fails part way: the second file's last value is no number, when the first file's rows
    // (another partition, another output file) may be written already.
    p.write("raw/a.csv", &rows_csv(1..=200_000, ""));
    p.write("raw/b.csv", &(rows_csv(1..=200_000, "") + "200001,oops\n"));
    assert_error(&p.dfpipe(&["run", "-q"]), 1, "Cannot cast string 'oops' to value of Int64 type");
    assert_eq!(parquet_rows(&p.file("out/d")), 100);
    assert_eq!(leftovers_in(&p.file("out")), Vec::<String>::new());

    // Killed with every new file written and synced, before the append commits: nothing added.
    p.write("raw/a.csv", &rows_csv(1..=5, ""));
    p.write("raw/b.csv", &rows_csv(6..=10, ""));
    let crashed = p.dfpipe_env(&["run", "-q"], &[("DFPIPE_TEST_CRASH_AT", "append-staged")]);
    assert!(stderr(&crashed).contains("crash point append-staged"), "{}", stderr(&crashed));
    assert_eq!(parquet_rows(&p.file("out/d")), 100);
    // Killed once it committed, with one of its two files moved in: the next write finishes
    // moving it first, then adds its own rows.
    let crashed = p.dfpipe_env(&["run", "-q"], &[("DFPIPE_TEST_CRASH_AT", "append-moving")]);
    assert!(stderr(&crashed).contains("crash point append-moving"), "{}", stderr(&crashed));
    assert_eq!(parquet_rows(&p.file("out/d")), 105);
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(parquet_rows(&p.file("out/d")), 120);
    assert_eq!(leftovers_in(&p.file("out")), Vec::<String>::new());
}

#[test]
fn merge_keys_may_not_be_null() {
    let p = project("  - model: m\n    mode: merge\n    unique_key: id\n");
    p.write("raw.csv", "id,v\n1,a\n2,b\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("raw.csv", "id,v\n1,c\n,d\n");
    let out = p.dfpipe(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "merge key (id) is NULL in 1 new row(s); a merge matches rows by key and NULL matches nothing: \
             filter those rows out or COALESCE the key in the model"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(one(p.duckdb("SELECT string_agg(v, ',' ORDER BY id) FROM m")), "a,b");
}

/// Holds `path` open in this process (DuckDB lets one process write a file) until the returned
/// sender is dropped or `for_how_long` passes.
fn hold_duckdb_file(path: std::path::PathBuf, for_how_long: std::time::Duration) -> std::thread::JoinHandle<()> {
    let (opened, ready) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = duckdb::Connection::open(&path).unwrap();
        opened.send(()).unwrap();
        std::thread::sleep(for_how_long);
        drop(conn);
    });
    ready.recv().unwrap();
    holder
}

/// The catalog's runs, oldest first: (status, finished).
fn recorded_runs(p: &Project) -> Vec<Vec<String>> {
    duckdb_rows(
        &p.file(".dfpipe/catalog.duckdb"),
        "SELECT status, CAST(finished_at IS NOT NULL AS VARCHAR) FROM runs ORDER BY run_id",
    )
}

#[test]
fn a_run_waits_for_an_analyst_holding_the_catalog_briefly() {
    let p = project("  - model: m\n");
    p.write("raw.csv", &rows_csv(1..=10, "a"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    let holder = hold_duckdb_file(p.file(".dfpipe/catalog.duckdb"), std::time::Duration::from_secs(3));
    let out = p.dfpipe(&["run", "-q"]);
    holder.join().unwrap();
    assert_success(&out);
    assert_eq!(recorded_runs(&p), [["success", "true"], ["success", "true"]]);
}

#[test]
fn the_catalog_is_free_while_a_load_runs_and_one_held_past_the_wait_is_named() {
    let p = project("  - model: m\n");
    p.write("raw.csv", &rows_csv(1..=10, "a"));
    // Mid-load, an analyst opens the catalog for writing and sees the run going on.
    let (child, pause) = p.spawn_paused_mid_load(&[]);
    assert_eq!(recorded_runs(&p), [["running", "false"]]);
    std::fs::remove_file(&pause).unwrap();
    assert_success(&child.wait_with_output().unwrap());
    assert_eq!(recorded_runs(&p), [["success", "true"]]);

    // Held past the wait: the run stops before it starts, naming the catalog and its holder.
    let catalog = p.file(".dfpipe/catalog.duckdb");
    let holder = hold_duckdb_file(catalog.clone(), std::time::Duration::from_secs(20));
    let out = p.dfpipe_env(&["run", "-q"], &[("DFPIPE_LOCK_WAIT", "1s")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = catalog.display().to_string();
    assert!(
        err.contains(&format!("schema catalog {file}: {file} is open in another process ("))
            && err.contains(&format!("(PID {})", std::process::id()))
            && err.contains("waited 1s. Close that session"),
        "{err}"
    );
    drop(holder);
    assert_eq!(p.duckdb("SELECT count(*) FROM m"), [["BigInt(10)"]]);
}

#[test]
fn a_warehouse_held_by_another_process_is_named_before_anything_runs_and_the_run_is_recorded() {
    let p = project("  - model: m\n");
    p.write("raw.csv", &rows_csv(1..=10, "a"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("raw.csv", &rows_csv(1..=20, "b"));
    let holder = hold_duckdb_file(p.file("dfpipe.duckdb"), std::time::Duration::from_secs(20));
    let out = p.dfpipe_env(&["run", "-q"], &[("DFPIPE_LOCK_WAIT", "1s")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = p.file("dfpipe.duckdb").display().to_string();
    assert!(
        err.contains(&format!("error: {file} is open in another process (")) &&
            err.contains(&format!("(PID {})", std::process::id())) &&
            err.contains("and DuckDB lets only one process write a file; waited 1s. Close that session (e.g. a DuckDB shell or notebook on the file) and run again"),
        "{err}"
    );
    assert_eq!(recorded_runs(&p), [["success", "true"], ["error", "true"]]);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "error");
    assert!(results["error"].as_str().unwrap().contains("is open in another process"), "{results}");
    // Nothing was computed: no source files were recorded for the failed run.
    assert_eq!(
        duckdb_rows(&p.file(".dfpipe/catalog.duckdb"), "SELECT count(*) FROM source_files WHERE run_id = 2"),
        [["BigInt(0)"]]
    );
    drop(holder);
}
