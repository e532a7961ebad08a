//! The `sotto` binary end to end: real models for the happy path, and the messages a user sees
//! for bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

mod daemon;

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
            "threads and threads_batch must be at least 1",
        ),
    ];
    for (args, expected) in cases {
        let out = sotto(args, Some(empty.path()));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
}
