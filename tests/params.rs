//! `params:` and `--param`: `$name` placeholders bound into each model's plan (not pasted into
//! its text), so a filter on a parameter prunes partitions like any literal.

use crate::util::*;

/// Two hive partitions (`day=…`) of two rows each, a model filtering on two parameters.
fn project(params: &str) -> Project {
    let p = Project::new();
    p.write("data/day=2024-01-01/a.csv", "id,amount\n1,5\n2,50\n");
    p.write("data/day=2024-01-02/a.csv", "id,amount\n3,7\n4,70\n");
    p.write("dfpipe.yml", &format!("name: p\nsources:\n  sales: {{ path: data/, format: csv }}\n{params}"));
    p.write("sql/big.sql", "SELECT id, amount, day FROM sales WHERE amount >= $min_amount AND day = $day\n");
    p.write("sql/other.sql", "SELECT 1 AS one\n");
    p
}

const PARAMS: &str = "params:\n  min_amount: 10\n  day: '2024-01-02'\n";

#[test]
fn parameters_are_bound_as_literals_and_prune_partitions() {
    let p = project(PARAMS);
    let plan = p.dfpipe(&["plan", "-s", "big"]);
    assert_success(&plan);
    let text = stdout(&plan);
    assert!(text.contains("parameters, bound into the plans below as literals:\n  $day = '2024-01-02' (params.day)\n  $min_amount = 10 (params.min_amount)\n"), "{text}");
    // Bound before planning: the partition filter is a literal, and only day=2024-01-02 is read.
    assert!(
        text.contains("full_filters=[sales.day = Utf8View(\"2024-01-02\")]")
            || text.contains("sales.day = Utf8(\"2024-01-02\")"),
        "{text}"
    );
    assert!(text.contains("day=2024-01-02/a.csv (1 file(s)") && !text.contains("day=2024-01-01"), "{text}");
    assert_success(&p.dfpipe(&["run", "-q", "-s", "big"]));
    assert_eq!(p.duckdb("SELECT CAST(id AS VARCHAR) FROM big ORDER BY id"), [["4"]]);

    // The command line wins, typed as the placeholder's column.
    assert_success(&p.dfpipe(&["run", "-q", "-s", "big", "--param", "min_amount=6", "--param", "day=2024-01-01"]));
    assert_eq!(p.duckdb("SELECT CAST(id AS VARCHAR) FROM big ORDER BY id"), [["2"]]);
}

#[test]
fn a_declared_type_types_the_value() {
    let p = project("params:\n  min_amount: 10\n  day: { type: date, value: 2024-01-02 }\n");
    p.write("sql/big.sql", "SELECT id, amount FROM sales WHERE amount >= $min_amount AND $day > DATE '2024-01-01'\n");
    assert_success(&p.dfpipe(&["run", "-q", "-s", "big"]));
    assert_eq!(p.duckdb("SELECT CAST(id AS VARCHAR) FROM big ORDER BY id"), [["2"], ["4"]]);
    let out = p.dfpipe(&["run", "-q", "-s", "big", "--param", "day=someday"]);
    assert_error(&out, 2, "model `big` (sql/big.sql): parameter `$day` (--param day): `someday` is not a date");
}

#[test]
fn missing_extra_and_mistyped_parameters_are_refused_naming_model_and_parameter() {
    let p = project("params:\n  min_amount: 10\n");
    assert_error(
        &p.dfpipe(&["run", "-q"]),
        2,
        "model `big` (sql/big.sql): parameter `$day` has no value: set it under `params:` in the config or pass --param day=VALUE (parameters with values: min_amount)",
    );
    let p = project(PARAMS);
    assert_error(
        &p.dfpipe(&["run", "-q", "--param", "mni_amount=3"]),
        2,
        "--param mni_amount: no selected model has a `$mni_amount` placeholder (they use $day, $min_amount)",
    );
    // A parameter of a model outside the selection is not a value for nothing.
    assert_error(
        &p.dfpipe(&["run", "-q", "-s", "other", "--param", "day=2024-01-01"]),
        2,
        "--param day: no selected model has a `$day` placeholder",
    );
    for (value, shown) in [("abc", "'abc'"), ("2.5", "2.5")] {
        assert_error(
            &p.dfpipe(&["run", "-q", "--param", &format!("min_amount={value}")]),
            2,
            &format!(
                "model `big` (sql/big.sql): parameter `$min_amount` stands where a value of type Int64 is expected, but --param min_amount = {shown} is not one"
            ),
        );
    }
    assert_eq!(p.dfpipe(&["run", "-q", "--param", "bad name=1"]).status.code(), Some(2));
    assert!(!p.file("dfpipe.duckdb").exists(), "nothing may be written when a parameter is refused");
}

#[test]
fn a_parameter_in_a_union_takes_the_union_type() {
    // Before the model's plan was analyzed, `$v` in the first branch of a UNION was typed Null:
    // the catalog recorded `x Null` and a PostgreSQL target could not cast Int64 to it.
    let p = Project::new();
    p.write("dfpipe.yml", "name: t\nparams: { v: 1 }\noutputs:\n  - model: m\n");
    p.write("sql/m.sql", "SELECT 1 AS id, $v AS x UNION ALL SELECT 2, 5\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT id, x, typeof(x) FROM m ORDER BY id"),
        [["BigInt(1)", "BigInt(1)", "BIGINT"], ["BigInt(2)", "BigInt(5)", "BIGINT"]]
    );
    let shown = stdout(&p.dfpipe(&["schema", "show", "m"]));
    assert!(shown.contains("  x   Int64\n"), "{shown}");
}
