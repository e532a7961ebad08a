//! Evaluation, one paced step at a time: prompt chunks, generated tokens, scored
//! continuations and embedding chunks. Every loop asks [`Worker::check`] before each step, so
//! every phase stops for a caller that left, a shutdown or a passed deadline, and the phases
//! that can be set aside (prefill, generation, embedding) yield to a more urgent request.
//!
//! Must not: allocate per token (beyond the text sent to the caller), or take a step without
//! the check and the hook.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaPoolingType;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use tokio::sync::mpsc::UnboundedSender;

use super::prompt::Tokens;
use super::{Embedder, Worker, backend};
use crate::prefix::MIN_SNAPSHOT_TOKENS;
use crate::text::{StopMatcher, Utf8Stream};
use crate::{EMBED_TOKENS, EngineError, FinishReason, Phase, Sampling, Update};

/// Tokens per decode call in the embeddings context. Every token is an output there, so the
/// logits buffer is this many rows of the vocabulary (32 × 262k floats for Gemma 3: 34 MB).
pub(super) const EMBED_BATCH: usize = 32;

/// What to do before the next step.
pub(super) enum Check {
    /// Take the step.
    Go,
    /// The caller left or the engine is shutting down.
    Gone,
    /// The request's deadline passed (the error names the real wait).
    Late(EngineError),
    /// A more urgent request waits: set this one aside.
    Yield,
}

/// How a phase ended.
pub(super) enum Step<T> {
    Done(T),
    Gone,
    /// Set aside before the next step; the state to resume from is where the phase left it.
    Yield,
}

/// A generation in progress: everything that must survive being set aside, so that the
/// resumed request produces exactly the tokens it would have produced uninterrupted.
pub(super) struct Generation {
    pub sampler: LlamaSampler,
    pub grammar: Option<LlamaSampler>,
    pub utf8: Utf8Stream,
    /// The text one token completed, before the stop matcher: reused, not allocated per token.
    pub text: String,
    pub stop: StopMatcher,
    pub generated: usize,
    pub budget: usize,
}

impl Generation {
    pub(super) fn new(sampling: Sampling, grammar: Option<LlamaSampler>, stops: Vec<String>, budget: usize) -> Self {
        Generation {
            sampler: sampler_for(sampling),
            grammar,
            utf8: Utf8Stream::default(),
            text: String::new(),
            stop: StopMatcher::new(stops),
            generated: 0,
            budget,
        }
    }
}

/// An embedding in progress: the prompt's tokens, how many are evaluated, and the running sum
/// of their hidden states.
pub(super) struct Embedding {
    pub tokens: Vec<LlamaToken>,
    pub at: usize,
    pub sum: Vec<f64>,
    /// Leading tokens left out of the mean (the beginning-of-sequence token).
    pub skip: usize,
}

impl<'m> Worker<'m> {
    /// The checks before every step. `may_yield`: this phase can be set aside and resumed.
    pub(super) fn check(&self, reply: &UnboundedSender<Update>, may_yield: bool) -> Check {
        if reply.is_closed() || self.shared.cancel.load(Ordering::Relaxed) {
            return Check::Gone;
        }
        if let Some(late) = self.overdue() {
            return Check::Late(late);
        }
        if may_yield && self.shared.queue.waiting_above(self.priority) {
            return Check::Yield;
        }
        Check::Go
    }

    /// [`Worker::check`] as a chunk loop uses it: `None` to take the step, else how the loop
    /// ends (a passed deadline is the request's error).
    fn before_chunk<T>(
        &self,
        reply: &UnboundedSender<Update>,
        may_yield: bool,
    ) -> Result<Option<Step<T>>, EngineError> {
        match self.check(reply, may_yield) {
            Check::Go => Ok(None),
            Check::Gone => Ok(Some(Step::Gone)),
            Check::Late(e) => Err(e),
            Check::Yield => Ok(Some(Step::Yield)),
        }
    }

    /// Evaluate `prompt` from token `from` on, one chunk per `decode` call, pacing between
    /// chunks; the hook sizes each chunk (at most the configured one). A chunk never straddles
    /// the fixed-prefix boundary, so the prefix's state can be kept the moment it is complete.
    /// Done with the batch index of the last token's logits; on `Yield`, `live` holds exactly
    /// the tokens evaluated so far.
    pub(super) fn prefill(
        &mut self,
        prompt: &Tokens,
        from: usize,
        reply: &UnboundedSender<Update>,
        may_yield: bool,
    ) -> Result<Step<i32>, EngineError> {
        let tokens = &prompt.tokens;
        let snapshot_at = prompt.boundary.filter(|&b| {
            self.snapshots.enabled()
                && b > from
                && b >= MIN_SNAPSHOT_TOKENS
                && b < tokens.len()
                && !self.snapshots.contains(&prompt.ids[..b])
        });
        let mut last = 0;
        let mut start = from;
        while start < tokens.len() {
            if let Some(end) = self.before_chunk(reply, may_yield)? {
                return Ok(end);
            }
            let mut size = self.hook.next_chunk(Phase::Prefill, self.chunk).clamp(1, self.chunk);
            if let Some(b) = snapshot_at.filter(|&b| start < b) {
                size = size.min(b - start);
            }
            let chunk = &tokens[start..(start + size).min(tokens.len())];
            decode_chunk(&mut self.ctx, &mut self.batch, chunk, start, |pos| pos == tokens.len() - 1)?;
            self.live.extend_from_slice(&prompt.ids[start..start + chunk.len()]);
            last = self.batch.n_tokens() - 1;
            start += chunk.len();
            self.hook.after_step(Phase::Prefill, chunk.len());
            if snapshot_at == Some(start) {
                self.keep_snapshot(&prompt.ids[..start], true);
            }
        }
        Ok(Step::Done(last))
    }

    /// Continue `generation`, whose next token's logits are at batch index `logits_at`.
    /// Done with why it ended. On `Yield`, the last token in `live` has been evaluated and its
    /// logits are the ones to sample from next.
    pub(super) fn decode(
        &mut self,
        generation: &mut Generation,
        logits_at: i32,
        reply: &UnboundedSender<Update>,
        may_yield: bool,
    ) -> Result<Step<FinishReason>, EngineError> {
        let g = generation;
        let mut logits_at = logits_at;
        let send = |text: String| {
            if !text.is_empty() {
                let _ = reply.send(Update::Text(text));
            }
        };
        let finish = loop {
            if g.generated == g.budget {
                break FinishReason::Length;
            }
            match self.check(reply, may_yield) {
                Check::Go => {}
                Check::Gone => return Ok(Step::Gone),
                Check::Late(_) => break FinishReason::Deadline,
                Check::Yield => return Ok(Step::Yield),
            }
            let token = self.pick(&mut g.sampler, g.grammar.as_mut(), logits_at);
            if self.model.vocab().is_eog(token) {
                break FinishReason::Stop;
            }
            if let Some(grammar) = g.grammar.as_mut() {
                grammar.accept(token);
            }
            g.generated += 1;
            self.piece.clear();
            self.model.vocab().token_to_piece_into(token, &mut self.piece, false, None);
            g.text.clear();
            g.utf8.push(&self.piece, &mut g.text);
            let (text, hit) = g.stop.push(&g.text);
            send(text);
            if hit {
                return Ok(Step::Done(FinishReason::Stop));
            }
            if g.generated == g.budget {
                break FinishReason::Length; // no need to evaluate a token nobody will extend
            }
            decode_chunk(&mut self.ctx, &mut self.batch, &[token], self.live.len(), |_| true)?;
            self.live.push(token.0);
            logits_at = 0;
            self.hook.after_step(Phase::Decode, 1);
        };
        let (tail, hit) = g.stop.push(&g.utf8.finish());
        send(tail);
        if hit {
            return Ok(Step::Done(FinishReason::Stop));
        }
        let (tail, hit) = g.stop.finish();
        send(tail);
        Ok(Step::Done(if hit { FinishReason::Stop } else { finish }))
    }

    /// The next token. With a grammar, the sampler's unconstrained choice is checked alone
    /// first, and the whole vocabulary is filtered only when the grammar rejects it: filtering
    /// a 262k vocabulary on every step would double the cost of a token.
    fn pick(&self, sampler: &mut LlamaSampler, grammar: Option<&mut LlamaSampler>, idx: i32) -> LlamaToken {
        let token = sampler.sample(&self.ctx, idx);
        let Some(grammar) = grammar else { return token };
        let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        one.apply_sampler(grammar);
        if one.data[0].logit().is_finite() {
            return token;
        }
        let mut all = self.ctx.token_data_array_ith(idx);
        all.apply_sampler(grammar);
        all.apply_sampler(sampler);
        all.selected_token().unwrap_or(token)
    }

    /// Log-probability of each continuation after the evaluated prompt, whose last logits are
    /// at batch index `last`. Multi-token continuations are evaluated in paced chunks and then
    /// dropped from the KV cache again, so the next one starts from the prompt. Not set aside:
    /// continuations are a few tokens each.
    pub(super) fn score(
        &mut self,
        last: i32,
        continuations: &[String],
        reply: &UnboundedSender<Update>,
    ) -> Result<Step<Vec<f64>>, EngineError> {
        let base = self.live.len();
        let mut all = Vec::with_capacity(continuations.len());
        for text in continuations {
            let tokens = self.model.vocab().tokenize(text.as_bytes(), false, false);
            if tokens.is_empty() {
                return Err(EngineError::InvalidRequest(format!("continuation {text:?} has no tokens")));
            }
            if base + tokens.len() >= self.info.n_ctx as usize {
                return Err(EngineError::InvalidRequest(format!(
                    "continuation of {} tokens does not fit the context window after the prompt",
                    tokens.len()
                )));
            }
            all.push(tokens);
        }
        // The first token of every continuation is scored from the prompt's own logits.
        let heads: Vec<f64> = {
            let first = log_softmax_row(self.ctx.get_logits_ith(last));
            all.iter().map(|tokens| first(tokens[0].0)).collect()
        };
        let mut scores = Vec::with_capacity(continuations.len());
        for (tokens, head) in all.iter().zip(heads) {
            let mut total = head;
            // Evaluate all but the last token in paced chunks; the logits at each position
            // score the token after it.
            let inputs = &tokens[..tokens.len() - 1];
            let mut start = 0;
            while start < inputs.len() {
                if let Some(end) = self.before_chunk(reply, false)? {
                    return Ok(end);
                }
                let size = self.hook.next_chunk(Phase::Outputs, self.chunk).clamp(1, self.chunk);
                let chunk = &inputs[start..(start + size).min(inputs.len())];
                decode_chunk(&mut self.ctx, &mut self.batch, chunk, base + start, |_| true)?;
                for j in 0..chunk.len() {
                    total += log_softmax_row(self.ctx.get_logits_ith(j as i32))(tokens[start + j + 1].0);
                }
                start += chunk.len();
                self.hook.after_step(Phase::Outputs, chunk.len());
            }
            if !inputs.is_empty() {
                self.ctx
                    .kv_cache_seq_rm(0, Some(base as u32), None)
                    .map_err(|e| EngineError::Decode(format!("cannot drop scored tokens: {e}")))?;
            }
            scores.push(total);
        }
        Ok(Step::Done(scores))
    }

    /// The tokens an embedding reads: the prompt's first [`EMBED_TOKENS`].
    pub(super) fn embedding_of(&self, text: &str) -> Result<Embedding, EngineError> {
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        tokens.truncate(EMBED_TOKENS);
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt has no tokens".into()));
        }
        let skip = usize::from(tokens.len() > 1 && tokens[0] == self.model.vocab().bos());
        Ok(Embedding { tokens, at: 0, sum: vec![0f64; self.info.n_embd.max(0) as usize], skip })
    }

    /// The embeddings context, made on first use.
    pub(super) fn embedder(&mut self) -> Result<&mut Embedder<'m>, EngineError> {
        if self.embedder.is_none() {
            let params = self
                .context_params
                .clone()
                .with_n_ctx(NonZeroU32::new((EMBED_TOKENS as u32).next_multiple_of(256)))
                .with_n_batch(EMBED_BATCH as u32)
                .with_n_ubatch(EMBED_BATCH as u32)
                .with_embeddings(true)
                .with_pooling_type(LlamaPoolingType::None);
            let ctx = self.model.new_context(backend()?, params).map_err(|e| EngineError::Context(e.to_string()))?;
            self.embedder = Some(Embedder { ctx, batch: LlamaBatch::new(EMBED_BATCH, 1) });
        }
        Ok(self.embedder.as_mut().expect("made above"))
    }

    /// Continue `embedding` in paced chunks in the embeddings context (whose sequence 0 holds
    /// exactly its first `at` tokens). Done with the mean of the last hidden states (the
    /// beginning-of-sequence token left out: it is the same for every prompt), L2-normalised.
    pub(super) fn embed(
        &mut self,
        embedding: &mut Embedding,
        reply: &UnboundedSender<Update>,
        may_yield: bool,
    ) -> Result<Step<Vec<f32>>, EngineError> {
        let chunk_cap = self.chunk.min(EMBED_BATCH);
        self.embedder()?;
        while embedding.at < embedding.tokens.len() {
            if let Some(end) = self.before_chunk(reply, may_yield)? {
                return Ok(end);
            }
            let size = self.hook.next_chunk(Phase::Outputs, chunk_cap).clamp(1, chunk_cap);
            let start = embedding.at;
            let end = (start + size).min(embedding.tokens.len());
            let e = self.embedder.as_mut().expect("made above");
            decode_chunk(&mut e.ctx, &mut e.batch, &embedding.tokens[start..end], start, |_| true)?;
            for pos in start.max(embedding.skip)..end {
                let row = e.ctx.embeddings_ith((pos - start) as i32).map_err(|e| EngineError::Decode(e.to_string()))?;
                for (s, v) in embedding.sum.iter_mut().zip(row) {
                    *s += f64::from(*v);
                }
            }
            embedding.at = end;
            self.hook.after_step(Phase::Outputs, end - start);
        }
        let norm = embedding.sum.iter().map(|v| v * v).sum::<f64>().sqrt();
        Ok(Step::Done(embedding.sum.iter().map(|v| if norm > 0.0 { (v / norm) as f32 } else { 0.0 }).collect()))
    }
}

/// Evaluate `tokens` at positions `from..` of sequence 0 in one `decode` call: the one way
/// every phase puts tokens into a context. `logits(pos)`: whether that position's logits are
/// kept (batch index = position − `from`).
pub(super) fn decode_chunk(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    tokens: &[LlamaToken],
    from: usize,
    logits: impl Fn(usize) -> bool,
) -> Result<(), EngineError> {
    batch.clear();
    for (pos, &token) in (from..).zip(tokens) {
        batch.add(token, pos as i32, &[0], logits(pos)).map_err(|e| EngineError::Decode(e.to_string()))?;
    }
    ctx.decode(batch).map_err(|e| EngineError::Decode(e.to_string()))
}

/// `deadline` (with when its request was queued) has passed: the error that stops the request.
pub(super) fn overdue(deadline: Option<(Instant, Instant)>) -> Option<EngineError> {
    let (deadline, enqueued) = deadline?;
    (Instant::now() >= deadline).then(|| EngineError::DeadlineWhileRunning { after: enqueued.elapsed() })
}

/// A function giving the log-probability of a token id under one row of logits.
fn log_softmax_row(row: &[f32]) -> impl Fn(i32) -> f64 + '_ {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    move |id| row.get(id as usize).map_or(f64::NEG_INFINITY, |&x| x as f64 - log_z)
}

fn sampler_for(sampling: Sampling) -> LlamaSampler {
    match sampling {
        Sampling::Greedy => LlamaSampler::greedy(),
        Sampling::Random { temperature: 0.0, .. } => LlamaSampler::greedy(),
        Sampling::Random { temperature, top_p, seed } => LlamaSampler::chain_simple([
            LlamaSampler::top_p(top_p, 1),
            LlamaSampler::temp(temperature),
            LlamaSampler::dist(seed),
        ]),
    }
}
