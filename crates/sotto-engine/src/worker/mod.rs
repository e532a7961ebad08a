//! The engine thread: it owns the llama.cpp model and context for their whole life, takes one
//! request at a time from the queue, and streams the answer back on the request's own channel.
//!
//! Code map: this module loads the model and runs the thread's loop (reload after idling or a
//! panic); [`run`] holds a request's lifecycle and preemption, [`prompt`] tokenisation,
//! [`cache`] the prefix cache, [`eval`] the paced evaluation loops.
//!
//! Must not: block on anything but the queue between requests (idle costs nothing), spin,
//! or keep decoding for a caller whose reply channel has closed.

mod cache;
mod eval;
mod prompt;
mod run;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::session::SeqState;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use sotto_models::GgufHeader;
use sotto_models::memory::{self, KvType, MemoryEstimate};

use crate::Priority;
use crate::prefix::Snapshots;
use crate::queue::{Pop, Queue};
use crate::template::{Renderer, Specials};
use crate::{EngineConfig, EngineError, ModelInfo, StepHook, ThreadPlan, Update};
use run::Parked;

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
    /// Requests set aside for a more urgent one so far, and how many are set aside now.
    pub preemptions: AtomicU64,
    pub parked: AtomicU64,
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
            preemptions: AtomicU64::new(0),
            parked: AtomicU64::new(0),
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
    hook.on_thread_start(ThreadPlan { prefill: config.threads_batch, decode: config.threads });
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
        // Blocking wait: between requests this thread sleeps in the kernel. With a request
        // set aside, only a job that outranks it is taken; otherwise it resumes.
        let mut panicked = false;
        let closed = loop {
            let next = match worker.parked_priority() {
                Some(priority) => match shared.queue.pop_above(priority) {
                    Some(job) => Pop::Job(job),
                    None => {
                        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.resume()));
                        if let Err(payload) = served {
                            recover(&shared, &mut worker, panic_message(payload.as_ref()), None);
                            panicked = true;
                            break false;
                        }
                        continue;
                    }
                },
                None => shared.queue.pop(config.keep_alive),
            };
            match next {
                Pop::Job(job) => {
                    let reply = job.reply.clone();
                    // A panic must not leave a daemon whose requests hang: fail this request,
                    // drop the model and context (their state is not trusted) and load again.
                    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.serve(*job)));
                    if let Err(payload) = served {
                        recover(&shared, &mut worker, panic_message(payload.as_ref()), Some(reply));
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

/// After a panic on the engine thread: fail the request it happened on (`reply`; a resumed
/// request was already taken off the worker) and every parked one, and mark the engine down
/// until the model is loaded again.
fn recover(
    shared: &Shared,
    worker: &mut Worker<'_>,
    what: String,
    reply: Option<tokio::sync::mpsc::UnboundedSender<Update>>,
) {
    tracing::error!(panic = %what, "the engine thread panicked; reloading the model");
    shared.busy.store(false, Ordering::Relaxed);
    shared.down.store(true, Ordering::Release);
    shared.panics.fetch_add(1, Ordering::Relaxed);
    if let Some(reply) = reply {
        let _ = reply.send(Update::Failed(EngineError::Panicked(what.clone())));
    }
    for parked in worker.take_parked() {
        parked.fail(EngineError::Panicked(what.clone()));
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
        let _ = job.reply.send(Update::Failed(EngineError::Load { path: PathBuf::new(), reason: e.to_string() }));
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
    /// The running request's priority: a waiting request above it preempts it.
    priority: Priority,
    /// Requests set aside for more urgent ones, resumed before anything of their class.
    parked: Vec<Parked>,
    /// The longest text one token stands for, found on the first long prompt.
    longest_piece: Option<usize>,
}

/// A context with embeddings on: llama.cpp then outputs every token of every batch, which
/// the generation context must not pay for, so embeddings get their own small context.
struct Embedder<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
}

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
                    .map(|sha| root.join(cache::context_key(&info, &sha)))
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
            priority: Priority::Normal,
            parked: Vec::new(),
            longest_piece: None,
        })
    }

    /// The running request's deadline has passed: the error that stops its prompt evaluation.
    fn overdue(&self) -> Option<EngineError> {
        eval::overdue(self.deadline)
    }
}
