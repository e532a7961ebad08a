//! Issue 11: bounded JSON schemas converted off the runtime (item 1), HTTP hardening (item 8:
//! any content type, case-insensitive `Bearer`, loopback `Host` without a token, a connection
//! limit and read timeouts) and analysis batches whose items fail alone (item 5).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sotto_engine::EngineConfig;
use sotto_server::{AppState, Settings, app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::{
    HoldHook, Holding, analyzer_hooked, analyzer_with, call, chat_body, get, post, router, smollm, state_with,
    wait_until,
};

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

#[tokio::test(flavor = "multi_thread")]
async fn a_json_body_is_read_whatever_its_content_type() {
    let state = state_with(EngineConfig::new(smollm()), Settings::default());
    let r = router(&state);
    // What `curl -d` sends: a form content type.
    let form = Request::post("/v1/completions")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(json!({"prompt": "Hello", "max_tokens": 2}).to_string()))
        .unwrap();
    let reply = call(&r, form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let bare = Request::post("/v1/chat/completions").body(Body::from(chat_body("hi", 2))).unwrap();
    let reply = call(&r, bare).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let not_json = Request::post("/v1/completions").header("content-type", "text/plain").body(Body::from("prompt=hi"));
    let reply = call(&r, not_json.unwrap()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error_code(), "invalid_json");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_case_insensitive() {
    let token = "0123456789abcdef-token";
    let state = state_with(EngineConfig::new(smollm()), Settings { token: Some(token.into()), ..Settings::default() });
    let r = router(&state);
    for (value, status) in [
        (format!("bearer {token}"), StatusCode::OK),
        (format!("BEARER {token}"), StatusCode::OK),
        (format!("Bearer  {token}"), StatusCode::OK),
        (format!("Basic {token}"), StatusCode::UNAUTHORIZED),
        (token.to_string(), StatusCode::UNAUTHORIZED),
    ] {
        let request = Request::get("/v1/models").header("authorization", &value).body(Body::empty()).unwrap();
        assert_eq!(call(&r, request).await.status, status, "{value}");
    }
}

fn with_host(uri: &str, host: &str) -> Request<Body> {
    Request::get(uri).header("host", host).body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_only_loopback_host_names_are_answered() {
    let state = state_with(EngineConfig::new(smollm()), Settings::default());
    let r = router(&state);
    // A web page that rebinds its own name to 127.0.0.1 sends that name.
    for host in ["attacker.example", "attacker.example:8434", "127.0.0.1.attacker.example", "localhost.attacker:1"] {
        for uri in ["/health", "/v1/models", "/metrics"] {
            let reply = call(&r, with_host(uri, host)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{host} {uri}: {}", reply.text);
            assert_eq!(reply.error_code(), "host_not_allowed");
        }
    }
    for host in ["localhost", "localhost:8434", "LocalHost:1", "127.0.0.1", "127.0.0.1:8434", "[::1]", "[::1]:8434"] {
        assert_eq!(call(&r, with_host("/v1/models", host)).await.status, StatusCode::OK, "{host}");
    }
    assert_eq!(get(&r, "/v1/models").await.status, StatusCode::OK, "no Host: not a browser");

    let token = "0123456789abcdef-token";
    let state = state_with(EngineConfig::new(smollm()), Settings { token: Some(token.into()), ..Settings::default() });
    let r = router(&state);
    let request = Request::get("/v1/models")
        .header("host", "sotto.internal.example:8434")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&r, request).await.status, StatusCode::OK, "with a token, any Host");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_stops_arriving_is_answered_408() {
    let settings = Settings { body_timeout: Duration::from_millis(200), ..Settings::default() };
    let state = state_with(EngineConfig::new(smollm()), settings);
    let r = router(&state);
    let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"prompt\": ")) });
    let body = Body::from_stream(futures_util::StreamExt::chain(first, futures_util::stream::pending()));
    let stalled = call(&r, post("/v1/completions", body));
    let reply = tokio::time::timeout(Duration::from_secs(60), stalled).await.expect("the server waited for the body");
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT, "{}", reply.text);
    assert_eq!(reply.error_code(), "body_timeout");
}

/// `serve` on a real socket; the returned sender stops it.
async fn listening(settings: Settings) -> (SocketAddr, AppState, tokio::sync::oneshot::Sender<()>) {
    let state = state_with(EngineConfig::new(smollm()), settings);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = sotto_server::serve(listener, app(state.clone()), state.clone(), async {
        let _ = stopped.await;
    });
    tokio::spawn(server);
    (addr, state, stop)
}

/// `GET path` on a new connection with `ureq` (configured as the bench's client,
/// `sotto_bench::client`), on the blocking pool; (status, body). Fails if no answer comes
/// within 30 s.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    let get = move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_idle_connections(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut reply = agent.get(&url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        (reply.status().as_u16(), reply.body_mut().read_to_string().unwrap())
    };
    tokio::task::spawn_blocking(get).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let settings = Settings { header_timeout: Duration::from_millis(300), ..Settings::default() };
    let (addr, _state, _stop) = listening(settings).await;
    // Half a request head: a raw socket, since an HTTP client always finishes its headers.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let mut rest = Vec::new();
    // The server hangs up (end of stream, or a reset): the connection no longer holds a
    // descriptor. Without a header timeout it waited forever.
    let hung_up = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut rest)).await;
    assert!(hung_up.is_ok(), "the server kept a connection whose headers never came");
    assert_eq!(http_get(addr, "/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_over_the_limit_is_answered_503_until_one_closes() {
    let settings = Settings { max_connections: 1, header_timeout: Duration::from_secs(120), ..Settings::default() };
    let (addr, _state, _stop) = listening(settings).await;
    // Accepted first (connections are accepted in order), it holds the only slot with a
    // request line and no headers: a raw socket, as for the header timeout above.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let (status, body) = http_get(addr, "/health").await;
    assert_eq!(status, 503, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(error["error"]["code"], "too_many_connections", "{body}");
    drop(idle);
    let freed = async {
        loop {
            let (status, body) = http_get(addr, "/metrics").await;
            if status == 200 {
                break body;
            }
            assert_eq!(status, 503, "{body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let body = tokio::time::timeout(Duration::from_secs(30), freed)
        .await
        .expect("the slot was not freed when the connection closed (waited 30 s)");
    let refused = body.lines().find_map(|l| l.strip_prefix("sotto_http_connections_refused_total "));
    assert!(refused.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 1), "{body}");
    assert!(body.lines().any(|l| l == "sotto_http_connections 1"), "{body}");
}

fn event(command_line: &str) -> Value {
    json!({"command_line": command_line, "os": "linux"})
}

#[tokio::test(flavor = "multi_thread")]
async fn an_item_the_engine_refuses_fails_alone_and_the_batch_keeps_the_other_verdicts() {
    // Fields uncut, so that one event is too long for the context: the engine refuses it.
    let state = analyzer_with(sotto_analyze::Options { max_field_chars: 1_000_000, ..Default::default() });
    let r = router(&state);
    let huge: String = (0..6000).map(|i| format!("x{i} ")).collect();
    let batch = json!([event("id -un"), event(&format!("echo {huge}")), event("uname -a")]);
    // As curl -d sends it (issue 11 item 8: this was a 415).
    let request = Request::post("/v1/analyze")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(batch.to_string()))
        .unwrap();
    let reply = call(&r, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let results = reply.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 3);
    for i in [0, 2] {
        assert!(results[i]["verdict"].is_string() && results[i]["index"] == i, "{}", results[i]);
    }
    let failed = &results[1];
    assert_eq!((failed["index"].as_u64(), failed["verdict"].is_null()), (Some(1), true), "{failed}");
    assert_eq!(failed["error"]["code"], "invalid_request", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("tokens"), "{failed}");
    assert_eq!(failed["event"]["os"], "linux", "{failed}");

    let too_many = Value::Array(vec![event("id"); sotto_server::MAX_BATCH + 1]);
    let reply = call(&r, post("/v1/analyze", too_many.to_string())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.text.contains("1 to 256 events, not 257"), "{}", reply.text);
}

/// The first item waits behind a running generation until its deadline passes; the second is
/// queued after that, and starts when the generation is cancelled. With one deadline for the
/// whole batch, the second would have expired before it was queued.
#[tokio::test(flavor = "multi_thread")]
async fn each_batch_item_gets_its_own_deadline_and_a_deadline_error_names_the_wait() {
    let holding = Holding::at(1);
    let state = analyzer_hooked(sotto_analyze::Options::default(), Box::new(HoldHook(holding.clone())));
    let r = router(&state);
    let long = json!({"prompt": "Once upon a time", "max_tokens": 3000, "stream": true}).to_string();
    let response = r.clone().oneshot(post("/v1/completions", long)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let running = response.into_body();
    wait_until("the generation is held at its first token", Duration::from_secs(60), || holding.is_held()).await;

    let r2 = r.clone();
    let batch = json!([event("id -un"), event("uname -a")]).to_string();
    let reply = tokio::spawn(async move { call(&r2, post("/v1/analyze?deadline_ms=5000", batch)).await });
    // The first item stays queued (expired, never evaluated) until the engine is free, so two
    // queued requests mean the second item has been submitted.
    wait_until("the second item is queued", Duration::from_secs(60), || state.engine().status().queued >= 2).await;
    drop(running);
    holding.release();
    let reply = reply.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let results = reply.json()["results"].as_array().unwrap().clone();
    let expired = &results[0]["error"];
    assert_eq!(expired["code"], "deadline_exceeded", "{}", results[0]);
    let message = expired["message"].as_str().unwrap();
    let waited: u64 = message
        .split_once("after ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no wait in {message:?}"));
    assert!(waited >= 5000, "the error names the real wait, not 0 ms: {message}");
    // The second item reached the engine with time left of its own deadline. Whether its
    // verdict is then written within those 5 s is the machine's speed (a deadline holds while
    // a request runs), which this test does not judge.
    let started = holding.steps();
    assert_eq!(started.len(), 2, "the generation and the second item were evaluated, not the first: {started:?}");
    let stopped_while_evaluated =
        results[1]["error"]["message"].as_str().is_some_and(|m| m.contains("while it was evaluated"));
    assert!(results[1]["verdict"].is_string() || stopped_while_evaluated, "{}", results[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generation_past_its_deadline_ends_with_finish_reason_deadline() {
    let state = analyzer_with(sotto_analyze::Options::default());
    let r = router(&state);
    // 3000 tokens take far longer than half a second; the answer is what was written by then.
    let body = json!({"prompt": "Once upon a time", "max_tokens": 3000, "deadline_ms": 500}).to_string();
    let reply = call(&r, post("/v1/completions", body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let choice = &reply.json()["choices"][0];
    assert_eq!(choice["finish_reason"], "deadline", "{}", reply.text);
    assert!(reply.json()["usage"]["completion_tokens"].as_u64().unwrap() < 3000, "{}", reply.text);
}
