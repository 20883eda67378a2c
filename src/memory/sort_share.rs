//! A memory pool that gives each sorting partition a share of the pool of its own.
//!
//! A DataFusion 54 sort partition holds two reservations: its buffered batches (`ExternalSorter`,
//! which can spill) and its merges (`ExternalSorterMerge`, which cannot): the merge of its
//! buffered batches when it spills, and at the end the merge of its spill files, which reads as
//! many files at once as the reservation can grow to. A fair spill pool bounds each partition's
//! buffered batches, but not its merges, so with several partitions one partition's merge can
//! take what another partition needs to spill or to start its own merge, and that reservation
//! fails: lineitem SF10 under 512 MiB with two partitions failed this way within seconds.
//!
//! Here each partition's two reservations together stay within an equal share of the pool, and
//! its merge alone within seven eighths of that share; the last eighth of every share is left
//! for what runs beside the merges (the merge of the sorted partitions). Within its share a
//! partition cannot starve itself: when it spills, its batches move from the first reservation
//! into the merge's, and DataFusion reserves twice a batch's size while buffering it, so the
//! merge finds room; a final merge that reaches its share merges fewer files per pass, and every
//! pass re-writes the runs it merges, so the merge gets as much of the share as can be spared.
//! Several sorts in one plan (a sort-merge join sorts both sides) share their partition's share.
//!
//! Within its share, a partition's buffered batches may grow as long as the pool as a whole has
//! room, not only up to the fair pool's equal fraction of what the merges leave: that fraction
//! shrinks whenever another partition merges (a merge cannot spill), so a partition sorting
//! beside one that spilled cut its runs to 60–80 MB where its share held 160, made more of them,
//! and at the end could sometimes not read them all in one merge pass: the merge then re-wrote
//! most of the data first. lineitem SF10 under 512 MiB: 0.79× the wall time, 0.81× the CPU and
//! 403 instead of 492 MiB (farm-bench, 3 pairs; benches/README.md). Every other consumer that
//! can spill keeps the fair pool's fraction and, like the rest, stays within the pool's total.
//!
//! A partition's buffered batches also stop short of its share by the room its merge will need
//! when they spill ([`super::merge_room`]: the row encoding of their sort keys, measured), and
//! short of the pool's total by that room too: a sort-merge join under 300 MiB otherwise filled
//! the pool beside its aggregate, and the merge of the next spill failed (3 runs of 8; 0 of 8
//! with the room kept).
//!
//! The Parquet writer's buffers (its open row group) are set aside outside the pool under a
//! limit ([`super::accounting`]; without one, the budget's margin holds them), so its
//! reservations are not charged to the pool a second time: charged, a merge at its share would
//! leave the writer too little and fail the run.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::common::{Result, resources_datafusion_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};

use super::merge_room::MergeRoom;

/// The prefix DataFusion gives the names of both reservations of a sort partition,
/// `ExternalSorter[3]` and `ExternalSorterMerge[3]`.
const SORT: &str = "ExternalSorter";

/// The prefix of the merge's reservation.
const SORT_MERGE: &str = "ExternalSorterMerge";

/// The prefix of the Parquet writer's reservations (`ParquetSink(ArrowColumnWriter)`, ...).
const PARQUET_WRITER: &str = "ParquetSink";

/// Wraps a pool; the sort reservations of one partition may hold at most `share` bytes of it,
/// its merge at most `merge_share`, its buffered batches `share` less the merge's room.
#[derive(Debug)]
pub struct SortSharePool {
    inner: Arc<dyn MemoryPool>,
    pool_bytes: usize,
    share: usize,
    merge_share: usize,
    room: MergeRoom,
    /// Bytes held by each partition's sort reservations.
    held: Mutex<HashMap<usize, usize>>,
}

impl SortSharePool {
    /// `inner` of `pool_bytes` shared by `partitions` sorting partitions: each gets an equal
    /// share of the pool, and its merge seven eighths of that share; `room` says how much of
    /// the share the buffered batches leave for the merge that spills them.
    pub fn new(inner: Arc<dyn MemoryPool>, pool_bytes: usize, partitions: usize, room: MergeRoom) -> SortSharePool {
        let share = pool_bytes / partitions.max(1);
        SortSharePool {
            inner,
            pool_bytes,
            share,
            merge_share: share - share / 8,
            room,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<usize, usize>> {
        // A panic elsewhere cannot leave the counts half-updated: each update is one statement.
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Refuses `additional` bytes more for `reservation` when the pool as a whole has no room
    /// for them beside `keep` bytes left free for the merges of spills. Checked under
    /// [`Self::held`]'s lock, so that spilling reservations cannot both pass it; one that cannot
    /// spill may pass the inner pool's own check at the same moment, which overshoots the pool
    /// by at most the two growths (a batch or so each).
    fn check_total(&self, reservation: &MemoryReservation, additional: usize, keep: usize) -> Result<()> {
        let reserved = self.inner.reserved();
        if reserved + additional + keep > self.pool_bytes {
            return Err(resources_datafusion_err!(
                "{} may not grow by {additional} bytes: the pool holds {reserved} of its {} bytes \
                 and keeps {keep} free for the merges of spills",
                reservation.consumer().name(),
                self.pool_bytes
            ));
        }
        Ok(())
    }
}

/// Whether `consumer` is the Parquet writer, whose memory is set aside outside the pool.
fn outside_pool(consumer: &MemoryConsumer) -> bool {
    consumer.name().starts_with(PARQUET_WRITER)
}

/// The partition of a sort reservation (`ExternalSorter[3]`, `ExternalSorterMerge[3]`), None
/// for any other consumer.
fn sort_partition(consumer: &MemoryConsumer) -> Option<usize> {
    let name = consumer.name().strip_prefix(SORT)?;
    let (_, rest) = name.split_once('[')?;
    rest.split_once(']')?.0.parse().ok()
}

impl fmt::Display for SortSharePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (each sort partition at most {} bytes, its merge {})", self.inner, self.share, self.merge_share)
    }
}

impl MemoryPool for SortSharePool {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        if outside_pool(reservation.consumer()) {
            return;
        }
        if let Some(p) = sort_partition(reservation.consumer()) {
            *self.held().entry(p).or_default() += additional;
        }
        self.inner.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        if outside_pool(reservation.consumer()) {
            return;
        }
        if let Some(p) = sort_partition(reservation.consumer()) {
            let mut held = self.held();
            let bytes = held.entry(p).or_default();
            *bytes = bytes.saturating_sub(shrink);
        }
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        if outside_pool(reservation.consumer()) {
            return Ok(());
        }
        let Some(p) = sort_partition(reservation.consumer()) else {
            if reservation.consumer().can_spill() {
                // The fair pool bounds it by its fraction; the sorts may hold more than theirs.
                let _held = self.held();
                self.check_total(reservation, additional, 0)?;
            }
            return self.inner.try_grow(reservation, additional);
        };
        // Held across the inner pool's check so that two reservations of one partition
        // cannot both pass the share check.
        let mut held = self.held();
        let bytes = held.entry(p).or_default();
        let merge = reservation.consumer().name().starts_with(SORT_MERGE);
        if !merge && reservation.size() == 0 && reservation.consumer().can_spill() {
            // A sort holding no batches cannot spill to make room: refused, it fails the query.
            // Its first batch only needs the pool to have room.
            self.check_total(reservation, additional, 0)?;
            self.inner.grow(reservation, additional);
            *bytes += additional;
            return Ok(());
        }
        let room = self.room.of(self.share);
        let batches_full = !merge && reservation.size() + additional + room > self.share;
        if *bytes + additional > self.share
            || (merge && reservation.size() + additional > self.merge_share)
            || batches_full
        {
            if merge {
                tracing::debug!(
                    partition = p,
                    bytes = reservation.size(),
                    "a sort's merge reached its share (a final merge then reads its runs in more than one pass)"
                );
            }
            // The sort spills on this; its final merge reads fewer files per pass.
            return Err(resources_datafusion_err!(
                "{} may not grow past its sort partition's share of the pool ({} bytes, {} for the merge, {room} \
                 left for the merge of a spill; {} held)",
                reservation.consumer().name(),
                self.share,
                self.merge_share,
                *bytes
            ));
        }
        if merge || !reservation.consumer().can_spill() {
            self.inner.try_grow(reservation, additional)?;
        } else {
            // Within its share, bounded by the pool's total (see the module), leaving the room
            // for its merge when it spills.
            self.check_total(reservation, additional, room)?;
            self.inner.grow(reservation, additional);
        }
        *bytes += additional;
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::execution::memory_pool::FairSpillPool;

    use super::*;

    #[test]
    fn a_sort_partition_stops_at_its_share_and_its_merge_leaves_an_eighth_for_the_rest() {
        let pool: Arc<dyn MemoryPool> =
            Arc::new(SortSharePool::new(Arc::new(FairSpillPool::new(320)), 320, 2, MergeRoom::default()));
        let sorter = MemoryConsumer::new("ExternalSorter[0]").with_can_spill(true).register(&pool);
        let merge = MemoryConsumer::new("ExternalSorterMerge[0]").register(&pool);
        sorter.try_grow(150).unwrap();
        let refused = sorter.try_grow(11).unwrap_err().to_string();
        assert!(
            refused.contains(
                "ExternalSorter[0] may not grow past its sort partition's share of the pool (160 bytes, 140 for the merge, 0 left for the merge of a spill; 150 held)"
            ),
            "{refused}"
        );
        merge.try_grow(10).unwrap();
        assert!(merge.try_grow(1).is_err(), "the partition is at its share");
        sorter.shrink(150);
        merge.try_grow(130).unwrap();
        assert!(merge.try_grow(1).is_err(), "the merge is at its share");
        // The other partition's merge and the rest each still have theirs.
        let other = MemoryConsumer::new("ExternalSorterMerge[1]").register(&pool);
        other.try_grow(140).unwrap();
        let rest = MemoryConsumer::new("SortPreservingMergeExec[0]").register(&pool);
        rest.try_grow(40).unwrap();
        assert_eq!(pool.reserved(), 320);
    }

    #[test]
    fn a_partition_sorting_beside_a_merge_reaches_its_share_and_the_pool_stays_bounded() {
        let pool: Arc<dyn MemoryPool> =
            Arc::new(SortSharePool::new(Arc::new(FairSpillPool::new(320)), 320, 2, MergeRoom::default()));
        let sorter = MemoryConsumer::new("ExternalSorter[0]").with_can_spill(true).register(&pool);
        let _idle = MemoryConsumer::new("ExternalSorter[1]").with_can_spill(true).register(&pool);
        let merge = MemoryConsumer::new("ExternalSorterMerge[1]").register(&pool);
        merge.try_grow(140).unwrap();
        // The fair pool alone would stop it at (320 - 140) / 2 = 90 bytes.
        sorter.try_grow(160).unwrap();
        let aggregate = MemoryConsumer::new("GroupedHashAggregateStream[0]").with_can_spill(true).register(&pool);
        let refused = aggregate.try_grow(21).unwrap_err().to_string();
        assert!(
            refused.contains(
                "GroupedHashAggregateStream[0] may not grow by 21 bytes: the pool holds 300 of its 320 bytes"
            ),
            "{refused}"
        );
        aggregate.try_grow(20).unwrap();
        assert_eq!(pool.reserved(), 320);
        // The pool has room again; the merge is still held to its share.
        sorter.shrink(100);
        let refused = merge.try_grow(1).unwrap_err().to_string();
        assert!(refused.contains("ExternalSorterMerge[1] may not grow past its sort partition's share"), "{refused}");
    }

    #[test]
    fn one_partition_has_the_pool_and_the_parquet_writer_is_not_charged() {
        let pool: Arc<dyn MemoryPool> =
            Arc::new(SortSharePool::new(Arc::new(FairSpillPool::new(320)), 320, 1, MergeRoom::default()));
        let sorter = MemoryConsumer::new("ExternalSorter[0]").with_can_spill(true).register(&pool);
        sorter.try_grow(310).unwrap();
        drop(sorter);
        let merge = MemoryConsumer::new("ExternalSorterMerge[0]").register(&pool);
        merge.try_grow(280).unwrap();
        assert!(merge.try_grow(1).is_err());
        let writer = MemoryConsumer::new("ParquetSink(ArrowColumnWriter)").register(&pool);
        writer.try_grow(1000).unwrap();
        assert_eq!(pool.reserved(), 280);
        writer.shrink(400);
        drop(writer);
        assert_eq!(pool.reserved(), 280);
    }

    #[test]
    fn buffered_batches_leave_the_merge_of_a_spill_its_room() {
        let room = MergeRoom::default();
        let inner = Arc::new(FairSpillPool::new(320));
        let pool: Arc<dyn MemoryPool> = Arc::new(SortSharePool::new(inner, 320, 2, room.clone()));
        // The keys of a sort's batches take a quarter of what it reserves for them.
        room.record_fraction_for_test(250_000);
        let sorter = MemoryConsumer::new("ExternalSorter[0]").with_can_spill(true).register(&pool);
        let merge = MemoryConsumer::new("ExternalSorterMerge[0]").register(&pool);
        sorter.try_grow(120).unwrap();
        let refused = sorter.try_grow(1).unwrap_err().to_string();
        assert!(
            refused.contains("(160 bytes, 140 for the merge, 40 left for the merge of a spill; 120 held)"),
            "{refused}"
        );
        // The merge that spills them has its room, and no more.
        merge.try_grow(40).unwrap();
        assert!(merge.try_grow(1).is_err(), "the partition is at its share");
        assert_eq!(pool.reserved(), 160);
        // Another sort of the partition (a join sorts both sides) that holds nothing, so cannot
        // spill, gets its first batch while the pool has room, and then spills.
        let other = MemoryConsumer::new("ExternalSorter[0]").with_can_spill(true).register(&pool);
        other.try_grow(30).unwrap();
        assert!(other.try_grow(1).is_err(), "the partition is past its share");
        assert_eq!(pool.reserved(), 190);
    }

    #[test]
    fn only_sort_reservations_have_a_partition() {
        let name = |n: &str| sort_partition(&MemoryConsumer::new(n));
        assert_eq!(name("ExternalSorter[3]"), Some(3));
        assert_eq!(name("ExternalSorterMerge[12]"), Some(12));
        assert_eq!(name("SortPreservingMergeExec[0]"), None);
        assert_eq!(name("ParquetSink(ArrowColumnWriter)"), None);
    }
}
