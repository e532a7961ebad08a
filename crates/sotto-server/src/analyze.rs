//! `POST /v1/analyze`: one endpoint event, or a batch, in any supported format; verdicts out.
//!
//! A single event that cannot be read is a 422 naming what is missing. In a batch, each item
//! gets its own result: an item that cannot be read, or whose analysis fails (a full queue, a
//! passed deadline, a prompt too long for the context), gets an `error` in its place and the
//! others keep their verdicts. A deadline applies to each item from when it is queued.
//!
//! Must not: analyse an event it could not normalise, or hold the whole batch's verdicts back
//! because one item failed.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sotto_analyze::{AnalyzeError, Detail};
use sotto_engine::EngineError;
use sotto_events::{Event, EventError};

use crate::openai::Tally;
use crate::{ApiError, ApiJson, AppState};

/// Most events in one batch request.
pub const MAX_BATCH: usize = 256;

#[derive(Debug, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    deadline_ms: Option<u64>,
}

/// An event as JSON: an object in any supported shape, or a string holding raw Sysmon XML or
/// auditd lines.
fn parse_event(value: &Value) -> Result<Event, EventError> {
    match value {
        Value::String(raw) => sotto_events::parse_line(raw),
        other => sotto_events::parse_json(other),
    }
}

fn unreadable(e: &EventError) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error", "unreadable_event", e.to_string())
}

/// `waited`: how long the event had been queued when the analysis ended (what a deadline
/// error reports).
fn analyze_error(state: &AppState, e: AnalyzeError, waited: Duration) -> ApiError {
    match e {
        AnalyzeError::Engine(e) => {
            let retry = state.0.metrics.retry_after(state.0.engine.status().queued);
            ApiError::from_engine(e, retry)
        }
        AnalyzeError::Deadline => ApiError::from_engine(EngineError::DeadlineExceeded { waited }, 1),
        AnalyzeError::Unparsed(text) => {
            tracing::warn!(answer = %text, "the model's answer named no verdict");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "unparsed_answer",
                "the model's answer could not be read as a verdict",
            )
        }
    }
}

/// Summary of the normalised event, echoed with its verdict so a caller can match them up.
fn event_summary(e: &Event) -> Value {
    json!({
        "source": e.source, "os": e.os, "process": e.process_path.as_ref().or(e.process_name.as_ref()),
        "command_line": e.command_line, "host": e.host, "user": e.user, "timestamp": e.timestamp,
        "truncated": e.truncated,
    })
}

/// The body as one event or a batch, taken apart without copying.
enum Shape {
    One(Value),
    Batch(Vec<Value>),
}

fn shape(body: Value) -> Shape {
    match body {
        Value::Array(items) => Shape::Batch(items),
        Value::Object(mut map) if map.len() == 1 && map.get("events").is_some_and(Value::is_array) => {
            match map.remove("events") {
                Some(Value::Array(items)) => Shape::Batch(items),
                _ => Shape::One(Value::Object(map)),
            }
        }
        other => Shape::One(other),
    }
}

pub(crate) async fn analyze(
    State(state): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Result<ApiJson<Value>, ApiError>,
) -> Response {
    let tally = Tally::new(&state, "analyze");
    let body = match body {
        Ok(ApiJson(v)) => v,
        Err(e) => return tally.error(e).into_response(),
    };
    let Some(analyzer) = state.0.analyzer.clone() else {
        return tally.error(ApiError::not_found("unknown_route", "analysis is not enabled")).into_response();
    };
    let detail = match params.detail.as_deref().map(str::parse::<Detail>) {
        None => state.0.settings.default_detail,
        Some(Ok(d)) => d,
        Some(Err(e)) => return tally.error(ApiError::bad_request(format!("detail: {e}"))).into_response(),
    };
    let terms = match crate::Terms::from_parts(&state, &headers, params.priority.as_deref(), params.deadline_ms) {
        Ok(a) => a,
        Err(e) => return tally.error(e).into_response(),
    };
    let items = match shape(body) {
        Shape::Batch(items) => items,
        Shape::One(body) => {
            let event = match parse_event(&body) {
                Ok(e) => e,
                Err(e) => return tally.error(unreadable(&e)).into_response(),
            };
            let queued = Instant::now();
            return match analyzer.analyze(&event, detail, terms.from_now()).await {
                Ok(analysis) => {
                    let mut v = serde_json::to_value(&analysis).expect("analyses serialise");
                    v["event"] = event_summary(&event);
                    tally.done_analysis(analysis.prompt_tokens, analysis.cached_tokens, analysis.generated_tokens);
                    Json(v).into_response()
                }
                Err(e) => tally.error(analyze_error(&state, e, queued.elapsed())).into_response(),
            };
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        let e = ApiError::bad_request(format!("a batch holds 1 to {MAX_BATCH} events, not {}", items.len()));
        return tally.error(e).into_response();
    }
    let mut results = Vec::with_capacity(items.len());
    let (mut prompt, mut cached, mut generated) = (0, 0, 0);
    for (index, item) in items.iter().enumerate() {
        let event = match parse_event(item) {
            Ok(event) => event,
            Err(e) => {
                results.push(json!({ "index": index, "error": unreadable(&e).body()["error"] }));
                continue;
            }
        };
        // Each item gets the whole wait, counted from when it is queued.
        let queued = Instant::now();
        let result = match analyzer.analyze(&event, detail, terms.from_now()).await {
            Ok(analysis) => {
                prompt += analysis.prompt_tokens;
                cached += analysis.cached_tokens;
                generated += analysis.generated_tokens;
                let mut v = serde_json::to_value(&analysis).expect("analyses serialise");
                v["index"] = json!(index);
                v["event"] = event_summary(&event);
                v
            }
            Err(e) => {
                let error = analyze_error(&state, e, queued.elapsed());
                json!({ "index": index, "error": error.body()["error"], "event": event_summary(&event) })
            }
        };
        results.push(result);
    }
    tally.done_analysis(prompt, cached, generated);
    Json(json!({ "results": results })).into_response()
}
