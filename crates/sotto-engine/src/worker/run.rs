//! A started request as a value: begun from a queued job, driven stage by stage (prompt,
//! then the answer), and, when a more urgent request waits, set aside with the KV state it
//! had reached and resumed from that state later.
//!
//! Preemption: before every prefill chunk, generated token and embedding chunk, the worker
//! asks the queue whether a request of a strictly higher priority waits. If so, the running
//! request's sequence is copied out of the KV cache (`state_seq_get`), the request is parked
//! on the engine thread, and the urgent one runs. A parked request resumes before anything
//! else of its own class: only requests that outrank it are served first.
//!
//! Must not: resume a request into a state other than the one it left (a resumed greedy
//! generation produces the same tokens as an uninterrupted one), lose a parked request's
//! caller (shutdown, a panic and a caller that left are all answered), or set aside a request
//! for one of its own priority.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use llama_cpp_2::context::session::{LlamaStateSeqFlags, SeqState};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use sotto_governor::process_cpu_time;
use tokio::sync::mpsc::UnboundedSender;

use super::Worker;
use super::eval::{Embedding, Generation, Step, decode_chunk};
use super::prompt::Tokens;
use crate::Priority;
use crate::queue::Job;
use crate::{EngineError, FinishReason, Grammar, Phase, Prompt, Stats, Task, Update};

/// A request the engine has started.
pub(super) struct Run {
    job: Job,
    stage: Stage,
    /// What follows the prompt (`None` for an embedding).
    answer: Option<Answer>,
    stats: Stats,
    /// False once setting it aside failed (a model whose cache cannot drop a tail): it then
    /// runs to its end.
    may_yield: bool,
}

enum Stage {
    /// Evaluating the prompt; `at` tokens are in the KV cache.
    Prompt {
        prompt: Tokens,
        at: usize,
    },
    /// The prompt is evaluated; the next logits are at batch index `logits_at`.
    Answer {
        logits_at: i32,
    },
    Embed(Embedding),
}

enum Answer {
    Generate(Generation),
    Score(Vec<String>),
}

/// A request set aside for a more urgent one.
pub(super) struct Parked {
    run: Run,
    /// The KV state of its sequence (`None`: nothing was evaluated yet).
    state: Option<SeqState>,
    /// The token ids that state holds.
    ids: Vec<i32>,
    /// A generation's last token, dropped from the state before it was copied and evaluated
    /// again on resume: that gives back the logits to sample the next token from.
    pending: Option<i32>,
    since: Instant,
}

impl Parked {
    pub(super) fn priority(&self) -> Priority {
        self.run.job.request.priority
    }

    /// Answer a parked request that will not be resumed.
    pub(super) fn fail(self, error: EngineError) {
        let _ = self.run.job.reply.send(Update::Failed(error));
    }
}

/// How driving a request ended.
enum Drive {
    Done(FinishReason),
    Yield,
}

impl Worker<'_> {
    /// Serve a job just taken off the queue.
    pub(super) fn serve(&mut self, job: Job) {
        if job.reply.is_closed() || self.shared.cancel.load(Ordering::Relaxed) {
            return; // the caller left while the request waited in the queue
        }
        let queued = job.enqueued.elapsed();
        if job.request.deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::info!(queued_ms = queued.as_millis() as u64, "deadline passed in the queue; not evaluated");
            let _ = job.reply.send(Update::Failed(EngineError::DeadlineExceeded { waited: queued }));
            return;
        }
        let _ = job.reply.send(Update::Started);
        let reply = job.reply.clone();
        self.enter(&job);
        let cpu = process_cpu_time();
        match self.begin(job, queued) {
            Ok(mut run) => {
                run.stats.cpu = process_cpu_time() - cpu;
                self.advance(run);
            }
            Err(e) => {
                self.shared.busy.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "request refused");
                let _ = reply.send(Update::Failed(e));
            }
        }
    }

    /// The most urgent parked request's priority, if any is parked.
    pub(super) fn parked_priority(&self) -> Option<Priority> {
        self.parked.iter().map(Parked::priority).max()
    }

    /// Resume the most urgent parked request (the longest parked among equals).
    pub(super) fn resume(&mut self) {
        let Some(top) = self.parked_priority() else { return };
        let at = self.parked.iter().position(|p| p.priority() == top).expect("present");
        let parked = self.parked.remove(at);
        self.shared.parked.store(self.parked.len() as u64, Ordering::Relaxed);
        let Parked { mut run, state, ids, pending, since } = parked;
        run.stats.parked += since.elapsed();
        self.enter(&run.job);
        tracing::debug!(parked_ms = since.elapsed().as_millis() as u64, tokens = ids.len(), "resuming a request");
        match self.restore_parked(&mut run, state, ids, pending) {
            Ok(()) => self.advance(run),
            Err(e) => self.fail(&run.job.reply, e),
        }
    }

    /// Every parked request, for shutdown or after a panic.
    pub(super) fn take_parked(&mut self) -> Vec<Parked> {
        self.shared.parked.store(0, Ordering::Relaxed);
        std::mem::take(&mut self.parked)
    }

    /// The running request's context: its priority (what may preempt it), its deadline, the
    /// governor's class for it.
    fn enter(&mut self, job: &Job) {
        self.priority = job.request.priority;
        self.deadline = job.request.deadline.map(|d| (d, job.enqueued));
        self.shared.busy.store(true, Ordering::Relaxed);
        self.hook.on_request_start(job.request.priority);
    }

    /// Check, tokenise and place a new request: nothing is evaluated yet.
    fn begin(&mut self, job: Job, queued: Duration) -> Result<Run, EngineError> {
        let request = &job.request;
        request.validate()?;
        if let Some(trigger) = &self.inject_panic {
            let text = match &request.prompt {
                Prompt::Text(t) => t.contains(trigger.as_str()),
                Prompt::Chat(m) => m.iter().any(|m| m.content.contains(trigger.as_str())),
            };
            assert!(!text, "injected panic (EngineConfig::inject_panic)");
        }
        let mut stats = Stats {
            prompt_tokens: 0,
            cached_tokens: 0,
            queued,
            generated_tokens: 0,
            prefill: Duration::ZERO,
            decode: Duration::ZERO,
            cpu: Duration::ZERO,
            parked: Duration::ZERO,
            finish: FinishReason::Cancelled,
        };
        if request.task == Task::Embed {
            let Prompt::Text(text) = &request.prompt else {
                return Err(EngineError::InvalidRequest("an embedding is of plain text, not a chat".into()));
            };
            let embedding = self.embedding_of(text)?;
            stats.prompt_tokens = embedding.tokens.len();
            self.embedder()?.ctx.clear_kv_cache();
            return Ok(Run { job, stage: Stage::Embed(embedding), answer: None, stats, may_yield: true });
        }
        let prompt = self.tokenize(request)?;
        stats.prompt_tokens = prompt.tokens.len();
        // Built before any evaluation, so a grammar llama.cpp rejects costs nothing.
        let grammar = match &request.grammar {
            Some(Grammar::Gbnf(g)) => Some(
                LlamaSampler::grammar(self.model, g, "root")
                    .map_err(|e| EngineError::InvalidRequest(format!("grammar: {e}")))?,
            ),
            None => None,
        };
        let answer = match &request.task {
            Task::Generate => {
                let mut stops = request.stop.clone();
                if prompt.completion_chat {
                    // A base model continues the dialogue on its own; the next turn ends the answer.
                    stops.push("\nUser:".into());
                }
                let budget = (request.max_tokens as usize).min(self.info.n_ctx as usize - prompt.tokens.len());
                Answer::Generate(Generation::new(request.sampling, grammar, stops, budget))
            }
            Task::Score(continuations) => Answer::Score(continuations.clone()),
            Task::Embed => unreachable!("answered above"),
        };
        let started = Instant::now();
        let at = self.restore(&prompt);
        stats.cached_tokens = at;
        stats.prefill = started.elapsed();
        Ok(Run { job, stage: Stage::Prompt { prompt, at }, answer: Some(answer), stats, may_yield: true })
    }

    /// Drive `run` until it ends or yields; answer its caller or park it.
    fn advance(&mut self, mut run: Run) {
        let span = tracing::info_span!("request", priority = %run.job.request.priority);
        let _enter = span.enter();
        loop {
            let cpu = process_cpu_time();
            let driven = self.drive(&mut run);
            run.stats.cpu += process_cpu_time() - cpu;
            match driven {
                Ok(Drive::Done(finish)) => {
                    self.shared.busy.store(false, Ordering::Relaxed);
                    let stats = Stats { finish, ..run.stats };
                    tracing::info!(
                        prompt_tokens = stats.prompt_tokens, cached_tokens = stats.cached_tokens,
                        generated_tokens = stats.generated_tokens, queued_ms = stats.queued.as_millis() as u64,
                        prefill_ms = stats.prefill.as_millis() as u64, decode_ms = stats.decode.as_millis() as u64,
                        parked_ms = stats.parked.as_millis() as u64, cpu_ms = stats.cpu.as_millis() as u64,
                        finish = ?stats.finish, "request done"
                    );
                    let _ = run.job.reply.send(Update::Done(stats));
                    return;
                }
                Ok(Drive::Yield) => match self.set_aside(run) {
                    Ok(()) => {
                        self.shared.busy.store(false, Ordering::Relaxed);
                        return;
                    }
                    Err((back, e)) => {
                        tracing::warn!(error = %e, "cannot set the request aside; it runs to its end");
                        run = *back;
                        run.may_yield = false;
                    }
                },
                Err(e) => return self.fail(&run.job.reply, e),
            }
        }
    }

    /// The request failed: whatever the KV cache holds now is not trusted for reuse.
    fn fail(&mut self, reply: &UnboundedSender<Update>, e: EngineError) {
        self.shared.busy.store(false, Ordering::Relaxed);
        self.ctx.clear_kv_cache();
        self.live.clear();
        tracing::warn!(error = %e, "request failed");
        let _ = reply.send(Update::Failed(e));
    }

    fn drive(&mut self, run: &mut Run) -> Result<Drive, EngineError> {
        let reply = run.job.reply.clone();
        let may_yield = run.may_yield;
        loop {
            let started = Instant::now();
            match &mut run.stage {
                Stage::Embed(embedding) => {
                    let step = self.embed(embedding, &reply, may_yield);
                    run.stats.prefill += started.elapsed();
                    return match step? {
                        Step::Done(vector) => {
                            let _ = reply.send(Update::Embedding(vector));
                            Ok(Drive::Done(FinishReason::Stop))
                        }
                        Step::Gone => Err(EngineError::Stopped),
                        Step::Yield => Ok(Drive::Yield),
                    };
                }
                Stage::Prompt { prompt, at } => {
                    let step = self.prefill(prompt, *at, &reply, may_yield);
                    run.stats.prefill += started.elapsed();
                    match step? {
                        Step::Done(last) => run.stage = Stage::Answer { logits_at: last },
                        Step::Gone => return Ok(Drive::Done(FinishReason::Cancelled)),
                        Step::Yield => {
                            *at = self.live.len();
                            return Ok(Drive::Yield);
                        }
                    }
                }
                Stage::Answer { logits_at } => match run.answer.as_mut().expect("a prompt has an answer") {
                    Answer::Generate(generation) => {
                        let step = self.decode(generation, *logits_at, &reply, may_yield);
                        run.stats.decode += started.elapsed();
                        run.stats.generated_tokens = generation.generated;
                        return match step? {
                            Step::Done(finish) => Ok(Drive::Done(finish)),
                            Step::Gone => Ok(Drive::Done(FinishReason::Cancelled)),
                            Step::Yield => Ok(Drive::Yield),
                        };
                    }
                    Answer::Score(continuations) => {
                        let step = self.score(*logits_at, continuations, &reply);
                        run.stats.decode += started.elapsed();
                        return match step? {
                            Step::Done(scores) => {
                                let _ = reply.send(Update::Scores(scores));
                                Ok(Drive::Done(FinishReason::Stop))
                            }
                            Step::Gone | Step::Yield => Err(EngineError::Stopped),
                        };
                    }
                },
            }
        }
    }

    /// Copy the running request's sequence out of the KV cache and park it. On failure the
    /// request is handed back untouched, to run on.
    fn set_aside(&mut self, run: Run) -> Result<(), (Box<Run>, String)> {
        let (state, ids, pending) = match &run.stage {
            Stage::Embed(embedding) => {
                let e = self.embedder.as_mut().expect("an embedding runs in the embeddings context");
                let state = match embedding.at {
                    0 => None,
                    _ => match e.ctx.state_seq_get(0, LlamaStateSeqFlags::empty()) {
                        Ok(s) => Some(s),
                        Err(err) => return Err((Box::new(run), err.to_string())),
                    },
                };
                (state, Vec::new(), None)
            }
            Stage::Prompt { .. } => match self.live.len() {
                0 => (None, Vec::new(), None),
                _ => match self.ctx.state_seq_get(0, LlamaStateSeqFlags::empty()) {
                    Ok(s) => (Some(s), self.live.clone(), None),
                    Err(err) => return Err((Box::new(run), err.to_string())),
                },
            },
            Stage::Answer { .. } => {
                // Drop the last token so that evaluating it again on resume gives its logits.
                let n = self.live.len();
                if let Err(err) = self.ctx.kv_cache_seq_rm(0, Some(n as u32 - 1), None) {
                    return Err((Box::new(run), format!("cannot drop the last token: {err}")));
                }
                let pending = self.live.pop();
                match self.ctx.state_seq_get(0, LlamaStateSeqFlags::empty()) {
                    Ok(s) => (Some(s), self.live.clone(), pending),
                    Err(err) => {
                        // The live cache no longer matches a request's logits: start afresh.
                        self.ctx.clear_kv_cache();
                        self.live.clear();
                        return Err((Box::new(run), err.to_string()));
                    }
                }
            }
        };
        // Set aside with its state copied out: a request that cannot resume must not take
        // the copy's memory, so the failure above keeps it running instead.
        let bytes = state.as_ref().map_or(0, SeqState::byte_len);
        tracing::info!(tokens = ids.len(), bytes, "set aside for a more urgent request");
        self.shared.preemptions.fetch_add(1, Ordering::Relaxed);
        self.parked.push(Parked { run, state, ids, pending, since: Instant::now() });
        self.shared.parked.store(self.parked.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Put a parked request's state back where it left it.
    fn restore_parked(
        &mut self,
        run: &mut Run,
        state: Option<SeqState>,
        ids: Vec<i32>,
        pending: Option<i32>,
    ) -> Result<(), EngineError> {
        let lost = |e: &dyn std::fmt::Display| EngineError::Decode(format!("cannot resume a set-aside request: {e}"));
        if let Stage::Embed(embedding) = &run.stage {
            let e = self.embedder()?;
            e.ctx.clear_kv_cache();
            if let Some(state) = &state {
                e.ctx.state_seq_set(state, 0).map_err(|err| lost(&err))?;
            }
            debug_assert!(state.is_some() || embedding.at == 0);
            return Ok(());
        }
        self.ctx.clear_kv_cache();
        self.live.clear();
        if let Some(state) = &state {
            self.ctx.state_seq_set(state, 0).map_err(|err| lost(&err))?;
            self.live = ids;
        }
        if let Some(token) = pending {
            decode_chunk(&mut self.ctx, &mut self.batch, &[LlamaToken(token)], self.live.len(), |_| true)
                .map_err(|e| lost(&e))?;
            self.live.push(token);
            self.hook.after_step(Phase::Decode, 1);
            if let Stage::Answer { logits_at, .. } = &mut run.stage {
                *logits_at = 0;
            }
        }
        Ok(())
    }
}
