//! Compacting string views before a sort buffers them and after it emits them, so the pool counts
//! what the sort, and what reads it, hold.
//!
//! A Parquet reader decodes a `Utf8View` (or `BinaryView`) column as views into the page it
//! read: every batch of the page shares the page's whole buffer. DataFusion counts a batch's
//! memory by its buffers, so each buffered batch is charged the whole page. Measured on TPC-H
//! lineitem (parquet-rs's files carry `string_view` in their Arrow schema): batches of 4,096 rows
//! are charged 395 bytes a row, `l_comment` alone 227, where the rows hold about 180. A sort
//! that buffers until its share of the pool is charged full therefore spills runs less than
//! half as long as the memory allows, and merges more of them in more passes.
//!
//! A sort's output has the same fault: each batch its merge emits is interleaved from the batches
//! of every run it merges and shares their buffers, so a batch of 2,048 rows is charged one
//! buffer per run. A `SortPreservingMergeExec` reading two sort partitions holds a few such
//! batches of each: in the string-key test (tests/memory.rs) it was charged up to 8.8 MiB under
//! 200 MiB, and in 2 CI runs of 8, where larger shares merged more runs at once, 13–14 MiB, and
//! then failed to grow beside the sorts' merges. Compacted, its reservation stays under 1 MiB.
//!
//! `CompactViewsExec` copies the strings a batch's views point to into buffers of the batch's
//! own when its view columns' buffers are more than twice what they use;
//! [`CompactViewsAroundSorts`] puts one under and one above every sort that may spill
//! ([`super::sort_steps`]). The copy is of the long strings only (a view holds up to 12 bytes
//! inline), and DataFusion compacts the same way before it writes a spill file.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, GenericByteViewArray, RecordBatch};
use datafusion::arrow::datatypes::{ByteViewType, DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::sorts::sort::SortExec;

use super::sort_steps::{BatchStep, PartitionStep, above_full_sorts, under_full_sorts};

/// The step that compacts each batch's view columns (see the module); plans show it as
/// `CompactViewsExec`.
#[derive(Debug)]
struct CompactViews;

impl BatchStep for CompactViews {
    fn name(&self) -> &'static str {
        "CompactViewsExec"
    }

    fn for_partition(&self, _: usize) -> PartitionStep {
        Box::new(|batch| compact(&batch))
    }
}

/// `batch` with each view column whose buffers hold more than twice what its views use copied
/// into buffers of its own; the batch itself (cheaply cloned) when none does.
pub fn compact(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut columns: Option<Vec<ArrayRef>> = None;
    for (i, column) in batch.columns().iter().enumerate() {
        let compacted = match column.data_type() {
            DataType::Utf8View => compact_views(column.as_string_view()),
            DataType::BinaryView => compact_views(column.as_binary_view()),
            _ => None,
        };
        if let Some(compacted) = compacted {
            columns.get_or_insert_with(|| batch.columns().to_vec())[i] = compacted;
        }
    }
    match columns {
        Some(columns) => Ok(RecordBatch::try_new(batch.schema(), columns)?),
        None => Ok(batch.clone()),
    }
}

/// The compacted copy of `array`, or None when its buffers hold at most twice what it uses.
fn compact_views<T: ByteViewType + ?Sized>(array: &GenericByteViewArray<T>) -> Option<ArrayRef> {
    let held: usize = array.data_buffers().iter().map(|b| b.capacity()).sum();
    (held > 2 * array.total_buffer_bytes_used()).then(|| Arc::new(array.gc()) as ArrayRef)
}

/// The physical rule that puts a compaction (`CompactViewsExec`) under and one above every sort
/// that buffers all its input (not a top-k sort, which keeps only its k rows) when its rows have
/// view columns.
#[derive(Debug, Default)]
pub struct CompactViewsAroundSorts;

impl PhysicalOptimizerRule for CompactViewsAroundSorts {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let step_for = |sort: &SortExec| has_views(&sort.schema()).then(|| Arc::new(CompactViews) as _);
        above_full_sorts(under_full_sorts(plan, step_for)?, step_for)
    }

    fn name(&self) -> &str {
        "compact_views_around_sorts"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `schema` has a top-level view column.
fn has_views(schema: &SchemaRef) -> bool {
    schema.fields().iter().any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringViewArray;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_plan::spill::get_record_batch_memory_size;

    fn batch_of(array: StringViewArray) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(array)]).unwrap()
    }

    #[test]
    fn a_slice_of_a_large_page_is_copied_into_buffers_of_its_own() {
        let page: StringViewArray =
            (0..10_000).map(|i| Some(format!("a string longer than twelve bytes {i:05}"))).collect();
        let slice = batch_of(page.slice(100, 50));
        let compacted = compact(&slice).unwrap();
        assert_eq!(
            compacted.column(0).as_string_view().iter().collect::<Vec<_>>(),
            slice.column(0).as_string_view().iter().collect::<Vec<_>>()
        );
        let before = get_record_batch_memory_size(&slice);
        let after = get_record_batch_memory_size(&compacted);
        assert!(before > 300_000, "the slice is charged the whole page: {before}");
        assert!(after < 4_000, "the compacted slice holds its 50 strings: {after}");
    }

    #[test]
    fn a_batch_interleaved_from_many_as_a_merge_emits_it_is_copied_into_buffers_of_its_own() {
        use datafusion::arrow::compute::interleave_record_batch;

        // Eight sorted runs of 1,000 rows; a merge's output batch takes every eighth row of each.
        let runs: Vec<RecordBatch> = (0..8)
            .map(|run| {
                batch_of(
                    (0..1_000)
                        .map(|i| Some(format!("run {run} holds a string longer than twelve bytes {i:05}")))
                        .collect(),
                )
            })
            .collect();
        let picks: Vec<(usize, usize)> = (0..1_000).map(|i| (i % 8, i)).collect();
        let merged = interleave_record_batch(&runs.iter().collect::<Vec<_>>(), &picks).unwrap();
        let compacted = compact(&merged).unwrap();
        assert_eq!(
            compacted.column(0).as_string_view().iter().collect::<Vec<_>>(),
            merged.column(0).as_string_view().iter().collect::<Vec<_>>()
        );
        let before = get_record_batch_memory_size(&merged);
        let after = get_record_batch_memory_size(&compacted);
        assert!(before > 5 * after, "charged all eight runs' strings: {before} against {after}");
    }

    #[test]
    fn a_column_that_uses_its_buffers_is_left_as_it_is() {
        let page: StringViewArray =
            (0..10_000).map(|i| Some(format!("a string longer than twelve bytes {i:05}"))).collect();
        let compacted = compact(&batch_of(page.slice(100, 50))).unwrap();
        let inline = batch_of((0..100).map(|i| Some(format!("{i}"))).collect::<StringViewArray>().slice(10, 5));
        for batch in [compacted, inline] {
            assert!(Arc::ptr_eq(compact(&batch).unwrap().column(0), batch.column(0)));
        }
    }

    #[tokio::test]
    async fn every_full_sort_of_view_columns_reads_and_emits_through_a_compaction_and_a_top_k_does_not() {
        use datafusion::datasource::MemTable;
        use datafusion::execution::SessionStateBuilder;
        use datafusion::physical_plan::{collect, displayable};
        use datafusion::prelude::{SessionConfig, SessionContext};

        let page: StringViewArray =
            (0..1_000).map(|i| Some(format!("a string longer than twelve bytes {:05}", (i * 7) % 1_000))).collect();
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_physical_optimizer_rule(Arc::new(CompactViewsAroundSorts))
            .build();
        let ctx = SessionContext::new_with_state(state);
        // Two partitions: each is sorted, and a SortPreservingMergeExec merges the two.
        let halves = [page.slice(0, 500), page.slice(500, 500)].map(|half| vec![batch_of(half)]);
        let table = MemTable::try_new(halves[0][0].schema(), halves.to_vec()).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = |sql: &'static str| {
            let ctx = ctx.clone();
            async move { ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap() }
        };

        let full = plan("SELECT s FROM t ORDER BY s DESC").await;
        let text = displayable(full.as_ref()).indent(false).to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert_eq!(
            lines[..4],
            [
                "SortPreservingMergeExec: [s@0 DESC]",
                "CompactViewsExec",
                "SortExec: expr=[s@0 DESC], preserve_partitioning=[true]",
                "CompactViewsExec"
            ],
            "{text}"
        );
        assert_eq!(text.matches("CompactViewsExec").count(), 2, "{text}");
        let again = CompactViewsAroundSorts.optimize(full.clone(), &ConfigOptions::default()).unwrap();
        assert_eq!(displayable(again.as_ref()).indent(false).to_string(), text, "the rule puts no second one");
        let sorted = collect(full, ctx.task_ctx()).await.unwrap();
        let values: Vec<String> =
            sorted.iter().flat_map(|b| b.column(0).as_string_view().iter().map(|v| v.unwrap().to_string())).collect();
        assert_eq!(values.len(), 1_000);
        assert_eq!(values[0], "a string longer than twelve bytes 00999");
        assert_eq!(values[999], "a string longer than twelve bytes 00000");

        let top = plan("SELECT s FROM t ORDER BY s LIMIT 3").await;
        let text = displayable(top.as_ref()).indent(false).to_string();
        assert!(!text.contains("CompactViewsExec"), "{text}");
    }
}
