//! The example bank: labelled process launches shipped with sotto (`bank/examples.jsonl`),
//! and retrieval of the ones most like a given event by TF-IDF cosine over the process,
//! parent and command-line text. A small model copies the judgement of a close example far
//! better than it judges an event from instructions alone, so the analyzer can put the
//! nearest examples right before the event.
//!
//! Must not: share events with the evaluation suite (the bank was written without looking
//! at it, and `tests::the_bank_is_held_out_from_the_suite` checks it stays so), or depend on
//! the model: retrieval is plain arithmetic, the same for every model.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use sotto_events::Event;
use sotto_events::eval::Label;

const BANK: &str = include_str!("../bank/examples.jsonl");

/// One labelled example.
#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub os: String,
    pub process_name: String,
    pub command_line: String,
    pub parent_name: String,
    pub user: String,
    pub label: Label,
    pub techniques: Vec<String>,
    pub rationale: String,
}

impl Example {
    /// The example as an event, in the plain input format.
    pub fn event(&self) -> Event {
        let value = serde_json::json!({
            "os": self.os,
            "process_name": self.process_name,
            "command_line": self.command_line,
            "parent_name": self.parent_name,
            "user": self.user,
        });
        sotto_events::parse_json(&value).expect("bank examples are plain events")
    }
}

/// A sparse, L2-normalised TF-IDF vector.
type Vector = Vec<(u32, f32)>;

/// The examples and their vectors.
pub struct Bank {
    examples: Vec<Example>,
    vectors: Vec<Vector>,
    /// Feature → (id, inverse document frequency).
    vocabulary: HashMap<String, (u32, f32)>,
}

impl Bank {
    /// The bank shipped with sotto, parsed and indexed once.
    pub fn shipped() -> &'static Bank {
        static BANK_INDEX: OnceLock<Bank> = OnceLock::new();
        BANK_INDEX.get_or_init(|| {
            let examples = BANK
                .lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, l)| {
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("bank/examples.jsonl line {}: {e}", i + 1))
                })
                .collect();
            Bank::new(examples)
        })
    }

    /// Index `examples`.
    pub fn new(examples: Vec<Example>) -> Bank {
        let features: Vec<HashMap<String, f32>> = examples.iter().map(|e| features(&e.event())).collect();
        let mut df: HashMap<&str, u32> = HashMap::new();
        for f in &features {
            for k in f.keys() {
                *df.entry(k.as_str()).or_default() += 1;
            }
        }
        let n = examples.len() as f32;
        let vocabulary: HashMap<String, (u32, f32)> = df
            .into_iter()
            .enumerate()
            .map(|(i, (k, d))| (k.to_string(), (i as u32, ((n + 1.0) / (d as f32 + 1.0)).ln() + 1.0)))
            .collect();
        let vectors = features.iter().map(|f| vectorise(f, &vocabulary)).collect();
        Bank { examples, vectors, vocabulary }
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// The `k` examples most like `event` with their cosine similarity, least similar first
    /// (so the closest one sits right before the event in the prompt).
    pub fn nearest(&self, event: &Event, k: usize) -> Vec<(&Example, f32)> {
        let query = vectorise(&features(event), &self.vocabulary);
        let mut scored: Vec<(usize, f32)> =
            self.vectors.iter().enumerate().map(|(i, v)| (i, cosine(&query, v))).collect();
        // Ties break on bank order, so retrieval is deterministic.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored.reverse();
        scored.into_iter().map(|(i, s)| (&self.examples[i], s)).collect()
    }

    /// Similarity-weighted label shares of `near` (as [`Bank::nearest`] returns them:
    /// malicious, suspicious, benign), smoothed so that no label is impossible, and the
    /// similarity of the closest one (0 to 1): how much the vote can be trusted. No model
    /// involved.
    pub fn vote(near: &[(&Example, f32)]) -> ([f64; 3], f64) {
        let mut shares = [0.05_f64; 3];
        let mut closest = 0.0_f64;
        for (ex, s) in near {
            closest = closest.max(f64::from(*s));
            let i = match ex.label {
                Label::Malicious => 0,
                Label::Suspicious => 1,
                Label::Benign => 2,
            };
            shares[i] += f64::from(s.max(0.0));
        }
        let sum: f64 = shares.iter().sum();
        (shares.map(|s| s / sum), closest.clamp(0.0, 1.0))
    }
}

/// What two events are compared on: the process and parent names, their words, and the
/// command line's character trigrams (which survive odd spacing, quoting and casing).
fn features(event: &Event) -> HashMap<String, f32> {
    let mut f: HashMap<String, f32> = HashMap::new();
    let mut add = |k: String, w: f32| *f.entry(k).or_default() += w;
    let base = |s: &str| {
        let s = s.rsplit(['/', '\\']).next().unwrap_or(s).to_lowercase();
        s.strip_suffix(".exe").map(str::to_string).unwrap_or(s)
    };
    if let Some(p) = event.process_name.as_deref().or(event.process_path.as_deref()) {
        add(format!("p:{}", base(p)), 3.0);
    }
    if let Some(p) = event.parent_name.as_deref().or(event.parent_path.as_deref()) {
        add(format!("pp:{}", base(p)), 2.0);
    }
    add(format!("os:{}", event.os.as_str()), 1.0);
    if let Some(cmd) = event.command_line.as_deref() {
        let lower = cmd.to_lowercase();
        for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() >= 2) {
            add(format!("w:{word}"), 1.0);
        }
        let squeezed: Vec<char> = lower.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect();
        for tri in squeezed.windows(3) {
            add(format!("c:{}", tri.iter().collect::<String>()), 0.3);
        }
    }
    f
}

fn vectorise(features: &HashMap<String, f32>, vocabulary: &HashMap<String, (u32, f32)>) -> Vector {
    let mut v: Vector = features
        .iter()
        .filter_map(|(k, tf)| vocabulary.get(k).map(|&(id, idf)| (id, (1.0 + tf.ln_1p()) * idf)))
        .collect();
    v.sort_unstable_by_key(|&(id, _)| id);
    let norm = v.iter().map(|(_, x)| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|(_, x)| *x /= norm);
    }
    v
}

/// Cosine of two L2-normalised sparse vectors sorted by index (their dot product). Also the
/// verdict head's neighbour similarity.
pub(crate) fn cosine(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut dot) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                dot += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    dot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(process: &str, cmd: &str, parent: &str) -> Event {
        sotto_events::parse_json(
            &serde_json::json!({"os": "windows", "process_name": process, "command_line": cmd, "parent_name": parent}),
        )
        .unwrap()
    }

    #[test]
    fn the_shipped_bank_is_valid() {
        let bank = Bank::shipped();
        assert!(bank.len() >= 100, "{}", bank.len());
        for ex in bank.examples() {
            assert_eq!(ex.techniques.is_empty(), ex.label == Label::Benign, "{}", ex.command_line);
            for t in &ex.techniques {
                assert!(sotto_events::techniques::is_valid(t), "{t} in {}", ex.command_line);
            }
            assert!(ex.rationale.ends_with('.') && !ex.rationale.contains('\n'), "{}", ex.rationale);
            ex.event();
        }
        for label in [Label::Malicious, Label::Suspicious, Label::Benign] {
            assert!(bank.examples().iter().filter(|e| e.label == label).count() >= 15, "{label:?}");
        }
    }

    #[test]
    fn nearest_finds_the_same_tool_and_orders_closest_last() {
        let bank = Bank::shipped();
        let e = event("vssadmin.exe", "vssadmin.exe Delete Shadows /All /Quiet", "cmd.exe");
        let near = bank.nearest(&e, 3);
        assert_eq!(near.len(), 3);
        assert!(near.windows(2).all(|w| w[0].1 <= w[1].1), "least similar first");
        let closest = near.last().unwrap().0;
        assert!(closest.command_line.to_lowercase().contains("vssadmin"), "{}", closest.command_line);
        // Deterministic.
        let again: Vec<&str> = bank.nearest(&e, 3).iter().map(|(x, _)| x.command_line.as_str()).collect();
        assert_eq!(again, near.iter().map(|(x, _)| x.command_line.as_str()).collect::<Vec<_>>());
    }

    #[test]
    fn the_vote_is_a_distribution() {
        let bank = Bank::shipped();
        let (v, _) = Bank::vote(
            &bank.nearest(&event("svchost.exe", "svchost.exe -k netsvcs -p -s Schedule", "services.exe"), 5),
        );
        assert!((v.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(v.iter().all(|&x| x > 0.0));
        assert!(v[2] > v[0], "a service host looks benign: {v:?}");
    }

    /// The evaluation is only honest if the bank does not contain the suite's events.
    #[test]
    fn the_bank_is_held_out_from_the_suite() {
        let suite_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../eval/events.jsonl");
        let suite = sotto_events::eval::load_suite(&suite_path).unwrap();
        let bank = Bank::shipped();
        let norm = |s: &str| s.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
        let bank_lines: std::collections::HashSet<String> =
            bank.examples().iter().map(|e| norm(&e.command_line)).collect();
        let mut copies = Vec::new();
        for item in &suite {
            let Ok(event) = item.parse() else { continue };
            let Some(cmd) = event.command_line.as_deref() else { continue };
            if bank_lines.contains(&norm(cmd)) {
                copies.push(format!("{}: {cmd}", item.id));
            }
        }
        assert!(copies.is_empty(), "suite events in the bank:\n{}", copies.join("\n"));
    }
}
