//! Model selection with dbt's syntax: `NAME`, `NAME+` (and everything downstream), `+NAME` (and
//! everything upstream), `+NAME+`; several selectors are a union; `--exclude` removes.

use std::collections::BTreeSet;

use super::Project;
use crate::error::{Error, Result};
use crate::util::suggest::did_you_mean;

/// What `-s/--select` and `--exclude` asked for.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Selectors to include; empty means every model.
    pub select: Vec<String>,
    /// Selectors to exclude.
    pub exclude: Vec<String>,
}

impl Selection {
    /// The models selected in `project`.
    pub fn resolve(&self, project: &Project) -> Result<BTreeSet<String>> {
        let mut chosen: BTreeSet<String> = if self.select.is_empty() {
            project.models.keys().cloned().collect()
        } else {
            let mut set = BTreeSet::new();
            for selector in split(&self.select) {
                set.extend(expand(project, selector)?);
            }
            set
        };
        for selector in split(&self.exclude) {
            for name in expand(project, selector)? {
                chosen.remove(&name);
            }
        }
        Ok(chosen)
    }
}

/// Selectors may be given as separate flags or space-separated in one, as in dbt.
fn split(selectors: &[String]) -> impl Iterator<Item = &str> {
    selectors.iter().flat_map(|s| s.split_whitespace())
}

fn expand(project: &Project, selector: &str) -> Result<BTreeSet<String>> {
    let upstream = selector.starts_with('+');
    let downstream = selector.ends_with('+') && selector.len() > 1;
    let name = selector.trim_start_matches('+').trim_end_matches('+');
    if !project.models.contains_key(name) {
        return Err(Error::Usage(format!(
            "selector `{selector}`: no model named `{name}`{}",
            did_you_mean(name, project.models.keys().map(String::as_str))
        )));
    }
    let mut out = BTreeSet::from([name.to_string()]);
    if upstream {
        let mut stack = vec![name.to_string()];
        while let Some(n) = stack.pop() {
            for dep in &project.models[&n].model_deps {
                if out.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
    }
    if downstream {
        let mut stack = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            for m in project.models.values().filter(|m| m.model_deps.contains(&n)) {
                if seen.insert(m.name.clone()) {
                    out.insert(m.name.clone());
                    stack.push(m.name.clone());
                }
            }
        }
    }
    Ok(out)
}
