//! The engine's error type: one enum, one variant per thing a caller can act on.

use std::path::PathBuf;

use sotto_models::GgufError;

/// Everything the engine can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file is missing, not GGUF, truncated or corrupt (checked before llama.cpp sees it).
    #[error(transparent)]
    Model(#[from] GgufError),
    /// llama.cpp could not load a file whose header looked valid (unknown architecture, bad tensors).
    #[error("llama.cpp could not load {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    /// llama.cpp could not create an inference context (usually: not enough memory for `n_ctx`).
    #[error("could not create an inference context: {0}")]
    Context(String),
    /// The chat template asked for does not exist or cannot render these messages.
    #[error("chat template: {0}")]
    Template(String),
    /// The model would not fit in the memory budget; the message says what would.
    #[error("memory budget: {0}")]
    MemoryBudget(String),
    /// The configuration is invalid.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// The request is invalid (empty prompt, bad sampling values).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The prompt does not fit in the context window.
    #[error("the prompt has {tokens} tokens but the context window is {n_ctx}")]
    PromptTooLong { tokens: usize, n_ctx: u32 },
    /// The request queue is full; try again later.
    #[error("the engine queue is full ({0} waiting)")]
    QueueFull(usize),
    /// The request's deadline passed while it waited in the queue; it was not evaluated.
    #[error("the deadline passed after {} ms in the queue; the request was not evaluated", waited.as_millis())]
    DeadlineExceeded { waited: std::time::Duration },
    /// The request's deadline passed while its prompt was evaluated; it was stopped there.
    /// (A deadline that passes during generation ends it with [`crate::FinishReason::Deadline`]
    /// and the text so far instead.)
    #[error("the deadline passed {} ms after the request was queued, while it was evaluated; it was stopped", after.as_millis())]
    DeadlineWhileRunning { after: std::time::Duration },
    /// The engine thread has stopped (shut down, or it failed).
    #[error("the engine has stopped")]
    Stopped,
    /// llama.cpp failed while evaluating a batch.
    #[error("llama.cpp decode failed: {0}")]
    Decode(String),
    /// The engine thread panicked on this request; it reloads the model and serves the next.
    #[error("the engine failed on this request ({0}); the model is being reloaded")]
    Panicked(String),
}
