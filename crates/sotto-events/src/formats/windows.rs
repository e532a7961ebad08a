//! The Windows event log record every Windows shape is read into, whatever carried it: the
//! event XML, winlogbeat JSON, flat forwarder JSON, or the JSON that EVTX converters write
//! (`evtx_dump`'s `#attributes` shape, xmltodict's `@Name`/`#text` shape, EvtxECmd's `Payload`).
//! [`Record::into_event`] sends each record to its provider's mapping: Sysmon event id 1
//! ([`super::sysmon`]) or Security event 4688 ([`super::security`]).
//!
//! Must not: map event data fields itself (the provider modules do), accept another event id
//! as a process creation, or enable DTD processing on the XML (entity expansion is an old
//! denial of service).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::event::{Event, Format};
use crate::json::{Doc, parse_uint};

/// The provider that writes Security 4688.
pub(crate) const SECURITY_PROVIDER: &str = "Microsoft-Windows-Security-Auditing";

/// Which container the record came in, so "has no ..." errors name fields as the sender
/// spelled them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Event XML, or a converter's JSON rendering of it.
    Xml,
    /// winlogbeat's `winlog.event_data`.
    Winlogbeat,
    /// Event data as top-level keys.
    Flat,
}

/// One Windows event log record.
pub(crate) struct Record {
    /// `System/Provider/@Name`, winlogbeat's `provider_name`, a forwarder's `SourceName`.
    pub provider: Option<String>,
    pub channel: Option<String>,
    pub event_id: u64,
    pub computer: Option<String>,
    /// The system time, used when the event data has no time of its own.
    pub time: Option<String>,
    /// `EventData` by `Name`, values as text.
    pub data: HashMap<String, String>,
    pub shape: Shape,
}

/// Does `s` name Sysmon (provider, source or channel)?
pub(crate) fn names_sysmon(s: &str) -> bool {
    s.to_ascii_lowercase().contains("sysmon")
}

/// Does the provider or channel name the Security log?
pub(crate) fn names_security(provider: Option<&str>, channel: Option<&str>) -> bool {
    provider.is_some_and(|p| p.eq_ignore_ascii_case(SECURITY_PROVIDER))
        || channel.is_some_and(|c| c.eq_ignore_ascii_case("Security"))
}

impl Record {
    /// The format this record belongs to: its provider's when it names Sysmon or the Security
    /// log, else `None` for another known provider, else a guess from the event id (an event
    /// without a provider was probably trimmed by hand: 4688 means Security, anything else is
    /// read as Sysmon, as it always was).
    fn format(&self) -> Option<Format> {
        let (provider, channel) = (self.provider.as_deref(), self.channel.as_deref());
        if provider.is_some_and(names_sysmon) || channel.is_some_and(names_sysmon) {
            return Some(Format::Sysmon);
        }
        if names_security(provider, channel) {
            return Some(Format::Security4688);
        }
        match provider {
            Some(_) => None,
            None if self.event_id == super::security::EVENT_ID => Some(Format::Security4688),
            None => Some(Format::Sysmon),
        }
    }

    /// The event, if the record is a process creation of its provider.
    pub fn into_event(self) -> Result<Event, EventError> {
        match self.format() {
            Some(Format::Sysmon) => super::sysmon::map(self),
            Some(_) => super::security::map(self),
            None => Err(EventError::NotProcessCreation {
                format: Format::Sysmon,
                found: format!(
                    "record: event id {} from provider {}",
                    self.event_id,
                    self.provider.as_deref().unwrap_or("").chars().take(80).collect::<String>()
                ),
                expected: "Sysmon id 1 or Security id 4688",
            }),
        }
    }

    /// Ok when the record has the provider's process-creation id `id`, else
    /// [`EventError::NotProcessCreation`] naming both.
    pub fn expect_id(&self, format: Format, id: u64, expected: &'static str) -> Result<(), EventError> {
        if self.event_id == id {
            return Ok(());
        }
        Err(EventError::NotProcessCreation { format, found: format!("event id {}", self.event_id), expected })
    }

    /// Of the same field list spelled for the XML (and converter), winlogbeat and flat
    /// shapes, the one this record's shape uses: "has no ..." errors name fields as sent.
    pub fn spelled(&self, [xml, winlogbeat, flat]: [&'static str; 3]) -> &'static str {
        match self.shape {
            Shape::Xml => xml,
            Shape::Winlogbeat => winlogbeat,
            Shape::Flat => flat,
        }
    }

    /// The event data field `key`; Windows writes "-" for a value it does not know.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.data.remove(key).filter(|v| !v.trim().is_empty() && v != "-")
    }
}

/// The Windows mandatory integrity level as a lower-case word, from the label SID Security
/// 4688 writes (`S-1-16-12288`), its rendered name (`Mandatory Label\High Mandatory Level`) or
/// Sysmon's `IntegrityLevel` (`High`). An unknown SID is kept as written.
pub(crate) fn integrity_level(raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() || s == "-" {
        return None;
    }
    if let Some(rid) = s.strip_prefix("S-1-16-").or_else(|| s.strip_prefix("s-1-16-")) {
        let level = match rid {
            "0" => "untrusted",
            "4096" => "low",
            "8192" => "medium",
            "8448" => "medium-plus",
            "12288" => "high",
            "16384" => "system",
            "20480" => "protected",
            _ => return Some(s.to_string()),
        };
        return Some(level.to_string());
    }
    let lower = s.to_ascii_lowercase();
    let name = lower.strip_prefix("mandatory label\\").unwrap_or(&lower);
    let name = name.strip_suffix(" mandatory level").unwrap_or(name).trim();
    Some(match name {
        "medium plus" | "mediumplus" => "medium-plus".to_string(),
        "protected process" => "protected".to_string(),
        other => other.to_string(),
    })
}

/// Every string or number field of an object, as text.
pub(crate) fn collect_text(obj: &Map<String, Value>, out: &mut HashMap<String, String>) {
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        out.insert(k.clone(), text);
    }
}

/// The event id in `text`, or a field error naming `field` as the sender spelled it.
fn parse_event_id(format: Format, field: &str, text: &str) -> Result<u64, EventError> {
    parse_uint(text).ok_or_else(|| EventError::BadField {
        format,
        field: field.into(),
        expected: "a non-negative integer",
        found: format!("{:?}", text.chars().take(40).collect::<String>()),
    })
}

/// The format named in errors found before the record's provider is known.
fn guess_format(provider: Option<&str>) -> Format {
    if provider.is_some_and(|p| !names_sysmon(p)) { Format::Security4688 } else { Format::Sysmon }
}

// ---- winlogbeat and flat forwarder JSON ----

/// A winlogbeat document's record: `winlog.*`, the event id from the first of `id_paths`
/// present (winlogbeat's security module also writes `event.code`).
pub(crate) fn winlogbeat_record(
    obj: &Map<String, Value>,
    format: Format,
    id_paths: &[&str],
) -> Result<Record, EventError> {
    let d = Doc::new(format, obj);
    let id_path = id_paths.iter().copied().find(|p| d.has(p)).unwrap_or(id_paths[0]);
    let mut data = HashMap::new();
    if let Some(ed) = d.object("winlog.event_data") {
        collect_text(ed.root, &mut data);
    }
    Ok(Record {
        provider: d.str("winlog.provider_name")?,
        channel: d.str("winlog.channel")?,
        event_id: d.uint(id_path)?.ok_or(EventError::Missing { format, what: "event id" })?,
        computer: d.first_str(&["winlog.computer_name", "host.hostname", "host.name"])?,
        time: d.text("@timestamp")?,
        data,
        shape: Shape::Winlogbeat,
    })
}

/// A flat forwarder record (NXLog and the like): `EventID`, `SourceName`, `Hostname`,
/// `EventTime` beside the event data's own keys.
pub(crate) fn flat_record(obj: &Map<String, Value>, format: Format) -> Result<Record, EventError> {
    let d = Doc::new(format, obj);
    let key = if obj.contains_key("EventID") { "EventID" } else { "EventId" };
    let mut data = HashMap::new();
    collect_text(obj, &mut data);
    Ok(Record {
        provider: d.first_str(&["SourceName", "ProviderName", "Provider"])?,
        channel: d.str("Channel")?,
        event_id: d.uint(key)?.ok_or(EventError::Missing { format, what: "event id" })?,
        computer: d.first_str(&["Hostname", "Computer", "ComputerName"])?,
        time: d.text("EventTime")?,
        data,
        shape: Shape::Flat,
    })
}

// ---- Event XML ----

/// A Windows event XML document: `<Event>`, or `<Events>` holding exactly one `<Event>`.
pub(crate) fn parse_xml(text: &str) -> Result<Event, EventError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| EventError::BadXml { reason: e.to_string() })?;
    let mut event = doc.root_element();
    if event.tag_name().name() == "Events" {
        let events: Vec<_> = event.children().filter(|n| n.has_tag_name_local("Event")).collect();
        match events.as_slice() {
            [one] => event = *one,
            _ => {
                return Err(EventError::BadXml {
                    reason: format!("<Events> holds {} <Event> elements; send exactly one", events.len()),
                });
            }
        }
    }
    if event.tag_name().name() != "Event" {
        let reason = format!("root element is <{}>, not <Event>", event.tag_name().name());
        return Err(EventError::BadXml { reason });
    }
    let system = child(event, "System").ok_or_else(|| EventError::BadXml { reason: "no <System> element".into() })?;
    let id_text = child(system, "EventID")
        .map(node_text)
        .ok_or_else(|| EventError::BadXml { reason: "no <System><EventID> element".into() })?;
    let provider = child(system, "Provider").and_then(|p| p.attribute("Name")).map(str::to_string);
    let event_id = parse_event_id(guess_format(provider.as_deref()), "System/EventID", &id_text)?;
    let mut data = HashMap::new();
    if let Some(event_data) = child(event, "EventData") {
        for d in event_data.children().filter(|n| n.has_tag_name_local("Data")) {
            if let Some(name) = d.attribute("Name") {
                data.insert(name.to_string(), node_text(d));
            }
        }
    }
    let record = Record {
        provider,
        channel: child(system, "Channel").map(node_text).filter(|s| !s.is_empty()),
        event_id,
        computer: child(system, "Computer").map(node_text).filter(|s| !s.is_empty()),
        time: child(system, "TimeCreated").and_then(|t| t.attribute("SystemTime")).map(str::to_string),
        data,
        shape: Shape::Xml,
    };
    record.into_event()
}

/// The first child element of `parent` with local name `name`.
fn child<'a, 'i>(parent: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    parent.children().find(|n| n.has_tag_name_local(name))
}

trait LocalName {
    fn has_tag_name_local(&self, name: &str) -> bool;
}

impl LocalName for roxmltree::Node<'_, '_> {
    /// Matches on the local name, whatever namespace the producer declared.
    fn has_tag_name_local(&self, name: &str) -> bool {
        self.is_element() && self.tag_name().name() == name
    }
}

/// All text under a node, entities decoded.
fn node_text(node: roxmltree::Node<'_, '_>) -> String {
    node.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect()
}

// ---- XML element as JSON ----

/// The text of an XML element rendered as JSON: a scalar, or an object's `#text` (both the
/// `evtx` crate and xmltodict put attributes beside it). `null`, arrays and objects without
/// `#text` have none.
pub(crate) fn element_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(obj) => obj.get("#text").and_then(element_text),
        Value::Null | Value::Array(_) => None,
    }
}

/// Attribute `name` of an XML element rendered as JSON: under `#attributes` (the `evtx` crate)
/// or as `@name` (xmltodict).
pub(crate) fn element_attribute(value: &Value, name: &str) -> Option<String> {
    let obj = value.as_object()?;
    let attrs = obj.get("#attributes").and_then(Value::as_object);
    attrs.and_then(|a| a.get(name)).or_else(|| obj.get(&format!("@{name}"))).and_then(element_text)
}

/// The `System`/`EventData` object of a converter record: inside `Event`, or at the top.
fn converter_root(obj: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let root = match obj.get("Event") {
        Some(Value::Object(event)) => event,
        _ => obj,
    };
    root.get("System").and_then(Value::as_object).map(|_| root)
}

/// An EvtxECmd line: an event id and provider at the top, the event data in `Payload`.
fn is_evtxecmd(obj: &Map<String, Value>) -> bool {
    obj.contains_key("Payload") && (obj.contains_key("EventId") || obj.contains_key("EventID"))
}

/// The JSON EVTX converters write: `{"Event": {"System": ..., "EventData": ...}}` (evtx_dump,
/// xmltodict), the same without the outer `Event`, or an EvtxECmd line.
pub(crate) fn matches_converter(obj: &Map<String, Value>) -> bool {
    converter_root(obj).is_some() || is_evtxecmd(obj)
}

pub(crate) fn parse_converter(obj: &Map<String, Value>) -> Result<Event, EventError> {
    match converter_root(obj) {
        Some(root) => read_system_record(root)?.into_event(),
        None => read_evtxecmd(obj)?.into_event(),
    }
}

/// `System` and `EventData` in either attribute convention.
fn read_system_record(root: &Map<String, Value>) -> Result<Record, EventError> {
    let system = root.get("System").and_then(Value::as_object).ok_or(EventError::UnknownShape)?;
    let field = |name: &str| system.get(name).and_then(element_text).filter(|s| !s.is_empty());
    let provider = system.get("Provider").and_then(|p| element_attribute(p, "Name").or_else(|| element_text(p)));
    let format = guess_format(provider.as_deref());
    let id_text = field("EventID").ok_or(EventError::Missing { format, what: "System.EventID" })?;
    let mut data = HashMap::new();
    if let Some(event_data) = root.get("EventData") {
        read_event_data(event_data, &mut data);
    }
    Ok(Record {
        event_id: parse_event_id(format, "System.EventID", &id_text)?,
        provider,
        channel: field("Channel"),
        computer: field("Computer"),
        time: system.get("TimeCreated").and_then(|t| element_attribute(t, "SystemTime")),
        data,
        shape: Shape::Xml,
    })
}

/// An EvtxECmd line: `EventId`, `Provider`, `Channel`, `Computer`, `TimeCreated` at the top,
/// and `Payload` holding (as a JSON string) `{"EventData": {"Data": [...]}}`.
fn read_evtxecmd(obj: &Map<String, Value>) -> Result<Record, EventError> {
    let text = |key: &str| obj.get(key).and_then(element_text).filter(|s| !s.is_empty());
    let provider = text("Provider");
    let format = guess_format(provider.as_deref());
    let id_text = text("EventId").or_else(|| text("EventID")).ok_or(EventError::Missing { format, what: "EventId" })?;
    let event_id = parse_event_id(format, "EventId", &id_text)?;
    let payload = match obj.get("Payload") {
        Some(Value::String(s)) if s.trim().is_empty() => Value::Null,
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| EventError::BadField {
            format,
            field: "Payload".into(),
            expected: "a JSON string holding EventData",
            found: e.to_string(),
        })?,
        Some(other) => other.clone(),
        None => Value::Null,
    };
    let mut data = HashMap::new();
    if let Some(event_data) = payload.get("EventData") {
        read_event_data(event_data, &mut data);
    }
    Ok(Record {
        provider,
        channel: text("Channel"),
        event_id,
        computer: text("Computer"),
        time: text("TimeCreated"),
        data,
        shape: Shape::Xml,
    })
}

/// `EventData` as converters render it: named values (`{"Image": "C:\\..."}`, the `evtx`
/// crate), or `Data` elements with a `Name` attribute, one or a list (xmltodict). A `Data`
/// element without text is an empty value; one without a name is skipped.
fn read_event_data(event_data: &Value, out: &mut HashMap<String, String>) {
    let Some(obj) = event_data.as_object() else { return };
    for (key, value) in obj {
        if key == "Data" {
            let items = match value {
                Value::Array(items) => items.as_slice(),
                one => std::slice::from_ref(one),
            };
            for item in items {
                if let Some(name) = element_attribute(item, "Name") {
                    out.insert(name, element_text(item).unwrap_or_default());
                }
            }
        } else if !key.starts_with('@')
            && !key.starts_with('#')
            && let Some(text) = element_text(value)
        {
            out.insert(key.clone(), text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Os;
    use serde_json::json;

    #[test]
    fn integrity_levels_in_every_spelling() {
        for (raw, want) in [
            ("S-1-16-0", Some("untrusted")),
            ("S-1-16-4096", Some("low")),
            ("S-1-16-8192", Some("medium")),
            ("S-1-16-8448", Some("medium-plus")),
            ("S-1-16-12288", Some("high")),
            ("S-1-16-16384", Some("system")),
            ("S-1-16-20480", Some("protected")),
            ("S-1-16-99", Some("S-1-16-99")),
            ("Mandatory Label\\High Mandatory Level", Some("high")),
            ("Mandatory Label\\Medium Plus Mandatory Level", Some("medium-plus")),
            ("High", Some("high")),
            ("System", Some("system")),
            ("-", None),
            ("", None),
        ] {
            assert_eq!(integrity_level(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn element_reader_takes_both_attribute_conventions() {
        let evtx = json!({"#attributes": {"Qualifiers": 0}, "#text": 4688});
        let xmltodict = json!({"@Qualifiers": "0", "#text": "4688"});
        for v in [&evtx, &xmltodict] {
            assert_eq!(element_text(v).as_deref(), Some("4688"));
            assert_eq!(element_attribute(v, "Qualifiers").as_deref(), Some("0"));
        }
        assert_eq!(element_text(&json!(1)).as_deref(), Some("1"));
        assert_eq!(element_text(&json!({"@Name": "CommandLine"})), None);
        assert_eq!(element_text(&json!(null)), None);
        assert_eq!(element_attribute(&json!("x"), "Name"), None);
    }

    #[test]
    fn event_data_as_named_values_or_data_elements() {
        let mut data = HashMap::new();
        read_event_data(&json!({"Image": "C:\\a.exe", "ProcessId": 4, "RuleName": null}), &mut data);
        assert_eq!(data.get("Image").map(String::as_str), Some("C:\\a.exe"));
        assert_eq!(data.get("ProcessId").map(String::as_str), Some("4"));
        assert!(!data.contains_key("RuleName"));
        let mut data = HashMap::new();
        read_event_data(&json!({"Data": [{"@Name": "A", "#text": "x"}, {"@Name": "B"}, "unnamed"]}), &mut data);
        assert_eq!(data.get("A").map(String::as_str), Some("x"));
        assert_eq!(data.get("B").map(String::as_str), Some(""));
        assert_eq!(data.len(), 2);
        let mut one = HashMap::new();
        read_event_data(&json!({"Data": {"@Name": "C", "#text": "y"}}), &mut one);
        assert_eq!(one.get("C").map(String::as_str), Some("y"));
    }

    #[test]
    fn another_provider_is_not_a_process_creation() {
        let xml = "<Event><System><Provider Name='Microsoft-Windows-Kernel-General'/><EventID>1</EventID>\
            </System><EventData><Data Name='NewTime'>2024-03-12T09:14:07Z</Data></EventData></Event>";
        let err = parse_xml(xml).unwrap_err();
        assert!(matches!(err, EventError::NotProcessCreation { .. }), "{err}");
        assert!(err.to_string().contains("Microsoft-Windows-Kernel-General"), "{err}");
        let converter = json!({"Event": {"System": {"Provider": {"@Name": "Microsoft-Windows-PowerShell"},
            "EventID": "4104"}, "EventData": {"Data": [{"@Name": "ScriptBlockText", "#text": "iex"}]}}});
        let err = parse_converter(converter.as_object().unwrap()).unwrap_err();
        assert!(matches!(err, EventError::NotProcessCreation { .. }), "{err}");
    }

    #[test]
    fn converter_errors_name_the_field() {
        let no_id = json!({"System": {"Provider": {"@Name": "Microsoft-Windows-Sysmon"}}});
        assert_eq!(
            parse_converter(no_id.as_object().unwrap()).unwrap_err().to_string(),
            "Sysmon event has no System.EventID"
        );
        let bad_payload = json!({"EventId": 4688, "Provider": SECURITY_PROVIDER, "Payload": "{not json"});
        let err = parse_converter(bad_payload.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().starts_with("Security 4688 field Payload should be"), "{err}");
    }

    #[test]
    fn sysmon_in_the_evtx_dump_shape() {
        let v = json!({"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon",
                    "Guid": "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}"}},
                "EventID": 1, "Version": 5, "Level": 4, "Task": 1, "Opcode": 0,
                "TimeCreated": {"#attributes": {"SystemTime": "2024-05-02T07:31:12.104522Z"}},
                "EventRecordID": 88213, "Execution": {"#attributes": {"ProcessID": 3096, "ThreadID": 4412}},
                "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "LAB-WS07.lab.example.org",
                "Security": {"#attributes": {"UserID": "S-1-5-18"}}
            },
            "EventData": {
                "RuleName": "-", "UtcTime": "2024-05-02 07:31:12.098", "ProcessGuid": "{0d3b1b9e-4f70-6633-a1c2-000000001a00}",
                "ProcessId": 9120, "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                "CommandLine": "powershell.exe -NoProfile -Command Get-Process", "CurrentDirectory": "C:\\Users\\mkowal\\",
                "User": "LAB\\mkowal", "IntegrityLevel": "Medium", "Hashes": "SHA256=0A1B",
                "ParentProcessId": 7804, "ParentImage": "C:\\Windows\\explorer.exe", "ParentCommandLine": null
            }
        }});
        let e = parse_converter(v.as_object().unwrap()).unwrap();
        assert_eq!(e.source, Format::Sysmon);
        assert_eq!(e.os, Os::Windows);
        assert_eq!(e.pid, Some(9120));
        assert_eq!(e.ppid, Some(7804));
        assert_eq!(e.integrity.as_deref(), Some("medium"));
        assert_eq!(e.host.as_deref(), Some("LAB-WS07.lab.example.org"));
        assert_eq!(e.parent_command_line, None);
        assert_eq!(e.timestamp.as_deref(), Some("2024-05-02 07:31:12.098"));
        let mut id3 = v.clone();
        id3["Event"]["System"]["EventID"] = json!(3);
        assert_eq!(
            parse_converter(id3.as_object().unwrap()).unwrap_err().to_string(),
            "Sysmon event id 3 is not a process creation (id 1)"
        );
    }
}
