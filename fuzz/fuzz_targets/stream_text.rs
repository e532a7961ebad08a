//! Fuzzes the engine's token-text path: arbitrary bytes, cut into arbitrary tokens, through
//! the UTF-8 stream and the stop-string matcher. The module is included by path (it is plain
//! logic), so this target does not build llama.cpp.
//!
//! Checks: nothing panics; without stop strings, the text is the lossy decoding of the bytes;
//! with them, the text never contains a stop string.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/sotto-engine/src/text.rs"]
#[allow(dead_code)]
mod text;

fuzz_target!(|data: &[u8]| {
    // The first byte sets the token length (1..=8); the next up to 16 bytes, split at 0xff,
    // are the stop strings.
    let Some((&len, rest)) = data.split_first() else { return };
    let head = rest.len().min(16);
    let stops: Vec<String> = rest[..head]
        .split(|&b| b == 0xff)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let bytes = &rest[head..];
    let mut stream = text::Utf8Stream::default();
    let mut matcher = text::StopMatcher::new(stops.clone());
    let mut plain = String::new();
    let mut shown = String::new();
    let mut stopped = false;
    let mut piece = String::new();
    for token in bytes.chunks(usize::from(len % 8) + 1) {
        piece.clear();
        stream.push(token, &mut piece);
        plain.push_str(&piece);
        if !stopped {
            let (emit, hit) = matcher.push(&piece);
            shown.push_str(&emit);
            stopped = hit;
        }
    }
    let tail = stream.finish();
    plain.push_str(&tail);
    if !stopped {
        let (emit, hit) = matcher.push(&tail);
        shown.push_str(&emit);
        if !hit {
            shown.push_str(&matcher.finish());
        }
    }
    assert_eq!(plain, String::from_utf8_lossy(bytes));
    for stop in &stops {
        assert!(!shown.contains(stop.as_str()), "{stop:?} shown in {shown:?}");
    }
});
