//! Config mistakes: each is exit code 2 with a message naming the file, the place and the fix.

use crate::util::*;

fn project(config: &str) -> Project {
    let p = Project::new();
    p.write("dfpipe.yml", config);
    p.write("sql/m.sql", "SELECT 1 AS x\n");
    p
}

#[test]
fn unknown_key_has_location_and_suggestion() {
    let p = project("name: t\nsourcs:\n  a: { path: a.csv }\n");
    assert_error(&p.dfpipe(&["plan"]), 2, UNKNOWN_KEY);
}

const UNKNOWN_KEY: &str = "dfpipe.yml:2:1: unknown field `sourcs`, expected one of name, sources, models, functions, connections, outputs, memory, storage, state_dir, datafusion, environments, on_schema_change, contracts, tests, params, lineage, cluster (did you mean `sources`?)\n2 | sourcs:\n  | ^";

#[test]
fn unknown_nested_key() {
    let p = project("name: t\nsources:\n  a:\n    path: a.csv\n    options: { delimeter: ';' }\n");
    let out = p.dfpipe(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("dfpipe.yml"), "{err}");
    assert!(err.contains("unknown field `delimeter`"), "{err}");
    assert!(err.contains("(did you mean `delimiter`?)"), "{err}");
    assert!(err.contains("error: dfpipe.yml:5:16: unknown field `delimeter`"), "{err}");
    assert!(err.contains("5 |     options: { delimeter: ';' }\n  |                ^"), "{err}");
}

#[test]
fn missing_variable_names_it_and_its_place() {
    let p = project(
        "name: t\nconnections:\n  warehouse: { kind: duckdb, path: \"${DFPIPE_TEST_NOT_SET}.duckdb\" }\noutputs:\n  - model: m\n",
    );
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "dfpipe.yml:3:37: connection `warehouse` path: environment variable DFPIPE_TEST_NOT_SET is not set; export it, pass --vars DFPIPE_TEST_NOT_SET=VALUE, or write ${DFPIPE_TEST_NOT_SET:-default}",
    );
    // A mention in a comment above is not the place.
    let p = project(
        "name: t\n# set ${DFPIPE_TEST_NOT_SET} in CI\nconnections:\n  warehouse: { kind: duckdb, path: \"${DFPIPE_TEST_NOT_SET}.duckdb\" }\noutputs:\n  - model: m\n",
    );
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "dfpipe.yml:4:37: connection `warehouse` path: environment variable DFPIPE_TEST_NOT_SET is not set; export it, pass --vars DFPIPE_TEST_NOT_SET=VALUE, or write ${DFPIPE_TEST_NOT_SET:-default}",
    );
}

#[test]
fn vars_and_defaults_fill_variables() {
    let p = project("name: t\nconnections:\n  warehouse: { kind: duckdb, path: \"${DB:-dev}.duckdb\" }\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert!(p.file("dev.duckdb").exists());
    assert_success(&p.dfpipe(&["run", "-q", "--vars", "DB=other"]));
    assert_eq!(one(duckdb_rows(&p.file("other.duckdb"), "SELECT x FROM m")), "BigInt(1)");
    assert_success(&p.dfpipe_env(&["run", "-q"], &[("DB", "fromenv")]));
    assert!(p.file("fromenv.duckdb").exists());
    // Set but empty takes the default, as in the shell; defaults nest.
    assert_success(&p.dfpipe_env(&["run", "-q"], &[("DB", "")]));
    assert_eq!(one(duckdb_rows(&p.file("dev.duckdb"), "SELECT count(*) FROM m")), "BigInt(1)");
    let p = project(
        "name: t\nconnections:\n  warehouse: { kind: duckdb, path: \"${DB:-${DB_FALLBACK:-nested}}.duckdb\" }\n",
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert!(p.file("nested.duckdb").exists());
}

#[test]
fn environments_overlay_the_config() {
    let p = project(
        "name: t\nconnections:\n  warehouse: { kind: duckdb, path: dev.duckdb }\n\
         environments:\n  prod: { connections: { warehouse: { path: prod.duckdb } } }\n",
    );
    assert_success(&p.dfpipe(&["run", "-q", "--env", "prod"]));
    assert!(p.file("prod.duckdb").exists());
    assert!(!p.file("dev.duckdb").exists());
    assert_error(
        &p.dfpipe(&["run", "--env", "prd"]),
        2,
        "--env prd: dfpipe.yml declares no environment `prd` (declared: prod) (did you mean `prod`?)",
    );
}

#[test]
fn toml_config_is_accepted() {
    let p = Project::new();
    p.write("dfpipe.toml", "name = \"t\"\n[[outputs]]\nmodel = \"m\"\ntable = \"answer\"\n");
    p.write("sql/m.sql", "SELECT 42 AS x\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT x FROM answer")), "BigInt(42)");
    p.write("dfpipe.toml", "name = \"t\"\nmodles = \"sql\"\n");
    let out = p.dfpipe(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("error: dfpipe.toml:2:1: unknown field `modles`"), "{}", stderr(&out));
    assert!(stderr(&out).contains("(did you mean `models`?)"), "{}", stderr(&out));
}

#[test]
fn output_to_nowhere() {
    let p = project("name: t\noutputs:\n  - model: m\n    to: wharehouse\n");
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "dfpipe.yml: outputs[0] (model `m`): `to: wharehouse` is neither a connection (warehouse) nor a Parquet path (a file ending in .parquet or a directory ending in /) (did you mean `warehouse`?)",
    );
}

#[test]
fn merge_needs_a_key() {
    let p = project("name: t\noutputs:\n  - model: m\n    mode: merge\n");
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "dfpipe.yml: outputs[0] (model `m`): mode `merge` needs `unique_key` (a column or a list of columns)",
    );
}

#[test]
fn output_of_unknown_model() {
    let p = project("name: t\noutputs:\n  - model: mm\n");
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "dfpipe.yml: output names model `mm`, but there is no sql/mm.sql (did you mean `m`?)",
    );
}

#[test]
fn no_config_file() {
    let p = Project::new();
    let out = p.dfpipe(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no dfpipe.yml in "), "{}", stderr(&out));
    assert!(stderr(&out).contains("run `dfpipe init"), "{}", stderr(&out));
}

#[test]
fn bad_vars_flag_and_bad_usage() {
    let p = project("name: t\n");
    assert_error(&p.dfpipe(&["run", "--vars", "NOVALUE"]), 2, "--vars NOVALUE: expected KEY=VALUE");
    assert_eq!(p.dfpipe(&["runn"]).status.code(), Some(2));
}

#[test]
fn missing_source_file_fails_before_anything_runs() {
    let p =
        project("name: t\nsources:\n  orders: { path: data/missing/*.csv }\noutputs:\n  - model: m\n  - model: n\n");
    p.write("sql/n.sql", "SELECT * FROM orders\n");
    let out = p.dfpipe(&["run"]);
    let dir = p.path().display().to_string();
    assert_error(
        &out,
        1,
        &format!(
            "source `orders` (data/missing/*.csv): no files found at {dir}/data/missing/*.csv; check the path (relative paths start at the project directory)"
        ),
    );
    assert!(!p.file("dfpipe.duckdb").exists(), "nothing may run when a source is missing");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "error");
    assert_eq!(results["targets"].as_array().unwrap().len(), 0);
    assert!(results["error"].as_str().unwrap().starts_with("source `orders` (data/missing/*.csv): no files found"));
}

#[test]
fn option_for_the_wrong_format() {
    let p = project("name: t\nsources:\n  o: { path: o.parquet, options: { delimiter: ';' } }\n");
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "dfpipe.yml: source `o`: option `delimiter` applies to csv sources, not parquet",
    );
}

#[test]
fn a_json_array_file_gets_a_hint() {
    let p = project("name: t\nsources:\n  rows: { path: rows.json }\noutputs:\n  - model: n\n");
    p.write("rows.json", "[{\"a\": 1}, {\"a\": 2}]\n");
    p.write("sql/n.sql", "SELECT * FROM rows\n");
    let out = p.dfpipe(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error: source `rows` (rows.json): cannot read it as json: "), "{err}");
    assert!(err.ends_with("(dfpipe reads newline-delimited JSON: one object per line, not one array)\n"), "{err}");
    // A file saved with a byte order mark is not one array: it is named with what to do.
    p.write("rows.json", "\u{feff}{\"a\": 1}\n{\"a\": 2}\n");
    let out = p.dfpipe(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let file = p.file("rows.json").canonicalize().unwrap();
    assert!(
        err.contains(&format!(
            "error: source `rows` (rows.json): cannot read it as json: {} starts with a UTF-8 byte order mark, which \
             the JSON reader does not take; save it as UTF-8 without one\n",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn column_names_a_target_cannot_take_are_refused_before_anything_runs() {
    let p = project("name: t\noutputs:\n  - model: m\n    mode: merge\n    unique_key: [idd]\n");
    p.write("sql/m.sql", "SELECT 1 AS id, 'a' AS v\n");
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "the output of model `m` to warehouse.m: unique_key `idd` is not a column of the model (did you mean `id`?); \
         its columns: id, v",
    );
    p.write("dfpipe.yml", "name: t\noutputs:\n  - model: m\n");
    p.write("sql/m.sql", "SELECT 1 AS \"\", 2 AS b\n");
    assert_error(&p.dfpipe(&["run"]), 2, "model `m` (sql/m.sql): column 1 has no name; name it with AS in the SELECT");
    p.write("sql/m.sql", "SELECT 1 AS total, 2 AS \"Total\"\n");
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "model `m` (sql/m.sql): columns `total` and `Total` differ only in case, and DuckDB takes them as one name; \
         rename one with AS",
    );
    assert!(!p.file("dfpipe.duckdb").exists());
    // A Parquet file keeps both.
    p.write("dfpipe.yml", "name: t\noutputs:\n  - model: m\n    to: m.parquet\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
}

#[test]
fn under_json_logs_every_stderr_line_is_json_the_last_error_with_its_exit_code() {
    let p = project("name: t\noutputs:\n  - model: m\n");
    p.write("sql/m.sql", "SELECT 1 AS total, 2 AS \"Total\"\n");
    let lines = |out: &std::process::Output| -> Vec<serde_json::Value> {
        stderr(out).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    };
    let out = p.dfpipe(&["--log-format", "json", "run"]);
    assert_eq!(out.status.code(), Some(2));
    let last = lines(&out).pop().unwrap();
    assert_eq!((last["level"].as_str(), last["fields"]["exit_code"].as_u64()), (Some("ERROR"), Some(2)));
    assert!(
        last["fields"]["message"].as_str().unwrap().starts_with("model `m` (sql/m.sql): columns `total` and `Total`")
    );
    // A failed target is logged once, as it fails; the run's end says how many failed.
    p.write("data.csv", "n\nx\n");
    p.write("dfpipe.yml", "name: t\nsources:\n  d: { path: data.csv, schema: { n: INT } }\noutputs:\n  - model: m\n");
    p.write("sql/m.sql", "SELECT n FROM d\n");
    let out = p.dfpipe(&["--log-format", "json", "run"]);
    assert_eq!(out.status.code(), Some(1));
    let errors: Vec<String> = lines(&out)
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .map(|l| l["fields"]["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("warehouse.m (model `m`): "), "{errors:?}");
    assert_eq!(errors[1], "1 of 1 targets failed");
    // As text under -q, the error is said once, by the line that ends the run (it was also
    // logged as the target failed, the same words twice in a row).
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).matches("warehouse.m (model `m`): ").count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: warehouse.m (model `m`): "), "{}", stderr(&out));
    // Without -q it is logged as it happens too, before the summary.
    let out = p.dfpipe(&["run"]);
    assert_eq!(stderr(&out).matches("warehouse.m (model `m`): ").count(), 2, "{}", stderr(&out));
}

#[test]
fn a_dsn_variable_that_is_not_set_fails_only_the_commands_that_connect() {
    let p = project(
        "name: t\nconnections:\n  pg: { kind: postgres, dsn: \"${DFPIPE_TEST_PG_NOT_SET}\" }\n\
         outputs:\n  - model: m\n  - model: n\n    to: pg\n",
    );
    p.write("sql/n.sql", "SELECT 2 AS y\n");
    let missing = "dfpipe.yml:3:31: connection `pg` dsn: environment variable DFPIPE_TEST_PG_NOT_SET is not set; export it, \
                   pass --vars DFPIPE_TEST_PG_NOT_SET=VALUE, or write ${DFPIPE_TEST_PG_NOT_SET:-default}";
    assert_error(&p.dfpipe(&["plan"]), 2, missing);
    assert_error(&p.dfpipe(&["run"]), 2, missing);
    assert!(!p.file("dfpipe.duckdb").exists());
    // The DuckDB output alone runs; the history and the lineage need no connection.
    assert_success(&p.dfpipe(&["run", "-q", "-s", "m"]));
    let runs = p.dfpipe(&["runs"]);
    assert_success(&runs);
    assert!(stdout(&runs).contains("success"), "{}", stdout(&runs));
    assert_success(&p.dfpipe(&["lineage", "m.x"]));
    // `runs -n 0` is a usage error (it said "no runs recorded yet"); `query` names what `pg` is.
    let zero = p.dfpipe(&["runs", "-n", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
    assert!(stderr(&zero).contains("invalid value '0' for '--limit <LIMIT>'"), "{}", stderr(&zero));
    let query = p.dfpipe(&["query", "--connection", "pg", "SELECT 1"]);
    assert_eq!(query.status.code(), Some(2), "{}", stderr(&query));
    assert!(
        stderr(&query)
            .contains("connection `pg` is PostgreSQL; `dfpipe query` reads DuckDB files: query PostgreSQL with psql"),
        "{}",
        stderr(&query)
    );
}

#[test]
fn a_connection_string_that_does_not_read_is_a_config_error_naming_its_option() {
    // It failed the target after the work with "not valid" only, exit 1, and `plan` passed it.
    let tail = "(check it against libpq's forms, postgres://user@host:5432/dbname with options after `?`, or \
                host=... port=... dbname=...; it is not shown because it may hold a password)";
    for (dsn, why) in [
        ("postgres://someone:hunter2@localhost/db?foo=bar", ": it has an option libpq does not know "),
        ("postgres://someone:hunter2@localhost:99999/db", ": the value of option `port` does not read "),
        ("host=localhost password=hunter2 keepalives=maybe", ": the value of option `keepalives` does not read "),
        ("host=localhost password=hunter2 port", " "),
        (
            "postgres://someone@localhost/db?service=prod",
            ": libpq's option `service` is not one dfpipe takes (leave it out) ",
        ),
        // Never the tail of a password, taken for an option (a space in it, or a `&` in a URL's).
        ("host=localhost password=hunter2 horse=battery", ": it has an option libpq does not know "),
        ("postgres://someone@localhost/db?password=hunter2&battery=staple", ": it has an option libpq does not know "),
    ] {
        let p = project(&format!(
            "name: t\nconnections:\n  pg: {{ kind: postgres, dsn: \"{dsn}\" }}\noutputs:\n  - model: m\n    to: pg\n"
        ));
        let message = format!("connection `pg`: the PostgreSQL connection string is not valid{why}{tail}");
        for command in ["plan", "run"] {
            let out = p.dfpipe(&[command]);
            assert_error(&out, 2, &message);
            for secret in ["hunter2", "battery", "staple"] {
                assert!(!stderr(&out).contains(secret), "{}", stderr(&out));
            }
        }
    }
}

#[test]
fn a_type_name_a_source_schema_cannot_read_is_a_config_error() {
    // It exited 1, as a failed source; a type name is the config's, and plan catches it.
    let p = project("name: t\nsources:\n  raw: { path: raw.csv, schema: { u: NOTATYPE } }\noutputs:\n  - model: m\n");
    p.write("raw.csv", "u\n1\n");
    p.write("sql/m.sql", "SELECT u FROM raw\n");
    for command in ["plan", "run"] {
        let out = p.dfpipe(&[command]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(
                "error: source `raw` (raw.csv): schema: column `u`: `NOTATYPE` is not a SQL type DataFusion knows"
            ),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn postgres_names_longer_than_postgres_keeps_are_refused() {
    let long = "t".repeat(64);
    let config = |table: &str, extra: &str| {
        format!(
            "name: t\nconnections:\n  pg: {{ kind: postgres, dsn: \"host=/nowhere\" }}\n\
             outputs:\n  - {{ model: m, to: pg, table: {table}{extra} }}\n"
        )
    };
    let p = project(&config(&long, ""));
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        &format!(
            "dfpipe.yml: outputs[0] (model `m`): table name `{long}` is 64 bytes long; PostgreSQL keeps the first 63 \
             bytes of a name, so two long names could be one: choose a shorter `table:`"
        ),
    );
    // 60 bytes fit, but not with the `_quarantine` of the table its bad rows go to.
    let sixty = "t".repeat(60);
    p.write("dfpipe.yml", &config(&sixty, ", on_invalid: quarantine"));
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        &format!(
            "dfpipe.yml: outputs[0] (model `m`): table name `{sixty}` is 71 bytes long with the `_quarantine` of its \
             quarantine table; PostgreSQL keeps the first 63 bytes of a name, so two long names could be one: \
             choose a shorter `table:`"
        ),
    );
    // A column: refused before anything connects.
    p.write("dfpipe.yml", &config("m", ""));
    let column = "c".repeat(64);
    p.write("sql/m.sql", &format!("SELECT 1 AS {column}\n"));
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        &format!(
            "model `m` (sql/m.sql): column `{column}` is 64 bytes long; PostgreSQL keeps the first 63 bytes of a \
             name, so the table's column would be named otherwise (and two long names could be one): shorten it \
             with AS"
        ),
    );
}
