//! The handle callers hold: start the engine thread, submit requests, shut down.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sotto_models::memory::{KvType, MemoryEstimate};
use tokio::sync::mpsc::unbounded_channel;

use crate::Tokenizer;
use crate::queue::Job;
use crate::worker::{self, Shared};
use crate::{EngineError, Reply, Request, Stats, StepHook, TemplateChoice, TemplateUsed};

/// How to load and run a model.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Path to any GGUF file.
    pub model: PathBuf,
    /// Context window in tokens; 0 picks the model's training length, capped at 4096.
    pub n_ctx: u32,
    /// Threads for generation (llama.cpp `n_threads`).
    pub threads: u32,
    /// Threads for prompt processing (llama.cpp `n_threads_batch`): prefill is what spikes.
    pub threads_batch: u32,
    /// Prompt tokens per `decode` call; control returns to sotto between chunks.
    pub chunk: u32,
    /// Requests that may wait for the engine; one more is refused with `QueueFull`.
    pub queue: usize,
    pub template: TemplateChoice,
    /// Element type of the KV cache; quantized types need less memory.
    pub kv_type: KvType,
    /// Refuse to load when the estimated memory exceeds this many bytes.
    pub mem_budget: Option<u64>,
    /// Bytes of memory for saved prefix states (system prompt, few-shot examples); 0 turns
    /// the prefix cache off entirely, including reuse of the previous request's prefix.
    pub prefix_cache: usize,
    /// Where to persist prefix states so that a restart does not pay for them again.
    pub prefix_dir: Option<PathBuf>,
    /// Bytes of persisted prefix states kept on disk for one model and context shape; the
    /// least recently used go first.
    pub prefix_disk: u64,
    /// Unload the model after this long without requests; the next request loads it again.
    pub keep_alive: Option<Duration>,
    /// Test-only fault injection: a request whose prompt contains this text makes the engine
    /// thread panic (to test recovery). Never set outside tests.
    #[doc(hidden)]
    pub inject_panic: Option<String>,
}

impl EngineConfig {
    /// Defaults for `model`: one thread per phase (the peak budget on a 2-core machine),
    /// Chunks of up to 128 tokens, a queue of 8.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        EngineConfig {
            model: model.into(),
            n_ctx: 0,
            threads: 1,
            threads_batch: 1,
            chunk: 128,
            queue: 8,
            template: TemplateChoice::Auto,
            kv_type: KvType::F16,
            mem_budget: None,
            prefix_cache: 64 << 20,
            prefix_dir: None,
            prefix_disk: 256 << 20,
            keep_alive: None,
            inject_panic: None,
        }
    }

    fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::Config(m.into()));
        if self.threads == 0 || self.threads_batch == 0 {
            return bad("threads and threads_batch must be at least 1");
        }
        if self.threads > 512 || self.threads_batch > 512 {
            return bad("threads and threads_batch must be at most 512");
        }
        if self.chunk == 0 {
            return bad("chunk must be at least 1 token");
        }
        if self.queue == 0 {
            return bad("queue must hold at least 1 request");
        }
        if self.keep_alive.is_some_and(|d| d.is_zero()) {
            return bad("keep_alive must be longer than zero (leave it unset to keep the model loaded)");
        }
        Ok(())
    }
}

/// Facts about the loaded model and how it runs.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub architecture: String,
    pub quantization: String,
    pub parameters: u64,
    pub file_size: u64,
    pub n_ctx_train: u32,
    pub n_ctx: u32,
    pub n_vocab: i32,
    /// Width of the model's hidden state: the length of an embedding.
    pub n_embd: i32,
    pub template: TemplateUsed,
    pub threads: u32,
    pub threads_batch: u32,
    pub chunk: u32,
    pub kv_type: KvType,
    /// Bytes reserved for prefix snapshots (0: the prefix cache is off).
    pub prefix_cache: usize,
    /// Memory estimated before loading (compare with the measured peak RSS).
    pub memory: MemoryEstimate,
}

/// What the engine is doing right now; cheap to read from any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStatus {
    /// Requests waiting in the queue.
    pub queued: usize,
    /// Capacity of the queue.
    pub capacity: usize,
    /// A request is being evaluated.
    pub busy: bool,
    /// The model is in memory (false while unloaded after `keep_alive`).
    pub loaded: bool,
    /// Loads so far: 1, plus one per reload after idling.
    pub loads: u64,
    /// The engine thread panicked and is reloading the model (or failed to): requests wait
    /// in the queue meanwhile, and readiness should say no.
    pub down: bool,
    /// Panics caught on the engine thread so far.
    pub panics: u64,
    /// Prefix snapshots held in memory, and their bytes.
    pub prefix_entries: u64,
    pub prefix_bytes: u64,
    /// Times a running request was set aside for a more urgent one, and how many are set
    /// aside now.
    pub preemptions: u64,
    pub parked: u64,
}

/// A running engine. Dropping it closes the queue, lets the current request finish, and joins
/// the thread.
pub struct Engine {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    info: ModelInfo,
    /// Loaded on the first count (only the rationale prompt needs it), not at start.
    tokenizer: std::sync::OnceLock<Option<Tokenizer>>,
    model: PathBuf,
}

impl Engine {
    /// Start the engine thread and wait until the model is loaded (or failed to load).
    pub fn start(config: EngineConfig, hook: Box<dyn StepHook>) -> Result<Self, EngineError> {
        config.validate()?;
        let model = config.model.clone();
        let shared = Arc::new(Shared::new(config.queue));
        let (ready_tx, ready_rx) = mpsc::channel();
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sotto-engine".into())
            .spawn(move || worker::run(config, hook, ready_tx, for_thread))
            .map_err(|e| EngineError::Context(format!("cannot spawn the engine thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(info)) => {
                Ok(Engine { shared, thread: Some(thread), info, tokenizer: std::sync::OnceLock::new(), model })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(EngineError::Stopped)
            }
        }
    }

    /// The loaded model and the settings it runs with.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Tokens in `text` for this model, counted on the calling thread (never waits for the
    /// engine); `None` when the vocabulary could not be loaded.
    pub fn count_tokens(&self, text: &str) -> Option<usize> {
        let tokenizer = self.tokenizer.get_or_init(|| {
            Tokenizer::load(&self.model)
                .inspect_err(|e| tracing::warn!(error = %e, "no tokenizer: prompt costs are bounded in bytes"))
                .ok()
        });
        tokenizer.as_ref().map(|t| t.count(text))
    }

    /// Queue depth, whether a request runs, whether the model is loaded. Never blocks on the
    /// engine thread (only on the queue's lock, which is never held during evaluation).
    pub fn status(&self) -> EngineStatus {
        let s = &self.shared;
        EngineStatus {
            queued: s.queue.len(),
            capacity: s.queue.capacity(),
            busy: s.busy.load(Ordering::Relaxed),
            loaded: s.loaded.load(Ordering::Acquire),
            loads: s.loads.load(Ordering::Relaxed),
            down: s.down.load(Ordering::Acquire),
            panics: s.panics.load(Ordering::Relaxed),
            prefix_entries: s.prefix_entries.load(Ordering::Relaxed),
            prefix_bytes: s.prefix_bytes.load(Ordering::Relaxed),
            preemptions: s.preemptions.load(Ordering::Relaxed),
            parked: s.parked.load(Ordering::Relaxed),
        }
    }

    /// Queue a request. Never blocks: a full queue is `QueueFull` (unless the request outranks
    /// a waiting one, which is then answered `QueueFull` instead). The answer arrives through
    /// the returned [`Reply`]; dropping it cancels the request.
    pub fn submit(&self, request: Request) -> Result<Reply, EngineError> {
        request.validate()?;
        let (reply, updates) = unbounded_channel();
        let enqueued = Instant::now();
        self.shared.queue.push(Job { request, reply, enqueued })?;
        Ok(Reply::new(updates, enqueued))
    }

    /// Submit and wait for the whole answer, on a thread that may block (the CLI, tests).
    pub fn generate_blocking(&self, request: Request) -> Result<(String, Stats), EngineError> {
        self.submit(request)?.collect_blocking().map(|(output, stats)| (output.text, stats))
    }

    /// Score continuations after a prompt, on a thread that may block.
    pub fn score_blocking(&self, request: Request) -> Result<(Vec<f64>, Stats), EngineError> {
        let (output, stats) = self.submit(request)?.collect_blocking()?;
        output.scores.map(|s| (s, stats)).ok_or(EngineError::Stopped)
    }

    /// The embedding of `text` (see [`crate::Task::Embed`]), on a thread that may block.
    pub fn embed_blocking(&self, request: Request) -> Result<(Vec<f32>, Stats), EngineError> {
        let (output, stats) = self.submit(request)?.collect_blocking()?;
        output.embedding.map(|e| (e, stats)).ok_or(EngineError::Stopped)
    }

    /// Stop accepting requests; those still waiting are answered [`EngineError::Stopped`]. The
    /// running one continues.
    pub fn close(&self) {
        self.shared.queue.close();
    }

    /// Stop the running request at its next step (it finishes as cancelled). For shutdown,
    /// after the grace period.
    pub fn cancel_running(&self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
