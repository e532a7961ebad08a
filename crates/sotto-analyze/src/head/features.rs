//! The verdict head's input: one fixed-length vector per event, built from the event alone in
//! microseconds. Three blocks, each scaled to unit length so that none drowns the others:
//! hashed tokens of the command line, image and parent (with the parent→child pair), hashed
//! character 4-grams of the command line, and the named evidence of [`super::evidence`].
//!
//! Values that vary between machines and say nothing about intent (user names inside paths,
//! GUIDs, numbers, IP addresses, long base64 or hex blobs) are replaced by placeholders first,
//! so the head learns `c:\users\<u>\appdata\local\temp` rather than one user's profile.
//! Must not: read anything but the event (no clock, no model), or depend on the order of a
//! hash map: the same event gives the same vector on every machine.

use std::sync::LazyLock;

use regex::Regex;
use sotto_events::Event;

use super::evidence::{DETECTORS, STRONG, View, WEAK};

/// Buckets of the token block.
pub const TOKEN_BUCKETS: usize = 2048;
/// Buckets of the character n-gram block.
pub const GRAM_BUCKETS: usize = 2048;
/// Characters of the command line the n-grams are taken from: bounds the cost of one event.
const GRAM_CHARS: usize = 1024;
/// Length of the character n-grams.
const GRAM: usize = 4;

/// Where each block starts in the vector.
pub const TOKENS_AT: usize = 0;
pub const GRAMS_AT: usize = TOKEN_BUCKETS;
pub const EVIDENCE_AT: usize = TOKEN_BUCKETS + GRAM_BUCKETS;

/// After the detectors: how many strong and how many weak detectors fired, and whether any
/// strong one did.
pub const AGGREGATES: [&str; 3] = ["strong_count", "strong_any", "weak_count"];

/// The vector's length.
pub fn dimension() -> usize {
    EVIDENCE_AT + DETECTORS.len() + AGGREGATES.len()
}

/// One event's features: the dense vector, and the token behind each token bucket it uses
/// (to name a bucket in a verdict's evidence).
pub struct Features {
    pub x: Vec<f32>,
    pub tokens: Vec<(usize, String)>,
    /// The lower-cased event the detectors read (for the techniques they imply).
    pub view: View,
}

static GUID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?").expect("regex"));
static USER_DIR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\\users\\|/home/|/users/)[^\\/\s]+").expect("regex"));
static IP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b").expect("regex"));
static BLOB: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[a-z0-9+/]{40,}={0,2}").expect("regex"));
static HEX: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(?:0x)?[0-9a-f]{12,}\b").expect("regex"));
static DIGITS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+").expect("regex"));

/// Lower case, with machine-specific values replaced by placeholders.
pub fn normalise(text: &str) -> String {
    let t = text.to_lowercase();
    let t = GUID.replace_all(&t, "<guid>");
    let t = USER_DIR.replace_all(&t, |c: &regex::Captures<'_>| {
        // Shared profiles say something (Public is a favourite drop folder); a person's name does not.
        let name = &c[0][c[1].len()..];
        if matches!(name, "public" | "default" | "shared" | "all users") {
            c[0].to_string()
        } else {
            format!("{}<u>", &c[1])
        }
    });
    let t = IP.replace_all(&t, "<ip>");
    let t = BLOB.replace_all(&t, "<blob>");
    let t = HEX.replace_all(&t, "<hex>");
    DIGITS.replace_all(&t, "0").into_owned()
}

/// 64-bit FNV-1a of a namespace and a token: stable across machines and releases.
fn bucket(namespace: &str, token: &str, buckets: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in namespace.as_bytes().iter().chain([0u8].iter()).chain(token.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % buckets as u64) as usize
}

/// Whitespace- and punctuation-separated words, with path-like words also split into their
/// components. Flags keep their dash or slash (`-urlcache`, `/c`).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.split(|c: char| c.is_whitespace() || "\"'`,;()[]{}|<>&^=".contains(c)) {
        let w = raw.trim_matches(|c: char| ".:".contains(c));
        if w.is_empty() {
            continue;
        }
        if w.len() <= 48 {
            out.push(w.to_string());
        }
        if w.contains(['\\', '/', ':', '.']) {
            for part in w.split(['\\', '/', ':', '.']) {
                if part.len() >= 2 && part != w {
                    out.push(part.to_string());
                }
            }
        }
    }
    out
}

/// Adds `1 + ln(count)` per distinct bucket, then scales the block to unit length.
fn fill_block(x: &mut [f32], counts: &std::collections::BTreeMap<usize, u32>) {
    let mut norm = 0.0f32;
    for (&i, &c) in counts {
        let v = 1.0 + (c as f32).ln();
        x[i] = v;
        norm += v * v;
    }
    if norm > 0.0 {
        let n = norm.sqrt();
        for &i in counts.keys() {
            x[i] /= n;
        }
    }
}

/// The words of a text as it was written, for a normalised word: evidence reads `"system32"`,
/// not the hashed form `"system0"`. Only numbers are given back: a user name, GUID or address
/// stays a placeholder. Built only when a word may have lost its digits.
struct AsWritten<'t> {
    text: &'t str,
    /// Each word of `text` by its normalised form.
    by_normalised: std::cell::OnceCell<std::collections::HashMap<String, String>>,
}

impl<'t> AsWritten<'t> {
    fn new(text: &'t str) -> Self {
        AsWritten { text, by_normalised: std::cell::OnceCell::new() }
    }

    /// `normalised` as the text spelled it, or as it is where no word of the text gives it.
    fn word<'w>(&self, normalised: &'w str) -> std::borrow::Cow<'w, str> {
        if !normalised.contains('0') || normalised.contains('<') {
            return normalised.into();
        }
        let written = self.by_normalised.get_or_init(|| {
            let mut map = std::collections::HashMap::new();
            for w in words(self.text) {
                map.entry(normalise(&w)).or_insert(w);
            }
            map
        });
        written.get(normalised).map_or(normalised.into(), |w| w.clone().into())
    }
}

/// The features of one event.
pub fn extract(event: &Event) -> Features {
    let view = View::new(event);
    let mut x = vec![0.0f32; dimension()];
    let mut tokens: Vec<(usize, String)> = Vec::new();

    let cmd = normalise(&view.cmd);
    let image = normalise(&view.image);
    let parent = view.parent.clone();
    let mut counts = std::collections::BTreeMap::new();
    let mut add = |namespace: &str, token: &str, shown: String| {
        let i = bucket(namespace, token, TOKEN_BUCKETS);
        *counts.entry(TOKENS_AT + i).or_insert(0u32) += 1;
        if !tokens.iter().any(|(j, _)| *j == i) {
            tokens.push((i, shown));
        }
    };
    let cmd_written = AsWritten::new(&view.cmd);
    for w in words(&cmd) {
        add("c", &w, format!("\"{}\" in the command line", cmd_written.word(&w)));
    }
    add("i", &view.name, format!("image {}", view.name));
    let image_written = AsWritten::new(&view.image);
    for w in words(&image) {
        add("d", &w, format!("\"{}\" in the image path", image_written.word(&w)));
    }
    if !parent.is_empty() {
        add("p", &parent, format!("parent {parent}"));
        add("x", &format!("{parent}>{}", view.name), format!("{parent} → {}", view.name));
    }
    add("o", view.os.as_str(), format!("on {}", view.os.as_str()));
    fill_block(&mut x, &counts);

    let mut grams = std::collections::BTreeMap::new();
    let chars: Vec<char> = cmd.chars().take(GRAM_CHARS).collect();
    for w in chars.windows(GRAM) {
        let g: String = w.iter().collect();
        *grams.entry(GRAMS_AT + bucket("g", &g, GRAM_BUCKETS)).or_insert(0u32) += 1;
    }
    fill_block(&mut x, &grams);

    let (mut strong, mut weak) = (0.0f32, 0.0f32);
    for (k, d) in DETECTORS.iter().enumerate() {
        let v = (d.test)(&view);
        x[EVIDENCE_AT + k] = v;
        if v > 0.0 {
            if STRONG.contains(&d.id) {
                strong += 1.0;
            } else if WEAK.contains(&d.id) {
                weak += 1.0;
            }
        }
    }
    let at = EVIDENCE_AT + DETECTORS.len();
    x[at] = strong.min(3.0) / 2.0;
    x[at + 1] = if strong > 0.0 { 1.0 } else { 0.0 };
    x[at + 2] = weak.min(6.0) / 3.0;
    Features { x, tokens, view }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> Event {
        sotto_events::parse_json(&v).unwrap()
    }

    #[test]
    fn evidence_spells_numbers_as_written_and_keeps_placeholders_for_people() {
        let f = extract(&event(json!({
            "command_line": r"C:\Windows\System32\svchost.exe -k netsvcs -s x64 C:\Users\alice\a.exe",
            "process_path": r"C:\Windows\System32\svchost.exe",
            "os": "windows",
        })));
        let shown: Vec<&str> = f.tokens.iter().map(|(_, t)| t.as_str()).collect();
        assert!(shown.contains(&"\"system32\" in the command line"), "{shown:?}");
        assert!(shown.contains(&"\"system32\" in the image path"), "{shown:?}");
        assert!(shown.contains(&"\"x64\" in the command line"), "{shown:?}");
        assert!(!shown.iter().any(|t| t.contains("system0") || t.contains("alice")), "{shown:?}");
    }

    #[test]
    fn machine_specific_values_are_placeholders() {
        let n = normalise(
            r"C:\Users\jdoe\AppData\Local\Temp\{8A2F1C3D-1111-2222-3333-444455556666}\x64.exe http://203.0.113.7:8080/a",
        );
        assert_eq!(n, r"c:\users\<u>\appdata\local\temp\<guid>\x0.exe http://<ip>:0/a");
    }

    #[test]
    fn the_same_launch_by_other_users_gives_the_same_vector() {
        // Same-length names and numbers: the command line's length is a feature of its own.
        let a = extract(&event(
            json!({"command_line": "C:\\Users\\alice\\AppData\\Roaming\\upd.exe /s 12", "os": "windows"}),
        ));
        let b = extract(&event(
            json!({"command_line": "C:\\Users\\carol\\AppData\\Roaming\\upd.exe /s 34", "os": "windows"}),
        ));
        assert_eq!(a.x, b.x);
        assert_eq!(a.x.len(), dimension());
    }

    #[test]
    fn blocks_have_unit_length() {
        let f = extract(&event(json!({"command_line": "cmd.exe /c whoami && net group \"domain admins\" /domain",
            "parent_name": "w3wp.exe", "os": "windows"})));
        for range in [TOKENS_AT..GRAMS_AT, GRAMS_AT..EVIDENCE_AT] {
            let n: f32 = f.x[range].iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-4, "{n}");
        }
        assert!(f.tokens.iter().any(|(_, t)| t == "w3wp.exe → cmd.exe"), "{:?}", f.tokens);
    }

    #[test]
    fn long_command_lines_cost_a_bounded_number_of_grams() {
        let long = format!("powershell -enc {}", "QUJD".repeat(50_000));
        let f = extract(&event(json!({"command_line": long, "os": "windows"})));
        let used = f.x[GRAMS_AT..EVIDENCE_AT].iter().filter(|v| **v > 0.0).count();
        assert!(used <= GRAM_CHARS, "{used}");
    }
}
