//! Linux auditd text: records (`type=SYSCALL msg=audit(1700000000.123:4567): ...`) grouped by
//! their `msg=audit(...)` id into one exec event each. The command line comes from the EXECVE
//! arguments (falling back to PROCTITLE), the binary and ids from SYSCALL, the directory from
//! CWD; other record types in a group (PATH, BPRM_FCAPS...) are ignored.
//!
//! auditd writes an untrusted string in double quotes when it is plain, and as bare hex when it
//! holds a space, a quote or a control byte; `ausearch -i` output is already decoded. Must not:
//! hex-decode a quoted value, or a number field.

use std::collections::{BTreeMap, HashMap};

use crate::error::EventError;
use crate::event::{Event, Format, Os, join_args};
use crate::formats::describe_user;
use crate::json::parse_uint;

/// What an exec group must have to say what ran.
const WHAT: &str = "EXECVE arguments, PROCTITLE or SYSCALL exe";

/// A field value as written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Val<'a> {
    /// `key="..."` (or `'...'`): the text as is.
    Quoted(&'a str),
    /// `key=...`: a number, a keyword, or hex for an untrusted string.
    Bare(&'a str),
}

/// One `type=... msg=audit(...): ...` line.
struct Record<'a> {
    kind: &'a str,
    fields: Vec<(&'a str, Val<'a>)>,
}

impl<'a> Record<'a> {
    fn get(&self, key: &str) -> Option<Val<'a>> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// The records sharing one `msg=audit(...)` id.
struct Group<'a> {
    id: &'a str,
    node: Option<&'a str>,
    /// `ausearch -i` output: values are already decoded, never hex.
    interpreted: bool,
    records: Vec<Record<'a>>,
}

/// Splits auditd text into exec events, one per `msg=audit(...)` id, in order of first
/// appearance. A line that is not an audit record becomes an error entry at its position; a
/// group that is not an exec (a login, an `openat` syscall) becomes a
/// [`EventError::NotProcessCreation`] entry, so a caller feeding a whole log can skip them.
pub fn parse_auditd(text: &str) -> Vec<Result<Event, EventError>> {
    split(text).into_iter().map(|g| g.and_then(|g| g.to_event())).collect()
}

/// Exactly one group: the form `parse_line` and the `{"auditd": ...}` wrapper accept.
pub(crate) fn parse_one(text: &str) -> Result<Event, EventError> {
    let mut entries = split(text);
    match entries.len() {
        0 => Err(EventError::BadAuditd { reason: "no audit records found".into() }),
        1 => entries.pop().expect("one entry").and_then(|g| g.to_event()),
        n => {
            let mut ids = Vec::new();
            for entry in &entries {
                match entry {
                    Ok(g) => ids.push(g.id),
                    Err(e) => return Err(e.clone()),
                }
            }
            let shown = ids.iter().take(3).copied().collect::<Vec<_>>().join(", ");
            let more = if n > 3 { ", ..." } else { "" };
            Err(EventError::BadAuditd {
                reason: format!("text holds {n} audit events (ids {shown}{more}); send one event per input"),
            })
        }
    }
}

fn split(text: &str) -> Vec<Result<Group<'_>, EventError>> {
    let mut entries: Vec<Result<Group<'_>, EventError>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_record_line(line, n + 1) {
            Err(e) => entries.push(Err(e)),
            Ok((node, id, record)) => match index.get(id) {
                Some(&i) => {
                    if let Ok(g) = &mut entries[i] {
                        g.records.push(record);
                        g.node = g.node.or(node);
                    }
                }
                None => {
                    index.insert(id, entries.len());
                    let interpreted = id.contains('/');
                    entries.push(Ok(Group { id, node, interpreted, records: vec![record] }));
                }
            },
        }
    }
    entries
}

/// `[node=NAME ][anything ]type=KIND msg=audit(ID): fields` into (node, id, record).
fn parse_record_line(line: &str, n: usize) -> Result<(Option<&str>, &str, Record<'_>), EventError> {
    let at = line
        .match_indices("type=")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || line.as_bytes()[i - 1].is_ascii_whitespace())
        .ok_or_else(|| EventError::BadAuditd { reason: format!("line {n} has no type= field") })?;
    let node = fields(&line[..at]).into_iter().find(|(k, _)| *k == "node").map(|(_, v)| match v {
        Val::Quoted(s) | Val::Bare(s) => s,
    });
    let after = &line[at + "type=".len()..];
    let kind_end = after.find(char::is_whitespace).unwrap_or(after.len());
    let kind = &after[..kind_end];
    let rest = &after[kind_end..];
    let no_id = || EventError::BadAuditd { reason: format!("line {n} ({kind}) has no msg=audit(...) id") };
    let open = rest.find("msg=audit(").ok_or_else(no_id)? + "msg=audit(".len();
    let close = rest[open..].find(')').ok_or_else(no_id)? + open;
    let id = &rest[open..close];
    if id.is_empty() {
        return Err(no_id());
    }
    let body = rest[close + 1..].trim_start_matches([':', ' ']);
    Ok((node, id, Record { kind, fields: fields(body) }))
}

/// `key=value` pairs; whitespace and the 0x1d separator before enriched fields both split.
fn fields(s: &str) -> Vec<(&str, Val<'_>)> {
    let mut out = Vec::new();
    let is_sep = |c: char| c.is_whitespace() || c == '\u{1d}';
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(is_sep);
        if rest.is_empty() {
            break;
        }
        let token_end = rest.find(is_sep).unwrap_or(rest.len());
        let Some(eq) = rest[..token_end].find('=') else {
            rest = &rest[token_end..];
            continue;
        };
        let key = &rest[..eq];
        let value = &rest[eq + 1..];
        let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'');
        if let Some(q) = quote {
            let inner = &value[1..];
            let end = inner.find(q).unwrap_or(inner.len());
            out.push((key, Val::Quoted(&inner[..end])));
            rest = inner.get(end + 1..).unwrap_or("");
        } else {
            let end = value.find(is_sep).unwrap_or(value.len());
            out.push((key, Val::Bare(&value[..end])));
            rest = &value[end..];
        }
    }
    out
}

/// Bytes from hex, if `s` is entirely an even number of hex digits.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// Is this syscall an exec, by name (enriched) or by number for the record's architecture?
fn is_exec_syscall(sc: &Record<'_>) -> bool {
    if let Some(Val::Quoted(name) | Val::Bare(name)) = sc.get("SYSCALL") {
        return name == "execve" || name == "execveat";
    }
    let (Some(Val::Bare(arch)), Some(Val::Bare(nr))) = (sc.get("arch"), sc.get("syscall")) else {
        return false;
    };
    let Ok(nr) = nr.parse::<u32>() else {
        return nr == "execve" || nr == "execveat";
    };
    match arch.to_ascii_lowercase().as_str() {
        "c000003e" | "x86_64" => matches!(nr, 59 | 322),
        "c00000b7" | "aarch64" => matches!(nr, 221 | 281),
        "40000003" | "i386" => matches!(nr, 11 | 358),
        "40000028" | "armeb" | "arm" => matches!(nr, 11 | 387),
        _ => false,
    }
}

impl Group<'_> {
    /// The text of an untrusted string field: quoted as is, bare hex decoded.
    fn text(&self, v: Val<'_>) -> String {
        match v {
            Val::Quoted(s) => s.to_string(),
            Val::Bare(s) if self.interpreted => s.to_string(),
            Val::Bare(s) => match unhex(s) {
                Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                None => s.to_string(),
            },
        }
    }

    fn record(&self, kind: &str) -> Option<&Record<'_>> {
        self.records.iter().find(|r| r.kind == kind)
    }

    /// EXECVE arguments in order, joining `aN[i]` chunks of long arguments.
    fn execve_args(&self) -> Vec<String> {
        let mut args: BTreeMap<usize, BTreeMap<usize, String>> = BTreeMap::new();
        for r in self.records.iter().filter(|r| r.kind == "EXECVE") {
            for (key, v) in &r.fields {
                let Some(rest) = key.strip_prefix('a') else { continue };
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                let Ok(i) = rest[..digits].parse::<usize>() else { continue };
                let chunk = match &rest[digits..] {
                    "" => 0,
                    s => match s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                        Some(c) => match c.parse::<usize>() {
                            Ok(c) => c,
                            Err(_) => continue,
                        },
                        None => continue, // `aN_len`
                    },
                };
                args.entry(i).or_default().insert(chunk, self.text(*v));
            }
        }
        args.into_values().map(|chunks| chunks.into_values().collect()).collect()
    }

    /// PROCTITLE: hex with NUL between arguments, or one quoted string.
    fn proctitle_args(&self) -> Vec<String> {
        let Some(v) = self.record("PROCTITLE").and_then(|r| r.get("proctitle")) else {
            return Vec::new();
        };
        match v {
            Val::Bare(s) if !self.interpreted => match unhex(s) {
                Some(bytes) => bytes
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
                None => vec![s.to_string()],
            },
            Val::Quoted(s) | Val::Bare(s) => vec![s.to_string()],
        }
    }

    fn to_event(&self) -> Result<Event, EventError> {
        let syscall = self.record("SYSCALL");
        if self.record("EXECVE").is_none() {
            let (found, expected) = match syscall {
                Some(sc) if is_exec_syscall(sc) => (None, ""),
                Some(sc) => {
                    let name = sc.get("SYSCALL").or(sc.get("syscall")).map(|v| self.text(v)).unwrap_or_default();
                    (Some(format!("syscall {name}")), "execve with an EXECVE record")
                }
                None => {
                    let mut kinds: Vec<&str> = self.records.iter().map(|r| r.kind).collect();
                    kinds.dedup();
                    (Some(format!("record group {}", kinds.join(","))), "SYSCALL execve with an EXECVE record")
                }
            };
            if let Some(found) = found {
                return Err(EventError::NotProcessCreation { format: Format::Auditd, found, expected });
            }
        }
        let mut e = Event::new(Format::Auditd, Os::Linux);
        let mut args = self.execve_args();
        if args.is_empty() {
            args = self.proctitle_args();
        }
        if !args.is_empty() {
            e.command_line = Some(join_args(&args, false));
        }
        if let Some(sc) = syscall {
            let num = |k: &str| match sc.get(k) {
                Some(Val::Bare(s) | Val::Quoted(s)) => parse_uint(s),
                None => None,
            };
            e.process_path = sc.get("exe").map(|v| self.text(v));
            if e.process_path.is_none() {
                e.process_name = sc.get("comm").map(|v| self.text(v));
            }
            e.pid = num("pid");
            e.ppid = num("ppid");
            // Enriched names are strings; the raw ids are numbers and never hex.
            let name_or_id = |enriched: &str, raw: &str| match (sc.get(enriched), sc.get(raw)) {
                (Some(v), _) => Some(self.text(v)),
                (None, Some(Val::Bare(id) | Val::Quoted(id))) => Some(format!("{raw}={id}")),
                (None, None) => None,
            };
            e.user = describe_user(name_or_id("UID", "uid"), name_or_id("AUID", "auid"));
        }
        e.cwd = self.record("CWD").and_then(|r| r.get("cwd")).map(|v| self.text(v));
        e.host = self.node.map(str::to_string);
        e.timestamp = Some(self.id.split(':').next().unwrap_or(self.id).to_string());
        e.finish(WHAT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = "\
type=SYSCALL msg=audit(1710234847.331:4567): arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 a3=0 items=2 ppid=2210 pid=2290 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"ls\" exe=\"/usr/bin/ls\" subj=unconfined key=\"exec\"
type=EXECVE msg=audit(1710234847.331:4567): argc=3 a0=\"ls\" a1=\"-la\" a2=2F746D702F6D7920646972
type=CWD msg=audit(1710234847.331:4567): cwd=\"/home/alice\"
type=PATH msg=audit(1710234847.331:4567): item=0 name=\"/usr/bin/ls\" inode=1835 dev=08:02 mode=0100755
type=PROCTITLE msg=audit(1710234847.331:4567): proctitle=6C73002D6C61002F746D702F6D7920646972
";

    #[test]
    fn execve_hex_argument_is_decoded() {
        let e = parse_one(LS).unwrap();
        assert_eq!(e.command_line.as_deref(), Some("ls -la '/tmp/my dir'"));
        assert_eq!(e.process_path.as_deref(), Some("/usr/bin/ls"));
        assert_eq!(e.process_name.as_deref(), Some("ls"));
        assert_eq!(e.cwd.as_deref(), Some("/home/alice"));
        assert_eq!((e.pid, e.ppid), (Some(2290), Some(2210)));
        assert_eq!(e.user.as_deref(), Some("uid=1000"));
        assert_eq!(e.timestamp.as_deref(), Some("1710234847.331"));
        assert_eq!(e.os, Os::Linux);
    }

    #[test]
    fn proctitle_is_the_fallback_and_is_split_on_nul() {
        let text: String = LS.lines().filter(|l| !l.starts_with("type=EXECVE")).map(|l| format!("{l}\n")).collect();
        let e = parse_one(&text).unwrap();
        assert_eq!(e.command_line.as_deref(), Some("ls -la '/tmp/my dir'"));
        let quoted = "type=SYSCALL msg=audit(1.0:9): arch=c000003e syscall=59 exe=\"/usr/bin/top\"\n\
            type=PROCTITLE msg=audit(1.0:9): proctitle=\"top\"";
        assert_eq!(parse_one(quoted).unwrap().command_line.as_deref(), Some("top"));
    }

    #[test]
    fn hex_encoded_exe_and_long_argument_chunks() {
        let text = "type=SYSCALL msg=audit(2.5:77): arch=c000003e syscall=59 success=yes ppid=1 pid=2 auid=4294967295 uid=0 comm=\"my tool\" exe=2F6F70742F6D7920746F6F6C\n\
            type=EXECVE msg=audit(2.5:77): argc=2 a0=\"tool\" a1_len=10 a1[0]=\"abcde\" a1[1]=6667206869";
        let e = parse_one(text).unwrap();
        assert_eq!(e.process_path.as_deref(), Some("/opt/my tool"));
        assert_eq!(e.command_line.as_deref(), Some("tool 'abcdefg hi'"));
        assert_eq!(e.user.as_deref(), Some("uid=0"), "an unset login uid is dropped");
    }

    #[test]
    fn enriched_names_and_node_prefix() {
        let text = "node=web-03 type=SYSCALL msg=audit(3.0:5): arch=c000003e syscall=59 ppid=10 pid=11 auid=1000 uid=0 exe=\"/usr/bin/id\"\u{1d}ARCH=x86_64 SYSCALL=execve AUID=\"alice\" UID=\"root\"\n\
            node=web-03 type=EXECVE msg=audit(3.0:5): argc=1 a0=\"id\"";
        let e = parse_one(text).unwrap();
        assert_eq!(e.user.as_deref(), Some("root (login alice)"));
        assert_eq!(e.host.as_deref(), Some("web-03"));
    }

    #[test]
    fn quoted_hex_lookalike_is_not_decoded() {
        let text = "type=EXECVE msg=audit(4.0:1): argc=2 a0=\"echo\" a1=\"cafe\"";
        assert_eq!(parse_one(text).unwrap().command_line.as_deref(), Some("echo cafe"));
        let bare = "type=EXECVE msg=audit(4.0:1): argc=2 a0=\"echo\" a1=636166652062";
        assert_eq!(parse_one(bare).unwrap().command_line.as_deref(), Some("echo 'cafe b'"));
    }

    #[test]
    fn interpreted_ausearch_output_is_not_hex_decoded() {
        let text = "type=EXECVE msg=audit(03/12/2024 09:14:07.331:4567) : argc=2 a0=echo a1=cafe";
        assert_eq!(parse_one(text).unwrap().command_line.as_deref(), Some("echo cafe"));
    }

    #[test]
    fn groups_keep_first_appearance_order_and_interleaving() {
        let text = "type=SYSCALL msg=audit(5.0:2): arch=c000003e syscall=59 exe=\"/usr/bin/b\"\n\
            type=SYSCALL msg=audit(5.0:1): arch=c000003e syscall=59 exe=\"/usr/bin/a\"\n\
            type=EXECVE msg=audit(5.0:2): argc=1 a0=\"b\"\n\
            garbage line\n\
            type=USER_LOGIN msg=audit(5.0:3): pid=1 uid=0 msg='op=login acct=\"bob\" res=success'\n\
            type=SYSCALL msg=audit(5.0:4): arch=c000003e syscall=257 exe=\"/usr/bin/cat\"\n\
            type=EXECVE msg=audit(5.0:1): argc=2 a0=\"a\" a1=\"-x\"";
        let out = parse_auditd(text);
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].as_ref().unwrap().command_line.as_deref(), Some("b"));
        assert_eq!(out[1].as_ref().unwrap().command_line.as_deref(), Some("a -x"));
        assert_eq!(out[2].as_ref().unwrap_err().to_string(), "malformed auditd text: line 4 has no type= field");
        assert_eq!(
            out[3].as_ref().unwrap_err().to_string(),
            "auditd record group USER_LOGIN is not a process creation (SYSCALL execve with an EXECVE record)"
        );
        assert_eq!(
            out[4].as_ref().unwrap_err().to_string(),
            "auditd syscall 257 is not a process creation (execve with an EXECVE record)"
        );
    }

    #[test]
    fn single_event_rejects_several() {
        let text = format!("{LS}type=EXECVE msg=audit(9.9:9): argc=1 a0=\"x\"\n");
        let err = parse_one(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed auditd text: text holds 2 audit events (ids 1710234847.331:4567, 9.9:9); send one event per input"
        );
        assert_eq!(parse_one("\n").unwrap_err().to_string(), "malformed auditd text: no audit records found");
    }

    #[test]
    fn missing_command_is_named() {
        let text = "type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=59 pid=3";
        assert_eq!(
            parse_one(text).unwrap_err().to_string(),
            "auditd event has no EXECVE arguments, PROCTITLE or SYSCALL exe"
        );
    }

    #[test]
    fn missing_id_is_reported() {
        let err = parse_one("type=EXECVE argc=1 a0=\"x\"").unwrap_err();
        assert_eq!(err.to_string(), "malformed auditd text: line 1 (EXECVE) has no msg=audit(...) id");
    }
}
