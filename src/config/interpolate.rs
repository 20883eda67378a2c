//! `${VAR}` and `${VAR:-default}` in config strings.
//!
//! Values come from `--vars KEY=VALUE` first, then from the process environment. `$$` writes a
//! literal `$`. A variable that is unset and has no default is an error naming it and the place
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

    /// Replaces every `${NAME}` / `${NAME:-default}` in `input`.
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
                let end = body_and_tail
                    .find('}')
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
                match (self.lookup(name), default) {
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
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

/// The 1-based line and column of the first occurrence of `needle` in `text`.
pub fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    let offset = text.find(needle)?;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    Some((line, column))
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
    }
}
