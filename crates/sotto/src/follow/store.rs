//! Where `--follow` keeps its place: which file it was reading (device, inode and a
//! fingerprint of its first bytes), how far (byte offset) and how many lines, in one small
//! file per followed path under the state directory.
//!
//! Must not: leave a half-written checkpoint behind (a save is a temporary file, fsync,
//! rename, fsync of the directory), or trust an inode number alone (inode numbers are reused
//! as soon as a rotated file is deleted).

use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many leading bytes of a file its fingerprint covers (fewer while the file is shorter,
/// or while less of it has been read).
pub const HEAD: usize = 4096;

/// A file on its filesystem: what `stat` says, which survives renames but not a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    #[cfg(unix)]
    pub fn of(m: &Metadata) -> FileKey {
        use std::os::unix::fs::MetadataExt;
        FileKey { dev: m.dev(), ino: m.ino() }
    }

    /// No stable file id here: the fingerprint alone tells files apart.
    #[cfg(not(unix))]
    pub fn of(_: &Metadata) -> FileKey {
        FileKey { dev: 0, ino: 0 }
    }
}

/// The sha256 of a file's first `len` bytes. A file that was truncated and written again
/// (copytruncate), or a new file that got a deleted one's inode number, starts with other
/// bytes, so it is told apart even where its size and inode say nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub sha256: String,
}

impl Fingerprint {
    pub fn of(head: &[u8]) -> Fingerprint {
        Fingerprint { len: head.len() as u64, sha256: hex(&Sha256::digest(head)) }
    }

    /// Whether `file` starts with the fingerprinted bytes.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        let mut head = vec![0; self.len as usize];
        Ok(read_at(file, 0, &mut head)? == head.len() && Fingerprint::of(&head) == *self)
    }
}

/// Where to go on after a restart: everything before `offset` has its record written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The file that was being read (it may have been renamed since).
    #[serde(flatten)]
    pub file: FileKey,
    /// Its first `min(offset, HEAD)` bytes.
    pub head: Fingerprint,
    /// The end of the last line whose record is written.
    pub offset: u64,
    /// Lines of this file before `offset`: the next line is `line + 1`.
    pub line: u64,
}

/// A checkpoint as it was found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Saved {
    Checkpoint(Checkpoint),
    /// The format before issue 11 (`INODE OFFSET`): no device, no fingerprint, no line count.
    /// Trusted only for the file now at the path, and rewritten in the new format at the
    /// next save.
    Legacy {
        ino: u64,
        offset: u64,
    },
}

/// The checkpoint file of one followed path.
#[derive(Clone, Debug)]
pub struct OffsetStore {
    path: PathBuf,
}

/// The on-disk form: a version, so that a later change is read, not misread.
#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    #[serde(flatten)]
    checkpoint: Checkpoint,
}

const FORMAT: u32 = 2;

impl OffsetStore {
    pub fn at(path: PathBuf) -> OffsetStore {
        OffsetStore { path }
    }

    /// The store of `followed` under `state_dir`: named by a hash of its absolute path (a
    /// symlink's own path, not its target's, so that re-pointing it is a rotation and not
    /// another followed file).
    pub fn for_followed(state_dir: &Path, followed: &Path) -> OffsetStore {
        let absolute = absolute_link_path(followed);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in absolute.as_os_str().as_encoded_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        OffsetStore::at(state_dir.join("follow").join(format!("{h:016x}.offset")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoint. A missing file is `None`; so is one that cannot be read, with a
    /// warning: reading the followed file again from its start repeats verdicts but skips
    /// nothing.
    pub fn load(&self) -> Option<Saved> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(state = %self.path.display(), "cannot read the follow offset ({e}); starting from the beginning");
                return None;
            }
        };
        let parsed = parse(&text);
        if parsed.is_none() {
            tracing::warn!(state = %self.path.display(), "the follow offset file is not one sotto wrote; starting from the beginning");
        }
        parsed
    }

    /// Replaces the checkpoint atomically and durably: a crash leaves the old one or the new
    /// one, never a mix, and once this returns the new one survives a power cut.
    pub fn save(&self, checkpoint: &Checkpoint) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("partial");
        let mut text = serde_json::to_string(&OnDisk { format: FORMAT, checkpoint: checkpoint.clone() })?;
        text.push('\n');
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(dir)
    }
}

fn parse(text: &str) -> Option<Saved> {
    if let Ok(d) = serde_json::from_str::<OnDisk>(text) {
        return (d.format == FORMAT).then_some(Saved::Checkpoint(d.checkpoint));
    }
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    match (it.next()??, it.next()??, it.next()) {
        (ino, offset, None) => Some(Saved::Legacy { ino, offset }),
        _ => None,
    }
}

/// The rename of a checkpoint is durable only once its directory is.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `path` made absolute without resolving its last component (a symlink stays itself).
pub fn absolute_link_path(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Reads at `offset` into `buf` until it is full or the file ends; returns how much was read.
/// Leaves the file's own position alone where the platform allows.
pub fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf[done..], offset + done as u64);
        #[cfg(not(unix))]
        let n = {
            use std::io::{Read, Seek};
            let mut f = file;
            f.seek(io::SeekFrom::Start(offset + done as u64)).and_then(|_| f.read(&mut buf[done..]))
        };
        match n {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Lines (`\n`) in the first `len` bytes of `file`: the line count a legacy checkpoint lacks.
pub fn count_lines(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut at, mut lines) = (0, 0);
    while at < len {
        let want = buf.len().min((len - at) as usize);
        let n = read_at(file, at, &mut buf[..want])?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        at += n as u64;
    }
    Ok(lines)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(offset: u64) -> Checkpoint {
        Checkpoint { file: FileKey { dev: 7, ino: 42 }, head: Fingerprint::of(b"{\"a\": 1}\n"), offset, line: 3 }
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::at(dir.path().join("follow/x.offset"));
        assert_eq!(store.load(), None);
        store.save(&checkpoint(1234)).unwrap();
        assert_eq!(store.load(), Some(Saved::Checkpoint(checkpoint(1234))));
        store.save(&checkpoint(2000)).unwrap();
        assert_eq!(store.load(), Some(Saved::Checkpoint(checkpoint(2000))));
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.starts_with("{\"format\":2,") && text.contains("\"line\":3"), "{text}");
        assert_eq!(std::fs::read_dir(dir.path().join("follow")).unwrap().count(), 1, "no temporary file is left");
    }

    #[test]
    fn a_save_that_fails_leaves_the_previous_checkpoint_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::at(dir.path().join("x.offset"));
        store.save(&checkpoint(10)).unwrap();
        // The temporary file cannot be created (a directory is in its place): the write fails
        // before the rename, and the checkpoint on disk is still the old one.
        std::fs::create_dir(dir.path().join("x.partial")).unwrap();
        assert!(store.save(&checkpoint(20)).is_err());
        assert_eq!(store.load(), Some(Saved::Checkpoint(checkpoint(10))));
        // A temporary file left by a crash mid-save is ignored, then replaced.
        std::fs::remove_dir(dir.path().join("x.partial")).unwrap();
        std::fs::write(dir.path().join("x.partial"), "{\"format\":2,\"dev\"").unwrap();
        assert_eq!(store.load(), Some(Saved::Checkpoint(checkpoint(10))));
        store.save(&checkpoint(30)).unwrap();
        assert_eq!(store.load(), Some(Saved::Checkpoint(checkpoint(30))));
        assert!(!dir.path().join("x.partial").exists());
    }

    #[test]
    fn the_old_inode_offset_format_is_read_as_legacy_and_garbage_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::at(dir.path().join("x.offset"));
        std::fs::write(store.path(), "42 1234\n").unwrap();
        assert_eq!(store.load(), Some(Saved::Legacy { ino: 42, offset: 1234 }));
        for garbage in ["", "42", "42 x", "1 2 3", "{\"format\":3}", "{\"format\":9,\"dev\":1}"] {
            std::fs::write(store.path(), garbage).unwrap();
            assert_eq!(store.load(), None, "{garbage:?}");
        }
        let mut future = serde_json::to_value(OnDisk { format: 2, checkpoint: checkpoint(5) }).unwrap();
        future["format"] = 3.into();
        std::fs::write(store.path(), future.to_string()).unwrap();
        assert_eq!(store.load(), None, "a later format is not misread");
    }

    #[test]
    fn a_fingerprint_tells_a_rewritten_file_from_the_one_that_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "line one\nline two\n").unwrap();
        let fp = Fingerprint::of(b"line one\n");
        assert!(fp.matches(&File::open(&p).unwrap()).unwrap());
        // Appending keeps it; rewriting the first bytes, or cutting the file short, does not.
        std::fs::write(&p, "line one\nline two\nline three\n").unwrap();
        assert!(fp.matches(&File::open(&p).unwrap()).unwrap());
        std::fs::write(&p, "line 1ne\nline two\nline three\n").unwrap();
        assert!(!fp.matches(&File::open(&p).unwrap()).unwrap());
        std::fs::write(&p, "line").unwrap();
        assert!(!fp.matches(&File::open(&p).unwrap()).unwrap());
        assert!(Fingerprint::of(b"").matches(&File::open(&p).unwrap()).unwrap(), "nothing read: any file");
    }

    #[cfg(unix)]
    #[test]
    fn the_store_of_a_symlink_is_named_by_the_link_not_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        let link = dir.path().join("current.log");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let before = OffsetStore::for_followed(dir.path(), &link);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        assert_eq!(OffsetStore::for_followed(dir.path(), &link).path(), before.path());
        assert_ne!(OffsetStore::for_followed(dir.path(), &a).path(), before.path());
    }

    #[test]
    fn count_lines_counts_newlines_before_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "a\nb\n\nc").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(count_lines(&f, 0).unwrap(), 0);
        assert_eq!(count_lines(&f, 2).unwrap(), 1);
        assert_eq!(count_lines(&f, 5).unwrap(), 3);
        assert_eq!(count_lines(&f, 100).unwrap(), 3);
    }
}
