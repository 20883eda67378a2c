//! One integration-test binary (one link step), ripgrep style: modules by feature.

mod pg;
mod util;

mod cleaning;
mod cluster;
mod config_errors;
mod dag_errors;
mod data_safety;
mod data_tests;
mod demo;
mod docs;
mod duckdb_modes;
mod functions;
mod huge_pages;
mod incremental;
mod incremental_postgres;
mod layers;
mod lineage;
mod memory;
mod object_store;
mod openlineage;
mod params;
mod parquet_writer;
mod postgres;
mod postgres_tls;
mod quarantine;
mod read_errors;
mod schema_drift;
mod secrets;
mod source_files;
