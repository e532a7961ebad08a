//! The labelled evaluation suite (`eval/events.jsonl` at the repository root): its line
//! schema, a loader that checks it, and the bridge from a labelled line to a parsed [`Event`].
//! `sotto eval` runs the classifier over these and scores the verdicts.
//!
//! Must not: score anything (that needs the model and belongs to the binary), or accept a
//! suite whose ids repeat or whose technique ids do not exist: a broken suite would make every
//! score after it meaningless.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Event, Format, Os};
use crate::{EventError, parse_json, parse_line, techniques};

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod suite_tests;

/// The `format` values a suite line may carry, and the [`Format`] each parses as.
pub const SUITE_FORMATS: [(&str, Format); 16] = [
    ("ecs", Format::Ecs),
    ("ocsf", Format::Ocsf),
    ("sysmon_winlogbeat", Format::Sysmon),
    ("sysmon_flat", Format::Sysmon),
    ("sysmon_xml", Format::Sysmon),
    ("osquery", Format::Osquery),
    ("auditd", Format::Auditd),
    ("falco", Format::Falco),
    ("plain", Format::Plain),
    // Windows Security 4688: the event XML, winlogbeat, flat forwarder JSON.
    ("security_4688_xml", Format::Security4688),
    ("security_4688_winlogbeat", Format::Security4688),
    ("security_4688_flat", Format::Security4688),
    // What EVTX converters write: `evtx_dump` JSON (`#attributes`, EventData as a map) and the
    // XML-as-JSON of EvtxECmd and xmltodict pipelines (`@Name`/`#text` lists).
    ("sysmon_evtx_dump", Format::Sysmon),
    ("security_4688_evtx_dump", Format::Security4688),
    ("sysmon_xmljson", Format::Sysmon),
    ("security_4688_xmljson", Format::Security4688),
];

/// The ground truth for one event.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Clear attacker tradecraft.
    Malicious,
    /// Dual use: an analyst should look, but it is often legitimate.
    Suspicious,
    /// Normal activity, including activity that only looks alarming.
    Benign,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Malicious => "malicious",
            Label::Suspicious => "suspicious",
            Label::Benign => "benign",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the suite.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelledEvent {
    /// Unique across the suite; names the OS, the behaviour and, in a group, the format.
    pub id: String,
    pub label: Label,
    /// ATT&CK ids the event shows; empty for benign events.
    pub techniques: Vec<String>,
    /// The OS the event came from, as `windows`, `linux` or `macos` ([`LabelledEvent::expected_os`]
    /// reads it); the parser must reach the same answer from the event alone.
    pub os: String,
    /// One of [`SUITE_FORMATS`]; finer than [`Format`] because Sysmon has three shapes.
    pub format: String,
    /// Shared by the lines that present one launch in several formats, so a score can check
    /// the verdict does not depend on the format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The technique or benign activity the event instantiates (`win-certutil-download`,
    /// `linux-cron-logrotate`). Train and test are split by family, so that a test figure
    /// measures new kinds of activity rather than remembered templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The ATT&CK tactic of a malicious or suspicious family (`credential-access`), for
    /// counting coverage; `None` for benign events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tactic: Option<String>,
    /// Why the label is what it is, for a person reading a wrong verdict.
    pub note: String,
    /// The event exactly as the tool emits it; for `sysmon_xml` and `auditd` a JSON string
    /// holding the raw XML or audit lines.
    pub event: Value,
}

impl LabelledEvent {
    /// The [`Format`] this line's event should parse as.
    pub fn expected_source(&self) -> Option<Format> {
        SUITE_FORMATS.iter().find(|(name, _)| *name == self.format).map(|(_, f)| *f)
    }

    /// The labelled OS; `None` only for a line that [`load_suite`] would have refused.
    pub fn expected_os(&self) -> Option<Os> {
        match self.os.as_str() {
            "windows" => Some(Os::Windows),
            "linux" => Some(Os::Linux),
            "macos" => Some(Os::Macos),
            _ => None,
        }
    }

    /// Parses the event as the daemon would receive it: raw text through [`parse_line`],
    /// JSON through [`parse_json`].
    pub fn parse(&self) -> Result<Event, EventError> {
        match &self.event {
            Value::String(raw) => parse_line(raw),
            other => parse_json(other),
        }
    }
}

/// The side of the family split an event falls on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// What a verdict model may learn from.
    Train,
    /// Held out: no family here has any event in training.
    Test,
}

impl LabelledEvent {
    /// The family, or the id for an event that names none (a family of one).
    pub fn family_or_id(&self) -> &str {
        self.family.as_deref().unwrap_or(&self.id)
    }
}

/// Splits events by family: every event of a family is on the same side, so the test side
/// holds only kinds of activity the training side never showed.
///
/// Deterministic and not hand-picked: the families of each label are ordered by a hash of
/// their name (FNV-1a), and three in every ten of that order go to the test side. Stratifying
/// by label keeps the label shares of both sides close to the whole's.
pub fn family_split(items: &[LabelledEvent]) -> Vec<Side> {
    let mut by_label: std::collections::BTreeMap<Label, Vec<&str>> = std::collections::BTreeMap::new();
    let mut seen = HashSet::new();
    for item in items {
        let family = item.family_or_id();
        if seen.insert(family) {
            by_label.entry(item.label).or_default().push(family);
        }
    }
    let mut test = HashSet::new();
    for families in by_label.values_mut() {
        families.sort_by_key(|f| (fnv1a(f.as_bytes()), *f));
        for (rank, family) in families.iter().enumerate() {
            if matches!(rank % 10, 1 | 4 | 7) {
                test.insert(*family);
            }
        }
    }
    items.iter().map(|i| if test.contains(i.family_or_id()) { Side::Test } else { Side::Train }).collect()
}

/// 64-bit FNV-1a: a stable hash (the standard library's may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Why a suite file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The path as given.
        path: String,
        /// The operating system's message.
        reason: String,
    },
    /// A line is not valid JSON or does not follow the line schema.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// The JSON or schema error.
        reason: String,
    },
    /// Two lines share an id.
    #[error("line {line}: id {id:?} is already used")]
    DuplicateId {
        /// 1-based line number of the second use.
        line: usize,
        /// The repeated id.
        id: String,
    },
    /// An `os` other than `windows`, `linux` or `macos`.
    #[error("line {line} ({id}): unknown os {os:?}; expected windows, linux or macos")]
    UnknownOs {
        /// 1-based line number.
        line: usize,
        /// The event's id.
        id: String,
        /// The offending OS.
        os: String,
    },
    /// A technique id that is not in the ATT&CK table.
    #[error("line {line} ({id}): {technique:?} is not an ATT&CK Enterprise technique id")]
    BadTechnique {
        /// 1-based line number.
        line: usize,
        /// The event's id.
        id: String,
        /// The offending technique id.
        technique: String,
    },
    /// A `format` outside [`SUITE_FORMATS`].
    #[error("line {line} ({id}): unknown format {format:?}")]
    UnknownFormat {
        /// 1-based line number.
        line: usize,
        /// The event's id.
        id: String,
        /// The offending format.
        format: String,
    },
}

/// Loads and checks a suite file: one JSON object per line, blank lines ignored.
pub fn load_suite(path: impl AsRef<Path>) -> Result<Vec<LabelledEvent>, SuiteError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SuiteError::Io { path: path.display().to_string(), reason: e.to_string() })?;
    parse_suite(&text)
}

/// [`load_suite`] on text already read.
pub fn parse_suite(text: &str) -> Result<Vec<LabelledEvent>, SuiteError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let item: LabelledEvent =
            serde_json::from_str(raw).map_err(|e| SuiteError::Line { line, reason: e.to_string() })?;
        if !seen.insert(item.id.clone()) {
            return Err(SuiteError::DuplicateId { line, id: item.id });
        }
        if item.expected_source().is_none() {
            return Err(SuiteError::UnknownFormat { line, id: item.id, format: item.format });
        }
        if item.expected_os().is_none() {
            return Err(SuiteError::UnknownOs { line, id: item.id, os: item.os });
        }
        if let Some(t) = item.techniques.iter().find(|t| !techniques::is_valid(t)) {
            return Err(SuiteError::BadTechnique { line, id: item.id.clone(), technique: t.clone() });
        }
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"id": "a", "label": "benign", "techniques": [], "os": "linux", "format": "plain", "note": "n", "event": {"command_line": "ls", "os": "linux"}}"#;

    #[test]
    fn a_line_loads_and_parses() {
        let suite = parse_suite(LINE).unwrap();
        assert_eq!(suite.len(), 1);
        assert_eq!(suite[0].label, Label::Benign);
        assert_eq!(suite[0].label.to_string(), "benign");
        assert_eq!(suite[0].parse().unwrap().command_line.as_deref(), Some("ls"));
    }

    #[test]
    fn the_split_keeps_each_family_on_one_side() {
        let mut lines = Vec::new();
        for f in 0..40 {
            let label = ["benign", "malicious"][f % 2];
            for e in 0..3 {
                let line = LINE
                    .replace("\"id\": \"a\"", &format!("\"id\": \"f{f}-{e}\", \"family\": \"fam-{f}\""))
                    .replace("\"benign\"", &format!("\"{label}\""));
                lines.push(line);
            }
        }
        let items = parse_suite(&lines.join("\n")).unwrap();
        let sides = family_split(&items);
        let mut side_of = std::collections::HashMap::new();
        for (item, side) in items.iter().zip(&sides) {
            assert_eq!(*side_of.entry(item.family_or_id()).or_insert(*side), *side, "{}", item.id);
        }
        for label in [Label::Benign, Label::Malicious] {
            let test = items.iter().zip(&sides).filter(|(i, s)| i.label == label && **s == Side::Test).count();
            assert_eq!(test, 6 * 3, "{label}: 6 of 20 families, 3 events each");
        }
        assert_eq!(sides, family_split(&items), "deterministic");
    }

    #[test]
    fn broken_suites_are_refused() {
        let twice = format!("{LINE}\n\n{LINE}");
        assert_eq!(parse_suite(&twice), Err(SuiteError::DuplicateId { line: 3, id: "a".into() }));
        let bad_t = LINE.replace("\"techniques\": []", "\"techniques\": [\"T9999\"]");
        assert!(matches!(parse_suite(&bad_t), Err(SuiteError::BadTechnique { .. })));
        let bad_os = LINE.replace("\"os\": \"linux\", \"format\"", "\"os\": \"beos\", \"format\"");
        assert!(matches!(parse_suite(&bad_os), Err(SuiteError::UnknownOs { .. })));
        let bad_f = LINE.replace("\"plain\"", "\"csv\"");
        assert!(matches!(parse_suite(&bad_f), Err(SuiteError::UnknownFormat { .. })));
        let extra = LINE.replace("\"note\"", "\"extra\": 1, \"note\"");
        assert!(matches!(parse_suite(&extra), Err(SuiteError::Line { line: 1, .. })));
        assert!(matches!(load_suite("/nonexistent/suite.jsonl"), Err(SuiteError::Io { .. })));
    }
}
