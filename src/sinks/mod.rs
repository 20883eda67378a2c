//! Where outputs are written: DuckDB tables, PostgreSQL tables (binary COPY) and Parquet files.

pub mod duckdb;
pub mod parquet;
pub mod postgres;
