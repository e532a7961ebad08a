//! `response_format.json_schema`: bounds checked first, then llama.cpp's converter on a
//! blocking thread.
//!
//! The converter recurses once per optional property and copies its partial rules each time:
//! measured, 256 properties took 50 ms, 1,000 took 1.8 s and 3,000 held the engine for 51 s.
//! So a schema is measured (serialised size, nesting depth, property count) before the
//! converter sees it, and one over a limit is a 400 that names the limit.
//!
//! Must not: run the converter on the async runtime, or before the limits are checked.

use axum::http::StatusCode;
use serde_json::Value;
use sotto_engine::{Grammar, grammar};

use crate::ApiError;

/// How large a JSON schema may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaLimits {
    /// Serialised size in bytes.
    pub bytes: usize,
    /// Nesting depth of JSON objects and arrays (the schema itself is depth 1; each nested
    /// object property adds two: the `properties` map and the property's schema).
    pub depth: usize,
    /// Properties of every `properties` map in the schema, `$defs` included: the converter's
    /// cost grows with the cube of this.
    pub properties: usize,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        SchemaLimits { bytes: 16 << 10, depth: 16, properties: 256 }
    }
}

/// Depth and property count of a schema. Recursion is bounded: serde_json refuses documents
/// nested deeper than 128.
#[derive(Debug, Default, PartialEq, Eq)]
struct Measure {
    depth: usize,
    properties: usize,
}

fn measure(value: &Value, depth: usize, m: &mut Measure) {
    m.depth = m.depth.max(depth);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "properties"
                    && let Value::Object(props) = v
                {
                    m.properties += props.len();
                }
                measure(v, depth + 1, m);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| measure(v, depth + 1, m)),
        _ => {}
    }
}

/// The schema as text for the converter, or a 400 naming every limit it is over.
fn checked(schema: &Value, limits: &SchemaLimits) -> Result<String, ApiError> {
    let mut m = Measure::default();
    if schema.is_object() || schema.is_array() {
        measure(schema, 1, &mut m);
    }
    let text = schema.to_string();
    let mut over = Vec::new();
    if m.properties > limits.properties {
        over.push(format!("{} properties (the property limit is {})", m.properties, limits.properties));
    }
    if m.depth > limits.depth {
        over.push(format!("nesting depth {} (the depth limit is {})", m.depth, limits.depth));
    }
    if text.len() > limits.bytes {
        over.push(format!("{} bytes (the size limit is {})", text.len(), limits.bytes));
    }
    if over.is_empty() {
        return Ok(text);
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "schema_too_large",
        format!("response_format.json_schema.schema is over the limits: {}", over.join(", ")),
    ))
}

/// The grammar for `schema`: checked against `limits`, then converted on the blocking pool.
pub(crate) async fn grammar(schema: &Value, limits: &SchemaLimits) -> Result<Grammar, ApiError> {
    let text = checked(schema, limits)?;
    match tokio::task::spawn_blocking(move || grammar::from_json_schema(&text)).await {
        Ok(Ok(g)) => Ok(g),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("response_format.json_schema.schema: {e}"))),
        Err(e) => {
            tracing::error!(error = %e, "the JSON schema conversion failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "schema_conversion_failed",
                "the JSON schema could not be converted; the server log has the cause",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn properties(n: usize) -> Value {
        let props: serde_json::Map<String, Value> = (0..n).map(|i| (format!("p{i}"), json!({}))).collect();
        json!({"type": "object", "properties": props})
    }

    #[test]
    fn measures_depth_and_properties_everywhere_in_the_schema() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {}}}},
            "$defs": {"d": {"properties": {"x": {}, "y": {}}}}});
        let mut m = Measure::default();
        measure(&schema, 1, &mut m);
        assert_eq!(m, Measure { depth: 5, properties: 4 });
    }

    #[test]
    fn a_schema_over_a_limit_is_refused_naming_it() {
        let limits = SchemaLimits::default();
        assert!(checked(&properties(256), &limits).is_ok());
        let e = checked(&properties(257), &limits).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "schema_too_large"));
        assert!(e.message.contains("257 properties (the property limit is 256)"), "{}", e.message);
        let mut deep = json!({});
        for _ in 0..20 {
            deep = json!({"anyOf": [deep]});
        }
        let e = checked(&deep, &limits).unwrap_err();
        assert!(e.message.contains("depth limit is 16") && !e.message.contains("propert"), "{}", e.message);
        let long = json!({"enum": ["x".repeat(20_000)]});
        assert!(checked(&long, &limits).unwrap_err().message.contains("size limit is 16384"));
    }
}
