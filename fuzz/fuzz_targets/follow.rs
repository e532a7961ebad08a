//! Fuzzes the `--follow` loop: arbitrary writes, rename and copytruncate rotations, invalid
//! UTF-8, missing newlines and crashes (a follower dropped without a commit), driven from the
//! fuzzer's bytes against a real temporary directory. The module is included by path from the
//! `sotto` binary crate, which has no library target.
//!
//! Checks: nothing panics or errors, and after the writer finishes, every line written since
//! the last rotation that the follower could see has been yielded (none skipped).
#![no_main]

use std::fs::OpenOptions;
use std::io::Write;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/sotto/src/follow/mod.rs"]
#[allow(dead_code)]
mod follow;

use follow::{Follower, OffsetStore};

fn append(path: &std::path::Path, bytes: &[u8]) {
    OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(bytes).unwrap();
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.log");
    let rotated = dir.path().join("events.log.1");
    let store = OffsetStore::at(dir.path().join("state/x.offset"));
    let mut follower = Follower::new(&log, store.clone());
    let mut written = 0u64;
    let mut at_start = true;
    let mut yielded = 0u64;
    for op in data.chunks(3) {
        let arg = op.get(1).copied().unwrap_or(0);
        match op[0] % 6 {
            // A line (or a part of one): the bytes that follow, with or without a newline.
            0 | 1 => {
                let body: Vec<u8> = op[1..].iter().copied().filter(|&b| b != b'\n').collect();
                let newline = op[0] % 2 == 0;
                if at_start {
                    // Every line starts with its own number: a rewritten file never looks
                    // like the one it replaced (a real log has timestamps for that).
                    append(&log, format!("{written}:").as_bytes());
                    at_start = false;
                }
                append(&log, &body);
                if newline {
                    append(&log, b"\n");
                    written += 1;
                    at_start = true;
                }
            }
            2 => {
                for _ in 0..=arg % 4 {
                    match follower.next_line().expect("next_line") {
                        Some(_) => yielded += 1,
                        None => break,
                    }
                }
                if arg % 2 == 0 {
                    follower.commit().expect("commit");
                }
            }
            3 => {
                if log.exists() {
                    std::fs::rename(&log, &rotated).unwrap();
                    at_start = true;
                    if arg % 2 == 0 {
                        append(&log, b"");
                    }
                }
            }
            4 => {
                if log.exists() {
                    std::fs::copy(&log, &rotated).unwrap();
                    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
                    at_start = true;
                }
            }
            _ => follower = Follower::new(&log, store.clone()),
        }
    }
    // The follower catches up; it yields at least one line per line still in the file.
    append(&log, b"\n");
    let mut tail = 0u64;
    while let Some(_) = follower.next_line().expect("next_line") {
        tail += 1;
    }
    let in_file = std::fs::read(&log).unwrap().iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(tail + yielded >= in_file, "{yielded} + {tail} lines yielded for {in_file} in the file ({written} written)");
});
