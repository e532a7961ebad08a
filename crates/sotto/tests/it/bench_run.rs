//! `sotto bench run` end to end on a tiny matrix: a real `sotto serve` with SmolLM2 sent a few
//! held-out events, and a baseline row whose server cannot start. The run must finish, keep the
//! row that worked with every output written, and report the one that failed with its reason.
//! What it checks is the shape of the outputs, never a figure: figures are the bench's business.

use super::{real_models, sotto, stderr};

const MATRIX: &str = r#"
[run]
events = 3
rationales = 1
idle_s = 0.3
foreground_s = 0.3

[[row]]
name = "tiny"
kind = "sotto"
models = ["smollm2-135m"]
# Other tests share the two CPUs; an idle-class row would only wait for them.
set = { "budget.sched" = "normal", "cache.persist" = false }

[[row]]
name = "no baseline"
kind = "baseline"
models = ["smollm2-135m"]
threads = 1
"#;

#[test]
fn a_matrix_run_writes_the_table_the_data_and_the_charts_and_names_a_failed_row() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = dir.path().join("matrix.toml");
    std::fs::write(&matrix, MATRIX).unwrap();
    let out_dir = dir.path().join("out");
    let missing = dir.path().join("no-python");
    let out = sotto(
        &[
            "bench",
            "run",
            "--matrix",
            matrix.to_str().unwrap(),
            "--baseline-python",
            missing.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Some(&real_models()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = std::fs::read_to_string(out_dir.join("table.md")).unwrap();
    let line = table.lines().find(|l| l.starts_with("| tiny · smollm2-135m |")).unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains('✅') || line.contains('❌'), "every figure is judged: {line}");
    assert!(table.contains("- no baseline · smollm2-135m failed:"), "{table}");

    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("run.json")).unwrap()).unwrap();
    let row = &data["rows"][0];
    assert_eq!(row["name"], "tiny · smollm2-135m");
    let requests = row["measured"]["requests"].as_array().unwrap();
    let verdicts = requests.iter().filter(|r| r["phase"] == "verdict").count();
    assert_eq!(verdicts, 3, "{requests:?}");
    assert!(requests.iter().all(|r| r["status"] == 200), "{requests:?}");
    assert_eq!(row["measured"]["scores"]["events"], 3);
    assert!(row["measured"]["peak_rss"].as_u64().unwrap() > 0);
    let checks = row["checks"].as_array().unwrap();
    for criterion in ["accuracy", "verdict p95 ms", "CPU peak %", "idle CPU %", "foreground impact %"] {
        assert!(checks.iter().any(|c| c["criterion"] == criterion), "{criterion} is judged: {checks:?}");
    }
    assert_eq!(data["failed"][0]["name"], "no baseline · smollm2-135m");

    let csv = std::fs::read_to_string(out_dir.join("requests.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + requests.len(), "{csv}");
    assert!(std::fs::read_to_string(out_dir.join("windows.csv")).unwrap().lines().count() > 1);
    for chart in ["cpu-tiny-smollm2-135m.svg", "latency-tiny-smollm2-135m.svg", "accuracy-vs-latency.svg"] {
        let svg = std::fs::read_to_string(out_dir.join("charts").join(chart)).unwrap();
        assert!(svg.contains("<svg"), "{chart}");
    }
    assert_eq!(std::fs::read_to_string(out_dir.join("matrix.toml")).unwrap(), MATRIX);
}
