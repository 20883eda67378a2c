//! `params:` in `dfpipe.yml` and `--param KEY=VALUE`: values models use as DataFusion
//! placeholders (`$name`), bound into each model's plan as literals (see the engine's
//! pipeline), never substituted into SQL text.
//!
//! ```yaml
//! params:
//!   min_amount: 10            # a number (integer or float), a string or a boolean, as YAML types it
//!   region: EU
//!   day: { type: date, value: 2024-01-31 }   # any SQL type: the value is cast to it
//! ```
//!
//! On the command line every value is text: `--param min_amount=25` is read as the type the
//! config declares for it, else as a number or boolean when it reads as one, else as text. A
//! model then casts nothing: where `$name` meets a typed column the value is cast to that
//! column's type, and a value that does not fit is an error naming the model and parameter.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A parameter as written under `params:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawParam {
    /// `name: { type: date, value: 2024-01-31 }`.
    Typed {
        /// A SQL type the value is cast to.
        #[serde(rename = "type")]
        sql_type: String,
        /// The value (any scalar).
        value: ParamValue,
    },
    /// `name: 10`, `name: EU`, `name: true`.
    Plain(ParamValue),
}

/// A parameter's value before binding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// Anything else.
    Text(String),
}

impl ParamValue {
    /// A command-line value: a boolean or number when it reads as one, else text.
    pub fn from_text(text: &str) -> ParamValue {
        match text {
            "true" => ParamValue::Bool(true),
            "false" => ParamValue::Bool(false),
            _ => text
                .parse::<i64>()
                .map(ParamValue::Int)
                .or_else(|_| text.parse::<f64>().map(ParamValue::Float))
                .unwrap_or_else(|_| ParamValue::Text(text.to_string())),
        }
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Text(s) => write!(f, "'{s}'"),
        }
    }
}

/// Where a parameter's value came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamOrigin {
    /// `params:` in the config file.
    Config,
    /// `--param` on the command line.
    CommandLine,
}

/// A checked parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The value.
    pub value: ParamValue,
    /// The SQL type declared in the config, if any.
    pub sql_type: Option<String>,
    /// Where the value came from.
    pub origin: ParamOrigin,
}

impl Param {
    /// `params.day` or `--param day`, for messages.
    pub fn source(&self, name: &str) -> String {
        match self.origin {
            ParamOrigin::Config => format!("params.{name}"),
            ParamOrigin::CommandLine => format!("--param {name}"),
        }
    }
}

/// Whether `name` can be written as a placeholder `$name`.
fn is_placeholder_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The parameters of the config.
pub fn from_config(raw: &BTreeMap<String, RawParam>) -> Result<BTreeMap<String, Param>, String> {
    let mut params = BTreeMap::new();
    for (name, raw) in raw {
        if !is_placeholder_name(name) {
            return Err(format!(
                "params.{name}: a parameter name is letters, digits and `_` (models write it `$name`)"
            ));
        }
        let (value, sql_type) = match raw {
            RawParam::Typed { sql_type, value } => (value.clone(), Some(sql_type.clone())),
            RawParam::Plain(value) => (value.clone(), None),
        };
        params.insert(name.clone(), Param { value, sql_type, origin: ParamOrigin::Config });
    }
    Ok(params)
}

/// `params` with the command line's values over them (typed as the config declares).
pub fn with_command_line(
    mut params: BTreeMap<String, Param>,
    command_line: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Param>, String> {
    for (name, text) in command_line {
        if !is_placeholder_name(name) {
            return Err(format!(
                "--param {name}: a parameter name is letters, digits and `_` (models write it `$name`)"
            ));
        }
        let sql_type = params.get(name).and_then(|p: &Param| p.sql_type.clone());
        let value = if sql_type.is_some() { ParamValue::Text(text.clone()) } else { ParamValue::from_text(text) };
        params.insert(name.clone(), Param { value, sql_type, origin: ParamOrigin::CommandLine });
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_from_yaml_and_the_command_line() {
        let raw: BTreeMap<String, RawParam> =
            serde_saphyr::from_str("n: 10\nx: 2.5\nb: true\ns: EU\nday: { type: date, value: 2024-01-31 }\n").unwrap();
        let cli = BTreeMap::from([("n".to_string(), "25".to_string()), ("day".to_string(), "2024-02-01".to_string())]);
        let params = with_command_line(from_config(&raw).unwrap(), &cli).unwrap();
        assert_eq!(params["n"].value, ParamValue::Int(25));
        assert_eq!(params["n"].origin, ParamOrigin::CommandLine);
        assert_eq!(params["x"].value, ParamValue::Float(2.5));
        assert_eq!(params["b"].value, ParamValue::Bool(true));
        assert_eq!(params["s"].value, ParamValue::Text("EU".into()));
        assert_eq!(params["day"].value, ParamValue::Text("2024-02-01".into()));
        assert_eq!(params["day"].sql_type.as_deref(), Some("date"));
        assert!(with_command_line(BTreeMap::new(), &BTreeMap::from([("a-b".into(), "1".into())])).is_err());
    }
}
