//! Why an input could not become an [`Event`](crate::Event).
//!
//! Every message is written for a person reading an HTTP 422 body or a CLI error line: it says
//! which format was recognised and exactly which field is missing or wrong. Must not: carry
//! the raw input (it can be large and hostile), or wrap foreign error types (the enum stays
//! `Clone + PartialEq` so tests and callers can compare it).

use crate::event::Format;

/// The formats named when an input matches none of them.
pub const ACCEPTED_FORMATS: &str = "ECS process event, OCSF Process Activity (class_uid 1007), \
     Sysmon event id 1 or Security event 4688 (winlogbeat JSON, flat JSON, event XML, or EVTX converter JSON: \
     evtx_dump, XML-as-JSON, EvtxECmd), osquery process_events row or result log, \
     auditd text (or {\"auditd\": \"...\"}), Falco alert, plain {\"command_line\": \"...\"}";

/// The fields a plain event may carry.
pub const PLAIN_FIELDS: &str =
    "command_line, process_name, process_path, parent_name, parent_path, parent_command_line, user, host, cwd, os";

/// An input that cannot be normalised into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The input is empty or only whitespace.
    #[error("empty event")]
    Empty,
    /// The input looked like JSON (or like nothing else accepted) but does not parse as JSON.
    #[error("not valid JSON: {reason}")]
    NotJson {
        /// The JSON parser's message, with line and column.
        reason: String,
    },
    /// Valid JSON whose top level is not an object.
    #[error("expected a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found instead: "array", "string", "number", "boolean" or "null".
        found: &'static str,
    },
    /// A JSON object that matches none of the accepted formats.
    #[error("unrecognised event shape; accepted formats: {ACCEPTED_FORMATS}")]
    UnknownShape,
    /// The format was recognised but a field every event needs is absent.
    #[error("{format} event has no {what}")]
    Missing {
        /// The format that was recognised.
        format: crate::Format,
        /// The fields that were looked for, in the format's own names.
        what: &'static str,
    },
    /// A field is present but has the wrong JSON type or an unusable value.
    #[error("{format} field {field} should be {expected}, found {found}")]
    BadField {
        /// The format that was recognised.
        format: Format,
        /// The field, in the format's own dotted name.
        field: String,
        /// What the field should hold, e.g. "a string" or "a non-negative integer".
        expected: &'static str,
        /// What it holds instead: a JSON type name, or the offending value when it is short.
        found: String,
    },
    /// A plain event carries a key outside the plain schema, which usually means a richer
    /// format was sent that this crate does not recognise.
    #[error("plain event has unexpected field {field:?}; allowed fields: {PLAIN_FIELDS}")]
    UnexpectedField {
        /// The first key that is not part of the plain schema.
        field: String,
    },
    /// The format was recognised but the record is some other kind of event (a network
    /// connection, a file write, a process exit...).
    #[error("{format} {found} is not a process creation ({expected})")]
    NotProcessCreation {
        /// The format that was recognised.
        format: Format,
        /// What the record is, e.g. "event id 3" or "class_uid 1001".
        found: String,
        /// What a process creation would have been, e.g. "id 1".
        expected: &'static str,
    },
    /// A Windows event XML document that does not parse or lacks the `Event/System` frame.
    #[error("malformed Windows event XML: {reason}")]
    BadXml {
        /// What is wrong, with the position when the XML parser gave one.
        reason: String,
    },
    /// auditd text that cannot be split into records or groups.
    #[error("malformed auditd text: {reason}")]
    BadAuditd {
        /// What is wrong, naming the line or the record.
        reason: String,
    },
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_lower_case_or_with_a_format_name() {
        let samples = [
            EventError::Empty,
            EventError::NotJson { reason: "expected value at line 1 column 1".into() },
            EventError::NotAnObject { found: "array" },
            EventError::UnknownShape,
            EventError::Missing { format: Format::Ecs, what: "process.command_line" },
            EventError::BadXml { reason: "unexpected end of stream".into() },
            EventError::BadAuditd { reason: "line 2 has no msg=audit(...) id".into() },
        ];
        for e in samples {
            let text = e.to_string();
            let first = text.chars().next().unwrap();
            assert!(first.is_lowercase() || text.starts_with("ECS"), "{text}");
        }
    }

    #[test]
    fn unknown_shape_lists_every_format() {
        let text = EventError::UnknownShape.to_string();
        for name in ["ECS", "OCSF", "Sysmon", "Security event 4688", "EvtxECmd", "osquery", "auditd", "Falco", "plain"]
        {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }
}
