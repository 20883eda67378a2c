//! The sort a spilling plan runs in place of DataFusion's: each input partition's batches are
//! buffered while the pool has room and then sorted at once through their keys' row encoding
//! ([`runs`]), a run per spill file; at the end every run of every partition is merged in one
//! pass ([`merge`]) into the one sorted output partition. Inside, the rows are held in narrower
//! types ([`packing`]), a buffer holds its fixed-width columns row by row ([`row_block`]), both
//! phases copy rows out of the batches they hold through [`gather`], and the spill files are
//! written past the page cache, uncompressed, on a thread of their own, while the disk keeps up
//! ([`spill_file`]), and freed as the merge reads them ([`reclaim`]).
//!
//! DataFusion 54's sort sorts every batch as it arrives, merges the sorted batches of a run into
//! its spill file, merges each partition's spill files, and merges the partitions: on lineitem
//! SF10 under 512 MiB, merging each run's 2,048-row batches was 35% of the first phase's CPU, and
//! the merges of the end 28% of the last phase's (benches/README.md). Here a run is sorted once,
//! by a 16-byte prefix of each row's key with the whole key where prefixes tie, its rows are
//! copied once into the spill file, and the merge reads each run one small batch at a time, so
//! that all the runs of a large sort fit one merge pass.
//!
//! [`ExternalSorts`] puts an [`ExternalSortExec`] in place of every full sort whose output is one
//! partition (a `SortPreservingMergeExec` over a partitioned `SortExec`, or a `SortExec` of one
//! output partition) when the row format can encode its keys. Sorts feeding a sort-merge join
//! stay DataFusion's: their output is partitioned.
//!
//! The merge runs on three threads beside the ones that write its output: one reads each run a
//! batch ahead (Arrow IPC), one compares keys and chooses the rows of each output batch,
//! and the reader of the output copies them into it.
//!
//! Memory: each input partition's buffer is a reservation that can spill
//! (`ExternalSortRuns[p]`), so the pool shares its room between them; the merge reserves, before
//! it starts, three batches of every run it reads, and when the pool refuses, merges the runs in
//! groups first.

mod gather;
mod merge;
mod packing;
mod reclaim;
mod row_block;
mod runs;
mod spill_file;

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};

use super::allocator::HugePages;
use merge::{Merge, read_ahead};
use packing::Packing;
pub use runs::SortKeys;
use runs::{Run, RunReader, SpilledRun, sort_partition, write_run};
use spill_file::SpillDisk;

/// Sorts all the partitions of its input into one sorted partition (see the module).
#[derive(Debug)]
pub struct ExternalSortExec {
    input: Arc<dyn ExecutionPlan>,
    ordering: LexOrdering,
    properties: Arc<PlanProperties>,
}

impl ExternalSortExec {
    /// `input`'s rows, every partition, in `ordering`.
    pub fn new(input: Arc<dyn ExecutionPlan>, ordering: LexOrdering) -> Self {
        // What DataFusion's sort into one partition declares: its ordering, and the input's
        // equivalences.
        let properties = SortExec::new(ordering.clone(), input.clone()).properties().clone();
        ExternalSortExec { input, ordering, properties }
    }
}

impl DisplayAs for ExternalSortExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ExternalSortExec: expr=[{}]", self.ordering)
    }
}

impl ExecutionPlan for ExternalSortExec {
    fn name(&self) -> &str {
        "ExternalSortExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(ExternalSortExec::new(children[0].clone(), self.ordering.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("ExternalSortExec has one partition, not {partition}")));
        }
        let schema = self.schema();
        let keys = Arc::new(SortKeys::new(&self.ordering, &schema)?);
        let packing = Arc::new(Packing::new(&schema, &self.ordering));
        let inputs = (0..self.input.output_partitioning().partition_count())
            .map(|p| self.input.execute(p, context.clone()))
            .collect::<Result<Vec<_>>>()?;
        let mut builder = RecordBatchReceiverStreamBuilder::new(schema.clone(), 2);
        let tx = builder.tx();
        builder.spawn(async move {
            // Both phases copy rows from random places of what they hold (see the allocator).
            let _huge_pages = HugePages::hold();
            let pool = context.memory_pool();
            let disk = Arc::new(SpillDisk::new(context.runtime_env().disk_manager.clone()));
            let tasks: Vec<_> = inputs
                .into_iter()
                .enumerate()
                .map(|(p, input)| {
                    let reservation =
                        MemoryConsumer::new(format!("ExternalSortRuns[{p}]")).with_can_spill(true).register(pool);
                    SpawnedTask::spawn(sort_partition(input, keys.clone(), packing.clone(), reservation, disk.clone()))
                })
                .collect();
            let mut runs = Vec::new();
            for task in tasks {
                runs.extend(task.join_unwind().await.map_err(|e| DataFusionError::External(Box::new(e)))??);
            }
            let batch_rows = context.session_config().batch_size();
            let merge_reservation = MemoryConsumer::new("ExternalSortMerge").register(pool);
            SpawnedTask::spawn_blocking(move || {
                let inside = packing.inside().clone();
                let merged = merged(inside, keys, runs, batch_rows, &disk, merge_reservation)?;
                for batch in merged {
                    if tx.blocking_send(batch.and_then(|b| packing.unpack(&b))).is_err() {
                        break; // the stream was dropped
                    }
                }
                Ok(())
            })
            .join_unwind()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
        });
        Ok(builder.build())
    }
}

/// The rows of `runs` in order, in batches of `batch_rows`. Runs in memory are written to spill
/// files first when there are runs on disk too; files are merged in groups first when the pool
/// has no room to read them all at once.
fn merged(
    schema: SchemaRef,
    keys: Arc<SortKeys>,
    runs: Vec<Run>,
    batch_rows: usize,
    disk: &SpillDisk,
    mut reservation: MemoryReservation,
) -> Result<RunReader> {
    let on_disk = runs.iter().any(|r| matches!(r, Run::File(_)));
    if !on_disk {
        let readers: Vec<RunReader> = runs
            .into_iter()
            .map(|run| match run {
                Run::Memory(buffer) => Box::new(buffer.read(batch_rows)) as RunReader,
                Run::File(_) => unreachable!("none is on disk"),
            })
            .collect();
        return one_pass(schema, keys, readers, batch_rows);
    }
    let mut files: Vec<SpilledRun> = runs
        .into_iter()
        .map(|run| match run {
            Run::Memory(buffer) => buffer.spill(disk),
            Run::File(file) => Ok(file),
        })
        .collect::<Result<_>>()?;
    loop {
        let fan_in = reserve_fan_in(&mut reservation, &files)?;
        if fan_in >= files.len() {
            let readers = files.into_iter().map(SpilledRun::read).collect::<Result<Vec<_>>>()?;
            let mut merge = one_pass(schema, keys, readers, batch_rows)?;
            // The reservation is held as long as the merge reads.
            return Ok(Box::new(std::iter::from_fn(move || {
                let _ = &reservation;
                merge.next()
            })));
        }
        // Merge the first runs into one, and try again.
        let group: Vec<SpilledRun> = files.drain(..fan_in).collect();
        let rows = group.iter().map(|f| f.batch_rows).max().unwrap_or(batch_rows);
        let readers = group.into_iter().map(SpilledRun::read).collect::<Result<Vec<_>>>()?;
        let merge = Merge::new(schema.clone(), keys.clone(), read_ahead(readers)?, rows)?;
        files.push(write_run(disk, &schema, merge)?);
        reservation.free();
    }
}

/// One merge of `readers` (their batches as they are when there is only one).
fn one_pass(
    schema: SchemaRef,
    keys: Arc<SortKeys>,
    mut readers: Vec<RunReader>,
    batch_rows: usize,
) -> Result<RunReader> {
    if readers.len() == 1 {
        return Ok(readers.pop().expect("one"));
    }
    Ok(Merge::new(schema, keys, read_ahead(readers)?, batch_rows)?.in_two_threads())
}

/// How many of `files` one merge pass can read at once: reserves what reading each of them holds
/// ([`SpilledRun::held_while_read`]), or of as many as the pool has room for (at least two; the
/// pool's refusal otherwise).
fn reserve_fan_in(reservation: &mut MemoryReservation, files: &[SpilledRun]) -> Result<usize> {
    let per_run = files.iter().map(SpilledRun::held_while_read).max().unwrap_or(0);
    let mut fan_in = files.len();
    loop {
        match reservation.try_resize(fan_in * per_run) {
            Ok(()) => return Ok(fan_in),
            Err(e) if fan_in <= 2 => return Err(e),
            Err(_) => fan_in = (fan_in / 2).max(2),
        }
    }
}

/// The physical rule that puts an [`ExternalSortExec`] in place of every full sort into one
/// partition whose keys the row format encodes (see the module).
#[derive(Debug, Default)]
pub struct ExternalSorts;

impl ExternalSorts {
    fn replacement(node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        let sort = if let Some(merge) = node.downcast_ref::<SortPreservingMergeExec>() {
            let sort = merge.input().downcast_ref::<SortExec>()?;
            (merge.fetch().is_none() && sort.preserve_partitioning() && sort.expr() == merge.expr()).then_some(sort)?
        } else {
            let sort = node.downcast_ref::<SortExec>()?;
            (!sort.preserve_partitioning()).then_some(sort)?
        };
        if sort.fetch().is_some() || SortKeys::new(sort.expr(), &sort.input().schema()).is_err() {
            return None;
        }
        Some(Arc::new(ExternalSortExec::new(sort.input().clone(), sort.expr().clone())))
    }
}

impl PhysicalOptimizerRule for ExternalSorts {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            Ok(match Self::replacement(&node) {
                Some(sort) => Transformed::yes(sort),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "external_sorts"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringViewArray,
    };
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::execution::memory_pool::{FairSpillPool, GreedyMemoryPool, MemoryPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::physical_expr::PhysicalSortExpr;
    use datafusion::physical_expr::expressions::col;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// `n` rows over `partitions` partitions: a key with repeats and NULLs, long and short
    /// strings (some NULL), a float, and a unique id, in a scrambled order; then a decimal and a
    /// string that are not sorted by (the sort holds them packed), with NULLs.
    fn table(n: i64, partitions: usize) -> MemTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8View, true),
            Field::new("f", DataType::Float64, false),
            Field::new("id", DataType::Int64, false),
            Field::new("d", DataType::Decimal128(15, 2), true),
            Field::new("note", DataType::Utf8View, true),
        ]));
        let scramble = |i: i64| (i * 7_919) % n;
        let batch = |ids: Vec<i64>| {
            let k: Int64Array = ids.iter().map(|&i| (i % 13 != 0).then_some(scramble(i) % 97)).collect();
            let s: StringViewArray = ids
                .iter()
                .map(|&i| match i % 5 {
                    0 => None,
                    1 => Some(format!("{}", scramble(i) % 11)),
                    _ => Some(format!("a value longer than a view holds {:06}", scramble(i) % 1_000)),
                })
                .collect();
            let f: Float64Array = ids.iter().map(|&i| (scramble(i) % 31) as f64 / 4.0).collect();
            let id: Int64Array = ids.iter().copied().collect();
            let d = ids
                .iter()
                .map(|&i| (i % 7 != 0).then_some(i128::from(scramble(i)) * 1_000_003 - 500_000))
                .collect::<Decimal128Array>()
                .with_precision_and_scale(15, 2)
                .unwrap();
            let note: StringViewArray = ids
                .iter()
                .map(|&i| {
                    (i % 3 != 0)
                        .then(|| if i % 2 == 0 { format!("n{i}") } else { format!("a note longer than twelve {i}") })
                })
                .collect();
            let columns: Vec<ArrayRef> =
                vec![Arc::new(k), Arc::new(s), Arc::new(f), Arc::new(id), Arc::new(d), Arc::new(note)];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        };
        let ids: Vec<i64> = (0..n).map(scramble).collect();
        let per = ids.len().div_ceil(partitions);
        let parts = ids.chunks(per).map(|part| part.chunks(1_000).map(|c| batch(c.to_vec())).collect()).collect();
        MemTable::try_new(schema.clone(), parts).unwrap()
    }

    fn context(pool: Option<Arc<dyn MemoryPool>>, external: bool) -> SessionContext {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(pool) = pool {
            runtime = runtime.with_memory_pool(pool);
        }
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(SessionConfig::new().with_target_partitions(3).with_batch_size(700))
            .with_runtime_env(runtime.build_arc().unwrap());
        if external {
            state = state.with_physical_optimizer_rule(Arc::new(ExternalSorts));
        }
        SessionContext::new_with_state(state.build())
    }

    const SORTED: &str = "SELECT * FROM t ORDER BY k DESC NULLS FIRST, s NULLS LAST, f, id";

    async fn sorted(ctx: &SessionContext, n: i64) -> (RecordBatch, String) {
        ctx.register_table("t", Arc::new(table(n, 3))).unwrap();
        let plan = ctx.sql(SORTED).await.unwrap().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        let batches = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
        (concat_batches(&plan.schema(), &batches).unwrap(), text)
    }

    #[tokio::test]
    async fn spilled_runs_merge_into_the_order_datafusion_sorts_in() {
        let n = 60_000;
        let (expected, theirs) = sorted(&context(None, false), n).await;
        // Each partition buffers ~200 KiB at most: dozens of runs, written and merged.
        let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(600 << 10));
        let (got, ours) = sorted(&context(Some(pool), true), n).await;
        assert!(theirs.starts_with("SortPreservingMergeExec"), "{theirs}");
        assert!(
            ours.starts_with(
                "ExternalSortExec: expr=[k@0 DESC, s@1 ASC NULLS LAST, f@2 ASC NULLS LAST, id@3 ASC NULLS LAST]"
            ),
            "{ours}"
        );
        assert_eq!(got.num_rows(), n as usize);
        assert_eq!(got, expected);
        let ids = got.column(3).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(ids.iter().flatten().sum::<i64>(), n * (n - 1) / 2);
    }

    #[tokio::test]
    async fn a_sort_that_fits_merges_its_partitions_in_memory_in_the_same_order() {
        let n = 20_000;
        let (expected, _) = sorted(&context(None, false), n).await;
        let (got, ours) = sorted(&context(None, true), n).await;
        assert!(ours.starts_with("ExternalSortExec"), "{ours}");
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn a_top_k_and_a_sort_into_partitions_stay_datafusion_s() {
        let ctx = context(None, true);
        ctx.register_table("t", Arc::new(table(1_000, 3))).unwrap();
        let plan = ctx.sql("SELECT * FROM t ORDER BY k LIMIT 5").await.unwrap().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        assert!(!text.contains("ExternalSortExec") && text.contains("SortExec: TopK"), "{text}");
    }

    #[tokio::test]
    async fn runs_the_pool_cannot_read_at_once_are_merged_in_groups_first() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let ordering = LexOrdering::new([PhysicalSortExpr::new_default(col("v", &schema).unwrap())]).unwrap();
        let keys = Arc::new(SortKeys::new(&ordering, &schema).unwrap());
        let manager = Arc::new(datafusion::execution::disk_manager::DiskManager::builder().build().unwrap());
        let disk = SpillDisk::new(manager);
        // Nine runs of 3 batches of 100 rows: run r holds r, r + 9, r + 18, ...
        let mut runs: Vec<Run> = (0..9_i64)
            .map(|r| {
                let batches = (0..3_i64).map(|b| {
                    let values: Int64Array = (0..100_i64).map(|i| r + 9 * (b * 100 + i)).collect();
                    Ok(RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap())
                });
                Run::File(write_run(&disk, &schema, batches).unwrap())
            })
            .collect();
        let Run::File(first) = &runs[0] else { unreachable!() };
        let per_run = first.held_while_read();
        // A run with no rows merged in the first group took the group's batch rows (0) with it.
        runs.insert(0, Run::File(write_run(&disk, &schema, std::iter::empty()).unwrap()));
        // Room to read three runs at once: the runs are merged in groups first.
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(3 * per_run + 100));
        let reservation = MemoryConsumer::new("merge").register(&pool);
        let mut merged = merged(schema, keys, runs, 250, &disk, reservation).unwrap();
        let first = merged.next().unwrap().unwrap();
        assert!(pool.reserved() > 0, "the merge holds its reservation while it reads");
        let values: Vec<i64> = std::iter::once(first)
            .chain(merged.map(|b| b.unwrap()))
            .flat_map(|b| b.column(0).as_primitive::<datafusion::arrow::datatypes::Int64Type>().values().to_vec())
            .collect();
        assert_eq!(values, (0..2_700).collect::<Vec<i64>>());
        assert_eq!(pool.reserved(), 0, "the merge's reservation is let go of when it ends");
    }
}
