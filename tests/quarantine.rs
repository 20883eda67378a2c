//! `on_invalid: drop | quarantine`: rows failing the model's row-level tests are kept out of the
//! target, counted, and (quarantine) kept with the test, the column and the reason; a value
//! that does not cast (`castable`) is one such failure.

use crate::util::*;

const ORDERS: &str = "order_id,customer_id,status,amount,email,ordered_at,shipped_at,qty
1,10,new,5.0,a@b.c,2026-11-01,2026-11-02,1
2,11,paid,-1.0,bad,2026-11-03,2026-11-01,2
3,,lost,3.0,x@y.z,2026-11-01,2026-11-02,3
4,12,shipped,7.5,q@r.s,2026-11-01,2026-11-05,x4
5,13,paid,2.0,t@u.v,2026-11-04,,5
";

fn project() -> Project {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: q
sources:
  orders: { path: orders.csv }
outputs:
  - { model: m, on_invalid: quarantine }
  - { model: m, to: out/m.parquet, on_invalid: drop }
  - { model: m, to: out/q.parquet, on_invalid: quarantine }
tests:
  m:
    - not_null: [order_id, customer_id]
    - accepted_values: { column: status, values: [new, paid, shipped] }
    - range: { column: amount, min: 0 }
    - regex: { column: email, pattern: \"^[^@]+@[^@]+$\" }
    - expression: \"shipped_at >= ordered_at\"
    - castable: { column: qty, type: int }
    - unique: order_id
",
    );
    p.write("sql/m.sql", "SELECT * FROM orders\n");
    p.write("orders.csv", ORDERS);
    p
}

#[test]
fn failing_rows_are_quarantined_or_dropped_and_every_row_is_counted() {
    let p = project();
    let out = p.dfpipe(&["run"]);
    assert_success(&out);

    // Valid rows load (row 5's NULL shipped_at passes the expression: NULL is not false).
    assert_eq!(p.duckdb("SELECT order_id FROM m ORDER BY order_id"), [["BigInt(1)"], ["BigInt(5)"]]);
    assert_eq!(
        p.duckdb(
            "SELECT concat_ws(' | ', order_id, _dfpipe_test, coalesce(_dfpipe_column, '-'), _dfpipe_reason) \
             FROM m_quarantine ORDER BY order_id"
        ),
        [
            ["2 | range(amount) | amount | amount = -1.0 is below 0; email = bad does not match ^[^@]+@[^@]+$; \
              shipped_at >= ordered_at is false"],
            [
                "3 | not_null(order_id, customer_id) | customer_id | customer_id is NULL; status = lost is not one of new, paid, shipped"
            ],
            ["4 | castable(qty as int) | qty | qty = x4 does not cast to int"],
        ]
    );

    // Rows in = loaded + quarantined + dropped, per target, in run_results.json and the summary.
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    let counts: Vec<(u64, u64, u64)> = results["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["rows"].as_u64().unwrap(), t["quarantined"].as_u64().unwrap(), t["dropped"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [(2, 3, 0), (2, 0, 3), (2, 3, 0)]);
    let summary = stdout(&out);
    assert!(summary.contains("3 quarantined") && summary.contains("3 dropped"), "{summary}");
    assert!(summary.contains("3 of 3 targets written, 6 rows (9 rejected by row-level tests)"), "{summary}");
    assert!(stderr(&out).contains("3 row(s) failed the model's row-level tests: quarantined"), "{}", stderr(&out));

    // Parquet outputs: dropped rows are gone; quarantined ones sit beside the output.
    let parquet = |path: &str| -> Vec<i64> {
        let mut ids: Vec<i64> = read_parquet(&p.file(path))
            .iter()
            .flat_map(|b| {
                let column = b.column_by_name("order_id").unwrap();
                let ids = column.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap();
                ids.values().to_vec()
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(parquet("out/m.parquet"), [1, 5]);
    assert!(!p.file("out/m_quarantine.parquet").exists());
    assert_eq!(parquet("out/q.parquet"), [1, 5]);
    assert_eq!(parquet("out/q_quarantine.parquet"), [2, 3, 4]);

    // The table-level test (unique) still runs before writing, and a failure stops the run.
    p.write("orders.csv", &format!("{ORDERS}1,10,new,1.0,a@b.c,2026-11-01,2026-11-02,1\n"));
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).starts_with(
            "error: 1 data test(s) failed: nothing was written\n  m unique(order_id): 1 duplicated key(s)"
        )
    );
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM m_quarantine")), "3");

    // `dfpipe test` still reports the row-level tests as tests.
    let test = stdout(&p.dfpipe(&["test"]));
    assert!(test.contains("FAIL  m range(amount): 1 failing row(s)"), "{test}");
}

/// The ids of a DuckDB table of the project, sorted.
fn ids(p: &Project, table: &str) -> Vec<i64> {
    p.duckdb(&format!("SELECT CAST(id AS VARCHAR) FROM {table} ORDER BY id"))
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect()
}

fn leftover_spills(p: &Project) -> Vec<String> {
    std::fs::read_dir(p.file(".dfpipe"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("quarantine-"))
        .collect()
}

#[test]
fn the_model_is_scanned_once_so_every_row_lands_exactly_once() {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: q\nsources:\n  raw: { path: raw.csv }\noutputs:\n  - { model: m, on_invalid: quarantine }\n\
         tests:\n  m:\n    - expression: \"r < 0.5\"\n",
    );
    // random() differs on every scan: split twice, rows would land in both tables or neither.
    p.write("sql/m.sql", "SELECT id, random() AS r FROM raw\n");
    let csv: String = std::iter::once("id\n".to_string()).chain((1..=2000).map(|i| format!("{i}\n"))).collect();
    p.write("raw.csv", &csv);
    assert_success(&p.dfpipe(&["run", "-q"]));
    let (loaded, quarantined) = (ids(&p, "m"), ids(&p, "m_quarantine"));
    let mut all: Vec<i64> = loaded.iter().chain(&quarantined).copied().collect();
    all.sort();
    assert_eq!(all, (1..=2000).collect::<Vec<i64>>());
    assert!(!loaded.is_empty() && !quarantined.is_empty());
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM m WHERE r >= 0.5")), "0");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["targets"][0]["rows"].as_u64().unwrap() as usize, loaded.len());
    assert_eq!(results["targets"][0]["quarantined"].as_u64().unwrap() as usize, quarantined.len());
    assert_eq!(leftover_spills(&p), Vec::<String>::new());
}

#[test]
fn a_failed_load_leaves_its_quarantine_as_it_was() {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: q\nsources:\n  raw: { path: raw.csv }\n\
         outputs:\n  - { model: m, mode: merge, unique_key: id, on_invalid: quarantine }\n\
         tests:\n  m:\n    - range: { column: amount, min: 0 }\n",
    );
    p.write("sql/m.sql", "SELECT id, amount FROM raw\n");
    p.write("raw.csv", "id,amount\n1,1.0\n2,2.0\n3,-3.0\n4,4.0\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!((ids(&p, "m"), ids(&p, "m_quarantine")), (vec![1, 2, 4], vec![3]));

    // Id 5 twice among the valid rows: the merge refuses; row 7 must not replace the quarantine.
    p.write("raw.csv", "id,amount\n5,5.0\n5,5.5\n7,-7.0\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("merge key (id) is not unique in the new rows"), "{}", stderr(&out));
    assert_eq!((ids(&p, "m"), ids(&p, "m_quarantine")), (vec![1, 2, 4], vec![3]));
    assert_eq!(leftover_spills(&p), Vec::<String>::new());
}
