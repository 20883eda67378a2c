//! A frame read as one whose every column is nullable: what the Parquet outputs write
//! ([`super::parquet`]), so the files a directory gains over time read together as one source
//! (a column a later load added is NULL in the files written before it; a literal's NOT NULL is
//! no contract).
//!
//! The frame's own plan runs unchanged under a node that only relabels the schema of its
//! batches, keeping the plan's partitions and orderings. A projection that wrapped each NOT NULL
//! column in a function did the relabelling before, but hid a sorted model's order from the
//! optimizer: it joined the sorted partitions as they came instead of merging them, and
//! lineitem sorted by three keys was written out of order at every batch.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::DataFrame;
use futures::StreamExt;

use crate::error::df_message;

/// `df` with every column nullable; the same frame when all already are.
pub fn nullable_columns(df: DataFrame) -> std::result::Result<DataFrame, String> {
    if df.schema().fields().iter().all(|f| f.is_nullable()) {
        return Ok(df);
    }
    let (state, plan) = df.into_parts();
    let fields: Vec<_> = plan.schema().fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, plan.schema().as_arrow().metadata().clone()));
    let table = Arc::new(NullableTable { plan, schema });
    let scan = LogicalPlanBuilder::scan("nullable", provider_as_source(table), None)
        .and_then(LogicalPlanBuilder::build)
        .map_err(|e| df_message(&e))?;
    Ok(DataFrame::new(state, scan))
}

/// A logical plan read under a schema of nullable columns.
#[derive(Debug)]
struct NullableTable {
    plan: LogicalPlan,
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl TableProvider for NullableTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = state.create_physical_plan(&self.plan).await?;
        let relabelled: Arc<dyn ExecutionPlan> = Arc::new(NullableExec::try_new(input, self.schema.clone())?);
        match projection {
            Some(columns) if !columns.iter().copied().eq(0..self.schema.fields().len()) => {
                let exprs = columns.iter().map(|&i| {
                    let name = self.schema.field(i).name().clone();
                    (Arc::new(datafusion::physical_expr::expressions::Column::new(&name, i)) as _, name)
                });
                Ok(Arc::new(ProjectionExec::try_new(exprs, relabelled)?))
            }
            _ => Ok(relabelled),
        }
    }
}

/// Passes its input's batches on under a schema that differs only in nullability: same
/// partitions, order and rows.
#[derive(Debug)]
struct NullableExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl NullableExec {
    fn try_new(input: Arc<dyn ExecutionPlan>, schema: SchemaRef) -> Result<NullableExec> {
        let from = input.properties();
        let equivalences = from.equivalence_properties().clone().with_new_schema(schema.clone())?;
        let properties =
            PlanProperties::new(equivalences, from.output_partitioning().clone(), from.emission_type, from.boundedness);
        Ok(NullableExec { input, schema, properties: Arc::new(properties) })
    }
}

impl DisplayAs for NullableExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "NullableExec")
    }
}

impl ExecutionPlan for NullableExec {
    fn name(&self) -> &str {
        "NullableExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(NullableExec::try_new(children[0].clone(), self.schema.clone())?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = self.schema.clone();
        let relabelled = input.map({
            let schema = schema.clone();
            move |batch| Ok(batch?.with_schema(schema.clone())?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, relabelled)))
    }
}
