//! Normalises endpoint process-launch events from the formats sensors actually emit (ECS, OCSF,
//! Sysmon event id 1 and Windows Security event 4688 in every shape a Windows record travels
//! in, osquery, auditd, Falco, and a plain command-line object) into one [`Event`], and renders
//! that event as the injection-safe text block a model reads.
//!
//! Also holds the MITRE ATT&CK technique list used to check model output ([`techniques`]), the
//! loader for the labelled evaluation suite ([`eval`]), and the `.evtx` file reader ([`evtx`]).
//! Must not: depend on the engine or on llama.cpp (this crate builds quickly and is used by the
//! server and the CLI alike), do I/O outside [`eval::load_suite`] and [`evtx`] (which reads
//! files by design), or classify anything.

pub mod error;
pub mod eval;
pub mod event;
pub mod evtx;
mod formats;
mod json;
pub mod techniques;

use serde_json::Value;

pub use error::EventError;
pub use eval::{Label, LabelledEvent, SuiteError, load_suite};
pub use event::{Alert, COMMAND_LINE_MISSING_NOTE, Event, Format, Os};
pub use evtx::{EvtxCounts, EvtxFileError, EvtxRecords, RecordError, is_evtx, read_evtx, read_evtx_from};
pub use formats::auditd::parse_auditd;

/// Reads one event from a JSON value, detecting its format from its shape.
///
/// Detection order, first match wins (each test is on top-level keys; a dotted path means
/// the key may be nested or flattened):
/// 1. `auditd` holding a string: raw auditd lines, which must form exactly one event.
/// 2. `class_uid` present: OCSF; anything but 1007 (Process Activity) is rejected.
/// 3. An EVTX converter record: `Event` holding a `System` object, a top-level `System`
///    object, or an EvtxECmd line (`Payload` next to `EventId`/`EventID`). Read as a Windows
///    record: Sysmon id 1 and Security 4688 become events, any other provider or id is
///    [`EventError::NotProcessCreation`], so a reader of a whole export can count and skip them.
/// 4. `winlog.*` whose provider or channel names Sysmon, or whose event data has `UtcTime` and
///    `ProcessGuid`: Sysmon via winlogbeat.
/// 5. `winlog.*` with event id 4688 (`winlog.event_id` as a number or text, or `event.code`)
///    from the Security provider or channel, or with `winlog.event_data.NewProcessName`:
///    Security 4688 via winlogbeat. 4 and 5 come before ECS because winlogbeat documents carry
///    ECS fields too; any other winlogbeat document falls through to ECS.
/// 6. `EventID` (or `EventId`) with a Sysmon `SourceName`/`ProviderName`/`Provider`/`Channel`,
///    or with `UtcTime` plus `Image` or `ProcessGuid`: Sysmon as flat forwarder JSON.
/// 7. `EventID` (or `EventId`) 4688 with a Security source or channel, or with
///    `NewProcessName`: Security 4688 as flat forwarder JSON.
/// 8. `rule` (a string) and `output_fields` (an object): Falco.
/// 9. `columns` holding `cmdline` plus a process column, next to `name`, `hostIdentifier`,
///    `action` or `unixTime`; or a bare row with `cmdline` plus `path`, `parent`, `cwd`, `auid`
///    or `pid`: osquery.
/// 10. Any `process` or `process.*` key: ECS; an `event.category` without "process" is rejected.
/// 11. `command_line`: plain, which rejects any key outside its schema.
///
/// A JSON string holding Windows event XML (starting with `<`) or auditd text (starting with
/// `type=` or `node=`) is read as [`parse_line`] would, so a JSON API can carry those raw.
pub fn parse_json(value: &Value) -> Result<Event, EventError> {
    let obj = match value {
        Value::Object(obj) => obj,
        Value::String(s) if is_raw_text(s) => return parse_line(s),
        other => return Err(EventError::NotAnObject { found: error::json_kind(other) }),
    };
    if let Some(raw) = obj.get("auditd").and_then(Value::as_str) {
        return formats::auditd::parse_one(raw);
    }
    if formats::ocsf::matches(obj) {
        return formats::ocsf::parse(obj);
    }
    if formats::windows::matches_converter(obj) {
        return formats::windows::parse_converter(obj);
    }
    if formats::sysmon::matches_winlogbeat(obj) {
        return formats::sysmon::parse_winlogbeat(obj);
    }
    if formats::security::matches_winlogbeat(obj) {
        return formats::security::parse_winlogbeat(obj);
    }
    if formats::sysmon::matches_flat(obj) {
        return formats::sysmon::parse_flat(obj);
    }
    if formats::security::matches_flat(obj) {
        return formats::security::parse_flat(obj);
    }
    if formats::falco::matches(obj) {
        return formats::falco::parse(obj);
    }
    if formats::osquery::matches(obj) {
        return formats::osquery::parse(obj);
    }
    if formats::ecs::matches(obj) {
        return formats::ecs::parse(obj);
    }
    if formats::plain::matches(obj) {
        return formats::plain::parse(obj);
    }
    Err(EventError::UnknownShape)
}

/// Reads one event from one input: a JSON object (a JSONL line), a Windows event XML document
/// (starts with `<`, may span lines; routed by provider and `EventID`: Sysmon 1 or Security
/// 4688), or the auditd records of one event (starts with `type=`
/// or `node=`, one record per line).
pub fn parse_line(line: &str) -> Result<Event, EventError> {
    let text = line.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(EventError::Empty);
    }
    if text.starts_with('<') {
        return formats::windows::parse_xml(text);
    }
    if text.starts_with("type=") || text.starts_with("node=") {
        return formats::auditd::parse_one(text);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| EventError::NotJson { reason: e.to_string() })?;
    parse_json(&value)
}

/// Raw text that [`parse_line`] reads without JSON.
fn is_raw_text(s: &str) -> bool {
    let t = s.trim_start();
    t.starts_with('<') || t.starts_with("type=") || t.starts_with("node=")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_shape_is_detected() {
        let cases = [
            (json!({"auditd": "type=EXECVE msg=audit(1.0:1): argc=1 a0=\"id\""}), Format::Auditd),
            (json!({"class_uid": 1007, "process": {"cmd_line": "id"}}), Format::Ocsf),
            (
                json!({"@timestamp": "t", "process": {"name": "x"}, "winlog": {"provider_name": "Microsoft-Windows-Sysmon",
                    "event_id": 1, "event_data": {"Image": "C:\\a.exe"}}}),
                Format::Sysmon,
            ),
            (json!({"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "Image": "C:\\a.exe"}), Format::Sysmon),
            (json!({"rule": "r", "output_fields": {"proc.cmdline": "sh"}}), Format::Falco),
            (json!({"name": "q", "columns": {"cmdline": "ls", "pid": "1"}}), Format::Osquery),
            (json!({"cmdline": "ls", "path": "/bin/ls"}), Format::Osquery),
            (json!({"process.command_line": "ls", "command_line": "decoy"}), Format::Ecs),
            (json!({"command_line": "ls"}), Format::Plain),
        ];
        for (v, want) in cases {
            assert_eq!(parse_json(&v).map(|e| e.source), Ok(want), "{v}");
        }
    }

    #[test]
    fn winlogbeat_4688_is_security_and_other_non_sysmon_ids_are_ecs() {
        let v = json!({"winlog": {"provider_name": "Microsoft-Windows-Security-Auditing", "event_id": 4688},
            "event": {"category": ["process"]}, "process": {"executable": "C:\\Windows\\System32\\cmd.exe"}});
        assert_eq!(parse_json(&v).unwrap().source, Format::Security4688);
        let other = json!({"winlog": {"provider_name": "Microsoft-Windows-PowerShell", "event_id": 4104},
            "event": {"category": ["process"]}, "process": {"executable": "C:\\Windows\\System32\\cmd.exe"}});
        assert_eq!(parse_json(&other).unwrap().source, Format::Ecs);
    }

    #[test]
    fn windows_shapes_are_detected() {
        let cases = [
            (
                json!({"EventID": 4688, "SourceName": "Microsoft-Windows-Security-Auditing", "Channel": "Security",
                "ProcessID": 4, "NewProcessName": "C:\\a.exe"}),
                Format::Security4688,
            ),
            (
                json!({"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1},
                "EventData": {"Image": "C:\\a.exe"}}}),
                Format::Sysmon,
            ),
            (
                json!({"System": {"Provider": {"@Name": "Microsoft-Windows-Security-Auditing"}, "EventID": "4688"},
                "EventData": {"Data": {"@Name": "NewProcessName", "#text": "C:\\a.exe"}}}),
                Format::Security4688,
            ),
            (
                json!({"EventId": 1, "Provider": "Microsoft-Windows-Sysmon", "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Payload": "{\"EventData\": {\"Data\": [{\"@Name\": \"Image\", \"#text\": \"C:\\\\a.exe\"}]}}"}),
                Format::Sysmon,
            ),
        ];
        for (v, want) in cases {
            assert_eq!(parse_json(&v).map(|e| e.source), Ok(want), "{v}");
        }
    }

    #[test]
    fn converter_records_of_other_events_are_not_misdetected() {
        // An unrelated record that also carries a `process` key must not become ECS.
        let v = json!({"Event": {"System": {"Provider": {"@Name": "Microsoft-Windows-Sysmon"}, "EventID": "3"},
            "EventData": {"Data": [{"@Name": "Image", "#text": "C:\\a.exe"}]}}, "process": {"name": "a.exe"}});
        assert!(matches!(parse_json(&v), Err(EventError::NotProcessCreation { .. })));
        let ecmd = json!({"EventId": 4624, "Provider": "Microsoft-Windows-Security-Auditing", "Channel": "Security",
            "Payload": "{\"EventData\": {\"Data\": []}}", "command_line": "decoy"});
        assert!(matches!(parse_json(&ecmd), Err(EventError::NotProcessCreation { .. })));
    }

    #[test]
    fn shape_errors() {
        assert_eq!(parse_json(&json!([1])), Err(EventError::NotAnObject { found: "array" }));
        assert_eq!(parse_json(&json!("ls")), Err(EventError::NotAnObject { found: "string" }));
        assert_eq!(parse_json(&json!({"cmd": "ls"})), Err(EventError::UnknownShape));
        assert_eq!(parse_line("   "), Err(EventError::Empty));
        assert!(matches!(parse_line("ls -la"), Err(EventError::NotJson { .. })));
        let err = parse_json(&json!({"auditd": "type=A msg=audit(1:1): x=1\ntype=B msg=audit(1:2): y=2"})).unwrap_err();
        assert!(err.to_string().contains("holds 2 audit events"), "{err}");
    }

    #[test]
    fn parse_line_reads_xml_auditd_and_json() {
        let xml = "<Event><System><EventID>1</EventID></System><EventData>\
            <Data Name='CommandLine'>whoami</Data></EventData></Event>";
        assert_eq!(parse_line(xml).unwrap().source, Format::Sysmon);
        assert_eq!(parse_line("type=EXECVE msg=audit(1.0:1): argc=1 a0=\"id\"").unwrap().source, Format::Auditd);
        assert_eq!(parse_line("{\"command_line\": \"id\"}").unwrap().source, Format::Plain);
        assert_eq!(parse_json(&json!(xml)).unwrap().source, Format::Sysmon, "raw XML inside a JSON string");
        let security = "<Event><System><Provider Name='Microsoft-Windows-Security-Auditing'/><EventID>4688</EventID>\
            <Channel>Security</Channel></System><EventData><Data Name='NewProcessName'>C:\\x.exe</Data></EventData></Event>";
        assert_eq!(parse_line(security).unwrap().source, Format::Security4688);
    }
}
