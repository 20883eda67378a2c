//! Incremental outputs on the embedded DuckDB target: time windows (gaps, lookback, late rows,
//! restated ranges, a failing window, crashes around the commit), cursors (lossless marks, NULL
//! cursors), new files (late files with old mtimes, changed files), `--full-refresh`, the state
//! commands. The clock is pinned with `DFPIPE_TEST_NOW` so "complete" windows are exact.

use std::time::{Duration, SystemTime};

use crate::util::*;

/// Events over four days; a model that filters on `$start`/`$end` itself.
fn time_project(incremental: &str) -> Project {
    let p = Project::new();
    p.write(
        "data/events.csv",
        "id,ts,amount\n\
         1,2024-01-01 10:00:00,5\n\
         2,2024-01-01 23:59:59,7\n\
         3,2024-01-02 00:00:00,11\n\
         4,2024-01-03 12:00:00,13\n\
         5,2024-01-04 06:00:00,17\n\
         6,2024-01-05 01:00:00,19\n",
    );
    p.write(
        "sql/events.sql",
        "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount FROM events_raw\n\
         WHERE CAST(ts AS TIMESTAMP) >= $start AND CAST(ts AS TIMESTAMP) < $end\n",
    );
    p.write(
        "dfpipe.yml",
        &format!(
            "name: inc\nsources:\n  events_raw: {{ path: data/events.csv }}\noutputs:\n  - model: events\n    mode: append\n    incremental: {incremental}\n"
        ),
    );
    p
}

const DAILY: &str = "{ by: time, column: ts, grain: day, begin: 2024-01-01 }";

fn run_at(p: &Project, now: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    p.dfpipe_env(&all, &[("DFPIPE_TEST_NOW", now)])
}

fn ids(p: &Project) -> Vec<String> {
    p.duckdb("SELECT CAST(id AS VARCHAR) FROM events ORDER BY id").into_iter().map(|r| r[0].clone()).collect()
}

/// Every row, in order, as one string: the table's identity.
fn checksum(p: &Project, filter: &str) -> String {
    one(p.duckdb(&format!(
        "SELECT coalesce(string_agg(CAST(id AS VARCHAR) || '|' || CAST(ts AS VARCHAR) || '|' || CAST(amount AS VARCHAR), ';' ORDER BY id, ts), '') FROM events {filter}"
    )))
}

fn markers(p: &Project) -> usize {
    one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM _dfpipe_loads")).parse().unwrap()
}

#[test]
fn time_windows_load_once_rerun_identically_and_fill_gaps() {
    let p = time_project(DAILY);
    let out = run_at(&p, "2024-01-03T12:00:00", &[]);
    assert_success(&out);
    // Days 1 and 2 complete, day 3 current: rows 1–4; row 3 (exactly at day 1's end) once, in day 2.
    assert!(
        stdout(&out).contains("warehouse.events: 3 window(s) [2024-01-01T00:00:00, 2024-01-04T00:00:00)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(ids(&p), ["1", "2", "3", "4"]);
    assert_eq!(one(p.duckdb("SELECT CAST(ts AS VARCHAR) FROM events WHERE id = 3")), "2024-01-02 00:00:00");
    let first = checksum(&p, "");

    // The same moment again: only the unfinished day is redone, and the table is identical.
    let again = run_at(&p, "2024-01-03T12:00:00", &[]);
    assert_success(&again);
    assert!(stdout(&again).contains("warehouse.events: 1 window(s) [2024-01-03T00:00:00, 2024-01-04T00:00:00)"));
    assert_eq!(checksum(&p, ""), first);

    // An outage: the next run comes three days later and fills days 3, 4 and 5 (6 is current).
    let later = run_at(&p, "2024-01-06T08:00:00", &[]);
    assert_success(&later);
    assert!(stdout(&later).contains("4 window(s) [2024-01-03T00:00:00, 2024-01-07T00:00:00)"), "{}", stdout(&later));
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5", "6"]);
    assert_eq!(p.duckdb("SELECT count(*) FROM events GROUP BY id HAVING count(*) > 1").len(), 0);

    let show = p.dfpipe(&["state", "show"]);
    assert_success(&show);
    // Rows written, not held: the restated day 3 counts each time (the table holds 6).
    assert!(
        stdout(&show).contains(
            "warehouse.events (model `events`, by: time): 8 load(s), 8 row(s) written (a window or file loaded again counts again)\n"
        ),
        "{}",
        stdout(&show)
    );
    assert!(
        stdout(&show).contains("complete days: 5\n    [2024-01-01T00:00:00, 2024-01-06T00:00:00)\n"),
        "{}",
        stdout(&show)
    );
    let plan = p.dfpipe_env(&["plan"], &[("DFPIPE_TEST_NOW", "2024-01-08T00:30:00")]);
    assert!(
        stdout(&plan)
            .contains("incremental (by: time): a run now loads 3 window(s) [2024-01-06T00:00:00, 2024-01-09T00:00:00)"),
        "{}",
        stdout(&plan)
    );
}

#[test]
fn rows_with_a_null_time_are_counted_not_dropped_without_a_word() {
    // No window holds a NULL time: the rows were left out of every window, and nothing said so.
    let p = time_project(DAILY);
    p.write("data/events.csv", "id,ts,amount\n1,2024-01-01 10:00:00,5\n2,,7\n3,,9\n4,2024-01-02 01:00:00,11\n");
    p.write("sql/events.sql", "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount FROM events_raw\n");
    let out = run_at(&p, "2024-01-03T12:00:00", &[]);
    assert_success(&out);
    assert_eq!(ids(&p), ["1", "4"]);
    let warning = "2 row(s) of `events` have a NULL `ts` and are not loaded: no time window holds them; \
                   COALESCE it in the model to load them, or filter them there";
    assert_eq!(stderr(&out).matches(warning).count(), 1, "{}", stderr(&out));
    // A model that filters them itself hears nothing.
    p.write("sql/events.sql", "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount FROM events_raw WHERE ts IS NOT NULL\n");
    let out = run_at(&p, "2024-01-03T12:00:00", &["--full-refresh"]);
    assert_success(&out);
    assert!(!stderr(&out).contains("NULL `ts`"), "{}", stderr(&out));
    assert_eq!(ids(&p), ["1", "4"]);
}

#[test]
fn late_rows_load_within_lookback_and_a_restated_range_leaves_the_rest_identical() {
    let p = time_project("{ by: time, column: ts, grain: day, begin: 2024-01-01, lookback: 1 }");
    assert_success(&run_at(&p, "2024-01-05T00:00:00", &[]));
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5", "6"]);
    // Late rows: one a day back (inside lookback 1), one three days back (outside).
    let late = std::fs::read_to_string(p.file("data/events.csv")).unwrap()
        + "7,2024-01-04 18:00:00,23\n8,2024-01-02 09:00:00,29\n";
    p.write("data/events.csv", &late);
    let out = run_at(&p, "2024-01-05T03:00:00", &[]);
    assert_success(&out);
    assert!(stdout(&out).contains("2 window(s) [2024-01-04T00:00:00, 2024-01-06T00:00:00)"), "{}", stdout(&out));
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5", "6", "7"]);

    // Restating day 2 brings row 8 in; every other row stays byte-identical.
    let others = checksum(&p, "WHERE ts < TIMESTAMP '2024-01-02' OR ts >= TIMESTAMP '2024-01-03'");
    let restated = run_at(&p, "2024-01-05T03:00:00", &["--start", "2024-01-02", "--end", "2024-01-03"]);
    assert_success(&restated);
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5", "6", "7", "8"]);
    assert_eq!(checksum(&p, "WHERE ts < TIMESTAMP '2024-01-02' OR ts >= TIMESTAMP '2024-01-03'"), others);

    let off = run_at(&p, "2024-01-05T03:00:00", &["--start", "2024-01-02T05:00:00", "--end", "2024-01-03"]);
    assert_error(
        &off,
        2,
        "--start 2024-01-02 05:00:00 is not on a day boundary of output `events` (windows start at day boundaries, UTC)",
    );
}

#[test]
fn a_model_that_ignores_the_window_is_still_kept_inside_it() {
    let p = time_project(DAILY);
    p.write("sql/events.sql", "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount FROM events_raw\n");
    assert_success(&run_at(&p, "2024-01-02T12:00:00", &[]));
    // Rows 4–6 lie after the current day's end: not loaded, however the model reads.
    assert_eq!(ids(&p), ["1", "2", "3"]);
    assert_success(&run_at(&p, "2024-01-02T12:00:00", &[]));
    assert_eq!(ids(&p), ["1", "2", "3"]);
}

#[test]
fn a_failing_window_keeps_the_windows_before_it_and_the_next_run_resumes_there() {
    let p = time_project(DAILY);
    // Row 4 (day 3) divides by zero.
    p.write(
        "sql/events.sql",
        "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount / CASE WHEN id = 4 THEN 0 ELSE 1 END AS amount FROM events_raw\n",
    );
    let out = run_at(&p, "2024-01-05T12:00:00", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Divide by zero"), "{}", stderr(&out));
    // The error names the window that failed.
    assert!(
        stderr(&out)
            .contains("error: warehouse.events (model `events`): window [2024-01-03T00:00:00, 2024-01-04T00:00:00): "),
        "{}",
        stderr(&out)
    );
    assert_eq!(ids(&p), ["1", "2", "3"]);
    assert_eq!(markers(&p), 2);
    // The rows of the committed windows are reported (the run said 0 rows).
    assert!(
        stderr(&out)
            .contains("\n  the 3 rows its loads committed before the failure stay; the next run goes on from there"),
        "{}",
        stderr(&out)
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["targets"][0]["rows"], 3, "{results}");

    p.write("sql/events.sql", "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount FROM events_raw\n");
    let resumed = run_at(&p, "2024-01-05T12:00:00", &[]);
    assert_success(&resumed);
    assert!(
        stdout(&resumed).contains("3 window(s) [2024-01-03T00:00:00, 2024-01-06T00:00:00)"),
        "{}",
        stdout(&resumed)
    );
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5", "6"]);
}

#[test]
fn a_crash_between_the_target_commit_and_the_catalog_is_repaired_from_the_target() {
    let p = time_project(DAILY);
    // Abort right after the second window commits, before the catalog records it.
    let out = p.dfpipe_env(
        &["run", "-q"],
        &[("DFPIPE_TEST_NOW", "2024-01-05T12:00:00"), ("DFPIPE_TEST_CRASH_AT", "after-commit-1")],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("crash point after-commit-1"), "{}", stderr(&out));
    assert_eq!(ids(&p), ["1", "2", "3"]);
    // The catalog records an output's loads when it is done: none yet.
    let recorded = duckdb_rows(&p.file(".dfpipe/catalog.duckdb"), "SELECT CAST(count(*) AS VARCHAR) FROM loads");
    assert_eq!(one(recorded), "0");

    // The next run takes the target's record: day 2 is not loaded twice.
    let next = run_at(&p, "2024-01-05T12:00:00", &[]);
    assert_success(&next);
    assert!(stderr(&next).contains("the catalog missed load(s) the target committed"), "{}", stderr(&next));
    assert!(stdout(&next).contains("3 window(s) [2024-01-03T00:00:00, 2024-01-06T00:00:00)"), "{}", stdout(&next));
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5", "6"]);
    assert_eq!(one(duckdb_rows(&p.file(".dfpipe/catalog.duckdb"), "SELECT CAST(count(*) AS VARCHAR) FROM loads")), "5");
}

#[test]
fn a_run_killed_mid_window_redoes_that_window() {
    let p = time_project(DAILY);
    let (mut child, _) = p.spawn_paused_mid_load(&[("DFPIPE_TEST_NOW", "2024-01-03T12:00:00")]);
    child.kill().unwrap();
    child.wait().unwrap();
    // The first window never committed: nothing is there, nothing is recorded.
    assert!(p.duckdb("SELECT table_name FROM information_schema.tables WHERE table_name = 'events'").is_empty());
    assert_success(&run_at(&p, "2024-01-03T12:00:00", &[]));
    assert_eq!(ids(&p), ["1", "2", "3", "4"]);
}

#[test]
fn ctrl_c_in_a_later_window_keeps_the_committed_windows_and_records_nothing_half_done() {
    let p = time_project(DAILY);
    assert_success(&run_at(&p, "2024-01-02T12:00:00", &["-q"]));
    let before = checksum(&p, "");
    // Day 2 gains enough rows that its load is still streaming when paused.
    let mut csv = std::fs::read_to_string(p.file("data/events.csv")).unwrap();
    for i in 100..60_100 {
        csv.push_str(&format!("{i},2024-01-02 01:00:00,1\n"));
    }
    p.write("data/events.csv", &csv);
    // Paused inside the first window of the next run (day 2 again), then interrupted.
    let (child, _pause) = p.spawn_paused_mid_load(&[("DFPIPE_TEST_NOW", "2024-01-04T12:00:00")]);
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(checksum(&p, ""), before);
    assert_eq!(markers(&p), 2);
    assert_success(&run_at(&p, "2024-01-04T12:00:00", &["-q"]));
    assert_eq!(
        one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) || '/' || CAST(count(DISTINCT id) AS VARCHAR) FROM events")),
        "60005/60005"
    );
}

#[test]
fn ctrl_c_after_some_windows_committed_reports_their_rows() {
    let p = time_project(DAILY);
    // Paused in day 1's window, let go; paused again in day 2's: interrupted there.
    let (child, pause) = p.spawn_paused_mid_load(&[("DFPIPE_TEST_NOW", "2024-01-04T12:00:00")]);
    Project::resume_until_the_next_load_pauses(&pause);
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(ids(&p), ["1", "2"]);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    let target = &results["targets"][0];
    assert_eq!((&target["model"], &target["status"], &target["rows"]), (&"events".into(), &"error".into(), &2.into()));
    assert_eq!(target["error"], "interrupted: the 2 rows its loads committed before stay; the rest was not committed");
    assert_eq!(
        duckdb_rows(&p.file(".dfpipe/catalog.duckdb"), "SELECT status, rows::VARCHAR, targets::VARCHAR FROM runs"),
        [["interrupted", "2", "1"]]
    );
    // Its committed window is in the catalog too: the next run does not have to repair it.
    assert_eq!(one(duckdb_rows(&p.file(".dfpipe/catalog.duckdb"), "SELECT CAST(count(*) AS VARCHAR) FROM loads")), "1");
    let next = run_at(&p, "2024-01-04T12:00:00", &[]);
    assert_success(&next);
    assert!(!stderr(&next).contains("the catalog missed"), "{}", stderr(&next));
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5"]);
}

#[test]
fn a_changed_model_warns_that_earlier_windows_were_built_with_the_old_one() {
    let p = time_project(DAILY);
    assert_success(&run_at(&p, "2024-01-02T12:00:00", &["-q"]));
    p.write("sql/events.sql", "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount * 2 AS amount FROM events_raw\n");
    let out = run_at(&p, "2024-01-02T12:00:00", &[]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("model `events` or its incremental settings changed since earlier loads: the rows loaded before were built with the old definition"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_target_dropped_outside_dfpipe_is_refused_until_a_full_refresh() {
    let p = time_project(DAILY);
    assert_success(&run_at(&p, "2024-01-03T12:00:00", &[]));
    duckdb::Connection::open(p.file("dfpipe.duckdb")).unwrap().execute_batch("DROP TABLE events").unwrap();
    let out = run_at(&p, "2024-01-03T12:00:00", &["-q"]);
    assert_error(
        &out,
        3,
        "warehouse.events: the catalog records 3 incremental load(s) of this target, but the table is gone (dropped outside dfpipe?); rebuild it with `dfpipe run --full-refresh -s events`",
    );
    assert_success(&run_at(&p, "2024-01-03T12:00:00", &["--full-refresh"]));
    assert_eq!(ids(&p), ["1", "2", "3", "4"]);
    // Emptied rather than dropped: refused too.
    duckdb::Connection::open(p.file("dfpipe.duckdb")).unwrap().execute_batch("DELETE FROM events").unwrap();
    let out = run_at(&p, "2024-01-03T12:00:00", &["-q"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("the target is empty, but its incremental loads wrote 4 row(s)"), "{}", stderr(&out));
}

#[test]
fn a_full_refresh_rebuilds_aside_and_a_failed_one_keeps_table_and_state() {
    let p = time_project("{ by: time, column: ts, grain: day, begin: 2024-01-01, batch: 2 }");
    assert_success(&run_at(&p, "2024-01-05T00:00:00", &[]));
    assert_eq!(markers(&p), 3); // [1,2] [3,4] [5]
    let before = checksum(&p, "");
    // A row outside any window a normal run redoes: only a full refresh picks it up.
    let late = std::fs::read_to_string(p.file("data/events.csv")).unwrap() + "9,2024-01-01 12:00:00,31\n";
    p.write("data/events.csv", &late);

    p.write(
        "sql/events.sql",
        "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount / CASE WHEN id = 6 THEN 0 ELSE 1 END AS amount FROM events_raw\n",
    );
    let failed = run_at(&p, "2024-01-05T00:00:00", &["--full-refresh"]);
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(checksum(&p, ""), before);
    assert_eq!(markers(&p), 3);

    p.write("sql/events.sql", "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount FROM events_raw\n");
    let refreshed = run_at(&p, "2024-01-05T00:00:00", &["--full-refresh"]);
    assert_success(&refreshed);
    assert!(
        stdout(&refreshed).contains("full refresh: 1 window(s) [2024-01-01T00:00:00, 2024-01-06T00:00:00)"),
        "{}",
        stdout(&refreshed)
    );
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5", "6", "9"]);
    assert_eq!(markers(&p), 1);
    // The state was reset with it: a normal run redoes only the current day.
    let next = run_at(&p, "2024-01-05T00:00:00", &[]);
    assert!(stdout(&next).contains("1 window(s) [2024-01-05T00:00:00, 2024-01-06T00:00:00)"), "{}", stdout(&next));
    assert_eq!(ids(&p), ["1", "2", "3", "4", "5", "6", "9"]);
}

#[test]
fn date_and_zoned_columns_take_windows_without_casts_in_the_model() {
    for (expr, ty) in [
        ("CAST(CAST(ts AS TIMESTAMP) AS DATE)", "DATE"),
        ("CAST(ts AS TIMESTAMP) AT TIME ZONE 'UTC'", "TIMESTAMP WITH TIME ZONE"),
    ] {
        let p = time_project(DAILY);
        p.write(
            "sql/events.sql",
            &format!("SELECT id, {expr} AS ts, amount FROM events_raw WHERE {expr} >= $start AND {expr} < $end\n"),
        );
        assert_success(&run_at(&p, "2024-01-03T12:00:00", &[]));
        assert_eq!(ids(&p), ["1", "2", "3", "4"], "{ty}");
        assert_eq!(one(p.duckdb("SELECT typeof(ts) FROM events LIMIT 1")), ty);
        assert_success(&run_at(&p, "2024-01-04T12:00:00", &[]));
        assert_eq!(ids(&p), ["1", "2", "3", "4", "5"], "{ty}");
    }
}

/// Customers with an update time in nanoseconds, merged on `id` by cursor.
fn cursor_project(extra: &str) -> Project {
    let p = Project::new();
    p.write(
        "data/customers.csv",
        "id,name,updated_at\n1,ann,2024-01-01 00:00:00.000000001\n2,bob,2024-01-01 00:00:00.000000002\n3,cy,2024-01-01 00:00:00.000000003\n",
    );
    p.write(
        "sql/customers.sql",
        "SELECT id, name, CAST(updated_at AS TIMESTAMP) AS updated_at FROM customers_raw WHERE $last IS NULL OR CAST(updated_at AS TIMESTAMP) > $last\n",
    );
    p.write(
        "dfpipe.yml",
        &format!(
            "name: cur\nsources:\n  customers_raw: {{ path: data/customers.csv, schema: {{ updated_at: varchar }} }}\noutputs:\n  - model: customers\n    mode: merge\n    unique_key: id\n    incremental: {{ by: cursor, column: updated_at{extra} }}\n"
        ),
    );
    p
}

fn loaded_rows(out: &std::process::Output) -> String {
    let text = stdout(out);
    let line = text.lines().find(|l| l.starts_with("warehouse.customers ")).unwrap_or_else(|| panic!("{text}"));
    line.split_whitespace().nth(5).unwrap().to_string()
}

#[test]
fn a_cursor_mark_keeps_nanoseconds_and_loads_only_newer_rows() {
    let p = cursor_project("");
    let first = p.dfpipe(&["run"]);
    assert_success(&first);
    assert_eq!(loaded_rows(&first), "3");
    // The mark is the exact nanosecond: a rerun loads nothing (not row 3 again, forever).
    let again = p.dfpipe(&["run"]);
    assert_eq!(loaded_rows(&again), "0");
    let show = stdout(&p.dfpipe(&["state", "show"]));
    assert!(show.contains("mark: updated_at = 2024-01-01T00:00:00.000000003 (Timestamp(ns))"), "{show}");

    p.write(
        "data/customers.csv",
        "id,name,updated_at\n1,ann,2024-01-01 00:00:00.000000001\n2,bobby,2024-01-02 00:00:00\n3,cy,2024-01-01 00:00:00.000000003\n4,dee,2024-01-01 00:00:00.000000004\n",
    );
    let third = p.dfpipe(&["run"]);
    assert_eq!(loaded_rows(&third), "2");
    assert_eq!(
        p.duckdb("SELECT CAST(id AS VARCHAR), name FROM customers ORDER BY id"),
        [["1", "ann"], ["2", "bobby"], ["3", "cy"], ["4", "dee"]]
    );
}

#[test]
fn a_date_cursor_without_lag_warns_and_with_lag_merges_the_marks_day_again() {
    let p = Project::new();
    p.write("data/orders.csv", "id,day\n1,2024-01-01\n2,2024-01-02\n");
    p.write("sql/orders.sql", "SELECT id, CAST(day AS DATE) AS day FROM raw\n");
    let config = |lag: &str| {
        format!(
            "name: d\nsources:\n  raw: {{ path: data/orders.csv }}\noutputs:\n  - model: orders\n    mode: merge\n    \
             unique_key: id\n    incremental: {{ by: cursor, column: day{lag} }}\n"
        )
    };
    p.write("dfpipe.yml", &config(""));
    assert_success(&p.dfpipe(&["run", "-q"]));
    // An order of the mark's day arrives after the load: past `>`, it is not loaded, and the run says so.
    p.write("data/orders.csv", "id,day\n1,2024-01-01\n2,2024-01-02\n3,2024-01-02\n");
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains(
            "the cursor `day` is a DATE and `lag` is not set: rows added later with the date of the last load \
             (2024-01-02) will not be loaded; set `lag: 1d` to merge that day again on each run"
        ),
        "{}",
        stderr(&out)
    );
    p.write("dfpipe.yml", &config(", lag: 1d"));
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert!(!stderr(&out).contains("`lag` is not set"), "{}", stderr(&out));
    assert_eq!(one(p.duckdb("SELECT string_agg(CAST(id AS VARCHAR), ',' ORDER BY id) FROM orders")), "1,2,3");
}

#[test]
fn null_cursors_stop_the_load_or_are_loaded_and_reported() {
    let p = cursor_project("");
    p.write("data/customers.csv", "id,name,updated_at\n1,ann,2024-01-01 00:00:00\n2,bob,\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("1 row(s) have a NULL cursor `updated_at`"), "{}", stderr(&out));
    assert!(p.duckdb("SELECT table_name FROM information_schema.tables WHERE table_name = 'customers'").is_empty());

    let p = cursor_project(", on_null_cursor: warn");
    p.write("data/customers.csv", "id,name,updated_at\n1,ann,2024-01-01 00:00:00\n2,bob,\n");
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert!(stderr(&out).contains("1 row(s) with a NULL cursor `updated_at` loaded"), "{}", stderr(&out));
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM customers")), "2");
    // Loaded again each run, kept once by the merge.
    assert_success(&p.dfpipe(&["run"]));
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM customers")), "2");
}

/// Files of `data/`, one row each, loaded by new files.
fn files_project(mode: &str, extra: &str) -> Project {
    let p = Project::new();
    p.write("data/a.csv", "id,v\n1,10\n");
    p.write("data/b.csv", "id,v\n2,20\n");
    p.write("sql/facts.sql", "SELECT id, v FROM raw\n");
    p.write(
        "dfpipe.yml",
        &format!("name: f\nsources:\n  raw: {{ path: data/, format: csv }}\noutputs:\n  - model: facts\n    {mode}\n    incremental: {{ by: files{extra} }}\n"),
    );
    p
}

fn facts(p: &Project) -> Vec<Vec<String>> {
    p.duckdb("SELECT CAST(id AS VARCHAR), CAST(v AS VARCHAR) FROM facts ORDER BY id, v")
}

#[test]
fn only_new_files_load_even_a_late_one_with_an_old_mtime() {
    let p = files_project("mode: append", "");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(facts(&p), [["1", "10"], ["2", "20"]]);
    let untouched = std::fs::metadata(p.file("dfpipe.duckdb")).unwrap().modified().unwrap();

    // No new files: exit 0, the target untouched, the summary says so.
    let none = p.dfpipe(&["run"]);
    assert_success(&none);
    assert!(stdout(&none).contains("warehouse.facts: no new files in source `raw`"), "{}", stdout(&none));
    assert_eq!(std::fs::metadata(p.file("dfpipe.duckdb")).unwrap().modified().unwrap(), untouched);

    // A late file whose mtime is older than every loaded file's.
    p.write("data/0-late.csv", "id,v\n3,30\n");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800);
    std::fs::File::options().write(true).open(p.file("data/0-late.csv")).unwrap().set_modified(old).unwrap();
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert!(stdout(&out).contains("1 new file(s) of source `raw`"), "{}", stdout(&out));
    assert_eq!(facts(&p), [["1", "10"], ["2", "20"], ["3", "30"]]);
    let show = stdout(&p.dfpipe(&["state", "show", "facts"]));
    assert!(show.contains("files loaded: 3\n    data/0-late.csv\n    data/a.csv\n    data/b.csv\n"), "{show}");
}

#[test]
fn a_changed_file_follows_on_file_change() {
    // error (default): exit 3 naming the file, nothing written.
    let p = files_project("mode: append", "");
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("data/a.csv", "id,v\n1,11\n5,50\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let path = format!("file://{}", p.file("data/a.csv").display());
    assert!(
        stderr(&out)
            .contains(&format!("warehouse.facts: 1 file(s) of source `raw` changed since they were loaded: {path}; set `on_file_change: ignore` to keep what was loaded, or load them again with `dfpipe run --full-refresh -s facts` (`dfpipe state forget` would append their rows a second time; `on_file_change: reload` needs mode merge)")),
        "{}",
        stderr(&out)
    );
    assert_eq!(facts(&p), [["1", "10"], ["2", "20"]]);

    // ignore: left as loaded.
    let p = files_project("mode: append", ", on_file_change: ignore");
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("data/a.csv", "id,v\n1,11\n5,50\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(facts(&p), [["1", "10"], ["2", "20"]]);

    // reload (merge): the file's rows replace the earlier ones.
    let p = files_project("mode: merge\n    unique_key: id", ", on_file_change: reload");
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("data/a.csv", "id,v\n1,11\n5,50\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(facts(&p), [["1", "11"], ["2", "20"], ["5", "50"]]);

    // state forget: the file loads again.
    let p = files_project("mode: merge\n    unique_key: id", "");
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("data/b.csv", "id,v\n2,22\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("; set `on_file_change: reload` to load them again, `ignore` to keep what was loaded, or `dfpipe state forget warehouse.facts --files GLOB` to reload them once"),
        "{}",
        stderr(&out)
    );
    let forget = p.dfpipe(&["state", "forget", "warehouse.facts", "--files", "data/b.*"]);
    assert_success(&forget);
    assert_eq!(stdout(&forget), "warehouse.facts: 1 file(s) forgotten; the next run loads them again\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(facts(&p), [["1", "10"], ["2", "22"]]);
}

#[test]
fn incremental_config_errors_name_file_line_and_column() {
    let cases = [
        ("{ by: time, column: ts, grain: day }", "mode: append", "dfpipe.yml:7:5: missing field `begin`"),
        (
            "{ by: time, column: ts, grain: day, begin: 2024-01-01, lookback: -1 }",
            "mode: append",
            "dfpipe.yml:7:5: invalid value: integer `-1`, expected u32",
        ),
        (
            "{ by: time, column: ts, grain: week, begin: 2024-01-01 }",
            "mode: append",
            "dfpipe.yml:7:5: unknown variant `week`, expected one of hour, day, month, year",
        ),
        (
            "{ by: files, on_file_change: reload }",
            "mode: append",
            "dfpipe.yml:7:5: outputs[0] (model `events`): incremental: `on_file_change: reload` loads a changed file's rows again, which needs `mode: merge` and `unique_key` so they replace the rows loaded before",
        ),
        (
            DAILY,
            "mode: replace",
            "dfpipe.yml:7:5: outputs[0] (model `events`): incremental: `by: time` loads only new data, which `mode: replace` would throw away with the rest; use `mode: append` or `mode: merge` (and `dfpipe run --full-refresh` to rebuild)",
        ),
        (
            "{ by: time, column: ts, grain: day, begin: 2024-01-01T06:00:00 }",
            "mode: append",
            "dfpipe.yml:7:5: outputs[0] (model `events`): incremental: begin `2024-01-01T06:00:00` is not the start of a day; windows start on day boundaries (UTC)",
        ),
    ];
    for (incremental, mode, message) in cases {
        let p = time_project(incremental);
        let yml = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap().replace("mode: append", mode);
        p.write("dfpipe.yml", &yml);
        let out = p.dfpipe(&["plan"]);
        assert_eq!(out.status.code(), Some(2), "{incremental}: {}", stderr(&out));
        assert!(stderr(&out).starts_with(&format!("error: {message}")), "{incremental}:\n{}", stderr(&out));
    }
}

#[test]
fn schema_changes_add_columns_or_stop_with_a_full_refresh_hint() {
    let p = time_project(DAILY);
    assert_success(&run_at(&p, "2024-01-02T12:00:00", &["-q"]));
    // A new column: added to the table, NULL for the rows loaded before.
    p.write(
        "sql/events.sql",
        "SELECT id, CAST(ts AS TIMESTAMP) AS ts, amount, 'x' AS tag FROM events_raw WHERE CAST(ts AS TIMESTAMP) >= $start AND CAST(ts AS TIMESTAMP) < $end\n",
    );
    assert_success(&run_at(&p, "2024-01-03T12:00:00", &["-q"]));
    assert_eq!(
        p.duckdb("SELECT CAST(id AS VARCHAR), coalesce(tag, 'NULL') FROM events ORDER BY id"),
        [["1", "NULL"], ["2", "NULL"], ["3", "x"], ["4", "x"]]
    );
    // A retyped column stops the run, pointing at --full-refresh.
    p.write(
        "sql/events.sql",
        "SELECT id, CAST(ts AS TIMESTAMP) AS ts, CAST(amount AS VARCHAR) AS amount, 'x' AS tag FROM events_raw WHERE CAST(ts AS TIMESTAMP) >= $start AND CAST(ts AS TIMESTAMP) < $end\n",
    );
    let out = run_at(&p, "2024-01-03T12:00:00", &["-q"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("incremental outputs keep the rows loaded before, which have the old columns: after accepting the change, rebuild them with `dfpipe run --full-refresh -s events`"),
        "{}",
        stderr(&out)
    );
}

/// The time project written to a local Parquet directory.
fn parquet_project(incremental: &str) -> Project {
    let p = time_project(incremental);
    let yml = std::fs::read_to_string(p.file("dfpipe.yml"))
        .unwrap()
        .replace("    mode: append\n", "    to: out/events/\n    mode: append\n");
    p.write("dfpipe.yml", &yml);
    p
}

/// The ids in the Parquet directory, sorted (duplicates kept).
fn parquet_ids(p: &Project) -> Vec<i64> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(p.file("out/events")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".parquet") {
            for batch in read_parquet(&entry.path()) {
                let column = batch.column_by_name("id").unwrap();
                let column =
                    datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::Int64).unwrap();
                let values = column.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap();
                ids.extend(values.iter().flatten());
            }
        }
    }
    ids.sort();
    ids
}

#[test]
fn parquet_directories_take_windows_restates_and_crashes_without_duplicates() {
    let p = parquet_project("{ by: time, column: ts, grain: day, begin: 2024-01-01, batch: 3 }");
    assert_success(&run_at(&p, "2024-01-04T12:00:00", &["-q"]));
    // Windows [1,4) and [4,5): rows 1–5.
    assert_eq!(parquet_ids(&p), [1, 2, 3, 4, 5]);
    assert_eq!(std::fs::read_dir(p.file("out/events/_dfpipe_loads")).unwrap().count(), 2);

    // Restating day 2 rewrites the first load without day 2 and adds day 2 afresh.
    let late = std::fs::read_to_string(p.file("data/events.csv")).unwrap() + "8,2024-01-02 09:00:00,29\n";
    p.write("data/events.csv", &late);
    assert_success(&run_at(&p, "2024-01-04T12:00:00", &["-q", "--start", "2024-01-02", "--end", "2024-01-03"]));
    assert_eq!(parquet_ids(&p), [1, 2, 3, 4, 5, 8]);
    assert_success(&run_at(&p, "2024-01-04T12:00:00", &["-q", "--start", "2024-01-01", "--end", "2024-01-04"]));
    assert_eq!(parquet_ids(&p), [1, 2, 3, 4, 5, 8]);

    // A crash after a load's files are in place but before its marker: they never count.
    let crashed = p.dfpipe_env(
        &["run", "-q"],
        &[("DFPIPE_TEST_NOW", "2024-01-05T12:00:00"), ("DFPIPE_TEST_CRASH_AT", "before-marker")],
    );
    assert!(stderr(&crashed).contains("crash point before-marker"), "{}", stderr(&crashed));
    assert_eq!(parquet_ids(&p), [1, 2, 3, 4, 5, 5, 6, 8]); // day 4's files are there, uncommitted
    assert_success(&run_at(&p, "2024-01-05T12:00:00", &["-q"]));
    assert_eq!(parquet_ids(&p), [1, 2, 3, 4, 5, 6, 8]);

    // A full refresh swaps in a directory of one load.
    assert_success(&run_at(&p, "2024-01-05T12:00:00", &["-q", "--full-refresh"]));
    assert_eq!(parquet_ids(&p), [1, 2, 3, 4, 5, 6, 8]);
    assert_eq!(std::fs::read_dir(p.file("out/events/_dfpipe_loads")).unwrap().count(), 1);
}

#[test]
fn parquet_directories_take_new_files() {
    let p = files_project("to: out/facts/\n    mode: append", "");
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("data/c.csv", "id,v\n3,30\n");
    let out = p.dfpipe(&["run"]);
    assert!(stdout(&out).contains("out/facts: 1 new file(s) of source `raw`"), "{}", stdout(&out));
    assert_success(&p.dfpipe(&["run", "-q"]));
    let rows: usize = std::fs::read_dir(p.file("out/facts"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .map(|e| read_parquet(&e.path()).iter().map(|b| b.num_rows()).sum::<usize>())
        .sum();
    assert_eq!(rows, 3);
}

#[test]
fn with_no_new_files_the_source_tests_do_not_run_on_an_empty_input() {
    let p = files_project("mode: append", "");
    let yml = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap() + "tests:\n  raw:\n    - row_count: { min: 1 }\n";
    p.write("dfpipe.yml", &yml);
    assert_success(&p.dfpipe(&["run", "-q"]));
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert!(stdout(&out).contains("warehouse.facts: no new files in source `raw`"), "{}", stdout(&out));
}

#[test]
fn a_model_bound_per_run_is_never_read_whole_by_anything_else() {
    // Another model reading the cursor model would see only the new rows (a count of 0 on a
    // run with none); another output of it would be replaced by them.
    let p = cursor_project("");
    p.write("sql/summary.sql", "SELECT count(*) AS n FROM customers\n");
    let text = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap();
    p.write("dfpipe.yml", &format!("{text}  - model: summary\n"));
    assert_error(
        &p.dfpipe(&["run", "-q"]),
        2,
        "model `customers` (sql/customers.sql): its $last is bound per run to what its incremental output \
         loads, so model `summary`, which reads it, would see only those rows; put the filter on $last in a model \
         of its own that only the incremental output reads (e.g. `customers_new.sql`: SELECT * FROM customers \
         WHERE …), and let the rest read `customers`",
    );
    assert!(!p.file("dfpipe.duckdb").exists());

    let p = cursor_project("");
    let text = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap();
    p.write("dfpipe.yml", &format!("{text}  - model: customers\n    table: plain\n"));
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("its $last is bound per run to what its incremental output loads, so its output to warehouse.plain would get only those rows;"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn windows_on_a_zoned_column_are_utc_instants_whatever_its_zone() {
    // Berlin is UTC+1 in December. Windows and the model's `$start`/`$end` were read as Berlin's
    // local time (Arrow's cast of a zoneless value into a zoned type), while a restated window
    // was deleted in UTC: row 3 (23:30 UTC, 00:30 in Berlin) landed in the wrong day and was
    // loaded twice once lookback reached it, and `$start` "did not fit" the column at all.
    let p = Project::new();
    p.write("data/events.csv", "id,t\n1,2026-12-03T23:30:00\n2,2026-12-04T12:00:00\n3,2026-12-05T23:30:00\n");
    p.write(
        "sql/events.sql",
        "WITH e AS (SELECT id, arrow_cast(arrow_cast(t, 'Timestamp(µs, \"UTC\")'), \
         'Timestamp(µs, \"Europe/Berlin\")') AS ts FROM events_raw)\n\
         SELECT * FROM e WHERE ts >= $start AND ts < $end\n",
    );
    p.write(
        "dfpipe.yml",
        "name: inc\nsources:\n  events_raw: { path: data/events.csv }\noutputs:\n  - model: events\n    mode: append\n    \
         incremental: { by: time, column: ts, grain: day, begin: 2026-12-01, lookback: 1 }\n",
    );
    for hour in ["06", "07", "08"] {
        assert_success(&run_at(&p, &format!("2026-12-06T{hour}:00:00"), &[]));
    }
    let days = "SELECT CAST(id AS VARCHAR), CAST(ts AS VARCHAR) FROM events ORDER BY id";
    let expected = [["1", "2026-12-03 23:30:00+00"], ["2", "2026-12-04 12:00:00+00"], ["3", "2026-12-05 23:30:00+00"]];
    assert_eq!(p.duckdb(days), expected);
    // Each row in its UTC day's window.
    let states = p.duckdb("SELECT CAST(state AS VARCHAR) FROM _dfpipe_loads ORDER BY load_id LIMIT 5");
    let day = |d: u32, rows: u32| {
        [format!("{{\"complete\":[[\"2026-12-0{d}T00:00:00\",\"2026-12-0{}T00:00:00\"]],\"rows\":{rows}}}", d + 1)]
    };
    assert_eq!(states, [day(1, 0), day(2, 0), day(3, 1), day(4, 1), day(5, 1)]);
    // A restated day holds the same rows.
    assert_success(&run_at(&p, "2026-12-06T08:00:00", &["--start", "2026-12-05", "--end", "2026-12-06"]));
    assert_eq!(p.duckdb(days), expected);
    // Without the model's own filter, dfpipe's cut of each window decides alone.
    let model = std::fs::read_to_string(p.file("sql/events.sql")).unwrap();
    p.write("sql/events.sql", &model.replace(" WHERE ts >= $start AND ts < $end", ""));
    assert_success(&run_at(&p, "2026-12-06T06:00:00", &["--full-refresh"]));
    for hour in ["07", "08"] {
        assert_success(&run_at(&p, &format!("2026-12-06T{hour}:00:00"), &[]));
    }
    assert_success(&run_at(&p, "2026-12-06T08:00:00", &["--start", "2026-12-03", "--end", "2026-12-06"]));
    assert_eq!(p.duckdb(days), expected);
}

#[test]
fn two_outputs_of_one_model_by_new_files_get_advice_that_can_be_followed() {
    // The advice was "run them one at a time (-s)", naming the model twice; `-s` selects models,
    // so two outputs of one model could not be run apart. A copy of the model can.
    let p = Project::new();
    p.write("data/in/a.csv", "id\n1\n").write("sql/raw.sql", "SELECT id FROM ev\n");
    let config = |outputs: &str| format!("name: t\nsources:\n  ev: {{ path: data/in/ }}\noutputs:\n{outputs}");
    let by_files = "mode: append, incremental: { by: files, source: ev }";
    p.write(
        "dfpipe.yml",
        &config(&format!("  - {{ model: raw, {by_files} }}\n  - {{ model: raw, to: out/raw/, {by_files} }}\n")),
    );
    assert_error(
        &p.dfpipe(&["run"]),
        2,
        "source `ev` is read by new files for two outputs of `raw` (out/raw is one), and a run reads a source's \
         new files for one model: give one of the outputs a model of its own (a copy of sql/raw.sql) and run the \
         two one at a time (-s)",
    );
    p.write("sql/raw_copy.sql", "SELECT id FROM ev\n");
    p.write(
        "dfpipe.yml",
        &config(&format!("  - {{ model: raw, {by_files} }}\n  - {{ model: raw_copy, to: out/raw/, {by_files} }}\n")),
    );
    assert_success(&p.dfpipe(&["run", "-q", "-s", "raw"]));
    assert_success(&p.dfpipe(&["run", "-q", "-s", "raw_copy"]));
    assert_eq!(one(p.duckdb("SELECT CAST(sum(id) AS VARCHAR) FROM raw")), "1");
    let parts: Vec<_> = std::fs::read_dir(p.file("out/raw"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert_eq!(parts.iter().flat_map(|f| read_parquet(f)).map(|b| b.num_rows()).sum::<usize>(), 1);
}
