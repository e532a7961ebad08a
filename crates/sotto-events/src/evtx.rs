//! `.evtx` files (Windows event log exports) read directly, one chunk at a time, into the
//! process creations they hold: Sysmon event id 1 and Security event 4688. Each record is
//! rendered by the `evtx` crate as the JSON `evtx_dump` writes and read by the same mapping as
//! that JSON, so an export and its `evtx_dump` output give the same events.
//!
//! This module does file I/O by design. Must not: hold more than one 64 KiB chunk's records in
//! memory (an export can be hundreds of megabytes), stop at a corrupt record or chunk (it
//! becomes one error item and reading goes on), or treat another event as an error (it is
//! counted and skipped).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use evtx::{EvtxParser, IntoIterChunks, ParserSettings};

use crate::error::EventError;
use crate::event::Event;

/// The first eight bytes of every `.evtx` file.
pub const EVTX_MAGIC: &[u8; 8] = b"ElfFile\0";

/// Whether `prefix` (the first bytes of a file, eight or more) starts like an `.evtx` file.
pub fn is_evtx(prefix: &[u8]) -> bool {
    prefix.starts_with(EVTX_MAGIC)
}

/// A file that cannot be read as an event log at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvtxFileError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The path as given.
        path: String,
        /// The operating system's message.
        reason: String,
    },
    /// The file does not start with `ElfFile\0`.
    #[error("{path} is not an .evtx file (it does not start with \"ElfFile\\0\")")]
    NotEvtx {
        /// The path as given.
        path: String,
    },
    /// The magic is there but the file header cannot be read (a truncated file).
    #[error("{path} has an unreadable .evtx header: {reason}")]
    BadHeader {
        /// The path as given.
        path: String,
        /// The `evtx` crate's message.
        reason: String,
    },
}

/// One record that did not become an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A chunk or record the `evtx` crate could not decode (bad magic, bad BinXML, a chunk
    /// cut short). Reading goes on with the next record or chunk.
    #[error("corrupt .evtx data: {reason}")]
    Corrupt {
        /// The `evtx` crate's message, with the chunk or record it names.
        reason: String,
    },
    /// A Sysmon 1 or Security 4688 record that does not make an event (no image or command
    /// line, a field of the wrong type).
    #[error("record {record_id}: {error}")]
    Event {
        /// The record's `EventRecordID`.
        record_id: u64,
        /// Why the mapping refused it.
        error: EventError,
    },
}

/// What an [`EvtxRecords`] has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvtxCounts {
    /// Records decoded from the file, whatever they held.
    pub read: u64,
    /// Process creations yielded as events.
    pub kept: u64,
    /// Records of other events (other ids or providers), skipped without an item.
    pub skipped_other_events: u64,
    /// Error items yielded: corrupt data and process creations that did not map.
    pub errors: u64,
}

/// The process creations of one `.evtx` file, in record order, read one chunk at a time.
/// Iterate it for `Result<Event, RecordError>`; [`EvtxRecords::counts`] says what was read.
pub struct EvtxRecords<R: Read + Seek = File> {
    chunks: IntoIterChunks<R>,
    settings: Arc<ParserSettings>,
    /// The current chunk's records, rendered, not yet yielded.
    pending: VecDeque<Result<(u64, serde_json::Value), String>>,
    counts: EvtxCounts,
}

/// Opens `path` as an `.evtx` file. Fails only when the file is unreadable or not an event
/// log; damage further in shows up as error items.
pub fn read_evtx(path: impl AsRef<Path>) -> Result<EvtxRecords<File>, EvtxFileError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let io = |e: std::io::Error| EvtxFileError::Io { path: shown.clone(), reason: e.to_string() };
    let file = File::open(path).map_err(io)?;
    read_evtx_from(file, &shown)
}

/// As [`read_evtx`], from any seekable reader (`name` is used in errors).
pub fn read_evtx_from<R: Read + Seek>(mut reader: R, name: &str) -> Result<EvtxRecords<R>, EvtxFileError> {
    let path = name.to_string();
    let mut magic = [0u8; 8];
    let read = reader.read_exact(&mut magic).and_then(|()| reader.seek(SeekFrom::Start(0)));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(EvtxFileError::NotEvtx { path }),
        Err(e) => return Err(EvtxFileError::Io { path, reason: e.to_string() }),
        Ok(_) if !is_evtx(&magic) => return Err(EvtxFileError::NotEvtx { path }),
        Ok(_) => {}
    }
    let parser = EvtxParser::from_read_seek(reader)
        .map_err(|e| EvtxFileError::BadHeader { path: path.clone(), reason: e.to_string() })?;
    // One thread, and compact JSON with attributes under `#attributes`: the evtx_dump shape.
    let settings = Arc::new(ParserSettings::new().num_threads(1).indent(false).separate_json_attributes(false));
    let parser = parser.with_configuration((*settings).clone());
    Ok(EvtxRecords { chunks: parser.into_chunks(), settings, pending: VecDeque::new(), counts: EvtxCounts::default() })
}

impl<R: Read + Seek> EvtxRecords<R> {
    /// What has been read so far; complete once the iterator has returned `None`.
    pub fn counts(&self) -> EvtxCounts {
        self.counts
    }

    /// Renders the next chunk's records into `pending`; false at the end of the file.
    fn fill(&mut self) -> bool {
        let Some(chunk) = self.chunks.next() else {
            return false;
        };
        let mut data = match chunk {
            Ok(data) => data,
            Err(e) => {
                self.pending.push_back(Err(e.to_string()));
                return true;
            }
        };
        match data.parse(Arc::clone(&self.settings)) {
            Err(e) => self.pending.push_back(Err(e.to_string())),
            Ok(mut chunk) => {
                for record in chunk.iter() {
                    let rendered = record.and_then(|r| r.into_json_value());
                    self.pending.push_back(rendered.map(|r| (r.event_record_id, r.data)).map_err(|e| e.to_string()));
                }
            }
        }
        true
    }
}

impl<R: Read + Seek> Iterator for EvtxRecords<R> {
    type Item = Result<Event, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(item) = self.pending.pop_front() else {
                if self.fill() {
                    continue;
                }
                return None;
            };
            let (record_id, value) = match item {
                Ok(record) => record,
                Err(reason) => {
                    self.counts.errors += 1;
                    return Some(Err(RecordError::Corrupt { reason }));
                }
            };
            self.counts.read += 1;
            let parsed = match value.as_object() {
                Some(obj) if crate::formats::windows::matches_converter(obj) => {
                    crate::formats::windows::parse_converter(obj)
                }
                _ => Err(EventError::UnknownShape),
            };
            match parsed {
                Ok(event) => {
                    self.counts.kept += 1;
                    return Some(Ok(event));
                }
                Err(EventError::NotProcessCreation { .. }) => self.counts.skipped_other_events += 1,
                Err(error) => {
                    self.counts.errors += 1;
                    return Some(Err(RecordError::Event { record_id, error }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_is_checked() {
        assert!(is_evtx(b"ElfFile\0\x00\x00"));
        assert!(!is_evtx(b"ElfChnk\0"));
        assert!(!is_evtx(b"Elf"));
    }

    #[test]
    fn short_and_foreign_inputs_are_clear_errors() {
        let short = read_evtx_from(std::io::Cursor::new(b"Elf".to_vec()), "a.evtx").err().unwrap();
        assert_eq!(short, EvtxFileError::NotEvtx { path: "a.evtx".into() });
        let json = read_evtx_from(std::io::Cursor::new(b"{\"EventID\": 1}".to_vec()), "b.evtx").err().unwrap();
        assert!(json.to_string().contains("is not an .evtx file"), "{json}");
        let mut header_only = EVTX_MAGIC.to_vec();
        header_only.extend([0u8; 100]);
        let cut = read_evtx_from(std::io::Cursor::new(header_only), "c.evtx").err().unwrap();
        assert!(matches!(cut, EvtxFileError::BadHeader { .. }), "{cut}");
        let missing = read_evtx("/nonexistent/sotto/x.evtx").err().unwrap();
        assert!(matches!(missing, EvtxFileError::Io { .. }), "{missing}");
    }
}
