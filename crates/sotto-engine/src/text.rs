//! Turning a stream of token bytes into text a caller may see: whole UTF-8 characters only,
//! and nothing that could still turn out to be the start of a stop string.
//!
//! Pure and allocation-light; no llama.cpp here, so it is unit-tested directly.

/// Accumulates token bytes and yields the longest complete UTF-8 prefix. A token may end in
/// the middle of a multi-byte character (emoji, CJK); those bytes wait for the next token.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Add bytes; append the text that is now complete to `out` (a buffer the caller reuses,
    /// so that a token costs no allocation here).
    pub fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY of the unwrap: from_utf8 just said these bytes are valid.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"));
                    match e.error_len() {
                        // Incomplete character at the end: keep it for later.
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                        // Invalid bytes: replace them and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end of generation, lossily.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

/// Finds stop strings across token boundaries and holds back text that might begin one.
#[derive(Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher { stops, held: String::new() }
    }

    /// Add text. Returns the text safe to emit, and whether a stop string was found (in which
    /// case the returned text is everything before it and the matcher is done).
    ///
    /// A complete stop is acted on only when no other stop could still begin before it: with
    /// stops `é` and `😀é😀`, the text `😀é` holds a complete `é`, but the `😀é😀` that began
    /// earlier may yet complete, and it is the first stop that ends the text.
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        let pending =
            self.held.len() - self.stops.iter().map(|s| longest_suffix_prefix(&self.held, s)).max().unwrap_or(0);
        if let Some(pos) = self.first_complete_in(&self.held)
            && pos <= pending
        {
            let emit = self.held[..pos].to_string();
            self.held.clear();
            return (emit, true);
        }
        let emit = self.held[..pending].to_string();
        self.held.drain(..pending);
        (emit, false)
    }

    /// The held-back tail, at the end of generation, and whether it holds a stop: a complete
    /// stop waits behind an earlier partial one, and with no more text that partial one is
    /// over, so the tail ends at the complete stop.
    pub fn finish(&mut self) -> (String, bool) {
        let held = std::mem::take(&mut self.held);
        match self.first_complete_in(&held) {
            Some(pos) => (held[..pos].to_string(), true),
            None => (held, false),
        }
    }

    fn first_complete_in(&self, text: &str) -> Option<usize> {
        self.stops.iter().filter_map(|s| text.find(s.as_str())).min()
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&k| {
            text.is_char_boundary(text.len() - k) && stop.as_bytes().starts_with(&text.as_bytes()[text.len() - k..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_wait_for_their_last_byte() {
        let mut s = Utf8Stream::default();
        let snake = "🐍".as_bytes();
        let mut push = |bytes: &[u8]| {
            let mut out = String::new();
            s.push(bytes, &mut out);
            out
        };
        assert_eq!(push(b"a"), "a");
        assert_eq!(push(&snake[..2]), "");
        assert_eq!(push(&snake[2..]), "🐍");
        assert_eq!(push(b"\xffb"), "\u{fffd}b");
        assert_eq!(push(&snake[..1]), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_string_across_tokens_is_cut_and_not_emitted() {
        let mut m = StopMatcher::new(vec!["</end>".into()]);
        assert_eq!(m.push("hello <"), ("hello ".into(), false));
        assert_eq!(m.push("/en"), (String::new(), false));
        assert_eq!(m.push("d> more"), ("".into(), true));
    }

    #[test]
    fn a_false_start_is_released() {
        let mut m = StopMatcher::new(vec!["STOP".into(), "\n\n".into()]);
        assert_eq!(m.push("ST"), (String::new(), false));
        assert_eq!(m.push("AR"), ("STAR".into(), false));
        assert_eq!(m.push("x\n"), ("x".into(), false));
        assert_eq!(m.finish(), ("\n".into(), false));
    }

    #[test]
    fn earliest_stop_wins() {
        let mut m = StopMatcher::new(vec!["b".into(), "a".into()]);
        assert_eq!(m.push("xab"), ("x".into(), true));
    }

    #[test]
    fn a_complete_stop_waits_for_an_earlier_one_that_may_still_complete() {
        // The case proptest found in CI: `é` is complete, but `😀é😀` began before it.
        let mut m = StopMatcher::new(vec!["é".into(), "😀é😀".into()]);
        assert_eq!(m.push("😀😀é"), ("😀".into(), false));
        assert_eq!(m.push("😀a"), ("".into(), true));
        let mut m = StopMatcher::new(vec!["é".into(), "😀é😀".into()]);
        assert_eq!(m.push("😀😀é"), ("😀".into(), false));
        assert_eq!(m.push("a"), ("😀".into(), true));
        let mut m = StopMatcher::new(vec!["é".into(), "😀é😀".into()]);
        assert_eq!(m.push("😀😀é"), ("😀".into(), false));
        assert_eq!(m.finish(), ("😀".into(), true));
    }

    #[test]
    fn no_stops_passes_everything() {
        let mut m = StopMatcher::new(vec![]);
        assert_eq!(m.push("abc"), ("abc".into(), false));
        assert_eq!(m.finish(), (String::new(), false));
    }

    mod props {
        //! Issue 11: arbitrary bytes, split anywhere, never panic and lose nothing.
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::*;

        /// Split `bytes` at the given cut points (taken modulo its length).
        fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut parts = Vec::new();
            let mut from = 0;
            for cut in at.into_iter().chain([bytes.len()]) {
                parts.push(bytes[from..cut].to_vec());
                from = cut;
            }
            parts
        }

        proptest! {
            #[test]
            fn the_utf8_stream_yields_what_a_lossy_decoding_of_the_whole_gives(
                bytes in vec(any::<u8>(), 0..64),
                cuts in vec(any::<usize>(), 0..8),
            ) {
                let mut stream = Utf8Stream::default();
                let mut out = String::new();
                for part in split(&bytes, &cuts) {
                    stream.push(&part, &mut out);
                }
                out.push_str(&stream.finish());
                prop_assert_eq!(out, String::from_utf8_lossy(&bytes).into_owned());
            }

            #[test]
            fn the_stop_matcher_yields_the_text_before_the_first_stop(
                text in "[ab\u{e9}\u{1f600}]{0,24}",
                stops in vec("[ab\u{e9}\u{1f600}]{1,3}", 0..3),
                cuts in vec(any::<usize>(), 0..8),
            ) {
                let mut matcher = StopMatcher::new(stops.clone());
                let mut out = String::new();
                let mut hit = false;
                // Cut on character boundaries only: the matcher takes text.
                let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
                let mut at: Vec<usize> = cuts.iter().map(|c| bounds[c % bounds.len()]).collect();
                at.sort_unstable();
                let mut from = 0;
                for cut in at.into_iter().chain([text.len()]) {
                    if hit {
                        break;
                    }
                    let (emit, stopped) = matcher.push(&text[from..cut]);
                    out.push_str(&emit);
                    hit = stopped;
                    from = cut;
                }
                if !hit {
                    let (tail, stopped) = matcher.finish();
                    out.push_str(&tail);
                    hit = stopped;
                }
                let first = stops.iter().filter_map(|s| text.find(s.as_str())).min();
                prop_assert_eq!(hit, first.is_some());
                prop_assert_eq!(out.as_str(), &text[..first.unwrap_or(text.len())]);
            }
        }
    }
}
