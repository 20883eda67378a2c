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
    assert!(
        stdout(&plan).contains(
            "  orders = SELECT \"Order ID\" AS \"order_id\", \"Customer Name\" AS \"customer_name\", \
             parse_date(\"Order Date\", '%d/%m/%Y') AS \"order_date\", \
             parse_timestamp(\"Shipped At\", '%d/%m/%Y %H:%M:%S') AS \"shipped_at\", \
             CAST(\"Amount\" AS DECIMAL(38, 2)) AS \"amount\", CAST(\"Qty\" AS int) AS \"qty\" FROM \"__dfpipe_raw_orders\"\n"
        ),
        "{}",
        stdout(&plan)
    );
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
