//! `.evtx` files written byte by byte (file header, one chunk, records of plain BinXML without
//! templates), then read with `sotto_events::read_evtx`.

use std::io::Write;

use sotto_events::{EvtxFileError, Format, Os, RecordError, read_evtx};

const FILE_HEADER_SIZE: usize = 4096;
const CHUNK_SIZE: usize = 65536;
const CHUNK_HEADER_SIZE: usize = 512;
const RECORD_HEADER_SIZE: usize = 24;

/// BinXML tokens written at a known offset in the chunk, since inline names point at
/// themselves.
struct BinXml {
    bytes: Vec<u8>,
    /// The chunk offset of `bytes[0]`.
    base: usize,
}

impl BinXml {
    fn pos(&self) -> u32 {
        (self.base + self.bytes.len()) as u32
    }

    fn put(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn utf16(&mut self, s: &str) {
        for unit in s.encode_utf16() {
            self.put(&unit.to_le_bytes());
        }
    }

    /// An inline name: its own offset, then next-string offset, hash, length, UTF-16, NUL.
    fn name(&mut self, name: &str) {
        let here = self.pos() + 4;
        self.put(&here.to_le_bytes());
        self.put(&0u32.to_le_bytes());
        self.put(&0u16.to_le_bytes());
        self.put(&(name.encode_utf16().count() as u16).to_le_bytes());
        self.utf16(name);
        self.put(&0u16.to_le_bytes());
    }

    /// A string value token.
    fn text(&mut self, text: &str) {
        self.put(&[0x05, 0x01]);
        self.put(&(text.encode_utf16().count() as u16).to_le_bytes());
        self.utf16(text);
    }

    /// `<name a="v"...>` (or `<name a="v"/>` when `empty`), with start-element token 0x01 (0x41
    /// when attributes follow), data size, name, attribute list size, attributes.
    fn open(&mut self, name: &str, attributes: &[(&str, &str)], empty: bool) {
        self.put(&[if attributes.is_empty() { 0x01 } else { 0x41 }]);
        self.put(&0u32.to_le_bytes());
        self.name(name);
        if !attributes.is_empty() {
            self.put(&0u32.to_le_bytes());
            for (attribute, value) in attributes {
                self.put(&[0x06]);
                self.name(attribute);
                self.text(value);
            }
        }
        self.put(&[if empty { 0x03 } else { 0x02 }]);
    }

    fn end(&mut self) {
        self.put(&[0x04]);
    }

    fn element(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.open(name, attributes, false);
        self.text(text);
        self.end();
    }
}

/// One Windows event: provider, event id, channel, computer and named data values.
struct Spec<'a> {
    provider: &'a str,
    event_id: u32,
    channel: &'a str,
    computer: &'a str,
    data: &'a [(&'a str, &'a str)],
}

fn event_binxml(spec: &Spec<'_>, x: &mut BinXml) {
    x.put(&[0x0f, 0x01, 0x01, 0x00]); // fragment header
    x.open("Event", &[("xmlns", "http://schemas.microsoft.com/win/2004/08/events/event")], false);
    x.open("System", &[], false);
    x.open("Provider", &[("Name", spec.provider)], true);
    x.element("EventID", &[], &spec.event_id.to_string());
    x.open("TimeCreated", &[("SystemTime", "2024-06-18T13:02:44.581724Z")], true);
    x.element("Channel", &[], spec.channel);
    x.element("Computer", &[], spec.computer);
    x.end();
    x.open("EventData", &[], false);
    for (name, value) in spec.data {
        x.element("Data", &[("Name", name)], value);
    }
    x.end();
    x.end();
    x.put(&[0x00]); // end of stream
}

/// A one-chunk file with one record per item of `records`, ids from 1, each record's BinXML
/// written by its function.
fn evtx_file(records: &[&dyn Fn(&mut BinXml)]) -> Vec<u8> {
    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }
    let count = records.len() as u64;
    let mut file = vec![0u8; FILE_HEADER_SIZE + CHUNK_SIZE];
    put(&mut file, 0, b"ElfFile\0");
    put(&mut file, 24, &(count + 1).to_le_bytes()); // next record id
    put(&mut file, 32, &128u32.to_le_bytes()); // header size
    put(&mut file, 36, &1u16.to_le_bytes()); // minor version
    put(&mut file, 38, &3u16.to_le_bytes()); // major version
    put(&mut file, 40, &(FILE_HEADER_SIZE as u16).to_le_bytes());
    put(&mut file, 42, &1u16.to_le_bytes()); // chunk count
    let crc = crc32fast::hash(&file[..120]);
    put(&mut file, 124, &crc.to_le_bytes());

    let chunk = &mut file[FILE_HEADER_SIZE..];
    let mut at = CHUNK_HEADER_SIZE;
    let mut last = at;
    for (i, write) in records.iter().enumerate() {
        let mut x = BinXml { bytes: Vec::new(), base: at + RECORD_HEADER_SIZE };
        write(&mut x);
        let size = RECORD_HEADER_SIZE + x.bytes.len() + 4;
        put(chunk, at, b"**\0\0");
        put(chunk, at + 4, &(size as u32).to_le_bytes());
        put(chunk, at + 8, &(i as u64 + 1).to_le_bytes());
        put(chunk, at + 16, &133_631_545_645_817_240u64.to_le_bytes()); // FILETIME, 2024-06-18
        put(chunk, at + RECORD_HEADER_SIZE, &x.bytes);
        put(chunk, at + size - 4, &(size as u32).to_le_bytes());
        last = at;
        at += size;
    }
    put(chunk, 0, b"ElfChnk\0");
    for (offset, id) in [(8, 1), (16, count), (24, 1), (32, count)] {
        put(chunk, offset, &id.to_le_bytes());
    }
    put(chunk, 40, &128u32.to_le_bytes()); // header size
    put(chunk, 44, &(last as u32).to_le_bytes()); // last record offset
    put(chunk, 48, &(at as u32).to_le_bytes()); // free space offset
    let data_crc = crc32fast::hash(&chunk[CHUNK_HEADER_SIZE..at]);
    put(chunk, 52, &data_crc.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&chunk[..120]);
    hasher.update(&chunk[128..CHUNK_HEADER_SIZE]);
    put(chunk, 124, &hasher.finalize().to_le_bytes());
    file
}

const SYSMON_1: Spec<'static> = Spec {
    provider: "Microsoft-Windows-Sysmon",
    event_id: 1,
    channel: "Microsoft-Windows-Sysmon/Operational",
    computer: "LAB-WS07.lab.example.org",
    data: &[
        ("RuleName", "-"),
        ("UtcTime", "2024-06-18 13:02:44.577"),
        ("ProcessId", "9120"),
        ("Image", r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"),
        ("CommandLine", "powershell.exe -NoProfile -EncodedCommand SQBFAFgA"),
        ("User", r"LAB\mkowal"),
        ("IntegrityLevel", "High"),
        ("ParentProcessId", "7804"),
        ("ParentImage", r"C:\Windows\explorer.exe"),
    ],
};

const SECURITY_4688: Spec<'static> = Spec {
    provider: "Microsoft-Windows-Security-Auditing",
    event_id: 4688,
    channel: "Security",
    computer: "FIN-LT-0231.acme.example",
    data: &[
        ("SubjectUserName", "rpatel"),
        ("SubjectDomainName", "ACME"),
        ("NewProcessId", "0x1a2c"),
        ("NewProcessName", r"C:\Windows\System32\certutil.exe"),
        ("TokenElevationType", "%%1937"),
        ("ProcessId", "0x2f08"),
        ("TargetUserName", "-"),
        ("ParentProcessName", r"C:\Windows\System32\cmd.exe"),
        ("MandatoryLabel", "S-1-16-12288"),
    ],
};

const SYSMON_3: Spec<'static> = Spec {
    provider: "Microsoft-Windows-Sysmon",
    event_id: 3,
    channel: "Microsoft-Windows-Sysmon/Operational",
    computer: "LAB-WS07.lab.example.org",
    data: &[("Image", r"C:\Windows\System32\svchost.exe"), ("DestinationIp", "192.0.2.10"), ("DestinationPort", "443")],
};

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

fn spec(s: &'static Spec<'static>) -> impl Fn(&mut BinXml) {
    move |x: &mut BinXml| event_binxml(s, x)
}

#[test]
fn process_creations_are_kept_and_other_events_counted() {
    let (a, b, c) = (spec(&SYSMON_1), spec(&SECURITY_4688), spec(&SYSMON_3));
    let file = write_temp(&evtx_file(&[&a, &b, &c]));
    let mut records = read_evtx(file.path()).unwrap();
    let events: Vec<_> = records.by_ref().collect::<Result<_, _>>().unwrap();
    let counts = records.counts();
    assert_eq!((counts.read, counts.kept, counts.skipped_other_events, counts.errors), (3, 2, 1, 0));

    let sysmon = &events[0];
    assert_eq!(sysmon.source, Format::Sysmon);
    assert_eq!(sysmon.os, Os::Windows);
    assert_eq!(sysmon.process_name.as_deref(), Some("powershell.exe"));
    assert_eq!(sysmon.command_line.as_deref(), Some("powershell.exe -NoProfile -EncodedCommand SQBFAFgA"));
    assert_eq!(sysmon.parent_name.as_deref(), Some("explorer.exe"));
    assert_eq!(sysmon.user.as_deref(), Some(r"LAB\mkowal"));
    assert_eq!(sysmon.integrity.as_deref(), Some("high"));
    assert_eq!((sysmon.pid, sysmon.ppid), (Some(9120), Some(7804)));
    assert_eq!(sysmon.host.as_deref(), Some("LAB-WS07.lab.example.org"));

    let security = &events[1];
    assert_eq!(security.source, Format::Security4688);
    assert_eq!(security.process_path.as_deref(), Some(r"C:\Windows\System32\certutil.exe"));
    assert_eq!(security.parent_name.as_deref(), Some("cmd.exe"));
    assert_eq!(security.user.as_deref(), Some(r"ACME\rpatel"));
    assert_eq!((security.pid, security.ppid), (Some(0x1a2c), Some(0x2f08)));
    assert_eq!(security.integrity.as_deref(), Some("high"));
    assert!(security.command_line_missing, "this 4688 has no CommandLine");
    assert_eq!(security.timestamp.as_deref(), Some("2024-06-18T13:02:44.581724Z"));
}

#[test]
fn a_corrupt_record_is_one_error_and_reading_goes_on() {
    let bad = |x: &mut BinXml| x.put(&[0x0f, 0x01, 0x01, 0x00, 0xee, 0xee, 0xee, 0x00]);
    let missing_image = |x: &mut BinXml| {
        event_binxml(&Spec { data: &[("User", "LAB\\mkowal")], ..SYSMON_1 }, x);
    };
    let (a, c) = (spec(&SYSMON_1), spec(&SECURITY_4688));
    let file = write_temp(&evtx_file(&[&a, &bad, &missing_image, &c]));
    let mut records = read_evtx(file.path()).unwrap();
    let items: Vec<_> = records.by_ref().collect();
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items[0].is_ok() && items[3].is_ok(), "{items:?}");
    assert!(matches!(items[1], Err(RecordError::Corrupt { .. })), "{:?}", items[1]);
    match &items[2] {
        Err(RecordError::Event { record_id: 3, error }) => {
            assert_eq!(error.to_string(), "Sysmon event has no EventData Image or CommandLine");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(records.counts().errors, 2);
    assert_eq!(records.counts().kept, 2);
}

#[test]
fn truncated_and_garbage_files_are_clear_errors() {
    let a = spec(&SYSMON_1);
    let whole = evtx_file(&[&a]);
    // Cut inside the file header: the header cannot be read.
    let cut_header = write_temp(&whole[..100]);
    let err = read_evtx(cut_header.path()).err().expect("an error");
    assert!(matches!(err, EvtxFileError::BadHeader { .. }), "{err}");
    // Cut inside the chunk: no chunk is whole, so nothing is read, and nothing panics.
    let cut_chunk = write_temp(&whole[..FILE_HEADER_SIZE + 2000]);
    let items: Vec<_> = read_evtx(cut_chunk.path()).unwrap().collect();
    assert!(items.iter().all(Result::is_err), "{items:?}");
    // Garbage after a valid header: each chunk is an error item, never a panic.
    let mut garbage = whole[..FILE_HEADER_SIZE].to_vec();
    garbage.extend((0..CHUNK_SIZE * 2).map(|i| (i * 7 + 3) as u8));
    let mut records = read_evtx(write_temp(&garbage).path()).unwrap();
    let items: Vec<_> = records.by_ref().collect();
    assert!(items.iter().all(Result::is_err), "{items:?}");
    assert_eq!(records.counts().kept, 0);
    let text = write_temp(b"{\"EventID\": 4688}\n");
    let err = read_evtx(text.path()).err().expect("an error");
    assert!(err.to_string().contains("is not an .evtx file"), "{err}");
}
