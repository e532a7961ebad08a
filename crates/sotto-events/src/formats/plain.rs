//! The minimal input: `{"command_line": "...", ...}` with a handful of optional fields, for
//! callers that have only a command line.
//!
//! Must not: accept keys outside its schema. A key this module does not know usually means a
//! richer format this crate does not recognise; silently dropping it would hide that.

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::event::{Event, Format, Os};
use crate::json::Doc;

/// Every key a plain event may carry.
const FIELDS: [&str; 10] = [
    "command_line",
    "process_name",
    "process_path",
    "parent_name",
    "parent_path",
    "parent_command_line",
    "user",
    "host",
    "cwd",
    "os",
];

pub(crate) fn matches(obj: &Map<String, Value>) -> bool {
    obj.contains_key("command_line")
}

pub(crate) fn parse(obj: &Map<String, Value>) -> Result<Event, EventError> {
    if let Some(extra) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(EventError::UnexpectedField { field: extra.clone() });
    }
    let d = Doc::new(Format::Plain, obj);
    let os = match d.str("os")? {
        None => Os::Unknown,
        Some(s) => Os::from_hint(&s).ok_or_else(|| EventError::BadField {
            format: Format::Plain,
            field: "os".into(),
            expected: "\"windows\", \"linux\" or \"macos\"",
            found: format!("{:?}", s.chars().take(40).collect::<String>()),
        })?,
    };
    let mut e = Event::new(Format::Plain, os);
    e.command_line = d.str("command_line")?;
    e.process_name = d.str("process_name")?;
    e.process_path = d.str("process_path")?;
    e.parent_name = d.str("parent_name")?;
    e.parent_path = d.str("parent_path")?;
    e.parent_command_line = d.str("parent_command_line")?;
    e.user = d.str("user")?;
    e.host = d.str("host")?;
    e.cwd = d.str("cwd")?;
    e.finish("command_line, process_path or process_name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: Value) -> Result<Event, EventError> {
        parse(v.as_object().unwrap())
    }

    #[test]
    fn command_line_with_context() {
        let e = run(json!({"command_line": "vssadmin delete shadows /all /quiet", "parent_name": "cmd.exe",
            "user": "CORP\\svc-backup", "os": "windows"}))
        .unwrap();
        assert_eq!(e.os, Os::Windows);
        assert_eq!(e.parent_name.as_deref(), Some("cmd.exe"));
    }

    #[test]
    fn os_from_the_command_line_when_not_given() {
        let e = run(json!({"command_line": "/usr/bin/python3 -c 'import pty'"})).unwrap();
        assert_eq!(e.os, Os::Linux);
        let e = run(json!({"command_line": "whoami"})).unwrap();
        assert_eq!(e.os, Os::Unknown);
    }

    #[test]
    fn unknown_keys_and_bad_os_are_errors() {
        let err = run(json!({"command_line": "x", "verdict": "benign"})).unwrap_err();
        assert!(err.to_string().starts_with("plain event has unexpected field \"verdict\"; allowed fields:"), "{err}");
        let err = run(json!({"command_line": "x", "os": "beos"})).unwrap_err();
        assert_eq!(err.to_string(), "plain field os should be \"windows\", \"linux\" or \"macos\", found \"beos\"");
    }

    #[test]
    fn empty_command_line_names_it() {
        let err = run(json!({"command_line": ""})).unwrap_err();
        assert_eq!(err.to_string(), "plain event has no command_line, process_path or process_name");
        let err = run(json!({"command_line": null})).unwrap_err();
        assert_eq!(err.to_string(), "plain event has no command_line, process_path or process_name");
    }
}
