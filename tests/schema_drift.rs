//! Schema catalog and drift: every drift class under every `on_schema_change` policy, on DuckDB
//! and PostgreSQL targets; contracts; the lock; run history; the `schema` commands.

use crate::pg;
use crate::util::*;

/// The model's first version: id BIGINT, qty INT, note VARCHAR, flag BIGINT NOT NULL.
const BASE: &str = "SELECT CAST(id AS BIGINT) AS id, CAST(qty AS INT) AS qty, note, 1 AS flag \
                    FROM (VALUES (1, 10, 'a'), (2, 20, 'b')) AS t(id, qty, note)\n";

/// Each drift class: its name, the model's second version, and the diff line a run prints.
const CLASSES: [(&str, &str, &str); 7] = [
    (
        "added",
        "SELECT CAST(id AS BIGINT) AS id, CAST(qty AS INT) AS qty, note, 1 AS flag, CAST(1.5 AS DOUBLE) AS extra \
         FROM (VALUES (3, 30, 'c'), (4, 40, 'd')) AS t(id, qty, note)\n",
        "+ added       extra  Float64 NOT NULL",
    ),
    (
        "removed",
        "SELECT CAST(id AS BIGINT) AS id, CAST(qty AS INT) AS qty, 1 AS flag FROM (VALUES (3, 30), (4, 40)) AS t(id, qty)\n",
        "- removed     note  Utf8",
    ),
    (
        "widened",
        "SELECT CAST(id AS BIGINT) AS id, CAST(qty AS BIGINT) AS qty, note, 1 AS flag \
         FROM (VALUES (3, 30, 'c'), (4, 40, 'd')) AS t(id, qty, note)\n",
        "~ widened     qty  Int32 → Int64",
    ),
    (
        "narrowed",
        "SELECT CAST(id AS INT) AS id, CAST(qty AS INT) AS qty, note, 1 AS flag \
         FROM (VALUES (3, 30, 'c'), (4, 40, 'd')) AS t(id, qty, note)\n",
        "! narrowed    id  Int64 → Int32",
    ),
    (
        "retyped",
        "SELECT CAST(id AS BIGINT) AS id, CAST(qty AS INT) AS qty, CAST(id * 100 AS INT) AS note, 1 AS flag \
         FROM (VALUES (3, 30), (4, 40)) AS t(id, qty)\n",
        "! retyped     note  Utf8 → Int32",
    ),
    (
        "nullability",
        "SELECT CAST(id AS BIGINT) AS id, CAST(qty AS INT) AS qty, note, CASE WHEN id > 0 THEN 1 END AS flag \
         FROM (VALUES (3, 30, 'c'), (4, 40, 'd')) AS t(id, qty, note)\n",
        "~ nullability flag  NOT NULL → nullable",
    ),
    (
        "reordered",
        "SELECT CAST(qty AS INT) AS qty, CAST(id AS BIGINT) AS id, note, 1 AS flag \
         FROM (VALUES (3, 30, 'c'), (4, 40, 'd')) AS t(id, qty, note)\n",
        "~ reordered   columns  id, qty, note, flag → qty, id, note, flag",
    ),
];

/// The target's database.
#[derive(Clone, Copy, PartialEq)]
enum Db {
    DuckDb,
    Postgres,
}

/// What a case must end with: exit code, rows in the target, and its columns.
fn expected(db: Db, class: &str, policy: &str) -> (i32, &'static str, String) {
    let base = match db {
        // Tables are created nullable, whatever the plan says (a literal's NOT NULL is no contract).
        Db::DuckDb => "id BIGINT, qty INTEGER, note VARCHAR, flag BIGINT",
        Db::Postgres => "id bigint, qty integer, note text, flag bigint",
    };
    let refused = (3, "2", base.to_string());
    let appended = (0, "4", base.to_string());
    let evolve_refuses = matches!(class, "removed" | "narrowed" | "retyped");
    match (policy, class) {
        ("fail", _) => refused,
        ("evolve", _) if evolve_refuses => refused,
        ("evolve", "added") => {
            (0, "4", format!("{base}, {}", if db == Db::DuckDb { "extra DOUBLE" } else { "extra double precision" }))
        }
        ("evolve", "widened") => {
            (0, "4", base.replace("qty INTEGER", "qty BIGINT").replace("qty integer", "qty bigint"))
        }
        // warn and ignore load as the table is: a column it lacks fails that load, and only it.
        ("warn" | "ignore", "added") => (1, "2", base.to_string()),
        _ => appended,
    }
}

fn columns(db: Db, p: &Project, schema: &str) -> String {
    match db {
        Db::DuckDb => one(p.duckdb(
            "SELECT string_agg(column_name || ' ' || data_type || CASE WHEN is_nullable THEN '' ELSE ' NOT NULL' END, ', ' \
             ORDER BY column_index) FROM duckdb_columns() WHERE table_name = 'm'",
        )),
        Db::Postgres => pg::query(&format!(
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END, \
             ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '{schema}.m'::regclass AND attnum > 0 AND NOT attisdropped"
        ))[0][0]
            .clone(),
    }
}

fn rows(db: Db, p: &Project, schema: &str) -> String {
    match db {
        Db::DuckDb => one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM m")),
        Db::Postgres => pg::query(&format!("SELECT count(*) FROM {schema}.m"))[0][0].clone(),
    }
}

fn every_class_under_every_policy(db: Db) {
    let mut failures = Vec::new();
    for policy in ["fail", "warn", "evolve", "ignore"] {
        for (class, second, line) in CLASSES {
            let p = Project::new();
            let schema = match db {
                Db::DuckDb => String::new(),
                Db::Postgres => pg::schema(&format!("drift_{policy}_{class}")),
            };
            let to = match db {
                Db::DuckDb => String::new(),
                Db::Postgres => format!("    to: pg\n    table: {schema}.m\n"),
            };
            p.write(
                "dfpipe.yml",
                &format!(
                    "name: drift\nconnections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\n\
                     outputs:\n  - model: m\n    mode: append\n    on_schema_change: {policy}\n{to}"
                ),
            );
            let run = |args: &[&str]| p.dfpipe_env(args, &[("DFPIPE_PG", pg::database_url())]);
            p.write("sql/m.sql", BASE);
            assert_success(&run(&["run", "-q"]));
            p.write("sql/m.sql", second);
            // Not quiet: warnings are logged at the default level.
            let out = run(&["run"]);
            let err = stderr(&out);
            let (code, count, cols) = expected(db, class, policy);
            let case = format!("{policy}/{class}");
            if out.status.code() != Some(code) {
                failures.push(format!("{case}: exit {:?}, expected {code}: {err}", out.status.code()));
                continue;
            }
            let heading = format!("model `m` (sql/m.sql): schema changed since run #1 (on_schema_change: {policy}):");
            match code {
                3 => {
                    let refused = format!("{heading}\n    {line}   ← refused\n");
                    if !err.contains("error: schema drift: nothing was written\n") || !err.contains(&refused) {
                        failures.push(format!("{case}: stderr lacks the refusal {refused:?}: {err}"));
                    }
                    if !err.contains("accept the new schema with `dfpipe schema accept m`") {
                        failures.push(format!("{case}: no hint: {err}"));
                    }
                }
                1 if !err.contains("column `extra` of the model is not in table") => {
                    failures.push(format!("{case}: unclear load error: {err}"));
                }
                _ => {}
            }
            // warn logs the diff; ignore stays silent.
            let warned = err.contains(&heading) && err.contains(line);
            if policy == "warn" && !warned {
                failures.push(format!("{case}: no warning with the diff: {err}"));
            }
            if policy == "ignore" && err.contains("schema changed") {
                failures.push(format!("{case}: ignore printed: {err}"));
            }
            let (got_rows, got_cols) = (rows(db, &p, &schema), columns(db, &p, &schema));
            if got_rows != count || got_cols != cols {
                failures
                    .push(format!("{case}: table has {got_rows} rows [{got_cols}], expected {count} rows [{cols}]"));
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_drift_class_under_every_policy_on_duckdb() {
    every_class_under_every_policy(Db::DuckDb);
}

#[test]
fn every_drift_class_under_every_policy_on_postgres() {
    every_class_under_every_policy(Db::Postgres);
}

/// A table behind the accepted schema (a change accepted with `schema accept` under `fail`):
/// the append names the column and the fix; `evolve` then adds it, comparing with the table.
fn a_table_behind_the_accepted_schema(db: Db) {
    let p = Project::new();
    let schema = match db {
        Db::DuckDb => String::new(),
        Db::Postgres => pg::schema("drift_behind"),
    };
    let to = match db {
        Db::DuckDb => String::new(),
        Db::Postgres => format!("    to: pg\n    table: {schema}.m\n"),
    };
    let config = |policy: &str| {
        format!(
            "name: drift\nconnections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\n\
             outputs:\n  - model: m\n    mode: append\n    on_schema_change: {policy}\n{to}"
        )
    };
    let run = |args: &[&str]| p.dfpipe_env(args, &[("DFPIPE_PG", pg::database_url())]);
    p.write("dfpipe.yml", &config("fail"));
    p.write("sql/m.sql", BASE);
    assert_success(&run(&["run", "-q"]));
    p.write("sql/m.sql", CLASSES[0].1);
    assert_eq!(run(&["run", "-q"]).status.code(), Some(3));
    assert_success(&run(&["schema", "accept", "m"]));
    let out = run(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("column `extra` of the model is not in table "), "{}", stderr(&out));
    assert!(stderr(&out).contains("set on_schema_change: evolve on the output to add it"), "{}", stderr(&out));
    p.write("dfpipe.yml", &config("evolve"));
    assert_success(&run(&["run", "-q"]));
    let extra = if db == Db::DuckDb { "extra DOUBLE" } else { "extra double precision" };
    let (_, _, base) = expected(db, "removed", "fail");
    assert_eq!((rows(db, &p, &schema), columns(db, &p, &schema)), ("4".to_string(), format!("{base}, {extra}")));
}

#[test]
fn a_table_behind_the_accepted_schema_gains_its_columns_under_evolve_on_duckdb() {
    a_table_behind_the_accepted_schema(Db::DuckDb);
}

#[test]
fn a_table_behind_the_accepted_schema_gains_its_columns_under_evolve_on_postgres() {
    a_table_behind_the_accepted_schema(Db::Postgres);
}

/// A column the model's first version filled with a literal (NOT NULL in its plan) takes NULLs
/// once a later version, accepted with `schema accept`, leaves it NULL or drops it: the table
/// was created as `CREATE TABLE … AS` would, without the constraint (every later append failed).
fn a_literal_column_takes_nulls_after_an_accepted_change(db: Db) {
    let p = Project::new();
    let (schema, to) = match db {
        Db::DuckDb => (String::new(), String::new()),
        Db::Postgres => {
            let schema = pg::schema("drift_literal");
            let to = format!("    to: pg\n    table: {schema}.m\n");
            (schema, to)
        }
    };
    p.write(
        "dfpipe.yml",
        &format!(
            "name: drift\nconnections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\n\
             outputs:\n  - model: m\n    mode: append\n{to}"
        ),
    );
    let run = |args: &[&str]| p.dfpipe_env(args, &[("DFPIPE_PG", pg::database_url())]);
    p.write("sql/m.sql", "SELECT CAST(id AS BIGINT) AS id, 'x' AS tag, 1 AS flag FROM (VALUES (1), (2)) AS t(id)\n");
    assert_success(&run(&["run", "-q"]));
    p.write("sql/m.sql", "SELECT CAST(id AS BIGINT) AS id, CAST(NULL AS VARCHAR) AS tag FROM (VALUES (3)) AS t(id)\n");
    assert_eq!(run(&["run", "-q"]).status.code(), Some(3));
    assert_success(&run(&["schema", "accept", "m"]));
    let out = run(&["run", "-q"]);
    assert_success(&out);
    let table = match db {
        Db::DuckDb => "m".to_string(),
        Db::Postgres => format!("{schema}.m"),
    };
    let sql = format!(
        "SELECT string_agg(id || ':' || coalesce(tag, 'NULL') || ':' || coalesce(flag::VARCHAR, 'NULL'), ',' ORDER BY id) FROM {table}"
    );
    let got = match db {
        Db::DuckDb => one(p.duckdb(&sql)),
        Db::Postgres => pg::query(&sql)[0][0].clone(),
    };
    assert_eq!(got, "1:x:1,2:x:1,3:NULL:NULL");
}

#[test]
fn a_literal_column_takes_nulls_after_an_accepted_change_on_duckdb() {
    a_literal_column_takes_nulls_after_an_accepted_change(Db::DuckDb);
}

#[test]
fn a_literal_column_takes_nulls_after_an_accepted_change_on_postgres() {
    a_literal_column_takes_nulls_after_an_accepted_change(Db::Postgres);
}

/// A CSV source with a policy of its own, the run history, and the `schema` commands.
#[test]
fn source_drift_history_and_the_schema_commands() {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: src\nsources:\n  raw: { path: raw.csv, on_schema_change: fail }\noutputs:\n  - model: m\n",
    );
    p.write("sql/m.sql", "SELECT * FROM raw\n");
    p.write("raw.csv", "id,name\n1,a\n2,b\n");
    assert_success(&p.dfpipe(&["run", "-q"]));

    p.write("raw.csv", "id,name,score\n3,c,1.5\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(
        stderr(&out),
        "error: schema drift: nothing was written\n  \
         source `raw` (raw.csv): schema changed since run #1 (on_schema_change: fail):\n    \
         + added       score  Float64   ← refused\n\
         if the change is intended, accept the new schema with `dfpipe schema accept raw`, or set on_schema_change \
         (fail | warn | evolve | ignore) on the source or output\n"
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(p.duckdb("SELECT count(*), max(id) FROM m"), vec![vec!["BigInt(2)".to_string(), "BigInt(2)".into()]]);

    // The failed run is in the history, with its status and error.
    let runs: serde_json::Value = serde_json::from_str(&stdout(&p.dfpipe(&["runs", "--format", "json"]))).unwrap();
    assert_eq!(runs[0]["run_id"], 2);
    assert_eq!(runs[0]["status"], "drift");
    assert!(runs[0]["error"].as_str().unwrap().contains("+ added       score  Float64"), "{runs}");
    assert_eq!(runs[1]["status"], "success");
    assert_eq!(runs[1]["rows"], 2);
    let table = stdout(&p.dfpipe(&["runs"]));
    assert!(table.starts_with("run  started (UTC)"), "{table}");
    assert!(table.contains("#2: schema drift: nothing was written"), "{table}");

    // diff shows it (exit 3: a run would stop), show marks it, accept moves the baseline.
    let diff = p.dfpipe(&["schema", "diff", "raw"]);
    assert_eq!(diff.status.code(), Some(3));
    assert!(stdout(&diff).contains("+ added       score  Float64   ← refused"), "{}", stdout(&diff));
    let show = stdout(&p.dfpipe(&["schema", "show", "raw"]));
    assert!(
        show.contains("source `raw` (raw.csv)  fingerprint ") && show.contains("differs from the baseline of run #1"),
        "{show}"
    );
    assert!(show.contains("  id     Int64\n  name   Utf8\n  score  Float64\n"), "{show}");
    let accept = p.dfpipe(&["schema", "accept", "raw"]);
    assert_success(&accept);
    assert!(
        stdout(&accept).starts_with("accepted source `raw` (raw.csv) as the baseline (fingerprint "),
        "{}",
        stdout(&accept)
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT count(*), max(score) FROM m"),
        vec![vec!["BigInt(1)".to_string(), "Double(1.5)".into()]]
    );

    let history = stdout(&p.dfpipe(&["schema", "history", "raw"]));
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].starts_with("source `raw` runs #2–#4 ("), "{history}");
    assert!(lines[0].ends_with(", accepted"), "{history}");
    assert_eq!(lines[1], "    + added       score  Float64");
    assert!(lines[2].starts_with("source `raw` run #1 (") && lines[2].ends_with(", accepted"), "{history}");
    assert_eq!(lines[3..], ["  id    Int64", "  name  Utf8"]);

    // Unknown names are usage errors with a suggestion.
    assert_error(
        &p.dfpipe(&["schema", "accept", "rae"]),
        2,
        "no source or model named `rae` in this project (did you mean `raw`?)",
    );

    // The catalog is a DuckDB file analysts can query.
    let catalog = p.file(".dfpipe/catalog.duckdb");
    assert_eq!(
        duckdb_rows(
            &catalog,
            "SELECT count(*), min(size) > 0 FROM source_files WHERE source = 'raw' AND path LIKE '%raw.csv'"
        ),
        vec![vec!["BigInt(3)".to_string(), "Boolean(true)".into()]]
    );
    // Run 2 refused the source's change (its policy: fail) and would have allowed the model's
    // (the default, evolve); run 4 found the model still new against its baseline of run 1.
    let drift = duckdb_rows(
        &catalog,
        "SELECT concat_ws(' ', run_id, kind, name, change, column_name, outcome) FROM drift ORDER BY run_id, kind DESC",
    );
    assert_eq!(
        drift,
        [["2 source raw added score refused"], ["2 model m added score allowed"], ["4 model m added score allowed"]]
    );
}

/// Every column of each Parquet file under `dir` (or of the file `dir`), as `name type
/// nullable|NOT NULL`, one entry per distinct schema.
fn parquet_schemas(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .map(|e| {
            let file = std::fs::File::open(e.path()).unwrap();
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
            let fields = reader.schema().fields().iter().map(|f| {
                format!("{} {} {}", f.name(), f.data_type(), if f.is_nullable() { "nullable" } else { "NOT NULL" })
            });
            fields.collect::<Vec<_>>().join(", ")
        })
        .collect()
}

/// The files a Parquet output gains over time read together as one source: every column is
/// written nullable (a literal's NOT NULL is no contract), so a column a later load added reads
/// as NULL in the files before it.
#[test]
fn parquet_appends_with_an_added_column_read_back_as_one_source() {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: w\noutputs:\n  - { model: m, to: out/d/, mode: append }\n  - { model: m, to: out/m.parquet }\n",
    );
    p.write("sql/m.sql", "SELECT 1 AS a\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("sql/m.sql", "SELECT 2 AS a, 3 AS b\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        parquet_schemas(&p.file("out/d")).into_iter().collect::<Vec<_>>(),
        ["a Int64 nullable", "a Int64 nullable, b Int64 nullable"]
    );
    assert_eq!(
        parquet_schemas(&p.file("out/m.parquet")).into_iter().collect::<Vec<_>>(),
        ["a Int64 nullable, b Int64 nullable"]
    );

    let reader = Project::new();
    reader.write(
        "dfpipe.yml",
        &format!("name: r\nsources:\n  d: {{ path: {}/ }}\noutputs:\n  - model: merged\n", p.file("out/d").display()),
    );
    reader.write("sql/merged.sql", "SELECT a, b FROM d\n");
    assert_success(&reader.dfpipe(&["run", "-q"]));
    assert_eq!(
        reader.duckdb("SELECT a, b FROM merged ORDER BY a"),
        [["BigInt(1)", "NULL"], ["BigInt(2)", "BigInt(3)"]]
    );
}

#[test]
fn contracts_are_enforced_before_anything_is_written() {
    let p = Project::new();
    let config = |contract: &str| {
        format!("name: c\nsources:\n  raw: {{ path: raw.csv }}\noutputs:\n  - model: m\ncontracts:\n{contract}")
    };
    p.write("sql/m.sql", "SELECT id, name, CAST(amount AS DECIMAL(12,2)) AS amount FROM raw\n");
    p.write("raw.csv", "id,name,amount\n1,a,1.50\n2,b,2.25\n");
    p.write(
        "dfpipe.yml",
        &config("  raw:\n    - { name: id, type: bigint, not_null: true }\n  m:\n    - { name: amount, type: \"decimal(12,2)\" }\n"),
    );
    assert_success(&p.dfpipe(&["run", "-q"]));

    p.write("raw.csv", "id,name,amount\n1,a,1.50\n,b,2.25\n,c,3\n");
    p.write(
        "dfpipe.yml",
        &config(
            "  raw:\n    - { name: id, type: bigint, not_null: true }\n    - { name: email }\n  \
             m:\n    - { name: amount, type: \"decimal(10,2)\" }\n",
        ),
    );
    assert_error(
        &p.dfpipe(&["run", "-q"]),
        3,
        "contract violated: nothing was written\n  \
         source `raw` (raw.csv): declared column `email` is missing (its columns: id, name, amount)\n  \
         source `raw` (raw.csv): column `id` is declared not null but 2 row(s) hold NULL\n  \
         model `m` (sql/m.sql): column `amount` is declared decimal(10,2) (Decimal128(10, 2)) but is Decimal128(12, 2); \
         CAST it in the model or fix the contract",
    );
    assert_eq!(one(p.duckdb("SELECT count(*) FROM m")), "BigInt(2)");

    p.write("dfpipe.yml", &config("  nope:\n    - { name: id }\n"));
    assert_error(&p.dfpipe(&["plan"]), 2, "dfpipe.yml: contracts.nope: there is no source or model named `nope`");
}

#[test]
fn a_second_run_of_the_same_project_is_refused_while_the_first_holds_the_lock() {
    let p = Project::demo(10);
    std::fs::create_dir_all(p.file(".dfpipe")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p.file(".dfpipe/dfpipe.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(p.file(".dfpipe/dfpipe.lock"), "`dfpipe run`, pid 4242, since 2026-11-25 12:00:00 UTC").unwrap();
    let out = p.dfpipe(&["run", "-q"]);
    assert_error(
        &out,
        4,
        &format!(
            "another dfpipe command is running on this project (`dfpipe run`, pid 4242, since 2026-11-25 12:00:00 UTC): \
             runs of one project are not interleaved; wait for it to finish and try again (the lock on {} is released when it exits)",
            p.file(".dfpipe/dfpipe.lock").display()
        ),
    );
    assert!(!p.file("dfpipe.duckdb").exists());
    drop(lock);
    assert_success(&p.dfpipe(&["run", "-q"]));
}

#[test]
fn a_catalog_of_format_1_is_migrated_and_reports_no_drift() {
    let p = Project::new();
    p.write("dfpipe.yml", "name: t\n");
    p.write("sql/m.sql", BASE);
    assert_success(&p.dfpipe(&["run", "-q"]));
    let catalog = p.file(".dfpipe/catalog.duckdb");
    // What dfpipe wrote before format 2: a bare array, types in Arrow's display text (which an
    // Arrow release may spell otherwise), no catalog_meta row.
    {
        let conn = duckdb::Connection::open(&catalog).unwrap();
        conn.execute_batch(
            "UPDATE schemas SET columns = '[{\"name\":\"id\",\"type\":\"Int64\",\"nullable\":true},\
             {\"name\":\"qty\",\"type\":\"Int32\",\"nullable\":true},{\"name\":\"note\",\"type\":\"Utf8\",\"nullable\":true},\
             {\"name\":\"flag\",\"type\":\"Int64\",\"nullable\":false}]', fingerprint = 'old' WHERE name = 'm';
             DELETE FROM catalog_meta;",
        )
        .unwrap();
    }
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert!(!stderr(&out).contains("drift"), "{}", stderr(&out));
    let stored = duckdb_rows(
        &catalog,
        "SELECT DISTINCT columns FROM schemas WHERE name = 'm' UNION ALL SELECT value FROM catalog_meta",
    );
    assert_eq!(
        stored,
        [
            [
                r#"{"columns":[{"name":"id","nullable":true,"type":"int64"},{"name":"qty","nullable":true,"type":"int32"},{"name":"note","nullable":true,"type":"utf8"},{"name":"flag","nullable":false,"type":"int64"}],"format":2}"#
            ],
            ["2"]
        ]
    );
    assert_eq!(
        one(duckdb_rows(&catalog, "SELECT count(DISTINCT fingerprint) FROM schemas WHERE name = 'm'")),
        "BigInt(1)"
    );
}
