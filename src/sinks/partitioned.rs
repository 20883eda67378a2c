//! [`PartitionedSinkExec`]: DataFusion's `DataSinkExec`, except that the sink gets each of its
//! input's partitions as a stream of its own instead of one merged stream (no
//! `CoalescePartitionsExec` in between). A target that writes on several threads (DuckDB) then
//! gives each thread whole partitions to insert.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
    execute_input_stream,
};
use futures::StreamExt;

/// A sink that writes its input's partitions side by side, one stream each.
#[async_trait]
pub trait PartitionedSink: DataSink {
    /// Writes every stream (one per input partition, NOT NULL columns already checked); returns
    /// the rows written. All of them are written in one transaction, or none.
    async fn write_partitions(&self, data: Vec<SendableRecordBatchStream>, context: &Arc<TaskContext>) -> Result<u64>;
}

/// Writes all partitions of its input through a [`PartitionedSink`]; one output row, `count`.
pub struct PartitionedSinkExec {
    input: Arc<dyn ExecutionPlan>,
    sink: Arc<dyn PartitionedSink>,
    properties: Arc<PlanProperties>,
}

impl PartitionedSinkExec {
    /// A plan writing every partition of `input` through `sink`.
    pub fn new(input: Arc<dyn ExecutionPlan>, sink: Arc<dyn PartitionedSink>) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        PartitionedSinkExec { input, sink, properties: Arc::new(properties) }
    }
}

impl fmt::Debug for PartitionedSinkExec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartitionedSinkExec")
    }
}

impl DisplayAs for PartitionedSinkExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartitionedSinkExec: sink=")?;
        self.sink.fmt_as(t, f)
    }
}

impl ExecutionPlan for PartitionedSinkExec {
    fn name(&self) -> &'static str {
        "PartitionedSinkExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// More partitions are more threads writing.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(children[0].clone(), self.sink.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!("PartitionedSinkExec has one partition, not {partition}");
        }
        let partitions = self.input.output_partitioning().partition_count();
        let data = (0..partitions)
            .map(|i| execute_input_stream(self.input.clone(), self.sink.schema().clone(), i, context.clone()))
            .collect::<Result<Vec<_>>>()?;
        let sink = self.sink.clone();
        let count = futures::stream::once(async move {
            let rows = sink.write_partitions(data, &context).await?;
            let column = Arc::new(UInt64Array::from(vec![rows])) as ArrayRef;
            Ok(RecordBatch::try_new(count_schema(), vec![column])?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(count_schema(), count.boxed())))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.sink.metrics()
    }
}

/// The schema of the one row the plan returns, as `DataSinkExec`'s.
fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]))
}
