//! Data tests (`tests:`): every rule passing and failing, exact reports, `dfpipe test`, a run
//! stopped before writing, warnings, config errors.

use crate::util::*;

const CONFIG: &str = "name: dq
sources:
  orders: { path: orders.csv }
  customers: { path: customers.csv }
outputs:
  - model: m
tests:
  orders:
    - not_null: [order_id, customer_id]
    - unique: order_id
    - accepted_values: { column: status, values: [new, paid, shipped] }
    - relationships: { column: customer_id, to: customers, field: id }
    - range: { column: amount, min: 0, max: 100 }
    - regex: { column: email, pattern: \"^[^@]+@[^@]+$\" }
    - castable: { column: amount, type: \"decimal(6,2)\" }
    - row_count: { min: 1, max: 3 }
    - freshness: { column: updated_at, max_age: 2d }
    - expression: \"shipped_at >= ordered_at\"
      severity: warn
";

const GOOD: &str = "order_id,customer_id,status,amount,email,updated_at,ordered_at,shipped_at
1,10,new,5.0,a@b.c,2099-01-01T00:00:00,2026-11-01,2026-11-02
2,10,paid,7.5,d@e.f,2026-11-24T00:00:00,2026-11-03,2026-11-03
";

/// Every row-level rule broken once, and the warn-level expression too.
const BAD: &str = "order_id,customer_id,status,amount,email,updated_at,ordered_at,shipped_at
1,10,new,5.0,a@b.c,2000-01-01T00:00:00,2026-11-01,2026-11-02
2,11,paid,-1.0,bad,2000-01-01T00:00:00,2026-11-03,2026-11-01
2,,lost,300.0,x@y.z,2000-01-01T00:00:00,2026-11-01,2026-11-02
4,10,new,1.0,q@r.s,2000-01-01T00:00:00,2026-11-01,2026-11-02
";

fn project() -> Project {
    let p = Project::new();
    p.write("dfpipe.yml", CONFIG);
    p.write("sql/m.sql", "SELECT * FROM orders\n");
    p.write("customers.csv", "id,name\n10,a\n");
    p
}

const ROW2: &str = "order_id=2, customer_id=11, status=paid, amount=-1.0, email=bad, updated_at=2000-01-01T00:00:00, \
                    ordered_at=2026-11-03, shipped_at=2026-11-01";
const ROW3: &str = "order_id=2, customer_id=NULL, status=lost, amount=300.0, email=x@y.z, updated_at=2000-01-01T00:00:00, \
                    ordered_at=2026-11-01, shipped_at=2026-11-02";

#[test]
fn every_rule_passes_on_good_data_and_fails_on_bad_data() {
    let p = project();
    p.write("orders.csv", GOOD);
    let out = p.dfpipe(&["test"]);
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        "PASS  orders not_null(order_id, customer_id)\nPASS  orders unique(order_id)\nPASS  orders accepted_values(status)\n\
         PASS  orders relationships(customer_id → customers.id)\nPASS  orders range(amount)\nPASS  orders regex(email)\n\
         PASS  orders castable(amount as decimal(6,2))\nPASS  orders row_count\nPASS  orders freshness(updated_at)\nPASS  orders expression(shipped_at >= ordered_at)\n\
         10 passed, 0 warned, 0 failed\n"
    );

    p.write("orders.csv", BAD);
    let out = p.dfpipe(&["test"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    let expected = [
        format!("FAIL  orders not_null(order_id, customer_id): 1 failing row(s), e.g.:\n      {ROW3}\n"),
        "FAIL  orders unique(order_id): 1 duplicated key(s), e.g.:\n      order_id=2, occurrences=2\n".to_string(),
        format!("FAIL  orders accepted_values(status): 1 failing row(s), e.g.:\n      {ROW3}\n"),
        format!("FAIL  orders relationships(customer_id → customers.id): 1 failing row(s), e.g.:\n      {ROW2}\n"),
        format!("FAIL  orders range(amount): 2 failing row(s), e.g.:\n      {ROW2}\n      {ROW3}\n"),
        format!("FAIL  orders regex(email): 1 failing row(s), e.g.:\n      {ROW2}\n"),
        "FAIL  orders row_count: 4 rows, expected between 1 and 3\n".to_string(),
        format!("WARN  orders expression(shipped_at >= ordered_at): 1 failing row(s), e.g.:\n      {ROW2}\n"),
        "1 passed, 1 warned, 8 failed\n".to_string(),
    ];
    for part in &expected {
        assert!(text.contains(part.as_str()), "missing {part:?} in\n{text}");
    }
    assert!(text.contains("FAIL  orders freshness(updated_at): the latest `updated_at` is "), "{text}");
    assert!(text.contains(" old, more than 2d\n"), "{text}");
}

#[test]
fn a_failed_test_stops_the_run_before_anything_is_written() {
    let p = project();
    p.write("orders.csv", GOOD);
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM m")), "2");

    p.write("orders.csv", BAD);
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.starts_with("error: 8 data test(s) failed: nothing was written\n"), "{err}");
    assert!(err.contains(&format!("  orders regex(email): 1 failing row(s), e.g.:\n      {ROW2}\n")), "{err}");
    assert!(err.ends_with("fix the data or the model, or set `severity: warn` on the test\n"), "{err}");
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM m")), "2");

    let catalog = p.file(".dfpipe/catalog.duckdb");
    assert_eq!(one(duckdb_rows(&catalog, "SELECT status FROM runs WHERE run_id = 2")), "test");
    assert_eq!(
        one(duckdb_rows(&catalog, "SELECT string_agg(outcome, ',' ORDER BY outcome) FROM tests WHERE run_id = 2")),
        "fail,fail,fail,fail,fail,fail,fail,fail,pass,warn"
    );

    // As warnings, the same failures are logged and the run writes.
    let all_warn = CONFIG.replace("      severity: warn\n", "").replace("\n    - ", "\n    - severity: warn\n      ");
    p.write("dfpipe.yml", &all_warn);
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert!(stderr(&out).contains("data test regex(email) failed: 1 failing row(s), e.g.:"), "{}", stderr(&out));
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM m")), "4");
}

#[test]
fn test_config_errors_are_clear() {
    let p = project();
    p.write("orders.csv", GOOD);
    let with = |tests: &str| CONFIG.split("tests:").next().unwrap().to_string() + "tests:\n" + tests;
    p.write("dfpipe.yml", &with("  orders:\n    - { not_null: [a], unique: [a] }\n"));
    assert_error(
        &p.dfpipe(&["test"]),
        2,
        "dfpipe.yml: tests.orders[0]: one rule per test, found not_null(a) and unique(a); write each as its own list item",
    );
    p.write("dfpipe.yml", &with("  ordres:\n    - not_null: [a]\n"));
    assert_error(
        &p.dfpipe(&["test"]),
        2,
        "dfpipe.yml: tests.ordres: there is no source or model named `ordres` (did you mean `orders`?)",
    );
    p.write("dfpipe.yml", &with("  orders:\n    - relationships: { column: customer_id, to: custmers, field: id }\n"));
    assert_error(
        &p.dfpipe(&["test"]),
        2,
        "dfpipe.yml: tests.orders: relationships.to: there is no source or model named `custmers` (did you mean `customers`?)",
    );
    p.write("dfpipe.yml", &with("  orders:\n    - freshness: { column: updated_at, max_age: soon }\n"));
    assert_error(
        &p.dfpipe(&["test"]),
        2,
        "dfpipe.yml: tests.orders[0]: freshness.max_age `soon` is not an age; write e.g. 30m, 12h, 2d or 1w",
    );
    p.write("dfpipe.yml", &with("  orders:\n    - not_null: [nope]\n"));
    let out = p.dfpipe(&["test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: tests.orders: not_null(nope): Schema error: No field named nope."),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unquoted_yes_no_letters_are_strings_not_booleans() {
    // YAML 1.1 reads N, no, on, Y as booleans ("the Norway problem"); dfpipe reads YAML 1.2.
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: yaml12\nsources:\n  l: { path: l.csv }\noutputs:\n  - model: m\ntests:\n  l:\n    \
         - accepted_values: { column: flag, values: [A, N, R, no, on, Y] }\n",
    );
    p.write("sql/m.sql", "SELECT * FROM l\n");
    p.write("l.csv", "flag\nA\nN\nR\nno\non\nY\n");
    let out = p.dfpipe(&["test"]);
    assert_success(&out);
    assert_eq!(stdout(&out), "PASS  l accepted_values(flag)\n1 passed, 0 warned, 0 failed\n");
}
