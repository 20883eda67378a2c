//! Joins that spill under a spilling strategy, with one partition too.
//!
//! DataFusion 54 plans an equi-join as a sort-merge join (which spills) rather than a hash join
//! (whose build side must fit in memory) only when the plan has more than one partition. With
//! one — `target_partitions: 1`, a pool too small for two sort shares, a one-core machine — every
//! equi-join is a hash join that collects its whole left side: a 3 M-row join under a 150 MiB
//! limit with one partition failed at its hash table ("HashJoinInput"), where the strategy
//! promises joins that spill. [`SortMergeJoins`] turns each such hash join into a sort-merge
//! join over sorts of its two inputs (their partitions merged into one first). A null-aware
//! anti join (`NOT IN`) stays a hash join: only a hash join keeps its null semantics. A project
//! that sets `optimizer.prefer_hash_join: true` keeps its hash joins.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::{LexOrdering, PhysicalExprRef, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{HashJoinExec, SortMergeJoinExec};
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExprs};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

/// The physical rule that turns the hash joins of a one-partition plan into sort-merge joins
/// (see the module).
#[derive(Debug, Default)]
pub struct SortMergeJoins;

impl PhysicalOptimizerRule for SortMergeJoins {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        // With more partitions DataFusion plans sort-merge joins itself.
        if config.optimizer.prefer_hash_join || config.execution.target_partitions > 1 {
            return Ok(plan);
        }
        plan.transform_up(|node| match node.downcast_ref::<HashJoinExec>() {
            Some(join) if !join.null_aware => Ok(Transformed::yes(sort_merge(join)?)),
            _ => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sort_merge_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The sort-merge join of `join`'s inputs, each sorted on its keys, with `join`'s projection
/// and limit: the same rows and schema.
fn sort_merge(join: &HashJoinExec) -> Result<Arc<dyn ExecutionPlan>> {
    let left = sorted_on(&join.left, join.on.iter().map(|(l, _)| l.clone()))?;
    let right = sorted_on(&join.right, join.on.iter().map(|(_, r)| r.clone()))?;
    let options = vec![SortOptions::default(); join.on.len()];
    let mut plan: Arc<dyn ExecutionPlan> = Arc::new(SortMergeJoinExec::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        options,
        join.null_equality,
    )?);
    if let Some(projection) = &join.projection {
        let columns = ProjectionExprs::from_indices(projection, &plan.schema());
        plan = Arc::new(ProjectionExec::try_new(columns.iter().cloned(), plan)?);
    }
    if let Some(fetch) = join.fetch() {
        plan = Arc::new(GlobalLimitExec::new(plan, 0, Some(fetch)));
    }
    Ok(plan)
}

/// `input` in one partition, sorted ascending (nulls first, as the join expects) on `keys`
/// unless it already is.
fn sorted_on(
    input: &Arc<dyn ExecutionPlan>,
    keys: impl Iterator<Item = PhysicalExprRef>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let input: Arc<dyn ExecutionPlan> = if input.output_partitioning().partition_count() > 1 {
        Arc::new(CoalescePartitionsExec::new(input.clone()))
    } else {
        input.clone()
    };
    let Some(ordering) = LexOrdering::new(keys.map(|key| PhysicalSortExpr::new(key, SortOptions::default()))) else {
        // A join without keys has nothing to sort on; DataFusion plans none such as a hash join.
        return Ok(input);
    };
    if input.equivalence_properties().ordering_satisfy(ordering.clone())? {
        return Ok(input);
    }
    Ok(Arc::new(SortExec::new(ordering, input)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// A session of one partition with the rule, or without it (DataFusion's hash joins).
    fn session(with_rule: bool) -> SessionContext {
        let config =
            SessionConfig::new().with_target_partitions(1).set_bool("datafusion.optimizer.prefer_hash_join", false);
        let mut state = SessionStateBuilder::new().with_default_features().with_config(config);
        if with_rule {
            state = state.with_physical_optimizer_rule(Arc::new(SortMergeJoins));
        }
        let ctx = SessionContext::new_with_state(state.build());
        let schema = |name: &str| {
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new(name, DataType::Utf8, true)]))
        };
        // Keys out of order, repeated and null on both sides.
        let a = RecordBatch::try_new(
            schema("a"),
            vec![
                Arc::new(Int64Array::from(vec![Some(3), Some(1), None, Some(2), Some(3), Some(5)])),
                Arc::new(StringArray::from(vec!["a3", "a1", "anull", "a2", "a3b", "a5"])),
            ],
        )
        .unwrap();
        let b = RecordBatch::try_new(
            schema("b"),
            vec![
                Arc::new(Int64Array::from(vec![Some(2), None, Some(3), Some(4), Some(2)])),
                Arc::new(StringArray::from(vec!["b2", "bnull", "b3", "b4", "b2b"])),
            ],
        )
        .unwrap();
        ctx.register_batch("ta", a).unwrap();
        ctx.register_batch("tb", b).unwrap();
        ctx
    }

    async fn plan_and_rows(ctx: &SessionContext, sql: &str) -> (String, String) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        (text, pretty_format_batches(&df.collect().await.unwrap()).unwrap().to_string())
    }

    #[tokio::test]
    async fn one_partition_joins_become_sort_merge_joins_with_the_same_rows() {
        let (ours, theirs) = (session(true), session(false));
        for sql in [
            "SELECT ta.a, tb.b FROM ta JOIN tb ON ta.k = tb.k ORDER BY 1, 2",
            "SELECT ta.a, tb.b FROM ta LEFT JOIN tb ON ta.k = tb.k AND tb.b <> 'b2b' ORDER BY 1, 2",
            "SELECT tb.b, ta.k FROM ta FULL JOIN tb ON ta.k = tb.k ORDER BY 1, 2",
            "SELECT a FROM ta WHERE k IN (SELECT k FROM tb) ORDER BY 1",
            "SELECT a FROM ta WHERE NOT EXISTS (SELECT 1 FROM tb WHERE tb.k = ta.k) ORDER BY 1",
            "SELECT ta.a FROM ta JOIN tb ON ta.k = tb.k LIMIT 2",
        ] {
            let (plan, rows) = plan_and_rows(&ours, sql).await;
            let (hash_plan, expected) = plan_and_rows(&theirs, sql).await;
            assert!(hash_plan.contains("HashJoinExec"), "{sql}: DataFusion plans a hash join: {hash_plan}");
            assert!(plan.contains("SortMergeJoin") && !plan.contains("HashJoinExec"), "{sql}: {plan}");
            if sql.contains("LIMIT") {
                assert_eq!(rows.lines().count(), expected.lines().count(), "{sql}");
            } else {
                assert_eq!(rows, expected, "{sql}");
            }
        }
        let (_, rows) = plan_and_rows(&ours, "SELECT ta.a, tb.b FROM ta JOIN tb ON ta.k = tb.k ORDER BY 1, 2").await;
        let pairs: Vec<&str> = rows.lines().skip(3).filter(|l| l.starts_with('|')).collect();
        assert_eq!(pairs, ["| a2  | b2  |", "| a2  | b2b |", "| a3  | b3  |", "| a3b | b3  |"], "{rows}");
    }

    #[tokio::test]
    async fn null_aware_anti_joins_and_preferred_hash_joins_stay_hash_joins() {
        let ctx = session(true);
        let (plan, rows) = plan_and_rows(&ctx, "SELECT a FROM ta WHERE k NOT IN (SELECT k FROM tb) ORDER BY 1").await;
        assert!(plan.contains("HashJoinExec"), "{plan}");
        // tb has a NULL key, so NOT IN is true for no row.
        assert_eq!(rows.lines().skip(3).filter(|l| l.starts_with('|')).count(), 0, "{rows}");

        ctx.sql("SET datafusion.optimizer.prefer_hash_join = true").await.unwrap();
        let (plan, _) = plan_and_rows(&ctx, "SELECT ta.a FROM ta JOIN tb ON ta.k = tb.k").await;
        assert!(plan.contains("HashJoinExec"), "{plan}");
    }
}
