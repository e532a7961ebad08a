//! `sotto analyze`: endpoint events in (JSONL from stdin or a file, or raw auditd text), verdict
//! JSONL out. With `--follow`, it tails a growing log through rotations and restarts
//! (`crate::follow`).
//!
//! Must not: lose a line it could not read (it gets an error line, and the run goes on).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use sotto_analyze::{Admission, Analyzer, Detail, Options};
use sotto_engine::Engine;
use sotto_events::Event;

use crate::cli::AnalyzeArgs;
use crate::config::state_dir;
use crate::follow;

/// Load the model for a one-shot command (analyze, eval) under the configured budgets.
pub fn start_engine(models_dir: &Path, config: &crate::config::Config) -> anyhow::Result<Arc<Engine>> {
    let budgets = config.budgets();
    let cpus = sotto_governor::available_cpus();
    super::serve::apply_cgroup(config.budget.cgroup, budgets.cpu_peak * cpus)?;
    let governor = sotto_governor::Governor::new(budgets, config.budget.sched, cpus)
        .with_critical_class(config.budget.sched_critical);
    let engine_config = super::serve::engine_config(config, models_dir, &governor)?;
    let path = engine_config.model.clone();
    let engine =
        Engine::start(engine_config, Box::new(governor)).with_context(|| format!("loading {}", path.display()))?;
    Ok(Arc::new(engine))
}

/// The analyzer the configuration describes: its design, rationale policy and verdict head.
pub fn analyzer(engine: Arc<Engine>, config: &crate::config::Config) -> anyhow::Result<Analyzer> {
    let options = Options {
        mode: config.analyze.mode,
        rationale: config.analyze.rationale,
        embeddings: config.analyze.embeddings,
        max_field_chars: config.analyze.max_field_chars,
        retrieve: config.analyze.retrieve,
        ..Options::default()
    };
    let analyzer = Analyzer::new(engine, options);
    Ok(match &config.analyze.head {
        Some(path) => analyzer.with_head(Arc::new(sotto_analyze::head::Head::load(path)?))?,
        None => analyzer,
    })
}

pub fn run(models_dir: &Path, args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load_with([
        ("model.path", "--model", args.model.clone()),
        ("analyze.mode", "--mode", args.mode.map(|m| m.as_str().to_string())),
        ("analyze.detail", "--detail", args.detail.map(|d| d.as_str().to_string())),
    ])?;
    let detail: Detail = config.analyze.detail;
    // Before the (slow) model load, so that a stop during it is a clean stop too.
    let stop = if args.follow {
        let (stop, waiter) = follow::wake::channel(config.analyze.follow_check);
        stop.on_signals()?;
        Some((stop, waiter))
    } else {
        None
    };
    let engine = start_engine(models_dir, &config)?;
    let analyzer = analyzer(engine, &config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let stdout_file = stdout_file();
    let mut out = std::io::stdout().lock();
    let mut summary = Summary::new(progress_bar(&args.input, args.follow));
    let mut record = |n: u64, parsed: Result<Event, String>| -> anyhow::Result<serde_json::Value> {
        Ok(match parsed {
            Ok(event) => match runtime.block_on(analyzer.analyze(&event, detail, Admission::default())) {
                Ok(a) => {
                    summary.verdict(a.verdict.verdict);
                    let mut v = serde_json::to_value(&a)?;
                    v["line"] = json!(n);
                    v["source"] = json!(event.source);
                    v
                }
                Err(e) => {
                    summary.refused("analysis failed", &e.to_string());
                    summary.say(&format!("sotto: line {n}: analysis failed: {e}"));
                    json!({ "line": n, "error": e.to_string() })
                }
            },
            Err(e) => {
                summary.refused("unreadable", &e);
                summary.say(&format!("sotto: line {n}: {e}"));
                json!({ "line": n, "error": e })
            }
        })
    };
    // Each verdict is written the moment it exists.
    let write = |out: &mut dyn Write, v: &serde_json::Value| -> anyhow::Result<()> {
        writeln!(out, "{v}")?;
        out.flush()?;
        Ok(())
    };
    let mut handle = |n: usize, parsed: Result<Event, String>, out: &mut dyn Write| -> anyhow::Result<()> {
        write(out, &record(n as u64, parsed)?)
    };
    let mut note = None;
    match (&args.input, args.follow) {
        (Some(path), true) => {
            let (stop, waiter) = stop.expect("made for --follow");
            let store = follow::OffsetStore::for_followed(&state_dir(), path);
            let mut output = follow::Output { writer: &mut out, file: stdout_file };
            follow::run(path, store, &stop, waiter, &mut output, &mut |line, out| {
                let Some(parsed) = parse_bytes(&line.bytes) else { return Ok(()) };
                let mut v = record(line.no, parsed)?;
                // Joins the record to its line whichever file it was in, and tells a verdict
                // repeated after a crash from a repeated event (same line, same hash).
                v["line_sha256"] = json!(sha256_hex(&line.bytes));
                write(out, &v)
            })?
        }
        (None, true) => anyhow::bail!("--follow needs a file to follow"),
        (Some(path), false) if path.as_os_str() != "-" && starts_with_evtx_magic(path) => {
            let mut records = sotto_events::read_evtx(path)?;
            let mut n = 0;
            for record in records.by_ref() {
                n += 1;
                handle(n, record.map_err(|e| e.to_string()), &mut out)?;
            }
            let c = records.counts();
            note = Some(format!(
                "{} records read, {} process creations kept, {} other events skipped, {} unreadable",
                c.read, c.kept, c.skipped_other_events, c.errors
            ));
        }
        (input, false) => {
            let reader: Box<dyn BufRead> = match input {
                Some(p) if p.as_os_str() != "-" => {
                    Box::new(BufReader::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?))
                }
                _ => Box::new(BufReader::new(std::io::stdin())),
            };
            read_batch(reader, &mut |n, parsed| handle(n, parsed, &mut out))?;
        }
    }
    // The closure borrows `summary` mutably; its last use above ends that borrow.
    summary.notes.extend(note);
    Ok(summary.finish())
}

/// Whether the file starts with the EVTX magic.
fn starts_with_evtx_magic(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && sotto_events::is_evtx(&magic)
}

/// Reads JSONL (or raw XML lines) one line at a time, so a 200 MB export is never held in
/// memory; a line that is not UTF-8 becomes an error record and the run goes on. Raw auditd
/// text (first line `type=` or `node=`) is grouped into events instead.
fn read_batch(
    mut reader: Box<dyn BufRead>,
    handle: &mut dyn FnMut(usize, Result<Event, String>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        n += 1;
        let line = match std::str::from_utf8(&buf) {
            Ok(l) => l,
            Err(e) => {
                handle(n, Err(format!("line is not UTF-8 ({e})")))?;
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if n == 1 && (line.starts_with("type=") || line.starts_with("node=")) {
            // Raw auditd: one event per msg=audit(...) group, not per line.
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest)?;
            let text = format!("{line}{}", String::from_utf8_lossy(&rest));
            for (i, group) in sotto_events::parse_auditd(&text).into_iter().enumerate() {
                handle(i + 1, group.map_err(|e| e.to_string()))?;
            }
            return Ok(());
        }
        handle(n, sotto_events::parse_line(line.trim_end()).map_err(|e| e.to_string()))?;
    }
}

/// A progress bar on stderr for a file read in one go (hidden when stderr is not a terminal,
/// and for `--follow`, which never ends).
fn progress_bar(input: &Option<PathBuf>, follow: bool) -> indicatif::ProgressBar {
    let size = input.as_ref().filter(|p| !follow && p.as_os_str() != "-").and_then(|p| std::fs::metadata(p).ok());
    match size {
        Some(m) if std::io::stderr().is_terminal() => {
            let bar = indicatif::ProgressBar::new(m.len());
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} events {msg} [{elapsed_precise}] {per_sec}")
                    .expect("template"),
            );
            bar
        }
        _ => indicatif::ProgressBar::hidden(),
    }
}

/// What a run did: verdicts by label, refusals by reason, and how fast.
struct Summary {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
    labels: std::collections::BTreeMap<&'static str, usize>,
    refused: std::collections::BTreeMap<String, usize>,
    notes: Vec<String>,
}

impl Summary {
    fn new(bar: indicatif::ProgressBar) -> Summary {
        Summary {
            bar,
            started: std::time::Instant::now(),
            labels: Default::default(),
            refused: Default::default(),
            notes: Vec::new(),
        }
    }

    fn verdict(&mut self, label: sotto_events::eval::Label) {
        *self.labels.entry(label.as_str()).or_default() += 1;
        self.bar.inc(1);
    }

    /// Counts a refusal under its kind and the first words of its reason.
    fn refused(&mut self, kind: &str, reason: &str) {
        let short: String = reason.chars().take(70).collect();
        *self.refused.entry(format!("{kind}: {short}")).or_default() += 1;
        self.bar.inc(1);
    }

    /// A message that does not tear the progress bar.
    fn say(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Prints the summary; the exit code says whether anything was refused.
    fn finish(self) -> ExitCode {
        self.bar.finish_and_clear();
        let verdicts: usize = self.labels.values().sum();
        let refused: usize = self.refused.values().sum();
        let secs = self.started.elapsed().as_secs_f64();
        let by_label: Vec<String> = self.labels.iter().map(|(l, n)| format!("{n} {l}")).collect();
        eprintln!(
            "sotto: {} events read: {} verdicts ({}), {} refused; {:.1} events/s",
            verdicts + refused,
            verdicts,
            if by_label.is_empty() { "none".to_string() } else { by_label.join(", ") },
            refused,
            (verdicts + refused) as f64 / secs.max(1e-9)
        );
        for (reason, n) in &self.refused {
            eprintln!("sotto:   {n} × {reason}");
        }
        for note in &self.notes {
            eprintln!("sotto: {note}");
        }
        if refused == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

/// A line's event, or why it has none; `None` for a blank line, which gets no record. A line
/// that is not UTF-8 is an error record, and reading goes on past it: one bad byte must not
/// stop the follower, nor every restart after it.
fn parse_bytes(bytes: &[u8]) -> Option<Result<Event, String>> {
    match std::str::from_utf8(bytes) {
        Err(e) => Some(Err(format!("line is not UTF-8 ({e})"))),
        Ok(line) if line.trim().is_empty() => None,
        Ok(line) => Some(sotto_events::parse_line(line.trim_end()).map_err(|e| e.to_string())),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard output as a file to sync before each follow checkpoint, when it is a regular file
/// (`> verdicts.jsonl`): then a saved offset never runs ahead of the records on disk.
#[cfg(unix)]
fn stdout_file() -> Option<File> {
    use std::os::fd::AsFd;
    let file = File::from(std::io::stdout().as_fd().try_clone_to_owned().ok()?);
    file.metadata().ok()?.is_file().then_some(file)
}

#[cfg(not(unix))]
fn stdout_file() -> Option<File> {
    None
}
