//! The engine thread: it owns the llama.cpp model and context for their whole life, takes one
//! request at a time from the queue, and streams the answer back on the request's own channel.
//!
//! Must not: block on anything but the queue between requests (idle costs nothing), spin,
//! or keep decoding for a caller whose reply channel has closed.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::KvCacheType;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::session::{LlamaStateSeqFlags, SeqState};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use sotto_models::GgufHeader;
use sotto_models::memory::{self, KvType, MemoryEstimate};
use tokio::sync::mpsc::UnboundedSender;

use crate::prefix::{MIN_SNAPSHOT_TOKENS, Snapshots, Start, common_prefix};
use crate::queue::{Job, Pop, Queue};
use crate::template::{Renderer, Specials};
use crate::text::{StopMatcher, Utf8Stream};
use crate::{
    EMBED_TOKENS, EngineConfig, EngineError, Event, FinishReason, Grammar, Message, ModelInfo, Phase, Prompt, Request,
    Sampling, Stats, StepHook, Task,
};
use sotto_governor::process_cpu_time;

/// State the engine thread shares with its handle and, through it, with the server.
pub(crate) struct Shared {
    pub queue: Queue,
    /// The model is in memory (false while unloaded after `keep_alive`).
    pub loaded: AtomicBool,
    /// A request is being evaluated right now.
    pub busy: AtomicBool,
    /// Set at shutdown: the running request stops at its next step.
    pub cancel: AtomicBool,
    /// How many times the model has been loaded (1 + reloads after idling or a panic).
    pub loads: AtomicU64,
    /// A panic took the worker down; set until the model is loaded again.
    pub down: AtomicBool,
    /// Panics caught so far.
    pub panics: AtomicU64,
    /// Bytes held by prefix snapshots in memory, and how many there are.
    pub prefix_bytes: AtomicU64,
    pub prefix_entries: AtomicU64,
}

impl Shared {
    pub(crate) fn new(queue: usize) -> Self {
        Shared {
            queue: Queue::new(queue),
            loaded: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            loads: AtomicU64::new(0),
            down: AtomicBool::new(false),
            panics: AtomicU64::new(0),
            prefix_bytes: AtomicU64::new(0),
            prefix_entries: AtomicU64::new(0),
        }
    }
}

/// llama.cpp's backend may be initialised once per process; every engine shares it.
pub(crate) fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load { path: Default::default(), reason: format!("backend init: {e}") })
}

/// Thread body. Reports the first load's result on `ready`, then serves until the queue closes.
/// With `keep_alive`, the model is dropped after that long without work and loaded again when
/// the next request arrives.
pub(crate) fn run(
    config: EngineConfig,
    mut hook: Box<dyn StepHook>,
    ready: Sender<Result<ModelInfo, EngineError>>,
    shared: Arc<Shared>,
) {
    hook.on_thread_start();
    let mut ready = Some(ready);
    loop {
        let started = Instant::now();
        let loaded = load(&config);
        let (model, header, memory) = match loaded {
            Ok(v) => v,
            Err(e) => {
                if !fail_load(&mut ready, &shared, e) {
                    return;
                }
                continue;
            }
        };
        let mut worker = match Worker::new(&model, &header, memory, &config, &mut *hook, shared.clone()) {
            Ok(w) => w,
            Err(e) => {
                if !fail_load(&mut ready, &shared, e) {
                    return;
                }
                continue;
            }
        };
        shared.loads.fetch_add(1, Ordering::Relaxed);
        shared.loaded.store(true, Ordering::Release);
        shared.down.store(false, Ordering::Release);
        match ready.take() {
            Some(tx) => {
                if tx.send(Ok(worker.info.clone())).is_err() {
                    return;
                }
            }
            None => tracing::info!(ms = started.elapsed().as_millis() as u64, "model reloaded"),
        }
        // Blocking wait: between requests this thread sleeps in the kernel.
        let mut panicked = false;
        let closed = loop {
            match shared.queue.pop(config.keep_alive) {
                Pop::Job(job) => {
                    let reply = job.reply.clone();
                    // A panic must not leave a daemon whose requests hang: fail this request,
                    // drop the model and context (their state is not trusted) and load again.
                    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.serve(*job)));
                    if let Err(payload) = served {
                        let what = panic_message(payload.as_ref());
                        tracing::error!(panic = %what, "the engine thread panicked; reloading the model");
                        shared.busy.store(false, Ordering::Relaxed);
                        shared.down.store(true, Ordering::Release);
                        shared.panics.fetch_add(1, Ordering::Relaxed);
                        let _ = reply.send(Event::Failed(EngineError::Panicked(what)));
                        panicked = true;
                        break false;
                    }
                }
                Pop::Idle => break false,
                Pop::Closed => break true,
            }
        };
        drop(worker);
        drop(model);
        shared.loaded.store(false, Ordering::Release);
        shared.prefix_bytes.store(0, Ordering::Relaxed);
        shared.prefix_entries.store(0, Ordering::Relaxed);
        if closed {
            tracing::debug!("engine queue closed; engine thread exits");
            return;
        }
        if panicked {
            continue;
        }
        tracing::info!(keep_alive_s = config.keep_alive.map(|d| d.as_secs()), "idle: model unloaded");
        if !shared.queue.wait_for_work() {
            return;
        }
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A load failed. The first one is reported to `Engine::start`; a reload failure fails the
/// request that asked for it and waits for the next. Returns whether to keep going.
fn fail_load(ready: &mut Option<Sender<Result<ModelInfo, EngineError>>>, shared: &Shared, e: EngineError) -> bool {
    if let Some(tx) = ready.take() {
        let _ = tx.send(Err(e));
        return false;
    }
    tracing::error!(error = %e, "reloading the model failed");
    if let Pop::Job(job) = shared.queue.pop(Some(Duration::ZERO)) {
        let _ = job.reply.send(Event::Failed(EngineError::Load { path: PathBuf::new(), reason: e.to_string() }));
    }
    shared.queue.wait_for_work()
}

fn load(config: &EngineConfig) -> Result<(LlamaModel, GgufHeader, MemoryEstimate), EngineError> {
    // Our own header check first: clear errors for missing, foreign and truncated files.
    let header = GgufHeader::read(&config.model)?;
    let estimate = memory_estimate(&header, config);
    if let Some(budget) = config.mem_budget {
        memory::check_budget(&estimate, budget, context_size(&header, config) as u64, config.kv_type)
            .map_err(EngineError::MemoryBudget)?;
    }
    let backend = backend()?;
    let params = LlamaModelParams::default();
    let model = LlamaModel::load_from_file(backend, &config.model, &params).map_err(|e| EngineError::Load {
        path: config.model.clone(),
        reason: format!(
            "{e} (architecture `{}`; see the llama.cpp log with RUST_LOG=llama_cpp_2=info)",
            header.architecture().unwrap_or("?")
        ),
    })?;
    Ok((model, header, estimate))
}

/// The context window for `config`: as configured, or the model's, capped at 4096.
fn context_size(header: &GgufHeader, config: &EngineConfig) -> u32 {
    if config.n_ctx != 0 {
        return config.n_ctx;
    }
    header.context_length().unwrap_or(4096).clamp(1, 4096) as u32
}

fn memory_estimate(header: &GgufHeader, config: &EngineConfig) -> MemoryEstimate {
    let n_ctx = u64::from(context_size(header, config));
    memory::estimate(header, n_ctx, u64::from(config.chunk).min(n_ctx), config.kv_type, config.prefix_cache as u64)
}

fn kv_cache_type(kv: KvType) -> KvCacheType {
    match kv {
        KvType::F16 => KvCacheType::F16,
        KvType::Q8_0 => KvCacheType::Q8_0,
        KvType::Q4_0 => KvCacheType::Q4_0,
    }
}

/// A tokenized prompt and where its shared prefix ends.
struct Tokens {
    tokens: Vec<LlamaToken>,
    ids: Vec<i32>,
    /// Tokens of the fixed prefix (system prompt, few-shot examples), if the prompt has one.
    boundary: Option<usize>,
    /// Chat rendered completion-style: the next `User:` turn ends the answer.
    completion_chat: bool,
}

struct Worker<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    renderer: Renderer,
    /// Control-token spellings neutralised in chat message content.
    specials: Specials,
    hook: &'m mut dyn StepHook,
    shared: Arc<Shared>,
    chunk: usize,
    info: ModelInfo,
    /// The token ids whose KV state is in sequence 0 right now, in position order.
    live: Vec<i32>,
    snapshots: Snapshots<SeqState>,
    /// Where prefix states are persisted across restarts, if configured (one folder per model
    /// and context shape: a state only fits the context it came from).
    persist: Option<PathBuf>,
    /// Reused for every token's bytes: nothing in the token loop allocates per token except
    /// the text sent to the caller.
    piece: Vec<u8>,
    /// The context embeddings are computed in, made on the first [`Task::Embed`] request.
    embedder: Option<Embedder<'m>>,
    /// What the embeddings context is made with (threads, KV type).
    context_params: LlamaContextParams,
    /// Test-only: panic on a prompt containing this.
    inject_panic: Option<String>,
    /// Bytes of persisted states kept on disk.
    prefix_disk: u64,
    /// The running request's deadline, and when it was queued (what a deadline error reports).
    deadline: Option<(Instant, Instant)>,
}

/// A context with embeddings on: llama.cpp then outputs every token of every batch, which
/// the generation context must not pay for, so embeddings get their own small context.
struct Embedder<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
}

/// Tokens per decode call in the embeddings context. Every token is an output there, so the
/// logits buffer is this many rows of the vocabulary (32 × 262k floats for Gemma 3: 34 MB).
const EMBED_BATCH: usize = 32;

impl<'m> Worker<'m> {
    fn new(
        model: &'m LlamaModel,
        header: &GgufHeader,
        memory: MemoryEstimate,
        config: &EngineConfig,
        hook: &'m mut dyn StepHook,
        shared: Arc<Shared>,
    ) -> Result<Self, EngineError> {
        let n_ctx_train = model.n_ctx_train();
        let n_ctx = context_size(header, config);
        let chunk = config.chunk.min(n_ctx);
        let mut params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(chunk)
            .with_n_ubatch(chunk)
            .with_n_seq_max(1)
            .with_n_threads(config.threads as i32)
            .with_n_threads_batch(config.threads_batch as i32)
            .with_type_k(kv_cache_type(config.kv_type))
            .with_type_v(kv_cache_type(config.kv_type));
        if config.kv_type != KvType::F16 {
            // llama.cpp keeps a quantized V cache only with flash attention.
            params = params.with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED);
        }
        let ctx = model.new_context(backend()?, params.clone()).map_err(|e| EngineError::Context(e.to_string()))?;
        let renderer = Renderer::resolve(model, &config.template)?;
        let info = ModelInfo {
            path: config.model.clone(),
            architecture: header.architecture().unwrap_or("unknown").to_string(),
            quantization: header.quantization(),
            parameters: model.n_params(),
            file_size: header.file_size,
            n_ctx_train,
            n_ctx: ctx.n_ctx(),
            n_vocab: model.n_vocab(),
            n_embd: model.n_embd(),
            template: renderer.used(),
            threads: config.threads,
            threads_batch: config.threads_batch,
            chunk,
            kv_type: config.kv_type,
            prefix_cache: config.prefix_cache,
            memory,
        };
        let persist = match &config.prefix_dir {
            Some(root) if config.prefix_cache > 0 => {
                let dir = std::fs::create_dir_all(root)
                    .and_then(|()| crate::persist::model_sha256(root, &config.model))
                    .map(|sha| root.join(context_key(&info, &sha)))
                    .and_then(|dir| crate::persist::prepare(&dir).map(|()| dir));
                match dir {
                    Ok(dir) => Some(dir),
                    Err(e) => {
                        tracing::warn!(dir = %root.display(), error = %e, "cannot use the prefix directory; prefixes are kept in memory only");
                        None
                    }
                }
            }
            _ => None,
        };
        tracing::info!(
            model = %info.path.display(), arch = %info.architecture, quant = %info.quantization,
            n_ctx = info.n_ctx, threads = info.threads, threads_batch = info.threads_batch,
            chunk = info.chunk, template = %info.template, prefix_cache_bytes = info.prefix_cache, "model loaded"
        );
        Ok(Worker {
            model,
            ctx,
            batch: LlamaBatch::new(chunk as usize, 1),
            renderer,
            specials: Specials::from_model(model),
            hook,
            shared,
            chunk: chunk as usize,
            info,
            live: Vec::new(),
            snapshots: Snapshots::new(config.prefix_cache),
            persist,
            piece: Vec::with_capacity(64),
            embedder: None,
            context_params: params,
            inject_panic: config.inject_panic.clone(),
            deadline: None,
            prefix_disk: config.prefix_disk,
        })
    }

    /// True when the request should stop: its caller left, or the engine is shutting down.
    fn gone(&self, reply: &UnboundedSender<Event>) -> bool {
        reply.is_closed() || self.shared.cancel.load(Ordering::Relaxed)
    }

    /// The running request's deadline has passed: the error that stops its prompt evaluation.
    fn overdue(&self) -> Option<EngineError> {
        overdue(self.deadline)
    }

    fn serve(&mut self, job: Job) {
        let Job { request, reply, enqueued } = job;
        if self.gone(&reply) {
            return; // the caller left while the request waited in the queue
        }
        let queued = enqueued.elapsed();
        if request.deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::info!(queued_ms = queued.as_millis() as u64, "deadline passed in the queue; not evaluated");
            let _ = reply.send(Event::Failed(EngineError::DeadlineExceeded { waited: queued }));
            return;
        }
        let _ = reply.send(Event::Started);
        self.deadline = request.deadline.map(|d| (d, enqueued));
        let span = tracing::info_span!("request", priority = %request.priority);
        let _enter = span.enter();
        self.shared.busy.store(true, Ordering::Relaxed);
        let result = self.run_request(&request, &reply, queued);
        self.shared.busy.store(false, Ordering::Relaxed);
        match result {
            Ok(stats) => {
                tracing::info!(
                    prompt_tokens = stats.prompt_tokens, cached_tokens = stats.cached_tokens,
                    generated_tokens = stats.generated_tokens, queued_ms = stats.queued.as_millis() as u64,
                    prefill_ms = stats.prefill.as_millis() as u64, decode_ms = stats.decode.as_millis() as u64,
                    cpu_ms = stats.cpu.as_millis() as u64, finish = ?stats.finish, "request done"
                );
                let _ = reply.send(Event::Done(stats));
            }
            Err(e) => {
                // Whatever the KV cache holds now is not trusted for reuse.
                self.ctx.clear_kv_cache();
                self.live.clear();
                tracing::warn!(error = %e, "request failed");
                let _ = reply.send(Event::Failed(e));
            }
        }
    }

    fn tokenize(&self, request: &Request) -> Result<Tokens, EngineError> {
        let vocab = self.model.vocab();
        let answer = request.answer_prefix.as_deref().unwrap_or("");
        let (tokens, prefix, completion_chat) = match &request.prompt {
            Prompt::Chat(messages) => {
                let mut text = self.renderer.render(self.model, &self.specials, messages)?;
                text.push_str(answer);
                let prefix = self.chat_prefix(messages, request.fixed_prefix).filter(|p| text.starts_with(p.as_str()));
                let tokens = vocab.tokenize(text.as_bytes(), true, true);
                let prefix = prefix.map(|p| vocab.tokenize(p.as_bytes(), true, true));
                (tokens, prefix, matches!(self.renderer, Renderer::Completion))
            }
            Prompt::Text(text) => {
                let full = format!("{text}{answer}");
                let tokens = vocab.tokenize(full.as_bytes(), true, false);
                let prefix = request.fixed_prefix.map(|n| vocab.tokenize(&text.as_bytes()[..n], true, false));
                (tokens, prefix, false)
            }
        };
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt has no tokens".into()));
        }
        if tokens.len() >= self.info.n_ctx as usize {
            return Err(EngineError::PromptTooLong { tokens: tokens.len(), n_ctx: self.info.n_ctx });
        }
        let ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        // Tokenizers may merge across the boundary: the shared part is what both agree on.
        let boundary = prefix.map(|p| common_prefix(&ids, &p.iter().map(|t| t.0).collect::<Vec<_>>()));
        Ok(Tokens { tokens, ids, boundary, completion_chat })
    }

    /// The rendered text of a chat's shared leading messages (`fixed`, else its system
    /// messages), up to where the next message's content begins: the part every request with
    /// the same leading messages shares.
    fn chat_prefix(&self, messages: &[Message], fixed: Option<usize>) -> Option<String> {
        let systems = fixed.unwrap_or_else(|| messages.iter().take_while(|m| m.role == "system").count());
        if systems == 0 || systems >= messages.len() {
            return None;
        }
        const MARK: &str = "\u{1}sotto-prefix-end\u{1}";
        let mut probe = messages[..systems].to_vec();
        probe.push(Message::new(&messages[systems].role, MARK));
        let text = self.renderer.render(self.model, &self.specials, &probe).ok()?;
        text.find(MARK).map(|at| text[..at].to_string())
    }

    fn run_request(
        &mut self,
        request: &Request,
        reply: &UnboundedSender<Event>,
        queued: Duration,
    ) -> Result<Stats, EngineError> {
        request.validate()?;
        if let Some(trigger) = &self.inject_panic {
            let text = match &request.prompt {
                Prompt::Text(t) => t.contains(trigger.as_str()),
                Prompt::Chat(m) => m.iter().any(|m| m.content.contains(trigger.as_str())),
            };
            assert!(!text, "injected panic (EngineConfig::inject_panic)");
        }
        if request.task == Task::Embed {
            return self.embed(request, reply, queued);
        }
        let cpu_start = process_cpu_time();
        let prompt = self.tokenize(request)?;
        let mut stats = Stats {
            prompt_tokens: prompt.tokens.len(),
            cached_tokens: 0,
            queued,
            generated_tokens: 0,
            prefill: Duration::ZERO,
            decode: Duration::ZERO,
            cpu: Duration::ZERO,
            finish: FinishReason::Cancelled,
        };
        // Built before any evaluation, so a grammar llama.cpp rejects costs nothing.
        let grammar = match &request.grammar {
            Some(Grammar::Gbnf(g)) => Some(
                LlamaSampler::grammar(self.model, g, "root")
                    .map_err(|e| EngineError::InvalidRequest(format!("grammar: {e}")))?,
            ),
            None => None,
        };
        self.hook.on_request_start(request.priority);
        let started = Instant::now();
        let from = self.restore(&prompt);
        stats.cached_tokens = from;
        let Some(last) = self.prefill(&prompt, from, reply)? else {
            stats.prefill = started.elapsed();
            stats.cpu = process_cpu_time() - cpu_start;
            return Ok(stats);
        };
        stats.prefill = started.elapsed();
        let decode_start = Instant::now();
        match &request.task {
            Task::Generate => {
                let mut stops = request.stop.clone();
                if prompt.completion_chat {
                    // A base model continues the dialogue on its own; the next turn ends the answer.
                    stops.push("\nUser:".into());
                }
                let budget = (request.max_tokens as usize).min(self.info.n_ctx as usize - prompt.tokens.len());
                let (generated, finish) = self.decode(request.sampling, grammar, stops, budget, last, reply)?;
                stats.generated_tokens = generated;
                stats.finish = finish;
            }
            Task::Score(continuations) => {
                let scores = self.score(last, continuations)?;
                let _ = reply.send(Event::Scores(scores));
                stats.finish = FinishReason::Stop;
            }
            Task::Embed => unreachable!("answered before the prefill"),
        }
        stats.decode = decode_start.elapsed();
        stats.cpu = process_cpu_time() - cpu_start;
        Ok(stats)
    }

    /// A [`Task::Embed`] request: the prompt's first [`EMBED_TOKENS`] tokens, evaluated in
    /// paced chunks in the embeddings context; the mean of their last hidden states (the
    /// beginning-of-sequence token left out: it is the same for every prompt), L2-normalised.
    fn embed(
        &mut self,
        request: &Request,
        reply: &UnboundedSender<Event>,
        queued: Duration,
    ) -> Result<Stats, EngineError> {
        let cpu_start = process_cpu_time();
        let Prompt::Text(text) = &request.prompt else {
            return Err(EngineError::InvalidRequest("an embedding is of plain text, not a chat".into()));
        };
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        tokens.truncate(EMBED_TOKENS);
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt has no tokens".into()));
        }
        let skip = usize::from(tokens.len() > 1 && tokens[0] == self.model.vocab().bos());
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
        self.hook.on_request_start(request.priority);
        let started = Instant::now();
        let chunk_cap = self.chunk.min(EMBED_BATCH);
        let e = self.embedder.as_mut().expect("made above");
        e.ctx.clear_kv_cache();
        let mut sum = vec![0f64; self.info.n_embd.max(0) as usize];
        let mut start = 0;
        while start < tokens.len() {
            if reply.is_closed() || self.shared.cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Stopped);
            }
            if let Some(late) = overdue(self.deadline) {
                return Err(late);
            }
            let size = self.hook.next_chunk(Phase::Outputs, chunk_cap).clamp(1, chunk_cap);
            let chunk = &tokens[start..(start + size).min(tokens.len())];
            e.batch.clear();
            for (j, &token) in chunk.iter().enumerate() {
                e.batch.add(token, (start + j) as i32, &[0], true).map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            e.ctx.decode(&mut e.batch).map_err(|e| EngineError::Decode(e.to_string()))?;
            for j in 0..chunk.len() {
                if start + j < skip {
                    continue;
                }
                let row = e.ctx.embeddings_ith(j as i32).map_err(|e| EngineError::Decode(e.to_string()))?;
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += f64::from(*v);
                }
            }
            start += chunk.len();
            self.hook.after_step(Phase::Outputs, chunk.len());
        }
        let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
        let embedding: Vec<f32> = sum.iter().map(|v| if norm > 0.0 { (v / norm) as f32 } else { 0.0 }).collect();
        let _ = reply.send(Event::Embedding(embedding));
        Ok(Stats {
            prompt_tokens: tokens.len(),
            cached_tokens: 0,
            queued,
            generated_tokens: 0,
            prefill: started.elapsed(),
            decode: Duration::ZERO,
            cpu: process_cpu_time() - cpu_start,
            finish: FinishReason::Stop,
        })
    }

    /// Put the KV cache in the best state to start `prompt` from; returns how many of its
    /// tokens are already evaluated.
    fn restore(&mut self, prompt: &Tokens) -> usize {
        if !self.snapshots.enabled() {
            self.ctx.clear_kv_cache();
            self.live.clear();
            return 0;
        }
        if let Some(b) = prompt.boundary {
            self.load_persisted(&prompt.ids, b);
        }
        match self.snapshots.plan(&self.live, &prompt.ids) {
            Start::Scratch => {
                self.ctx.clear_kv_cache();
                self.live.clear();
                0
            }
            Start::Live(n) => {
                if self.ctx.kv_cache_seq_rm(0, Some(n as u32), None).is_err() {
                    // Some caches (recurrent models) cannot drop a tail: start over.
                    self.ctx.clear_kv_cache();
                    self.live.clear();
                    return 0;
                }
                self.live.truncate(n);
                n
            }
            Start::Snapshot { index, n } => {
                self.ctx.clear_kv_cache();
                self.live.clear();
                match self.ctx.state_seq_set(self.snapshots.get(index), 0) {
                    Ok(()) => {
                        self.live.extend_from_slice(&prompt.ids[..n]);
                        n
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "restoring a prefix snapshot failed; evaluating from scratch");
                        self.ctx.clear_kv_cache();
                        0
                    }
                }
            }
        }
    }

    /// If the prefix `ids[..boundary]` is neither in memory nor live but persisted on disk,
    /// load it into the live cache and keep it in memory.
    fn load_persisted(&mut self, ids: &[i32], boundary: usize) {
        let Some(dir) = &self.persist else { return };
        let prefix = &ids[..boundary];
        if boundary < MIN_SNAPSHOT_TOKENS
            || boundary >= ids.len()
            || self.snapshots.contains(prefix)
            || common_prefix(&self.live, ids) >= boundary
        {
            return;
        }
        let path = dir.join(prefix_file_name(prefix));
        if !path.exists() {
            return;
        }
        let started = Instant::now();
        self.ctx.clear_kv_cache();
        self.live.clear();
        match self.ctx.state_seq_load_file(&path, 0, boundary + 1) {
            Ok((tokens, _)) if tokens.iter().map(|t| t.0).eq(prefix.iter().copied()) => {
                crate::persist::touch(&path);
                self.live.extend_from_slice(prefix);
                self.keep_snapshot(prefix, false);
                tracing::debug!(
                    tokens = boundary,
                    ms = started.elapsed().as_millis() as u64,
                    "prefix loaded from disk"
                );
            }
            Ok(_) => {
                self.ctx.clear_kv_cache();
                tracing::warn!(path = %path.display(), "persisted prefix holds other tokens; ignored");
            }
            Err(e) => {
                self.ctx.clear_kv_cache();
                tracing::warn!(path = %path.display(), error = %e, "cannot load a persisted prefix; ignored");
            }
        }
    }

    /// Snapshot sequence 0, which holds exactly `prefix`, into the LRU (and to disk).
    fn keep_snapshot(&mut self, prefix: &[i32], persist: bool) {
        let started = Instant::now();
        let state = match self.ctx.state_seq_get(0, LlamaStateSeqFlags::empty()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot snapshot the prefix");
                return;
            }
        };
        let bytes = state.byte_len();
        if !self.snapshots.insert(prefix.to_vec(), state, bytes) {
            return;
        }
        self.shared.prefix_bytes.store(self.snapshots.bytes() as u64, Ordering::Relaxed);
        self.shared.prefix_entries.store(self.snapshots.len() as u64, Ordering::Relaxed);
        tracing::debug!(
            tokens = prefix.len(),
            bytes,
            us = started.elapsed().as_micros() as u64,
            "prefix snapshot kept"
        );
        if let (true, Some(dir)) = (persist, &self.persist) {
            let path = dir.join(prefix_file_name(prefix));
            let tmp = path.with_extension("partial");
            let tokens: Vec<LlamaToken> = prefix.iter().map(|&t| LlamaToken(t)).collect();
            let saved = self.ctx.state_seq_save_file(&tmp, 0, &tokens).map_err(|e| e.to_string()).and_then(|_| {
                crate::persist::private_file(&tmp);
                std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
            });
            match saved {
                Ok(()) => {
                    let removed = crate::persist::evict(dir, self.prefix_disk);
                    if removed > 0 {
                        tracing::debug!(bytes = removed, "least recently used prefix states removed from disk");
                    }
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(path = %path.display(), error = %e, "cannot persist the prefix");
                }
            }
        }
    }

    /// Evaluate `prompt` from token `from` on, one chunk per `decode` call, pacing between
    /// chunks; the hook sizes each chunk (at most the configured one). A chunk never straddles
    /// the fixed-prefix boundary, so the prefix's state can be kept the moment it is complete.
    /// Returns the batch index of the last token's logits, or `None` if the caller went away.
    fn prefill(
        &mut self,
        prompt: &Tokens,
        from: usize,
        reply: &UnboundedSender<Event>,
    ) -> Result<Option<i32>, EngineError> {
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
            if self.gone(reply) {
                return Ok(None);
            }
            if let Some(late) = self.overdue() {
                return Err(late);
            }
            let mut size = self.hook.next_chunk(Phase::Prefill, self.chunk).clamp(1, self.chunk);
            if let Some(b) = snapshot_at.filter(|&b| start < b) {
                size = size.min(b - start);
            }
            let chunk = &tokens[start..(start + size).min(tokens.len())];
            self.batch.clear();
            for (j, &token) in chunk.iter().enumerate() {
                let pos = start + j;
                self.batch
                    .add(token, pos as i32, &[0], pos == tokens.len() - 1)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            self.ctx.decode(&mut self.batch).map_err(|e| EngineError::Decode(e.to_string()))?;
            self.live.extend_from_slice(&prompt.ids[start..start + chunk.len()]);
            last = self.batch.n_tokens() - 1;
            start += chunk.len();
            self.hook.after_step(Phase::Prefill, chunk.len());
            if snapshot_at == Some(start) {
                self.keep_snapshot(&prompt.ids[..start], true);
            }
        }
        Ok(Some(last))
    }

    /// Generate up to `budget` tokens. Returns (tokens generated, why it ended).
    fn decode(
        &mut self,
        sampling: Sampling,
        mut grammar: Option<LlamaSampler>,
        stops: Vec<String>,
        budget: usize,
        mut logits_at: i32,
        reply: &UnboundedSender<Event>,
    ) -> Result<(usize, FinishReason), EngineError> {
        let mut sampler = sampler_for(sampling);
        let mut utf8 = Utf8Stream::default();
        let mut stop = StopMatcher::new(stops);
        let mut generated = 0;
        let send = |text: String| {
            if !text.is_empty() {
                let _ = reply.send(Event::Text(text));
            }
        };
        let finish = loop {
            if self.gone(reply) {
                return Ok((generated, FinishReason::Cancelled));
            }
            if generated == budget {
                break FinishReason::Length;
            }
            if self.overdue().is_some() {
                break FinishReason::Deadline;
            }
            let token = self.pick(&mut sampler, grammar.as_mut(), logits_at);
            if self.model.vocab().is_eog(token) {
                break FinishReason::Stop;
            }
            if let Some(g) = grammar.as_mut() {
                g.accept(token);
            }
            generated += 1;
            self.piece.clear();
            self.model.vocab().token_to_piece_into(token, &mut self.piece, false, None);
            let (text, hit) = stop.push(&utf8.push(&self.piece));
            send(text);
            if hit {
                return Ok((generated, FinishReason::Stop));
            }
            if generated == budget {
                break FinishReason::Length; // no need to evaluate a token nobody will extend
            }
            let pos = self.live.len();
            self.batch.clear();
            self.batch.add(token, pos as i32, &[0], true).map_err(|e| EngineError::Decode(e.to_string()))?;
            self.ctx.decode(&mut self.batch).map_err(|e| EngineError::Decode(e.to_string()))?;
            self.live.push(token.0);
            logits_at = 0;
            self.hook.after_step(Phase::Decode, 1);
        };
        let (tail, hit) = stop.push(&utf8.finish());
        send(tail);
        if !hit {
            send(stop.finish());
        }
        Ok((generated, finish))
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
    /// dropped from the KV cache again, so the next one starts from the prompt.
    fn score(&mut self, last: i32, continuations: &[String]) -> Result<Vec<f64>, EngineError> {
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
                if let Some(late) = self.overdue() {
                    return Err(late);
                }
                let size = self.hook.next_chunk(Phase::Outputs, self.chunk).clamp(1, self.chunk);
                let chunk = &inputs[start..(start + size).min(inputs.len())];
                self.batch.clear();
                for (j, &t) in chunk.iter().enumerate() {
                    let pos = (base + start + j) as i32;
                    self.batch.add(t, pos, &[0], true).map_err(|e| EngineError::Decode(e.to_string()))?;
                }
                self.ctx.decode(&mut self.batch).map_err(|e| EngineError::Decode(e.to_string()))?;
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
        Ok(scores)
    }
}

/// `deadline` (with when its request was queued) has passed: the error that stops the request.
fn overdue(deadline: Option<(Instant, Instant)>) -> Option<EngineError> {
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

/// A folder name that changes whenever a saved state would no longer fit: another model file
/// (by content), context size or KV type.
fn context_key(info: &ModelInfo, sha256: &str) -> String {
    format!("{}-ctx{}-{:?}", &sha256[..sha256.len().min(16)], info.n_ctx, info.kv_type).to_lowercase()
}

/// The file a prefix's state is persisted in: a 64-bit FNV-1a hash of its token ids (the file
/// also holds the ids, which are compared on load).
fn prefix_file_name(ids: &[i32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ids.iter().flat_map(|t| t.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("prefix-{h:016x}-{}.state", ids.len())
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
