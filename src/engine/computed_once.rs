//! A model that several in-memory targets read, computed once and held as a table — only as
//! long as it fits. Its batches are reserved in the session's pool as they arrive, up to a cap;
//! past it, or when the pool has no room, the copy is given up and each target computes the
//! model itself, under its own limit. A failure while computing it is not reported here either:
//! each target meets it again and reports it as its own, with the file it comes from.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::physical_plan::execute_stream_partitioned;
use datafusion::prelude::DataFrame;
use futures::StreamExt;

use crate::util::fmt::human_bytes;

/// A model's rows held in memory, and the reservation that charges them to the pool.
pub struct Held {
    /// The rows, one list of batches per partition.
    pub table: Arc<MemTable>,
    /// Keeps the rows' bytes charged to the pool for as long as they are held.
    pub reservation: MemoryReservation,
}

/// Model `name` (planned as `df`) computed now and held, charged to `pool`; None when its rows
/// pass `cap` bytes, the pool refuses them, or computing them fails.
pub async fn compute(name: &str, df: DataFrame, pool: &Arc<dyn MemoryPool>, cap: usize) -> Option<Held> {
    let give_up = |why: String| {
        tracing::info!(model = %name, "not computed once ({why}): each target that reads it computes it");
        None
    };
    let schema = Arc::clone(df.schema().inner());
    let task = Arc::new(df.task_ctx());
    let plan = match df.create_physical_plan().await {
        Ok(plan) => plan,
        Err(e) => return give_up(e.to_string()),
    };
    let streams = match execute_stream_partitioned(plan, task) {
        Ok(streams) => streams,
        Err(e) => return give_up(e.to_string()),
    };
    let mut partitions = vec![Vec::new(); streams.len()];
    // Every partition is read at once, as DataFusion's own collect does: a repartition upstream
    // would otherwise buffer the partitions not yet read.
    let mut batches = futures::stream::select_all(
        streams.into_iter().enumerate().map(|(i, stream)| stream.map(move |batch| (i, batch))),
    );
    let reservation = MemoryConsumer::new(format!("model {name} computed once")).register(pool);
    while let Some((i, batch)) = batches.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => return give_up(crate::error::df_message(&e)),
        };
        let size = batch.get_array_memory_size();
        if reservation.size() + size > cap {
            return give_up(format!("its rows pass {}, half its readers' memory", human_bytes(cap as u64)));
        }
        if let Err(e) = reservation.try_grow(size) {
            return give_up(e.to_string());
        }
        partitions[i].push(batch);
    }
    match MemTable::try_new(schema, partitions) {
        Ok(table) => {
            tracing::info!(model = %name, held = %human_bytes(reservation.size() as u64), "computed once for the targets that read it");
            Some(Held { table: Arc::new(table), reservation })
        }
        Err(e) => give_up(e.to_string()),
    }
}
