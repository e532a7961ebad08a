//! The grammars the engine hands to llama.cpp, as llama.cpp's own converter writes them: a
//! change of the converter (a llama.cpp update) or of what sotto asks it for shows in review.
//! The analyzer's grammars are snapshot in `sotto-analyze`'s `prompt.rs`.

use sotto_engine::{Grammar, grammar};

fn gbnf(g: Grammar) -> String {
    let Grammar::Gbnf(text) = g;
    text
}

/// OpenAI's `response_format: {"type": "json_object"}`.
#[test]
fn json_object_grammar() {
    insta::assert_snapshot!(gbnf(grammar::json_object()));
}

/// A schema of the kind a client sends for a verdict: an enum, a number, a pattern, required
/// keys and no others.
#[test]
fn json_schema_grammar() {
    let schema = r#"{"type": "object", "properties": {
        "verdict": {"type": "string", "enum": ["malicious", "suspicious", "benign"]},
        "confidence": {"type": "number"},
        "technique": {"type": "string", "pattern": "^T[0-9]{4}$"}},
        "required": ["verdict", "confidence"], "additionalProperties": false}"#;
    insta::assert_snapshot!(gbnf(grammar::from_json_schema(schema).unwrap()));
}
