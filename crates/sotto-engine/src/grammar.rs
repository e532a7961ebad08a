//! Grammars for constrained decoding: JSON schemas and "any JSON object", converted to
//! llama.cpp GBNF with llama.cpp's own converter. Callers run these on their own thread before
//! queueing a request, so an invalid schema is refused without touching the engine.
//!
//! Must not: accept a schema the converter cannot honour (that would silently generate
//! unconstrained text).

use crate::{EngineError, Grammar};

/// The grammar for JSON text valid under `schema` (a JSON Schema document).
pub fn from_json_schema(schema: &str) -> Result<Grammar, EngineError> {
    let value: serde_json::Value = serde_json::from_str(schema)
        .map_err(|e| EngineError::InvalidRequest(format!("the JSON schema is not valid JSON: {e}")))?;
    if !(value.is_object() || value.is_boolean()) {
        return Err(EngineError::InvalidRequest("a JSON schema must be an object".into()));
    }
    let gbnf = llama_cpp_2::json_schema_to_grammar(schema)
        .map_err(|e| EngineError::InvalidRequest(format!("unsupported JSON schema: {e}")))?;
    Ok(Grammar::Gbnf(gbnf))
}

/// The grammar for any single JSON object (OpenAI's `json_object` response format).
pub fn json_object() -> Grammar {
    from_json_schema(r#"{"type": "object"}"#).expect("the object schema converts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_schemas_and_refuses_bad_ones() {
        let schema =
            r#"{"type":"object","properties":{"verdict":{"enum":["benign","malicious"]}},"required":["verdict"]}"#;
        let Grammar::Gbnf(g) = from_json_schema(schema).unwrap();
        assert!(g.contains("root") && g.contains("benign"), "{g}");
        assert!(from_json_schema("{not json").unwrap_err().to_string().contains("not valid JSON"));
        assert!(from_json_schema("[1]").unwrap_err().to_string().contains("must be an object"));
        assert!(from_json_schema(r##"{"type":"object","properties":{"a":{"$ref":"#/nowhere"}}}"##).is_err());
        let Grammar::Gbnf(o) = json_object();
        assert!(o.contains("root"));
    }
}
