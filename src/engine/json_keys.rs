//! The keys of a JSON source's lines: the order of its columns, the order its keys first appear
//! in the file, as DuckDB's `read_json` gives them (arrow-json infers the types but reads each
//! object through `serde_json`'s map, which sorts the keys, so its columns came out
//! alphabetical); and the first key that changes JSON type, which Arrow's reader cannot read.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// How much of the first file is read for the order: keys first seen later keep the inferred
/// order, after these.
const SAMPLE_BYTES: u64 = 1 << 20;

/// `schema` with its top-level fields in the order their keys first appear in `file` (its first
/// MiB, when uncompressed); unchanged when that cannot be read.
pub async fn in_file_order(schema: SchemaRef, store: &Arc<dyn ObjectStore>, file: &ObjectMeta) -> SchemaRef {
    let end = file.size.min(SAMPLE_BYTES);
    let Ok(bytes) = store.get_range(&file.location, 0..end).await else { return schema };
    let order = key_order(&bytes);
    let rank = |name: &str| order.iter().position(|k| k == name).unwrap_or(usize::MAX);
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    // A stable sort: keys not in the sample keep their inferred order, after the others.
    fields.sort_by_key(|f| rank(f.name()));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The keys of the objects on `text`'s lines, in the order each first appears.
fn key_order(text: &[u8]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for line in text.split(|b| *b == b'\n') {
        let mut de = serde_json::Deserializer::from_slice(line);
        if let Ok(found) = (&mut de).deserialize_map(KeysInOrder) {
            for key in found {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    keys
}

/// Collects an object's keys in the order they are written, skipping the values.
struct KeysInOrder;

impl<'de> Visitor<'de> for KeysInOrder {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Vec<String>, M::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            keys.push(key);
        }
        Ok(keys)
    }
}

/// For a local JSON file (`file://…`): the first line where a key holds another JSON type than
/// where it first appeared, and what to do. Arrow's JSON reader reads a key as one type: a text
/// column does not take a number (the advice was `schema: { key: varchar }`, which failed the
/// same way), and an object or an array does not mix with anything else.
pub fn type_change(file: &str) -> Option<String> {
    let path = std::path::Path::new(file.strip_prefix("file://")?);
    let text = std::fs::read_to_string(path).ok()?;
    let kind = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    };
    let mut first: std::collections::BTreeMap<String, (&str, usize)> = Default::default();
    for (i, line) in text.lines().enumerate() {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        for (key, value) in &map {
            let k = kind(value);
            if k == "null" {
                continue;
            }
            match first.get(key) {
                Some((was, at)) if *was != k => {
                    let scalars = [k, *was].iter().all(|t| !matches!(*t, "an array" | "an object"));
                    let fix = match scalars {
                        true => {
                            "write its values as one type: all numbers if it is a number (\"5\" reads as one), \
                             or all strings if it is text (quote the numbers: a text column takes \"5\", not 5)"
                        }
                        false => "write it as one type on every line",
                    };
                    return Some(format!(
                        "line {}: key `{key}` holds {k}, but {was} on line {at}; dfpipe reads a JSON key as one \
                         type: {fix}",
                        i + 1
                    ));
                }
                Some(_) => {}
                None => {
                    first.insert(key.clone(), (k, i + 1));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_in_the_order_they_first_appear() {
        let text =
            b"{\"zeta\": 1, \"alpha\": {\"z\": 1, \"a\": 2}, \"mid\": [1]}\n{\"extra\": true, \"zeta\": 2}\n{\"cut";
        assert_eq!(key_order(text), ["zeta", "alpha", "mid", "extra"]);
    }
}
