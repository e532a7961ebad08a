//! Checks the shipped suite, `eval/events.jsonl`: every event parses to the labelled OS, the
//! counts meet the suite's minimums, and `eval/README.md` states the counts it really has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn suite() -> Vec<LabelledEvent> {
    load_suite(root().join("eval/events.jsonl")).unwrap()
}

#[test]
fn every_event_parses_as_labelled() {
    for item in suite() {
        let event = item.parse().unwrap_or_else(|e| panic!("{}: {e}", item.id));
        assert_eq!(Some(event.source), item.expected_source(), "{}", item.id);
        assert_eq!(Some(event.os), item.expected_os(), "{}: OS", item.id);
        assert!(
            event.command_line.is_some() || event.process_path.is_some(),
            "{}: no command line or process path",
            item.id
        );
        let raw_text = matches!(item.format.as_str(), "sysmon_xml" | "auditd");
        assert_eq!(item.event.is_string(), raw_text, "{}: raw formats are strings, others objects", item.id);
        assert!(!item.note.trim().is_empty(), "{}", item.id);
        match item.label {
            Label::Benign => assert!(item.techniques.is_empty(), "{}: benign with techniques", item.id),
            Label::Malicious => assert!(!item.techniques.is_empty(), "{}: malicious without techniques", item.id),
            Label::Suspicious => {}
        }
        let rendered = event.render();
        assert!(rendered.lines().all(|l| l.contains(": \"")), "{}: {rendered}", item.id);
    }
}

#[test]
fn counts_meet_the_minimums() {
    let suite = suite();
    let n = suite.len();
    assert!(n >= 170, "{n} events");
    let mut per_format: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &suite {
        *per_format.entry(item.format.as_str()).or_default() += 1;
    }
    // The suite predates the Security 4688 and converter shapes; the corpus covers those.
    for (name, _) in SUITE_FORMATS.iter().take(9) {
        assert!(per_format.get(name).copied().unwrap_or(0) >= 6, "format {name}: {per_format:?}");
    }
    let sysmon: usize = per_format.iter().filter(|(k, _)| k.starts_with("sysmon")).map(|(_, v)| v).sum();
    assert!(sysmon >= 30, "sysmon {sysmon}");

    let share = |f: &dyn Fn(&LabelledEvent) -> bool| suite.iter().filter(|i| f(i)).count() as f64 / n as f64;
    let windows = share(&|i| i.os == "windows");
    let linux = share(&|i| i.os == "linux");
    let macos = share(&|i| i.os == "macos");
    assert!((0.42..=0.58).contains(&windows) && (0.22..=0.38).contains(&linux) && (0.14..=0.26).contains(&macos));
    let malicious = share(&|i| i.label == Label::Malicious);
    let suspicious = share(&|i| i.label == Label::Suspicious);
    let benign = share(&|i| i.label == Label::Benign);
    assert!((0.28..=0.42).contains(&malicious), "malicious {malicious}");
    assert!((0.14..=0.26).contains(&suspicious), "suspicious {suspicious}");
    assert!((0.38..=0.52).contains(&benign), "benign {benign}");
}

#[test]
fn groups_present_one_launch_in_several_formats() {
    let suite = suite();
    let mut groups: BTreeMap<&str, Vec<&LabelledEvent>> = BTreeMap::new();
    for item in &suite {
        if let Some(g) = &item.group {
            groups.entry(g.as_str()).or_default().push(item);
        }
    }
    assert!(groups.len() >= 15, "{} groups", groups.len());
    for (g, members) in &groups {
        assert!(members.len() >= 2, "group {g} has one member");
        let formats: BTreeSet<&str> = members.iter().map(|m| m.format.as_str()).collect();
        assert_eq!(formats.len(), members.len(), "group {g} repeats a format");
        let first = members[0];
        let parsed: Vec<Event> = members.iter().map(|m| m.parse().unwrap()).collect();
        for (m, e) in members.iter().zip(&parsed) {
            assert_eq!((m.label, &m.os), (first.label, &first.os), "group {g}: {}", m.id);
            assert_eq!(m.techniques, first.techniques, "group {g}: {}", m.id);
            let name = |e: &Event| e.process_name.as_deref().map(str::to_ascii_lowercase);
            assert_eq!(name(e), name(&parsed[0]), "group {g}: {} runs another program", m.id);
        }
    }
}

/// `eval/README.md` has tables of two-column `| name | count |` rows; each label, OS and format
/// count, the total and the number of groups must equal what the suite holds.
#[test]
fn readme_counts_are_true() {
    let suite = suite();
    let readme = std::fs::read_to_string(root().join("eval/README.md")).unwrap();
    let mut stated: BTreeMap<String, usize> = BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
        if let [name, count] = cells.as_slice()
            && let Ok(count) = count.parse::<usize>()
        {
            stated.insert(name.trim_matches('`').to_string(), count);
        }
    }
    let mut actual: BTreeMap<String, usize> = BTreeMap::new();
    for item in &suite {
        *actual.entry(item.label.to_string()).or_default() += 1;
        *actual.entry(item.os.to_string()).or_default() += 1;
        *actual.entry(item.format.clone()).or_default() += 1;
    }
    actual.insert("total".into(), suite.len());
    let groups: BTreeSet<&String> = suite.iter().filter_map(|i| i.group.as_ref()).collect();
    actual.insert("multi-format groups".into(), groups.len());
    for (name, count) in &actual {
        assert_eq!(stated.get(name), Some(count), "README count for {name}");
    }
}
