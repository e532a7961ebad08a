//! sotto's HTTP service: the only crate that knows HTTP. An OpenAI-compatible API
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) plus `/health`, `/ready` and
//! `/metrics`, in front of one engine.
//!
//! The tokio side never blocks: handlers queue work on the engine thread and await its
//! events, so health, metrics and queue admission answer while inference runs. A client that
//! goes away drops its event receiver, which cancels its request on the engine thread.
//!
//! Without a bearer token, only loopback `Host` names are answered (a web page cannot reach the
//! API through DNS rebinding); JSON bodies are read whatever their `Content-Type` (curl `-d`
//! sends a form type), within a time limit.
//!
//! Must not: call into llama.cpp, wait on the engine while holding a lock, or answer an error
//! without a JSON body.

mod analyze;
mod conn;
mod error;
pub mod metrics;
mod openai;
mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use sotto_engine::Engine;
use sotto_governor::GovernorStats;

pub use conn::serve;
pub use error::ApiError;
pub use metrics::{Metrics, Resources};
pub use schema::SchemaLimits;

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Required as `Authorization: Bearer <token>` on `/v1/*` and `/metrics` when set.
    pub token: Option<String>,
    /// Largest request body accepted (413 above it).
    pub max_body: usize,
    /// Deadline applied to requests that carry none.
    pub default_deadline: Option<Duration>,
    /// `max_tokens` when a request does not say.
    pub default_max_tokens: u32,
    /// The most tokens one request may generate, whatever it asks: one request cannot hold
    /// the engine for long.
    pub max_tokens: u32,
    /// How long in-flight requests may run after a shutdown signal before they are cancelled.
    pub shutdown_grace: Duration,
    /// `/v1/analyze` detail when the request does not say.
    pub default_detail: sotto_analyze::Detail,
    /// Connections open at once; the next one is answered 503 and closed, so that a client
    /// holding connections open (slowloris) cannot take every file descriptor.
    pub max_connections: usize,
    /// Time a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body (408 after it).
    pub body_timeout: Duration,
    /// Bounds on a `response_format` JSON schema, checked before it is converted.
    pub schema_limits: SchemaLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token: None,
            max_body: 1 << 20,
            default_deadline: None,
            default_max_tokens: 512,
            max_tokens: 2048,
            shutdown_grace: Duration::from_secs(10),
            default_detail: sotto_analyze::Detail::Verdict,
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            schema_limits: SchemaLimits::default(),
        }
    }
}

/// The model as the API names it.
#[derive(Debug, Clone)]
pub struct ModelName {
    /// The id clients send and `/v1/models` lists.
    pub id: String,
    /// Other names accepted in the `model` field (the file name, its stem).
    pub aliases: Vec<String>,
    /// Seconds since the epoch the model file was written (OpenAI's `created`).
    pub created: u64,
}

impl ModelName {
    pub fn accepts(&self, name: &str) -> bool {
        name == self.id || self.aliases.iter().any(|a| a == name)
    }
}

pub(crate) struct Inner {
    pub engine: Arc<Engine>,
    /// Serves `/v1/analyze`; absent, the route answers 404.
    pub analyzer: Option<Arc<sotto_analyze::Analyzer>>,
    pub model: ModelName,
    pub settings: Settings,
    pub metrics: Metrics,
    pub resources: Resources,
    pub governor: Arc<GovernorStats>,
    pub started: Instant,
    pub stopping: AtomicBool,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        analyzer: Option<Arc<sotto_analyze::Analyzer>>,
        model: ModelName,
        settings: Settings,
        resources: Resources,
        governor: Arc<GovernorStats>,
    ) -> Self {
        AppState(Arc::new(Inner {
            engine,
            analyzer,
            model,
            settings,
            metrics: Metrics::default(),
            resources,
            governor,
            started: Instant::now(),
            stopping: AtomicBool::new(false),
        }))
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.0.engine
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
}

/// The router: public probes, and the API behind the bearer token (when one is set); without
/// a token, every route answers loopback `Host` names only.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/analyze", post(analyze::analyze))
        .route("/metrics", get(metrics_text))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.0.settings.max_body))
        .layer(middleware::from_fn_with_state(state.clone(), require_loopback_host))
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.0.settings.token {
        let given =
            request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer).unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110), as clients spell it `bearer` too.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
}

/// Without a token, answer only requests addressed to a loopback name. A web page that
/// rebinds its own DNS name to 127.0.0.1 sends its own name as `Host`, so it is refused; a
/// request without `Host` cannot come from a browser and is let through.
async fn require_loopback_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.0.settings.token.is_none()
        && let Some(host) = request.headers().get(header::HOST)
        && !host.to_str().is_ok_and(is_loopback_host)
    {
        let shown = String::from_utf8_lossy(host.as_bytes()).chars().take(100).collect::<String>();
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "host_not_allowed",
            format!(
                "Host `{shown}` is not a loopback name; without a bearer token sotto answers only localhost, \
                 127.0.0.1 and [::1] (this defeats DNS rebinding); set server.token to serve other names"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = match host.rsplit_once(':') {
        Some((name, port))
            if port.bytes().all(|b| b.is_ascii_digit()) && (name.ends_with(']') || !name.contains(':')) =>
        {
            name
        }
        _ => host,
    };
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]"
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Liveness: answers at once, whatever the engine is doing; never touches the model.
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: 200 while requests can be served (the model is loaded, or unloaded after
/// `keep_alive` and reloaded by the next request); 503 once shutdown has begun, and while
/// the engine reloads after a panic.
async fn ready(State(state): State<AppState>) -> Response {
    let status = state.0.engine.status();
    let stopping = state.0.stopping.load(Ordering::Relaxed) || status.down;
    let body = serde_json::json!({
        "ready": !stopping,
        "engine_down": status.down,
        "model": state.0.model.id,
        "loaded": status.loaded,
        "busy": status.busy,
        "queued": status.queued,
        "uptime_s": state.0.started.elapsed().as_secs(),
    });
    let code = if stopping { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, Json(body)).into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let paced = Duration::from_nanos(state.0.governor.paced_ns.load(Ordering::Relaxed));
    let text = state.0.metrics.render(&state.0.engine.status(), &state.0.resources, paced);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("unknown_route", "no such route; the API is under /v1 (see /v1/models)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed", "method not allowed")
}

/// A JSON body, read whatever its `Content-Type` (as Ollama and llama-server do: curl `-d`
/// sends `application/x-www-form-urlencoded`). Rejections are JSON errors: 400 for malformed
/// JSON, 422 for wrong field types (the message names the field), 413 above the body limit,
/// 408 when the body does not arrive within `body_timeout`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.0.settings.body_timeout;
        let bytes = match tokio::time::timeout(limit, Bytes::from_request(req, state)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(rejection)) => {
                let status = rejection.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "unreadable_body" };
                return Err(ApiError::new(status, "invalid_request_error", code, rejection.body_text()));
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request_error",
                    "body_timeout",
                    format!("the request body did not arrive within {} ms", limit.as_millis()),
                ));
            }
        };
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                Err(ApiError::new(rejection.status(), "invalid_request_error", "invalid_json", rejection.body_text()))
            }
        }
    }
}

/// Request options sotto adds to the OpenAI shape, read from headers (`X-Sotto-Priority`,
/// `X-Sotto-Deadline-Ms`); body fields of the same name win.
pub fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub use analyze::MAX_BATCH;

/// Where the daemon listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 8434));
pub use openai::{Terms, admit};
