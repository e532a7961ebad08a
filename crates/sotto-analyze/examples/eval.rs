//! Run the evaluation suite without the CLI's configuration layer:
//! `cargo run --release -p sotto-analyze --example eval -- MODEL.gguf THREADS DESIGNS OUT.json [LIMIT]`
//! where DESIGNS is `all` or a comma list of the names in `Candidate::NAMES`. Ungoverned
//! (NoPacing): for accuracy runs.

use std::path::PathBuf;
use std::sync::Arc;

use sotto_analyze::eval::Candidate;
use sotto_engine::{Engine, EngineConfig, NoPacing};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = PathBuf::from(&args[1]);
    let threads: u32 = args[2].parse().unwrap();
    let designs: Vec<Candidate> = if args[3] == "all" {
        Candidate::all()
    } else {
        args[3].split(',').map(|d| Candidate::parse(d).unwrap()).collect()
    };
    let out = PathBuf::from(&args[4]);
    let suite_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/events.jsonl");
    let mut suite = sotto_events::eval::load_suite(&suite_path).unwrap();
    // LIMIT: `N` keeps the first N events; `every:K` keeps every K-th (a spread sample).
    match args.get(5).map(String::as_str) {
        Some(s) if s.starts_with("every:") => {
            let k: usize = s[6..].parse().unwrap();
            suite = suite.into_iter().enumerate().filter(|(i, _)| i % k == 0).map(|(_, e)| e).collect();
        }
        Some(n) => suite.truncate(n.parse().unwrap()),
        None => {}
    }
    let config = EngineConfig { threads, threads_batch: threads, ..EngineConfig::new(&model) };
    let engine = Arc::new(Engine::start(config, Box::new(NoPacing)).unwrap());
    let runs = sotto_analyze::eval::run_suite(&engine, &suite, &designs, 2000, |d, i, n| {
        if i % 20 == 0 || i == n {
            eprintln!("{d}: {i}/{n}");
        }
    })
    .unwrap();
    println!("{}", sotto_analyze::eval::table(&model, &runs));
    std::fs::write(out, serde_json::to_string_pretty(&runs).unwrap()).unwrap();
}
