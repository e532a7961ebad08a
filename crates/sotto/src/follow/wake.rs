//! What ends a follower's wait: a change notification for the followed file (the `notify`
//! crate: inotify, kqueue, FSEvents), a stop (SIGTERM or SIGINT, through `signal-hook`'s
//! self-pipe thread), or, as a safety net for a notification that never comes, a long timeout.
//!
//! Must not: spin, wake for every file of a busy log directory (events are filtered by path
//! before they reach the loop), or install a signal handler of its own (`unsafe`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

/// Whether a notification concerns the followed file: an event that names it (written,
/// created, renamed, removed), one that may have lost events, or an error. Opens and closes,
/// ours included, change nothing (writes are `Modify` events).
fn relevant(event: &notify::Result<notify::Event>, interest: &[PathBuf]) -> bool {
    match event {
        Ok(e) if matches!(e.kind, EventKind::Access(_)) => false,
        Ok(e) if e.need_rescan() || e.paths.is_empty() => true,
        Ok(e) => e.paths.iter().any(|p| interest.contains(p)),
        Err(_) => true,
    }
}

/// Why [`Waiter::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The followed file, or its name, may have changed.
    Changed,
    /// A stop was requested.
    Stopped,
    /// Nothing came within the safety-net interval.
    TimedOut,
}

enum Message {
    Changed,
    Stop,
}

/// The stop request: a flag the loop reads between lines, and a message that ends a wait.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    tx: Sender<Message>,
}

impl Stop {
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Message::Stop);
    }

    /// SIGTERM and SIGINT request a stop: the line in progress is finished and the checkpoint
    /// saved. A second one exits at once (status 130); the line in progress is then analysed
    /// again at the next start. Install it before anything slow (the model load), so that a
    /// stop during it is a clean stop too.
    #[cfg(unix)]
    pub fn on_signals(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let stop = self.clone();
        std::thread::Builder::new().name("sotto-signals".into()).spawn(move || {
            for (n, signal) in signals.forever().enumerate() {
                if n > 0 {
                    eprintln!(
                        "sotto: a second signal: stopping now; the line in progress is read again at the next start"
                    );
                    std::process::exit(130);
                }
                tracing::info!(signal, "stopping after the line in progress");
                stop.request();
            }
        })?;
        Ok(())
    }

    /// Without Unix signals, Ctrl-C ends the process; the checkpoint makes that a repeat at worst.
    #[cfg(not(unix))]
    pub fn on_signals(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Blocks until the followed file may have changed, a stop, or the safety-net timeout.
pub struct Waiter {
    rx: Receiver<Message>,
    tx: Sender<Message>,
    check_every: Duration,
    watcher: Option<notify::RecommendedWatcher>,
    /// The paths whose events wake the loop; shared with the watcher's callback thread.
    interest: Arc<Mutex<Vec<PathBuf>>>,
    /// The directories watched (a file's directory sees it replaced, not only written).
    dirs: Vec<PathBuf>,
    warned: bool,
}

/// A stop request and the waiter it wakes. `check_every` is the safety-net interval.
pub fn channel(check_every: Duration) -> (Stop, Waiter) {
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = Stop { flag: Arc::new(AtomicBool::new(false)), tx: tx.clone() };
    let waiter = Waiter {
        rx,
        tx,
        check_every,
        watcher: None,
        interest: Arc::new(Mutex::new(Vec::new())),
        dirs: Vec::new(),
        warned: false,
    };
    (stop, waiter)
}

impl Waiter {
    /// Wake for changes to `paths` (absolute): their directories are watched. True when that
    /// changed anything (a symlink now points elsewhere): events before the change were
    /// filtered by the old paths, so the caller reads once more before waiting.
    pub fn watch(&mut self, paths: &[PathBuf]) -> bool {
        {
            let mut interest = self.interest.lock().unwrap_or_else(|e| e.into_inner());
            if interest.as_slice() == paths {
                return false;
            }
            *interest = paths.to_vec();
        }
        let mut dirs: Vec<PathBuf> = paths.iter().filter_map(|p| p.parent().map(PathBuf::from)).collect();
        dirs.dedup();
        if dirs != self.dirs {
            self.rewatch(dirs);
        }
        true
    }

    fn rewatch(&mut self, dirs: Vec<PathBuf>) {
        if self.watcher.is_none() {
            let (tx, interest) = (self.tx.clone(), self.interest.clone());
            match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if relevant(&event, &interest.lock().unwrap_or_else(|e| e.into_inner())) {
                    let _ = tx.send(Message::Changed);
                }
            }) {
                Ok(w) => self.watcher = Some(w),
                Err(e) => self.warn(&format!("no change notifications ({e})")),
            }
        }
        let Some(watcher) = self.watcher.as_mut() else {
            self.dirs = dirs;
            return;
        };
        for d in &self.dirs {
            let _ = watcher.unwatch(d);
        }
        let mut failed = Vec::new();
        for d in &dirs {
            if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
                failed.push(format!("{}: {e}", d.display()));
            }
        }
        self.dirs = dirs;
        if !failed.is_empty() {
            self.warn(&format!("cannot watch {}", failed.join(", ")));
        }
    }

    fn warn(&mut self, what: &str) {
        if !self.warned {
            tracing::warn!("{what}; checking the followed file every {:?} instead", self.check_every);
            self.warned = true;
        }
    }

    /// Blocks until a relevant change, a stop, or `check_every`. Changes that piled up are
    /// taken at once: one look at the file covers them all.
    pub fn wait(&mut self) -> Woke {
        let mut woke = match self.rx.recv_timeout(self.check_every) {
            Ok(Message::Stop) => Woke::Stopped,
            Ok(Message::Changed) => Woke::Changed,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                // A watched directory that was replaced lost its watch: watch again.
                let dirs = std::mem::take(&mut self.dirs);
                self.rewatch(dirs);
                Woke::TimedOut
            }
        };
        while let Ok(m) = self.rx.try_recv() {
            if let Message::Stop = m {
                woke = Woke::Stopped;
            }
        }
        woke
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An hour: only a notification or a stop can end these waits in time.
    const NEVER: Duration = Duration::from_secs(3600);

    /// Waits on another thread; the receiver gets why it woke.
    fn wait_in_background(mut waiter: Waiter) -> std::sync::mpsc::Receiver<(Woke, Waiter)> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let woke = waiter.wait();
            let _ = tx.send((woke, waiter));
        });
        rx
    }

    #[test]
    fn a_stop_ends_a_wait() {
        let (stop, waiter) = channel(NEVER);
        let rx = wait_in_background(waiter);
        assert!(!stop.requested());
        stop.request();
        let (woke, _) = rx.recv_timeout(Duration::from_secs(60)).expect("the wait ends");
        assert_eq!(woke, Woke::Stopped);
        assert!(stop.requested());
    }

    #[test]
    fn an_append_to_the_followed_file_ends_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().canonicalize().unwrap().join("events.jsonl");
        std::fs::write(&log, "").unwrap();
        let (_stop, mut waiter) = channel(NEVER);
        assert!(waiter.watch(std::slice::from_ref(&log)));
        assert!(!waiter.watch(std::slice::from_ref(&log)), "the same watch again changes nothing");
        // Another path in the same directory (a symlink re-pointed): no new watch, but events
        // were filtered by the old path until now, so the caller must look once more.
        let elsewhere = log.with_file_name("b.jsonl");
        assert!(waiter.watch(&[log.clone(), elsewhere]));
        let rx = wait_in_background(waiter);
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"{}\n").unwrap();
        let (woke, _) = rx.recv_timeout(Duration::from_secs(60)).expect("an append wakes it");
        assert_eq!(woke, Woke::Changed);
    }

    #[test]
    fn only_events_that_name_the_followed_file_are_relevant() {
        use notify::event::{AccessKind, CreateKind, DataChange, Flag, ModifyKind, RenameMode};
        let log = PathBuf::from("/var/log/events.jsonl");
        let interest = [log.clone(), PathBuf::from("/data/target.jsonl")];
        let event = |kind, path: &str| Ok(notify::Event::new(kind).add_path(PathBuf::from(path)));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(relevant(&event(write, "/var/log/events.jsonl"), &interest));
        assert!(relevant(&event(write, "/data/target.jsonl"), &interest));
        assert!(!relevant(&event(write, "/var/log/syslog"), &interest));
        assert!(!relevant(&event(EventKind::Access(AccessKind::Any), "/var/log/events.jsonl"), &interest));
        assert!(relevant(&event(EventKind::Create(CreateKind::File), "/var/log/events.jsonl"), &interest));
        let renamed = notify::Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
            .add_path(log.clone())
            .add_path(PathBuf::from("/var/log/events.jsonl.1"));
        assert!(relevant(&Ok(renamed), &interest));
        assert!(relevant(&Ok(notify::Event::new(EventKind::Other).set_flag(Flag::Rescan)), &interest));
        assert!(relevant(&Err(notify::Error::generic("queue overflow")), &interest));
    }
}
