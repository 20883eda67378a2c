//! Functions for models: dfpipe's cleaning UDFs and the project's SQL-defined ones (`udfs/`).

use crate::util::*;

fn project() -> Project {
    let p = Project::new();
    p.write("dfpipe.yml", "name: f\nsources:\n  raw: { path: raw.csv }\noutputs:\n  - model: m\n");
    p.write(
        "raw.csv",
        "id,price,discount,day,amount\n1,10.00,0.25,31/12/2024,\"$1,200.50\"\n2,8.00,0,Jan 5 2024,12abc\n",
    );
    p.write(
        "udfs/pricing.sql",
        "-- Named and positional arguments; the body's types are coerced once.\n\
         CREATE FUNCTION net_price(price DECIMAL(12,2), discount DOUBLE) RETURNS DECIMAL(12,2)\n\
           RETURN $price * (1 - $discount);\n\
         CREATE FUNCTION tag(id BIGINT, s VARCHAR) RETURNS VARCHAR RETURN concat($2, '-', $1);\n",
    );
    p
}

#[test]
fn sql_functions_and_cleaning_udfs_work_in_models() {
    let p = project();
    p.write(
        "sql/m.sql",
        "SELECT id, net_price(price, discount) AS net, tag(id, 'order') AS label, \
                parse_date(day, '%d/%m/%Y') AS day_first, parse_date(day) AS any_day, \
                parse_number(amount) AS amount, number_error(amount) AS amount_error, \
                surrogate_key(id, day) AS sk \
         FROM raw\n",
    );
    let out = p.dfpipe(&["run", "-q"]);
    assert_success(&out);
    assert_eq!(
        p.duckdb(
            "SELECT concat_ws(' | ', id, net, label, coalesce(CAST(day_first AS VARCHAR), 'NULL'), any_day, \
             coalesce(CAST(m.amount AS VARCHAR), 'NULL'), coalesce(amount_error, 'NULL'), sk = md5(concat(id, '-', r.day))) \
             FROM m JOIN read_csv('raw.csv') AS r USING (id) ORDER BY id"
                .replace("raw.csv", &p.file("raw.csv").display().to_string())
                .as_str()
        ),
        [
            ["1 | 7.50 | order-1 | 2024-12-31 | 2024-12-31 | 1200.5 | NULL | true"],
            ["2 | 8.00 | order-2 | NULL | 2024-01-05 | NULL | `12abc` is not a number | true"],
        ]
    );
    // The call is expanded into the plan (the optimizer sees through it).
    let plan = stdout(&p.dfpipe(&["plan"]));
    assert!(plan.contains("AS net"), "{plan}");
    assert!(!plan.contains("net_price("), "{plan}");
}

#[test]
fn bad_function_files_are_named() {
    let p = project();
    p.write("sql/m.sql", "SELECT id FROM raw\n");
    p.write("udfs/zz_bad.sql", "DROP TABLE raw;\n");
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "udfs/zz_bad.sql: only CREATE FUNCTION statements belong in udfs/, found `DROP TABLE raw`",
    );
    p.write("udfs/zz_bad.sql", "CREATE FUNCTION f(a INT) RETURN $a + 1;\n");
    assert_error(&p.dfpipe(&["plan"]), 2, "udfs/zz_bad.sql: function `f` needs `RETURNS <type>`");
    p.write("udfs/zz_bad.sql", "CREATE FUNCTION f(a INT) RETURNS INT RETURN $b + 1;\n");
    let out = p.dfpipe(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("udfs/zz_bad.sql: "), "{}", stderr(&out));
}

#[test]
fn parse_number_reads_decimal_commas_and_says_why_grouping_is_no_number() {
    let p = Project::new();
    p.write("dfpipe.yml", "name: f\nsources:\n  raw: { path: raw.csv }\noutputs:\n  - model: m\n");
    p.write(
        "raw.csv",
        "id,amount\n1,\"1,5\"\n2,\"€ 3,50\"\n3,\"1.234,56\"\n4,\"1,234.56\"\n5,\"1,234\"\n6,\"1,2,3\"\n7,\"12,34,567\"\n",
    );
    p.write("sql/m.sql", "SELECT id, parse_number(amount) AS amount, number_error(amount) AS why FROM raw\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb(
            "SELECT concat_ws(' | ', id, coalesce(CAST(amount AS VARCHAR), 'NULL'), coalesce(why, 'NULL')) FROM m ORDER BY id"
        ),
        [
            ["1 | 1.5 | NULL"],
            ["2 | 3.5 | NULL"],
            ["3 | 1234.56 | NULL"],
            ["4 | 1234.56 | NULL"],
            ["5 | 1234.0 | NULL"],
            [
                "6 | NULL | `1,2,3` is not a number: `,` groups its digits 1-1-1, but a thousands separator needs groups \
                 of three after the first (1,234,567)"
            ],
            [
                "7 | NULL | `12,34,567` is not a number: `,` groups its digits 2-2-3, but a thousands separator needs \
                 groups of three after the first (1,234,567)"
            ],
        ]
    );
}
