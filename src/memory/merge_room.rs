//! The room a sort must leave in its share of the pool for the merge that spills it.
//!
//! When a DataFusion 54 sort spills, it sorts each buffered batch and merges them into one run
//! on disk. That merge cannot spill, and it reserves, beside the batches the sort already holds,
//! the row encoding of every batch's sort keys (see `RowCursorStream` in DataFusion's
//! `sorts/stream.rs`). A sort that filled its share with batches leaves the merge only
//! `sort_spill_reservation_bytes` (10 MiB), enough for narrow keys but not for string keys. A
//! sort-merge join of lineitem SF1 with an aggregate of itself on `(l_comment, l_shipmode)`
//! sorts batches whose keys encode to 61 of the 136 bytes a row the sort reserves (64 of 109 on
//! the aggregate's side); without this room its merges failed under 300 and 600 MiB in six runs
//! of six, with it the join ran under 200 MiB to 1 GiB in every run (benches/README.md).
//!
//! `MeasureKeysExec`, which [`MeasureKeysBeforeSort`] puts under every sort that may spill,
//! encodes the keys of the first batch each partition of the sort sees and records in a
//! [`MergeRoom`] the fraction of what the sort reserves for it that the keys take; the pool
//! ([`super::sort_share`]) then stops the sort's buffered batches that much short of its share.
//! The largest fraction any sort of the session measured wins, so a plan with several sorts is
//! held to the widest keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::common::config::ConfigOptions;
use datafusion::common::utils::memory::get_record_batch_memory_size;
use datafusion::error::Result;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

use super::external_sort::SortKeys;
use super::sort_steps::{BatchStep, PartitionStep, under_full_sorts};

/// Parts per million: the unit of [`MergeRoom`]'s fraction.
const PPM: usize = 1_000_000;

/// Keys vary between batches, and a run's merge also holds its output's first batches: the
/// measured fraction is raised by a quarter.
const MARGIN_PERCENT: usize = 125;

/// The most of its share a sort leaves for its merge: past half, runs get short enough that a
/// larger limit is the better answer.
const MAX_ROOM_PPM: usize = PPM / 2;

/// The fraction of a sort partition's share that its buffered batches leave for the merge that
/// spills them. Shared by a session's `MeasureKeysExec`s, which raise it, and its pool, which
/// reads it. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct MergeRoom(Arc<AtomicUsize>);

impl MergeRoom {
    /// The bytes of a share of `share` bytes to leave for the merge.
    pub fn of(&self, share: usize) -> usize {
        // u128: `share * ppm` may not fit a usize on a 32-bit target.
        (share as u128 * self.0.load(Ordering::Relaxed) as u128 / PPM as u128) as usize
    }

    /// Sets the fraction, in parts per million, for the pool's tests.
    #[cfg(test)]
    pub(crate) fn record_fraction_for_test(&self, ppm: usize) {
        self.0.store(ppm, Ordering::Relaxed);
    }

    /// Raises the fraction to `key_bytes` over `reserved_bytes` (with the margin) if that is larger.
    fn record(&self, key_bytes: usize, reserved_bytes: usize) {
        if reserved_bytes == 0 {
            return;
        }
        let ppm = (key_bytes as u128 * (PPM * MARGIN_PERCENT / 100) as u128 / reserved_bytes as u128) as usize;
        self.0.fetch_max(ppm.min(MAX_ROOM_PPM), Ordering::Relaxed);
    }
}

/// What a sort reserves for `batch` (DataFusion's `get_reserved_bytes_for_record_batch`: its
/// memory plus the size of its slices) and what the row encoding of its `ordering` keys takes.
fn measure(batch: &RecordBatch, ordering: &LexOrdering) -> Result<(usize, usize)> {
    let sliced: usize = batch.columns().iter().map(|c| c.to_data().get_slice_memory_size()).sum::<Result<_, _>>()?;
    let reserved = get_record_batch_memory_size(batch) + sliced;
    let keys = SortKeys::new(ordering, &batch.schema())?;
    let rows = keys.rows(batch)?;
    Ok((rows.size() + keys.size(), reserved))
}

/// The step that passes batches on unchanged and measures the first non-empty one of each
/// partition by the sort's keys into its [`MergeRoom`]; plans show it as `MeasureKeysExec`.
#[derive(Debug)]
struct MeasureKeys {
    ordering: LexOrdering,
    room: MergeRoom,
}

impl BatchStep for MeasureKeys {
    fn name(&self) -> &'static str {
        "MeasureKeysExec"
    }

    fn for_partition(&self, partition: usize) -> PartitionStep {
        let (ordering, room) = (self.ordering.clone(), self.room.clone());
        let mut measured = false;
        Box::new(move |batch| {
            if measured || batch.num_rows() == 0 {
                return Ok(batch);
            }
            measured = true;
            match measure(&batch, &ordering) {
                Ok((keys, reserved)) => {
                    room.record(keys, reserved);
                    tracing::debug!(
                        partition,
                        rows = batch.num_rows(),
                        key_bytes = keys,
                        reserved_bytes = reserved,
                        room_ppm = room.0.load(Ordering::Relaxed),
                        "a sort's first batch measured: its merge's room in its share"
                    );
                }
                // A key the row format cannot encode: a sort on one column merges without
                // it, so the sort goes on, with the room the other sorts measured.
                Err(e) => tracing::debug!(partition, "a sort's keys not measured: {e}"),
            }
            Ok(batch)
        })
    }
}

/// The physical rule that puts a measurement of the keys (`MeasureKeysExec`) under every sort
/// that buffers all its input (not a top-k sort, which keeps only its k rows).
#[derive(Debug)]
pub struct MeasureKeysBeforeSort {
    room: MergeRoom,
}

impl MeasureKeysBeforeSort {
    /// Measures into `room`, the one the session's pool reads.
    pub fn new(room: MergeRoom) -> Self {
        MeasureKeysBeforeSort { room }
    }
}

impl PhysicalOptimizerRule for MeasureKeysBeforeSort {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        under_full_sorts(plan, |sort| {
            Some(Arc::new(MeasureKeys { ordering: sort.expr().clone(), room: self.room.clone() }) as _)
        })
    }

    fn name(&self) -> &str {
        "measure_keys_before_sort"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::PhysicalSortExpr;
    use datafusion::physical_expr::expressions::col;

    use super::*;

    fn batch(comment: &str) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("comment", DataType::Utf8, false),
        ]));
        let ids = Int64Array::from_iter_values(0..1000);
        let comments = StringArray::from_iter_values((0..1000).map(|_| comment));
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(comments)]).unwrap()
    }

    fn ordering(batch: &RecordBatch, columns: &[&str]) -> LexOrdering {
        let exprs = columns.iter().map(|c| PhysicalSortExpr::new_default(col(c, &batch.schema()).unwrap()));
        LexOrdering::new(exprs).unwrap()
    }

    #[test]
    fn string_keys_take_more_room_than_an_integer_key_and_the_widest_wins() {
        let batch = batch(&"x".repeat(40));
        let room = MergeRoom::default();
        let (keys, reserved) = measure(&batch, &ordering(&batch, &["id"])).unwrap();
        room.record(keys, reserved);
        let narrow = room.of(1_000_000);
        // 9 bytes a row encoded and 8 of offsets, of 2 × (8 + 40 + 4) reserved, plus a quarter.
        assert!((150_000..250_000).contains(&narrow), "{narrow}");
        let (keys, reserved) = measure(&batch, &ordering(&batch, &["comment", "id"])).unwrap();
        room.record(keys, reserved);
        let wide = room.of(1_000_000);
        assert!(wide > 2 * narrow && wide <= 500_000, "{wide} against {narrow}");
        // A narrower sort measured later does not lower it.
        let (keys, reserved) = measure(&batch, &ordering(&batch, &["id"])).unwrap();
        room.record(keys, reserved);
        assert_eq!(room.of(1_000_000), wide);
    }

    #[test]
    fn the_room_is_at_most_half_the_share() {
        let room = MergeRoom::default();
        room.record(10, 1);
        assert_eq!(room.of(1000), 500);
        room.record(0, 0);
        assert_eq!(room.of(1000), 500);
    }
}
