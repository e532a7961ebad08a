//! `sotto analyze`: endpoint events in (JSONL from stdin or a file, or raw auditd text), verdict
//! JSONL out. With `--follow`, it tails a growing log and keeps its read offset in the state
//! directory, so a restart resumes where it stopped.
//!
//! Must not: lose a line it could not read (it gets an error line, and the run goes on), or
//! poll while the followed file is quiet (it blocks on inotify on Linux).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use serde_json::json;
use sotto_analyze::{Admission, Analyzer, Detail, Options};
use sotto_engine::Engine;
use sotto_events::Event;

use crate::cli::AnalyzeArgs;
use crate::config::state_dir;

/// Load the model for a one-shot command (analyze, eval) under the configured budgets.
pub fn start_engine(models_dir: &Path, config: &crate::config::Config) -> anyhow::Result<Arc<Engine>> {
    let budgets = config.budgets();
    let cpus = sotto_governor::available_cpus();
    super::serve::apply_cgroup(config.budget.cgroup, budgets.cpu_peak * cpus)?;
    let governor = sotto_governor::Governor::new(budgets, config.budget.sched, cpus);
    let engine_config = super::serve::engine_config(config, models_dir, &governor)?;
    let path = engine_config.model.clone();
    let engine =
        Engine::start(engine_config, Box::new(governor)).with_context(|| format!("loading {}", path.display()))?;
    Ok(Arc::new(engine))
}

/// The analyzer the configuration describes (`mode` overrides `analyze.mode`): its design,
/// rationale policy and verdict head.
pub fn analyzer(engine: Arc<Engine>, config: &crate::config::Config, mode: Option<&str>) -> anyhow::Result<Analyzer> {
    let mode = mode.unwrap_or(&config.analyze.mode).parse().map_err(anyhow::Error::msg)?;
    let options = Options {
        mode,
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
    let mut config = args.config.load()?;
    if let Some(m) = &args.model {
        config.model.path = m.clone();
    }
    let detail: Detail =
        args.detail.as_deref().unwrap_or(&config.analyze.detail).parse().map_err(anyhow::Error::msg)?;
    if args.follow {
        // Before the (slow) model load, so that a stop during it is a clean stop too.
        install_stop_handlers();
    }
    let engine = start_engine(models_dir, &config)?;
    let analyzer = analyzer(engine, &config, args.mode.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let mut out = std::io::stdout().lock();
    let mut summary = Summary::new(progress_bar(&args.input, args.follow));
    let mut handle = |n: usize, parsed: Result<Event, String>, out: &mut dyn Write| -> anyhow::Result<()> {
        let line = match parsed {
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
        };
        // Each verdict is written the moment it exists.
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    };
    let mut note = None;
    match (&args.input, args.follow) {
        (Some(path), true) => follow(path, &mut |n, parsed, out| handle(n, parsed, out), &mut out)?,
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

/// Where the read offset of `path` is kept: one small file per followed path.
fn offset_file(path: &Path) -> PathBuf {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state_dir().join("follow").join(format!("{h:016x}.offset"))
}

/// The saved `(inode, offset)` of a followed file.
fn load_offset(file: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

fn save_offset(file: &Path, inode: u64, offset: u64) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("partial");
    std::fs::write(&tmp, format!("{inode} {offset}\n"))?;
    std::fs::rename(tmp, file)
}

#[cfg(unix)]
fn inode(f: &File) -> u64 {
    use std::os::unix::fs::MetadataExt;
    f.metadata().map_or(0, |m| m.ino())
}

#[cfg(not(unix))]
fn inode(_: &File) -> u64 {
    0
}

/// What `follow` calls for each complete line: (line number, parsed event or error, output).
type Handler<'a> = dyn FnMut(usize, Result<Event, String>, &mut dyn Write) -> anyhow::Result<()> + 'a;

static STOP: AtomicBool = AtomicBool::new(false);

/// Tail `path` line by line. The offset is saved after each line's verdict is written, so a
/// restart after a clean stop (SIGTERM, Ctrl-C) neither skips nor repeats; after a crash, at
/// most the line in progress is analysed again. A truncated or replaced file is read from
/// its start.
fn follow(path: &Path, handle: &mut Handler<'_>, out: &mut dyn Write) -> anyhow::Result<()> {
    let offsets = offset_file(path);
    let mut watcher = Watcher::new(path);
    let mut line_no = 0usize;
    while !STOP.load(Ordering::Relaxed) {
        let Ok(file) = File::open(path) else {
            watcher.wait();
            continue;
        };
        let ino = inode(&file);
        let len = file.metadata()?.len();
        let mut pos = match load_offset(&offsets) {
            Some((saved_ino, off)) if saved_ino == ino && off <= len => off,
            _ => 0,
        };
        let mut reader = BufReader::new(file);
        reader.seek(SeekFrom::Start(pos))?;
        tracing::info!(path = %path.display(), offset = pos, state = %offsets.display(), "following");
        let mut buf = Vec::new();
        loop {
            if STOP.load(Ordering::Relaxed) {
                return Ok(());
            }
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n > 0 && buf.ends_with(b"\n") {
                pos += n as u64;
                line_no += 1;
                // A line that is not UTF-8 is an error record, and the offset moves past it:
                // one bad byte must not stop the follower, nor every restart after it.
                match std::str::from_utf8(&buf) {
                    Ok(line) if line.trim().is_empty() => {}
                    Ok(line) => {
                        handle(line_no, sotto_events::parse_line(line.trim_end()).map_err(|e| e.to_string()), out)?
                    }
                    Err(e) => handle(line_no, Err(format!("line is not UTF-8 ({e})")), out)?,
                }
                save_offset(&offsets, ino, pos)?;
                continue;
            }
            // A partial last line: leave it for when it is complete.
            reader.seek(SeekFrom::Start(pos))?;
            let replaced = match File::open(path) {
                Ok(f) => inode(&f) != ino || f.metadata()?.len() < pos,
                Err(_) => true,
            };
            if replaced {
                tracing::info!(path = %path.display(), "the file was truncated or replaced; reading it from the start");
                save_offset(&offsets, 0, 0)?;
                break;
            }
            watcher.wait();
        }
    }
    Ok(())
}

fn install_stop_handlers() {
    #[cfg(unix)]
    unsafe {
        extern "C" fn on_signal(_: libc::c_int) {
            STOP.store(true, Ordering::Relaxed);
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        // No SA_RESTART: a blocking read returns EINTR, so the loop sees STOP at once.
        action.sa_flags = 0;
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// Blocks until the followed file may have changed: inotify on Linux (no CPU while quiet),
/// a one-second sleep elsewhere.
struct Watcher {
    #[cfg(target_os = "linux")]
    fd: libc::c_int,
    dir: PathBuf,
}

impl Watcher {
    fn new(path: &Path) -> Self {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        #[cfg(target_os = "linux")]
        {
            // Watch the directory: it sees appends, and also a file that is created or
            // replaced by rotation.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
            if fd >= 0 {
                let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
                let mask = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE;
                if unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) } < 0 {
                    unsafe { libc::close(fd) };
                    return Watcher { fd: -1, dir };
                }
            }
            Watcher { fd, dir }
        }
        #[cfg(not(target_os = "linux"))]
        Watcher { dir }
    }

    fn wait(&mut self) {
        #[cfg(target_os = "linux")]
        if self.fd >= 0 {
            let mut buf = [0u8; 4096];
            // Blocks in the kernel until something in the directory changes (or a signal).
            let _ = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            return;
        }
        let _ = &self.dir;
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(target_os = "linux")]
impl Drop for Watcher {
    fn drop(&mut self) {
        if self.fd >= 0 {
            unsafe { libc::close(self.fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.offset");
        assert_eq!(load_offset(&f), None);
        save_offset(&f, 42, 1234).unwrap();
        assert_eq!(load_offset(&f), Some((42, 1234)));
    }
}
