//! sotto's HTTP service: the only crate that knows HTTP. An OpenAI-compatible API
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) plus `/health`, `/ready` and
//! `/metrics`, in front of one engine.
//!
//! The tokio side never blocks: handlers queue work on the engine thread and await its
//! events, so health, metrics and queue admission answer while inference runs. A client that
//! goes away drops its event receiver, which cancels its request on the engine thread.
//!
//! Must not: call into llama.cpp, wait on the engine while holding a lock, or answer an error
//! without a JSON body.

mod analyze;
mod error;
pub mod metrics;
mod openai;
mod schema;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use sotto_engine::Engine;
use sotto_governor::GovernorStats;
use tokio::net::TcpListener;

pub use error::ApiError;
pub use metrics::{Governance, Metrics};
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
    /// How long in-flight requests may run after a shutdown signal before they are cancelled.
    pub shutdown_grace: Duration,
    /// `/v1/analyze` detail when the request does not say.
    pub default_detail: sotto_analyze::Detail,
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
            shutdown_grace: Duration::from_secs(10),
            default_detail: sotto_analyze::Detail::Verdict,
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
    pub governance: Governance,
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
        governance: Governance,
        governor: Arc<GovernorStats>,
    ) -> Self {
        AppState(Arc::new(Inner {
            engine,
            analyzer,
            model,
            settings,
            metrics: Metrics::default(),
            governance,
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

/// The router: public probes, and the API behind the bearer token (when one is set).
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
        .with_state(state)
}

/// Serve until `shutdown` resolves; then stop accepting, give in-flight requests the grace
/// period, cancel what still runs, and return once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_state = state.clone();
    let graceful = async move {
        shutdown.await;
        stop_state.0.stopping.store(true, Ordering::Relaxed);
        tracing::info!("shutting down: no new connections; waiting for requests in flight");
        let _ = signalled_tx.send(());
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(graceful).into_future();
    tokio::pin!(server);
    let grace = state.0.settings.shutdown_grace;
    tokio::select! {
        result = &mut server => return result,
        Ok(()) = signalled_rx => {}
    }
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(grace_s = grace.as_secs_f64(), "requests still running after the grace period; cancelling");
            state.0.engine.close();
            state.0.engine.cancel_running();
            match tokio::time::timeout(Duration::from_secs(5), &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("connections still open 5 s after cancelling; closing them");
                    Ok(())
                }
            }
        }
    }
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.0.settings.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Liveness: answers at once, whatever the engine is doing; never touches the model.
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: 200 while requests can be served (the model is loaded, or unloaded after
/// `keep_alive` and reloaded by the next request); 503 once shutdown has begun.
async fn ready(State(state): State<AppState>) -> Response {
    let status = state.0.engine.status();
    let stopping = state.0.stopping.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "ready": !stopping,
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
    let text = state.0.metrics.render(&state.0.engine.status(), &state.0.governance, paced);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("unknown_route", "no such route; the API is under /v1 (see /v1/models)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed", "method not allowed")
}

/// `Json<T>` whose rejections are JSON errors: 400 for malformed JSON or wrong field types
/// (the message names the field), 413 above the body limit, 415 without a JSON content type.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let status = rejection.status();
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    _ => "invalid_json",
                };
                Err(ApiError::new(status, "invalid_request_error", code, rejection.body_text()))
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
pub use openai::{Admission, admit, wait_started};
