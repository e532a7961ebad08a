//! `sotto generate`: one prompt through the engine, streamed to stdout, counters to stderr. The
//! model, threads and budgets come from the configuration, as for every command.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sotto_engine::{Message, Piece, Prompt, Request, Sampling, Stats, process_cpu_time};

use crate::cli::GenerateArgs;

pub fn run(models_dir: &Path, args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.config.load_with(args.config_flags())?;
    // One prompt: nothing worth keeping on disk for the next run.
    config.cache.persist = false;
    let engine = super::analyze::start_engine(models_dir, &config)?;
    let info = engine.info().clone();
    let prompt = if args.raw {
        Prompt::Text(args.prompt)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = args.system {
            messages.push(Message::new("system", system));
        }
        messages.push(Message::new("user", args.prompt));
        Prompt::Chat(messages)
    };
    let sampling = match args.temperature {
        None => Sampling::Greedy,
        Some(temperature) => Sampling::Random { temperature, top_p: args.top_p, seed: args.seed },
    };
    let request = Request { sampling, stop: args.stop, ..Request::new(prompt, args.max_tokens) };
    let mut reply = engine.submit(request)?;
    let mut text = String::new();
    let mut out = std::io::stdout().lock();
    let stats: Stats = loop {
        match reply.next_blocking().context("generation failed")? {
            Piece::Text(t) => {
                if !args.json {
                    out.write_all(t.as_bytes())?;
                    out.flush()?;
                }
                text.push_str(&t);
            }
            Piece::Done(stats) => break stats,
        }
    };
    let idle = match args.linger {
        Some(secs) if !(secs.is_finite() && secs >= 0.0) => {
            anyhow::bail!("--linger must be a number of seconds >= 0")
        }
        Some(secs) => {
            let before = process_cpu_time();
            std::thread::sleep(Duration::from_secs_f64(secs));
            Some((secs, (process_cpu_time() - before).as_secs_f64() * 1e3))
        }
        None => None,
    };
    let peak_rss = sotto_governor::sampler::peak_rss(std::process::id());
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    if args.json {
        let v = serde_json::json!({
            "memory_estimate_bytes": info.memory.total(),
            "peak_rss_bytes": peak_rss,
            "idle_s": idle.map(|i| i.0),
            "idle_cpu_ms": idle.map(|i| i.1),
            "text": text,
            "model": info.path.display().to_string(),
            "architecture": info.architecture,
            "quantization": info.quantization,
            "template": info.template.to_string(),
            "threads": info.threads,
            "threads_batch": info.threads_batch,
            "chunk": info.chunk,
            "prompt_tokens": stats.prompt_tokens,
            "generated_tokens": stats.generated_tokens,
            "prefill_ms": stats.prefill.as_secs_f64() * 1e3,
            "decode_ms": stats.decode.as_secs_f64() * 1e3,
            "cpu_ms": stats.cpu.as_secs_f64() * 1e3,
            "prefill_tok_s": stats.prefill_tokens_per_s(),
            "decode_tok_s": stats.decode_tokens_per_s(),
            "finish": format!("{:?}", stats.finish).to_lowercase(),
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(out)?;
        eprintln!(
            "-- {} ({}, {}), template: {}, threads {}/{} (gen/prefill), chunk {}",
            info.path.file_name().unwrap_or_default().to_string_lossy(),
            info.architecture,
            info.quantization,
            info.template,
            info.threads,
            info.threads_batch,
            info.chunk
        );
        eprintln!(
            "-- prompt {} tok in {:.0} ms ({:.1} tok/s), generated {} tok in {:.0} ms ({:.1} tok/s), cpu {:.0} ms, finish {:?}",
            stats.prompt_tokens,
            stats.prefill.as_secs_f64() * 1e3,
            stats.prefill_tokens_per_s(),
            stats.generated_tokens,
            stats.decode.as_secs_f64() * 1e3,
            stats.decode_tokens_per_s(),
            stats.cpu.as_secs_f64() * 1e3,
            stats.finish
        );
        eprintln!(
            "-- memory: estimated {:.0} MiB (weights {:.0}, KV {:.0} {}), peak RSS {:.0} MiB",
            mib(info.memory.total()),
            mib(info.memory.weights),
            mib(info.memory.kv_cache),
            info.kv_type.name(),
            mib(peak_rss)
        );
        if let Some((secs, cpu_ms)) = idle {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            eprintln!(
                "-- idle {secs} s after the answer: cpu {cpu_ms:.1} ms ({:.3}% of the machine's {cpus} CPUs)",
                cpu_ms / (secs * 10.0 * cpus)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
