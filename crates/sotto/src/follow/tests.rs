//! The follower without a model: each test drives [`Follower::next_line`] step by step and
//! changes the file between steps as a writer and logrotate would.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

/// A log in a temporary directory, its offset store in another.
struct Fixture {
    _dir: tempfile::TempDir,
    log: PathBuf,
    store: OffsetStore,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let log = dir.path().join("logs/events.jsonl");
        let store = OffsetStore::at(dir.path().join("state/x.offset"));
        Fixture { _dir: dir, log, store }
    }

    fn follower(&self) -> Follower {
        Follower::new(&self.log, self.store.clone())
    }

    fn rotated(&self) -> PathBuf {
        self.log.with_extension("jsonl.1")
    }
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(bytes).unwrap();
}

/// Copy, then truncate in place: logrotate's `copytruncate`.
fn copytruncate(path: &Path, copy: &Path) {
    std::fs::copy(path, copy).unwrap();
    OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
}

/// Every line available now, as (number, text).
fn drain(f: &mut Follower) -> Vec<(u64, String)> {
    let mut lines = Vec::new();
    while let Some(l) = f.next_line().unwrap() {
        lines.push((l.no, String::from_utf8_lossy(&l.bytes).into_owned()));
        assert!(lines.len() < 10_000, "the follower does not stop yielding");
    }
    lines
}

fn numbered(lines: &[&str], first: u64) -> Vec<(u64, String)> {
    lines.iter().enumerate().map(|(i, l)| (first + i as u64, l.to_string())).collect()
}

#[test]
fn a_line_is_yielded_once_its_newline_is_written() {
    let fx = Fixture::new();
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), [], "no file yet: nothing, and no error");
    append(&fx.log, b"one\ntw");
    assert_eq!(drain(&mut f), numbered(&["one"], 1));
    append(&fx.log, b"o\n\nthree\n");
    assert_eq!(drain(&mut f), numbered(&["two", "", "three"], 2));
    assert_eq!(drain(&mut f), []);
}

#[test]
fn a_restart_goes_on_after_the_last_commit_with_its_line_numbers() {
    let fx = Fixture::new();
    append(&fx.log, b"a\nb\nc\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), numbered(&["a", "b", "c"], 1));
    f.commit().unwrap();
    append(&fx.log, b"d\ne\n");
    assert_eq!(drain(&mut f), numbered(&["d", "e"], 4));
    drop(f); // a crash: d and e were handed out but not committed
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), numbered(&["d", "e"], 4), "at least once: the uncommitted lines again");
    f.commit().unwrap();
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), []);
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one_from_its_start() {
    let fx = Fixture::new();
    append(&fx.log, b"a\nb\n");
    let mut f = fx.follower();
    assert_eq!(f.next_line().unwrap().map(|l| l.bytes), Some(b"a".to_vec()));
    std::fs::rename(&fx.log, fx.rotated()).unwrap();
    // The writer had not reopened yet: its last lines went to the renamed file, the very
    // last without a newline.
    append(&fx.rotated(), b"c\nd");
    append(&fx.log, b"new 1\nnew 2\n");
    assert_eq!(drain(&mut f), [numbered(&["b", "c", "d"], 2), numbered(&["new 1", "new 2"], 1)].concat());
}

#[test]
fn a_renamed_file_is_read_on_while_no_new_one_exists() {
    let fx = Fixture::new();
    append(&fx.log, b"a\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), numbered(&["a"], 1));
    std::fs::rename(&fx.log, fx.rotated()).unwrap();
    append(&fx.rotated(), b"b\nc");
    assert_eq!(drain(&mut f), numbered(&["b"], 2), "its writer may not have moved on: c may grow");
    append(&fx.log, b"new\n");
    assert_eq!(drain(&mut f), [numbered(&["c"], 3), numbered(&["new"], 1)].concat());
}

#[test]
fn copytruncate_is_read_from_the_start() {
    let fx = Fixture::new();
    append(&fx.log, b"first line\nsecond line\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f).len(), 2);
    copytruncate(&fx.log, &fx.rotated());
    assert_eq!(drain(&mut f), []);
    append(&fx.log, b"x\n");
    assert_eq!(drain(&mut f), numbered(&["x"], 1));
}

/// Issue 11: the file is truncated and written past the old offset before the follower looks
/// again; its size says nothing, its first bytes do.
#[test]
fn copytruncate_regrown_past_the_offset_is_read_from_the_start() {
    let fx = Fixture::new();
    append(&fx.log, b"{\"id\": 1}\n{\"id\": 2}\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f).len(), 2);
    copytruncate(&fx.log, &fx.rotated());
    append(&fx.log, b"{\"id\": 3}\n{\"id\": 4}\n{\"id\": 5}\n");
    assert_eq!(drain(&mut f), numbered(&["{\"id\": 3}", "{\"id\": 4}", "{\"id\": 5}"], 1));
}

#[test]
fn a_restart_after_copytruncate_regrown_past_the_offset_starts_over() {
    let fx = Fixture::new();
    append(&fx.log, b"{\"id\": 1}\n{\"id\": 2}\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f).len(), 2);
    f.commit().unwrap();
    drop(f);
    copytruncate(&fx.log, &fx.rotated());
    append(&fx.log, b"{\"id\": 3}\n{\"id\": 4}\n{\"id\": 5}\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), numbered(&["{\"id\": 3}", "{\"id\": 4}", "{\"id\": 5}"], 1));
}

#[test]
fn a_restart_after_a_rename_reads_the_rotated_file_beside_the_path_first() {
    let fx = Fixture::new();
    append(&fx.log, b"a\nb\n");
    let mut f = fx.follower();
    assert_eq!(f.next_line().unwrap().unwrap().bytes, b"a");
    f.commit().unwrap();
    drop(f);
    std::fs::rename(&fx.log, fx.rotated()).unwrap();
    append(&fx.rotated(), b"c\n");
    append(&fx.log, b"new\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), [numbered(&["b", "c"], 2), numbered(&["new"], 1)].concat());
    // Once committed in the new file, a restart does not go back to the old one.
    f.commit().unwrap();
    append(&fx.rotated(), b"late\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), []);
}

/// An inode number alone is not an identity: a file created after the read one was deleted
/// may get its number. Simulated by a checkpoint that names the new file's inode with the old
/// file's fingerprint.
#[test]
fn a_file_that_reuses_the_inode_number_of_the_read_one_is_read_from_its_start() {
    let fx = Fixture::new();
    append(&fx.log, b"old 1\nold 2\nold 3\n");
    let mut f = fx.follower();
    drain(&mut f);
    f.commit().unwrap();
    let Some(store::Saved::Checkpoint(read)) = fx.store.load() else { panic!("a checkpoint") };
    std::fs::remove_file(&fx.log).unwrap();
    append(&fx.log, b"new 1\nnew 2\nnew 3\nnew 4\n");
    let new_key = FileKey::of(&std::fs::metadata(&fx.log).unwrap());
    fx.store.save(&Checkpoint { file: new_key, ..read }).unwrap();
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), numbered(&["new 1", "new 2", "new 3", "new 4"], 1));
}

#[cfg(unix)]
#[test]
fn a_symlink_is_followed_and_re_pointing_it_is_a_rotation() {
    let fx = Fixture::new();
    let dir = fx.log.parent().unwrap().parent().unwrap().join("data");
    std::fs::create_dir(&dir).unwrap();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    append(&a, b"a1\n");
    append(&b, b"b1\n");
    std::os::unix::fs::symlink(&a, &fx.log).unwrap();
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), numbered(&["a1"], 1));
    assert!(f.watch_paths().contains(&a.canonicalize().unwrap()), "{:?}", f.watch_paths());
    append(&a, b"a2\n");
    // `ln -sfn b.jsonl events.jsonl`: a new link renamed over the old one.
    let tmp = fx.log.with_extension("tmp");
    std::os::unix::fs::symlink(&b, &tmp).unwrap();
    std::fs::rename(&tmp, &fx.log).unwrap();
    assert_eq!(drain(&mut f), [numbered(&["a2"], 2), numbered(&["b1"], 1)].concat());
    assert!(f.watch_paths().contains(&b.canonicalize().unwrap()));
    f.commit().unwrap();
    append(&b, b"b2\n");
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), numbered(&["b2"], 2), "the checkpoint is the target's, under the link's name");
}

#[test]
fn a_checkpoint_in_the_old_format_is_resumed_with_counted_line_numbers() {
    let fx = Fixture::new();
    append(&fx.log, b"a\nb\nc\n");
    let ino = FileKey::of(&std::fs::metadata(&fx.log).unwrap()).ino;
    std::fs::create_dir_all(fx.store.path().parent().unwrap()).unwrap();
    std::fs::write(fx.store.path(), format!("{ino} 4\n")).unwrap();
    let mut f = fx.follower();
    assert_eq!(drain(&mut f), numbered(&["c"], 3));
    f.commit().unwrap();
    assert!(matches!(fx.store.load(), Some(store::Saved::Checkpoint(Checkpoint { offset: 6, line: 3, .. }))));
    // One for another inode (the file was replaced since) is not trusted.
    std::fs::write(fx.store.path(), format!("{} 4\n", ino + 1)).unwrap();
    let mut f = fx.follower();
    assert_eq!(drain(&mut f).len(), 3);
}

#[test]
fn a_runaway_line_is_cut_rather_than_held_in_memory() {
    let fx = Fixture::new();
    append(&fx.log, &vec![b'x'; MAX_LINE + 10]);
    let mut f = fx.follower();
    let cut = f.next_line().unwrap().unwrap();
    assert_eq!(cut.bytes.len(), MAX_LINE);
    assert_eq!(f.next_line().unwrap(), None);
    append(&fx.log, b"\n");
    assert_eq!(f.next_line().unwrap().map(|l| (l.no, l.bytes.len())), Some((2, 10)));
}

#[test]
fn run_syncs_then_saves_and_returns_on_a_stop() {
    let fx = Fixture::new();
    append(&fx.log, b"a\n\xff\xfe\nc\n");
    let (stop, waiter) = wake::channel(Duration::from_secs(3600));
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let (path, store, stopper) = (fx.log.clone(), fx.store.clone(), stop.clone());
    let output_path = fx.log.with_extension("out");
    let output = std::fs::File::create(&output_path).unwrap();
    let runner = std::thread::spawn(move || {
        let mut writer = output.try_clone().unwrap();
        let mut out = Output { writer: &mut writer, file: Some(output) };
        run(&path, store, &stopper, waiter, &mut out, &mut |line, out| {
            writeln!(out, "{} {}", line.no, line.bytes.len())?;
            seen_tx.send(line.no).unwrap();
            Ok(())
        })
    });
    let wait_for = |n: u64| loop {
        if seen.recv_timeout(Duration::from_secs(60)).expect("a line") == n {
            break;
        }
    };
    wait_for(3);
    append(&fx.log, b"d\n");
    wait_for(4);
    // The loop is quiet now (or about to be); a stop ends its wait.
    stop.request();
    runner.join().unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(&output_path).unwrap(), "1 1\n2 2\n3 1\n4 1\n");
    let Some(store::Saved::Checkpoint(c)) = fx.store.load() else { panic!("saved") };
    assert_eq!((c.offset, c.line), (9, 4));
}

mod model {
    //! The follower against a model of the log: arbitrary bytes (partial lines, invalid
    //! UTF-8) written in arbitrary pieces, rotations by rename (with a writer that writes on
    //! to the renamed file) and by copytruncate, and crashes, between arbitrary steps.
    //!
    //! What "every complete line once, in order" means here:
    //! - a line is complete once its newline is written; the unterminated end of a file
    //!   rotated by rename is a line too (it will not grow any more);
    //! - before a copytruncate the writer finishes its line and the follower catches up, as
    //!   logrotate users arrange (`copytruncate` loses whatever was not read; that is its
    //!   documented risk, not the follower's);
    //! - before a rename the follower has opened the current file and committed, as when
    //!   rotations are rarer than reads (a file rotated twice before it was ever opened is
    //!   out of anybody's reach);
    //! - each file starts with a line id, unique in the run: a file regrown after a
    //!   copytruncate starts with other bytes than the one that was read. (A regrown file that
    //!   repeats the old one byte for byte up to the offset cannot be told from it.)
    //!
    //! Without a crash each line is yielded exactly once, in order; a crash (the follower
    //! dropped, a new one started from the store) repeats exactly the lines after the last
    //! commit, and skips none.

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// The writer appends `body` (a line id first when at the start of a line).
        Write {
            body: Vec<u8>,
            newline: bool,
        },
        /// Up to `lines` calls of `next_line`; then, with `commit`, a commit.
        Step {
            lines: u8,
            commit: bool,
        },
        /// `mv log log.1`; the writer appends `late` to log.1; then `create` makes a new log.
        Rename {
            late: Vec<u8>,
            create: bool,
        },
        CopyTruncate,
        /// The follower is dropped without a commit and started again.
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (vec(any::<u8>(), 0..40), any::<bool>()).prop_map(|(body, newline)| Op::Write { body, newline }),
            6 => (1..6u8, any::<bool>()).prop_map(|(lines, commit)| Op::Step { lines, commit }),
            1 => (vec(any::<u8>(), 0..20), any::<bool>()).prop_map(|(late, create)| Op::Rename { late, create }),
            1 => Just(Op::CopyTruncate),
            1 => Just(Op::Crash),
        ]
    }

    /// The log as the writer made it: the lines due, in the order due.
    struct Log {
        /// (bytes, number in its file) of every complete line so far.
        lines: Vec<(Vec<u8>, u64)>,
        /// The current file's unterminated last line.
        partial: Vec<u8>,
        /// Complete lines in the current file.
        in_file: u64,
        next_id: u64,
    }

    impl Log {
        /// What the writer appends: an id first at the start of a line.
        fn bytes(&mut self, body: &[u8], newline: bool) -> Vec<u8> {
            let mut bytes = Vec::new();
            if self.partial.is_empty() {
                bytes.extend_from_slice(format!("{}:", self.next_id).as_bytes());
                self.next_id += 1;
            }
            bytes.extend_from_slice(body);
            if newline {
                bytes.push(b'\n');
            }
            bytes
        }

        fn written(&mut self, bytes: &[u8]) {
            for b in bytes {
                if *b == b'\n' {
                    self.in_file += 1;
                    self.lines.push((std::mem::take(&mut self.partial), self.in_file));
                } else {
                    self.partial.push(*b);
                }
            }
        }

        /// The current file is done with: its unterminated end is a line; a new file starts.
        fn close(&mut self, tail_is_a_line: bool) {
            if tail_is_a_line && !self.partial.is_empty() {
                self.in_file += 1;
                self.lines.push((std::mem::take(&mut self.partial), self.in_file));
            }
            self.partial.clear();
            self.in_file = 0;
        }
    }

    /// The follower and how far it got: `next` lines checked, `committed` of them saved.
    struct Reader {
        follower: Follower,
        next: usize,
        committed: usize,
    }

    impl Reader {
        fn step(&mut self, log: &Log) -> Result<bool, TestCaseError> {
            let Some(line) = self.follower.next_line().map_err(|e| TestCaseError::fail(e.to_string()))? else {
                return Ok(false);
            };
            let due = log.lines.get(self.next);
            prop_assert_eq!(
                Some((&line.bytes, line.no)),
                due.map(|(b, n)| (b, *n)),
                "line {} of {}",
                self.next,
                log.lines.len()
            );
            self.next += 1;
            Ok(true)
        }

        fn commit(&mut self) {
            self.follower.commit().unwrap();
            self.committed = self.next;
        }

        /// Steps until the follower reads the file now at the path.
        fn reach(&mut self, log: &Log, path: &Path) -> Result<(), TestCaseError> {
            let at_path = key_at(path).unwrap();
            for _ in 0..10_000 {
                if self.follower.reading() == at_path && at_path.is_some() {
                    return Ok(());
                }
                self.step(log)?;
            }
            Err(TestCaseError::fail("the follower never reached the file at the path"))
        }

        fn catch_up(&mut self, log: &Log) -> Result<(), TestCaseError> {
            for _ in 0..10_000 {
                if !self.step(log)? {
                    return Ok(());
                }
            }
            Err(TestCaseError::fail("the follower does not stop yielding"))
        }
    }

    fn check(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let fx = Fixture::new();
        let mut log = Log { lines: Vec::new(), partial: Vec::new(), in_file: 0, next_id: 0 };
        let mut r = Reader { follower: fx.follower(), next: 0, committed: 0 };
        let write = |log: &mut Log, body: &[u8], newline: bool| {
            let bytes = log.bytes(body, newline);
            append(&fx.log, &bytes);
            log.written(&bytes);
        };
        for op in ops {
            match op {
                Op::Write { body, newline } => write(&mut log, &body, newline),
                Op::Step { lines, commit } => {
                    for _ in 0..lines {
                        if !r.step(&log)? {
                            break;
                        }
                    }
                    if commit {
                        r.commit();
                    }
                }
                Op::Rename { late, create } => {
                    if !fx.log.exists() {
                        continue;
                    }
                    r.reach(&log, &fx.log)?;
                    r.commit();
                    std::fs::rename(&fx.log, fx.rotated()).unwrap();
                    let bytes = log.bytes(&late, false);
                    append(&fx.rotated(), &bytes);
                    log.written(&bytes);
                    log.close(true);
                    if create {
                        append(&fx.log, b"");
                    }
                }
                Op::CopyTruncate => {
                    if !fx.log.exists() {
                        continue;
                    }
                    if !log.partial.is_empty() {
                        write(&mut log, b"", true);
                    }
                    r.reach(&log, &fx.log)?;
                    r.catch_up(&log)?;
                    r.commit();
                    copytruncate(&fx.log, &fx.rotated());
                    log.close(false);
                }
                Op::Crash => {
                    r = Reader { follower: fx.follower(), next: r.committed, committed: r.committed };
                }
            }
        }
        // The end: the writer finishes its line (a renamed file's end counts once a new file
        // exists), and the follower catches up.
        if !fx.log.exists() {
            append(&fx.log, b"");
        }
        if !log.partial.is_empty() {
            write(&mut log, b"", true);
        }
        r.catch_up(&log)?;
        prop_assert_eq!(r.next, log.lines.len(), "lines never yielded");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn every_complete_line_is_yielded_once_in_order_and_again_only_after_a_crash(
            ops in vec(op(), 0..60)
        ) {
            check(ops)?;
        }
    }
}
