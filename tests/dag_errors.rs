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
        "sql/mart.sql: `stgg` is neither a source nor a model (did you mean `stg`?); sources: raw; models: mart, stg",
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
fn sql_errors_name_the_file() {
    let p = project(&[("sql/a.sql", "SELECT FROM WHERE")]);
    let out = p.dfpipe(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("error: sql/a.sql: "), "{}", stderr(&out));
    let p = project(&[("sql/a.sql", "SELECT nope FROM raw")]);
    let out = p.dfpipe(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("error: model `a` (sql/a.sql): "), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
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
