//! Invariants of the workspace's shape that no compiler checks: which crate may use llama.cpp
//! or HTTP, that dependencies only point down the layers, and that no test bounds how long
//! something took from above (speed is `sotto bench`'s business). Read from the manifests and
//! sources themselves, so a change that breaks one fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Each crate's dependencies, by table (`dependencies`, `dev-dependencies`,
/// `build-dependencies`, also under `target.*`).
fn manifests() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        let manifest: toml::Table = text.parse().unwrap();
        let name = manifest["package"]["name"].as_str().unwrap().to_string();
        let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut add = |table: &toml::Table| {
            for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
                if let Some(deps) = table.get(kind).and_then(toml::Value::as_table) {
                    tables.entry(kind.to_string()).or_default().extend(deps.keys().cloned());
                }
            }
        };
        add(&manifest);
        if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
            for target in targets.values().filter_map(toml::Value::as_table) {
                add(target);
            }
        }
        out.insert(name, tables);
    }
    assert!(out.len() >= 8, "the workspace's crates were not found: {:?}", out.keys());
    out
}

fn crates_using(dep: &str, kinds: &[&str]) -> Vec<String> {
    manifests()
        .into_iter()
        .filter(|(_, tables)| kinds.iter().any(|k| tables.get(*k).is_some_and(|d| d.iter().any(|x| x == dep))))
        .map(|(name, _)| name)
        .collect()
}

const ALL: &[&str] = &["dependencies", "dev-dependencies", "build-dependencies"];

#[test]
fn only_the_engine_uses_llama_cpp() {
    for dep in ["llama-cpp-2", "llama-cpp-sys-2"] {
        let users = crates_using(dep, ALL);
        assert!(users.iter().all(|c| c == "sotto-engine"), "{dep} is used by {users:?}");
    }
    assert_eq!(crates_using("llama-cpp-2", &["dependencies"]), ["sotto-engine"]);
}

/// The server is the one HTTP server and the bench the one HTTP client the product ships;
/// tests may use a client of their own (`dev-dependencies`).
#[test]
fn only_the_server_serves_http_and_only_the_bench_is_a_client() {
    for server in ["axum", "hyper", "hyper-util", "tower-http"] {
        let users = crates_using(server, &["dependencies"]);
        assert!(users.iter().all(|c| c == "sotto-server"), "{server} is a dependency of {users:?}");
    }
    for client in ["ureq", "reqwest"] {
        let users = crates_using(client, &["dependencies"]);
        assert!(users.iter().all(|c| c == "sotto-bench"), "{client} is a dependency of {users:?}");
    }
}

/// Lower crates never depend on higher ones (the binary on top, the engine's inputs below).
#[test]
fn dependencies_point_down_the_layers() {
    let layer = |name: &str| match name {
        "sotto-models" | "sotto-governor" | "sotto-events" => 0,
        "sotto-engine" => 1,
        "sotto-analyze" => 2,
        "sotto-server" => 3,
        "sotto-bench" => 4,
        "sotto" => 5,
        other => panic!("a crate the layers do not know: {other}"),
    };
    for (name, tables) in manifests() {
        for dep in tables.get("dependencies").into_iter().flatten().filter(|d| d.starts_with("sotto")) {
            assert!(layer(dep) < layer(&name), "{name} depends on {dep}, which is not below it");
        }
    }
}

/// Every `assert…!(…);` statement in the workspace's Rust sources.
fn assertions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("assert") {
        let tail = &rest[at..];
        let end = tail.find(");").map_or(tail.len(), |e| e + 2);
        let statement = &tail[..end];
        // `assert!(`, `assert_eq!(`, …: the word, a macro bang, an opening parenthesis.
        let name_end = statement.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(0);
        if statement[name_end..].starts_with("!(") {
            out.push(statement.to_string());
        }
        rest = &tail["assert".len()..];
    }
    out
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target" && n != "snapshots") {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// An assertion that an elapsed time stayed under a bound is a benchmark in disguise, and
/// flaky on a shared machine. A lower bound (the error names a wait of at least the deadline)
/// is a fact, not a speed, and is allowed.
#[test]
fn no_test_bounds_an_elapsed_time_from_above() {
    let mut files = Vec::new();
    rust_sources(&workspace().join("crates"), &mut files);
    assert!(files.len() > 50, "{}", files.len());
    let mut offenders = Vec::new();
    for file in files.into_iter().filter(|f| !f.ends_with("tests/it/layers.rs")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for statement in assertions(&text) {
            // `Instant::now() < deadline` is a wait's timeout, which is allowed.
            if statement.contains("elapsed") && statement.contains('<') {
                offenders.push(format!("{}: {statement}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn the_assertion_scanner_finds_a_bound_on_an_elapsed_time() {
    let found = assertions("let t = Instant::now();\n    assert!(t.elapsed() < Duration::from_secs(1), \"slow\");\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("elapsed") && found[0].contains('<'));
}
