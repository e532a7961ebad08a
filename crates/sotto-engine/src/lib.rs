//! sotto's inference engine: the only crate that imports `llama_cpp_2`.
//!
//! One OS thread per loaded model owns the llama.cpp model and context (`LlamaContext` is not
//! `Send`). Callers submit a [`Request`] over a small bounded queue and read the answer through the
//! [`Reply`] it returns, the one client every caller uses; dropping it cancels the request,
//! also mid-generation.
//! Prompt processing runs one `decode` call per chunk and generation one per token, and a
//! [`StepHook`] runs between every step: that is where the governor paces.
//!
//! The engine must not spin when idle: llama.cpp is built without OpenMP and without a
//! polling threadpool, and the thread blocks on its queue between requests.

mod engine;
mod error;
pub mod grammar;
mod persist;
mod prefix;
mod quantize;
mod queue;
mod reply;
mod request;
mod template;
mod text;
mod tokenizer;
mod worker;

pub use engine::{Engine, EngineConfig, EngineStatus, ModelInfo};
pub use error::EngineError;
pub use quantize::{QuantType, quantize};
pub use reply::{Admission, Output, Piece, Reply};
pub use request::{
    EMBED_TOKENS, FinishReason, Grammar, Message, NoPacing, Phase, Prompt, Request, Sampling, Stats, StepHook, Task,
    ThreadPlan, Update,
};
pub use sotto_governor::Priority;
pub use sotto_governor::process_cpu_time;
pub use sotto_models::memory::{KvType, MemoryEstimate};
pub use template::{TemplateChoice, TemplateUsed, render_completion};
pub use tokenizer::Tokenizer;
