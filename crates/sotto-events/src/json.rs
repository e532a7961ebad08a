//! Typed field access over a JSON object, for the JSON formats.
//!
//! A dotted path such as `process.parent.name` is found whether the producer nested the objects,
//! flattened the keys (`"process.parent.name": ...`) or mixed the two, because all three occur in
//! real pipelines. Must not: guess types (a command line that is a number is an error, not a
//! string), or know any one format's field names.

use serde_json::{Map, Value};

use crate::error::{EventError, json_kind};
use crate::event::Format;

/// One JSON object read as a given format, so errors name the format.
#[derive(Clone, Copy)]
pub(crate) struct Doc<'a> {
    pub format: Format,
    pub root: &'a Map<String, Value>,
}

impl<'a> Doc<'a> {
    pub fn new(format: Format, root: &'a Map<String, Value>) -> Doc<'a> {
        Doc { format, root }
    }

    /// The value at a dotted path; JSON `null` counts as absent.
    pub fn get(&self, path: &str) -> Option<&'a Value> {
        let segments: Vec<&str> = path.split('.').collect();
        lookup(self.root, &segments).filter(|v| !v.is_null())
    }

    /// A sub-document at a dotted path, if it is an object.
    pub fn object(&self, path: &str) -> Option<Doc<'a>> {
        self.get(path).and_then(Value::as_object).map(|root| Doc { format: self.format, root })
    }

    pub fn has(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// A string field; empty strings count as absent. Any other JSON type is an error.
    pub fn str(&self, path: &str) -> Result<Option<String>, EventError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.bad(path, "a string", other)),
        }
    }

    /// The first of several string fields that is present.
    pub fn first_str(&self, paths: &[&str]) -> Result<Option<String>, EventError> {
        for p in paths {
            if let Some(s) = self.str(p)? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// A string, or a number written as text (timestamps, ids).
    pub fn text(&self, path: &str) -> Result<Option<String>, EventError> {
        match self.get(path) {
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            _ => self.str(path),
        }
    }

    /// A non-negative integer given as a JSON number or as decimal (or `0x` hex) text, as
    /// forwarders that stringify every value write it.
    pub fn uint(&self, path: &str) -> Result<Option<u64>, EventError> {
        let Some(value) = self.get(path) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => parse_uint(s),
            _ => None,
        };
        parsed.map(Some).ok_or_else(|| self.bad(path, "a non-negative integer", value))
    }

    /// An array of strings (e.g. ECS `process.args`).
    pub fn str_array(&self, path: &str) -> Result<Option<Vec<String>>, EventError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| self.bad(path, "an array of strings", v)))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| if v.is_empty() { None } else { Some(v) }),
            Some(other) => Err(self.bad(path, "an array of strings", other)),
        }
    }

    pub fn bad(&self, path: &str, expected: &'static str, found: &Value) -> EventError {
        let found = match found {
            Value::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
            Value::Number(n) => n.to_string(),
            other => json_kind(other).to_string(),
        };
        EventError::BadField { format: self.format, field: path.to_string(), expected, found }
    }
}

/// Decimal, or hex with a `0x` prefix.
pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Finds `segments` under `obj`, letting any run of consecutive segments be one dotted key.
fn lookup<'a>(obj: &'a Map<String, Value>, segments: &[&str]) -> Option<&'a Value> {
    let mut key = String::new();
    for i in 0..segments.len() {
        if i > 0 {
            key.push('.');
        }
        key.push_str(segments[i]);
        let Some(value) = obj.get(&key) else { continue };
        let rest = &segments[i + 1..];
        if rest.is_empty() {
            if !value.is_null() {
                return Some(value);
            }
        } else if let Some(found) = value.as_object().and_then(|o| lookup(o, rest)) {
            return Some(found);
        }
    }
    None
}

/// Whether any key of `obj` is `prefix` or starts with `prefix.`: detects a field family in
/// nested or flattened form.
pub(crate) fn has_family(obj: &Map<String, Value>, prefix: &str) -> bool {
    obj.keys().any(|k| k == prefix || (k.starts_with(prefix) && k.as_bytes().get(prefix.len()) == Some(&b'.')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: &Value) -> Doc<'_> {
        Doc::new(Format::Ecs, v.as_object().unwrap())
    }

    #[test]
    fn nested_flat_and_mixed_paths_are_found() {
        let nested = json!({"process": {"parent": {"name": "a"}}});
        let flat = json!({"process.parent.name": "b"});
        let mixed = json!({"process": {"parent.name": "c"}});
        let mixed2 = json!({"process.parent": {"name": "d"}});
        for (v, want) in [(nested, "a"), (flat, "b"), (mixed, "c"), (mixed2, "d")] {
            assert_eq!(doc(&v).str("process.parent.name").unwrap().as_deref(), Some(want));
        }
    }

    #[test]
    fn null_and_empty_are_absent() {
        let v = json!({"a": null, "b": "", "c": {"d": null}, "c.d": "x"});
        let d = doc(&v);
        assert_eq!(d.str("a").unwrap(), None);
        assert_eq!(d.str("b").unwrap(), None);
        assert_eq!(d.str("c.d").unwrap().as_deref(), Some("x"), "a null nested value falls through to the flat key");
    }

    #[test]
    fn wrong_types_are_named() {
        let v = json!({"process": {"command_line": 5, "pid": "abc"}});
        let d = doc(&v);
        assert_eq!(
            d.str("process.command_line").unwrap_err().to_string(),
            "ECS field process.command_line should be a string, found 5"
        );
        assert_eq!(
            d.uint("process.pid").unwrap_err().to_string(),
            "ECS field process.pid should be a non-negative integer, found \"abc\""
        );
    }

    #[test]
    fn integers_from_numbers_and_text() {
        let v = json!({"a": 12, "b": "34", "c": "0x1f", "d": ""});
        let d = doc(&v);
        assert_eq!(d.uint("a").unwrap(), Some(12));
        assert_eq!(d.uint("b").unwrap(), Some(34));
        assert_eq!(d.uint("c").unwrap(), Some(31));
        assert_eq!(d.uint("d").unwrap(), None);
    }

    #[test]
    fn families_in_either_form() {
        let v = json!({"process.name": "x", "processor": 1});
        let o = v.as_object().unwrap();
        assert!(has_family(o, "process"));
        assert!(!has_family(o, "proc"));
    }
}
