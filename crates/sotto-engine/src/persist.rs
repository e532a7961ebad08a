//! The prefix cache on disk: one folder per model file (named by its sha256) and context
//! shape, private to the user (0700, files 0600), bounded in total size with the least
//! recently used states removed first, and cleaned of partial writes at start.
//!
//! Must not: trust a file name for a model's identity (a model replaced in place under the
//! same name and size would restore another model's state), or grow without bound.

use std::path::{Path, PathBuf};

/// The sha256 of the model file, remembered in `root/models.json` by path, size and
/// modification time, so a restart does not hash gigabytes again.
pub(crate) fn model_sha256(root: &Path, model: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(model)?;
    let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let key = format!("{}|{}|{}", model.display(), meta.len(), modified.map_or(0, |d| d.as_nanos()));
    let memo = root.join("models.json");
    let mut known: std::collections::BTreeMap<String, String> =
        std::fs::read_to_string(&memo).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if let Some(sha) = known.get(&key) {
        return Ok(sha.clone());
    }
    let sha = sha256_file(model)?;
    known.insert(key, sha.clone());
    let tmp = memo.with_extension("partial");
    std::fs::write(&tmp, serde_json::to_string(&known).unwrap_or_default())?;
    private_file(&tmp);
    std::fs::rename(&tmp, &memo)?;
    Ok(sha)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    sotto_models::fetch::sha256_file(path).map_err(std::io::Error::other)
}

/// Creates `dir` (and its parents) readable by the user only, and removes partial writes
/// left by a crash.
pub(crate) fn prepare(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for d in [dir.parent(), Some(dir)].into_iter().flatten() {
        private_dir(d);
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "partial") {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

#[cfg(unix)]
fn private_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
}

#[cfg(unix)]
pub(crate) fn private_file(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn private_dir(_: &Path) {}

#[cfg(not(unix))]
pub(crate) fn private_file(_: &Path) {}

/// Marks a state as just used (its modification time orders the LRU).
pub(crate) fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Removes the least recently used states of `dir` until their total is at most `limit`
/// bytes. Returns the bytes removed.
pub(crate) fn evict(dir: &Path, limit: u64) -> u64 {
    let mut states: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "state"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = states.iter().map(|s| s.1).sum();
    states.sort();
    let mut removed = 0;
    for (_, len, path) in states {
        if total <= limit {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            removed += len;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_states_go_first_until_the_total_fits() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
        for (i, name) in ["a.state", "b.state", "c.state"].iter().enumerate() {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; 100]).unwrap();
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(i as u64 * 10)).unwrap();
        }
        touch(&dir.path().join("a.state")); // used last: kept
        assert_eq!(evict(dir.path(), 200), 100);
        assert!(!dir.path().join("b.state").exists());
        assert!(dir.path().join("a.state").exists() && dir.path().join("c.state").exists());
    }

    #[cfg(unix)]
    #[test]
    fn the_folder_is_private_and_partial_writes_are_cleaned() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("prefix").join("model-ctx");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x.partial"), b"half").unwrap();
        std::fs::write(dir.join("y.state"), b"whole").unwrap();
        prepare(&dir).unwrap();
        assert!(!dir.join("x.partial").exists() && dir.join("y.state").exists());
        for d in [&dir, &root.path().join("prefix")] {
            assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700);
        }
    }

    #[test]
    fn a_model_is_named_by_its_content_and_the_hash_is_remembered() {
        let root = tempfile::tempdir().unwrap();
        let model = root.path().join("m.gguf");
        std::fs::write(&model, b"GGUF one").unwrap();
        let a = model_sha256(root.path(), &model).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(model_sha256(root.path(), &model).unwrap(), a);
        assert!(std::fs::read_to_string(root.path().join("models.json")).unwrap().contains(&a));
        // Replaced in place, same name and size: another identity.
        std::fs::write(&model, b"GGUF two").unwrap();
        let f = std::fs::File::options().append(true).open(&model).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
        assert_ne!(model_sha256(root.path(), &model).unwrap(), a);
    }
}
