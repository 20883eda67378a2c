//! The architecture, checked: every `crate::…` and `super::…` path in `src/` is resolved to the
//! file it names, and (1) each top-level module imports only the modules its layer allows (the
//! table below, which the README's Design section draws), (2) no files import each other in a
//! cycle. A `pub use` re-export and a `mod` declaration are a folder's facade, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import, besides itself. `lib.rs` and `main.rs` may import all.
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("util", &["error"]),
    ("config", &["error", "util"]),
    ("schema", &["config", "error", "util"]),
    ("project", &["config", "error", "util"]),
    ("memory", &["config", "error", "util"]),
    ("engine", &["config", "project", "memory", "schema", "error", "util"]),
    ("sinks", &["config", "schema", "error", "util"]),
    ("checks", &["config", "schema", "engine", "error", "util"]),
    ("catalog", &["config", "schema", "memory", "engine", "checks", "error", "util"]),
    ("cli", &["config", "error", "util"]),
    (
        "commands",
        &["cli", "config", "project", "engine", "memory", "checks", "schema", "catalog", "sinks", "error", "util"],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module path of a file: `src/config/check.rs` → `["config", "check"]`, `mod.rs` → its folder.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

/// The file that defines module path `parts`, or its longest prefix that is a file.
fn file_of(parts: &[String]) -> Option<PathBuf> {
    for n in (0..=parts.len()).rev() {
        let base = parts[..n].iter().fold(src(), |p, s| p.join(s));
        for candidate in [base.with_extension("rs"), base.join("mod.rs")] {
            if n > 0 && candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Every path a file names, `crate::a::b` and `super::x` resolved to absolute module paths;
/// `use crate::{a::b, c}` groups are expanded. Lines that re-export (`pub use`) are skipped.
fn paths_named(file: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let here = module_of(file);
    let mut out = Vec::new();
    let mut statements = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("//")
            || line.starts_with("pub use")
            || line.starts_with("pub mod")
            || line.starts_with("mod ")
        {
            continue;
        }
        if line.starts_with("use ") || !pending.is_empty() {
            pending.push_str(line);
            if line.ends_with(';') {
                statements.push(std::mem::take(&mut pending));
            }
        } else {
            statements.push(line.to_string());
        }
    }
    for statement in statements {
        for (start, prefix) in statement
            .match_indices("crate::")
            .map(|(i, _)| (i, "crate::"))
            .chain(statement.match_indices("super::").map(|(i, _)| (i, "super::")))
        {
            let preceded =
                statement[..start].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            if preceded {
                continue;
            }
            let base: Vec<String> = if prefix == "crate::" {
                vec![]
            } else {
                // `super` of `a/b.rs` is `a`; of `a/b/mod.rs` (module a::b) it is also `a`.
                here[..here.len().saturating_sub(1)].to_vec()
            };
            let rest = &statement[start + prefix.len()..];
            for path in expand(rest) {
                let mut full = base.clone();
                full.extend(path);
                if !full.is_empty() {
                    out.push(full);
                }
            }
        }
    }
    out
}

/// `a::b::C` → [[a, b, C]]; `{a::b, c::{d, e}}` → [[a, b], [c, d], [c, e]] (identifiers only).
fn expand(rest: &str) -> Vec<Vec<String>> {
    let mut head = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut ident = String::new();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else if c == ':' && chars.peek().is_some_and(|(_, n)| *n == ':') {
            chars.next();
            head.push(std::mem::take(&mut ident));
        } else if c == '{' && ident.is_empty() {
            let inner = &rest[i + 1..];
            let mut depth = 0;
            let mut parts = Vec::new();
            let mut from = 0;
            for (j, d) in inner.char_indices() {
                match d {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        parts.push(&inner[from..j]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(&inner[from..j]);
                        from = j + 1;
                    }
                    _ => {}
                }
            }
            return parts
                .iter()
                .map(|p| p.trim())
                .filter(|p| !p.is_empty() && *p != "self")
                .flat_map(expand)
                .map(|tail| head.iter().cloned().chain(tail).collect())
                .chain(std::iter::once(head.clone()))
                .collect();
        } else {
            break;
        }
    }
    if !ident.is_empty() {
        head.push(ident);
    }
    vec![head]
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// File → the files it imports from (itself and its own children's facades excluded).
fn graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .iter()
        .map(|file| {
            let targets =
                paths_named(file).iter().filter_map(|p| file_of(p)).filter(|t| t != file).collect::<BTreeSet<_>>();
            (file.clone(), targets)
        })
        .collect()
}

fn top(file: &Path) -> String {
    module_of(file).first().cloned().unwrap_or_else(|| "lib".into())
}

#[test]
fn modules_import_only_what_their_layer_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for (file, targets) in graph() {
        let from = top(&file);
        if from == "lib" {
            continue;
        }
        let Some(may) = allowed.get(from.as_str()) else {
            violations.push(format!("{}: module `{from}` has no row in ALLOWED", file.display()));
            continue;
        };
        for target in targets {
            let to = top(&target);
            if to != from && !may.contains(&to.as_str()) {
                violations.push(format!(
                    "{} imports {} (`{from}` may not import `{to}`)",
                    file.display(),
                    target.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "layer violations:\n{}", violations.join("\n"));
}

#[test]
fn no_file_imports_in_a_cycle() {
    let graph = graph();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit(
        node: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, graph, state, stack, cycles),
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let names: Vec<String> = stack[from..]
                        .iter()
                        .chain([next])
                        .map(|p| p.strip_prefix(src()).unwrap().display().to_string())
                        .collect();
                    cycles.push(names.join(" → "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
    }
    let (mut state, mut cycles) = (BTreeMap::new(), Vec::new());
    for node in graph.keys() {
        if !state.contains_key(node) {
            visit(node, &graph, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_imports() {
    // The checker itself must be able to fail: it finds known edges, grouped ones included.
    let g = graph();
    let file = src().join("commands/run/mod.rs");
    let targets = &g[&file];
    for expected in ["catalog/drift.rs", "checks/contracts.rs", "engine/observe.rs", "cli/mod.rs"] {
        assert!(targets.contains(&src().join(expected)), "{expected} not seen among {targets:?}");
    }
}
