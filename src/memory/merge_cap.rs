//! A memory pool that keeps each partition's spill merge to a share of the pool.
//!
//! When a sort over several partitions has spilled, each partition merges its sorted runs,
//! reading as many spill files at once as its reservation can grow to (DataFusion 54's
//! multi-level merge; its own comment says a shared pool wants an upper limit there). Left
//! alone, those merges take the whole pool between them, and whatever reserves next fails: the
//! merge of the sorted partitions (`SortPreservingMergeExec`, two lineitem SF1 sorts under
//! 256 MiB in five), the next partition's merge (three in three with a smaller pool), or the
//! Parquet writer (a one-partition sort of 8,192-row batches, whose merge alone took the pool).
//! With each partition's merge capped at `pool / (partitions + 1)`, one share stays free for the
//! rest; a merge that reaches its cap merges fewer files per pass. That narrows the race without
//! closing it (lineitem SF10 under 512 MiB with two partitions failed in one of the two runs
//! measured, a partition's merge finding the pool taken by the other's sort), so the spilling
//! strategies keep few partitions ([`super::strategy`]).

use std::fmt;
use std::sync::Arc;

use datafusion::common::{Result, resources_datafusion_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};

/// The name DataFusion gives the reservation of a sort partition's spill merge.
const SORT_MERGE: &str = "ExternalSorterMerge";

/// Wraps a pool; a sort partition's spill merge may reserve at most `cap` bytes of it.
#[derive(Debug)]
pub struct MergeCapPool {
    inner: Arc<dyn MemoryPool>,
    cap: usize,
}

impl MergeCapPool {
    /// `inner` of `pool_bytes` shared by `partitions` sorting partitions: each partition's
    /// merge gets at most an equal share of the pool, with one share left over for the merge
    /// of the partitions, the writer and everything else (one partition: half the pool).
    pub fn new(inner: Arc<dyn MemoryPool>, pool_bytes: usize, partitions: usize) -> MergeCapPool {
        let cap = pool_bytes / (partitions.max(1) + 1);
        MergeCapPool { inner, cap }
    }
}

impl fmt::Display for MergeCapPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (each sort merge at most {} bytes)", self.inner, self.cap)
    }
}

impl MemoryPool for MergeCapPool {
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
        self.inner.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        if reservation.consumer().name().starts_with(SORT_MERGE) && reservation.size() + additional > self.cap {
            // The merge takes this as "no more files in this pass".
            return Err(resources_datafusion_err!(
                "{} may reserve at most {} bytes, its share of the pool",
                reservation.consumer().name(),
                self.cap
            ));
        }
        self.inner.try_grow(reservation, additional)
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
    fn a_sort_merge_stops_at_its_share_and_leaves_one_for_the_rest() {
        let pool: Arc<dyn MemoryPool> = Arc::new(MergeCapPool::new(Arc::new(FairSpillPool::new(300)), 300, 2));
        let first = MemoryConsumer::new("ExternalSorterMerge[0]").register(&pool);
        first.try_grow(100).unwrap();
        let refused = first.try_grow(1).unwrap_err().to_string();
        assert!(refused.contains("ExternalSorterMerge[0] may reserve at most 100 bytes, its share"), "{refused}");
        let second = MemoryConsumer::new("ExternalSorterMerge[1]").register(&pool);
        second.try_grow(100).unwrap();
        let merge = MemoryConsumer::new("SortPreservingMergeExec[0]").register(&pool);
        merge.try_grow(100).unwrap();
        assert_eq!(pool.reserved(), 300);
    }

    #[test]
    fn one_partition_leaves_half_the_pool_to_the_rest() {
        let pool: Arc<dyn MemoryPool> = Arc::new(MergeCapPool::new(Arc::new(FairSpillPool::new(300)), 300, 1));
        let merge = MemoryConsumer::new("ExternalSorterMerge[0]").register(&pool);
        merge.try_grow(150).unwrap();
        assert!(merge.try_grow(1).is_err());
        MemoryConsumer::new("ParquetSink(ArrowColumnWriter)").register(&pool).try_grow(150).unwrap();
    }
}
