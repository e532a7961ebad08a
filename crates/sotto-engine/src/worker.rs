//! The engine thread: it owns the llama.cpp model and context for their whole life, takes one
//! request at a time from the queue, and streams the answer back on the request's own channel.
//!
//! Must not: block on anything but the queue between requests (idle costs nothing), spin,
//! or keep decoding for a caller whose reply channel has closed.

use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::KvCacheType;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use sotto_models::GgufHeader;
use sotto_models::memory::{self, KvType, MemoryEstimate};
use tokio::sync::mpsc::UnboundedSender;

use crate::template::Renderer;
use crate::text::{StopMatcher, Utf8Stream};
use crate::{
    EngineConfig, EngineError, Event, FinishReason, ModelInfo, Phase, Prompt, Request, Sampling, Stats, StepHook,
};
use sotto_governor::process_cpu_time;

/// A request with the channel its answer goes to.
pub(crate) struct Job {
    pub request: Request,
    pub reply: UnboundedSender<Event>,
}

/// llama.cpp's backend may be initialised once per process; every engine shares it.
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load { path: Default::default(), reason: format!("backend init: {e}") })
}

/// Thread body. Reports the load result on `ready`, then serves until every sender is gone.
pub(crate) fn run(
    config: EngineConfig,
    mut hook: Box<dyn StepHook>,
    ready: Sender<Result<ModelInfo, EngineError>>,
    jobs: Receiver<Job>,
) {
    hook.on_thread_start();
    let loaded = load(&config);
    let (model, header, memory) = match loaded {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut worker = match Worker::new(&model, &header, memory, &config, hook) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(worker.info.clone())).is_err() {
        return;
    }
    drop(ready);
    // Blocking receive: between requests this thread sleeps in the kernel.
    while let Ok(job) = jobs.recv() {
        worker.serve(job);
    }
    tracing::debug!("engine queue closed; engine thread exits");
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
    memory::estimate(header, n_ctx, u64::from(config.chunk).min(n_ctx), config.kv_type, 0)
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
    hook: Box<dyn StepHook>,
    chunk: usize,
    info: ModelInfo,
    /// Reused for every token's bytes: nothing in the token loop allocates per token except
    /// the text sent to the caller.
    piece: Vec<u8>,
}

impl<'m> Worker<'m> {
    fn new(
        model: &'m LlamaModel,
        header: &GgufHeader,
        memory: MemoryEstimate,
        config: &EngineConfig,
        hook: Box<dyn StepHook>,
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
        let ctx = model.new_context(backend()?, params).map_err(|e| EngineError::Context(e.to_string()))?;
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
            template: renderer.used(),
            threads: config.threads,
            threads_batch: config.threads_batch,
            chunk,
            kv_type: config.kv_type,
            memory,
        };
        tracing::info!(
            model = %info.path.display(), arch = %info.architecture, quant = %info.quantization,
            n_ctx = info.n_ctx, threads = info.threads, threads_batch = info.threads_batch,
            chunk = info.chunk, template = %info.template, "model loaded"
        );
        Ok(Worker {
            model,
            ctx,
            batch: LlamaBatch::new(chunk as usize, 1),
            renderer,
            hook,
            chunk: chunk as usize,
            info,
            piece: Vec::with_capacity(64),
        })
    }

    fn serve(&mut self, job: Job) {
        let Job { request, reply } = job;
        if reply.is_closed() {
            return; // the caller left while the request waited in the queue
        }
        let span = tracing::info_span!("request", prompt_tokens = tracing::field::Empty);
        let _enter = span.enter();
        match self.generate(&request, &reply) {
            Ok(stats) => {
                tracing::info!(
                    prompt_tokens = stats.prompt_tokens, generated_tokens = stats.generated_tokens,
                    prefill_ms = stats.prefill.as_millis() as u64, decode_ms = stats.decode.as_millis() as u64,
                    cpu_ms = stats.cpu.as_millis() as u64, finish = ?stats.finish, "request done"
                );
                let _ = reply.send(Event::Done(stats));
            }
            Err(e) => {
                tracing::warn!(error = %e, "request failed");
                let _ = reply.send(Event::Failed(e));
            }
        }
    }

    fn tokenize(&self, request: &Request) -> Result<(Vec<LlamaToken>, bool), EngineError> {
        let (text, parse_special, completion_chat) = match &request.prompt {
            Prompt::Chat(messages) => {
                (self.renderer.render(self.model, messages)?, true, matches!(self.renderer, Renderer::Completion))
            }
            Prompt::Text(text) => (text.clone(), false, false),
        };
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, parse_special);
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt has no tokens".into()));
        }
        if tokens.len() >= self.info.n_ctx as usize {
            return Err(EngineError::PromptTooLong { tokens: tokens.len(), n_ctx: self.info.n_ctx });
        }
        Ok((tokens, completion_chat))
    }

    fn generate(&mut self, request: &Request, reply: &UnboundedSender<Event>) -> Result<Stats, EngineError> {
        request.validate()?;
        let cpu_start = process_cpu_time();
        let (tokens, completion_chat) = self.tokenize(request)?;
        let mut stats = Stats {
            prompt_tokens: tokens.len(),
            generated_tokens: 0,
            prefill: Duration::ZERO,
            decode: Duration::ZERO,
            cpu: Duration::ZERO,
            finish: FinishReason::Cancelled,
        };
        self.hook.on_request_start();
        let started = Instant::now();
        let Some(last) = self.prefill(&tokens, reply)? else {
            stats.prefill = started.elapsed();
            stats.cpu = process_cpu_time() - cpu_start;
            return Ok(stats);
        };
        stats.prefill = started.elapsed();

        let mut stops = request.stop.clone();
        if completion_chat {
            // A base model continues the dialogue on its own; the next turn ends the answer.
            stops.push("\nUser:".into());
        }
        let budget = (request.max_tokens as usize).min(self.info.n_ctx as usize - tokens.len());
        let decode_start = Instant::now();
        let (generated, finish) = self.decode(request.sampling, stops, budget, tokens.len(), last, reply)?;
        stats.decode = decode_start.elapsed();
        stats.generated_tokens = generated;
        stats.finish = finish;
        stats.cpu = process_cpu_time() - cpu_start;
        Ok(stats)
    }

    /// Evaluate the prompt one chunk per `decode` call, pacing between chunks; the hook sizes
    /// each chunk (at most the configured one). Returns the batch index of the last token's
    /// logits, or `None` if the caller went away.
    fn prefill(&mut self, tokens: &[LlamaToken], reply: &UnboundedSender<Event>) -> Result<Option<i32>, EngineError> {
        self.ctx.clear_kv_cache();
        let mut last = 0;
        let mut start = 0;
        while start < tokens.len() {
            if reply.is_closed() {
                return Ok(None);
            }
            let size = self.hook.next_chunk(self.chunk).clamp(1, self.chunk);
            let chunk = &tokens[start..(start + size).min(tokens.len())];
            self.batch.clear();
            for (j, &token) in chunk.iter().enumerate() {
                let pos = start + j;
                self.batch
                    .add(token, pos as i32, &[0], pos == tokens.len() - 1)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            self.ctx.decode(&mut self.batch).map_err(|e| EngineError::Decode(e.to_string()))?;
            last = self.batch.n_tokens() - 1;
            start += chunk.len();
            self.hook.after_step(Phase::Prefill, chunk.len());
        }
        Ok(Some(last))
    }

    /// Generate up to `budget` tokens. Returns (tokens generated, why it ended).
    fn decode(
        &mut self,
        sampling: Sampling,
        stops: Vec<String>,
        budget: usize,
        mut pos: usize,
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
            if reply.is_closed() {
                return Ok((generated, FinishReason::Cancelled));
            }
            if generated == budget {
                break FinishReason::Length;
            }
            let token = sampler.sample(&self.ctx, logits_at);
            if self.model.vocab().is_eog(token) {
                break FinishReason::Stop;
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
            self.batch.clear();
            self.batch.add(token, pos as i32, &[0], true).map_err(|e| EngineError::Decode(e.to_string()))?;
            self.ctx.decode(&mut self.batch).map_err(|e| EngineError::Decode(e.to_string()))?;
            pos += 1;
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
