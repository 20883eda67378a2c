//! Where outputs are written: DuckDB tables, PostgreSQL tables (binary COPY) and Parquet files.
//!
//! DuckDB and PostgreSQL targets are DataFusion sinks: [`SinkTable`] is a write-only table whose
//! `insert_into` returns `DataSinkExec` over the target's `DataSink` (one merged stream), or
//! [`partitioned::PartitionedSinkExec`] over a sink that writes partitions side by side (DuckDB,
//! rows in no particular order), so a target is `INSERT INTO target SELECT * FROM model`,
//! planned and streamed by DataFusion. Parquet targets are written by DataFusion's own Parquet
//! writer.
//!
//! May import: [`crate::config`] (targets, modes), [`crate::schema`] (evolution, logical types),
//! [`crate::util`]. Nothing here knows about models, the run or the catalog.

pub mod duckdb;
mod duckdb_arrow;
mod duckdb_feed;
pub mod marker;
mod nullable;
pub mod parquet;
pub mod parquet_increment;
pub mod partitioned;
pub mod postgres;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::ExecutionPlan;

use crate::config::Mode;
use partitioned::{PartitionedSink, PartitionedSinkExec};

/// The error for a model column an existing table lacks (appending or merging).
pub fn missing_column_message<'a>(column: &str, table: &str, columns: impl Iterator<Item = &'a str>) -> String {
    format!(
        "column `{column}` of the model is not in table {table} (its columns: {}); set on_schema_change: evolve \
         on the output to add it, add it to the table, or drop it from the model",
        columns.collect::<Vec<_>>().join(", ")
    )
}

/// The error for new rows whose merge key holds NULL: a key identifies a row, and NULL
/// identifies none.
pub fn null_key_message(unique_key: &[String], rows: u64) -> String {
    format!(
        "merge key ({}) is NULL in {rows} new row(s); a merge matches rows by key and NULL matches nothing: \
         filter those rows out or COALESCE the key in the model",
        unique_key.join(", ")
    )
}

/// A write-only DataFusion table over a target's sink.
#[derive(Debug)]
pub struct SinkTable {
    sink: Arc<dyn DataSink>,
    /// The same sink when it takes the input's partitions one stream each.
    partitioned: Option<Arc<dyn PartitionedSink>>,
    mode: Mode,
    label: String,
}

impl SinkTable {
    /// A table writing through `sink` in `mode`; `label` names the target in messages.
    pub fn new(sink: Arc<dyn DataSink>, mode: Mode, label: impl Into<String>) -> Self {
        SinkTable { sink, partitioned: None, mode, label: label.into() }
    }

    /// A table writing through `sink`, which gets every partition of the input as it is.
    pub fn partitioned(sink: Arc<dyn PartitionedSink>, mode: Mode, label: impl Into<String>) -> Self {
        SinkTable { sink: sink.clone(), partitioned: Some(sink), mode, label: label.into() }
    }
}

#[async_trait]
impl TableProvider for SinkTable {
    fn schema(&self) -> SchemaRef {
        self.sink.schema().clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        datafusion::common::not_impl_err!(
            "target {} is write-only in dfpipe (read DuckDB targets with `dfpipe query`)",
            self.label
        )
    }

    /// `replace` plans as an overwrite, `append` and `merge` as appends; the sink applies the mode.
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let expected = if self.mode == Mode::Replace { InsertOp::Overwrite } else { InsertOp::Append };
        if insert_op != expected {
            return datafusion::common::plan_err!(
                "target {} is configured for mode `{}`, not {insert_op}",
                self.label,
                self.mode.name()
            );
        }
        Ok(match &self.partitioned {
            Some(sink) => Arc::new(PartitionedSinkExec::new(input, sink.clone())),
            None => Arc::new(DataSinkExec::new(input, self.sink.clone(), None)),
        })
    }
}
