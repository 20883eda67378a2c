//! A node put beside a sort that passes its input's batches on through a step of its own
//! ([`BatchStep`]), and the rules' walks that put one under, or above, every sort that buffers
//! all its input. [`super::compact_views`] and [`super::merge_room`] each have a step.

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

/// What a [`SortStepExec`] does to the batches on their way into or out of the sort.
pub trait BatchStep: fmt::Debug + Send + Sync + 'static {
    /// The node's name in plans (`CompactViewsExec`, ...).
    fn name(&self) -> &'static str;

    /// The function partition `partition`'s batches pass through.
    fn for_partition(&self, partition: usize) -> PartitionStep;
}

/// Passes its input's batches on through its [`BatchStep`]: same partitions, order and rows.
#[derive(Debug)]
pub struct SortStepExec {
    input: Arc<dyn ExecutionPlan>,
    step: Arc<dyn BatchStep>,
}

impl SortStepExec {
    /// `input`'s batches through `step`.
    pub fn new(input: Arc<dyn ExecutionPlan>, step: Arc<dyn BatchStep>) -> Self {
        SortStepExec { input, step }
    }
}

impl DisplayAs for SortStepExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.step.name())
    }
}

impl ExecutionPlan for SortStepExec {
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
        Ok(Arc::new(SortStepExec::new(children[0].clone(), self.step.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let mut step = self.step.for_partition(partition);
        let stepped = input.map(move |batch| batch.and_then(&mut step));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stepped)))
    }
}

/// The sort of `plan` that buffers all its input (not a top-k sort, which keeps only its k rows).
fn full_sort(plan: &Arc<dyn ExecutionPlan>) -> Option<&SortExec> {
    plan.downcast_ref::<SortExec>().filter(|sort| sort.fetch().is_none())
}

/// Whether `plan` is a [`SortStepExec`] of a step named `name`.
fn is_step(plan: &Arc<dyn ExecutionPlan>, name: &str) -> bool {
    plan.downcast_ref::<SortStepExec>().is_some_and(|node| node.step.name() == name)
}

/// `plan` with a [`SortStepExec`] of the step `step_for` gives a sort (None: none) under every
/// full sort, unless the sort already reads through one of that step.
pub fn under_full_sorts(
    plan: Arc<dyn ExecutionPlan>,
    step_for: impl Fn(&SortExec) -> Option<Arc<dyn BatchStep>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some((sort, step)) = full_sort(&node).and_then(|sort| Some((sort, step_for(sort)?))) else {
            return Ok(Transformed::no(node));
        };
        let input = sort.input();
        if is_step(input, step.name()) {
            return Ok(Transformed::no(node));
        }
        let stepped: Arc<dyn ExecutionPlan> = Arc::new(SortStepExec::new(input.clone(), step));
        Ok(Transformed::yes(node.clone().with_new_children(vec![stepped])?))
    })
    .map(|t| t.data)
}

/// `plan` with a [`SortStepExec`] of the step `step_for` gives a sort (None: none) above every
/// full sort, unless what reads the sort is already one of that step.
pub fn above_full_sorts(
    plan: Arc<dyn ExecutionPlan>,
    step_for: impl Fn(&SortExec) -> Option<Arc<dyn BatchStep>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let wrap = |child: &Arc<dyn ExecutionPlan>, parent: Option<&Arc<dyn ExecutionPlan>>| {
        let step = full_sort(child).and_then(&step_for)?;
        let wrapped = parent.is_some_and(|parent| is_step(parent, step.name()));
        (!wrapped).then(|| Arc::new(SortStepExec::new(child.clone(), step)) as Arc<dyn ExecutionPlan>)
    };
    let plan = plan
        .transform_up(|node| {
            let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
            let stepped: Vec<Option<Arc<dyn ExecutionPlan>>> =
                children.iter().map(|child| wrap(child, Some(&node))).collect();
            if stepped.iter().all(Option::is_none) {
                return Ok(Transformed::no(node));
            }
            let children = stepped.into_iter().zip(children).map(|(new, old)| new.unwrap_or(old)).collect();
            Ok(Transformed::yes(node.with_new_children(children)?))
        })?
        .data;
    // A sort at the root is no node's child: the walk above did not reach it.
    Ok(wrap(&plan, None).unwrap_or(plan))
}
