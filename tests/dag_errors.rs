//! Model and DAG mistakes: cycles, unknown references, duplicate names, non-SELECT files.

use crate::util::*;

fn project(models: &[(&str, &str)]) -> Project {
    let p = Project::new();
    p.write("dfpipe.yml", "name: t\nsources:\n  raw: { path: raw.csv }\n");
    p.write("raw.csv", "id,v\n1,a\n2,b\n");
    for (file, sql) in models {
        p.write(file, sql);
    }
    p
}

#[test]
fn cycle_names_the_files() {
    let p = project(&[
        ("sql/a.sql", "SELECT * FROM c"),
        ("sql/b.sql", "SELECT * FROM a JOIN raw USING (id)"),
        ("sql/c.sql", "SELECT * FROM b"),
    ]);
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "dependency cycle between models: a (sql/a.sql) -> c (sql/c.sql) -> b (sql/b.sql) -> a (sql/a.sql)",
    );
}

#[test]
fn unknown_reference_suggests_the_name() {
    let p = project(&[
        ("sql/stg.sql", "SELECT * FROM raw"),
        ("sql/mart.sql", "WITH x AS (SELECT * FROM stgg) SELECT * FROM x"),
    ]);
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "sql/mart.sql:1:26: `stgg` is neither a source nor a model (did you mean `stg`?); sources: raw; models: mart, stg",
    );
}

#[test]
fn duplicate_model_names() {
    let p = project(&[("sql/a.sql", "SELECT 1 AS x"), ("sql/sub/a.sql", "SELECT 2 AS x")]);
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "two models are named `a`: sql/a.sql and sql/sub/a.sql; model names come from file names and must be unique",
    );
}

#[test]
fn models_must_be_select_queries() {
    let p = project(&[("sql/a.sql", "CREATE TABLE x AS SELECT 1")]);
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "sql/a.sql: a model must be a SELECT query (dfpipe creates the view and the tables), found `CREATE TABLE x ...`",
    );
    let p = project(&[("sql/a.sql", "SELECT 1; SELECT 2")]);
    assert_error(&p.dfpipe(&["plan"]), 2, "sql/a.sql: a model must hold exactly one SELECT query, found 2 statements");
}

#[test]
fn sql_errors_point_at_the_line_and_every_broken_model_is_reported() {
    let p = project(&[
        ("sql/a.sql", "-- totals per id\nSELECT v,\n       idd * 2 AS doubled\nFROM raw\n"),
        ("sql/b.sql", "SELECT id\n  FROM raw WHERE\n"),
        ("sql/c.sql", "SELECT id + 'x' AS y FROM raw\n"),
        ("sql/d.sql", "SELECT * FROM a\n"),
        ("sql/e.sql", "SELECT id FROM raww\n"),
    ]);
    let out = p.dfpipe(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    // Parsing and references first: every broken file at once.
    assert_eq!(
        stderr(&out),
        "error: 2 models are broken:\n\
         sql/b.sql:2:17: Expected: an expression, found: EOF\n\
         2 |   FROM raw WHERE\n\
         \x20 |                 ^\n\
         \n\
         sql/e.sql:1:16: `raww` is neither a source nor a model (did you mean `raw`?); sources: raw; models: a, b, c, d, e\n\
         1 | SELECT id FROM raww\n\
         \x20 |                ^^^^\n"
    );
    std::fs::remove_file(p.file("sql/b.sql")).unwrap();
    std::fs::remove_file(p.file("sql/e.sql")).unwrap();
    // Then planning: each model that does not plan, before any data is read.
    let out = p.dfpipe(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: 2 models do not plan:\n\
         sql/a.sql:3:8: column 'idd' not found (did you mean `id`?) (columns here: id, v)\n\
         3 |        idd * 2 AS doubled\n\
         \x20 |        ^^^\n\
         \n\
         sql/c.sql:1:8: expressions have incompatible types (has type Int64, has type Utf8)\n\
         1 | SELECT id + 'x' AS y FROM raw\n\
         \x20 |        ^^\n\
         (not planned, as they read a broken model: d)\n"
    );
}

#[test]
fn views_chain_across_subdirectories() {
    let p = project(&[
        ("sql/staging/stg.sql", "SELECT id, upper(v) AS v FROM raw"),
        ("sql/marts/mart.sql", "SELECT v, count(*) AS n FROM stg GROUP BY v"),
    ]);
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT v, CAST(n AS VARCHAR) FROM mart ORDER BY v"),
        vec![vec!["A".to_string(), "1".to_string()], vec!["B".to_string(), "1".to_string()]]
    );
    assert_eq!(one(p.duckdb("SELECT count(*) FROM stg")), "BigInt(2)");
}
