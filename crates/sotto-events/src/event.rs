//! The one internal event every input format is normalised into, and the text a model sees.
//!
//! [`Event::render`] is the only place that turns untrusted event fields into prompt text, so
//! it owns the injection rule: one field per line, every value JSON-encoded. Must not: know
//! any input format (the parsers fill the fields), or drop the truncation marker.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::EventError;

/// The input format an event was read from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Elastic Common Schema JSON (Elastic Defend, Auditbeat, Logstash pipelines).
    Ecs,
    /// OCSF Process Activity (class_uid 1007).
    Ocsf,
    /// Sysmon event id 1: winlogbeat JSON, flat forwarder JSON, the Windows event XML, or the
    /// XML as JSON that EVTX converters write.
    Sysmon,
    /// Windows Security event 4688 (a new process has been created), in the same shapes.
    #[serde(rename = "security_4688")]
    Security4688,
    /// An osquery `process_events` row, bare or inside a result-log line.
    Osquery,
    /// A group of Linux auditd records sharing one `msg=audit(...)` id.
    Auditd,
    /// A Falco alert.
    Falco,
    /// The minimal `{"command_line": ...}` object.
    Plain,
}

impl Format {
    /// The name used in messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Format::Ecs => "ECS",
            Format::Ocsf => "OCSF",
            Format::Sysmon => "Sysmon",
            Format::Security4688 => "Security 4688",
            Format::Osquery => "osquery",
            Format::Auditd => "auditd",
            Format::Falco => "Falco",
            Format::Plain => "plain",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// The operating system the process ran on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// Microsoft Windows.
    Windows,
    /// Any Linux distribution.
    Linux,
    /// Apple macOS.
    Macos,
    /// No OS field and no path whose shape gives it away.
    Unknown,
}

impl Os {
    /// The lower-case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Windows => "windows",
            Os::Linux => "linux",
            Os::Macos => "macos",
            Os::Unknown => "unknown",
        }
    }

    /// Reads an OS name or family as the formats spell it ("Windows", "darwin", "ubuntu",
    /// "macOS", "debian", "Mac OS X"...). `None` when the hint names nothing recognised.
    pub fn from_hint(hint: &str) -> Option<Os> {
        let h = hint.trim().to_ascii_lowercase();
        if h.is_empty() {
            return None;
        }
        if h.starts_with("win") {
            return Some(Os::Windows);
        }
        if ["darwin", "macos", "mac os", "osx", "os x", "mac"].iter().any(|m| h.starts_with(m)) {
            return Some(Os::Macos);
        }
        const LINUX: [&str; 16] = [
            "linux",
            "ubuntu",
            "debian",
            "redhat",
            "red hat",
            "rhel",
            "centos",
            "fedora",
            "amazon",
            "amzn",
            "suse",
            "opensuse",
            "alpine",
            "arch",
            "rocky",
            "almalinux",
        ];
        if LINUX.iter().any(|m| h.starts_with(m)) || h == "oracle" {
            return Some(Os::Linux);
        }
        None
    }

    /// Guesses the OS from the shape of one path. Drive letters, UNC prefixes and backslashes
    /// mean Windows; the top-level folders only macOS has mean macOS; `/home`, `/proc` and
    /// `/snap` mean Linux. Any other absolute `/` path is [`PathShape::Posix`].
    fn shape_of(path: &str) -> PathShape {
        let p = path.trim_start_matches(['"', '\'']);
        let b = p.as_bytes();
        if (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/'))
            || p.starts_with("\\\\")
            || p.starts_with("%")
            || (p.contains('\\') && !p.starts_with('/'))
        {
            return PathShape::Windows;
        }
        if !p.starts_with('/') {
            return PathShape::None;
        }
        const MAC: [&str; 8] = [
            "/Applications/",
            "/System/",
            "/Users/",
            "/Library/",
            "/private/",
            "/Volumes/",
            "/opt/homebrew/",
            "/cores/",
        ];
        if MAC.iter().any(|m| p.starts_with(m)) {
            return PathShape::Macos;
        }
        const LINUX: [&str; 4] = ["/home/", "/proc/", "/snap/", "/run/containerd/"];
        if LINUX.iter().any(|m| p.starts_with(m)) {
            return PathShape::Linux;
        }
        PathShape::Posix
    }

    /// Guesses the OS from several paths: the first one with an unambiguous shape decides;
    /// failing that, any absolute `/` path means Linux.
    pub fn infer_from_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Os {
        let mut posix = false;
        for p in paths {
            match Os::shape_of(p) {
                PathShape::Windows => return Os::Windows,
                PathShape::Macos => return Os::Macos,
                PathShape::Linux => return Os::Linux,
                PathShape::Posix => posix = true,
                PathShape::None => {}
            }
        }
        if posix { Os::Linux } else { Os::Unknown }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one path's shape says about the OS.
enum PathShape {
    Windows,
    Macos,
    Linux,
    /// Absolute `/` path found on every Unix.
    Posix,
    None,
}

/// The upstream detection that produced the event (Falco alerts carry one).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// The detector's rule name, e.g. "Terminal shell in container".
    pub rule: String,
    /// The detector's priority as it spelled it, e.g. "Warning".
    pub priority: Option<String>,
}

/// One process launch, whatever format it arrived in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// The format it was read from, so a verdict can be traced back to the input.
    pub source: Format,
    /// From the format's OS field, else guessed from the shape of the paths.
    pub os: Os,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// As the format gives it: `CORP\jdoe`, `root`, or `uid=1000` when only a number is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Basename of `process_path` when the format gives only the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_path: Option<String>,
    /// The full command line; rebuilt from the argument vector when the format splits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_command_line: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Container id (and image when known): a shell in a container reads differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// As the format gave it (ISO 8601, epoch seconds, auditd `secs.millis`...), not parsed:
    /// the model does not need it and reparsing invites time-zone mistakes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Algorithm (lower case, no dashes: "sha256", "md5", "imphash") to hex digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hashes: BTreeMap<String, String>,
    /// The upstream rule that fired, for alert formats; `None` for plain telemetry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    /// The Windows mandatory integrity level the process ran at, lower case: "untrusted",
    /// "low", "medium", "medium-plus", "high", "system", "protected". An unelevated admin tool
    /// and an elevated one read differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// True when the format could carry the command line but this event does not (Security
    /// 4688 with command-line auditing off): the model must not read its absence as a clue.
    #[serde(default, skip_serializing_if = "is_false")]
    pub command_line_missing: bool,
    /// True when [`Event::truncate`] shortened a field, so a caller can say so.
    #[serde(default)]
    pub truncated: bool,
}

impl Event {
    /// An event with nothing but its source and OS; parsers fill the rest, then call
    /// [`Event::finish`].
    pub(crate) fn new(source: Format, os: Os) -> Event {
        Event {
            source,
            os,
            host: None,
            user: None,
            process_name: None,
            process_path: None,
            command_line: None,
            pid: None,
            parent_name: None,
            parent_path: None,
            parent_command_line: None,
            ppid: None,
            cwd: None,
            container: None,
            timestamp: None,
            hashes: BTreeMap::new(),
            alert: None,
            integrity: None,
            command_line_missing: false,
            truncated: false,
        }
    }

    /// Derives names from paths and the OS from path shapes, then checks the event says what
    /// ran. `what` names, in the format's own terms, the fields that would have said it.
    pub(crate) fn finish(mut self, what: &'static str) -> Result<Event, EventError> {
        for field in self.string_fields_mut() {
            if field.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *field = None;
            }
        }
        if self.process_name.is_none() {
            self.process_name = self.process_path.as_deref().map(basename).filter(|s| !s.is_empty());
        }
        if self.parent_name.is_none() {
            self.parent_name = self.parent_path.as_deref().map(basename).filter(|s| !s.is_empty());
        }
        if self.os == Os::Unknown {
            let first_token = self.command_line.as_deref().map(first_token);
            let paths = [self.process_path.as_deref(), self.parent_path.as_deref(), self.cwd.as_deref(), first_token];
            self.os = Os::infer_from_paths(paths.into_iter().flatten());
        }
        if self.command_line.is_none() && self.process_path.is_none() && self.process_name.is_none() {
            return Err(EventError::Missing { format: self.source, what });
        }
        Ok(self)
    }

    fn string_fields_mut(&mut self) -> [&mut Option<String>; 12] {
        [
            &mut self.host,
            &mut self.user,
            &mut self.integrity,
            &mut self.process_name,
            &mut self.process_path,
            &mut self.command_line,
            &mut self.parent_name,
            &mut self.parent_path,
            &mut self.parent_command_line,
            &mut self.cwd,
            &mut self.container,
            &mut self.timestamp,
        ]
    }

    /// Shortens every string field longer than `max_chars_per_field` characters (or bytes,
    /// which bounds its tokens) at a char boundary, appends `…[+N chars truncated]`, and sets
    /// `truncated`. The marker is outside
    /// the budget so the reader always sees how much was cut.
    pub fn truncate(&mut self, max_chars_per_field: usize) {
        let mut cut = false;
        for field in self.string_fields_mut().into_iter().flatten() {
            cut |= truncate_string(field, max_chars_per_field);
        }
        if let Some(alert) = &mut self.alert {
            cut |= truncate_string(&mut alert.rule, max_chars_per_field);
        }
        self.truncated |= cut;
    }

    /// The event as the text block a model reads: one `key: "json string"` line per present
    /// field, in a fixed order. JSON string escaping means a newline, quote or control
    /// character inside a command line can never start a new line or a fake field. Host, pids,
    /// timestamps and hashes are left out: they cost tokens and say little about intent.
    pub fn render(&self) -> String {
        let process = self.process_path.as_ref().or(self.process_name.as_ref());
        let parent = self.parent_path.as_ref().or(self.parent_name.as_ref());
        let alert = self.alert.as_ref().map(|a| match &a.priority {
            Some(p) => format!("{} ({p})", a.rule),
            None => a.rule.clone(),
        });
        let os = (self.os != Os::Unknown).then(|| self.os.as_str().to_string());
        let note = self.command_line_missing.then(|| COMMAND_LINE_MISSING_NOTE.to_string());
        let lines: [(&str, Option<&String>); 11] = [
            ("os", os.as_ref()),
            ("process", process),
            ("command_line", self.command_line.as_ref()),
            ("parent", parent),
            ("parent_command_line", self.parent_command_line.as_ref()),
            ("user", self.user.as_ref()),
            ("integrity", self.integrity.as_ref()),
            ("cwd", self.cwd.as_ref()),
            ("container", self.container.as_ref()),
            ("alert", alert.as_ref()),
            ("note", note.as_ref()),
        ];
        let mut out = String::new();
        for (key, value) in lines {
            if let Some(v) = value {
                out.push_str(key);
                out.push_str(": ");
                encode_json_string(v, &mut out);
                out.push('\n');
            }
        }
        out
    }
}

/// The `note` line [`Event::render`] writes when `command_line_missing` is set.
pub const COMMAND_LINE_MISSING_NOTE: &str = "command-line auditing is off; only the image and parent are known";

/// For `skip_serializing_if`.
fn is_false(b: &bool) -> bool {
    !*b
}

/// Cuts `s` to `max` chars plus a marker; returns whether it cut.
///
/// `max` bounds the bytes as well as the characters: every token of a byte-level or
/// byte-fallback vocabulary covers at least one byte, so a byte bound is a token bound, and a
/// field of emoji or rare scripts cannot cost four times the tokens of one of ASCII.
fn truncate_string(s: &mut String, max: usize) -> bool {
    let by_chars = s.char_indices().nth(max).map(|(i, _)| i);
    let by_bytes = (s.len() > max).then(|| (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0));
    let Some(byte_end) = [by_chars, by_bytes].into_iter().flatten().min() else {
        return false;
    };
    let removed = s[byte_end..].chars().count();
    s.truncate(byte_end);
    s.push_str(&format!("…[+{removed} chars truncated]"));
    true
}

/// Writes `s` as a JSON string literal. Beyond what JSON requires, it escapes characters that
/// some readers treat as line breaks or that reorder displayed text (C1 controls, U+2028,
/// U+2029, bidirectional overrides, BOM), so the rendered block shows exactly one line per field.
pub(crate) fn encode_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20
                || (0x7f..=0x9f).contains(&(c as u32))
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{feff}')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The last component of a Windows or Unix path.
pub(crate) fn basename(path: &str) -> String {
    let trimmed = path.trim().trim_matches('"').trim_end_matches(['\\', '/']);
    trimmed.rsplit(['\\', '/']).next().unwrap_or(trimmed).to_string()
}

/// The program part of a command line: a leading quoted string, or everything up to the
/// first space.
pub(crate) fn first_token(command_line: &str) -> &str {
    let s = command_line.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        return rest.split('"').next().unwrap_or(rest);
    }
    s.split_whitespace().next().unwrap_or("")
}

/// Joins an argument vector into one command line, quoting arguments that are empty or hold
/// whitespace or quotes: POSIX single quotes for Unix, double quotes for Windows.
pub(crate) fn join_args<S: AsRef<str>>(args: &[S], windows: bool) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let a = arg.as_ref();
        if i > 0 {
            out.push(' ');
        }
        let plain = !a.is_empty() && !a.chars().any(|c| c.is_whitespace() || c == '"' || c == '\'');
        if plain {
            out.push_str(a);
        } else if windows {
            out.push('"');
            out.push_str(&a.replace('"', "\\\""));
            out.push('"');
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    out
}

#[cfg(test)]
mod tests;
