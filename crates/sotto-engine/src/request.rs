//! What callers send to the engine and what they get back. Plain data: no llama.cpp types,
//! so the server and the CLI can build requests without linking the engine's internals.

use std::time::{Duration, Instant};

use crate::EngineError;
use crate::Priority;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message { role: role.into(), content: content.into() }
    }
}

/// The prompt of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Messages rendered with the model's chat template (or the completion-style fallback for
    /// base models).
    Chat(Vec<Message>),
    /// Raw text, tokenized as is. Special-token text inside it is *not* parsed as control
    /// tokens, so text from outside cannot forge a turn boundary.
    Text(String),
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Always the most likely token: deterministic.
    Greedy,
    /// Temperature and nucleus sampling with a fixed seed: reproducible for a given seed.
    Random { temperature: f32, top_p: f32, seed: u32 },
}

/// A constraint on the shape of the generated text, enforced token by token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grammar {
    /// A llama.cpp GBNF grammar whose start rule is `root` (see [`crate::grammar`] for the
    /// JSON-schema and JSON-object conversions).
    Gbnf(String),
}

/// What the engine computes for a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Generate text, streamed as [`Update::Text`].
    Generate,
    /// Do not generate: after the prompt, compute the log-probability of each continuation
    /// (summed over its tokens) and answer with [`Update::Scores`]. One prefill serves them all.
    Score(Vec<String>),
    /// Do not generate: answer the mean of the model's last hidden states over the prompt's
    /// tokens, L2-normalised, as [`Update::Embedding`]. The prompt is cut to
    /// [`EMBED_TOKENS`] tokens. Runs in a context of its own, so the prefix cache is untouched.
    Embed,
}

/// The most prompt tokens an [`Task::Embed`] request reads; the rest is ignored. The
/// embeddings context outputs every token (llama.cpp computes the vocabulary logits for each),
/// so its cost grows with this and with the vocabulary.
pub const EMBED_TOKENS: usize = 96;

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: Prompt,
    /// Upper bound on generated tokens; generation also ends at the context window.
    pub max_tokens: u32,
    pub sampling: Sampling,
    /// Generation ends when any of these appears; the stop text itself is not returned.
    pub stop: Vec<String>,
    /// Only text this grammar accepts is generated.
    pub grammar: Option<Grammar>,
    pub task: Task,
    /// Position in the scheduler's queue: higher priorities are served first.
    pub priority: Priority,
    /// If the request has not started by then, it is answered [`EngineError::DeadlineExceeded`]
    /// and never evaluated: a verdict that arrives too late is worth nothing. If it passes
    /// while the prompt is evaluated, the request fails with
    /// [`EngineError::DeadlineWhileRunning`] at the next chunk; during generation, it ends
    /// at the next token with [`FinishReason::Deadline`].
    pub deadline: Option<Instant>,
    /// The leading part of the prompt that many requests share (a system prompt and few-shot
    /// examples), whose KV state is kept in the prefix cache. For [`Prompt::Text`], its length
    /// in bytes; for [`Prompt::Chat`], a number of leading messages. Without it, a chat's
    /// system messages are the shared part.
    pub fixed_prefix: Option<usize>,
    /// Text the answer starts with, placed after the rendered prompt (after the template's
    /// assistant header for chats): `"Verdict:"` makes the model continue from there.
    pub answer_prefix: Option<String>,
}

impl Request {
    /// A greedy generation request with no stop strings, at normal priority.
    pub fn new(prompt: Prompt, max_tokens: u32) -> Self {
        Request {
            prompt,
            max_tokens,
            sampling: Sampling::Greedy,
            stop: Vec::new(),
            grammar: None,
            task: Task::Generate,
            priority: Priority::Normal,
            deadline: None,
            fixed_prefix: None,
            answer_prefix: None,
        }
    }

    /// A request for the embedding of `text` (see [`Task::Embed`]).
    pub fn embed(text: impl Into<String>) -> Self {
        Request { task: Task::Embed, ..Request::new(Prompt::Text(text.into()), 0) }
    }

    /// A request that scores `continuations` after `prompt` instead of generating.
    pub fn score(prompt: Prompt, continuations: Vec<String>) -> Self {
        Request { task: Task::Score(continuations), ..Request::new(prompt, 0) }
    }

    /// Reject values no generation can honour.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::InvalidRequest(m.into()));
        match &self.prompt {
            Prompt::Text(t) if t.is_empty() => return bad("the prompt is empty"),
            Prompt::Chat(m) if m.is_empty() => return bad("there are no messages"),
            _ => {}
        }
        if let Sampling::Random { temperature, top_p, .. } = self.sampling {
            if !(temperature.is_finite() && temperature >= 0.0) {
                return bad("temperature must be a finite number >= 0");
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return bad("top_p must be in (0, 1]");
            }
        }
        if self.stop.iter().any(String::is_empty) {
            return bad("stop strings must not be empty");
        }
        match (&self.prompt, self.fixed_prefix) {
            (Prompt::Text(t), Some(n)) if n > t.len() || !t.is_char_boundary(n) => {
                return bad("fixed_prefix must be a character boundary inside the prompt");
            }
            (Prompt::Chat(m), Some(n)) if n >= m.len() => {
                return bad("fixed_prefix must leave at least one chat message after the shared ones");
            }
            _ => {}
        }
        if let Task::Score(c) = &self.task
            && (c.is_empty() || c.iter().any(String::is_empty))
        {
            return bad("scoring needs at least one non-empty continuation");
        }
        Ok(())
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token or a stop string.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The caller went away (its receiver was dropped), or the engine was shutting down.
    Cancelled,
    /// The request's deadline passed during generation: the text so far is the answer.
    Deadline,
}

impl FinishReason {
    /// The OpenAI name of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
            FinishReason::Deadline => "deadline",
        }
    }
}

/// Counters every request reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV state came from the prefix cache instead of being evaluated.
    pub cached_tokens: usize,
    /// Time spent waiting in the queue before the engine started on the request.
    pub queued: Duration,
    pub generated_tokens: usize,
    pub prefill: Duration,
    pub decode: Duration,
    /// Process CPU time used while serving this request (all threads).
    pub cpu: Duration,
    /// Time the request spent set aside for more urgent ones after it had started.
    pub parked: Duration,
    pub finish: FinishReason,
}

impl Stats {
    /// Prompt tokens evaluated per second of prefill (cached tokens are not counted).
    pub fn prefill_tokens_per_s(&self) -> f64 {
        per_second(self.prompt_tokens - self.cached_tokens, self.prefill)
    }

    pub fn decode_tokens_per_s(&self) -> f64 {
        per_second(self.generated_tokens, self.decode)
    }
}

fn per_second(n: usize, d: Duration) -> f64 {
    if d.is_zero() { 0.0 } else { n as f64 / d.as_secs_f64() }
}

/// What the engine sends back on a request's reply channel.
#[derive(Debug)]
pub enum Update {
    /// The engine has taken the request off the queue and starts on it.
    Started,
    /// The next piece of generated text (valid UTF-8, stop strings removed).
    Text(String),
    /// The log-probability of each continuation of a [`Task::Score`] request, in order.
    Scores(Vec<f64>),
    /// The embedding of a [`Task::Embed`] request's prompt.
    Embedding(Vec<f32>),
    /// The request finished; always the last event of a successful request.
    Done(Stats),
    /// The request failed; always the last event of a failed one.
    Failed(EngineError),
}

pub use sotto_governor::{Phase, ThreadPlan};

/// Called on the engine thread between every prefill chunk and every generated token: the
/// place where the governor paces. It may sleep; it must not spin.
pub trait StepHook: Send {
    /// Once, on the engine thread, before the model loads (set the scheduling class here):
    /// `threads`, what the engine's contexts will run with (`n_threads_batch` and `n_threads`).
    fn on_thread_start(&mut self, _threads: ThreadPlan) {}

    /// A request of `priority` is about to be evaluated.
    fn on_request_start(&mut self, _priority: Priority) {}

    /// How many prompt tokens the next chunk of `phase` should hold, at most `max`.
    fn next_chunk(&mut self, _phase: Phase, max: usize) -> usize {
        max
    }

    /// A step of `tokens` tokens in `phase` has just been evaluated.
    fn after_step(&mut self, phase: Phase, tokens: usize);
}

impl StepHook for sotto_governor::Governor {
    fn on_thread_start(&mut self, threads: ThreadPlan) {
        sotto_governor::Governor::on_thread_start(self, threads);
    }

    fn on_request_start(&mut self, priority: Priority) {
        sotto_governor::Governor::on_request_start(self, priority);
    }

    fn next_chunk(&mut self, phase: Phase, max: usize) -> usize {
        sotto_governor::Governor::next_chunk(self, phase, max)
    }

    fn after_step(&mut self, phase: Phase, tokens: usize) {
        sotto_governor::Governor::after_step(self, phase, tokens);
    }
}

/// The hook that does nothing: no pacing.
pub struct NoPacing;

impl StepHook for NoPacing {
    fn after_step(&mut self, _: Phase, _: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let ok = Request::new(Prompt::Text("hi".into()), 4);
        assert!(ok.validate().is_ok());
        let empty = Request::new(Prompt::Text(String::new()), 4);
        assert!(empty.validate().unwrap_err().to_string().contains("empty"));
        let mut hot = ok.clone();
        hot.sampling = Sampling::Random { temperature: -1.0, top_p: 0.9, seed: 1 };
        assert!(hot.validate().unwrap_err().to_string().contains("temperature"));
        let mut p = ok.clone();
        p.sampling = Sampling::Random { temperature: 0.7, top_p: 0.0, seed: 1 };
        assert!(p.validate().unwrap_err().to_string().contains("top_p"));
        let mut s = ok;
        s.stop = vec![String::new()];
        assert!(s.validate().is_err());
    }
}
