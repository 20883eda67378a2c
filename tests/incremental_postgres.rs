//! Incremental outputs into PostgreSQL (a real server, see `pg.rs`): windows with their markers
//! in the load's transaction (single and parallel COPY paths), a crash between the commit and
//! the catalog, a cursor, new files, and a table dropped outside dfpipe.

use crate::pg;
use crate::util::*;

fn project(schema: &str, incremental: &str, streams: usize) -> Project {
    let p = Project::new();
    p.write(
        "data/events.csv",
        "id,ts,amount\n1,2024-01-01 10:00:00,5\n2,2024-01-01 23:59:59,7\n3,2024-01-02 00:00:00,11\n\
         4,2024-01-03 12:00:00,13\n5,2024-01-04 06:00:00,17\n",
    );
    p.write(
        "sql/events.sql",
        "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount FROM raw WHERE CAST(ts AS TIMESTAMP) >= $start AND CAST(ts AS TIMESTAMP) < $end\n",
    );
    p.write(
        "dfpipe.yml",
        &format!(
            "name: t\nsources:\n  raw: {{ path: data/events.csv }}\n\
             connections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\", copy_streams: {streams} }}\n\
             outputs:\n  - model: events\n    to: pg\n    table: {schema}.events\n    mode: append\n    incremental: {incremental}\n"
        ),
    );
    p
}

fn run(p: &Project, now: &str, args: &[&str], extra_env: &[(&str, &str)]) -> std::process::Output {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let mut env = vec![("DFPIPE_PG", pg::database_url()), ("DFPIPE_TEST_NOW", now)];
    env.extend_from_slice(extra_env);
    p.dfpipe_env(&all, &env)
}

fn ids(schema: &str) -> Vec<String> {
    pg::query(&format!("SELECT id FROM {schema}.events ORDER BY id")).into_iter().map(|r| r[0].clone()).collect()
}

fn markers(schema: &str) -> String {
    one(pg::query(&format!("SELECT count(*) FROM {schema}._dfpipe_loads WHERE target = 'events'")))
}

const DAILY: &str = "{ by: time, column: ts, grain: day, begin: 2024-01-01, lookback: 1 }";

#[test]
fn windows_commit_with_their_markers_and_survive_a_crash_before_the_catalog() {
    let schema = pg::schema("inc_time");
    let p = project(&schema, DAILY, 1);
    let crashed = run(&p, "2024-01-04T12:00:00", &["-q"], &[("DFPIPE_TEST_CRASH_AT", "after-commit-1")]);
    assert!(stderr(&crashed).contains("crash point after-commit-1"), "{}", stderr(&crashed));
    assert_eq!(ids(&schema), ["1", "2", "3"]);
    assert_eq!(markers(&schema), "2");

    let next = run(&p, "2024-01-04T12:00:00", &[], &[]);
    assert_success(&next);
    // Day 2 is committed: the run looks back one day from day 3 (so redoes day 2) and loads 3, 4.
    assert!(stdout(&next).contains("3 window(s) [2024-01-02T00:00:00, 2024-01-05T00:00:00)"), "{}", stdout(&next));
    assert_eq!(ids(&schema), ["1", "2", "3", "4", "5"]);
    let sum = |s: &str| one(pg::query(&format!("SELECT sum(amount) || '/' || count(*) FROM {s}.events")));
    let before = sum(&schema);
    assert_success(&run(&p, "2024-01-04T12:00:00", &[], &[]));
    assert_eq!(sum(&schema), before);

    pg::query(&format!("DROP TABLE {schema}.events"));
    let dropped = run(&p, "2024-01-04T12:00:00", &["-q"], &[]);
    assert_eq!(dropped.status.code(), Some(3), "{}", stderr(&dropped));
    assert!(stderr(&dropped).contains(
        "but the table is gone (dropped outside dfpipe?); rebuild it with `dfpipe run --full-refresh -s events`"
    ));
}

#[test]
fn a_full_refresh_over_parallel_streams_swaps_table_and_state_together() {
    let schema = pg::schema("inc_refresh");
    let p = project(&schema, DAILY, 3);
    assert_success(&run(&p, "2024-01-04T12:00:00", &["-q"], &[]));
    assert_eq!(markers(&schema), "4");
    p.write(
        "sql/events.sql",
        "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount / CASE WHEN id = 5 THEN 0 ELSE 1 END AS amount FROM raw\n",
    );
    let failed = run(&p, "2024-01-04T12:00:00", &["-q", "--full-refresh"], &[]);
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(ids(&schema), ["1", "2", "3", "4", "5"]);
    assert_eq!(markers(&schema), "4");

    p.write("sql/events.sql", "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount * 10 AS amount FROM raw\n");
    assert_success(&run(&p, "2024-01-04T12:00:00", &["-q", "--full-refresh"], &[]));
    assert_eq!(markers(&schema), "1");
    assert_eq!(one(pg::query(&format!("SELECT sum(amount) FROM {schema}.events"))), "530");
}

#[test]
fn a_cursor_and_new_files_load_only_what_is_new() {
    let schema = pg::schema("inc_cursor");
    let p = Project::new();
    p.write("data/a.csv", "id,updated_at\n1,2024-01-01 00:00:00.000000001\n2,2024-01-01 00:00:00.000000002\n");
    p.write("sql/customers.sql", "SELECT id, CAST(updated_at AS TIMESTAMP) AS updated_at FROM raw\n");
    p.write("sql/facts.sql", "SELECT id FROM raw\n");
    p.write(
        "dfpipe.yml",
        &format!(
            "name: t\nsources:\n  raw: {{ path: data/, format: csv, schema: {{ updated_at: varchar }} }}\n\
             connections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\n\
             outputs:\n  - model: customers\n    to: pg\n    table: {schema}.customers\n    mode: merge\n    unique_key: id\n    incremental: {{ by: cursor, column: updated_at }}\n"
        ),
    );
    let first = run(&p, "2024-01-05T00:00:00", &[], &[]);
    assert_success(&first);
    let again = run(&p, "2024-01-05T00:00:00", &[], &[]);
    assert!(stdout(&again).contains("rows with updated_at > 2024-01-01T00:00:00.000000002"), "{}", stdout(&again));
    p.write("data/b.csv", "id,updated_at\n2,2024-01-02 00:00:00.000000005\n3,2024-01-02 00:00:00.000000006\n");
    assert_success(&run(&p, "2024-01-05T00:00:00", &[], &[]));
    assert_eq!(
        pg::query(&format!("SELECT id, updated_at FROM {schema}.customers ORDER BY id")),
        [["1", "2024-01-01 00:00:00"], ["2", "2024-01-02 00:00:00"], ["3", "2024-01-02 00:00:00"]]
    );

    // The same source by new files into another table.
    let yml = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap().replace(
        "  - model: customers",
        &format!("  - model: facts\n    to: pg\n    table: {schema}.facts\n    mode: append\n    incremental: {{ by: files }}\n  - model: customers"),
    );
    p.write("dfpipe.yml", &yml);
    assert_success(&run(&p, "2024-01-05T00:00:00", &["-q", "-s", "facts"], &[]));
    p.write("data/c.csv", "id,updated_at\n9,2024-01-03 00:00:00.000000007\n");
    let out = run(&p, "2024-01-05T00:00:00", &["-s", "facts"], &[]);
    assert!(stdout(&out).contains("1 new file(s) of source `raw`"), "{}", stdout(&out));
    assert_eq!(
        one(pg::query(&format!("SELECT string_agg(id::text, ',' ORDER BY id) FROM {schema}.facts"))),
        "1,2,2,3,9"
    );
    // Both outputs read `raw`, one by new files: together they are refused.
    let both = run(&p, "2024-01-05T00:00:00", &["-q"], &[]);
    assert_error(
        &both,
        2,
        "source `raw` is read by new files only for `facts`, and whole by customers; run them separately (-s)",
    );
}
