//! A source's `clean:` options compiled into its view: naming, casts, dates with detected
//! formats, decimal precision.

use crate::util::*;

const CSV: &str = "Order ID,Customer Name,Order Date,Shipped At,Amount,Qty\n\
                   1,Ann,13/01/2024,14/01/2024 10:30:00,12.5,5\n\
                   2,Bob,02/03/2024,04/03/2024 08:00:00,7.125,7\n";

fn project(clean: &str) -> Project {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!("name: c\nsources:\n  orders:\n    path: orders.csv\n    clean: {clean}\noutputs:\n  - model: m\n"),
    );
    p.write("sql/m.sql", "SELECT * FROM orders\n");
    p.write("orders.csv", CSV);
    p
}

#[test]
fn clean_options_compile_into_the_sources_view() {
    let p = project("{ columns: snake_case, casts: { Qty: int }, dates: auto, decimals: 2 }");
    let plan = p.dfpipe(&["plan"]);
    assert_success(&plan);
    // `Amount` is a CSV float made decimal: read from its text as DECIMAL(38, 2) (7.125 → 7.13;
    // through a float, 7.12), so the view has nothing left to cast.
    assert!(
        stdout(&plan).contains(
            "  orders = SELECT \"Order ID\" AS \"order_id\", \"Customer Name\" AS \"customer_name\", \
             dfpipe_require_parsed(parse_date(\"Order Date\", '%d/%m/%Y'), \"Order Date\", 'source `orders`, column `Order Date`: \
             clean.dates read it as dates in format `%d/%m/%Y` (detected from up to 1000 sampled values)') AS \"order_date\", \
             dfpipe_require_parsed(parse_timestamp(\"Shipped At\", '%d/%m/%Y %H:%M:%S'), \"Shipped At\", 'source `orders`, column `Shipped At`: \
             clean.dates read it as timestamps in format `%d/%m/%Y %H:%M:%S` (detected from up to 1000 sampled values)') AS \"shipped_at\", \
             \"Amount\" AS \"amount\", CAST(\"Qty\" AS int) AS \"qty\" FROM \"__dfpipe_raw_orders\"\n"
        ),
        "{}",
        stdout(&plan)
    );
    assert!(!stderr(&plan).contains("changes nothing"), "{}", stderr(&plan));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        one(p.duckdb(
            "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) FROM duckdb_columns() WHERE table_name = 'm'"
        )),
        "order_id BIGINT, customer_name VARCHAR, order_date DATE, shipped_at TIMESTAMP, amount DECIMAL(38,2), qty INTEGER"
    );
    assert_eq!(
        p.duckdb("SELECT concat_ws(' | ', order_id, customer_name, order_date, shipped_at, amount, qty) FROM m ORDER BY order_id"),
        [["1 | Ann | 2024-01-13 | 2024-01-14 10:30:00 | 12.50 | 5"], ["2 | Bob | 2024-03-02 | 2024-03-04 08:00:00 | 7.13 | 7"]]
    );
}

#[test]
fn decimals_that_change_nothing_say_so() {
    // Amounts written with a decimal comma are read as text, which `decimals` does not touch:
    // the table got text without a word.
    let p = project("{ decimals: 2 }");
    p.write("orders.csv", "Order ID,Amount\n1,\"12,50\"\n2,\"7,13\"\n");
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains(
            "source `orders`: clean.decimals: 2 changes nothing: no column is read as a float (text: Amount); a text \
             column of numbers is cast with clean.casts (e.g. { price: 'DECIMAL(12, 2)' }) once its values are plain numbers"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn floats_cast_to_integers_round_as_databases_do() {
    // Arrow's cast cut the fraction (-2.7 -> -2, 2.7 -> 2); DuckDB and PostgreSQL round, halves
    // to even (12.5 -> 12, -0.5 -> 0, 3.5 -> 4).
    let p = project("{ casts: { Amount: int, Qty: bigint } }");
    p.write("orders.csv", "Order ID,Amount,Qty\n1,12.5,2.7\n2,-2.7,-0.5\n3,7.125,\n4,3.5,1e3\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        one(p.duckdb("SELECT string_agg(concat_ws(':', \"Amount\", coalesce(\"Qty\"::VARCHAR, 'NULL')), ',' ORDER BY \"Order ID\") FROM m")),
        "12:3,-3:0,7:NULL,4:1000"
    );
}

#[test]
fn clean_errors_name_the_source_and_column() {
    let p = project("{ dates: [Customer Name] }");
    assert_error(
        &p.dfpipe(&["plan"]),
        1,
        "source `orders` (orders.csv): clean.dates: column `Customer Name`: no single date or timestamp format reads all of 2 sampled value(s), e.g. `Ann`; CAST or parse it in a model",
    );
    let p = project("{ casts: { qty: int } }");
    assert_error(
        &p.dfpipe(&["plan"]),
        1,
        "source `orders` (orders.csv): clean: no column `qty` (its columns: Order ID, Customer Name, Order Date, Shipped At, Amount, Qty)",
    );
    p.write("orders.csv", "Name,name\na,b\n");
    p.write(
        "dfpipe.yml",
        "name: c\nsources:\n  orders: { path: orders.csv, clean: { columns: lower } }\noutputs:\n  - model: m\n",
    );
    assert_error(
        &p.dfpipe(&["plan"]),
        1,
        "source `orders` (orders.csv): clean.columns: columns `Name` and `name` both become `name`; rename one in a model instead",
    );
}

#[test]
fn a_date_the_detected_format_does_not_read_stops_the_run_instead_of_becoming_null() {
    let rows = |bad: &str| {
        let mut csv = String::from("id,day\n");
        for i in 1..=1500 {
            let day = if i == 1300 { bad.to_string() } else { format!("{:02}/{:02}/2024", i % 28 + 1, i % 12 + 1) };
            csv.push_str(&format!("{i},{day}\n"));
        }
        csv
    };
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: c\nsources:\n  days: { path: days.csv, clean: { dates: auto } }\n\
         datafusion: { execution.target_partitions: 1 }\noutputs:\n  - model: m\n",
    );
    p.write("sql/m.sql", "SELECT * FROM days\n");
    p.write("days.csv", &rows("  "));
    assert_success(&p.dfpipe(&["run", "-q"]));
    // A blank value is NULL; every other value is a date.
    assert_eq!(
        p.duckdb("SELECT count(*), count(day), CAST(min(day) AS VARCHAR) FROM m")[0],
        ["BigInt(1500)", "BigInt(1499)", "2024-01-01"]
    );
    // Row 1,300 lies beyond the 1,000 sampled values: 31/02 has the format but is no date.
    p.write("days.csv", &rows("31/02/2024"));
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "source `days`, column `day`: clean.dates read it as dates in format `%d/%m/%Y` (detected from up to 1000 \
             sampled values): the value `31/02/2024` does not parse; fix it in the data, or parse the column in a model \
             (parse_date/parse_timestamp without a format try every known format)"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(one(p.duckdb("SELECT count(day) FROM m")), "BigInt(1499)");
}

#[test]
fn two_digit_years_are_this_centurys_or_the_last_never_the_year_24() {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: c\nsources:\n  days: { path: days.csv, clean: { dates: auto } }\noutputs:\n  - model: m\n",
    );
    p.write("sql/m.sql", "SELECT * FROM days\n");
    // `short` has two-digit years only, `mixed` both kinds, in US order.
    p.write("days.csv", "id,short,mixed\n1,1/2/24,1/2/24\n2,12/31/24,12/31/2024\n3,6/15/69,6/15/1969\n");
    let plan = stdout(&p.dfpipe(&["plan"]));
    assert!(
        plan.contains(
            "dfpipe_require_parsed(parse_date(\"short\", '%m/%d/%y'), \"short\", 'source `days`, column `short`: \
             clean.dates read it as dates in format `%m/%d/%y` (detected from up to 1000 sampled values)') AS \"short\", \
             dfpipe_require_parsed(coalesce(parse_date(\"mixed\", '%m/%d/%Y'), parse_date(\"mixed\", '%m/%d/%y')), \"mixed\", \
             'source `days`, column `mixed`: clean.dates read it as dates in format `%m/%d/%Y` or `%m/%d/%y` (detected from \
             up to 1000 sampled values)') AS \"mixed\""
        ),
        "{plan}"
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT concat_ws(' | ', id, short, mixed) FROM m ORDER BY id"),
        [["1 | 2024-01-02 | 2024-01-02"], ["2 | 2024-12-31 | 2024-12-31"], ["3 | 1969-06-15 | 1969-06-15"]]
    );
    // A three-digit year is no year: not the year 202.
    p.write(
        "dfpipe.yml",
        "name: c\nsources:\n  days: { path: days.csv, clean: { dates: [mixed] } }\noutputs:\n  - model: m\n",
    );
    p.write("days.csv", "id,short,mixed\n1,1/2/24,1/2/24\n2,12/31/24,12/31/2024\n3,6/15/69,6/15/202\n");
    assert_error(
        &p.dfpipe(&["plan"]),
        1,
        "source `days` (days.csv): clean.dates: column `mixed`: no single date or timestamp format reads all of 3 \
         sampled value(s), e.g. `6/15/202`; CAST or parse it in a model",
    );
}
