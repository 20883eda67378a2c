//! A node put under a sort that passes its input's batches on through a step of its own
//! ([`BatchStep`]), and the rule's walk that puts one under every sort that buffers all its input.
//! [`super::compact_views`] and [`super::merge_room`] each have a step.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// The function one partition's batches pass through, in order.
pub type PartitionStep = Box<dyn FnMut(RecordBatch) -> Result<RecordBatch> + Send>;

/// What an [`UnderSortExec`] does to the batches on their way to the sort.
pub trait BatchStep: fmt::Debug + Send + Sync + 'static {
    /// The node's name in plans (`CompactViewsExec`, ...).
    fn name(&self) -> &'static str;

    /// The function partition `partition`'s batches pass through.
    fn for_partition(&self, partition: usize) -> PartitionStep;
}

/// Passes its input's batches on through its [`BatchStep`]: same partitions, order and rows.
#[derive(Debug)]
pub struct UnderSortExec {
    input: Arc<dyn ExecutionPlan>,
    step: Arc<dyn BatchStep>,
}

impl UnderSortExec {
    /// `input`'s batches through `step`.
    pub fn new(input: Arc<dyn ExecutionPlan>, step: Arc<dyn BatchStep>) -> Self {
        UnderSortExec { input, step }
    }
}

impl DisplayAs for UnderSortExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.step.name())
    }
}

impl ExecutionPlan for UnderSortExec {
    fn name(&self) -> &str {
        self.step.name()
    }

    /// The input's: same partitions, same order, same rows.
    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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
        Ok(Arc::new(UnderSortExec::new(children[0].clone(), self.step.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let mut step = self.step.for_partition(partition);
        let stepped = input.map(move |batch| batch.and_then(&mut step));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stepped)))
    }
}

/// `plan` with an [`UnderSortExec`] of the step `step_for` gives a sort (None: none) under every
/// sort that buffers all its input (not a top-k sort, which keeps only its k rows), unless the
/// sort already reads through one of that step.
pub fn under_full_sorts(
    plan: Arc<dyn ExecutionPlan>,
    step_for: impl Fn(&SortExec) -> Option<Arc<dyn BatchStep>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(sort) = node.downcast_ref::<SortExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(step) = step_for(sort).filter(|_| sort.fetch().is_none()) else {
            return Ok(Transformed::no(node));
        };
        let input = sort.input();
        if input.downcast_ref::<UnderSortExec>().is_some_and(|under| under.step.name() == step.name()) {
            return Ok(Transformed::no(node));
        }
        let stepped: Arc<dyn ExecutionPlan> = Arc::new(UnderSortExec::new(input.clone(), step));
        Ok(Transformed::yes(node.clone().with_new_children(vec![stepped])?))
    })
    .map(|t| t.data)
}
