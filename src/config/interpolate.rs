//! `${VAR}` and `${VAR:-default}` in config strings.
//!
//! Values come from `--vars KEY=VALUE` first, then from the process environment. `$$` writes a
//! literal `$`. `${NAME:-default}` takes the default when NAME is unset or empty, as the shell
//! does; defaults may nest (`${A:-${B:-c}}`). A variable that is unset and has no default is an error naming it and the place
//! in the config file where it is used.

use std::collections::BTreeMap;

/// Resolves `${...}` references against `--vars` and the environment.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    overrides: BTreeMap<String, String>,
}

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolateError {
    /// `${NAME}` with NAME neither in `--vars` nor in the environment.
    Missing(String),
    /// A `${` without its closing `}`, or an empty or invalid name.
    Malformed(String),
}

impl Vars {
    /// Builds the resolver from `--vars` values (`KEY=VALUE` pairs already split).
    pub fn new(overrides: BTreeMap<String, String>) -> Self {
        Vars { overrides }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.overrides.get(name).cloned().or_else(|| std::env::var(name).ok())
    }

    /// Replaces every `${NAME}` / `${NAME:-default}` in `input`. As in the shell, the default
    /// also applies when NAME is set but empty, and may itself hold references
    /// (`${A:-${B}}`).
    pub fn interpolate(&self, input: &str) -> Result<String, InterpolateError> {
        let mut out = String::with_capacity(input.len());
        let mut rest = input;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body_and_tail) = after.strip_prefix('{') {
                let end = closing_brace(body_and_tail)
                    .ok_or_else(|| InterpolateError::Malformed(format!("${{{body_and_tail}")))?;
                let body = &body_and_tail[..end];
                let (name, default) = match body.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (body, None),
                };
                let valid = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    return Err(InterpolateError::Malformed(format!("${{{body}}}")));
                }
                match (self.lookup(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(&self.interpolate(default)?),
                    (None, None) => return Err(InterpolateError::Missing(name.to_string())),
                }
                rest = &body_and_tail[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The byte offset of the `}` that closes a `${` whose body starts `text`, nested `${…}`
/// included.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The 1-based line and column of the first occurrence of `needle` in `text` outside a `#`
/// comment (YAML and TOML comments both start with `#`), else of the first occurrence at all.
pub fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    let offset = locate_nth(text, needle, 0).or_else(|| text.find(needle))?;
    Some(line_column(text, offset))
}

/// The byte offset of the `n`-th (from 0) occurrence of `needle` in `text` outside a `#` comment.
fn locate_nth(text: &str, needle: &str, n: usize) -> Option<usize> {
    let in_comment = |offset: usize| {
        let line_start = text[..offset].rfind('\n').map_or(0, |nl| nl + 1);
        text[line_start..offset].contains('#')
    };
    text.match_indices(needle).map(|(i, _)| i).filter(|&i| !in_comment(i)).nth(n)
}

/// The 1-based line and column of the `n`-th (from 0) occurrence of `needle` outside a comment.
pub fn locate_occurrence(text: &str, needle: &str, n: usize) -> Option<(usize, usize)> {
    locate_nth(text, needle, n).map(|offset| line_column(text, offset))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn replaces_vars_defaults_and_escapes() {
        let v = vars(&[("A", "1"), ("B", "two")]);
        assert_eq!(v.interpolate("x${A}y${B}").unwrap(), "x1ytwo");
        assert_eq!(v.interpolate("${DFPIPE_SURELY_UNSET:-fallback}").unwrap(), "fallback");
        assert_eq!(v.interpolate("${A:-unused}").unwrap(), "1");
        assert_eq!(v.interpolate("cost $$5 and $x").unwrap(), "cost $5 and $x");
        assert_eq!(v.interpolate("${DFPIPE_SURELY_UNSET:-}").unwrap(), "");
    }

    #[test]
    fn defaults_apply_to_empty_values_and_nest() {
        let v = vars(&[("EMPTY", ""), ("B", "bee")]);
        assert_eq!(v.interpolate("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(v.interpolate("[${EMPTY}]").unwrap(), "[]");
        assert_eq!(v.interpolate("${DFPIPE_SURELY_UNSET:-${B}}/x").unwrap(), "bee/x");
        assert_eq!(v.interpolate("${DFPIPE_SURELY_UNSET:-${EMPTY:-deep}}").unwrap(), "deep");
        assert_eq!(
            v.interpolate("${DFPIPE_SURELY_UNSET:-${DFPIPE_ALSO_UNSET}}"),
            Err(InterpolateError::Missing("DFPIPE_ALSO_UNSET".into()))
        );
    }

    #[test]
    fn vars_override_the_environment() {
        // PATH is always set; --vars wins over it.
        let v = vars(&[("PATH", "mine")]);
        assert_eq!(v.interpolate("${PATH}").unwrap(), "mine");
    }

    #[test]
    fn missing_and_malformed() {
        let v = vars(&[]);
        assert_eq!(
            v.interpolate("${DFPIPE_SURELY_UNSET}"),
            Err(InterpolateError::Missing("DFPIPE_SURELY_UNSET".into()))
        );
        assert!(matches!(v.interpolate("${A"), Err(InterpolateError::Malformed(_))));
        assert!(matches!(v.interpolate("${}"), Err(InterpolateError::Malformed(_))));
        assert!(matches!(v.interpolate("${a-b}"), Err(InterpolateError::Malformed(_))));
    }

    #[test]
    fn locate_reports_line_and_column() {
        assert_eq!(locate("a: 1\nb: ${X}\n", "${X"), Some((2, 4)));
        assert_eq!(locate("${X}", "${X"), Some((1, 1)));
        assert_eq!(locate("# uses ${X}\nb: ${X}\n", "${X"), Some((2, 4)));
    }
}
