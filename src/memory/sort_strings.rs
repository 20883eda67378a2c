//! What a sort that may spill holds of its string columns: plain strings, not views.
//!
//! A Parquet reader decodes a string column as `Utf8View` (or `BinaryView`): a 16-byte view
//! a value, pointing into the page it read, so every batch of a page shares the page's whole
//! buffer. A sort that buffers its input until its share of the pool is full suffers twice.
//! DataFusion counts a batch by its buffers, so each batch is charged the whole page: measured on
//! TPC-H lineitem, 395 bytes a row, `l_comment` alone 227, where the rows hold about 180. And
//! even compacted, a view costs 16 bytes a value where `Utf8` costs a 4-byte offset. The runs the
//! sort spills are therefore shorter than the memory allows, the spill files longer, and the
//! final merge reads more of them.
//!
//! [`PlainStringsUnderSort`] puts [`PlainStringsExec`] under every sort that buffers all its
//! input (not a top-k sort, which keeps only its k rows): it copies each view column into a
//! `Utf8` (`Binary`) column of its own, the sort buffers, spills and merges those, and
//! [`ViewsAgainExec`] above it turns them back into views of the same buffers (no copy), so
//! the plan's schema and everything above the sort stay as planned. Measured on the SF10
//! lineitem sort under 512 MiB in `benches/README.md`.
//!
//! A sort whose key is computed from a view column (`ORDER BY lower(s)`) was planned for views,
//! so it keeps them: [`CompactViewsExec`] then only copies the strings a batch's views point to
//! into buffers of the batch's own when its view columns' buffers are more than twice what they
//! use, so the pool at least counts what the sort holds.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericByteViewArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{ByteViewType, DataType, Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// The physical rule that keeps the strings of every sort that buffers all its input as plain
/// strings (see the module): `ViewsAgainExec(SortExec(PlainStringsExec(input)))`, or a
/// [`CompactViewsExec`] under the sort when a sort key is computed from a view column.
#[derive(Debug, Default)]
pub struct PlainStringsUnderSort;

impl PhysicalOptimizerRule for PlainStringsUnderSort {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            let input = sort.input();
            let schema = input.schema();
            if sort.fetch().is_some() || !has_views(&schema) || input.is::<CompactViewsExec>() {
                return Ok(Transformed::no(node));
            }
            if !keys_read_views_bare(sort, &schema) {
                let compacted: Arc<dyn ExecutionPlan> = Arc::new(CompactViewsExec::new(input.clone()));
                return Ok(Transformed::yes(node.clone().with_new_children(vec![compacted])?));
            }
            let plain: Arc<dyn ExecutionPlan> = Arc::new(PlainStringsExec::new(input.clone()));
            let sorted =
                SortExec::new(sort.expr().clone(), plain).with_preserve_partitioning(sort.preserve_partitioning());
            let views = ViewsAgainExec { input: Arc::new(sorted), properties: node.properties().clone() };
            Ok(Transformed::yes(Arc::new(views) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "plain_strings_under_sort"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether every sort key of `sort` that reads a view column of `schema` is that bare column,
/// so the sort can read the column as plain strings instead.
fn keys_read_views_bare(sort: &SortExec, schema: &Schema) -> bool {
    sort.expr().iter().all(|key| {
        key.expr.downcast_ref::<Column>().is_some()
            || collect_columns(&key.expr).iter().all(|c| !is_view(schema.field(c.index()).data_type()))
    })
}

/// Passes its input's batches on with every view column as plain strings (see the module).
#[derive(Debug)]
pub struct PlainStringsExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl PlainStringsExec {
    /// Reads `input` with its view columns as `Utf8` (`Binary`). Orderings are not carried
    /// over (they are stated in terms of the input's schema): the sort above needs none.
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let schema = plain_schema(&input.schema());
        let from = input.properties();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            from.output_partitioning().clone(),
            from.emission_type,
            from.boundedness,
        );
        PlainStringsExec { input, properties: Arc::new(properties) }
    }
}

impl DisplayAs for PlainStringsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PlainStringsExec")
    }
}

impl ExecutionPlan for PlainStringsExec {
    fn name(&self) -> &'static str {
        "PlainStringsExec"
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
        Ok(Arc::new(PlainStringsExec::new(children[0].clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let out = schema.clone();
        let plain = input.map(move |batch| batch.and_then(|b| to_plain(&b, &out)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, plain)))
    }
}

/// Turns the plain strings a sort returns back into the views its plan was made for: views
/// into the same buffers, no copy. Its properties are the original sort's.
#[derive(Debug)]
pub struct ViewsAgainExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for ViewsAgainExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ViewsAgainExec")
    }
}

impl ExecutionPlan for ViewsAgainExec {
    fn name(&self) -> &'static str {
        "ViewsAgainExec"
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

    /// The sort's properties do not depend on its input's orderings (it imposes its own), so
    /// they are kept as they were planned.
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(ViewsAgainExec { input: children[0].clone(), properties: self.properties.clone() }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let out = schema.clone();
        let views = input.map(move |batch| batch.and_then(|b| recast(&b, &out)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, views)))
    }
}

/// `schema` with each top-level view column as its plain type.
fn plain_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match plain_type(f.data_type()) {
            Some(plain) => f.as_ref().clone().with_data_type(plain),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The plain type of a view type.
fn plain_type(view: &DataType) -> Option<DataType> {
    match view {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    }
}

/// `batch` with its view columns copied into plain ones, under `schema`. A column whose values
/// in one batch pass the 2 GiB a plain column's 32-bit offsets can address is an error that
/// says what to do, not a panic.
fn to_plain(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    for (i, field) in schema.fields().iter().enumerate() {
        if !matches!(field.data_type(), DataType::Utf8 | DataType::Binary) || !is_view(columns[i].data_type()) {
            continue;
        }
        let bytes = match columns[i].data_type() {
            DataType::Utf8View => value_bytes(columns[i].as_string_view()),
            _ => value_bytes(columns[i].as_binary_view()),
        };
        if bytes > i32::MAX as usize {
            return Err(DataFusionError::Execution(format!(
                "column `{}` holds {bytes} bytes in one batch of {} rows, more than a sort's plain string column \
                 can address (2 GiB); lower the batch size (datafusion: {{ execution.batch_size: ... }})",
                field.name(),
                batch.num_rows()
            )));
        }
        columns[i] = cast(&columns[i], field.data_type())?;
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The bytes of all values of `array` (inline ones included).
fn value_bytes<T: ByteViewType + ?Sized>(array: &GenericByteViewArray<T>) -> usize {
    array.views().iter().map(|v| *v as u32 as usize).sum()
}

/// `batch` cast column by column to `schema`, whose types differ only where a plain column
/// becomes a view again.
fn recast(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns =
        batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(column.clone())
                } else {
                    cast(column, field.data_type())
                }
            })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Passes its input's batches on with their view columns compacted (see the module).
#[derive(Debug)]
pub struct CompactViewsExec {
    input: Arc<dyn ExecutionPlan>,
}

impl CompactViewsExec {
    /// Compacts the batches of `input`.
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        CompactViewsExec { input }
    }
}

impl DisplayAs for CompactViewsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CompactViewsExec")
    }
}

impl ExecutionPlan for CompactViewsExec {
    fn name(&self) -> &'static str {
        "CompactViewsExec"
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
        Ok(Arc::new(CompactViewsExec::new(children[0].clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let compacted = input.map(|batch| batch.and_then(|b| compact(&b)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, compacted)))
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

/// Whether `data_type` is a view type.
fn is_view(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8View | DataType::BinaryView)
}

/// Whether `schema` has a top-level view column.
fn has_views(schema: &SchemaRef) -> bool {
    schema.fields().iter().any(|f| is_view(f.data_type()))
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
    fn a_column_that_uses_its_buffers_is_left_as_it_is() {
        let page: StringViewArray =
            (0..10_000).map(|i| Some(format!("a string longer than twelve bytes {i:05}"))).collect();
        let compacted = compact(&batch_of(page.slice(100, 50))).unwrap();
        let inline = batch_of((0..100).map(|i| Some(format!("{i}"))).collect::<StringViewArray>().slice(10, 5));
        for batch in [compacted, inline] {
            assert!(Arc::ptr_eq(compact(&batch).unwrap().column(0), batch.column(0)));
        }
    }

    #[test]
    fn a_column_past_what_plain_offsets_address_is_an_error_that_says_what_to_do() {
        use datafusion::arrow::array::ByteView;
        use datafusion::arrow::buffer::{Buffer, ScalarBuffer};

        // 2,049 views of one 1 MiB string: 2,049 MiB of values in one batch, 1 MiB held.
        let long = vec![b'x'; 1 << 20];
        let view = ByteView::new(1 << 20, &long[..4]).with_buffer_index(0).with_offset(0).as_u128();
        let array = StringViewArray::new(ScalarBuffer::from(vec![view; 2_049]), vec![Buffer::from_vec(long)], None);
        let batch = batch_of(array);
        let err = to_plain(&batch, &plain_schema(&batch.schema())).unwrap_err().to_string();
        assert_eq!(
            err,
            "Execution error: column `s` holds 2148532224 bytes in one batch of 2049 rows, more than a sort's \
             plain string column can address (2 GiB); lower the batch size (datafusion: { execution.batch_size: ... })"
        );
    }

    fn session_with_rule(partitions: usize) -> datafusion::prelude::SessionContext {
        use datafusion::execution::SessionStateBuilder;
        use datafusion::prelude::{SessionConfig, SessionContext};
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(SessionConfig::new().with_target_partitions(partitions))
            .with_physical_optimizer_rule(Arc::new(PlainStringsUnderSort))
            .build();
        SessionContext::new_with_state(state)
    }

    async fn plan_text(ctx: &datafusion::prelude::SessionContext, sql: &str) -> (Arc<dyn ExecutionPlan>, String) {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(false).to_string();
        (plan, text)
    }

    #[tokio::test]
    async fn a_full_sort_buffers_plain_strings_and_returns_views_in_order() {
        use datafusion::physical_plan::collect;

        let ctx = session_with_rule(2);
        let page: StringViewArray =
            (0..1_000).map(|i| Some(format!("a string longer than twelve bytes {:05}", (i * 7) % 1_000))).collect();
        // Two partitions, so each is sorted on its own and the two merged above the sorts.
        let half = batch_of(page);
        ctx.register_table(
            "t",
            Arc::new(
                datafusion::datasource::MemTable::try_new(
                    half.schema(),
                    vec![vec![half.slice(0, 500)], vec![half.slice(500, 500)]],
                )
                .unwrap(),
            ),
        )
        .unwrap();

        let (full, text) = plan_text(&ctx, "SELECT s, length(s) AS n FROM t ORDER BY s DESC").await;
        let (views, sort, plain) = (
            text.find("ViewsAgainExec").unwrap(),
            text.find("SortExec").unwrap(),
            text.find("PlainStringsExec").unwrap(),
        );
        assert!(views < sort && sort < plain, "{text}");
        assert_eq!(text.matches("PlainStringsExec").count(), text.matches("SortExec").count(), "{text}");
        assert_eq!(full.schema().field(0).data_type(), &DataType::Utf8View);
        let sorted = collect(full, ctx.task_ctx()).await.unwrap();
        assert!(sorted.iter().all(|b| b.column(0).data_type() == &DataType::Utf8View));
        let values: Vec<String> =
            sorted.iter().flat_map(|b| b.column(0).as_string_view().iter().map(|v| v.unwrap().to_string())).collect();
        let mut expected: Vec<String> =
            (0..1_000).map(|i| format!("a string longer than twelve bytes {i:05}")).collect();
        expected.reverse();
        assert_eq!(values, expected);
    }

    #[tokio::test]
    async fn a_key_computed_from_views_keeps_them_compacted_and_a_top_k_is_left_alone() {
        let ctx = session_with_rule(1);
        let page: StringViewArray = (0..100).map(|i| Some(format!("A String Longer Than Twelve {i:03}"))).collect();
        ctx.register_batch("t", batch_of(page)).unwrap();

        let (computed, text) = plan_text(&ctx, "SELECT s FROM t ORDER BY lower(s) DESC").await;
        assert!(text.contains("CompactViewsExec") && !text.contains("PlainStringsExec"), "{text}");
        let sorted = datafusion::physical_plan::collect(computed, ctx.task_ctx()).await.unwrap();
        assert_eq!(sorted[0].column(0).as_string_view().value(0), "A String Longer Than Twelve 099");

        let (_, text) = plan_text(&ctx, "SELECT s FROM t ORDER BY s LIMIT 3").await;
        assert!(!text.contains("CompactViewsExec") && !text.contains("PlainStringsExec"), "{text}");
    }
}
