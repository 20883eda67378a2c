//! The project: the checked config plus the SQL models found on disk, their dependency DAG
//! (derived by parsing each model's SQL, never declared by hand) and the outputs to write.
//!
//! May import: [`crate::config`] and [`crate::util`]. Knows nothing of DataFusion sessions.

mod dag;
mod select;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement;

pub use select::Selection;

use crate::config::{Config, Mode, OutputConfig, TableName, Target};
use crate::error::{Error, Result};
use crate::util::suggest::did_you_mean;

/// One `.sql` file: a SELECT query that becomes a view named after the file.
#[derive(Debug, Clone)]
pub struct Model {
    /// The model's name: the file name without `.sql`.
    pub name: String,
    /// The file, relative to the project directory (for messages).
    pub file: PathBuf,
    /// The SQL text.
    pub sql: String,
    /// Models this one reads.
    pub model_deps: BTreeSet<String>,
    /// Sources this one reads.
    pub source_deps: BTreeSet<String>,
}

/// The config, the models in dependency order, and the outputs.
#[derive(Debug, Clone)]
pub struct Project {
    /// The checked config.
    pub config: Config,
    /// Models by name.
    pub models: BTreeMap<String, Model>,
    /// Model names, every model after the models it reads.
    pub order: Vec<String>,
    /// The outputs to write (declared, or one per model when the config declares none).
    pub outputs: Vec<OutputConfig>,
}

impl Project {
    /// Finds the models under the config's models directory, parses them, and builds the DAG.
    pub fn load(config: Config) -> Result<Project> {
        let files = find_sql_files(&config.models_dir)?;
        let mut models: BTreeMap<String, Model> = BTreeMap::new();
        for path in files {
            let rel = path.strip_prefix(&config.project_dir).unwrap_or(&path).to_path_buf();
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(existing) = models.get(&name) {
                return Err(Error::Project(format!(
                    "two models are named `{name}`: {} and {}; model names come from file names and must be unique",
                    existing.file.display(),
                    rel.display()
                )));
            }
            if name.chars().any(|c| c.is_uppercase()) {
                return Err(Error::Project(format!(
                    "{}: model names must be lowercase, because SQL folds unquoted names to lowercase; rename it to {}.sql",
                    rel.display(),
                    name.to_lowercase()
                )));
            }
            if config.sources.contains_key(&name) {
                return Err(Error::Project(format!(
                    "{}: model `{name}` has the name of a source; rename the file or the source",
                    rel.display()
                )));
            }
            let sql = std::fs::read_to_string(&path)
                .map_err(|e| Error::Project(format!("cannot read {}: {e}", rel.display())))?;
            models.insert(
                name.clone(),
                Model { name, file: rel, sql, model_deps: BTreeSet::new(), source_deps: BTreeSet::new() },
            );
        }
        for name in config.sources.keys() {
            if name.chars().any(|c| c.is_uppercase()) {
                return Err(Error::Config(format!(
                    "{}: source `{name}`: source names must be lowercase, because SQL folds unquoted names to lowercase",
                    config.file.display()
                )));
            }
        }

        let model_names: BTreeSet<String> = models.keys().cloned().collect();
        let functions = table_functions();
        // Every model whose SQL does not parse or reads an unknown name is reported, not only
        // the first.
        let mut broken = Vec::new();
        for model in models.values_mut() {
            if let Err(e) = resolve_dependencies(model, &model_names, &functions, &config) {
                broken.push(e.to_string());
            }
        }
        match broken.len() {
            0 => {}
            1 => return Err(Error::Project(broken.remove(0))),
            n => return Err(Error::Project(format!("{n} models are broken:\n{}", broken.join("\n\n")))),
        }
        let order = dag::topological_order(&models)?;
        let outputs = match &config.outputs {
            Some(outputs) => {
                for out in outputs {
                    if !models.contains_key(&out.model) {
                        return Err(Error::Config(format!(
                            "{}: output names model `{}`, but there is no {}/{}.sql{}",
                            config.file.file_name().unwrap_or_default().to_string_lossy(),
                            out.model,
                            config.models_dir.strip_prefix(&config.project_dir).unwrap_or(&config.models_dir).display(),
                            out.model,
                            did_you_mean(&out.model, models.keys().map(String::as_str))
                        )));
                    }
                }
                outputs.clone()
            }
            None => order
                .iter()
                .map(|name| {
                    let mut target = config.default_target.clone();
                    target.table = TableName { schema: target.table.schema.clone(), name: name.clone() };
                    OutputConfig {
                        model: name.clone(),
                        target: Target::DuckDb(target),
                        mode: Mode::Replace,
                        unique_key: vec![],
                        on_schema_change: None,
                        on_invalid: Default::default(),
                        incremental: None,
                    }
                })
                .collect(),
        };
        let references =
            config.contracts.keys().map(|n| (format!("contracts.{n}"), n)).chain(config.tests.iter().flat_map(|t| {
                let to = match &t.rule {
                    crate::config::Rule::Relationships { to, .. } => {
                        Some((format!("tests.{}: relationships.to", t.relation), to))
                    }
                    _ => None,
                };
                std::iter::once((format!("tests.{}", t.relation), &t.relation)).chain(to)
            }));
        for (what, name) in references {
            if !models.contains_key(name) && !config.sources.contains_key(name) {
                let known = models.keys().chain(config.sources.keys()).map(String::as_str);
                return Err(Error::Config(format!(
                    "{}: {what}: there is no source or model named `{name}`{}",
                    config.file.file_name().unwrap_or_default().to_string_lossy(),
                    did_you_mean(name, known)
                )));
            }
        }
        Ok(Project { config, models, order, outputs })
    }

    /// The sources model `name` reads, directly or through the models upstream of it.
    pub fn sources_upstream(&self, name: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut sources = BTreeSet::new();
        let mut stack = vec![name.to_string()];
        while let Some(model) = stack.pop() {
            if let Some(m) = self.models.get(&model)
                && seen.insert(model)
            {
                sources.extend(m.source_deps.iter().cloned());
                stack.extend(m.model_deps.iter().cloned());
            }
        }
        sources.into_iter().collect()
    }

    /// Whether model `name` reads source `source`, directly or upstream.
    pub fn reads(&self, name: &str, source: &str) -> bool {
        self.sources_upstream(name).iter().any(|s| s == source)
    }

    /// The outputs whose models the selection keeps, in dependency order of their models.
    pub fn selected_outputs(&self, selection: &Selection) -> Result<Vec<OutputConfig>> {
        let models = selection.resolve(self)?;
        let rank: BTreeMap<&str, usize> = self.order.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut outputs: Vec<OutputConfig> =
            self.outputs.iter().filter(|o| models.contains(&o.model)).cloned().collect();
        outputs.sort_by_key(|o| rank.get(o.model.as_str()).copied().unwrap_or(usize::MAX));
        Ok(outputs)
    }
}

/// All `*.sql` files under `dir`, sorted.
fn find_sql_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::Project(format!(
            "models directory {} does not exist; create it with your .sql files, or set `models:` in the config",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    // Symbolic links are followed; walkdir reports a link loop as an error instead of looping.
    for entry in walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::Project(format!("cannot list {}: {e}", dir.display())))?;
        if entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "sql") {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// Parses the model's SQL and records the models and sources it reads.
/// Table functions DataFusion provides (`generate_series`, `range`, ...): a model may read them
/// like tables, and they are not dependencies.
fn table_functions() -> BTreeSet<String> {
    datafusion::prelude::SessionContext::new().state().table_functions().keys().cloned().collect()
}

fn resolve_dependencies(
    model: &mut Model,
    models: &BTreeSet<String>,
    functions: &BTreeSet<String>,
    config: &Config,
) -> Result<()> {
    let file = model.file.display().to_string();
    let mut statements = DFParser::parse_sql(&model.sql)
        .map_err(|e| Error::Project(crate::util::sql_errors::render(&model.file, &model.sql, &e, &[])))?;
    if statements.len() != 1 {
        return Err(Error::Project(format!(
            "{file}: a model must hold exactly one SELECT query, found {} statements",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    match &statement {
        DFStatement::Statement(s) if matches!(**s, Statement::Query(_)) => {}
        other => {
            let text = other.to_string();
            let head: String = text.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
            return Err(Error::Project(format!(
                "{file}: a model must be a SELECT query (dfpipe creates the view and the tables), found `{head} ...`"
            )));
        }
    }
    let (relations, _ctes) = resolve_table_references(&statement, true)
        .map_err(|e| Error::Project(format!("{file}: {}", crate::error::df_message(&e))))?;
    for reference in relations {
        let name = reference.table().to_string();
        if reference.schema().is_none() && models.contains(&name) {
            if name == model.name {
                return Err(Error::Project(format!("{file}: model `{name}` reads itself")));
            }
            model.model_deps.insert(name);
        } else if reference.schema().is_none() && config.sources.contains_key(&name) {
            model.source_deps.insert(name);
        } else if reference.schema().is_none() && functions.contains(&name) {
            // A table function call, e.g. generate_series(1, 10).
        } else {
            let candidates: Vec<&str> =
                models.iter().map(String::as_str).chain(config.sources.keys().map(String::as_str)).collect();
            let message = format!(
                "`{reference}` is neither a source nor a model{}; sources: {}; models: {}",
                did_you_mean(&name, candidates.iter().copied()),
                list_or_none(config.sources.keys()),
                list_or_none(models.iter())
            );
            return Err(Error::Project(crate::util::sql_errors::at_word(&model.file, &model.sql, &name, &message)));
        }
    }
    Ok(())
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
}
