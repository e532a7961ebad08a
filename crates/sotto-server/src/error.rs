//! The HTTP edge's error type: every failure becomes a status code and an OpenAI-shaped JSON
//! body (`{"error": {"message", "type", "code"}}`). Causes that are ours (llama.cpp failures)
//! are logged in full and answered with a short message; nothing internal leaks.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sotto_engine::EngineError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `rate_limit_error`…
    pub kind: &'static str,
    /// A stable machine-readable code.
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, code, message: message.into(), retry_after: None }
    }

    /// 400: the request is malformed or asks for something impossible.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", code, message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": { "message": self.message, "type": self.kind, "code": self.code, "param": null }
        })
    }

    /// Map an engine error. `retry_after` is used for a full queue.
    pub fn from_engine(e: EngineError, retry_after: u64) -> Self {
        match e {
            EngineError::InvalidRequest(_) | EngineError::PromptTooLong { .. } | EngineError::Template(_) => {
                ApiError::bad_request(e.to_string())
            }
            EngineError::QueueFull(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "queue_full",
                format!("{e}; retry later"),
            )
            .with_retry_after(retry_after),
            EngineError::DeadlineExceeded { .. } | EngineError::DeadlineWhileRunning { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout_error", "deadline_exceeded", e.to_string())
            }
            EngineError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "shutting_down",
                "the server is shutting down",
            ),
            other => {
                tracing::error!(error = %other, "inference failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "inference_failed",
                    "inference failed; the server log has the cause",
                )
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, "{}", self.message);
        } else {
            tracing::debug!(status = self.status.as_u16(), code = self.code, "{}", self.message);
        }
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_statuses_without_leaking_internals() {
        let full = ApiError::from_engine(EngineError::QueueFull(8), 3);
        assert_eq!((full.status, full.retry_after), (StatusCode::TOO_MANY_REQUESTS, Some(3)));
        let late = ApiError::from_engine(EngineError::DeadlineExceeded { waited: Default::default() }, 1);
        assert_eq!(late.status, StatusCode::GATEWAY_TIMEOUT);
        let bad = ApiError::from_engine(EngineError::PromptTooLong { tokens: 9000, n_ctx: 4096 }, 1);
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.message.contains("9000"));
        let internal = ApiError::from_engine(EngineError::Decode("ggml_abort at ops.cpp:123".into()), 1);
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.message.contains("ggml"), "{}", internal.message);
        assert_eq!(internal.body()["error"]["code"], "inference_failed");
    }
}
