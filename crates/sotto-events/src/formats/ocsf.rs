//! OCSF Process Activity events (class_uid 1007), as written by OCSF-native sensors and by
//! the converters in front of security data lakes.
//!
//! Must not: accept any other OCSF class: a File System Activity (1001) or Network Activity
//! (4001) record names a process too, but it is not a launch.

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::event::{Event, Format, Os};
use crate::formats::{hash_key, join_domain};
use crate::json::Doc;

/// What an OCSF event must have to say what ran.
const WHAT: &str = "process.cmd_line, process.file.path or process.name";

/// The Process Activity class.
const PROCESS_ACTIVITY: u64 = 1007;

/// Any object carrying `class_uid`: that key is OCSF's own.
pub(crate) fn matches(obj: &Map<String, Value>) -> bool {
    obj.contains_key("class_uid")
}

pub(crate) fn parse(obj: &Map<String, Value>) -> Result<Event, EventError> {
    let d = Doc::new(Format::Ocsf, obj);
    let class = d.uint("class_uid")?.ok_or_else(|| d.bad("class_uid", "an integer", &Value::Null))?;
    if class != PROCESS_ACTIVITY {
        let found = match d.str("class_name").ok().flatten() {
            Some(name) => format!("class_uid {class} ({name})"),
            None => format!("class_uid {class}"),
        };
        return Err(EventError::NotProcessCreation {
            format: Format::Ocsf,
            found,
            expected: "class_uid 1007, Process Activity",
        });
    }
    let mut e = Event::new(Format::Ocsf, os(&d)?);
    e.host = d.first_str(&["device.hostname", "device.name"])?;
    e.user = match user(&d, "actor.user")? {
        Some(u) => Some(u),
        None => user(&d, "process.user")?,
    };
    e.command_line = d.str("process.cmd_line")?;
    e.process_name = d.str("process.name")?;
    e.process_path = d.str("process.file.path")?;
    e.pid = d.uint("process.pid")?;
    e.cwd = d.str("process.working_directory")?;
    // The launching process: `process.parent_process`, or the actor's process when a
    // producer fills only that.
    let parent = ["process.parent_process", "actor.process"].into_iter().find(|p| d.object(p).is_some());
    if let Some(p) = parent {
        e.parent_command_line = d.str(&format!("{p}.cmd_line"))?;
        e.parent_name = d.str(&format!("{p}.name"))?;
        e.parent_path = d.str(&format!("{p}.file.path"))?;
        e.ppid = d.uint(&format!("{p}.pid"))?;
    }
    e.timestamp = match d.text("time_dt")? {
        Some(t) => Some(t),
        None => d.text("time")?,
    };
    e.container = d.str("container.uid")?;
    read_hashes(&d, &mut e)?;
    e.finish(WHAT)
}

/// `device.os.type` / `device.os.name` as text, else `device.os.type_id`.
fn os(d: &Doc<'_>) -> Result<Os, EventError> {
    for p in ["device.os.type", "device.os.name"] {
        if let Some(os) = d.str(p)?.and_then(|s| Os::from_hint(&s)) {
            return Ok(os);
        }
    }
    Ok(match d.uint("device.os.type_id")? {
        Some(100) => Os::Windows,
        Some(200) => Os::Linux,
        Some(300) => Os::Macos,
        _ => Os::Unknown,
    })
}

/// `DOMAIN\name` from an OCSF user object at `path`.
fn user(d: &Doc<'_>, path: &str) -> Result<Option<String>, EventError> {
    let name = d.str(&format!("{path}.name"))?;
    Ok(join_domain(d.str(&format!("{path}.domain"))?, name))
}

/// `process.file.hashes`: `[{"algorithm": "SHA-256", "algorithm_id": 3, "value": "..."}]`.
fn read_hashes(d: &Doc<'_>, e: &mut Event) -> Result<(), EventError> {
    const FIELD: &str = "process.file.hashes";
    let Some(value) = d.get(FIELD) else {
        return Ok(());
    };
    let Some(items) = value.as_array() else {
        return Err(d.bad(FIELD, "an array of fingerprint objects", value));
    };
    for item in items {
        let Some(fp) = item.as_object().map(|o| Doc::new(Format::Ocsf, o)) else {
            return Err(d.bad(FIELD, "an array of fingerprint objects", item));
        };
        let Some(v) = fp.str("value")? else { continue };
        let alg = match fp.str("algorithm")? {
            Some(a) => a,
            None => match fp.uint("algorithm_id")? {
                Some(1) => "md5".into(),
                Some(2) => "sha1".into(),
                Some(3) => "sha256".into(),
                Some(4) => "sha512".into(),
                Some(5) => "ctph".into(),
                Some(6) => "tlsh".into(),
                Some(7) => "quickxorhash".into(),
                _ => continue,
            },
        };
        e.hashes.insert(hash_key(&alg), v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: Value) -> Result<Event, EventError> {
        parse(v.as_object().unwrap())
    }

    #[test]
    fn process_activity_launch() {
        let e = run(json!({
            "class_uid": 1007, "activity_id": 1, "time": 1710234847331_u64,
            "device": {"hostname": "mbp-ops-07", "os": {"name": "macOS", "type": "macOS", "type_id": 300}},
            "actor": {"user": {"name": "alice", "uid": "501"}},
            "process": {
                "pid": 8123, "cmd_line": "security dump-keychain -d login.keychain",
                "name": "security", "file": {"path": "/usr/bin/security",
                    "hashes": [{"algorithm": "SHA-256", "algorithm_id": 3, "value": "dd"}, {"algorithm_id": 1, "value": "ee"}]},
                "parent_process": {"pid": 8100, "name": "zsh", "cmd_line": "-zsh", "file": {"path": "/bin/zsh"}}
            }
        }))
        .unwrap();
        assert_eq!(e.os, Os::Macos);
        assert_eq!(e.user.as_deref(), Some("alice"));
        assert_eq!(e.parent_path.as_deref(), Some("/bin/zsh"));
        assert_eq!(e.timestamp.as_deref(), Some("1710234847331"));
        assert_eq!(e.hashes.get("sha256").map(String::as_str), Some("dd"));
        assert_eq!(e.hashes.get("md5").map(String::as_str), Some("ee"));
    }

    #[test]
    fn os_type_id_and_actor_process_fallback() {
        let e = run(json!({
            "class_uid": 1007,
            "device": {"os": {"type_id": 100}},
            "actor": {"process": {"name": "explorer.exe", "pid": 3000}, "user": {"name": "jdoe", "domain": "CORP"}},
            "process": {"cmd_line": "notepad.exe C:\\notes.txt"}
        }))
        .unwrap();
        assert_eq!(e.os, Os::Windows);
        assert_eq!(e.parent_name.as_deref(), Some("explorer.exe"));
        assert_eq!(e.user.as_deref(), Some("CORP\\jdoe"));
    }

    #[test]
    fn other_classes_are_rejected() {
        let err = run(json!({"class_uid": 1001, "class_name": "File System Activity", "process": {"name": "x"}}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "OCSF class_uid 1001 (File System Activity) is not a process creation (class_uid 1007, Process Activity)"
        );
        assert!(matches!(run(json!({"class_uid": 4001})), Err(EventError::NotProcessCreation { .. })));
    }

    #[test]
    fn missing_process_is_named() {
        let err = run(json!({"class_uid": 1007, "process": {"pid": 1}})).unwrap_err();
        assert_eq!(err.to_string(), "OCSF event has no process.cmd_line, process.file.path or process.name");
    }

    #[test]
    fn class_uid_must_be_an_integer() {
        let err = run(json!({"class_uid": "Process Activity"})).unwrap_err();
        assert!(matches!(err, EventError::BadField { .. }), "{err}");
    }
}
