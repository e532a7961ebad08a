//! Checks the training and evaluation corpus, `eval/corpus/events.jsonl` (written by
//! `eval/corpus/generate.py`): every event parses to the labelled format and OS, each family
//! keeps one label and OS, labels and ATT&CK tags agree, the counts meet the corpus minimums,
//! and the family split leaves a real held-out side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;

fn corpus() -> Vec<LabelledEvent> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../eval/corpus/events.jsonl");
    load_suite(path).unwrap()
}

#[test]
fn every_corpus_event_parses_as_labelled() {
    let mut failures = Vec::new();
    for item in corpus() {
        match item.parse() {
            Err(e) => failures.push(format!("{} ({}): {e}", item.id, item.format)),
            Ok(event) => {
                if Some(event.source) != item.expected_source() {
                    failures.push(format!("{} ({}): parsed as {:?}", item.id, item.format, event.source));
                } else if Some(event.os) != item.expected_os() {
                    failures.push(format!("{} ({}): OS {:?}, labelled {}", item.id, item.format, event.os, item.os));
                }
            }
        }
        let raw_text = matches!(item.format.as_str(), "sysmon_xml" | "auditd" | "security_4688_xml");
        assert_eq!(item.event.is_string(), raw_text, "{}: raw formats are strings, others objects", item.id);
    }
    assert!(failures.is_empty(), "{} events do not parse as labelled:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn families_labels_and_tags_agree() {
    let mut families: BTreeMap<&str, (Label, &str)> = BTreeMap::new();
    for item in &corpus() {
        let family = item.family.as_deref().unwrap_or_else(|| panic!("{}: no family", item.id));
        assert!(item.id.starts_with(family), "{}: id does not name its family {family}", item.id);
        let first = *families.entry(family).or_insert((item.label, item.os.as_str()));
        assert_eq!(first, (item.label, item.os.as_str()), "{}: family {family} changes label or OS", item.id);
        assert!(!item.note.trim().is_empty(), "{}: no note", item.id);
        match item.label {
            Label::Benign => {
                assert!(item.techniques.is_empty(), "{}: benign with techniques", item.id);
                assert!(item.tactic.is_none(), "{}: benign with a tactic", item.id);
            }
            Label::Malicious => {
                assert!(!item.techniques.is_empty(), "{}: malicious without techniques", item.id);
                assert!(item.tactic.is_some(), "{}: malicious without a tactic", item.id);
            }
            Label::Suspicious => assert!(item.tactic.is_some(), "{}: suspicious without a tactic", item.id),
        }
    }
}

#[test]
fn corpus_counts_meet_the_minimums() {
    let corpus = corpus();
    let n = corpus.len();
    assert!(n >= 1000, "{n} events");

    let mut families: BTreeMap<&str, (Label, usize)> = BTreeMap::new();
    let mut tactics = BTreeSet::new();
    let mut per_format: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &corpus {
        families.entry(item.family_or_id()).or_insert((item.label, 0)).1 += 1;
        if item.label == Label::Malicious {
            tactics.insert(item.tactic.clone().unwrap_or_default());
        }
        *per_format.entry(item.format.as_str()).or_default() += 1;
    }
    assert!(families.len() >= 100, "{} families", families.len());
    let count = |label| families.values().filter(|(l, _)| *l == label).count();
    assert!(count(Label::Malicious) >= 50, "{} malicious families", count(Label::Malicious));
    assert!(count(Label::Benign) >= 40, "{} benign families", count(Label::Benign));
    assert!(count(Label::Suspicious) >= 5, "{} suspicious families", count(Label::Suspicious));
    assert!(tactics.len() >= 8, "malicious tactics: {tactics:?}");
    for (family, (_, events)) in &families {
        assert!(*events >= 5, "family {family} has {events} events");
    }

    let benign = corpus.iter().filter(|i| i.label == Label::Benign).count() as f64 / n as f64;
    assert!(benign >= 0.5, "benign share {benign}");
    let share = |os: &str| corpus.iter().filter(|i| i.os == os).count() as f64 / n as f64;
    let (windows, linux, macos) = (share("windows"), share("linux"), share("macos"));
    assert!(
        (0.5..=0.7).contains(&windows) && (0.18..=0.32).contains(&linux) && (0.1..=0.2).contains(&macos),
        "OS mix {windows} {linux} {macos}"
    );

    for (name, _) in SUITE_FORMATS {
        assert!(per_format.get(name).copied().unwrap_or(0) >= 15, "format {name}: {per_format:?}");
    }
    let windows_events = corpus.iter().filter(|i| i.os == "windows").count();
    let security: usize = per_format.iter().filter(|(k, _)| k.starts_with("security_4688")).map(|(_, v)| v).sum();
    assert!(security * 5 >= windows_events, "4688 shapes are {security} of {windows_events} Windows events");
}

#[test]
fn the_family_split_holds_out_whole_families() {
    let corpus = corpus();
    let sides = family_split(&corpus);
    let mut side_of: BTreeMap<&str, Side> = BTreeMap::new();
    for (item, side) in corpus.iter().zip(&sides) {
        let first = *side_of.entry(item.family_or_id()).or_insert(*side);
        assert_eq!(first, *side, "{}: family on both sides", item.id);
    }
    let test_families = side_of.values().filter(|s| **s == Side::Test).count();
    let test_events = sides.iter().filter(|s| **s == Side::Test).count();
    assert!(test_families >= 25, "{test_families} test families");
    assert!(test_events >= 250, "{test_events} test events");
    for label in [Label::Malicious, Label::Benign] {
        assert!(
            corpus.iter().zip(&sides).any(|(i, s)| i.label == label && *s == Side::Test),
            "no {label} family on the test side"
        );
    }
}
