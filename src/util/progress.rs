//! Row counting shared by sinks and the progress display.
//!
//! A sink adds rows as batches pass through it; the run shows them on a progress bar when
//! stderr is a terminal, and reads the total afterwards either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A counter of rows written, optionally drawn as a progress bar.
#[derive(Debug, Clone, Default)]
pub struct RowCounter {
    rows: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
}

impl RowCounter {
    /// A counter that draws nothing.
    pub fn hidden() -> Self {
        RowCounter::default()
    }

    /// A counter drawn as a spinner line: `label  12,345 rows  45,678 rows/s  0:00:03`.
    pub fn with_bar(label: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {human_pos} rows  {per_sec}  {elapsed}")
                .expect("valid template")
                .with_key("per_sec", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rows/s", state.per_sec());
                }),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        RowCounter { rows: Arc::default(), committed: Arc::default(), bar: Some(bar) }
    }

    /// Adds `n` rows.
    pub fn add(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Counts from zero again (a target that runs again from its start).
    pub fn restart(&self) {
        self.rows.store(0, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_position(0);
            bar.reset_elapsed();
        }
    }

    /// Rows counted so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Counts `n` rows as committed (an incremental output's windows commit one by one).
    pub fn commit(&self, n: u64) {
        self.committed.fetch_add(n, Ordering::Relaxed);
    }

    /// Rows committed so far.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Stops drawing, leaving `message` on the bar's line.
    pub fn finish(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(message.to_string());
            bar.disable_steady_tick();
        }
    }
}
