//! DuckDB targets: replace is atomic, append is all-or-nothing, merge upserts; types survive.

use crate::util::*;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Float64Type;

fn project(outputs: &str) -> Project {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: t\nsources:\n  raw: {{ path: raw.csv, schema: {{ v: VARCHAR }} }}\n\
             datafusion: {{ execution.batch_size: 1000 }}\noutputs:\n{outputs}"
        ),
    );
    p.write("sql/m.sql", "SELECT id, v, CAST(substr(v, 2) AS INT) AS n FROM raw\n");
    p
}

#[test]
fn failed_replace_keeps_the_old_table() {
    let p = project("  - model: m\n");
    p.write("raw.csv", &rows_csv(1..=5000, "a"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    let before = p.duckdb("SELECT count(*), sum(n), min(v), max(v) FROM m");
    assert_eq!(before[0][0], "BigInt(5000)");

    // 20,000 good rows, then one that fails the model's CAST: many batches reach DuckDB first.
    let mut bad = rows_csv(1..=20_000, "b");
    bad.push_str("20001,bOOPS\n");
    p.write("raw.csv", &bad);
    let out = p.dfpipe(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("error: warehouse.m (model `m`): "), "{err}");
    assert!(err.contains("Cannot cast string 'OOPS' to value of Int32 type"), "{err}");
    assert_eq!(p.duckdb("SELECT count(*), sum(n), min(v), max(v) FROM m"), before);
    assert_eq!(
        one(p.duckdb("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '__dfpipe%'")),
        "BigInt(0)"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "error");
    assert_eq!(results["targets"][0]["status"], "error");
}

#[test]
fn killed_run_mid_load_leaves_the_old_table() {
    let p = project("  - model: m\n");
    p.write("raw.csv", &rows_csv(1..=1000, "a"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("raw.csv", &rows_csv(1..=400_000, "b"));
    let (mut child, _pause) = p.spawn_paused_mid_load(&[]);
    child.kill().unwrap(); // SIGKILL, as `kill -9`: the run cannot record its end.
    child.wait().unwrap();
    assert_eq!(p.duckdb("SELECT count(*), min(v), max(v) FROM m")[0], ["BigInt(1000)", "a1", "a999"]);
    let runs = |args: &[&str]| stdout(&p.dfpipe(args));
    let status = |json: &serde_json::Value| {
        let run = |r: &serde_json::Value| (r["run_id"].clone(), r["status"].clone(), r["finished_at"].clone());
        json.as_array().unwrap().iter().map(run).collect::<Vec<_>>()
    };
    let before: serde_json::Value = serde_json::from_str(&runs(&["runs", "--format", "json"])).unwrap();
    assert_eq!(status(&before)[0], (2.into(), "running".into(), serde_json::Value::Null));
    // The next run is not stopped by what the killed one left behind, and, holding the lock,
    // marks it crashed: nothing else can still be running it.
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT count(*) FROM m")), "BigInt(400000)");
    let after: serde_json::Value = serde_json::from_str(&runs(&["runs", "--format", "json"])).unwrap();
    let finished = after[0]["finished_at"].clone();
    assert!(finished.is_string(), "{after}");
    assert_eq!(
        status(&after),
        [
            (3.into(), "success".into(), finished),
            (2.into(), "crashed".into(), serde_json::Value::Null),
            (1.into(), "success".into(), after[2]["finished_at"].clone())
        ]
    );
    assert_eq!(after[1]["error"], "ended without recording its end (killed or crashed); found by run #3");
    assert_eq!((&after[1]["rows"], &after[1]["targets"]), (&serde_json::Value::Null, &serde_json::Value::Null));
    let table = runs(&["runs"]);
    let row = |id: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(&format!("{id} "))).unwrap_or_else(|| panic!("{table}"));
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        [&words[..1], &words[3..]].concat()
    };
    // Without the start (date and time): run, command, status, strategy, targets, rows, seconds,
    // peak RSS.
    assert_eq!(row("#2"), ["#2", "run", "crashed", "-", "-", "-", "-", "-"], "{table}");
    assert!(table.ends_with("#2: ended without recording its end (killed or crashed); found by run #3\n"), "{table}");
    // A later run finds nothing left to mark.
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        duckdb_rows(
            &p.file(".dfpipe/catalog.duckdb"),
            "SELECT status, count(*) FROM runs GROUP BY ALL ORDER BY status"
        ),
        [["crashed", "BigInt(1)"], ["success", "BigInt(3)"]]
    );
}

#[test]
fn append_adds_all_rows_or_none() {
    let p = project("  - model: m\n    mode: append\n");
    p.write("raw.csv", &rows_csv(1..=100, "a"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT count(*) FROM m")), "BigInt(200)");
    let mut bad = rows_csv(1..=5000, "a");
    bad.push_str("5001,aX\n");
    p.write("raw.csv", &bad);
    assert_eq!(p.dfpipe(&["run", "-q"]).status.code(), Some(1));
    assert_eq!(one(p.duckdb("SELECT count(*) FROM m")), "BigInt(200)");
}

#[test]
fn merge_upserts_on_the_key() {
    let p = project("  - model: m\n    mode: merge\n    unique_key: id\n");
    p.write("raw.csv", &rows_csv(1..=100, "a"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("raw.csv", &rows_csv(51..=150, "b"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT count(*), count(*) FILTER (WHERE v LIKE 'a%'), count(*) FILTER (WHERE v LIKE 'b%'), count(DISTINCT id) FROM m"),
        vec![vec!["BigInt(150)", "BigInt(50)", "BigInt(100)", "BigInt(150)"].into_iter().map(String::from).collect::<Vec<_>>()]
    );
    assert_eq!(one(p.duckdb("SELECT v FROM m WHERE id = 60")), "b60");
    // Duplicate keys in the new rows: a clear error, the table unchanged.
    p.write("raw.csv", "id,v\n7,c7\n7,c8\n");
    let out = p.dfpipe(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("merge key (id) is not unique in the new rows: (7) appears more than once"),
        "{}",
        stderr(&out)
    );
    assert_eq!(one(p.duckdb("SELECT v FROM m WHERE id = 7")), "a7");
}

#[test]
fn types_round_trip_into_duckdb() {
    let p = Project::new();
    p.write("dfpipe.yml", "name: t\n");
    p.write(
        "sql/typed.sql",
        "SELECT
            true AS b, CAST(-8 AS TINYINT) AS i8, CAST(-16 AS SMALLINT) AS i16, CAST(-32 AS INT) AS i32,
            CAST(-9223372036854775807 AS BIGINT) AS i64, CAST(255 AS TINYINT UNSIGNED) AS u8,
            CAST(18446744073709551615 AS BIGINT UNSIGNED) AS u64, CAST(1.5 AS FLOAT) AS f32, CAST(-0.25 AS DOUBLE) AS f64,
            CAST('12345678901234567890.123456' AS DECIMAL(38,6)) AS dec, 'héllo' AS s, arrow_cast('view', 'Utf8View') AS sv,
            arrow_cast('dict', 'Dictionary(Int32, Utf8)') AS sd, CAST('abc' AS BYTEA) AS bin,
            DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 12:34:56.789012' AS ts,
            arrow_cast(TIMESTAMP '2024-02-29 12:34:56', 'Timestamp(Second, Some(\"UTC\"))') AS tstz,
            CAST('13:14:15' AS TIME) AS t, make_array(1, 2, NULL) AS list, named_struct('k', 1, 'v', 'x') AS st,
            CAST(NULL AS INT) AS null_int\n",
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    let got = p.duckdb(
        "SELECT CAST(b AS VARCHAR), CAST(i8 AS VARCHAR), CAST(i16 AS VARCHAR), CAST(i32 AS VARCHAR), CAST(i64 AS VARCHAR),
                CAST(u8 AS VARCHAR), CAST(u64 AS VARCHAR), CAST(f32 AS VARCHAR), CAST(f64 AS VARCHAR), CAST(dec AS VARCHAR),
                s, sv, sd, CAST(bin AS VARCHAR), CAST(d AS VARCHAR), CAST(ts AS VARCHAR), CAST(CAST(tstz AS TIMESTAMP) AS VARCHAR),
                CAST(t AS VARCHAR), CAST(list AS VARCHAR), CAST(st AS VARCHAR), CAST(null_int AS VARCHAR) FROM typed",
    );
    let expected = [
        "true",
        "-8",
        "-16",
        "-32",
        "-9223372036854775807",
        "255",
        "18446744073709551615",
        "1.5",
        "-0.25",
        "12345678901234567890.123456",
        "héllo",
        "view",
        "dict",
        "abc",
        "2024-02-29",
        "2024-02-29 12:34:56.789012",
        "2024-02-29 12:34:56",
        "13:14:15",
        "[1, 2, NULL]",
        "{'k': 1, 'v': x}",
        "NULL",
    ];
    assert_eq!(got, vec![expected.map(String::from).to_vec()]);
    let types = p.duckdb(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'typed' ORDER BY ordinal_position",
    );
    let types: Vec<String> = types.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        types,
        [
            "BOOLEAN",
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "UTINYINT",
            "UBIGINT",
            "FLOAT",
            "DOUBLE",
            "DECIMAL(38,6)",
            "VARCHAR",
            "VARCHAR",
            "VARCHAR",
            "BLOB",
            "DATE",
            "TIMESTAMP_NS",
            "TIMESTAMP WITH TIME ZONE",
            "TIME",
            "BIGINT[]",
            "STRUCT(k BIGINT, v VARCHAR)",
            "INTEGER"
        ]
    );
}

#[test]
fn decimals_and_strings_round_trip_exactly_into_duckdb() {
    // A CSV of decimals of 4, 9, 18 and 30 digits at their limits, strings of 0 to 65 bytes, and
    // NULLs; dfpipe loads it through DuckDB's Arrow import (model `decimals`) and, for decimals
    // inside a list, through duckdb-rs (model `nested`); DuckDB compares every value with its own
    // reading of the same file.
    fn decimal(unscaled: i128, scale: u32) -> String {
        let (sign, abs) = if unscaled < 0 { ("-", -unscaled) } else { ("", unscaled) };
        let unit = 10i128.pow(scale);
        format!("{sign}{}.{:0width$}", abs / unit, abs % unit, width = scale as usize)
    }
    let p = Project::new();
    let mut csv = String::from("id,d4,d9,d18,d30,note\n");
    for i in 1..=20_000i128 {
        let d4 = if i % 7 == 0 { String::new() } else { decimal(i * 37 % 19_999 - 9_999, 2) };
        let d9 = decimal(i * 7_919 % 1_999_999_999 - 999_999_999, 3);
        let d18 = match i {
            1 => decimal(999_999_999_999_999_999, 4),
            2 => decimal(-999_999_999_999_999_999, 4),
            _ if i % 5 == 0 => String::new(),
            _ => decimal(i * 123_456_789_012_345 % 999_999_999_999_999_999 - 500_000_000_000_000_000, 4),
        };
        let d30 = decimal(i * 123_456_789_012_345_678_901, 3);
        let note = if i % 11 == 0 { String::new() } else { format!("n{i} {}", "é".repeat((i % 30) as usize)) };
        csv.push_str(&format!("{i},{d4},{d9},{d18},{d30},{note}\n"));
    }
    p.write("decimals.csv", &csv);
    let types = "id: BIGINT, d4: 'DECIMAL(4,2)', d9: 'DECIMAL(9,3)', d18: 'DECIMAL(18,4)', d30: 'DECIMAL(30,3)', \
                 note: VARCHAR";
    p.write("dfpipe.yml", &format!("name: t\nsources:\n  raw: {{ path: decimals.csv, schema: {{ {types} }} }}\n"));
    p.write("sql/decimals.sql", "SELECT * FROM raw\n");
    p.write("sql/nested.sql", "SELECT id, make_array(d18, d4) AS pair FROM raw\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    let file = format!(
        "read_csv('{}', header = true, columns = {{{}}})",
        p.file("decimals.csv").display(),
        "'id': 'BIGINT', 'd4': 'DECIMAL(4,2)', 'd9': 'DECIMAL(9,3)', 'd18': 'DECIMAL(18,4)', 'd30': 'DECIMAL(30,3)', \
         'note': 'VARCHAR'"
    );
    let check = format!(
        "SELECT (count(*), count(t.d4), count(t.d18), count(t.note), sum(strlen(t.note)),
                count(*) FILTER (WHERE t.d4 IS DISTINCT FROM f.d4 OR t.d9 IS DISTINCT FROM f.d9
                                 OR t.d18 IS DISTINCT FROM f.d18 OR t.d30 IS DISTINCT FROM f.d30
                                 OR t.note IS DISTINCT FROM f.note),
                max(t.d18), min(t.d18), max(t.d30))::VARCHAR
         FROM decimals t JOIN {file} f USING (id)"
    );
    assert_eq!(
        p.duckdb(&check),
        [["(20000, 17143, 16000, 18182, 644294, 0, 99999999999999.9999, -99999999999999.9999, \
              2469135780246913578020.000)"]]
    );
    let types = p.duckdb("SELECT data_type FROM information_schema.columns WHERE table_name = 'decimals'");
    let types: Vec<&str> = types.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(types, ["BIGINT", "DECIMAL(4,2)", "DECIMAL(9,3)", "DECIMAL(18,4)", "DECIMAL(30,3)", "VARCHAR"]);
    let nested = format!(
        "SELECT (count(*), count(*) FILTER (WHERE n.pair[1] IS DISTINCT FROM f.d18 OR n.pair[2] IS DISTINCT FROM f.d4))
                ::VARCHAR FROM nested n JOIN {file} f USING (id)"
    );
    assert_eq!(p.duckdb(&nested), [["(20000, 0)"]]);
}

#[test]
fn ctrl_c_stops_the_run_with_130_and_keeps_the_old_table() {
    let p = Project::new();
    p.write("dfpipe.yml", "name: t\n");
    p.write("sql/big.sql", "SELECT value AS id, concat('row ', value) AS label FROM generate_series(1, 100)\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    p.write("sql/big.sql", "SELECT value AS id, concat('row ', value) AS label FROM generate_series(1, 200000)\n");
    let (child, _pause) = p.spawn_paused_mid_load(&[]);
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interrupted: what targets were writing was not committed and they keep their previous contents (an incremental output keeps the loads it committed)")
    );
    assert_eq!(p.duckdb("SELECT count(*), max(id) FROM big")[0], ["BigInt(100)", "BigInt(100)"]);
    // The interrupted run is recorded as such, never left `running`.
    assert_eq!(
        duckdb_rows(
            &p.file(".dfpipe/catalog.duckdb"),
            "SELECT status, CAST(finished_at IS NOT NULL AS VARCHAR) FROM runs ORDER BY run_id"
        ),
        [["success", "true"], ["interrupted", "true"]]
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "error");
    assert_eq!(
        results["error"],
        "interrupted: what targets were writing was not committed and they keep their previous contents (an incremental output keeps the loads it committed)"
    );
}

#[test]
fn ctrl_c_after_a_target_committed_reports_that_target() {
    let p = Project::new();
    p.write("dfpipe.yml", "name: t\noutputs:\n  - model: a_small\n  - model: b_big\n");
    p.write("sql/a_small.sql", "SELECT value AS id FROM generate_series(1, 3)\n");
    p.write("sql/b_big.sql", "SELECT value AS id FROM generate_series(1, 200000)\n");
    // Paused in `a_small`'s load, let go; paused again in `b_big`'s: interrupted there.
    let (child, pause) = p.spawn_paused_mid_load(&[]);
    Project::resume_until_the_next_load_pauses(&pause);
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(p.duckdb("SELECT count(*) FROM a_small"), [["BigInt(3)"]]);
    assert_eq!(p.duckdb("SELECT count(*) FROM information_schema.tables WHERE table_name = 'b_big'"), [["BigInt(0)"]]);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    let targets = results["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{results}");
    let summary = |t: &serde_json::Value| format!("{} {} {} {}", t["model"], t["status"], t["rows"], t["error"]);
    assert_eq!(summary(&targets[0]), "\"a_small\" \"success\" 3 null");
    assert_eq!(
        summary(&targets[1]),
        "\"b_big\" \"error\" 0 \"interrupted: nothing of it was committed; it keeps its previous contents\""
    );
    assert_eq!(
        duckdb_rows(&p.file(".dfpipe/catalog.duckdb"), "SELECT status, rows::VARCHAR, targets::VARCHAR FROM runs"),
        [["interrupted", "3", "2"]]
    );
}

#[test]
fn nulls_stay_null_in_every_duckdb_column_type() {
    let p = Project::new();
    p.write("dfpipe.yml", "name: t\n");
    // Row k = 1 holds a value of each type, row k = 2 a NULL of it.
    let columns = [
        ("b", "true"),
        ("i8", "CAST(-8 AS TINYINT)"),
        ("i16", "CAST(-16 AS SMALLINT)"),
        ("i32", "CAST(-32 AS INT)"),
        ("i64", "CAST(-64 AS BIGINT)"),
        ("u8", "CAST(8 AS TINYINT UNSIGNED)"),
        ("u16", "CAST(16 AS SMALLINT UNSIGNED)"),
        ("u32", "CAST(32 AS INT UNSIGNED)"),
        ("u64", "CAST(64 AS BIGINT UNSIGNED)"),
        ("f16", "arrow_cast(1.5, 'Float16')"),
        ("f32", "CAST(2.5 AS FLOAT)"),
        ("f64", "CAST(-0.25 AS DOUBLE)"),
        ("dec", "CAST('1234.56' AS DECIMAL(10,2))"),
        ("dec256", "arrow_cast(CAST('1234.56' AS DECIMAL(20,2)), 'Decimal256(20, 2)')"),
        ("s", "'text'"),
        ("sl", "arrow_cast('large', 'LargeUtf8')"),
        ("sv", "arrow_cast('view', 'Utf8View')"),
        ("sd", "arrow_cast('dict', 'Dictionary(Int32, Utf8)')"),
        ("bin", "CAST('abc' AS BYTEA)"),
        ("fbin", "arrow_cast(CAST('ab' AS BYTEA), 'FixedSizeBinary(2)')"),
        ("d", "DATE '2024-02-29'"),
        ("d64", "arrow_cast(DATE '2024-02-29', 'Date64')"),
        ("ts_s", "arrow_cast(TIMESTAMP '2024-02-29 12:34:56', 'Timestamp(Second, None)')"),
        ("ts_ms", "arrow_cast(TIMESTAMP '2024-02-29 12:34:56.789', 'Timestamp(Millisecond, None)')"),
        ("ts_us", "arrow_cast(TIMESTAMP '2024-02-29 12:34:56.789012', 'Timestamp(Microsecond, None)')"),
        ("ts_ns", "TIMESTAMP '2024-02-29 12:34:56.789012345'"),
        ("tstz", "arrow_cast(TIMESTAMP '2024-02-29 12:34:56', 'Timestamp(Microsecond, Some(\"UTC\"))')"),
        ("t32", "arrow_cast(CAST('13:14:15' AS TIME), 'Time32(Second)')"),
        ("t64", "CAST('13:14:15.123456' AS TIME)"),
        ("iv", "INTERVAL '1 month 2 days 3 seconds'"),
        ("iv_ym", "arrow_cast('14 months', 'Interval(YearMonth)')"),
        ("iv_dt", "arrow_cast('2 days 1 millisecond', 'Interval(DayTime)')"),
        ("dur_s", "arrow_cast(90, 'Duration(Second)')"),
        ("dur_us", "arrow_cast(-1500000, 'Duration(Microsecond)')"),
        ("dur_ns", "arrow_cast(2000001000, 'Duration(Nanosecond)')"),
        ("list", "make_array(1, NULL, 3)"),
        ("llist", "arrow_cast(make_array(1, 2), 'LargeList(Int64)')"),
        ("iv_list", "make_array(arrow_cast(60, 'Duration(Second)'), NULL)"),
        ("st", "named_struct('k', 1, 'v', 'x')"),
        ("st_iv", "named_struct('wait', INTERVAL '5 minutes')"),
        ("mp", "map(['a'], [1])"),
    ];
    let select = columns
        .iter()
        .map(|(name, value)| format!("CASE WHEN k = 1 THEN {value} END AS {name}"))
        .collect::<Vec<_>>()
        .join(",\n  ");
    p.write("sql/typed.sql", &format!("SELECT k,\n  {select}\nFROM (VALUES (1), (2)) AS t(k)\n"));
    assert_success(&p.dfpipe(&["run", "-q"]));

    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let is_null = names.iter().map(|n| format!("CAST({n} IS NULL AS VARCHAR)")).collect::<Vec<_>>().join(", ");
    assert_eq!(p.duckdb(&format!("SELECT {is_null} FROM typed WHERE k = 2"))[0], vec!["true"; names.len()]);
    let text = names.iter().map(|n| format!("CAST({n} AS VARCHAR)")).collect::<Vec<_>>().join(", ");
    let values = &p.duckdb(&format!("SELECT {text} FROM typed WHERE k = 1"))[0];
    let expected = [
        "true",
        "-8",
        "-16",
        "-32",
        "-64",
        "8",
        "16",
        "32",
        "64",
        "1.5",
        "2.5",
        "-0.25",
        "1234.56",
        "1234.56",
        "text",
        "large",
        "view",
        "dict",
        "abc",
        "ab",
        "2024-02-29",
        "2024-02-29",
        "2024-02-29 12:34:56",
        "2024-02-29 12:34:56.789",
        "2024-02-29 12:34:56.789012",
        "2024-02-29 12:34:56.789012345",
        "2024-02-29 12:34:56+00",
        "13:14:15",
        "13:14:15.123456",
        "1 month 2 days 00:00:03",
        "1 year 2 months",
        "2 days 00:00:00.001",
        "00:01:30",
        "-00:00:01.5",
        "00:00:02.000001",
        "[1, NULL, 3]",
        "[1, 2]",
        "['00:01:00', NULL]",
        "{'k': 1, 'v': x}",
        "{'wait': '00:05:00'}",
        "{a=1}",
    ];
    let got: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().map(String::as_str)).collect();
    let want: Vec<(&str, &str)> = names.iter().copied().zip(expected).collect();
    assert_eq!(got, want);
}

#[test]
fn a_model_ending_in_order_by_keeps_its_order_in_the_table() {
    // Unordered rows are inserted by DuckDB's threads at once; a model's ORDER BY is kept (a
    // scan of the table returns its rows in that order, as DuckDB's own CTAS would).
    let p = project("  - model: m\n  - model: sorted\n");
    p.write("raw.csv", &rows_csv(1..=200_000, "a"));
    p.write("sql/sorted.sql", "SELECT id, n FROM m ORDER BY n % 1000, n DESC\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT count(*) FROM m")), "BigInt(200000)");
    assert_eq!(one(p.duckdb("SELECT sum(n) FROM m")), "HugeInt(20000100000)");
    let stored = p.duckdb("SELECT n FROM sorted ORDER BY rowid");
    let mut expected: Vec<i64> = (1..=200_000).collect();
    expected.sort_by_key(|n| (n % 1000, -n));
    assert_eq!(stored.len(), expected.len());
    let out_of_order = stored.iter().zip(&expected).position(|(row, n)| row[0] != format!("Int({n})"));
    assert_eq!(out_of_order, None, "first row out of order: {:?}", out_of_order.map(|i| &stored[i]));
}

#[test]
fn every_partition_is_loaded_when_there_are_more_than_duckdb_threads() {
    // Seven files, seven partitions: DuckDB's threads (one per core) each insert their own
    // partitions, and read the ones beyond their number together, in turn.
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: t\nsources:\n  raw: { path: raw/*.csv }\ndatafusion: { execution.target_partitions: 7, \
         execution.batch_size: 1000 }\noutputs:\n  - model: m\n",
    );
    for f in 0..7u32 {
        p.write(&format!("raw/part{f}.csv"), &rows_csv(f * 10_000 + 1..=(f + 1) * 10_000, "a"));
    }
    p.write("sql/m.sql", "SELECT id, v FROM raw\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT count(*), count(DISTINCT id), sum(id), min(v), max(v) FROM m")[0],
        ["BigInt(70000)", "BigInt(70000)", "HugeInt(2450035000)", "a1", "a9999"]
    );
}

#[test]
fn plan_says_which_decimal_columns_duckdb_stores_as_128_bit_integers() {
    // DataFusion types a product of two DECIMAL(15,2) DECIMAL(38,4) (and an integer literal
    // DECIMAL(20,0)); a DECIMAL(18,2) column passes through; a Parquet target gets no note.
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: t\nsources:\n  raw: { path: raw.csv, schema: { price: \"DECIMAL(15,2)\", discount: \"DECIMAL(15,2)\", \
         total: \"DECIMAL(18,2)\" } }\noutputs:\n  - model: m\n  - { model: m, to: out/m.parquet }\n",
    );
    p.write("raw.csv", "price,discount,total\n10.50,0.10,9.45\n");
    p.write("sql/m.sql", "SELECT total, price * (1 - discount) AS \"Net Price\" FROM raw\n");
    let plan = stdout(&p.dfpipe(&["plan"]));
    let notes: Vec<&str> = plan.lines().filter(|l| l.starts_with("  note: ")).collect();
    assert_eq!(
        notes,
        ["  note: column `Net Price` is DECIMAL(38,4), which DuckDB stores as a 128-bit integer (twice the bytes \
          of DECIMAL(18,4), slower to write and to aggregate); if its values fit in 18 digits, CAST it in the \
          model: CAST(… AS DECIMAL(18,4)) AS \"Net Price\""],
        "{plan}"
    );
    // As the note says: with the CAST, the same value in an 18-digit column, and no note.
    p.write("sql/m.sql", "SELECT total, CAST(price * (1 - discount) AS DECIMAL(18,4)) AS \"Net Price\" FROM raw\n");
    assert!(!stdout(&p.dfpipe(&["plan"])).contains("note: "));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT typeof(\"Net Price\"), CAST(\"Net Price\" AS VARCHAR) FROM m")[0],
        ["DECIMAL(18,4)", "9.4500"]
    );
}

#[test]
fn a_union_is_written_in_the_type_its_branches_are_cast_to() {
    // DataFusion types a UNION by its first branch until its analyzer casts the branches to
    // their common type: the table was created from the first (BIGINT), cutting 10.75 to 10,
    // and text under an integer first branch became NULL. The Parquet output always had them.
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: t\nsources:\n  a: { path: a.csv }\n  b: { path: b.csv }\n  c: { path: c.csv }\noutputs:\n  \
         - model: ab\n  - model: ac\n  - { model: ab, to: out/ab.parquet }\n",
    );
    p.write("a.csv", "id,v\n1,10\n").write("b.csv", "id,v\n2,10.75\n").write("c.csv", "id,name\n3,x\n");
    p.write("sql/ab.sql", "SELECT id, v FROM a UNION ALL SELECT id, v FROM b\n");
    p.write("sql/ac.sql", "SELECT id FROM a UNION ALL SELECT name FROM c\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT id, v, typeof(v) FROM ab ORDER BY id"),
        [["BigInt(1)", "Double(10.0)", "DOUBLE"], ["BigInt(2)", "Double(10.75)", "DOUBLE"]]
    );
    assert_eq!(p.duckdb("SELECT id, typeof(id) FROM ac ORDER BY id"), [["1", "VARCHAR"], ["x", "VARCHAR"]]);
    let mut parquet: Vec<f64> = read_parquet(&p.file("out/ab.parquet"))
        .iter()
        .flat_map(|b| b.column_by_name("v").unwrap().as_primitive::<Float64Type>().values().to_vec())
        .collect();
    parquet.sort_by(f64::total_cmp);
    assert_eq!(parquet, [10.0, 10.75]);
    let shown = stdout(&p.dfpipe(&["schema", "show", "ab"]));
    assert!(shown.contains("  v   Float64\n"), "{shown}");
}
