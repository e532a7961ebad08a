//! Falco alerts: the rule that fired plus `output_fields`, whose keys are Falco field names
//! with dots in them (`proc.cmdline`, `proc.pname`, `container.id`).
//!
//! Falco runs on Linux only, so the OS is always Linux. Must not: read the human `output`
//! sentence for fields (its layout is per rule), or treat Falco's `<NA>` as a value.

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::event::{Alert, Event, Format, Os};
use crate::json::Doc;

/// What a Falco alert must have to say what ran.
const WHAT: &str = "output_fields proc.cmdline, proc.exepath or proc.name";

/// A string `rule` next to an `output_fields` object.
pub(crate) fn matches(obj: &Map<String, Value>) -> bool {
    obj.get("rule").is_some_and(Value::is_string) && obj.get("output_fields").is_some_and(Value::is_object)
}

pub(crate) fn parse(obj: &Map<String, Value>) -> Result<Event, EventError> {
    let alert = Doc::new(Format::Falco, obj);
    let f = alert.object("output_fields").unwrap_or(alert);
    // Falco prints `<NA>` for a field it could not resolve (a parent that already exited).
    let field =
        |name: &str| -> Result<Option<String>, EventError> { Ok(f.str(name)?.filter(|v| v != "<NA>" && v != "N/A")) };
    let mut e = Event::new(Format::Falco, Os::Linux);
    e.command_line = field("proc.cmdline")?;
    e.process_name = field("proc.name")?;
    e.process_path = match field("proc.exepath")? {
        Some(p) => Some(p),
        None => field("proc.exe")?.filter(|p| p.starts_with('/')),
    };
    e.pid = f.uint("proc.pid")?;
    e.ppid = f.uint("proc.ppid")?;
    e.parent_name = field("proc.pname")?;
    e.parent_path = field("proc.pexepath")?;
    e.parent_command_line = field("proc.pcmdline")?;
    e.cwd = field("proc.cwd")?;
    e.user = match field("user.name")? {
        Some(u) => Some(u),
        None => f.text("user.uid")?.map(|u| format!("uid={u}")),
    };
    e.container = field("container.id")?.filter(|id| id != "host").map(|id| {
        let image = field("container.image.repository").ok().flatten();
        let tag = field("container.image.tag").ok().flatten();
        match (image, tag) {
            (Some(i), Some(t)) => format!("{id} ({i}:{t})"),
            (Some(i), None) => format!("{id} ({i})"),
            _ => id,
        }
    });
    e.host = alert.str("hostname")?;
    e.timestamp = match alert.text("time")? {
        Some(t) => Some(t),
        None => f.text("evt.time")?,
    };
    let rule = alert.str("rule")?.unwrap_or_default();
    e.alert = Some(Alert { rule, priority: alert.str("priority")? });
    e.finish(WHAT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminal_shell_in_container() {
        let v = json!({
            "hostname": "k8s-node-2", "priority": "Notice", "rule": "Terminal shell in container",
            "source": "syscall", "time": "2024-03-12T09:14:07.331250612Z",
            "output": "09:14:07.331250612: Notice A shell was spawned in a container ...",
            "output_fields": {"container.id": "3ad7b26ded6d", "container.image.repository": "docker.io/library/nginx",
                "container.image.tag": "1.25", "evt.time": 1710234847331250612_u64, "proc.cmdline": "bash -i",
                "proc.exepath": "/usr/bin/bash", "proc.name": "bash", "proc.pname": "runc", "proc.pcmdline": "<NA>",
                "proc.pid": 4242, "user.name": "root", "user.uid": 0}
        });
        let obj = v.as_object().unwrap();
        assert!(matches(obj));
        let e = parse(obj).unwrap();
        assert_eq!(e.os, Os::Linux);
        assert_eq!(e.container.as_deref(), Some("3ad7b26ded6d (docker.io/library/nginx:1.25)"));
        assert_eq!(e.parent_command_line, None);
        assert_eq!(e.parent_name.as_deref(), Some("runc"));
        let alert = e.alert.as_ref().unwrap();
        assert_eq!(alert.rule, "Terminal shell in container");
        assert_eq!(alert.priority.as_deref(), Some("Notice"));
        assert!(e.render().contains("alert: \"Terminal shell in container (Notice)\"\n"));
    }

    #[test]
    fn host_container_is_not_a_container() {
        let v = json!({"rule": "r", "output_fields": {"proc.cmdline": "nsenter -t 1 -m sh", "container.id": "host",
            "user.uid": 0}});
        let e = parse(v.as_object().unwrap()).unwrap();
        assert_eq!(e.container, None);
        assert_eq!(e.user.as_deref(), Some("uid=0"));
    }

    #[test]
    fn alert_without_process_fields_names_them() {
        let v = json!({"rule": "Write below etc", "priority": "Error", "output_fields": {"fd.name": "/etc/x"}});
        let err = parse(v.as_object().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "Falco event has no output_fields proc.cmdline, proc.exepath or proc.name");
    }
}
