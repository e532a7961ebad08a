//! Issue 11: bounded JSON schemas converted off the runtime (item 1).

use axum::http::StatusCode;
use serde_json::{Value, json};
use sotto_engine::EngineConfig;
use sotto_server::Settings;

use super::{call, get, post, router, smollm, state_with};

/// A chat request whose answer must follow a schema of `n` empty properties.
fn schema_request(n: usize) -> String {
    let props: serde_json::Map<String, Value> = (0..n).map(|i| (format!("field_{i}"), json!({}))).collect();
    json!({"messages": [{"role": "user", "content": "Fill in the form."}], "max_tokens": 8,
        "response_format": {"type": "json_schema", "json_schema": {"name": "form",
        "schema": {"type": "object", "properties": props}}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_of_3000_properties_is_refused_naming_the_property_limit() {
    let state = state_with(EngineConfig::new(smollm()), Settings::default());
    let r = router(&state);
    // Measured before the fix: accepted, and the converter held the engine for 51 s.
    let reply = call(&r, post("/v1/chat/completions", schema_request(3000))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error_code(), "schema_too_large");
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("3000 properties (the property limit is 256)"), "{message}");
    let legal = call(&r, post("/v1/chat/completions", schema_request(20))).await;
    assert_eq!(legal.status, StatusCode::OK, "{}", legal.text);
}

/// On a single-threaded runtime, a conversion on the runtime would run to its end before
/// `/health` got a turn. With the engine closed, the schema request ends (503) as soon as its
/// grammar is ready, so which of the two finishes first shows where the conversion ran.
#[tokio::test(flavor = "current_thread")]
async fn a_schema_is_converted_off_the_runtime_while_health_answers() {
    let state = state_with(EngineConfig::new(smollm()), Settings::default());
    state.engine().close();
    let r = router(&state);
    let converting = call(&r, post("/v1/chat/completions", schema_request(200)));
    let health = get(&r, "/health");
    tokio::pin!(converting, health);
    tokio::select! {
        biased;
        reply = &mut converting => panic!("the schema request finished before /health answered: {}", reply.text),
        reply = &mut health => assert_eq!(reply.status, StatusCode::OK),
    }
    let reply = converting.await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "converted, then refused by the closed engine: {}",
        reply.text
    );
}
