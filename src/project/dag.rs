//! Topological order of models, and cycle reports that name the files involved.

use std::collections::{BTreeMap, BTreeSet};

use super::Model;
use crate::error::{Error, Result};

/// Model names ordered so that each comes after every model it reads; ties break by name, so
/// the order is stable from run to run.
pub fn topological_order(models: &BTreeMap<String, Model>) -> Result<Vec<String>> {
    let mut remaining: BTreeMap<&str, usize> = models.values().map(|m| (m.name.as_str(), m.model_deps.len())).collect();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in models.values() {
        for dep in &m.model_deps {
            dependents.entry(dep.as_str()).or_default().push(m.name.as_str());
        }
    }
    let mut ready: BTreeSet<&str> = remaining.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
    let mut order = Vec::with_capacity(models.len());
    while let Some(next) = ready.pop_first() {
        order.push(next.to_string());
        remaining.remove(next);
        for dependent in dependents.get(next).into_iter().flatten() {
            let count = remaining.get_mut(dependent).expect("dependent is pending");
            *count -= 1;
            if *count == 0 {
                ready.insert(dependent);
            }
        }
    }
    if remaining.is_empty() {
        return Ok(order);
    }
    let pending: BTreeSet<&str> = remaining.keys().copied().collect();
    let cycle = find_cycle(models, &pending);
    let path: Vec<String> = cycle.iter().map(|name| format!("{} ({})", name, models[*name].file.display())).collect();
    Err(Error::Project(format!("dependency cycle between models: {}", path.join(" -> "))))
}

/// Every model Kahn's algorithm left pending still waits for a dependency that is pending too,
/// so following pending dependencies from any of them must come back to a model already seen.
/// Returns that cycle, with the repeated model at both ends.
fn find_cycle<'a>(models: &'a BTreeMap<String, Model>, pending: &BTreeSet<&'a str>) -> Vec<&'a str> {
    let mut path: Vec<&str> = vec![*pending.first().expect("a model is pending")];
    loop {
        let current = *path.last().expect("path is never empty");
        let next = models[current]
            .model_deps
            .iter()
            .map(String::as_str)
            .find(|dep| pending.contains(dep))
            .expect("a pending model has a pending dependency");
        if let Some(pos) = path.iter().position(|n| *n == next) {
            let mut cycle = path.split_off(pos);
            cycle.push(next);
            return cycle;
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, deps: &[&str]) -> (String, Model) {
        (
            name.to_string(),
            Model {
                name: name.to_string(),
                file: format!("sql/{name}.sql").into(),
                sql: String::new(),
                model_deps: deps.iter().map(|d| d.to_string()).collect(),
                source_deps: BTreeSet::new(),
            },
        )
    }

    #[test]
    fn orders_dependencies_first() {
        let models: BTreeMap<_, _> = [model("c", &["b"]), model("b", &["a"]), model("a", &[]), model("z", &[])].into();
        assert_eq!(topological_order(&models).unwrap(), ["a", "b", "c", "z"]);
    }

    #[test]
    fn reports_the_cycle_with_files() {
        let models: BTreeMap<_, _> =
            [model("a", &[]), model("b", &["a", "d"]), model("c", &["b"]), model("d", &["c"])].into();
        let err = topological_order(&models).unwrap_err().to_string();
        assert_eq!(
            err,
            "dependency cycle between models: b (sql/b.sql) -> d (sql/d.sql) -> c (sql/c.sql) -> b (sql/b.sql)"
        );
    }
}
