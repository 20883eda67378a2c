//! Where outputs are written: DuckDB tables and Parquet files (PostgreSQL comes next).

pub mod duckdb;
pub mod parquet;
