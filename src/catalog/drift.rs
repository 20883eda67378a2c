//! Drift: each observed schema compared with its accepted baseline in the catalog, judged by
//! the relation's `on_schema_change` policy.

use std::collections::BTreeMap;

use super::store::Catalog;
use crate::engine::observe::Observed;
use crate::error::{Error, Result};
use crate::schema::{Change, Evolution, Kind, diff, refused};

/// Drift found in one relation.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The relation.
    pub observed: Observed,
    /// The run whose accepted schema it was compared with.
    pub baseline_run: i64,
    /// Every change.
    pub changes: Vec<Change>,
    /// The changes its policy refuses.
    pub refused: Vec<Change>,
}

impl Finding {
    /// A readable diff: a heading naming the relation, one line per change.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{}: schema changed since run #{} (on_schema_change: {}):\n",
            self.observed.label,
            self.baseline_run,
            self.observed.policy.name()
        );
        for change in &self.changes {
            let refused = self.refused.contains(change);
            out.push_str(&format!("    {}{}\n", change.describe(), if refused { "   ← refused" } else { "" }));
        }
        out
    }
}

/// The drift of every observed relation against its baseline.
#[derive(Debug, Clone, Default)]
pub struct DriftReport {
    /// Relations whose schema changed.
    pub findings: Vec<Finding>,
}

impl DriftReport {
    /// Each drifted model's allowed changes, as target tables under `evolve` apply them.
    pub fn evolutions(&self) -> BTreeMap<String, Evolution> {
        self.findings
            .iter()
            .filter(|f| f.observed.kind == Kind::Model)
            .map(|f| (f.observed.name.clone(), Evolution::of(&f.changes)))
            .collect()
    }

    /// Whether any policy refused a change: the run must stop before writing.
    pub fn refused(&self) -> bool {
        self.findings.iter().any(|f| !f.refused.is_empty())
    }

    /// The error for a refused drift: every refused relation's diff and what to do.
    pub fn error(&self) -> Error {
        let mut text = String::from("schema drift: nothing was written\n");
        for f in self.findings.iter().filter(|f| !f.refused.is_empty()) {
            text.push_str(&format!("  {}", f.describe()));
        }
        let names: Vec<&str> =
            self.findings.iter().filter(|f| !f.refused.is_empty()).map(|f| f.observed.name.as_str()).collect();
        text.push_str(&format!(
            "if the change is intended, accept the new schema with `dfpipe schema accept {}`, or set \
             on_schema_change (fail | warn | evolve | ignore) on the source or output",
            names.join(" ")
        ));
        Error::Drift(text)
    }
}

/// Compares each observed schema with its accepted baseline.
pub fn check(catalog: &Catalog, observed: &[Observed]) -> Result<DriftReport> {
    let mut report = DriftReport::default();
    let relations: Vec<(Kind, &str)> = observed.iter().map(|o| (o.kind, o.name.as_str())).collect();
    for (o, baseline) in observed.iter().zip(catalog.baselines(&relations)?) {
        let Some(baseline) = baseline else { continue };
        let changes = diff(&baseline.snapshot, &o.snapshot);
        if changes.is_empty() {
            continue;
        }
        let refused = refused(o.policy, &changes).into_iter().cloned().collect();
        report.findings.push(Finding { observed: o.clone(), baseline_run: baseline.run_id, changes, refused });
    }
    Ok(report)
}
