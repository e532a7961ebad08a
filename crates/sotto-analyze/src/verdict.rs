//! The verdict sotto answers with, its JSON schema, and how model output becomes one: strictly
//! (grammar-constrained JSON, label scores) or leniently (the naive baseline's free text).
//!
//! Must not: return a technique id that does not exist, or a confidence outside 0–1.

use serde::{Deserialize, Serialize};
use sotto_events::eval::Label;

/// How urgent a verdict is, derived from the label and its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Malicious: critical at ≥ 0.9 confidence, else high; suspicious: medium at ≥ 0.5, else
    /// low; benign: none. Deterministic, so a dashboard can rely on it.
    pub fn derive(label: Label, confidence: f64) -> Self {
        match label {
            Label::Malicious if confidence >= 0.9 => Severity::Critical,
            Label::Malicious => Severity::High,
            Label::Suspicious if confidence >= 0.5 => Severity::Medium,
            Label::Suspicious => Severity::Low,
            Label::Benign => Severity::None,
        }
    }
}

/// Probability of each label, when the fast path scored them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelScores {
    pub malicious: f64,
    pub suspicious: f64,
    pub benign: f64,
}

/// sotto's answer for one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub verdict: Label,
    /// 0–1: the label's probability (fast path) or the model's own figure (generation).
    pub confidence: f64,
    pub severity: Severity,
    /// MITRE ATT&CK technique ids, each checked against the list of existing ids.
    pub techniques: Vec<String>,
    /// One sentence; absent when only the verdict was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<LabelScores>,
}

/// The JSON schema every constrained generation follows. Property order matters: the label
/// comes first, so it is decided before the model talks itself into anything.
pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "verdict": {"type": "string", "enum": ["malicious", "suspicious", "benign"]},
    "confidence": {"type": "number"},
    "severity": {"type": "string", "enum": ["none", "low", "medium", "high", "critical"]},
    "techniques": {"type": "array", "items": {"type": "string", "pattern": "^T[0-9]{4}(\\.[0-9]{3})?$"}, "maxItems": 4},
    "rationale": {"type": "string", "maxLength": 200}
  },
  "required": ["verdict", "confidence", "severity", "techniques", "rationale"],
  "additionalProperties": false
}"#;

/// Keep the ids that exist (deduplicated, in order); drop the rest.
pub fn valid_techniques<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        let id = id.as_ref().trim();
        if sotto_events::techniques::is_valid(id) && !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    out
}

/// A verdict from constrained JSON output. The grammar guarantees the shape; this checks the
/// values (confidence range, technique ids).
pub fn from_json(text: &str) -> Result<Verdict, String> {
    #[derive(Deserialize)]
    struct Raw {
        verdict: Label,
        confidence: f64,
        severity: Severity,
        techniques: Vec<String>,
        rationale: String,
    }
    let raw: Raw = serde_json::from_str(text).map_err(|e| format!("model output is not a verdict: {e}: {text}"))?;
    let confidence = if raw.confidence.is_finite() { raw.confidence.clamp(0.0, 1.0) } else { 0.5 };
    let techniques = if raw.verdict == Label::Benign { Vec::new() } else { valid_techniques(&raw.techniques) };
    let rationale = raw.rationale.trim();
    Ok(Verdict {
        verdict: raw.verdict,
        confidence,
        severity: raw.severity,
        techniques,
        rationale: (!rationale.is_empty()).then(|| rationale.to_string()),
        scores: None,
    })
}

/// The naive baseline's reading of free text: the first label word that is not negated
/// ("not malicious" does not count as malicious). `None` when no label is named.
pub fn lenient_label(text: &str) -> Option<Label> {
    let lower = text.to_lowercase();
    let mut best: Option<(usize, Label)> = None;
    for (word, label) in [("malicious", Label::Malicious), ("suspicious", Label::Suspicious), ("benign", Label::Benign)]
    {
        let mut from = 0;
        while let Some(at) = lower[from..].find(word).map(|i| i + from) {
            let before = lower[..at].trim_end();
            let negated = before.ends_with("not") || before.ends_with("n't") || before.ends_with("no");
            if !negated {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, label));
                }
                break;
            }
            from = at + word.len();
        }
    }
    best.map(|(_, l)| l)
}

/// Technique ids mentioned anywhere in free text (the naive baseline), validated.
pub fn techniques_in_text(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + 5 <= bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if boundary && bytes[i] == b'T' && bytes[i + 1..i + 5].iter().all(u8::is_ascii_digit) {
            let mut end = i + 5;
            if end + 4 <= bytes.len() && bytes[end] == b'.' && bytes[end + 1..end + 4].iter().all(u8::is_ascii_digit) {
                end += 4;
            }
            found.push(&text[i..end]);
            i = end;
        } else {
            i += 1;
        }
    }
    valid_techniques(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_verdicts_are_checked() {
        let v = from_json(
            r#"{"verdict":"malicious","confidence":1.7,"severity":"high","techniques":["T1105","T9999","T1105"],"rationale":" Downloads a payload. "}"#,
        )
        .unwrap();
        assert_eq!(v.verdict, Label::Malicious);
        assert_eq!(v.confidence, 1.0);
        assert_eq!(v.techniques, ["T1105"]);
        assert_eq!(v.rationale.as_deref(), Some("Downloads a payload."));
        let benign = from_json(
            r#"{"verdict":"benign","confidence":0.9,"severity":"none","techniques":["T1105"],"rationale":"ok"}"#,
        )
        .unwrap();
        assert!(benign.techniques.is_empty(), "a benign verdict names no technique");
        assert!(from_json("{\"verdict\": \"evil\"}").is_err());
    }

    #[test]
    fn lenient_parsing_finds_the_first_unnegated_label() {
        assert_eq!(lenient_label("This is MALICIOUS because..."), Some(Label::Malicious));
        assert_eq!(lenient_label("This is not malicious; it is benign."), Some(Label::Benign));
        assert_eq!(lenient_label("Suspicious, possibly malicious"), Some(Label::Suspicious));
        assert_eq!(lenient_label("I cannot tell."), None);
    }

    #[test]
    fn technique_ids_are_found_in_text_and_validated() {
        assert_eq!(
            techniques_in_text("Uses T1059.001 (PowerShell) and T1105; not T9999 or XT1105."),
            ["T1059.001", "T1105"]
        );
    }

    #[test]
    fn severity_follows_label_and_confidence() {
        assert_eq!(Severity::derive(Label::Malicious, 0.95), Severity::Critical);
        assert_eq!(Severity::derive(Label::Malicious, 0.6), Severity::High);
        assert_eq!(Severity::derive(Label::Suspicious, 0.4), Severity::Low);
        assert_eq!(Severity::derive(Label::Benign, 0.99), Severity::None);
    }
}
