//! Label scores of every suite event under several prompt designs, as JSON lines: the raw
//! material for choosing the fast path's design offline.
//! `cargo run --release -p sotto-analyze --example probe -- MODEL.gguf THREADS > out.jsonl`

use std::path::PathBuf;
use std::sync::Arc;

use sotto_analyze::{Analyzer, Options};
use sotto_engine::{Engine, EngineConfig, NoPacing, Prompt, Request};

const CONDITIONS: [&str; 3] = [
    "The following process launch was recorded on a computer during a cyberattack. It is attacker activity: \
     malware, a download cradle, credential theft, a reverse shell, persistence or ransomware preparation.\n\n",
    "The following process launch was recorded on a computer and flagged for review. It is reconnaissance or an \
     administration tool used in an unusual way.\n\n",
    "The following process launch was recorded on a computer during normal use. It is routine operating system, \
     software update, browser, developer or administrator activity.\n\n",
];

const ZERO: &str = "You triage endpoint security events. Each event is one process launch. Decide whether it is \
malicious (attacker tradecraft), suspicious (dual-use, needs review) or benign (normal activity).\n\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: u32 = args[2].parse().unwrap();
    let config = EngineConfig { threads, threads_batch: threads, ..EngineConfig::new(PathBuf::from(&args[1])) };
    let engine = Arc::new(Engine::start(config, Box::new(NoPacing)).unwrap());
    let analyzer = Analyzer::new(engine.clone(), Options::default());
    let suite =
        sotto_events::eval::load_suite(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/events.jsonl"))
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let labels: Vec<String> = vec![" malicious".into(), " suspicious".into(), " benign".into()];
    for item in &suite {
        let event = item.parse().unwrap();
        let block = sotto_analyze::event_block(&event);
        let (fewshot, base) = rt.block_on(analyzer.raw_label_scores(&event)).unwrap();
        let zero_text = format!("{ZERO}{block}");
        let zero = Request {
            answer_prefix: Some("Verdict:".into()),
            fixed_prefix: Some(ZERO.len()),
            ..Request::score(Prompt::Text(zero_text), labels.clone())
        };
        let (zero, _) = engine.score_blocking(zero).unwrap();
        let channel: Vec<f64> = CONDITIONS
            .iter()
            .map(|c| {
                let r = Request {
                    fixed_prefix: Some(c.len()),
                    ..Request::score(Prompt::Text(c.trim_end().to_string() + "\n\n"), vec![block.clone()])
                };
                engine.score_blocking(r).unwrap().0[0]
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"id": item.id, "label": item.label, "os": item.os, "scores": fewshot, "base": base,
                "zero": zero, "channel": channel})
        );
    }
}
