//! Endpoint-security analysis: events in, verdicts out. Prompts for small models under tight
//! budgets (a fixed, cached prefix of instructions and curated examples; the event last), the
//! fast label-scoring path, grammar-constrained verdicts, and the scoring the evaluation suite
//! reports.
//!
//! Must not: import llama.cpp (it talks to the engine through requests), or know HTTP.

mod analyzer;
pub mod bank;
mod designs;
pub mod eval;
pub mod head;
mod prompt;
pub mod verdict;

pub use analyzer::{Analysis, AnalyzeError, Analyzer, DEFAULT_RETRIEVE, Detail, Embeddings, Mode, Options, Rationale};
pub use prompt::{NAIVE_MAX_TOKENS, Style, event_block, naive_question};
/// How each of an event's requests is queued: the engine's own admission, not a copy.
pub use sotto_engine::Admission;
pub use verdict::{LabelScores, Severity, Verdict};
