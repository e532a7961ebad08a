//! `sotto analyze --follow`: tail a growing log through rotations and restarts, and hand
//! each complete line to the analysis exactly once while nothing crashes, at least once when
//! something does.
//!
//! [`Follower`] is the logic, with no model and no waiting: it yields lines with their line
//! numbers and decides what a change of the file means (appended, rotated by rename,
//! copytruncated, re-pointed symlink). [`run`] is the loop around it: handle a line, make its
//! record durable, then save the checkpoint ([`store`]), and block on change notifications
//! ([`wake`]) while the file is quiet.
//!
//! Must: read a file that was renamed away to its end before the new one; tell a file by its
//! device, inode and the fingerprint of its first bytes, never by its size alone; write the
//! checkpoint only after the records it covers are written and synced (a crash repeats a
//! verdict, it never skips a line).
//!
//! Must not: poll while the file is quiet (one check per `analyze.follow_check`, 2 s by
//! default, is the only timer: a safety net for a notification that never comes, as on some
//! network filesystems), hold more than one line in memory, or contain `unsafe`.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod store;
#[cfg(test)]
mod tests;
pub mod wake;

pub use store::{Checkpoint, FileKey, OffsetStore};
use store::{Fingerprint, HEAD, Saved};
pub use wake::{Stop, Waiter};

/// One line of the followed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its number in the file it was read from, counting from 1; it goes on across restarts
    /// and starts again at 1 in the file that replaces a rotated one.
    pub no: u64,
    /// Its bytes, without the newline (which the last line of a rotated file may lack).
    pub bytes: Vec<u8>,
}

/// How often a quiet file is looked at without a change notification (`analyze.follow_check`
/// by default): a safety net for filesystems that do not notify, not a poll.
pub const SAFETY_NET: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes read at once.
const CHUNK: usize = 64 * 1024;

/// A line longer than this is cut: the piece is handed on (it will not parse) and the rest
/// reads as the next line, so one runaway writer cannot take the memory.
pub const MAX_LINE: usize = 4 << 20;

/// Reads the file at a path line by line, following it through rotations.
pub struct Follower {
    /// The followed path as given; a symlink is followed to its target.
    path: PathBuf,
    store: OffsetStore,
    /// The file being read, if one is open.
    reading: Option<Reading>,
    /// The checkpoint found at start, until the first file is opened.
    resume: Option<Saved>,
    /// What was last saved, so that a quiet loop does not write the same checkpoint again.
    saved: Option<Checkpoint>,
    /// The end of a rotated file read to its end, while no file is open after it.
    finished: Option<Checkpoint>,
}

/// One open file and how far it has been read.
struct Reading {
    file: File,
    key: FileKey,
    /// The file's first bytes as they were read (at most [`HEAD`]); checked again before each
    /// read, so that a file truncated and written again past our offset is noticed.
    head: Vec<u8>,
    /// Where the next read starts: everything before it is in `pending` or was yielded.
    read_to: u64,
    /// Bytes read and not yet yielded, from `taken` on (a partial line at most, between calls).
    pending: Vec<u8>,
    taken: usize,
    /// The end of the last line yielded.
    consumed: u64,
    /// Lines yielded from this file, before this process started included.
    line: u64,
    /// The path names another file now: read this one to its end, then move on.
    rotated: bool,
}

impl Follower {
    /// A follower of `path` that starts where `store`'s checkpoint says (nothing opens until
    /// the first [`Follower::next_line`]).
    pub fn new(path: &Path, store: OffsetStore) -> Follower {
        let resume = store.load();
        let saved = match &resume {
            Some(Saved::Checkpoint(c)) => Some(c.clone()),
            _ => None,
        };
        Follower { path: path.to_path_buf(), store, reading: None, resume, saved, finished: None }
    }

    /// The next complete line, or `None` when there is none yet (wait for a change, then ask
    /// again). A line counts as complete once its newline is in the file, or once the file it
    /// is the end of has been rotated away and read to its end.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            if self.reading.is_none() && !self.open()? {
                return Ok(None);
            }
            let r = self.reading.as_mut().expect("opened above");
            if let Some(line) = r.take_line(false) {
                return Ok(Some(line));
            }
            if !r.rotated && r.rewritten()? {
                tracing::info!(path = %self.path.display(), "the file was truncated in place (copytruncate); reading it from its start");
                r.restart();
                continue;
            }
            if r.fill()? > 0 {
                continue;
            }
            if r.rotated {
                let tail = r.take_line(true);
                self.finished = Some(r.checkpoint());
                self.reading = None;
                match tail {
                    Some(line) => return Ok(Some(line)),
                    None => continue,
                }
            }
            match key_at(&self.path)? {
                Some(k) if k != r.key => {
                    tracing::info!(path = %self.path.display(), "the file was rotated; reading the old one to its end first");
                    r.rotated = true;
                }
                // The same file, at its end; or no file at the path yet (keep the old one, its
                // writer may not have moved on).
                _ => return Ok(None),
            }
        }
    }

    /// Saves where the follower is: every line yielded so far must have its record written
    /// (and synced). Does nothing when nothing moved since the last save.
    pub fn commit(&mut self) -> io::Result<()> {
        let Some(c) = self.reading.as_ref().map(Reading::checkpoint).or_else(|| self.finished.clone()) else {
            return Ok(());
        };
        if self.saved.as_ref() != Some(&c) {
            self.store.save(&c)?;
            self.saved = Some(c);
        }
        Ok(())
    }

    /// The file being read, if one is open.
    #[cfg(test)]
    pub fn reading(&self) -> Option<FileKey> {
        self.reading.as_ref().map(|r| r.key)
    }

    /// The paths whose changes matter: the followed path itself (absolute, a symlink not
    /// resolved) and, when it is a symlink, its current target.
    pub fn watch_paths(&self) -> Vec<PathBuf> {
        let link = store::absolute_link_path(&self.path);
        let mut paths = vec![link.clone()];
        if let Ok(target) = self.path.canonicalize()
            && target != link
        {
            paths.push(target);
        }
        paths
    }

    /// Opens the file to read: after a restart the one the checkpoint names (at the path, or
    /// renamed beside it), else the file at the path from its start. False when there is none.
    fn open(&mut self) -> io::Result<bool> {
        let opened = self.open_file()?;
        if opened {
            self.finished = None;
        }
        Ok(opened)
    }

    fn open_file(&mut self) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(f) = &file
            && f.metadata()?.is_dir()
        {
            return Err(io::Error::other(format!("{} is a directory", self.path.display())));
        }
        if let Some(saved) = self.resume.take() {
            if let Some(f) = &file
                && let Some(r) = Reading::resume(f.try_clone()?, &saved)?
            {
                tracing::info!(path = %self.path.display(), offset = r.consumed, line = r.line, "resuming");
                self.reading = Some(r);
                return Ok(true);
            }
            match saved {
                Saved::Checkpoint(c) if file.as_ref().map(key_of).transpose()? != Some(c.file) => {
                    if let Some(r) = self.find_rotated(&c)? {
                        self.reading = Some(r);
                        return Ok(true);
                    }
                    tracing::warn!(path = %self.path.display(), "the file read before the stop was rotated away and is not beside the path; lines after offset {} of it are not read", c.offset);
                }
                Saved::Checkpoint(_) => {
                    tracing::info!(path = %self.path.display(), "the file changed in place since the stop (copytruncate); reading it from its start")
                }
                Saved::Legacy { .. } => {
                    tracing::info!(path = %self.path.display(), "the offset saved by an older sotto is not for this file; reading it from its start")
                }
            }
        }
        let Some(file) = file else { return Ok(false) };
        tracing::info!(path = %self.path.display(), "reading from the start");
        self.reading = Some(Reading::new(file, 0, 0, Vec::new())?);
        Ok(true)
    }

    /// The checkpoint's file under another name in the path's directory (or its target's):
    /// rotated by rename while sotto was stopped. It is read to its end before the path.
    /// Found by its device and inode; when its first bytes changed too, it is read from its
    /// start (a repeat at worst, never a skip).
    fn find_rotated(&self, c: &Checkpoint) -> io::Result<Option<Reading>> {
        let mut dirs = vec![self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).into()];
        if let Some(target_dir) = self.path.canonicalize().ok().and_then(|t| t.parent().map(Path::to_path_buf)) {
            dirs.push(target_dir);
        }
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let p = entry.path();
                let Ok(m) = std::fs::metadata(&p) else { continue };
                if !m.is_file() || FileKey::of(&m) != c.file {
                    continue;
                }
                let file = File::open(&p)?;
                let mut r = match Reading::resume(file.try_clone()?, &Saved::Checkpoint(c.clone()))? {
                    Some(r) => {
                        tracing::info!(path = %p.display(), offset = c.offset, "the file read before the stop was rotated; reading it to its end first");
                        r
                    }
                    // Truncated before it was renamed, or another file with a reused inode
                    // number: from its start, which can repeat lines but skips none.
                    None => {
                        tracing::info!(path = %p.display(), "the file read before the stop was rotated and changed; reading it from its start first");
                        Reading::new(file, 0, 0, Vec::new())?
                    }
                };
                r.rotated = true;
                return Ok(Some(r));
            }
        }
        Ok(None)
    }
}

impl Reading {
    /// `file` from `offset`, whose first bytes are `head` (read from the file when empty).
    fn new(file: File, offset: u64, line: u64, mut head: Vec<u8>) -> io::Result<Reading> {
        let key = key_of(&file)?;
        if head.is_empty() && offset > 0 {
            head = vec![0; offset.min(HEAD as u64) as usize];
            let n = store::read_at(&file, 0, &mut head)?;
            head.truncate(n);
        }
        Ok(Reading {
            file,
            key,
            head,
            read_to: offset,
            pending: Vec::new(),
            taken: 0,
            consumed: offset,
            line,
            rotated: false,
        })
    }

    /// `file` at the saved place, if it is the file that was saved and still holds what was read.
    fn resume(file: File, saved: &Saved) -> io::Result<Option<Reading>> {
        let m = file.metadata()?;
        let key = FileKey::of(&m);
        match saved {
            Saved::Checkpoint(c) => {
                if key != c.file || m.len() < c.offset || !c.head.matches(&file)? {
                    return Ok(None);
                }
                Reading::new(file, c.offset, c.line, Vec::new()).map(Some)
            }
            Saved::Legacy { ino, offset } => {
                if key.ino != *ino || m.len() < *offset {
                    return Ok(None);
                }
                let line = store::count_lines(&file, *offset)?;
                Reading::new(file, *offset, line, Vec::new()).map(Some)
            }
        }
    }

    /// The next line in `pending`; with `last`, also an unterminated rest.
    fn take_line(&mut self, last: bool) -> Option<Line> {
        let rest = &self.pending[self.taken..];
        let (len, used) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) if i <= MAX_LINE => (i, i + 1),
            _ if rest.len() >= MAX_LINE => (MAX_LINE, MAX_LINE),
            _ if last && !rest.is_empty() => (rest.len(), rest.len()),
            _ => return None,
        };
        let bytes = rest[..len].to_vec();
        self.taken += used;
        self.consumed += used as u64;
        self.line += 1;
        Some(Line { no: self.line, bytes })
    }

    /// Reads more at `read_to`; returns how much.
    fn fill(&mut self) -> io::Result<usize> {
        self.pending.drain(..self.taken);
        self.taken = 0;
        let start = self.pending.len();
        self.pending.resize(start + CHUNK, 0);
        let n = store::read_at(&self.file, self.read_to, &mut self.pending[start..]);
        self.pending.truncate(start + n.as_ref().map_or(0, |n| *n));
        let n = n?;
        if self.head.len() < HEAD {
            let want = (HEAD - self.head.len()).min(n);
            self.head.extend_from_slice(&self.pending[start..start + want]);
        }
        self.read_to += n as u64;
        Ok(n)
    }

    /// Whether the file no longer holds what was read: shorter than what was read, or with
    /// other first bytes (truncated, then written again past our offset).
    fn rewritten(&self) -> io::Result<bool> {
        if self.file.metadata()?.len() < self.read_to {
            return Ok(true);
        }
        let mut now = vec![0; self.head.len()];
        Ok(store::read_at(&self.file, 0, &mut now)? < now.len() || now != self.head)
    }

    /// Back to the start of the file; a partial line that was cut off is dropped.
    fn restart(&mut self) {
        self.head.clear();
        self.pending.clear();
        self.taken = 0;
        self.read_to = 0;
        self.consumed = 0;
        self.line = 0;
    }

    fn checkpoint(&self) -> Checkpoint {
        let head = &self.head[..self.head.len().min(self.consumed as usize)];
        Checkpoint { file: self.key, head: Fingerprint::of(head), offset: self.consumed, line: self.line }
    }
}

fn key_of(file: &File) -> io::Result<FileKey> {
    Ok(FileKey::of(&file.metadata()?))
}

/// The file now at `path` (a symlink followed), if any.
fn key_at(path: &Path) -> io::Result<Option<FileKey>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(FileKey::of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where records go: a writer, and the file under it when it is one, to sync.
pub struct Output<'a> {
    pub writer: &'a mut dyn Write,
    /// Synced before each checkpoint (stdout redirected to a file); a pipe or terminal has
    /// nothing to sync.
    pub file: Option<File>,
}

impl Output<'_> {
    fn sync(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

/// Save at least this often while lines keep coming (and always before waiting): each save
/// costs two fsyncs and a directory sync, too much for every line of a busy log.
const SAVE_EVERY_LINES: usize = 64;
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Follows `path` until `stop`: each line goes to `handle`, which writes its record(s) to the
/// output; the output is synced, then the checkpoint saved. Returns after a stop with the
/// checkpoint saved.
pub fn run(
    path: &Path,
    store: OffsetStore,
    stop: &Stop,
    mut waiter: Waiter,
    out: &mut Output<'_>,
    handle: &mut dyn FnMut(&Line, &mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let state = store.path().to_path_buf();
    let mut follower = Follower::new(path, store);
    waiter.watch(&follower.watch_paths());
    tracing::info!(path = %path.display(), state = %state.display(), "following");
    let save = |follower: &mut Follower, out: &mut Output<'_>| -> anyhow::Result<()> {
        out.sync()?;
        follower.commit()?;
        Ok(())
    };
    let (mut unsaved, mut since) = (0, Instant::now());
    while !stop.requested() {
        match follower.next_line()? {
            Some(line) => {
                handle(&line, out.writer)?;
                unsaved += 1;
                if unsaved >= SAVE_EVERY_LINES || since.elapsed() >= SAVE_EVERY {
                    save(&mut follower, out)?;
                    (unsaved, since) = (0, Instant::now());
                }
            }
            None => {
                save(&mut follower, out)?;
                (unsaved, since) = (0, Instant::now());
                // A new symlink target is watched before the wait; what changed before the
                // watch was in place is read first.
                if !waiter.watch(&follower.watch_paths()) {
                    waiter.wait();
                }
            }
        }
    }
    save(&mut follower, out)
}
