//! Reading the config: finding the file, parsing YAML or TOML strictly with errors that show
//! the file, line and column with a snippet, and merging an `--env` overlay.

use std::path::{Path, PathBuf};

use super::check::Checker;
use super::{CONFIG_FILES, Config, LoadOptions, RawConfig, Vars};
use crate::error::{Error, Result};
use crate::util::suggest::{did_you_mean, enrich_serde_message};

/// Finds the config file of the project in `dir`.
pub fn find_config_file(dir: &Path) -> Result<PathBuf> {
    CONFIG_FILES.iter().map(|name| dir.join(name)).find(|p| p.is_file()).ok_or_else(|| {
        Error::Config(format!(
            "no dfpipe.yml in {}: run `dfpipe init {}` to create a project there, or pass --project DIR",
            dir.display(),
            dir.display()
        ))
    })
}

/// Reads, parses and checks the config of the project in `project_dir`.
pub fn load(project_dir: &Path, options: &LoadOptions) -> Result<Config> {
    let project_dir = std::path::absolute(project_dir)
        .map_err(|e| Error::Config(format!("cannot resolve project directory {}: {e}", project_dir.display())))?;
    let file = find_config_file(&project_dir)?;
    let text =
        std::fs::read_to_string(&file).map_err(|e| Error::Config(format!("cannot read {}: {e}", file.display())))?;
    let label = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let raw = parse(&text, &label, is_toml(&file))?;
    let raw = match &options.env {
        Some(env) => apply_environment(raw, &text, &label, is_toml(&file), env)?,
        None => raw,
    };
    let checker =
        Checker { text: &text, label: &label, vars: Vars::new(options.vars.clone()), project_dir: &project_dir };
    let mut config = checker.check(raw, file.clone())?;
    if let Some(limit) = options.memory_limit {
        config.memory.limit = Some(limit);
    }
    if let Some(url) = &options.cluster {
        config.cluster = Some(super::ClusterUrl::parse(url).map_err(Error::Usage)?);
    }
    if options.strategy.is_some() {
        config.memory.strategy = options.strategy;
    }
    config.params = super::params::with_command_line(config.params, &options.params).map_err(Error::Usage)?;
    Ok(config)
}

fn is_toml(file: &Path) -> bool {
    file.extension().is_some_and(|e| e == "toml")
}

/// YAML 1.2's core schema for booleans: only `true` and `false` are booleans, so an unquoted
/// `N`, `no`, `on` or `Y` (YAML 1.1 booleans, the "Norway problem") stays a string.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// Parses config text strictly; errors name `label` with line and column.
pub fn parse(text: &str, label: &str, toml: bool) -> Result<RawConfig> {
    let (message, place) = if toml {
        match toml::from_str::<RawConfig>(text) {
            Ok(raw) => return Ok(raw),
            Err(e) => (e.message().to_string(), e.span().map(|span| line_and_column(text, span.start))),
        }
    } else {
        match serde_saphyr::from_str_with_options::<RawConfig>(text, yaml_options()) {
            Ok(raw) => return Ok(raw),
            Err(e) => {
                let place = e.location().map(|l| (l.line() as usize, l.column() as usize)).filter(|(l, _)| *l > 0);
                let message = e.without_snippet().to_string();
                // serde-saphyr renders "error: line L column C: message"; the place is shown our way.
                let message = match message.split_once(": ") {
                    Some((head, rest)) if head.starts_with("error") || head.starts_with("line ") => rest
                        .split_once(": ")
                        .filter(|(h, _)| h.starts_with("line "))
                        .map_or(rest, |(_, r)| r)
                        .to_string(),
                    _ => message,
                };
                (message, place)
            }
        }
    };
    let message = enrich_serde_message(&strip_location(&message));
    let message = crate::util::redact::credentials(&message);
    Err(Error::Config(match place {
        Some((line, column)) => format!("{label}:{line}:{column}: {message}\n{}", snippet(text, line, column)),
        None => format!("{label}: {message}"),
    }))
}

/// Drops an " at line L, column C" a parser put inside its message: dfpipe shows the place as
/// `file:line:column` in front.
fn strip_location(message: &str) -> String {
    let Some(at) = message.find(" at line ") else { return message.to_string() };
    let rest = &message[at + " at line ".len()..];
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let after_line = &rest[digits(rest)..];
    let Some(col) = after_line.strip_prefix(", column ") else { return message.to_string() };
    format!("{}{}", &message[..at], &col[digits(col)..])
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

/// The offending line with a caret under the column.
fn snippet(text: &str, line: usize, column: usize) -> String {
    let source = text.lines().nth(line - 1).unwrap_or_default();
    // A line may hold a DSN's password: masked, at the same width so the caret stays put.
    let source = crate::util::redact::credentials_same_width(source);
    let gutter = line.to_string();
    format!("{gutter} | {source}\n{} | {}^", " ".repeat(gutter.len()), " ".repeat(column.saturating_sub(1)))
}

fn parse_value(text: &str, toml: bool) -> std::result::Result<serde_json::Value, String> {
    if toml {
        toml::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_str_with_options::<serde_json::Value>(text, yaml_options()).map_err(|e| e.to_string())
    }
}

/// Merges `environments.<env>` over the rest of the config.
fn apply_environment(raw: RawConfig, text: &str, label: &str, toml: bool, env: &str) -> Result<RawConfig> {
    let Some(overlay) = raw.environments.get(env) else {
        let known: Vec<&str> = raw.environments.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "--env {env}: {label} declares no environment `{env}`{}{}",
            if known.is_empty() { String::new() } else { format!(" (declared: {})", known.join(", ")) },
            did_you_mean(env, known.iter().copied())
        )));
    };
    let mut base = parse_value(text, toml).map_err(|e| Error::Config(format!("{label}: {e}")))?;
    merge(&mut base, overlay);
    serde_json::from_value::<RawConfig>(base)
        .map_err(|e| Error::Config(format!("{label}: environments.{env}: {}", enrich_serde_message(&e.to_string()))))
}

/// Deep-merges `overlay` into `base`: objects merge key by key, everything else replaces.
fn merge(base: &mut serde_json::Value, overlay: &serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(base), serde_json::Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep() {
        let mut base = serde_json::json!({"a": {"x": 1, "y": 2}, "b": [1]});
        merge(&mut base, &serde_json::json!({"a": {"y": 3}, "b": [2]}));
        assert_eq!(base, serde_json::json!({"a": {"x": 1, "y": 3}, "b": [2]}));
    }
}
