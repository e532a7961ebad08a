//! Every parser takes outside bytes, so none may panic on any input: arbitrary bytes, and
//! arbitrary JSON built from the keys the format detectors look at, through `parse_line`,
//! `parse_json`, `parse_auditd`, the `.evtx` reader, and `render`/`truncate` of whatever parses.

use std::io::Write;

use proptest::prelude::*;
use serde_json::{Map, Value};
use sotto_events::{Event, parse_auditd, parse_json, parse_line, read_evtx, read_evtx_from};

/// Keys the detectors and mappings read, so random objects reach deep into each format.
const KEYS: &[&str] = &[
    "winlog",
    "event_data",
    "event_id",
    "provider_name",
    "channel",
    "EventID",
    "EventId",
    "SourceName",
    "Provider",
    "Channel",
    "Payload",
    "Event",
    "System",
    "EventData",
    "Data",
    "@Name",
    "Name",
    "#text",
    "#attributes",
    "Image",
    "CommandLine",
    "NewProcessName",
    "ParentProcessName",
    "MandatoryLabel",
    "TargetUserName",
    "SubjectUserName",
    "IntegrityLevel",
    "UtcTime",
    "ProcessGuid",
    "process",
    "process.command_line",
    "command_line",
    "executable",
    "event",
    "code",
    "category",
    "auditd",
    "class_uid",
    "columns",
    "cmdline",
    "rule",
    "output_fields",
    "proc.cmdline",
    "os",
];

/// Strings the mappings give meaning to, plus anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Microsoft-Windows-Sysmon".to_string()),
        Just("Microsoft-Windows-Security-Auditing".to_string()),
        Just("Security".to_string()),
        Just("4688".to_string()),
        Just("1".to_string()),
        Just("0x1a2c".to_string()),
        Just("S-1-16-12288".to_string()),
        Just("-".to_string()),
        Just("<Event><System><EventID>4688</EventID></System></Event>".to_string()),
        Just("type=EXECVE msg=audit(1.0:1): argc=1 a0=\"id\"".to_string()),
        Just("{\"EventData\": {\"Data\": [{\"@Name\": \"Image\", \"#text\": \"C:\\\\a.exe\"}]}}".to_string()),
        ".{0,40}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![Just(1u64), Just(3), Just(4688), Just(1007)].prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())
            }),
        ]
    })
}

/// Uses every method of an event that a caller would.
fn exercise(mut event: Event) {
    let _ = event.render();
    event.truncate(3);
    let _ = event.render();
    let _ = serde_json::to_string(&event).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(e) = parse_line(&text) {
            exercise(e);
        }
        for e in parse_auditd(&text).into_iter().flatten() {
            exercise(e);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        if let Ok(e) = parse_json(&value) {
            exercise(e);
        }
        if let Ok(e) = parse_line(&value.to_string()) {
            exercise(e);
        }
        // Wrapped the way the Windows shapes nest, so the converter and winlogbeat readers see it.
        for wrapped in [
            serde_json::json!({"Event": {"System": value.clone(), "EventData": value.clone()}}),
            serde_json::json!({"winlog": {"event_id": 4688, "channel": "Security", "event_data": value.clone()}}),
            serde_json::json!({"EventId": 4688, "Provider": "Microsoft-Windows-Security-Auditing",
                "Payload": value.to_string()}),
        ] {
            if let Ok(e) = parse_json(&wrapped) {
                exercise(e);
            }
        }
    }

    #[test]
    fn arbitrary_files_never_panic_the_evtx_reader(bytes in prop::collection::vec(any::<u8>(), 0..9000)) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&bytes).unwrap();
        if let Ok(records) = read_evtx(file.path()) {
            for e in records.flatten() {
                exercise(e);
            }
        }
    }

    #[test]
    fn garbage_after_a_valid_header_never_panics(
        tail in prop::collection::vec(any::<u8>(), 0..70_000),
        chunk_magic in any::<bool>(),
    ) {
        let mut bytes = valid_header();
        if chunk_magic {
            bytes.extend_from_slice(b"ElfChnk\0");
        }
        bytes.extend(tail);
        if let Ok(records) = read_evtx_from(std::io::Cursor::new(bytes), "prop.evtx") {
            for e in records.flatten() {
                exercise(e);
            }
        }
    }
}

/// A 4096-byte EVTX file header for one chunk, with its CRC32.
fn valid_header() -> Vec<u8> {
    let mut h = vec![0u8; 4096];
    h[..8].copy_from_slice(b"ElfFile\0");
    h[32..36].copy_from_slice(&128u32.to_le_bytes());
    h[36..38].copy_from_slice(&1u16.to_le_bytes());
    h[38..40].copy_from_slice(&3u16.to_le_bytes());
    h[40..42].copy_from_slice(&4096u16.to_le_bytes());
    h[42..44].copy_from_slice(&1u16.to_le_bytes());
    let crc = crc32fast::hash(&h[..120]);
    h[124..128].copy_from_slice(&crc.to_le_bytes());
    h
}
