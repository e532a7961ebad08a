//! The queue and its order: deadlines before and during a request, priorities, preemption
//! at a step boundary, close and cancel. Hooks hold the engine at a known step, so that a
//! request arrives at a known point of a running one, with no sleep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sotto_engine::{
    Engine, EngineConfig, EngineError, FinishReason, Phase, Priority, Prompt, Reply, Request, Stats, StepHook,
};

use crate::{chat, smollm, start};

#[test]
fn expired_deadlines_are_refused_and_critical_requests_jump_the_queue() {
    let engine = start(EngineConfig::new(smollm()));
    let long = Request::new(Prompt::Text("Once upon a time".into()), 60);
    let mut running = engine.submit(long.clone()).unwrap();
    running.started_blocking().expect("the long request starts");
    let late = Request { deadline: Some(Instant::now() + Duration::from_millis(1)), ..long.clone() };
    let mut late = engine.submit(late).unwrap();
    let normal = engine.submit(Request::new(Prompt::Text("Hello".into()), 2)).unwrap();
    let critical =
        engine.submit(Request { priority: Priority::Critical, ..Request::new(Prompt::Text("Hi".into()), 2) }).unwrap();
    match late.started_blocking() {
        Err(EngineError::DeadlineExceeded { waited }) => assert!(waited > Duration::from_millis(1)),
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    let (_, critical) = finish(critical);
    let (_, normal) = finish(normal);
    // The normal request was queued first, yet waited longer: the critical one went ahead.
    assert!(normal.queued > critical.queued, "normal {:?} vs critical {:?}", normal.queued, critical.queued);
    drop(running);
}

#[test]
fn close_refuses_new_work_and_cancel_stops_the_running_request() {
    let engine = start(EngineConfig::new(smollm()));
    let mut running = engine.submit(Request::new(Prompt::Text("Once upon a time".into()), 400)).unwrap();
    running.started_blocking().expect("the long request starts");
    let mut waiting = engine.submit(Request::new(Prompt::Text("Hello".into()), 2)).unwrap();
    engine.close();
    assert!(matches!(waiting.started_blocking(), Err(EngineError::Stopped)));
    assert!(matches!(engine.submit(Request::new(Prompt::Text("x".into()), 1)), Err(EngineError::Stopped)));
    engine.cancel_running();
    let (_, done) = finish(running);
    assert_eq!(done.finish, FinishReason::Cancelled);
    assert!(done.generated_tokens < 400);
}

/// Every step takes at least 30 ms, so that a deadline lands inside a request.
struct SlowSteps;

impl StepHook for SlowSteps {
    fn after_step(&mut self, _: Phase, _: usize) {
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn a_deadline_stops_a_running_request_at_the_next_step() {
    let config = EngineConfig { chunk: 8, ..EngineConfig::new(smollm()) };
    let engine = Engine::start(config, Box::new(SlowSteps)).unwrap();
    // Generation: at 30 ms a token, 1000 tokens cannot finish before a 300 ms deadline; the
    // request ends there with the text so far.
    let long = Request {
        deadline: Some(Instant::now() + Duration::from_millis(300)),
        ..Request::new(Prompt::Text("Once upon a time".into()), 1000)
    };
    let (text, stats) = engine.generate_blocking(long).unwrap();
    assert_eq!(stats.finish, FinishReason::Deadline, "{stats:?}");
    assert!(stats.generated_tokens < 1000 && !text.is_empty(), "{stats:?}: {text:?}");
    // Prompt evaluation: 8-token chunks of a prompt of hundreds of tokens take seconds; the
    // request fails at the first chunk after the deadline, naming the time since it was queued.
    let prompt = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    let late = Request {
        deadline: Some(Instant::now() + Duration::from_millis(300)),
        ..Request::new(Prompt::Text(prompt), 4)
    };
    match engine.generate_blocking(late) {
        Err(EngineError::DeadlineWhileRunning { after }) => assert!(after >= Duration::from_millis(300), "{after:?}"),
        other => panic!("expected DeadlineWhileRunning, got {other:?}"),
    }
    // The engine serves the next request as usual.
    let (_, next) = engine.generate_blocking(Request::new(Prompt::Text("Hello".into()), 2)).unwrap();
    assert_eq!(next.generated_tokens, 2);
}

/// Records which priority ran each step, and holds the engine once, at the `at`-th step of
/// `phase` of a background request, until the test has queued what it wants to queue there:
/// a request arrives at a known point of a running one, with no sleep.
/// The priority and phase of each step the engine ran, in order.
type Steps = Arc<std::sync::Mutex<Vec<(Priority, Phase)>>>;

struct Gate {
    phase: Phase,
    at: usize,
    seen: usize,
    priority: Priority,
    steps: Steps,
    reached: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

impl StepHook for Gate {
    fn on_request_start(&mut self, priority: Priority) {
        self.priority = priority;
    }

    fn after_step(&mut self, phase: Phase, _: usize) {
        let mut steps = self.steps.lock().unwrap();
        if steps.last() != Some(&(self.priority, phase)) {
            steps.push((self.priority, phase));
        }
        drop(steps);
        if self.priority == Priority::Background && phase == self.phase {
            self.seen += 1;
            if self.seen == self.at {
                self.reached.send(()).unwrap();
                self.go.recv_timeout(Duration::from_secs(120)).expect("the test lets the engine go");
            }
        }
    }
}

/// An engine whose gate holds a background request at its `at`-th step of `phase`.
fn gated(
    config: EngineConfig,
    phase: Phase,
    at: usize,
) -> (Engine, Steps, std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
    let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (reached_tx, reached) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let gate =
        Gate { phase, at, seen: 0, priority: Priority::Normal, steps: steps.clone(), reached: reached_tx, go: go_rx };
    (Engine::start(config, Box::new(gate)).expect("engine starts"), steps, reached, go)
}

/// The text and counters of a request that must succeed.
fn finish(reply: Reply) -> (String, Stats) {
    let (output, stats) = reply.collect_blocking().unwrap_or_else(|e| panic!("failed: {e}"));
    (output.text, stats)
}

/// Issue 11, item 6: a critical request preempts running background work at the next step;
/// the background request resumes from its KV state before anything else of its class, and
/// its greedy answer is the one it gives uninterrupted.
#[test]
fn a_critical_request_preempts_a_background_generation_which_resumes_unchanged() {
    let background = Request {
        priority: Priority::Background,
        ..Request::new(chat("List ten Windows processes an attacker abuses and say why for each."), 48)
    };
    let (expected, alone) = start(EngineConfig::new(smollm())).generate_blocking(background.clone()).unwrap();
    assert!(alone.generated_tokens > 12, "the baseline must run past the gate: {expected:?}");

    let (engine, steps, reached, go) = gated(EngineConfig::new(smollm()), Phase::Decode, 10);
    let running = engine.submit(background).unwrap();
    reached.recv_timeout(Duration::from_secs(120)).expect("the background request reaches the gate");
    // Queued while the background request is held mid-generation: one that outranks it and
    // one of its own class, which must wait until it has finished.
    let critical = engine
        .submit(Request { priority: Priority::Critical, ..Request::new(chat("Is `whoami` malicious?"), 8) })
        .unwrap();
    let same_class =
        engine.submit(Request { priority: Priority::Background, ..Request::embed("cmd.exe /c whoami") }).unwrap();
    go.send(()).unwrap();

    let (_, urgent) = finish(critical);
    let (text, resumed) = finish(running);
    finish(same_class);
    assert_eq!(text, expected, "the resumed generation differs from the uninterrupted one");
    assert_eq!(resumed.generated_tokens, alone.generated_tokens);
    assert_eq!(resumed.finish, alone.finish);
    assert!(resumed.parked > Duration::ZERO, "{resumed:?}");
    assert_eq!(urgent.parked, Duration::ZERO);
    let status = engine.status();
    assert_eq!((status.preemptions, status.parked), (1, 0));
    drop(engine);
    // The order steps ran in: the critical request between two parts of the background one,
    // and the embedding of the same class only after the background request had finished.
    let order: Vec<(Priority, Phase)> = steps.lock().unwrap().clone();
    let mut runs: Vec<String> = Vec::new();
    for (priority, phase) in order {
        let label = if priority == Priority::Critical { "critical".into() } else { format!("{priority} {phase:?}") };
        if runs.last() != Some(&label) {
            runs.push(label);
        }
    }
    assert_eq!(
        runs,
        ["background Prefill", "background Decode", "critical", "background Decode", "background Outputs"],
        "{runs:?}"
    );
}

/// Preemption between prompt chunks: the background request resumes its prompt where it
/// stopped, and neither a request of its own priority nor a lower one sets it aside.
#[test]
fn a_critical_request_preempts_a_background_prompt_between_chunks() {
    let prompt = chat(
        "A process `powershell.exe -nop -w hidden -enc SQBFAFgA` was started by `winword.exe` on a finance \
         workstation at 03:12. The user says they did not open any document. What happened?",
    );
    let background = Request { priority: Priority::Background, ..Request::new(prompt, 16) };
    let config = EngineConfig { chunk: 8, ..EngineConfig::new(smollm()) };
    let (expected, _) = start(config.clone()).generate_blocking(background.clone()).unwrap();

    let (engine, steps, reached, go) = gated(config, Phase::Prefill, 2);
    let running = engine.submit(background).unwrap();
    reached.recv_timeout(Duration::from_secs(120)).expect("the background request reaches the gate");
    let critical = engine
        .submit(Request { priority: Priority::Critical, ..Request::new(Prompt::Text("Hello".into()), 2) })
        .unwrap();
    go.send(()).unwrap();
    finish(critical);
    let (text, stats) = finish(running);
    assert_eq!(text, expected);
    assert!(stats.prompt_tokens > 16, "the prompt spans several chunks");
    assert_eq!(engine.status().preemptions, 1);
    let runs: Vec<(Priority, Phase)> = steps.lock().unwrap().clone();
    assert_eq!(
        runs,
        [
            (Priority::Background, Phase::Prefill),
            (Priority::Critical, Phase::Prefill),
            (Priority::Critical, Phase::Decode),
            (Priority::Background, Phase::Prefill),
            (Priority::Background, Phase::Decode),
        ],
        "{runs:?}"
    );

    // A normal request behind a normal one waits its turn: no preemption among equals.
    let first = engine.submit(Request::new(Prompt::Text("Once upon a time".into()), 24)).unwrap();
    let second = engine.submit(Request::new(Prompt::Text("Hello".into()), 2)).unwrap();
    finish(first);
    finish(second);
    assert_eq!(engine.status().preemptions, 1);
}
