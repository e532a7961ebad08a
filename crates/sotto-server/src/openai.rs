//! The OpenAI-compatible endpoints: chat completions, text completions and the model list,
//! streaming (SSE) and not, with grammar-enforced `response_format`. Also the admission steps
//! every inference endpoint shares: priority and deadline, queueing, waiting for the start
//! (through the engine's one client, [`Reply`]).
//!
//! Must not: block the runtime, or let an engine error through without a status code.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{Value, json};
use sotto_engine::{
    Admission, FinishReason, Message, Piece, Priority, Prompt, Reply, Request, Sampling, Stats, grammar,
};

use crate::metrics::outcome;
use crate::{ApiError, ApiJson, AppState, header_str};

/// A string or a list of strings (`stop`, a completion's `prompt`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct JsonSchemaFormat {
    #[serde(default)]
    schema: Option<Value>,
}

/// OpenAI's `response_format`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

/// Fields shared by both generation endpoints. Unknown fields are ignored, as OpenAI's own
/// clients send many.
#[derive(Debug, Deserialize)]
pub(crate) struct Common {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<OneOrMany>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    response_format: Option<ResponseFormat>,
    #[serde(default)]
    n: Option<i64>,
    /// sotto: `critical`, `normal` or `background`.
    #[serde(default)]
    priority: Option<String>,
    /// sotto: answer 504 if the request has not started within this many ms.
    #[serde(default)]
    deadline_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    messages: Vec<ChatMessage>,
    #[serde(flatten)]
    common: Common,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest {
    prompt: OneOrMany,
    #[serde(flatten)]
    common: Common,
}

/// How a request asked to be queued: its priority and how long it may wait in the queue (the
/// body, header or default deadline). The engine's [`Admission`] is made from it when the
/// request is queued.
#[derive(Debug, Clone, Copy)]
pub struct Terms {
    pub priority: Priority,
    pub wait: Option<Duration>,
}

impl Terms {
    /// From the body fields, else the `X-Sotto-Priority` / `X-Sotto-Deadline-Ms` headers,
    /// else the defaults.
    pub fn from_parts(
        state: &AppState,
        headers: &HeaderMap,
        priority: Option<&str>,
        deadline_ms: Option<u64>,
    ) -> Result<Self, ApiError> {
        let priority = match priority.or_else(|| header_str(headers, "x-sotto-priority")) {
            Some(p) => p.parse::<Priority>().map_err(ApiError::bad_request)?,
            None => Priority::Normal,
        };
        let deadline_ms = match deadline_ms {
            Some(ms) => Some(ms),
            None => match header_str(headers, "x-sotto-deadline-ms") {
                Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("X-Sotto-Deadline-Ms must be a whole number of ms, not {v:?}"))
                })?),
                None => None,
            },
        };
        let wait = deadline_ms.map(Duration::from_millis).or(state.0.settings.default_deadline);
        Ok(Terms { priority, wait })
    }

    /// The admission with the wait counted from now: each item of an analysis batch gets the
    /// whole wait for itself.
    pub fn from_now(self) -> Admission {
        Admission { priority: self.priority, deadline: self.wait.map(|w| Instant::now() + w) }
    }
}

/// Queue `request` and wait until the engine starts on it. A full queue is a 429 with
/// `Retry-After`; a deadline that passes first is a 504 (and the request, dropped here, is
/// never evaluated).
pub async fn admit(state: &AppState, request: Request) -> Result<Reply, ApiError> {
    let deadline = request.deadline;
    let mut reply = state.0.engine.submit(request).map_err(|e| {
        let retry = state.0.metrics.retry_after(state.0.engine.status().queued);
        ApiError::from_engine(e, retry)
    })?;
    reply.started(deadline).await.map_err(|e| ApiError::from_engine(e, 1))?;
    Ok(reply)
}

/// The metrics tally of one request: counts its outcome exactly once; a handler dropped
/// mid-way (the client left) is counted as cancelled.
pub(crate) struct Tally {
    state: AppState,
    endpoint: &'static str,
    started: Instant,
    counted: bool,
}

impl Tally {
    pub(crate) fn new(state: &AppState, endpoint: &'static str) -> Self {
        Tally { state: state.clone(), endpoint, started: Instant::now(), counted: false }
    }

    pub(crate) fn error(mut self, e: ApiError) -> ApiError {
        let kind = match e.status {
            StatusCode::TOO_MANY_REQUESTS => outcome::QUEUE_FULL,
            StatusCode::GATEWAY_TIMEOUT => outcome::DEADLINE,
            s if s.is_client_error() => outcome::CLIENT_ERROR,
            _ => outcome::ERROR,
        };
        self.state.0.metrics.count(self.endpoint, kind);
        self.counted = true;
        e
    }

    /// An analysis (one or more engine requests) completed.
    pub(crate) fn done_analysis(mut self, prompt: usize, cached: usize, generated: usize) {
        self.state.0.metrics.count(self.endpoint, outcome::OK);
        self.state.0.metrics.completed_tokens(self.endpoint, self.started.elapsed(), prompt, cached, generated);
        self.counted = true;
    }

    pub(crate) fn done(mut self, stats: &Stats) {
        let kind = match stats.finish {
            FinishReason::Cancelled => outcome::CANCELLED,
            FinishReason::Deadline => outcome::DEADLINE,
            FinishReason::Stop | FinishReason::Length => outcome::OK,
        };
        self.state.0.metrics.count(self.endpoint, kind);
        self.state.0.metrics.completed(self.endpoint, self.started.elapsed(), stats);
        self.counted = true;
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if !self.counted {
            self.state.0.metrics.count(self.endpoint, outcome::CANCELLED);
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn request_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{prefix}-{:x}{:06x}", now_secs(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Turn the shared fields into an engine request around `prompt`, without its grammar (see
/// [`response_grammar`]).
fn build(state: &AppState, headers: &HeaderMap, prompt: Prompt, c: &Common) -> Result<Request, ApiError> {
    if let Some(model) = &c.model
        && !state.0.model.accepts(model)
    {
        return Err(ApiError::not_found(
            "model_not_found",
            format!("model `{model}` is not served here; this server runs `{}` (see /v1/models)", state.0.model.id),
        ));
    }
    if let Some(n) = c.n
        && n != 1
    {
        return Err(ApiError::bad_request(format!("n must be 1 (one choice per request), not {n}")));
    }
    let max_tokens = match c.max_completion_tokens.or(c.max_tokens) {
        None => state.0.settings.default_max_tokens,
        Some(n) if n < 1 => return Err(ApiError::bad_request(format!("max_tokens must be at least 1, not {n}"))),
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
    }
    .min(state.0.settings.max_tokens);
    let sampling = match c.temperature {
        None => Sampling::Greedy,
        Some(t) if !(0.0..=2.0).contains(&t) => {
            return Err(ApiError::bad_request(format!("temperature must be between 0 and 2, not {t}")));
        }
        Some(0.0) => Sampling::Greedy,
        Some(temperature) => {
            let seed = match c.seed {
                Some(s) => s as u32,
                None => (now_secs() ^ u64::from(std::process::id())) as u32,
            };
            Sampling::Random { temperature, top_p: c.top_p.unwrap_or(1.0), seed }
        }
    };
    let stop = c.stop.as_ref().map(|s| match s {
        OneOrMany::One(s) => vec![s.clone()],
        OneOrMany::Many(v) => v.clone(),
    });
    let stop = stop.unwrap_or_default();
    if stop.len() > 4 {
        return Err(ApiError::bad_request("at most 4 stop sequences"));
    }
    let admission = Terms::from_parts(state, headers, c.priority.as_deref(), c.deadline_ms)?.from_now();
    let request = Request { sampling, stop, ..Request::new(prompt, max_tokens) }.admitted(admission);
    request.validate().map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(request)
}

/// The grammar `response_format` asks for. A JSON schema is checked against the limits first
/// and converted off the runtime.
async fn response_grammar(state: &AppState, c: &Common) -> Result<Option<sotto_engine::Grammar>, ApiError> {
    match &c.response_format {
        None | Some(ResponseFormat::Text) => Ok(None),
        Some(ResponseFormat::JsonObject) => Ok(Some(grammar::json_object())),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema
                .schema
                .as_ref()
                .ok_or_else(|| ApiError::bad_request("response_format.json_schema.schema is required"))?;
            crate::schema::grammar(schema, &state.0.settings.schema_limits).await.map(Some)
        }
    }
}

fn messages(raw: Vec<ChatMessage>) -> Result<Vec<Message>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty"));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(ApiError::bad_request(format!(
                        "messages[{i}].role `{other}` is not supported (system, developer, user, assistant)"
                    )));
                }
            };
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(t)) => t,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.kind.as_str(), p.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            (kind, _) => {
                                return Err(ApiError::bad_request(format!(
                                    "messages[{i}].content: only text parts are supported, not `{kind}`"
                                )));
                            }
                        }
                    }
                    text
                }
            };
            Ok(Message::new(role, content))
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

impl Kind {
    fn endpoint(self) -> &'static str {
        match self {
            Kind::Chat => "chat_completions",
            Kind::Completion => "completions",
        }
    }
}

pub(crate) async fn chat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<ChatRequest>, ApiError>,
) -> Response {
    let tally = Tally::new(&state, Kind::Chat.endpoint());
    let parsed = body.and_then(|ApiJson(req)| {
        let msgs = messages(req.messages)?;
        Ok((msgs, req.common))
    });
    let (msgs, common) = match parsed {
        Ok(v) => v,
        Err(e) => return tally.error(e).into_response(),
    };
    generate(state, headers, Prompt::Chat(msgs), common, Kind::Chat, tally).await
}

pub(crate) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<CompletionRequest>, ApiError>,
) -> Response {
    let tally = Tally::new(&state, Kind::Completion.endpoint());
    let parsed = body.and_then(|ApiJson(req)| {
        let mut prompts = req.prompt.into_vec();
        if prompts.len() != 1 {
            return Err(ApiError::bad_request("prompt must be one string (batches are not supported)"));
        }
        Ok((prompts.remove(0), req.common))
    });
    let (prompt, common) = match parsed {
        Ok(v) => v,
        Err(e) => return tally.error(e).into_response(),
    };
    generate(state, headers, Prompt::Text(prompt), common, Kind::Completion, tally).await
}

async fn generate(
    state: AppState,
    headers: HeaderMap,
    prompt: Prompt,
    common: Common,
    kind: Kind,
    tally: Tally,
) -> Response {
    let mut request = match build(&state, &headers, prompt, &common) {
        Ok(v) => v,
        Err(e) => return tally.error(e).into_response(),
    };
    request.grammar = match response_grammar(&state, &common).await {
        Ok(g) => g,
        Err(e) => return tally.error(e).into_response(),
    };
    let reply = match admit(&state, request).await {
        Ok(reply) => reply,
        Err(e) => return tally.error(e).into_response(),
    };
    let id = request_id(if kind == Kind::Chat { "chatcmpl" } else { "cmpl" });
    let model = state.0.model.id.clone();
    if common.stream {
        let usage = common.stream_options.is_some_and(|o| o.include_usage);
        return Sse::new(sse_stream(reply, tally, id, model, kind, usage))
            .keep_alive(KeepAlive::default())
            .into_response();
    }
    match reply.collect().await {
        Ok((output, stats)) => {
            tally.done(&stats);
            Json(whole(kind, &id, &model, &output.text, &stats)).into_response()
        }
        Err(e) => tally.error(ApiError::from_engine(e, 1)).into_response(),
    }
}

fn usage(stats: &Stats) -> Value {
    json!({
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
        "prompt_tokens_details": { "cached_tokens": stats.cached_tokens },
    })
}

fn whole(kind: Kind, id: &str, model: &str, text: &str, stats: &Stats) -> Value {
    let finish = stats.finish.as_str();
    let choice = match kind {
        Kind::Chat => json!({
            "index": 0, "message": { "role": "assistant", "content": text }, "logprobs": null, "finish_reason": finish
        }),
        Kind::Completion => json!({ "index": 0, "text": text, "logprobs": null, "finish_reason": finish }),
    };
    json!({
        "id": id,
        "object": if kind == Kind::Chat { "chat.completion" } else { "text_completion" },
        "created": now_secs(),
        "model": model,
        "choices": [choice],
        "usage": usage(stats),
    })
}

fn chunk(kind: Kind, id: &str, model: &str, text: Option<&str>, finish: Option<&str>, first: bool) -> Value {
    let choice = match kind {
        Kind::Chat => {
            let delta = match (first, text) {
                (true, _) => json!({ "role": "assistant", "content": "" }),
                (false, Some(t)) => json!({ "content": t }),
                (false, None) => json!({}),
            };
            json!({ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish })
        }
        Kind::Completion => {
            json!({ "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish })
        }
    };
    json!({
        "id": id,
        "object": if kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" },
        "created": now_secs(),
        "model": model,
        "choices": [choice],
    })
}

struct StreamState {
    reply: Reply,
    tally: Option<Tally>,
    id: String,
    model: String,
    kind: Kind,
    include_usage: bool,
    /// Chunks still to send before the next engine event (role header, usage, `[DONE]`).
    pending: std::collections::VecDeque<String>,
    finished: bool,
}

/// The SSE body: a role chunk (chat), one chunk per piece of text, a final chunk with the
/// finish reason, the usage chunk when asked for, then `[DONE]`. Dropping the stream (the
/// client left) drops the reply, which cancels generation.
fn sse_stream(
    reply: Reply,
    tally: Tally,
    id: String,
    model: String,
    kind: Kind,
    include_usage: bool,
) -> impl Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    let mut pending = std::collections::VecDeque::new();
    if kind == Kind::Chat {
        pending.push_back(chunk(kind, &id, &model, None, None, true).to_string());
    }
    let state = StreamState { reply, tally: Some(tally), id, model, kind, include_usage, pending, finished: false };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(data) = s.pending.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), s));
            }
            if s.finished {
                return None;
            }
            match s.reply.next().await {
                Ok(Piece::Text(t)) => {
                    s.pending.push_back(chunk(s.kind, &s.id, &s.model, Some(&t), None, false).to_string());
                }
                Ok(Piece::Done(stats)) => {
                    let finish = stats.finish.as_str();
                    s.pending.push_back(chunk(s.kind, &s.id, &s.model, None, Some(finish), false).to_string());
                    if s.include_usage {
                        let mut u = chunk(s.kind, &s.id, &s.model, None, None, false);
                        u["choices"] = json!([]);
                        u["usage"] = usage(&stats);
                        s.pending.push_back(u.to_string());
                    }
                    s.pending.push_back("[DONE]".into());
                    if let Some(o) = s.tally.take() {
                        o.done(&stats);
                    }
                    s.finished = true;
                }
                Err(e) => {
                    let err = ApiError::from_engine(e, 1);
                    s.pending.push_back(err.body().to_string());
                    if let Some(o) = s.tally.take() {
                        o.error(err);
                    }
                    s.finished = true;
                }
            }
        }
    })
}

pub(crate) async fn models(State(state): State<AppState>) -> Json<Value> {
    let m = &state.0.model;
    Json(json!({
        "object": "list",
        "data": [{ "id": m.id, "object": "model", "created": m.created, "owned_by": "sotto" }],
    }))
}
