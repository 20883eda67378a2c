//! The `dfpipe init` project, run end to end; results checked value by value against a
//! reference computed here, in plain Rust, from the generated source files.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Date32Type, Decimal128Type, Int32Type, Int64Type, TimestampMicrosecondType};

use crate::util::*;

fn cents(v: i128) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

fn date(days: i32) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days as i64)).to_string()
}

/// Non-cancelled orders from the generated Parquet files: (customer_id, day, quantity, cents).
fn orders(dir: &Path) -> Vec<(i32, i32, i64, i128)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir.join("data/orders")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 4);
    for file in files {
        for b in read_parquet(&file) {
            let customer = b.column_by_name("customer_id").unwrap().as_primitive::<Int32Type>().clone();
            let at = b.column_by_name("ordered_at").unwrap().as_primitive::<TimestampMicrosecondType>().clone();
            let status = b.column_by_name("status").unwrap().as_string::<i32>().clone();
            let qty = b.column_by_name("quantity").unwrap().as_primitive::<Int32Type>().clone();
            let amount = b.column_by_name("amount").unwrap().as_primitive::<Decimal128Type>().clone();
            for i in 0..b.num_rows() {
                if status.value(i) != "cancelled" {
                    let day = at.value(i).div_euclid(86_400_000_000) as i32;
                    out.push((customer.value(i), day, qty.value(i) as i64, amount.value(i)));
                }
            }
        }
    }
    out
}

fn expected_daily(dir: &Path) -> Vec<Vec<String>> {
    let mut days: BTreeMap<i32, (i64, i64, i128)> = BTreeMap::new();
    for (_, day, qty, amount) in orders(dir) {
        let e = days.entry(day).or_default();
        e.0 += 1;
        e.1 += qty;
        e.2 += amount;
    }
    days.into_iter().map(|(d, (n, q, a))| vec![date(d), n.to_string(), q.to_string(), cents(a)]).collect()
}

fn expected_customers(dir: &Path) -> Vec<Vec<String>> {
    let countries: BTreeMap<String, (String, String)> = std::fs::read_to_string(dir.join("data/countries.ndjson"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("code"), (s("name"), s("region")))
        })
        .collect();
    let customers: BTreeMap<i32, (String, String)> = std::fs::read_to_string(dir.join("data/customers.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let name = f[1].trim_matches('"').split_whitespace().collect::<Vec<_>>().join(" ");
            (f[0].parse().unwrap(), (name, f[3].to_string()))
        })
        .collect();
    let mut per: BTreeMap<i32, (i64, i128)> = BTreeMap::new();
    for (customer, _, _, amount) in orders(dir) {
        let e = per.entry(customer).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    per.into_iter()
        .map(|(id, (n, a))| {
            let (name, code) = &customers[&id];
            let (country, region) = &countries[code];
            vec![id.to_string(), name.clone(), country.clone(), region.clone(), n.to_string(), cents(a)]
        })
        .collect()
}

#[test]
fn init_then_run_writes_exact_results() {
    let p = Project::demo(20_000);
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    let summary = stdout(&out);
    assert!(summary.contains("3 of 3 targets written"), "{summary}");
    for target in ["warehouse.daily_revenue", "warehouse.customer_revenue", "out/daily_revenue.parquet"] {
        assert!(summary.contains(target), "summary lacks {target}:\n{summary}");
    }

    let daily = expected_daily(p.path());
    assert_eq!(daily.len(), 366);
    assert_eq!(
        p.duckdb("SELECT CAST(order_date AS VARCHAR), CAST(orders AS VARCHAR), CAST(items AS VARCHAR), CAST(revenue AS VARCHAR) FROM daily_revenue ORDER BY order_date"),
        daily
    );
    let mut parquet_rows: Vec<Vec<String>> = Vec::new();
    for b in read_parquet(&p.file("out/daily_revenue.parquet")) {
        let d = b.column(0).as_primitive::<Date32Type>().clone();
        let n = b.column(1).as_primitive::<Int64Type>().clone();
        let q = b.column(2).as_primitive::<Int64Type>().clone();
        let r = b.column(3).as_primitive::<Decimal128Type>().clone();
        assert_eq!(r.precision(), 22);
        for i in 0..b.num_rows() {
            parquet_rows.push(vec![
                date(d.value(i)),
                n.value(i).to_string(),
                q.value(i).to_string(),
                cents(r.value(i)),
            ]);
        }
    }
    parquet_rows.sort();
    assert_eq!(parquet_rows, daily);
    assert_eq!(
        p.duckdb("SELECT CAST(customer_id AS VARCHAR), customer_name, country, region, CAST(orders AS VARCHAR), CAST(revenue AS VARCHAR) FROM customer_revenue ORDER BY customer_id"),
        expected_customers(p.path())
    );

    // Pinned figures of the deterministic sample data: they change only if the generator does.
    assert_eq!(one(p.duckdb("SELECT CAST(sum(orders) AS VARCHAR) FROM daily_revenue")), PINNED_ORDERS);
    assert_eq!(one(p.duckdb("SELECT CAST(sum(revenue) AS VARCHAR) FROM daily_revenue")), PINNED_REVENUE);
    assert_eq!(
        p.duckdb("SELECT customer_name FROM customer_revenue WHERE customer_id IN (7, 8) ORDER BY customer_id"),
        vec![vec!["Customer 00007".to_string()], vec!["Customer 00008".to_string()]]
    );
    // Types as DuckDB sees them.
    assert_eq!(
        p.duckdb("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'daily_revenue' ORDER BY ordinal_position"),
        [["order_date", "DATE"], ["orders", "BIGINT"], ["items", "BIGINT"], ["revenue", "DECIMAL(22,2)"]]
            .map(|r| r.map(String::from).to_vec())
            .to_vec()
    );

    // The run results file.
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "success");
    assert_eq!(results["targets"].as_array().unwrap().len(), 3);
    let daily_result =
        results["targets"].as_array().unwrap().iter().find(|t| t["target"] == "warehouse.daily_revenue").unwrap();
    assert_eq!(daily_result["rows"], 366);
    assert_eq!(daily_result["status"], "success");
    assert_eq!(daily_result["mode"], "replace");

    // Running again replaces, never duplicates.
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT CAST(sum(orders) AS VARCHAR) FROM daily_revenue")), PINNED_ORDERS);
}

const PINNED_ORDERS: &str = "17983";
const PINNED_REVENUE: &str = "4508719.45";

#[test]
fn query_prints_table_csv_and_json() {
    let p = Project::demo(2_000);
    assert_success(&p.dfpipe(&["run", "-q", "-s", "daily_revenue"]));
    let sql = "SELECT order_date, orders FROM daily_revenue ORDER BY order_date LIMIT 2";
    let csv = p.dfpipe(&["query", "--format", "csv", sql]);
    assert_success(&csv);
    let expected: Vec<Vec<String>> = p.duckdb(sql);
    let lines: Vec<String> = stdout(&csv).lines().map(String::from).collect();
    assert_eq!(lines[0], "order_date,orders");
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("2024-01-01,"), "{lines:?}");
    let json = p.dfpipe(&["query", "-f", "json", "SELECT 1 AS one, 'x' AS two, NULL::INT AS three"]);
    assert_success(&json);
    assert_eq!(stdout(&json).trim(), r#"[{"one":1,"two":"x","three":null}]"#);
    // A HUGEINT of 39 digits comes from DuckDB as DECIMAL(38,0): printed whole, not a digit short.
    let huge = "SELECT 123456789012345678901234567890123456789::HUGEINT AS h, -170141183460469231731687303715884105727::HUGEINT AS m";
    let csv = p.dfpipe(&["query", "--format", "csv", huge]);
    assert_success(&csv);
    assert_eq!(stdout(&csv), "h,m\n123456789012345678901234567890123456789,-170141183460469231731687303715884105727\n");
    let table = p.dfpipe(&["query", "SELECT 42 AS answer"]);
    assert_success(&table);
    assert_eq!(stdout(&table).trim(), "+--------+\n| answer |\n+--------+\n| 42     |\n+--------+");
    assert_eq!(expected.len(), 2);

    let bad = p.dfpipe(&["query", "SELECT * FROM nowhere"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("Table with name nowhere does not exist!\ntables in "), "{}", stderr(&bad));
    assert!(stderr(&bad).ends_with("dfpipe.duckdb: daily_revenue\n"), "{}", stderr(&bad));
    assert_error(
        &p.dfpipe(&["query", " ;"]),
        2,
        "no SQL to run: pass a query, e.g. dfpipe query \"SELECT * FROM my_model LIMIT 10\"",
    );
}

#[test]
fn plan_shows_dag_memory_and_plans_without_writing() {
    let p = Project::demo(1_000);
    let out = p.dfpipe(&["plan", "--select", "+daily_revenue"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("  stg_orders (sql/stg_orders.sql) <- source orders\n"), "{text}");
    assert!(text.contains("  daily_revenue (sql/daily_revenue.sql) <- model stg_orders\n"), "{text}");
    assert!(text.contains("  datafusion: unbounded pool; spilling off; batch size 16384; "), "{text}");
    let limited = stdout(&p.dfpipe(&["plan", "--memory-limit", "256MiB"]));
    assert!(limited.contains("  budget: 256.0 MiB (memory.limit or --memory-limit)\n"), "{limited}");
    // A fixed limit bounds the process: the pool is what the process and DuckDB's share leave.
    assert!(limited.contains("  memory: limit 256.0 MiB = process "), "{limited}");
    assert!(limited.contains(" + DuckDB target 64.0 MiB + slack 25.6 MiB + DataFusion pool "), "{limited}");
    assert!(limited.contains("; estimate / budget = 0.00 → strategy in_memory"), "{limited}");
    let bad = p.dfpipe(&["plan", "--memory-limit", "lots"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("`lots` is not a size; write e.g. 512MiB or 4GiB"), "{}", stderr(&bad));
    assert!(text.contains("target warehouse.daily_revenue <- model daily_revenue (mode replace)"), "{text}");
    assert!(text.contains("Aggregate: groupBy="), "{text}");
    assert!(!text.contains("target warehouse.customer_revenue"), "{text}");
    assert!(!p.file("dfpipe.duckdb").exists(), "plan must not write");
}

#[test]
fn selection_follows_dbt_syntax() {
    let p = Project::demo(1_000);
    let targets = |args: &[&str]| -> Vec<String> {
        let out = p.dfpipe(args);
        assert_success(&out);
        stdout(&out)
            .lines()
            .filter_map(|l| l.strip_prefix("target "))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(targets(&["plan", "-s", "customer_revenue"]), ["warehouse.customer_revenue"]);
    assert_eq!(
        targets(&["plan", "-s", "stg_orders+"]),
        ["warehouse.customer_revenue", "warehouse.daily_revenue", "out/daily_revenue.parquet"]
    );
    assert_eq!(targets(&["plan", "-s", "stg_orders+", "--exclude", "daily_revenue"]), ["warehouse.customer_revenue"]);
    let out = p.dfpipe(&["plan", "-s", "daily_revenu"]);
    assert_error(&out, 2, "selector `daily_revenu`: no model named `daily_revenu` (did you mean `daily_revenue`?)");
}

#[test]
fn init_refuses_to_overwrite_a_project() {
    let p = Project::demo(100);
    let out = p.dfpipe(&["init", "."]);
    assert_error(
        &out,
        2,
        "./dfpipe.yml already exists; dfpipe init will not overwrite a project (pass --force to replace the demo files)",
    );
}

#[test]
fn hive_partitioned_directories_are_read_with_their_partitions() {
    let p = Project::demo(4_000);
    for (i, year) in [(0, 2024), (1, 2025)] {
        let dir = p.file(&format!("data/hive/year={year}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(p.file(&format!("data/orders/orders-{i}.parquet")), dir.join("part.parquet")).unwrap();
    }
    std::fs::write(p.file("data/hive/_SUCCESS"), "").unwrap();
    p.write("dfpipe.yml", "name: hive\nsources:\n  orders: { path: data/hive }\n");
    std::fs::remove_dir_all(p.file("sql")).unwrap();
    p.write("sql/by_year.sql", "SELECT year, count(*) AS n FROM orders GROUP BY year\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT year, CAST(n AS VARCHAR) FROM by_year ORDER BY year"),
        vec![vec!["2024".to_string(), "1000".to_string()], vec!["2025".to_string(), "1000".to_string()]]
    );
}

#[test]
fn a_reader_that_closes_the_pipe_does_not_stop_the_run() {
    // `dfpipe run 2>&1 | head -0`: writing the summary failed with a broken pipe and panicked
    // (exit 101) after the targets were written, so the run was never recorded as finished.
    let p = Project::demo(50);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dfpipe"))
        .arg("run")
        .current_dir(p.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "success");
    let runs = stdout(&p.dfpipe(&["runs"]));
    assert!(runs.contains("success") && !runs.contains("running") && !runs.contains("crashed"), "{runs}");
}
