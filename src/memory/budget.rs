//! How much memory a run may use, and the DataFusion runtime that enforces it.
//!
//! The budget is the RAM really available (sysinfo, or the cgroup's limit when that is lower)
//! minus a safety margin (`memory.os_margin`), unless `memory.limit` fixes it. How a target
//! lives within it is [`super::strategy`]'s business.

use std::path::PathBuf;

use crate::config::MemoryConfig;
use crate::util::fmt::human_bytes;

/// The memory figures a run starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBudget {
    /// RAM available to this process now (the lower of the machine's and the cgroup's).
    pub available: u64,
    /// The cgroup memory limit, when there is one.
    pub cgroup_limit: Option<u64>,
    /// The margin kept free (`memory.os_margin`).
    pub os_margin: f64,
    /// A fixed limit from the config, if set.
    pub fixed_limit: Option<u64>,
    /// The bytes DataFusion's pool may hand out.
    pub budget: u64,
    /// Where spill files go (None: the system temp directory).
    pub spill_dir: Option<PathBuf>,
}

impl MemoryBudget {
    /// Reads the machine and applies the config.
    pub fn measure(config: &MemoryConfig) -> MemoryBudget {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        let cgroup = sys.cgroup_limits();
        let cgroup_limit = cgroup.as_ref().map(|c| c.total_memory).filter(|t| *t > 0);
        let mut available = sys.available_memory();
        if let Some(c) = &cgroup
            && c.free_memory > 0
        {
            available = available.min(c.free_memory);
        }
        let budget = config.limit.unwrap_or(((available as f64) * (1.0 - config.os_margin)) as u64);
        if let Some(warning) = over_available(config.limit, available) {
            tracing::warn!("{warning}");
        }
        MemoryBudget {
            available,
            cgroup_limit,
            os_margin: config.os_margin,
            fixed_limit: config.limit,
            budget: budget.max(16 << 20),
            spill_dir: config.spill_dir.clone(),
        }
    }

    /// Lines for `dfpipe plan`, each a fact with its number.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!("available RAM: {}", human_bytes(self.available))];
        if let Some(limit) = self.cgroup_limit {
            lines.push(format!("cgroup limit: {}", human_bytes(limit)));
        }
        match self.fixed_limit {
            Some(limit) => {
                lines.push(format!("budget: {} (memory.limit or --memory-limit)", human_bytes(limit)));
                lines.extend(over_available(self.fixed_limit, self.available));
            }
            None => lines.push(format!(
                "budget: {} (available × (1 − os_margin {:.2}))",
                human_bytes(self.budget),
                self.os_margin
            )),
        }
        lines
    }
}

/// The warning for a fixed `limit` above the `available` memory: dfpipe would not spill before
/// the system runs out.
fn over_available(limit: Option<u64>, available: u64) -> Option<String> {
    let limit = limit.filter(|l| *l > available)?;
    Some(format!(
        "the memory limit {} is more than the {} available: dfpipe spills only past its limit, so the \
         system may run out first (swapping, or the OOM killer ending the run); lower the limit, or leave it \
         unset to size the budget from the memory available",
        human_bytes(limit),
        human_bytes(available)
    ))
}

/// The process's peak resident set size so far (VmHWM), on Linux.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_limit_wins() {
        let config = MemoryConfig { limit: Some(256 << 20), ..MemoryConfig::default() };
        let budget = MemoryBudget::measure(&config);
        assert_eq!(budget.budget, 256 << 20);
        assert!(budget.available > 0);
    }

    #[test]
    fn a_limit_above_the_memory_available_is_warned_about() {
        assert_eq!(over_available(Some(2 << 30), 4 << 30), None);
        assert_eq!(over_available(None, 4 << 30), None);
        let warning = over_available(Some(1 << 40), 4 << 30).unwrap();
        assert!(warning.starts_with("the memory limit 1.0 TiB is more than the 4.0 GiB available: "), "{warning}");
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        assert!(peak_rss().unwrap() > 1 << 20);
    }
}
