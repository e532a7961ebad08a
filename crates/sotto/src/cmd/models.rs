//! `sotto models fetch` and `sotto models list`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sotto_models::fetch::{self, Fetched};
use sotto_models::{CATALOG, GgufHeader, ModelSpec, catalog};

/// Fetch the named catalog models (all when `ids` is empty).
pub fn fetch(dir: &Path, ids: &[String]) -> anyhow::Result<ExitCode> {
    let specs: Vec<&ModelSpec> = if ids.is_empty() {
        CATALOG.iter().collect()
    } else {
        ids.iter()
            .map(|id| {
                catalog::find(id).with_context(|| {
                    let known: Vec<&str> = CATALOG.iter().map(|m| m.id).collect();
                    format!("unknown model `{id}`; the catalog has: {}", known.join(", "))
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    for spec in specs {
        eprintln!("{}: checking {}", spec.id, dir.join(spec.file_name).display());
        match fetch::fetch(spec, dir).with_context(|| format!("fetching {}", spec.id))? {
            Fetched::AlreadyPresent => println!("{}: present, sha256 verified", spec.id),
            Fetched::Downloaded { replaced: None } => {
                println!("{}: fetched, sha256 verified", spec.id)
            }
            Fetched::Downloaded { replaced: Some(why) } => {
                println!("{}: replaced a bad copy ({why}); fetched, sha256 verified", spec.id)
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// List catalog models and any other GGUF files in `dir`, with facts from their headers.
pub fn list(dir: &Path) -> anyhow::Result<ExitCode> {
    println!("models directory: {}", dir.display());
    println!("{:<16} {:>10} {:<10} {:<10} {:>8} {:>9}  file", "id", "size", "arch", "quant", "ctx", "params");
    let mut seen = Vec::new();
    for spec in CATALOG {
        let path = dir.join(spec.file_name);
        seen.push(path.clone());
        if path.exists() {
            print_row(spec.id, &path);
        } else {
            println!("{:<16} {:>10} (not fetched: run `sotto models fetch {}`)", spec.id, "-", spec.id);
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ExitCode::SUCCESS),
        Err(e) => bail!("cannot read {}: {e}", dir.display()),
    };
    let mut others: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "gguf") && !seen.contains(p))
        .collect();
    others.sort();
    for path in others {
        print_row("-", &path);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_row(id: &str, path: &Path) {
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    match GgufHeader::read(path) {
        Ok(h) => println!(
            "{id:<16} {:>10} {:<10} {:<10} {:>8} {:>9}  {file}",
            human_bytes(h.file_size),
            h.architecture().unwrap_or("?"),
            h.quantization(),
            h.context_length().map_or("?".into(), |c| c.to_string()),
            human_count(h.parameter_count()),
        ),
        Err(e) => println!("{id:<16} {:>10} unreadable: {e}", "-"),
    }
}

fn human_bytes(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n => n.to_string(),
    }
}
