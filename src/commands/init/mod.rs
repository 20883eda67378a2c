//! `dfpipe init [DIR]`: a working project — config, the three models of the repository's
//! `sql/` directory (which depend on each other), and sample data dfpipe generates itself — so `dfpipe init demo && cd demo && dfpipe run`
//! works with no network and no server.

pub mod sample;

use std::path::Path;

use crate::config::CONFIG_FILES;
use crate::error::{EXIT_OK, Error, Result};

/// Customers in the demo data.
pub const DEMO_CUSTOMERS: usize = 1_000;

const CONFIG: &str = r#"# dfpipe project: sources, SQL models (sql/*.sql) and where their results go.
# Reference: the "Config reference" section of the dfpipe README.
name: demo

sources:
  orders:
    path: data/orders/*.parquet        # a file, a glob, a directory, or s3:// gs:// az:// https://
  customers:
    path: data/customers.csv
    options: { header: true, delimiter: "," }
  countries:
    path: data/countries.ndjson        # newline-delimited JSON

models: sql                            # every sql/**/*.sql file is a model named after its file

connections:
  warehouse: { kind: duckdb, path: dfpipe.duckdb }
  # pg: { kind: postgres, dsn: "${DATABASE_URL}" }

outputs:
  - model: daily_revenue               # to: warehouse, table: daily_revenue, mode: replace
  - model: customer_revenue
  - model: daily_revenue
    to: out/daily_revenue.parquet      # a Parquet file beside the DuckDB table

memory: { os_margin: 0.3 }

tests:                                 # run before anything is written; `dfpipe test` runs them alone
  stg_orders:
    - not_null: [order_id, customer_id, order_date]
    - unique: order_id
    - accepted_values: { column: status, values: [new, paid, shipped] }
    - relationships: { column: customer_id, to: customers, field: customer_id }
    - range: { column: amount, min: 0 }
  daily_revenue:
    - row_count: { min: 1 }
"#;

const STG_ORDERS: &str = include_str!("../../../sql/stg_orders.sql");

const DAILY_REVENUE: &str = include_str!("../../../sql/daily_revenue.sql");

const CUSTOMER_REVENUE: &str = include_str!("../../../sql/customer_revenue.sql");

const GITIGNORE: &str = ".dfpipe/\n*.duckdb\n*.duckdb.wal\nout/\n";

/// Creates the demo project in `dir` with `orders` generated orders.
/// `dfpipe init`: creates the project and says what to do next.
pub fn command(dir: &Path, orders: usize, force: bool) -> Result<u8> {
    init(dir, orders, force)?;
    crate::outln!("created a dfpipe project in {}\nnext: cd {} && dfpipe run", dir.display(), dir.display());
    Ok(EXIT_OK)
}

/// Writes the demo project (config, models, sample data) into `dir`.
pub fn init(dir: &Path, orders: usize, force: bool) -> Result<()> {
    if !force && let Some(existing) = CONFIG_FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
        return Err(Error::Usage(format!(
            "{} already exists; dfpipe init will not overwrite a project (pass --force to replace the demo files)",
            existing.display()
        )));
    }
    let io = |e: std::io::Error| Error::Run(format!("cannot create the project in {}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("sql")).map_err(io)?;
    std::fs::write(dir.join("dfpipe.yml"), CONFIG).map_err(io)?;
    std::fs::write(dir.join("sql/stg_orders.sql"), STG_ORDERS).map_err(io)?;
    std::fs::write(dir.join("sql/daily_revenue.sql"), DAILY_REVENUE).map_err(io)?;
    std::fs::write(dir.join("sql/customer_revenue.sql"), CUSTOMER_REVENUE).map_err(io)?;
    std::fs::write(dir.join(".gitignore"), GITIGNORE).map_err(io)?;
    sample::generate(dir, DEMO_CUSTOMERS, orders).map_err(io)?;
    Ok(())
}
