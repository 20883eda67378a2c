//! The memory strategy of a target — in memory, spilling, or lean streaming — decided from the
//! ratio of its estimated decoded size to the memory budget, and the DataFusion settings each
//! strategy maps to.
//!
//! | strategy | when (default thresholds) | pool | spill | batch | partitions | joins |
//! |---|---|---|---|---|---|---|
//! | `in_memory` | ratio ≤ 0.65 | unbounded (greedy, limited, with a fixed limit) | off | 16,384 | cores | hash |
//! | `spill` | 0.65 < ratio ≤ 2.0 | fair spill pool of the budget | on (LZ4) | 2,048 | one per 32 MiB of pool, ≤ cores | sort-merge |
//! | `stream` | ratio > 2.0 | fair spill pool of the budget | on (LZ4) | 2,048 | one per 32 MiB of pool, ≤ cores | sort-merge |
//!
//! DataFusion's hash join cannot spill; sort-merge join can, so the two spilling strategies
//! prefer it, with one partition too ([`super::spilling_joins`]). Sorts and aggregates over all
//! the data spill under both, since no streaming engine can sort without holding or spilling.
//! DataFusion's spill files are LZ4 compressed: lineitem SF10 sorted under 512 MiB with two
//! partitions took 212 s uncompressed and 57 s with LZ4 (writes through the page cache were the
//! limit; dfpipe's own external sort writes past it, see `external_sort/spill_file.rs`).
//!
//! Each sorting partition keeps to an equal share of the pool ([`super::sort_share`]), at least
//! [`MIN_POOL`] (the least pool a sort runs with). Parallel partitions sort runs in parallel,
//! and a final merge reads each spilled run four batches at a time (DataFusion 54 reserves twice
//! a batch, two batches read ahead), so the batch size sets how many runs one merge pass reads
//! in a share: with batches of 2,048 the lineitem SF10 sort under 512 MiB merges its ~160 runs
//! in one pass per partition, where 4,096 re-wrote half of them in an extra pass first and
//! touched the limit (514 MiB sampled). Measured (release build, lineitem,
//! `../shared/bench/memory.sh`; figures and older ones in benches/README.md): SF10 under 512 MiB
//! with two partitions of 2,048 101.6–107.9 s at 417–464 MiB, of 4,096 107.9 s at 514 MiB; SF1
//! under 256 MiB 0.89× the time of the build before (4,096, its merges at a third of the pool;
//! farm-bench, 6 pairs) at 197 MiB. Loads under 256 MiB take the same time as before (lineitem
//! SF1 into DuckDB 0.99×, into PostgreSQL 0.95–1.04×, farm-bench).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryPool, TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use super::MemoryBudget;
use super::accounting::{Accounting, MIN_POOL};
use super::compact_views::CompactViewsAroundSorts;
use super::external_sort::ExternalSorts;
use super::footer_cache::FooterCache;
use super::merge_room::{MeasureKeysBeforeSort, MergeRoom};
use super::sort_share::SortSharePool;
use super::spilling_joins::SortMergeJoins;
use crate::config::MemoryConfig;
use crate::config::Strategy;
use crate::error::{Error, Result};
use crate::util::fmt::human_bytes;

/// A strategy chosen for one target, with the numbers behind it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The strategy.
    pub strategy: Strategy,
    /// Estimated decoded bytes the target reads.
    pub estimate: u64,
    /// The memory budget.
    pub budget: u64,
    /// estimate / budget.
    pub ratio: f64,
    /// Why this strategy, in words.
    pub reason: String,
    /// The DataFusion settings it maps to.
    pub settings: ExecSettings,
    /// How a fixed limit is split between the process, the writer and the pool.
    pub accounting: Option<Accounting>,
}

/// Decides the strategy for a target estimated at `estimate` bytes; `unknown` when it also
/// reads data of a size nothing tells before it runs (the estimate is then only a floor).
pub fn decide(estimate: u64, unknown: bool, budget: &MemoryBudget, config: &MemoryConfig) -> Decision {
    let ratio = estimate as f64 / budget.budget.max(1) as f64;
    let (strategy, reason) = match config.strategy {
        Some(strategy) => (strategy, "forced by --strategy or memory.strategy".to_string()),
        None if unknown && ratio <= config.stream_above => (
            Strategy::Spill,
            "part of what the plan reads has no size before it runs: spill, which holds to the budget whatever it is"
                .to_string(),
        ),
        None if ratio <= config.in_memory_below => {
            (Strategy::InMemory, format!("≤ {} memory.in_memory_below", config.in_memory_below))
        }
        None if ratio <= config.stream_above => (
            Strategy::Spill,
            format!(
                "> {} memory.in_memory_below, ≤ {} memory.stream_above",
                config.in_memory_below, config.stream_above
            ),
        ),
        None => (Strategy::Stream, format!("> {} memory.stream_above", config.stream_above)),
    };
    Decision {
        strategy,
        estimate,
        budget: budget.budget,
        ratio,
        reason,
        settings: ExecSettings::new(strategy, budget),
        accounting: None,
    }
}

/// The DataFusion settings of a strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecSettings {
    /// The strategy they implement.
    pub strategy: Strategy,
    /// The pool's size; None for an unbounded pool.
    pub pool_bytes: Option<u64>,
    /// Whether operators may spill to disk.
    pub spill: bool,
    /// Where spill files go (None: the system temp directory).
    pub spill_dir: Option<PathBuf>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Partitions each operator runs with.
    pub target_partitions: usize,
    /// Hash join (true) or sort-merge join (false, which spills).
    pub prefer_hash_join: bool,
}

/// Rows per batch under the spilling strategies (see the module's figures).
const SPILL_BATCH_ROWS: usize = 2048;

/// DataFusion's `max_spill_file_size_bytes`, kept where nothing spills.
const DEFAULT_SPILL_FILE_BYTES: usize = 128 * 1024 * 1024;

/// Partitions of a spilling strategy with a pool of `pool` bytes: one per [`MIN_POOL`] of it,
/// so that each sorting partition's share is at least what a sort needs, and at most one per core.
fn spilling_partitions(pool: u64, cores: usize) -> usize {
    usize::try_from(pool / MIN_POOL).unwrap_or(usize::MAX).clamp(1, cores.max(1))
}

impl ExecSettings {
    /// The settings of `strategy` under `budget`.
    pub fn new(strategy: Strategy, budget: &MemoryBudget) -> ExecSettings {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let spill_dir = budget.spill_dir.clone();
        match strategy {
            Strategy::InMemory => ExecSettings {
                strategy,
                // No limit unless one was fixed, which then holds strictly: nothing spills.
                pool_bytes: budget.fixed_limit,
                spill: false,
                spill_dir,
                batch_size: 16_384,
                target_partitions: cores,
                prefer_hash_join: true,
            },
            // The two spilling strategies differ in when they are chosen, not in their settings.
            Strategy::Spill | Strategy::Stream => ExecSettings {
                strategy,
                pool_bytes: Some(budget.budget),
                spill: true,
                spill_dir,
                batch_size: SPILL_BATCH_ROWS,
                target_partitions: spilling_partitions(budget.budget, cores),
                prefer_hash_join: false,
            },
        }
    }

    /// The DataFusion runtime for a session of `partitions` target partitions (the strategy's
    /// unless the project's `datafusion:` section sets them): the pool (its out-of-memory errors
    /// name the three largest consumers) and the disk manager; `stores` carries over the object
    /// stores a session registered (S3, GCS, ...); `room` is what the session's sorts measured
    /// their merges will need ([`MergeRoom`]).
    pub fn runtime(
        &self,
        partitions: usize,
        stores: Option<Arc<dyn ObjectStoreRegistry>>,
        room: MergeRoom,
    ) -> Result<Arc<RuntimeEnv>> {
        let top = NonZeroUsize::new(3).expect("3 is not zero");
        let pool: Arc<dyn MemoryPool> = match (self.pool_bytes, self.spill) {
            (None, _) => Arc::new(TrackConsumersPool::new(UnboundedMemoryPool::default(), top)),
            (Some(bytes), true) => Arc::new(SortSharePool::new(
                Arc::new(TrackConsumersPool::new(FairSpillPool::new(bytes as usize), top)),
                bytes as usize,
                partitions,
                room,
            )),
            (Some(bytes), false) => Arc::new(TrackConsumersPool::new(GreedyMemoryPool::new(bytes as usize), top)),
        };
        let mode = match (&self.spill_dir, self.spill) {
            (_, false) => DiskManagerMode::Disabled,
            (Some(dir), true) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Config(format!("memory.spill_dir: cannot create {}: {e}", dir.display())))?;
                DiskManagerMode::Directories(vec![dir.clone()])
            }
            (None, true) => DiskManagerMode::OsTmpDirectory,
        };
        let mut builder = RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .with_cache_manager(CacheManagerConfig::default().with_file_metadata_cache(Some(Arc::new(
                FooterCache::new(CacheManagerConfig::default().metadata_cache_limit),
            ))))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode));
        if let Some(stores) = stores {
            builder = builder.with_object_store_registry(stores);
        }
        builder.build_arc().map_err(|e| Error::Run(format!("cannot set up the query runtime: {e}")))
    }

    /// The session options this strategy sets, as DataFusion keys and values.
    ///
    /// A repartition that spills writes each batch to a spill file of its own: DataFusion
    /// 54.1's repartition appends to open files shared by its inputs, and when two inputs spill
    /// at once it can wait on the older file for a batch that is in the newer one, for good
    /// (apache/datafusion#24883, fixed after 54.1). A sort-merge join of lineitem SF1 with an
    /// aggregate of itself under 1 GiB hung so in one run of four; a file finished with its only
    /// batch is never waited on. Its setting is DataFusion's own test of that path.
    pub fn options(&self) -> [(&'static str, String); 5] {
        let spill_file_bytes = if self.spill { 1 } else { DEFAULT_SPILL_FILE_BYTES };
        [
            ("datafusion.execution.spill_compression", "lz4_frame".to_string()),
            ("datafusion.execution.max_spill_file_size_bytes", spill_file_bytes.to_string()),
            ("datafusion.execution.batch_size", self.batch_size.to_string()),
            ("datafusion.execution.target_partitions", self.target_partitions.to_string()),
            ("datafusion.optimizer.prefer_hash_join", self.prefer_hash_join.to_string()),
        ]
    }

    /// These settings with the batch size, target partitions and join preference the project's
    /// `datafusion:` section sets (`user`) in place of the strategy's, as the session will run
    /// them ([`Self::apply`] leaves the user's), so that [`Self::describe`] tells what runs.
    pub fn with_user(mut self, user: &[(String, String)]) -> ExecSettings {
        let value = |key: &str| user_setting(user, key).map(str::trim);
        if let Some(rows) = value("datafusion.execution.batch_size").and_then(|v| v.parse().ok()) {
            self.batch_size = rows;
        }
        if let Some(partitions) = value("datafusion.execution.target_partitions").and_then(|v| v.parse().ok()) {
            self.target_partitions = partitions;
        }
        if let Some(hash) = value("datafusion.optimizer.prefer_hash_join").and_then(|v| v.parse().ok()) {
            self.prefer_hash_join = hash;
        }
        self
    }

    /// Applies [`Self::options`] to `config`, except those the project's `datafusion:` section
    /// sets (`user`), which win.
    pub fn apply(&self, config: &mut SessionConfig, user: &[(String, String)]) -> Result<()> {
        for (key, value) in self.options() {
            if user_setting(user, key).is_some() {
                continue;
            }
            config.options_mut().set(key, &value).map_err(|e| Error::Run(format!("setting {key}: {e}")))?;
        }
        Ok(())
    }

    /// A session for one target: `base`'s tables and views with these settings and runtime.
    pub fn session(&self, base: &SessionContext, user: &[(String, String)]) -> Result<SessionContext> {
        // The base's catalog is shared, so it must not be replaced by a new, empty default one.
        let mut config = base.copied_config().with_create_default_catalog_and_schema(false);
        self.apply(&mut config, user)?;
        let partitions = config.options().execution.target_partitions;
        let room = MergeRoom::default();
        let stores = Some(base.runtime_env().object_store_registry.clone());
        let mut state = SessionStateBuilder::new_from_existing(base.state())
            .with_config(config)
            .with_runtime_env(self.runtime(partitions, stores, room.clone())?);
        if self.spill {
            // Joins spill with one partition too; a sort (theirs included) then spills runs as
            // long as its share of the pool holds (see the module), and leaves the merge that
            // spills them the room its keys need.
            state = state
                .with_physical_optimizer_rule(Arc::new(ExternalSorts))
                .with_physical_optimizer_rule(Arc::new(SortMergeJoins))
                .with_physical_optimizer_rule(Arc::new(CompactViewsAroundSorts))
                .with_physical_optimizer_rule(Arc::new(MeasureKeysBeforeSort::new(room)));
        }
        let state = state.build();
        Ok(SessionContext::new_with_state(state))
    }

    /// One line for `dfpipe plan`.
    pub fn describe(&self) -> String {
        let pool = match (self.pool_bytes, self.spill) {
            (None, _) => "unbounded pool".to_string(),
            (Some(b), true) => format!("fair spill pool of {}", human_bytes(b)),
            (Some(b), false) => format!("greedy pool of {} (no spilling: exceeding it fails)", human_bytes(b)),
        };
        let spill = match (self.spill, &self.spill_dir) {
            (false, _) => "spilling off".to_string(),
            (true, Some(dir)) => format!("spill to {}", dir.display()),
            (true, None) => "spill to the system temp directory".to_string(),
        };
        format!(
            "{pool}; {spill}; batch size {}; target partitions {}; joins: {}",
            self.batch_size,
            self.target_partitions,
            if self.prefer_hash_join { "hash" } else { "sort-merge (spills)" }
        )
    }
}

/// The value the project's `datafusion:` section (`user`) gives `key` (`datafusion.x.y`, which it
/// may write as `x.y`); the last one when it gives several, as DataFusion applies them in order.
fn user_setting<'a>(user: &'a [(String, String)], key: &str) -> Option<&'a str> {
    let short = key.trim_start_matches("datafusion.");
    user.iter().rev().find(|(k, _)| k == key || k == short).map(|(_, v)| v.as_str())
}

/// A hint for a target that ran out of memory, or None when `message` is not about memory.
pub fn out_of_memory_hint(message: &str, settings: &ExecSettings) -> Option<String> {
    if !message.contains("Resources exhausted") {
        return None;
    }
    let advice = match settings.strategy {
        Strategy::InMemory => {
            "try --strategy spill (sorts, aggregates and joins then spill to disk) or a larger --memory-limit"
        }
        Strategy::Spill | Strategy::Stream => {
            "try a larger --memory-limit, or fewer partitions (datafusion: { execution.target_partitions: 1 })"
        }
    };
    Some(format!(
        "not enough memory under the {} strategy ({}); {advice}",
        settings.strategy.name(),
        settings.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: u64, fixed: bool) -> MemoryBudget {
        MemoryBudget {
            available: bytes * 2,
            cgroup_limit: None,
            os_margin: 0.3,
            fixed_limit: fixed.then_some(bytes),
            budget: bytes,
            spill_dir: None,
        }
    }

    #[test]
    fn ratios_pick_strategies_at_the_thresholds() {
        let config = MemoryConfig::default();
        let b = budget(1000, false);
        assert_eq!(decide(650, false, &b, &config).strategy, Strategy::InMemory);
        assert_eq!(decide(651, false, &b, &config).strategy, Strategy::Spill);
        assert_eq!(decide(2000, false, &b, &config).strategy, Strategy::Spill);
        let stream = decide(2001, false, &b, &config);
        assert_eq!(stream.strategy, Strategy::Stream);
        assert_eq!(stream.reason, "> 2 memory.stream_above");
        let forced = MemoryConfig { strategy: Some(Strategy::Spill), ..MemoryConfig::default() };
        assert_eq!(decide(1, false, &b, &forced).strategy, Strategy::Spill);
        // A size unknown before the run is never held in memory on trust.
        let unknown = decide(0, true, &b, &config);
        assert_eq!(unknown.strategy, Strategy::Spill);
        assert!(unknown.reason.starts_with("part of what the plan reads has no size before it runs"));
        assert_eq!(decide(2001, true, &b, &config).strategy, Strategy::Stream);
    }

    #[test]
    fn spilling_partitions_keep_a_sort_share_of_at_least_the_least_pool() {
        assert_eq!(spilling_partitions(31 << 20, 8), 1);
        assert_eq!(spilling_partitions(63 << 20, 8), 1);
        assert_eq!(spilling_partitions(64 << 20, 8), 2);
        assert_eq!(spilling_partitions(348 << 20, 2), 2);
        assert_eq!(spilling_partitions(348 << 20, 16), 10);
        assert_eq!(spilling_partitions(64 << 30, 16), 16);
        assert_eq!(spilling_partitions(1 << 30, 0), 1);
    }

    #[test]
    fn settings_follow_the_strategy() {
        let b = budget(256 << 20, true);
        let in_memory = ExecSettings::new(Strategy::InMemory, &b);
        assert_eq!((in_memory.pool_bytes, in_memory.spill, in_memory.prefer_hash_join), (Some(256 << 20), false, true));
        assert_eq!(ExecSettings::new(Strategy::InMemory, &budget(1 << 30, false)).pool_bytes, None);
        let spill = ExecSettings::new(Strategy::Spill, &b);
        assert_eq!((spill.pool_bytes, spill.spill, spill.prefer_hash_join), (Some(256 << 20), true, false));
        assert_eq!(ExecSettings::new(Strategy::Stream, &b).batch_size, 2048);
        assert_eq!(spill.describe().split(';').next().unwrap(), "fair spill pool of 256.0 MiB");
        // A spilling repartition gives each batch a file of its own; a project's setting wins.
        let file_bytes = |settings: &ExecSettings, user: &[(String, String)]| {
            let mut config = SessionConfig::new();
            settings.apply(&mut config, user).unwrap();
            config.options().execution.max_spill_file_size_bytes
        };
        assert_eq!(file_bytes(&spill, &[]), 1);
        assert_eq!(file_bytes(&in_memory, &[]), 128 << 20);
        let user = [("execution.max_spill_file_size_bytes".to_string(), "4096".to_string())];
        assert_eq!(file_bytes(&spill, &user), 128 << 20, "left to the project's setting, applied after");
    }

    #[test]
    fn a_projects_datafusion_settings_show_in_place_of_the_strategys() {
        let spill = ExecSettings::new(Strategy::Spill, &budget(256 << 20, true));
        let user: Vec<(String, String)> = [
            ("execution.target_partitions", "1"),
            ("datafusion.execution.batch_size", "4096"),
            ("optimizer.prefer_hash_join", "true"),
            ("execution.max_spill_file_size_bytes", "4096"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        let text = spill.clone().with_user(&user).describe();
        assert!(text.ends_with("; batch size 4096; target partitions 1; joins: hash"), "{text}");
        assert_eq!(spill.clone().with_user(&[]), spill);
    }
}
