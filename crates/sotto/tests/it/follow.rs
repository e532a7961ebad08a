//! `sotto analyze --follow` as a real process with the real SmolLM2 model and the verdict head
//! (no embeddings, no rationale: the cheapest analysis): kill -9 while the log is written and
//! rotated, a SIGTERM while it is quiet, a symlinked log.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use sha2::Digest;

use super::{exit_within, real_models, wait_until};

/// A follower's directories: the log's, the state's, and the output file.
struct Dirs {
    _tmp: tempfile::TempDir,
    logs: PathBuf,
    state: PathBuf,
    out: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let (logs, state) = (tmp.path().join("logs"), tmp.path().join("state"));
        std::fs::create_dir(&logs).unwrap();
        std::fs::create_dir(&state).unwrap();
        let out = tmp.path().join("verdicts.jsonl");
        Dirs { _tmp: tmp, logs, state, out }
    }

    /// Starts `sotto analyze --follow LOG`, appending its records to the output file; the
    /// receiver hears once it follows (notifications watched, the model loaded).
    fn start(&self, log: &Path, sets: &[&str]) -> (Child, Receiver<()>) {
        let out = OpenOptions::new().create(true).append(true).open(&self.out).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
        cmd.args(["analyze", "--follow", "--model", "smollm2-135m", "--mode", "head"]).args([
            "--set",
            "analyze.embeddings=off",
            "--set",
            "analyze.rationale=never",
            "--set",
            "cache.persist=false",
        ]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let mut child = cmd
            .arg(log)
            .env("SOTTO_MODELS", real_models())
            .env("XDG_STATE_HOME", &self.state)
            .env("XDG_CONFIG_HOME", &self.state)
            .env_remove("STATE_DIRECTORY")
            .env_remove("SOTTO_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::from(out))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in stderr.lines().map_while(Result::ok) {
                if l.contains("following") {
                    let _ = tx.send(());
                }
                eprintln!("[sotto] {l}");
            }
        });
        (child, rx)
    }

    /// Every record written so far; a line torn by a kill -9 mid-write is left out.
    fn records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read(&self.out).unwrap_or_default();
        text.split(|b| *b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect()
    }

    /// The follower's saved checkpoint (one followed path: one file).
    fn checkpoint(&self) -> Option<serde_json::Value> {
        let dir = self.state.join("sotto/follow");
        let file = std::fs::read_dir(dir).ok()?.flatten().find(|e| e.path().extension() == Some("offset".as_ref()))?;
        serde_json::from_slice(&std::fs::read(file.path()).ok()?).ok()
    }

    /// Whether the checkpoint says `log` was read and handled to its end.
    fn saved_to_the_end_of(&self, log: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Some(c), Ok(m)) = (self.checkpoint(), std::fs::metadata(log)) else { return false };
        c["ino"] == m.ino() && c["offset"] == m.len()
    }
}

/// Waits for the process to exit, for at most `limit`; kills it and fails after that.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    exit_within(child, limit).unwrap_or_else(|| panic!("sotto did not exit within {limit:?}"))
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

const LOAD: Duration = Duration::from_secs(180);

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// SplitMix64: a seeded, deterministic choice of what happens when.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// The log as the test wrote it: each line's hash (as records carry it) and its number in
/// the file it was written to.
struct Writer {
    log: PathBuf,
    next_id: u64,
    in_file: u64,
    lines: Vec<(String, u64)>,
    rotations: u32,
}

impl Writer {
    /// `n` lines to `path` (the log, or a file it was renamed to), each with a unique id in
    /// its command line; with `bad`, the first is not UTF-8.
    fn write_to(&mut self, path: &Path, n: u64, bad: bool) {
        let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
        for i in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            let mut line = format!("{{\"command_line\": \"echo follow-id-{id:05}\", \"os\": \"linux\"}}").into_bytes();
            if bad && i == 0 {
                line = format!("{{\"command_line\": \"echo follow-id-{id:05} caf").into_bytes();
                line.extend_from_slice(b"\xe9\"}");
            }
            self.in_file += 1;
            self.lines.push((sha256_hex(&line), self.in_file));
            line.push(b'\n');
            f.write_all(&line).unwrap();
        }
    }

    fn write(&mut self, n: u64, bad: bool) {
        let log = self.log.clone();
        self.write_to(&log, n, bad);
    }

    /// logrotate's `create`: renamed away (a unique name, as with `dateext`), the writer
    /// writes `late` more lines to it before it reopens, then a new file.
    fn rename(&mut self, late: u64) -> PathBuf {
        self.rotations += 1;
        let rotated = self.log.with_extension(format!("r{}", self.rotations));
        std::fs::rename(&self.log, &rotated).unwrap();
        self.write_to(&rotated, late, false);
        self.in_file = 0;
        rotated
    }

    /// logrotate's `copytruncate`.
    fn copytruncate(&mut self) {
        self.rotations += 1;
        std::fs::copy(&self.log, self.log.with_extension(format!("c{}", self.rotations))).unwrap();
        OpenOptions::new().write(true).open(&self.log).unwrap().set_len(0).unwrap();
        self.in_file = 0;
    }

    /// Lines with no record yet.
    fn missing(&self, records: &[serde_json::Value]) -> Vec<usize> {
        let seen: std::collections::HashSet<&str> = records.iter().filter_map(|r| r["line_sha256"].as_str()).collect();
        (0..self.lines.len()).filter(|i| !seen.contains(self.lines[*i].0.as_str())).collect()
    }
}

/// Issue 11, item 3: at-least-once across kill -9, rename and copytruncate rotations and a
/// line that is not UTF-8. The follower is killed at seeded points while lines are appended
/// and the log is rotated; in the end every line has a record, with its line number, and no
/// record is for bytes that were never a line.
#[test]
fn kill_9_while_the_log_is_written_and_rotated_skips_no_line() {
    let dirs = Dirs::new();
    let log = dirs.logs.join("events.jsonl");
    let mut w = Writer { log: log.clone(), next_id: 0, in_file: 0, lines: Vec::new(), rotations: 0 };
    let mut rng = Rng(0x5077_0011_0003);
    w.write(3, false);
    let (mut kills, mut renames, mut truncates) = (0, 0, 0);
    for round in 0..8 {
        let (mut child, following) = dirs.start(&log, &[]);
        let mut heard = rng.below(6) != 0;
        if heard {
            following.recv_timeout(LOAD).expect("the follower starts");
        }
        if round == 2 {
            w.write(2, true);
        }
        for _ in 0..1 + rng.below(3) {
            if rng.below(5) >= 2 {
                w.write(1 + rng.below(4), false);
                continue;
            }
            // Before a rotation the follower has caught up and saved, as when rotations are
            // rarer than reads: a file rotated twice before it is read is out of reach.
            if !heard {
                following.recv_timeout(LOAD).expect("the follower starts");
                heard = true;
            }
            wait_until("the follower catches up and saves", LOAD, || {
                w.missing(&dirs.records()).is_empty() && dirs.saved_to_the_end_of(&w.log)
            });
            if rng.below(2) == 0 {
                w.rename(rng.below(3));
                w.write(1 + rng.below(3), false);
                renames += 1;
            } else {
                w.copytruncate();
                w.write(rng.below(4), false);
                truncates += 1;
            }
        }
        if rng.below(2) == 0 {
            let records = dirs.records().len();
            let more = rng.below(4) as usize;
            let reached = |n: usize| dirs.records().len() >= n || w.missing(&dirs.records()).is_empty();
            wait_until("some records are written", LOAD, || reached(records + more));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if rng.below(3) == 0 {
            w.write(1 + rng.below(2), false); // while it is down
        }
    }
    assert!(renames > 0 && truncates > 0, "the seed rotates both ways: {renames} renames, {truncates} copytruncates");
    let (mut child, _) = dirs.start(&log, &[]);
    wait_until("every line has a record", Duration::from_secs(300), || w.missing(&dirs.records()).is_empty());
    sigterm(&child);
    wait_exit(&mut child, Duration::from_secs(60));

    let records = dirs.records();
    let by_hash: std::collections::HashMap<&str, u64> = w.lines.iter().map(|(h, n)| (h.as_str(), *n)).collect();
    for r in &records {
        let hash = r["line_sha256"].as_str().unwrap_or_else(|| panic!("a follow record has line_sha256: {r}"));
        let line = by_hash.get(hash).unwrap_or_else(|| panic!("a record for bytes that were never a line: {r}"));
        assert_eq!(r["line"], *line, "the line number in its file, across restarts: {r}");
    }
    let bad = records.iter().find(|r| r["error"].is_string()).expect("the line that is not UTF-8 has an error record");
    assert!(bad["error"].as_str().unwrap().contains("not UTF-8"), "{bad}");
    let repeats = records.len() - w.lines.len();
    eprintln!("{} lines, {} records ({repeats} repeated after {kills} kills)", w.lines.len(), records.len());
}

/// A SIGTERM ends a follower that waits for its quiet log at once (no timer can: the safety
/// net is an hour), with status 0 and its offset saved.
#[test]
fn sigterm_wakes_a_quiet_follower_which_exits_0_with_its_offset_saved() {
    let dirs = Dirs::new();
    let log = dirs.logs.join("events.jsonl");
    let mut w = Writer { log: log.clone(), next_id: 0, in_file: 0, lines: Vec::new(), rotations: 0 };
    w.write(2, false);
    let (mut child, following) = dirs.start(&log, &["analyze.follow_check=1h"]);
    following.recv_timeout(LOAD).expect("the follower starts");
    wait_until("both lines are handled and saved", LOAD, || {
        w.missing(&dirs.records()).is_empty() && dirs.saved_to_the_end_of(&log)
    });
    // One more line, to see the follower woken by a notification rather than by a timer.
    w.write(1, false);
    wait_until("the appended line is handled and saved", LOAD, || {
        w.missing(&dirs.records()).is_empty() && dirs.saved_to_the_end_of(&log)
    });
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    assert!(dirs.saved_to_the_end_of(&log), "{:?}", dirs.checkpoint());
    assert_eq!(dirs.checkpoint().unwrap()["line"], 3);
    assert_eq!(dirs.records().len(), 3, "each line once");
}

/// The followed path is a symlink (as some agents keep `current.log`): appends to its target
/// are seen, and re-pointing it is a rotation.
#[test]
fn a_symlinked_log_is_followed_and_re_pointing_it_is_a_rotation() {
    let dirs = Dirs::new();
    let data = dirs.logs.parent().unwrap().join("data");
    std::fs::create_dir(&data).unwrap();
    let (a, b) = (data.join("a.jsonl"), data.join("b.jsonl"));
    let link = dirs.logs.join("current.jsonl");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let mut w = Writer { log: a.clone(), next_id: 0, in_file: 0, lines: Vec::new(), rotations: 0 };
    w.write(1, false);
    // An hour's safety net: only notifications for the link's directory and for the target's
    // can make this test pass in time.
    let (mut child, following) = dirs.start(&link, &["analyze.follow_check=1h"]);
    following.recv_timeout(LOAD).expect("the follower starts");
    wait_until("the target's first line is handled", LOAD, || w.missing(&dirs.records()).is_empty());
    w.write(2, false);
    wait_until("lines appended to the target are handled", LOAD, || w.missing(&dirs.records()).is_empty());
    // Re-pointed the way `ln -sfn` does it: a new link renamed over the old one.
    w.log = b.clone();
    w.in_file = 0;
    w.write(2, false);
    let tmp = dirs.logs.join("current.tmp");
    std::os::unix::fs::symlink(&b, &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    wait_until("the new target's lines are handled", LOAD, || w.missing(&dirs.records()).is_empty());
    w.write(1, false);
    wait_until("lines appended to the new target are handled", LOAD, || w.missing(&dirs.records()).is_empty());
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    let records = dirs.records();
    assert_eq!(records.len(), 6, "each line once: {records:?}");
    let lines: Vec<u64> = records.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 2, 3, 1, 2, 3]);
}
