//! Router tests against the real SmolLM2 model, through `app(state).oneshot(request)` without
//! a socket. End-to-end tests with the daemon, a real socket and the `openai` Python client
//! are in the `sotto` crate.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sotto_engine::{Engine, EngineConfig, NoPacing, Phase, Priority, StepHook};
use sotto_models::{catalog, store};
use sotto_server::{AppState, ModelName, Resources, Settings, app};
use tower::ServiceExt;

mod hardening;

fn smollm() -> std::path::PathBuf {
    let path = store::models_dir().join(catalog::find("smollm2-135m").unwrap().file_name);
    assert!(path.exists(), "{} is missing: run `sotto models fetch` first", path.display());
    path
}

fn state_with(config: EngineConfig, settings: Settings) -> AppState {
    state_hooked(config, settings, Box::new(NoPacing))
}

fn state_hooked(config: EngineConfig, settings: Settings, hook: Box<dyn StepHook>) -> AppState {
    let engine = Arc::new(Engine::start(config, hook).expect("engine starts"));
    let model = ModelName { id: "smollm2-135m".into(), aliases: vec!["SmolLM2-135M-Instruct.Q4_1".into()], created: 1 };
    let gov = Resources::default();
    AppState::new(engine, None, model, settings, gov, Arc::default())
}

/// Waits until `holds` is true, looking again every 10 ms, and fails naming `what` after `limit`.
async fn wait_until(what: &str, limit: Duration, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !holds() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the [`HoldHook`] saw, and the switch that lets a held engine go on.
#[derive(Default)]
struct Holding {
    /// Hold the engine at this decode step of each request (0: never).
    at: AtomicUsize,
    held: AtomicBool,
    /// Decode steps of each request, in the order they started.
    steps: Mutex<Vec<usize>>,
    released: Mutex<bool>,
    wake: Condvar,
}

impl Holding {
    fn at(step: usize) -> Arc<Holding> {
        Arc::new(Holding { at: AtomicUsize::new(step), ..Holding::default() })
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.wake.notify_all();
    }

    fn steps(&self) -> Vec<usize> {
        self.steps.lock().unwrap().clone()
    }
}

/// Counts each request's decode steps and holds the engine thread at the `Holding::at`-th
/// one until the test releases it, so that the test acts while a request is known to be
/// running; once released it holds no request again. It lets go by itself after two
/// minutes, so that a failing test ends.
struct HoldHook(Arc<Holding>);

impl StepHook for HoldHook {
    fn on_request_start(&mut self, _: Priority) {
        self.0.steps.lock().unwrap().push(0);
    }

    fn after_step(&mut self, phase: Phase, _: usize) {
        if phase != Phase::Decode {
            return;
        }
        let step = {
            let mut steps = self.0.steps.lock().unwrap();
            let last = steps.last_mut().expect("a request started");
            *last += 1;
            *last
        };
        if step == self.0.at.load(Ordering::SeqCst) {
            self.0.held.store(true, Ordering::SeqCst);
            let released = self.0.released.lock().unwrap();
            let limit = Duration::from_secs(120);
            drop(self.0.wake.wait_timeout_while(released, limit, |r| !*r).unwrap());
            self.0.held.store(false, Ordering::SeqCst);
        }
    }
}

fn router(state: &AppState) -> Router {
    app(state.clone())
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// The error body's code, checking the OpenAI error shape on the way.
    fn error_code(&self) -> String {
        let v = self.json();
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v["error"]["code"].as_str().unwrap().to_string()
    }
}

fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).header("content-type", "application/json").body(body.into()).unwrap()
}

async fn call(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, text: String::from_utf8(bytes.to_vec()).unwrap() }
}

async fn get(router: &Router, uri: &str) -> Reply {
    call(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn chat_body(content: &str, max_tokens: u32) -> String {
    json!({"model": "smollm2-135m", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens})
        .to_string()
}

/// Start a long generation in the background and wait until the engine is on it.
async fn occupy(router: &Router, state: &AppState, max_tokens: u32) -> tokio::task::JoinHandle<Reply> {
    let r = router.clone();
    let body = json!({"prompt": "Once upon a time", "max_tokens": max_tokens}).to_string();
    let handle = tokio::spawn(async move { call(&r, post("/v1/completions", body)).await });
    wait_until("the engine is busy", Duration::from_secs(60), || state.engine().status().busy).await;
    handle
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_completion_has_the_openai_shape_and_real_usage() {
    let state = state_with(EngineConfig::new(smollm()), Settings::default());
    let r = router(&state);
    let reply = call(&r, post("/v1/chat/completions", chat_body("Is `whoami` malicious? One word.", 16))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "smollm2-135m");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(!v["choices"][0]["message"]["content"].as_str().unwrap().is_empty());
    let usage = &v["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 10);
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((1..=16).contains(&completion), "{usage}");
    assert_eq!(usage["total_tokens"], usage["prompt_tokens"].as_u64().unwrap() + completion);
    assert!(["stop", "length"].contains(&v["choices"][0]["finish_reason"].as_str().unwrap()));

    let models = get(&r, "/v1/models").await.json();
    assert_eq!(models["data"][0]["id"], "smollm2-135m");
    let metrics = get(&r, "/metrics").await;
    assert!(metrics.text.contains("sotto_requests_total{endpoint=\"chat_completions\",outcome=\"ok\"} 1"));
    assert!(metrics.text.contains(&format!("sotto_generated_tokens_total {completion}\n")), "{}", metrics.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_sends_role_text_finish_usage_and_done() {
    let state = state_with(EngineConfig::new(smollm()), Settings::default());
    let r = router(&state);
    let body = json!({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 12, "stream": true,
        "stream_options": {"include_usage": true}});
    let reply = call(&r, post("/v1/chat/completions", body.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let data: Vec<&str> = reply.text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(*data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert!(!text.is_empty());
    let finish = chunks.iter().find(|c| c["choices"][0]["finish_reason"].is_string()).expect("a finish chunk");
    assert!(["stop", "length"].contains(&finish["choices"][0]["finish_reason"].as_str().unwrap()));
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() >= 1, "{usage}");
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_schema_response_format_is_enforced() {
    let state = state_with(EngineConfig::new(smollm()), Settings::default());
    let r = router(&state);
    let schema = json!({"type": "object", "properties": {"verdict": {"enum": ["malicious", "suspicious", "benign"]},
        "technique": {"type": "string", "pattern": "^T[0-9]{4}$"}}, "required": ["verdict", "technique"],
        "additionalProperties": false});
    let body = json!({"messages": [{"role": "user", "content": "Classify `mimikatz.exe sekurlsa::logonpasswords`."}],
        "max_tokens": 60, "response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}});
    let reply = call(&r, post("/v1/chat/completions", body.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let content = reply.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let verdict: Value = serde_json::from_str(&content).unwrap_or_else(|e| panic!("{e}: {content}"));
    assert!(["malicious", "suspicious", "benign"].contains(&verdict["verdict"].as_str().unwrap()), "{verdict}");
    let t = verdict["technique"].as_str().unwrap();
    assert!(t.len() == 5 && t.starts_with('T') && t[1..].chars().all(|c| c.is_ascii_digit()), "{verdict}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_json_4xx_and_the_server_keeps_serving() {
    let settings = Settings { max_body: 4096, ..Settings::default() };
    let state = state_with(EngineConfig::new(smollm()), settings);
    let r = router(&state);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (post("/v1/chat/completions", "{\"messages\": [}"), StatusCode::BAD_REQUEST, "invalid_json"),
        (post("/v1/chat/completions", "{\"max_tokens\": 5}"), StatusCode::UNPROCESSABLE_ENTITY, "invalid_json"),
        (post("/v1/chat/completions", "x".repeat(10_000)), StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        (
            Request::post("/v1/chat/completions")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("messages=hi"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post(
                "/v1/chat/completions",
                json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            ),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            post(
                "/v1/chat/completions",
                json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}).to_string(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post(
                "/v1/chat/completions",
                json!({"messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object",
                "properties": {"a": {"$ref": "#/definitions/missing"}}}}}})
                .to_string(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post("/v1/chat/completions", json!({"messages": [{"role": "wizard", "content": "hi"}]}).to_string()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (post("/v1/chat/completions", json!({"messages": []}).to_string()), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            post("/v1/completions", json!({"prompt": "hi", "priority": "urgent"}).to_string()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (Request::get("/v1/nothing").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND, "unknown_route"),
        (
            Request::get("/v1/chat/completions").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = call(&r, request).await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text);
        assert_eq!(reply.error_code(), code, "{what}: {}", reply.text);
    }
    let ok = call(&r, post("/v1/chat/completions", chat_body("hi", 2))).await;
    assert_eq!(ok.status, StatusCode::OK, "still serving: {}", ok.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_429_with_retry_after() {
    let state = state_with(EngineConfig { queue: 1, ..EngineConfig::new(smollm()) }, Settings::default());
    let r = router(&state);
    let running = occupy(&r, &state, 150).await;
    let r2 = r.clone();
    let queued = tokio::spawn(async move { call(&r2, post("/v1/chat/completions", chat_body("hi", 2))).await });
    wait_until("a request waits in the queue", Duration::from_secs(60), || state.engine().status().queued >= 1).await;
    let refused = call(&r, post("/v1/chat/completions", chat_body("hi", 2))).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_eq!(refused.error_code(), "queue_full");
    let retry: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // A critical request is still admitted: it displaces the waiting normal one.
    let critical = call(
        &r,
        Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("x-sotto-priority", "critical")
            .body(Body::from(chat_body("hi", 2)))
            .unwrap(),
    )
    .await;
    assert_eq!(critical.status, StatusCode::OK, "{}", critical.text);
    assert_eq!(queued.await.unwrap().status, StatusCode::TOO_MANY_REQUESTS, "the displaced request");
    assert_eq!(running.await.unwrap().status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_deadline_answers_504_and_the_request_is_never_evaluated() {
    let holding = Holding::at(1);
    let state = state_hooked(EngineConfig::new(smollm()), Settings::default(), Box::new(HoldHook(holding.clone())));
    let r = router(&state);
    let r2 = r.clone();
    let body = json!({"prompt": "Once upon a time", "max_tokens": 120}).to_string();
    let running = tokio::spawn(async move { call(&r2, post("/v1/completions", body)).await });
    wait_until("the running request is held at its first token", Duration::from_secs(60), || holding.is_held()).await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "deadline_ms": 50});
    let late = tokio::time::timeout(Duration::from_secs(60), call(&r, post("/v1/chat/completions", body.to_string())))
        .await
        .expect("the late request is answered while the running one is held");
    assert_eq!(late.status, StatusCode::GATEWAY_TIMEOUT, "{}", late.text);
    assert_eq!(late.error_code(), "deadline_exceeded");
    assert!(holding.is_held(), "answered at the deadline, not after the running request");
    holding.release();
    assert_eq!(running.await.unwrap().status, StatusCode::OK);
    // Only the long request was evaluated: the late one never reached the engine.
    assert_eq!(holding.steps().len(), 1, "{:?}", holding.steps());
    let metrics = get(&r, "/metrics").await.text;
    assert!(metrics.contains("outcome=\"deadline_exceeded\"} 1"), "{metrics}");
    assert!(metrics.contains("sotto_generated_tokens_total 120\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_frees_the_engine() {
    // Held at its second token: by then the first has been sent, whatever the order of
    // sending and evaluating.
    let holding = Holding::at(2);
    let state = state_hooked(EngineConfig::new(smollm()), Settings::default(), Box::new(HoldHook(holding.clone())));
    let r = router(&state);
    let body = json!({"prompt": "Once upon a time", "max_tokens": 3000, "stream": true});
    let response = r.clone().oneshot(post("/v1/completions", body.to_string())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.expect("a first chunk").unwrap();
    assert!(first.is_data());
    wait_until("the generation is held at its second token", Duration::from_secs(60), || holding.is_held()).await;
    drop(body); // the client goes away mid-generation
    holding.release();
    let next = call(&r, post("/v1/chat/completions", chat_body("hi", 2))).await;
    assert_eq!(next.status, StatusCode::OK);
    // The engine took the next request only once it was done with the abandoned one.
    let steps = holding.steps();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps[0] <= 3, "{} of 3000 tokens: decoding went on after the client left", steps[0]);
    let metrics = get(&r, "/metrics").await.text;
    assert!(metrics.contains("sotto_requests_total{endpoint=\"completions\",outcome=\"cancelled\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_public_and_the_api_needs_the_token_when_one_is_set() {
    let token = "0123456789abcdef-token";
    let state = state_with(EngineConfig::new(smollm()), Settings { token: Some(token.into()), ..Settings::default() });
    let r = router(&state);
    assert_eq!(get(&r, "/health").await.status, StatusCode::OK);
    let ready = get(&r, "/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["loaded"], true);
    let denied = get(&r, "/v1/models").await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.error_code(), "invalid_api_key");
    let wrong = call(&r, Request::get("/metrics").header("authorization", "Bearer nope").body(Body::empty()).unwrap());
    assert_eq!(wrong.await.status, StatusCode::UNAUTHORIZED);
    let allowed = Request::get("/v1/models").header("authorization", format!("Bearer {token}")).body(Body::empty());
    assert_eq!(call(&r, allowed.unwrap()).await.status, StatusCode::OK);
}

fn with_analyzer() -> AppState {
    analyzer_with(sotto_analyze::Options::default())
}

/// The zero-shot constrained design (one short request per event, so tests are quick) with
/// `options`' other fields.
fn analyzer_with(options: sotto_analyze::Options) -> AppState {
    analyzer_hooked(options, Box::new(NoPacing))
}

fn analyzer_hooked(options: sotto_analyze::Options, hook: Box<dyn StepHook>) -> AppState {
    let engine = Arc::new(Engine::start(EngineConfig::new(smollm()), hook).expect("engine starts"));
    let options = sotto_analyze::Options { mode: sotto_analyze::Mode::ConstrainedZeroShot, ..options };
    let analyzer = Arc::new(sotto_analyze::Analyzer::new(engine.clone(), options));
    let model = ModelName { id: "smollm2-135m".into(), aliases: vec![], created: 1 };
    let gov = Resources::default();
    AppState::new(engine, Some(analyzer), model, Settings::default(), gov, Arc::default())
}

#[tokio::test(flavor = "multi_thread")]
async fn analyze_answers_verdicts_and_names_what_an_unreadable_event_lacks() {
    let state = with_analyzer();
    let r = router(&state);
    let ecs = json!({"event": {"category": ["process"]}, "host": {"os": {"family": "windows"}},
        "process": {"name": "vssadmin.exe", "command_line": "vssadmin.exe delete shadows /all /quiet",
        "parent": {"name": "cmd.exe"}}, "user": {"name": "jdoe"}});
    let one = call(&r, post("/v1/analyze?detail=full", ecs.to_string())).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    let v = one.json();
    assert!(["malicious", "suspicious", "benign"].contains(&v["verdict"].as_str().unwrap()), "{v}");
    assert!((0.0..=1.0).contains(&v["confidence"].as_f64().unwrap()));
    assert!(v["techniques"].is_array() && v["rationale"].is_string(), "{v}");
    assert_eq!(v["event"]["source"], "ecs");

    let bad = call(&r, post("/v1/analyze", json!({"process": {"pid": 4}}).to_string())).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert_eq!(bad.error_code(), "unreadable_event");
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("command_line"), "{}", bad.text);

    let batch = json!([{"command_line": "whoami /all", "os": "windows"}, {"nonsense": true}]);
    let reply = call(&r, post("/v1/analyze", batch.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let results = reply.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    assert!(results[0]["verdict"].is_string(), "{}", results[0]);
    assert_eq!(results[1]["error"]["code"], "unreadable_event");
    let detail = call(&r, post("/v1/analyze?detail=everything", json!({"command_line": "id"}).to_string())).await;
    assert_eq!(detail.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_panic_is_a_500_and_the_daemon_recovers_instead_of_hanging() {
    let config = EngineConfig { inject_panic: Some("PANIC-HERE".into()), ..EngineConfig::new(smollm()) };
    let state = state_with(config, Settings::default());
    let router = router(&state);
    let failed = call(&router, post("/v1/chat/completions", chat_body("PANIC-HERE", 4))).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", failed.text);
    assert_eq!(failed.error_code(), "inference_failed");
    // Until the model is loaded again, readiness says no; then yes, and requests are served.
    let reloaded = async {
        loop {
            let ready = get(&router, "/ready").await;
            let body: serde_json::Value = serde_json::from_str(&ready.text).unwrap();
            assert_eq!(ready.status == StatusCode::OK, !body["engine_down"].as_bool().unwrap(), "{}", ready.text);
            if ready.status == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), reloaded).await.expect("the engine never came back (waited 60 s)");
    let ok = call(&router, post("/v1/chat/completions", chat_body("Say hello.", 4))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let metrics = get(&router, "/metrics").await.text;
    assert!(metrics.lines().any(|l| l == "sotto_engine_panics_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_max_tokens_caps_what_a_request_may_generate() {
    let state = state_with(EngineConfig::new(smollm()), Settings { max_tokens: 3, ..Settings::default() });
    let router = router(&state);
    let reply = call(&router, post("/v1/chat/completions", chat_body("Write a long story about the sea.", 500))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let v = reply.json();
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 3, "{v}");
}
