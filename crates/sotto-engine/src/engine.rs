//! The handle callers hold: start the engine thread, submit requests, shut down.

use std::path::PathBuf;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use sotto_models::memory::{KvType, MemoryEstimate};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::worker::{self, Job};
use crate::{EngineError, Event, Request, Stats, StepHook, TemplateChoice, TemplateUsed};

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
}

impl EngineConfig {
    /// Defaults for `model`: one thread per phase (the peak budget on a 2-core machine),
    /// 32-token chunks, a queue of 8.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        EngineConfig {
            model: model.into(),
            n_ctx: 0,
            threads: 1,
            threads_batch: 1,
            chunk: 32,
            queue: 8,
            template: TemplateChoice::Auto,
            kv_type: KvType::F16,
            mem_budget: None,
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
    pub template: TemplateUsed,
    pub threads: u32,
    pub threads_batch: u32,
    pub chunk: u32,
    pub kv_type: KvType,
    /// Memory estimated before loading (compare with the measured peak RSS).
    pub memory: MemoryEstimate,
}

/// A running engine. Dropping it closes the queue, lets the current request finish, and joins
/// the thread.
pub struct Engine {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    info: ModelInfo,
    queue: usize,
}

impl Engine {
    /// Start the engine thread and wait until the model is loaded (or failed to load).
    pub fn start(config: EngineConfig, hook: Box<dyn StepHook>) -> Result<Self, EngineError> {
        config.validate()?;
        let queue = config.queue;
        let (jobs_tx, jobs_rx) = mpsc::sync_channel(queue);
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sotto-engine".into())
            .spawn(move || worker::run(config, hook, ready_tx, jobs_rx))
            .map_err(|e| EngineError::Context(format!("cannot spawn the engine thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(info)) => Ok(Engine { jobs: Some(jobs_tx), thread: Some(thread), info, queue }),
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

    /// Queue a request. Never blocks: a full queue is `QueueFull`. Events arrive on the
    /// returned receiver; dropping it cancels the request.
    pub fn submit(&self, request: Request) -> Result<UnboundedReceiver<Event>, EngineError> {
        request.validate()?;
        let (reply, events) = unbounded_channel();
        let jobs = self.jobs.as_ref().ok_or(EngineError::Stopped)?;
        match jobs.try_send(Job { request, reply }) {
            Ok(()) => Ok(events),
            Err(TrySendError::Full(_)) => Err(EngineError::QueueFull(self.queue)),
            Err(TrySendError::Disconnected(_)) => Err(EngineError::Stopped),
        }
    }

    /// Submit and wait for the whole answer, on a thread that may block (the CLI, tests).
    pub fn generate_blocking(&self, request: Request) -> Result<(String, Stats), EngineError> {
        let mut events = self.submit(request)?;
        let mut text = String::new();
        while let Some(event) = events.blocking_recv() {
            match event {
                Event::Text(t) => text.push_str(&t),
                Event::Done(stats) => return Ok((text, stats)),
                Event::Failed(e) => return Err(e),
            }
        }
        Err(EngineError::Stopped)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
