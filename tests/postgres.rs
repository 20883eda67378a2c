//! PostgreSQL targets against a real server (see `pg.rs`): types, modes, atomicity, secrets.

use crate::pg;
use crate::util::*;

fn project(schema: &str, mode: &str) -> Project {
    project_with_streams(schema, mode, 2)
}

fn project_with_streams(schema: &str, mode: &str, streams: usize) -> Project {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: t\nsources:\n  raw: {{ path: raw.csv, schema: {{ v: VARCHAR }} }}\n\
             connections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\", copy_streams: {streams} }}\n\
             datafusion: {{ execution.batch_size: 1000 }}\n\
             outputs:\n  - model: m\n    to: pg\n    table: {schema}.m\n    {mode}\n"
        ),
    );
    p.write("sql/m.sql", "SELECT id, v, CAST(id AS DECIMAL(12,2)) / 4 AS amount FROM raw\n");
    p
}

fn run(p: &Project, args: &[&str]) -> std::process::Output {
    p.dfpipe_env(args, &[("DFPIPE_PG", pg::database_url())])
}

fn csv(range: std::ops::RangeInclusive<u32>, tag: &str) -> String {
    let mut s = String::from("id,v\n");
    for i in range {
        s.push_str(&format!("{i},{tag}{i}\n"));
    }
    s
}

#[test]
fn types_round_trip_exactly() {
    let schema = pg::schema("t_types");
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!("name: t\nconnections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\noutputs:\n  - model: typed\n    to: pg\n    table: {schema}.typed\n"),
    );
    p.write(
        "sql/typed.sql",
        "SELECT * FROM (VALUES
            (true, CAST(-8 AS TINYINT), CAST(-16 AS SMALLINT), CAST(-2147483648 AS INT), CAST(9223372036854775807 AS BIGINT),
             CAST(255 AS TINYINT UNSIGNED), CAST(65535 AS SMALLINT UNSIGNED), CAST(4294967295 AS INT UNSIGNED),
             CAST(18446744073709551615 AS BIGINT UNSIGNED),
             CAST('NaN' AS FLOAT), CAST('-Infinity' AS DOUBLE), CAST(-0.0 AS DOUBLE),
             CAST('-12345678901234567890123456.789012345678' AS DECIMAL(38,12)), CAST('0.00' AS DECIMAL(5,2)),
             'héllo ✓', arrow_cast('view', 'Utf8View'), arrow_cast('dict', 'Dictionary(Int32, Utf8)'), decode('00ff', 'hex'),
             DATE '0001-01-01', TIMESTAMP '1999-12-31 23:59:59.999999',
             arrow_cast(TIMESTAMP '2024-02-29 12:34:56.123456789', 'Timestamp(Nanosecond, Some(\"UTC\"))'),
             CAST('23:59:59.999999' AS TIME), CAST(NULL AS INT)),
            (false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, CAST('Infinity' AS FLOAT), NULL, NULL,
             CAST('99999999999999999999999999.999999999999' AS DECIMAL(38,12)), NULL, NULL, NULL, NULL, NULL,
             DATE '2000-01-01', NULL, NULL, NULL, NULL)
         ) AS t(b, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, negzero, dec, dec0, s, sv, sd, bin, d, ts, tstz, tm, nul)\n",
    );
    assert_success(&run(&p, &["run", "-q"]));
    let types = pg::query(&format!(
        "SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute \
         WHERE attrelid = '{schema}.typed'::regclass AND attnum > 0"
    ));
    assert_eq!(
        types[0][0],
        "boolean, smallint, smallint, integer, bigint, smallint, integer, bigint, numeric(20,0), real, double precision, \
         double precision, numeric(38,12), numeric(5,2), text, text, text, bytea, date, timestamp without time zone, \
         timestamp with time zone, time without time zone, integer"
    );
    let rows = pg::query(&format!(
        "SET TimeZone = 'UTC'; SELECT b::text, i8::text, i16::text, i32::text, i64::text, u8::text, u16::text, u32::text, u64::text, \
         f32::text, f64::text, negzero::text, dec::text, dec0::text, s, sv, sd, bin::text, d::text, ts::text, tstz::text, tm::text, nul::text \
         FROM {schema}.typed ORDER BY b DESC"
    ));
    assert_eq!(
        rows[0],
        [
            "true",
            "-8",
            "-16",
            "-2147483648",
            "9223372036854775807",
            "255",
            "65535",
            "4294967295",
            "18446744073709551615",
            "NaN",
            "-Infinity",
            "-0",
            "-12345678901234567890123456.789012345678",
            "0.00",
            "héllo ✓",
            "view",
            "dict",
            "\\x00ff",
            "0001-01-01",
            "1999-12-31 23:59:59.999999",
            "2024-02-29 12:34:56.123456+00",
            "23:59:59.999999",
            "NULL"
        ]
    );
    assert_eq!(rows[1][9], "Infinity");
    assert_eq!(rows[1][12], "99999999999999999999999999.999999999999");
    assert_eq!(rows[1][18], "2000-01-01");
}

#[test]
fn nested_and_interval_types_round_trip() {
    let schema = pg::schema("t_nested");
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!("name: t\nconnections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\noutputs:\n  - model: nested\n    to: pg\n    table: {schema}.nested\n"),
    );
    p.write(
        "sql/nested.sql",
        "SELECT make_array(1, 2, NULL) AS ints, make_array('a', 'b\"c') AS texts, named_struct('k', 1, 'v', 'x') AS st,
                INTERVAL '1 month 2 days 3 hours' AS iv, arrow_cast(1500, 'Duration(Millisecond)') AS dur,
                map(['a', 'b'], [1, 2]) AS m\n",
    );
    assert_success(&run(&p, &["run", "-q"]));
    assert_eq!(
        pg::query(&format!(
            "SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute \
             WHERE attrelid = '{schema}.nested'::regclass AND attnum > 0"
        )),
        [["bigint[], text[], jsonb, interval, interval, jsonb"]]
    );
    assert_eq!(
        pg::query(&format!(
            "SELECT ints::text, texts::text, st::text, iv::text, dur::text, m::text FROM {schema}.nested"
        )),
        [[
            "{1,2,NULL}",
            "{a,\"b\\\"c\"}",
            "{\"k\": 1, \"v\": \"x\"}",
            "1 mon 2 days 03:00:00",
            "00:00:01.5",
            "{\"a\": 1, \"b\": 2}"
        ]]
    );
}

#[test]
fn modes_replace_append_merge() {
    let schema = pg::schema("t_modes");
    // One COPY stream here; the other replace tests use two.
    let p = project_with_streams(&schema, "mode: replace", 1);
    p.write("raw.csv", &csv(1..=2500, "a"));
    let checksum = || pg::query(&format!("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM {schema}.m AS t"));
    assert_success(&run(&p, &["run", "-q"]));
    let first = checksum();
    // Rerunning the same pipeline gives the identical table, also through two COPY streams.
    assert_success(&run(&p, &["run", "-q"]));
    assert_eq!(checksum(), first);
    let parallel = project(&schema, "mode: replace");
    parallel.write("raw.csv", &csv(1..=2500, "a"));
    assert_success(&run(&parallel, &["run", "-q"]));
    assert_eq!(checksum(), first);
    let count =
        |p: &str| pg::query(&format!("SELECT count(*)::text, (sum(amount) = 781562.5)::text FROM {schema}.m{p}"));
    assert_eq!(count(""), [["2500", "true"]]);

    let p = project(&schema, "mode: append");
    p.write("raw.csv", &csv(2501..=3000, "b"));
    assert_success(&run(&p, &["run", "-q"]));
    assert_eq!(count("")[0][0], "3000");

    let p = project(&schema, "mode: merge\n    unique_key: id");
    p.write("raw.csv", &csv(2901..=3100, "c"));
    assert_success(&run(&p, &["run", "-q"]));
    assert_eq!(
        pg::query(&format!(
            "SELECT count(*)::text, count(*) FILTER (WHERE v LIKE 'c%')::text, count(DISTINCT id)::text FROM {schema}.m"
        )),
        [["3100", "200", "3100"]]
    );
    p.write("raw.csv", "id,v\n5,x\n5,y\n");
    let out = run(&p, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("merge key (id) is not unique in the new rows: (5) appears more than once"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pg::query(&format!("SELECT v FROM {schema}.m WHERE id = 5")), [["a5"]]);
}

#[test]
fn a_bad_value_late_in_the_load_leaves_the_old_table() {
    let schema = pg::schema("t_atomic");
    let p = project(&schema, "mode: replace");
    // One partition: rows reach the sink in file order, so the row number is the file's.
    let config = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap();
    p.write(
        "dfpipe.yml",
        &config.replace("execution.batch_size: 1000", "execution.batch_size: 1000, execution.target_partitions: 1"),
    );
    p.write("raw.csv", &csv(1..=100, "a"));
    assert_success(&run(&p, &["run", "-q"]));
    let mut data = csv(1..=20_000, "b");
    data.push_str("20001,\"bad\u{0}text\"\n");
    p.write("raw.csv", &data);
    let out = run(&p, &["run"]);
    assert_error(
        &out,
        1,
        &format!(
            "pg.{schema}.m (model `m`): PostgreSQL {schema}.m: column `v`, row 20001: text contains a NUL byte (\\0), which PostgreSQL text cannot hold"
        ),
    );
    assert_eq!(pg::query(&format!("SELECT count(*)::text, min(v), max(v) FROM {schema}.m")), [["100", "a1", "a99"]]);
    assert_eq!(pg::query(&format!("SELECT count(*)::text FROM pg_tables WHERE schemaname = '{schema}'")), [["1"]]);
}

#[test]
fn appending_casts_to_the_existing_column_types() {
    let schema = pg::schema("t_existing");
    pg::query(&format!(
        "CREATE TABLE {schema}.m (id bigint, v varchar(10), amount numeric(9,3), note text DEFAULT 'kept', \
         half smallint, neg integer, f4 bigint, quarter integer)"
    ));
    let p = project(&schema, "mode: append");
    // Fractions into integer columns round as PostgreSQL's own casts do: a float to the nearest,
    // halves to even (`rint`); a numeric half away from zero. Never truncated.
    p.write(
        "sql/m.sql",
        "SELECT id, v, CAST(id AS DECIMAL(12,2)) / 4 AS amount, CAST(id AS DOUBLE) / 2 AS half, \
         -CAST(id AS DOUBLE) / 2 AS neg, CAST(CAST(id AS DOUBLE) / 2 AS FLOAT) AS f4, \
         CAST(id AS DECIMAL(12,2)) / 4 AS quarter FROM raw\n",
    );
    p.write("raw.csv", &csv(1..=10, "a"));
    assert_success(&run(&p, &["run", "-q"]));
    assert_eq!(
        pg::query(&format!(
            "SELECT count(*)::text, sum(amount)::text, min(note), string_agg(half::text, ',' ORDER BY id), \
                    string_agg(neg::text, ',' ORDER BY id), string_agg(f4::text, ',' ORDER BY id), \
                    string_agg(quarter::text, ',' ORDER BY id), \
                    bool_and(half = (id::float8 / 2)::smallint AND neg = (-id::float8 / 2)::integer \
                             AND f4 = (id::float4 / 2)::bigint AND quarter = (id::numeric / 4)::integer)::text \
             FROM {schema}.m"
        )),
        [[
            "10",
            "13.750",
            "kept",
            "0,1,2,2,2,3,4,4,4,5",
            "0,-1,-2,-2,-2,-3,-4,-4,-4,-5",
            "0,1,2,2,2,3,4,4,4,5",
            "0,1,1,1,1,2,2,2,2,3",
            "true"
        ]]
    );
    // A value that rounds out of the column's range fails the load, naming the column and value.
    let model = std::fs::read_to_string(p.file("sql/m.sql")).unwrap();
    p.write("sql/m.sql", &model.replace("CAST(id AS DOUBLE) / 2 AS half", "CAST(id AS DOUBLE) + 32766.5 AS half"));
    assert_error(
        &run(&p, &["run"]),
        1,
        &format!(
            "pg.{schema}.m (model `m`): PostgreSQL {schema}.m: column `half` (rows 1..): cannot convert Float64 to the table's type: Cast error: value 32767.5 is out of range for Int16"
        ),
    );
    assert_eq!(pg::query(&format!("SELECT count(*)::text FROM {schema}.m")), [["10"]]);
}

#[test]
fn appending_into_types_with_modifiers_and_arrays_of_them() {
    let schema = pg::schema("t_typmods");
    pg::query(&format!(
        "CREATE TABLE {schema}.m (id bigint, ts3 timestamp(3) without time zone, tz0 timestamp(0) with time zone, \
         t2 time(2), amounts numeric(10,2)[], tags character varying(20)[], codes character(3)[], \
         months interval year to month)"
    ));
    let p = project(&schema, "mode: append");
    p.write(
        "sql/m.sql",
        "SELECT id, TIMESTAMP '2024-01-02 03:04:05.123456' AS ts3, \
         arrow_cast(TIMESTAMP '2024-01-02 03:04:05.6', 'Timestamp(Microsecond, Some(\"UTC\"))') AS tz0, \
         CAST('10:11:12.345678' AS TIME) AS t2, make_array(CAST(id AS DOUBLE) / 4, 2.5) AS amounts, \
         make_array(v, 'x') AS tags, make_array('ab', v) AS codes, INTERVAL '14 months' AS months FROM raw\n",
    );
    p.write("raw.csv", &csv(1..=2, "a"));
    assert_success(&run(&p, &["run", "-q"]));
    assert_eq!(
        pg::query(&format!(
            "SELECT id::text, ts3::text, (tz0 AT TIME ZONE 'UTC')::text, t2::text, amounts::text, tags::text, \
                    codes::text, months::text FROM {schema}.m ORDER BY id"
        )),
        [
            [
                "1",
                "2024-01-02 03:04:05.123",
                "2024-01-02 03:04:06",
                "10:11:12.35",
                "{0.25,2.50}",
                "{a1,x}",
                "{\"ab \",\"a1 \"}",
                "1 year 2 mons"
            ],
            [
                "2",
                "2024-01-02 03:04:05.123",
                "2024-01-02 03:04:06",
                "10:11:12.35",
                "{0.50,2.50}",
                "{a2,x}",
                "{\"ab \",\"a2 \"}",
                "1 year 2 mons"
            ]
        ]
    );
}

#[test]
fn passwords_never_show() {
    // Plain, with URL-reserved characters (the parser would take a tail for the host), and
    // percent-encoded as the README says.
    for (password, in_dsn, fragments) in [
        ("hunter2-secret", "hunter2-secret", vec!["hunter2"]),
        ("S3cretHead@S3cretTail", "S3cretHead@S3cretTail", vec!["S3cretHead", "S3cretTail"]),
        ("Pa:ss/W0rd?x#Frag", "Pa:ss/W0rd?x#Frag", vec!["W0rd", "Frag"]),
        ("S3cretHead@S3cretTail", "S3cretHead%40S3cretTail", vec!["S3cretHead", "S3cretTail"]),
    ] {
        let p = Project::new();
        p.write(
            "dfpipe.yml",
            "name: t\nconnections:\n  pg: { kind: postgres, dsn: \"postgres://someone:${PGSECRET}@127.0.0.1:1/x?connect_timeout=1\" }\noutputs:\n  - model: m\n    to: pg\n",
        );
        p.write("sql/m.sql", "SELECT 1 AS x\n");
        let env = [("PGSECRET", in_dsn)];
        let plan = p.dfpipe_env(&["plan", "-vv"], &env);
        let out = p.dfpipe_env(&["run", "-vv"], &env);
        let json = p.dfpipe_env(&["run", "--log-format", "json", "-vv"], &env);
        // A string that does not read is refused before the targets run (exit 2); one that reads
        // fails its target when it cannot connect (exit 1). The run is recorded either way.
        let unreadable = stderr(&out).contains("error: connection `pg`: the PostgreSQL connection string");
        assert_eq!(out.status.code(), Some(if unreadable { 2 } else { 1 }), "{}", stderr(&out));
        let results = std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap();
        let catalog = duckdb_rows(
            &p.file(".dfpipe/catalog.duckdb"),
            "SELECT coalesce(error, '') FROM runs UNION ALL SELECT coalesce(error, '') FROM targets",
        )
        .concat()
        .join("\n");
        let runs = stdout(&p.dfpipe(&["runs", "--format", "json"]));
        for text in [stdout(&plan), stderr(&plan), stdout(&out), stderr(&out), stderr(&json), results, catalog, runs] {
            for fragment in fragments.iter().chain([&password]) {
                assert!(!text.contains(fragment), "the password {password:?} leaked ({fragment}):\n{text}");
            }
        }
        let err = stderr(&out);
        assert!(
            err.contains("cannot connect to PostgreSQL") || err.contains("the PostgreSQL connection string"),
            "{err}"
        );
    }
}

#[test]
fn a_server_that_accepts_and_never_answers_times_out() {
    // The kernel completes the TCP handshake for a listener that never accepts: the startup
    // message then gets no answer, which tokio-postgres alone would wait for forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: t\nconnections:\n  pg: {{ kind: postgres, dsn: \"postgres://someone@127.0.0.1:{port}/x?connect_timeout=1\" }}\n\
             outputs:\n  - model: m\n    to: pg\n"
        ),
    );
    p.write("sql/m.sql", "SELECT 1 AS x\n");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dfpipe"))
        .args(["run", "-q"])
        .current_dir(p.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("dfpipe hung on a server that never answers");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1 port {port} after 5 attempt(s): no answer within 1s \
             (connect_timeout in the DSN, or PGCONNECT_TIMEOUT)"
        )),
        "{}",
        stderr(&out)
    );
    drop(silent);
}

#[test]
fn too_many_connections_is_retried_until_a_slot_frees() {
    let schema = pg::schema("t_conn_limit");
    pg::query(&format!(
        "DO $$ BEGIN CREATE ROLE dfpipe_limited LOGIN CONNECTION LIMIT 1; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
         DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO dfpipe_limited', current_database()); END $$; \
         GRANT ALL ON SCHEMA {schema} TO dfpipe_limited"
    ));
    let url = format!("{} user=dfpipe_limited", pg::key_value_url(pg::database_url()));
    let holder = pg::hold_open_transaction_at(&url, "SELECT 1");
    let p = generated_with(&schema, 1000, "copy_streams: 1");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dfpipe"))
        .args(["run"])
        .current_dir(p.path())
        .env("DFPIPE_PG", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Release the slot only once dfpipe has been refused and said it retries.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("dfpipe ended before it was refused").unwrap();
        seen.push(line.clone());
        if line.contains("cannot connect to PostgreSQL (attempt 1 of 5)") {
            assert!(line.contains("too many connections for role"), "{line}");
            break;
        }
    }
    drop(holder);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success(), "{}\n{}", seen.join("\n"), rest.join("\n"));
    assert_eq!(pg::query(&format!("SELECT count(*)::text FROM {schema}.big")), [["1000"]]);
}

/// A project whose model generates `rows` rows (no source files), written to `schema.big`.
fn generated(schema: &str, rows: u32) -> Project {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!("name: t\nconnections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\noutputs:\n  - model: big\n    to: pg\n    table: {schema}.big\n"),
    );
    p.write(
        "sql/big.sql",
        &format!("SELECT value AS id, concat('row ', value) AS label FROM generate_series(1, {rows})\n"),
    );
    p
}

/// [`generated`] with the connection's extra settings `settings` (e.g. `copy_streams: 2`).
fn generated_with(schema: &str, rows: u32, settings: &str) -> Project {
    let p = generated(schema, rows);
    let yml = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap();
    p.write("dfpipe.yml", &yml.replace("dsn: \"${DFPIPE_PG}\" }", &format!("dsn: \"${{DFPIPE_PG}}\", {settings} }}")));
    p
}

/// Polls `done` every 20 ms for up to a minute.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn hidden_tables(schema: &str) -> Vec<Vec<String>> {
    pg::query(&format!(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = '{schema}' AND tablename LIKE '\\_\\_dfpipe%'"
    ))
}

#[test]
fn replace_behind_a_long_reader_waits_without_blocking_new_readers_then_names_it() {
    let schema = pg::schema("t_swap_wait");
    for streams in [1, 2] {
        let p = generated_with(&schema, 100, &format!("copy_streams: {streams}, swap_timeout: 3s"));
        assert_success(&run(&p, &["run", "-q"]));
        let reader = pg::hold_open_transaction("dfpipe-test-reader", &format!("SELECT count(*) FROM {schema}.big"));
        let p = generated_with(&schema, 5000, &format!("copy_streams: {streams}, swap_timeout: 3s"));
        let mut child = spawn_run(&p);
        // While the swap waits, new readers still read the old table at once.
        let mut reads = 0;
        while child.try_wait().unwrap().is_none() {
            let count = pg::query(&format!("SET statement_timeout = '2s'; SELECT count(*)::text FROM {schema}.big"));
            assert_eq!(count, [["100"]]);
            reads += 1;
        }
        let out = child.wait_with_output().unwrap();
        assert!(reads > 3, "the run ended before readers could try: {}", stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        let reader_pid =
            pg::query("SELECT pid::text FROM pg_stat_activity WHERE application_name = 'dfpipe-test-reader'")[0][0]
                .clone();
        assert!(
            err.contains(&format!(
                "could not swap in the new table within swap_timeout (3s): pid {reader_pid} (application 'dfpipe-test-reader', idle in transaction since "
            )) && err.contains("held the table; it keeps its previous contents. End those sessions, or raise `swap_timeout` on the connection"),
            "{err}"
        );
        drop(reader);
        assert_eq!(pg::query(&format!("SELECT count(*)::text FROM {schema}.big")), [["100"]]);
        assert_eq!(hidden_tables(&schema), Vec::<Vec<String>>::new());
    }
}

#[test]
fn two_writers_of_one_table_take_turns() {
    let schema = pg::schema("t_two_writers");
    let first = generated_with(&schema, 3000, "copy_streams: 2");
    let (first_run, pause) = first.spawn_paused_mid_load(&[("DFPIPE_PG", pg::database_url())]);
    let second = generated_with(&schema, 7000, "copy_streams: 2");
    let second_run = spawn_run(&second);
    // The second writer waits for the first one's lock (it does not touch its hidden table).
    wait_for("the second writer to wait", || {
        pg::query("SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") != [["0"]]
    });
    std::fs::remove_file(pause).unwrap();
    let first_out = first_run.wait_with_output().unwrap();
    assert_success(&first_out);
    assert_success(&second_run.wait_with_output().unwrap());
    assert_eq!(pg::query(&format!("SELECT count(*)::text, max(id)::text FROM {schema}.big")), [["7000", "7000"]]);
    assert_eq!(hidden_tables(&schema), Vec::<Vec<String>>::new());
}

#[test]
fn a_killed_parallel_replace_leaves_a_hidden_table_the_next_run_removes() {
    let schema = pg::schema("t_dead_writer");
    let p = generated_with(&schema, 100, "copy_streams: 2");
    assert_success(&run(&p, &["run", "-q"]));
    let p = generated_with(&schema, 5000, "copy_streams: 2");
    let (mut child, _pause) = p.spawn_paused_mid_load(&[("DFPIPE_PG", pg::database_url())]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(hidden_tables(&schema).len(), 1, "the parallel replace commits its hidden table first");
    assert_eq!(pg::query(&format!("SELECT count(*)::text FROM {schema}.big")), [["100"]]);
    std::fs::remove_file(p.file("paused")).unwrap();
    // The killed run's backends may still hold their locks for a moment; the next run waits.
    assert_success(&run(&p, &["run", "-q"]));
    assert_eq!(pg::query(&format!("SELECT count(*)::text FROM {schema}.big")), [["5000"]]);
    assert_eq!(hidden_tables(&schema), Vec::<Vec<String>>::new());
}

fn spawn_run(p: &Project) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_dfpipe"))
        .args(["run", "-q"])
        .current_dir(p.path())
        .env("DFPIPE_PG", pg::database_url())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_backend_killed_mid_copy_leaves_the_old_table() {
    let schema = pg::schema("t_killed");
    pg::query(&format!(
        "CREATE TABLE {schema}.big AS SELECT g::bigint AS id, 'old' AS label FROM generate_series(1, 100) g"
    ));
    let p = generated(&schema, 3_000_000);
    let child = spawn_run(&p);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let killed = loop {
        // Only this test's COPY: other tests load into the same server at the same time.
        let rows = pg::query(&format!(
            "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity WHERE application_name = 'dfpipe' AND query LIKE 'COPY \"{schema}\".%'"
        ));
        if !rows.is_empty() {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert!(killed, "never saw the COPY running; stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        // The server's FATAL message may or may not outrun the TCP reset; either way the cause is named.
        stderr(&out).contains(&format!("error: pg.{schema}.big (model `big`): PostgreSQL {schema}.big: the server closed the connection, so nothing was committed: ")),
        "{}",
        stderr(&out)
    );
    assert_eq!(pg::query(&format!("SELECT count(*)::text, min(label) FROM {schema}.big")), [["100", "old"]]);
}

#[test]
fn readers_see_the_old_table_or_the_new_one_during_replace() {
    let schema = pg::schema("t_readers");
    let p = generated(&schema, 100);
    assert_success(&p.dfpipe_env(&["run", "-q"], &[("DFPIPE_PG", pg::database_url())]));
    let p = generated(&schema, 400_000);
    let mut child = spawn_run(&p);
    let mut seen = std::collections::BTreeSet::new();
    while child.try_wait().unwrap().is_none() {
        seen.insert(pg::query(&format!("SELECT count(*)::text FROM {schema}.big"))[0][0].clone());
    }
    assert!(child.wait().unwrap().success());
    seen.insert(pg::query(&format!("SELECT count(*)::text FROM {schema}.big"))[0][0].clone());
    assert!(seen.iter().all(|c| c == "100" || c == "400000"), "a reader saw a partial table: {seen:?}");
    assert!(seen.contains("400000"));
}

#[test]
fn values_postgres_cannot_hold_stop_the_load_by_column_and_row() {
    let schema = pg::schema("t_limits");
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: t\nconnections:\n  pg: {{ kind: postgres, dsn: \"${{DFPIPE_PG}}\" }}\noutputs:\n  - model: dates\n    to: pg\n    table: {schema}.dates\n\
             \n  - model: amounts\n    to: pg\n    table: {schema}.amounts\n    mode: append\n"
        ),
    );
    p.write(
        "sql/dates.sql",
        "SELECT * FROM (VALUES (arrow_cast(1, 'Date32')), (arrow_cast(2147483000, 'Date32'))) AS t(d)\n",
    );
    p.write("sql/amounts.sql", "SELECT CAST(12345.67 AS DECIMAL(7,2)) AS amount\n");
    pg::query(&format!("CREATE TABLE {schema}.amounts (amount numeric(5,2))"));
    let out = run(&p, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: pg.{schema}.dates (model `dates`): PostgreSQL {schema}.dates: column `d`, row 2: date 2147483000 days from 1970-01-01 is outside PostgreSQL's date range"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "error: pg.{schema}.amounts (model `amounts`): PostgreSQL {schema}.amounts: column `amount` (rows 1..): cannot convert Decimal128(7, 2) to the table's type: "
        )),
        "{err}"
    );
    assert!(err.contains("too large to store in a Decimal128 of precision 5"), "{err}");
    assert_eq!(
        pg::query(&format!("SELECT to_regclass('{schema}.dates') IS NULL, (SELECT count(*) FROM {schema}.amounts)")),
        [["t", "0"]]
    );
}

#[test]
fn merge_into_a_new_table_checks_the_key() {
    let schema = pg::schema("t_merge_new");
    let p = project(&schema, "mode: merge\n    unique_key: id");
    p.write("raw.csv", "id,v\n1,a\n2,b\n2,c\n");
    let out = run(&p, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("merge key (id) is not unique in the new rows: (2) appears more than once"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pg::query(&format!("SELECT (to_regclass('{schema}.m') IS NULL)::text")), [["true"]]);
    // Two NULL keys are NULL keys, not a duplicate `()`.
    p.write("raw.csv", "id,v\n1,a\n,b\n,c\n");
    let out = run(&p, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("merge key (id) is NULL in 2 new row(s)"), "{}", stderr(&out));
}

#[test]
fn merge_into_a_large_keyed_table_updates_and_inserts() {
    // Over ten times the new rows and a primary key: the delete probes the index.
    let schema = pg::schema("t_merge_probe");
    pg::query(&format!(
        "CREATE TABLE {schema}.m (id bigint PRIMARY KEY, v text, amount numeric(12,2)); \
         INSERT INTO {schema}.m SELECT g, 'old' || g, g FROM generate_series(1, 2000) g; ANALYZE {schema}.m"
    ));
    let p = project(&schema, "mode: merge\n    unique_key: id");
    p.write("raw.csv", &csv(1951..=2050, "new"));
    assert_success(&run(&p, &["run", "-q"]));
    assert_eq!(
        pg::query(&format!(
            "SELECT count(*)::text, count(*) FILTER (WHERE v LIKE 'new%')::text, min(v) FILTER (WHERE id = 1950), \
             min(v) FILTER (WHERE id = 1951), max(id)::text FROM {schema}.m"
        )),
        [["2050", "100", "old1950", "new1951", "2050"]]
    );
}

#[test]
fn a_search_path_that_names_no_schema_is_an_error_saying_so() {
    // current_schema() is NULL when no schema of the search_path exists; reading it as text
    // panicked (exit 101) and left the run unrecorded.
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: t\nconnections:\n  pg: { kind: postgres, dsn: \"${DFPIPE_PG}\" }\noutputs:\n  - { model: m, to: pg }\n",
    );
    p.write("sql/m.sql", "SELECT 1 AS id\n");
    let dsn = format!("{} options='-c search_path=dfpipe_no_such_schema'", pg::key_value_url(pg::database_url()));
    let out = p.dfpipe_env(&["run"], &[("DFPIPE_PG", &dsn)]);
    assert_error(
        &out,
        1,
        "pg.m (model `m`): PostgreSQL m: the connection's search_path (dfpipe_no_such_schema) names no schema that exists, so table m has no \
         schema to go in: create the schema, set a search_path that names one, or write the schema in the \
         output's table (schema.table)",
    );
}
