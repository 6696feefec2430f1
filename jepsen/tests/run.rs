//! End to end: `dialkv-jepsen run` against a real one-node cluster with no faults must find
//! the history Valid and exit 0, and leave a complete report behind.
//!
//! It needs the `dialkv` server binary: `DIALKV_BIN`, else `dialkv` in the same target
//! directory as this test (a workspace `cargo build --bins` puts it there).

use std::path::PathBuf;
use std::process::Command;

/// The server binary: `DIALKV_BIN`, else the workspace target directory's `dialkv`.
fn dialkv_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DIALKV_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in <target>/<profile>/deps");
    let p = profile_dir.join("dialkv");
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --bins`, or set DIALKV_BIN",
        p.display()
    );
    p
}

#[test]
fn a_healthy_single_node_run_is_valid() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = out.path().join("report");
    let status = Command::new(env!("CARGO_BIN_EXE_dialkv-jepsen"))
        .args([
            "run",
            "--nodes",
            "1",
            "--workload",
            "register",
            "--level",
            "linearizable",
            "--nemesis",
            "none",
            "--time",
            "5s",
            "--seed",
            "11",
            "--no-progress",
            "--out",
        ])
        .arg(&report)
        .arg("--dialkv-bin")
        .arg(dialkv_bin())
        .status()
        .expect("dialkv-jepsen runs");
    assert_eq!(status.code(), Some(0), "a healthy run must be Valid");

    for file in [
        "history.jsonl",
        "verdict.json",
        "index.html",
        "latency.svg",
        "throughput.svg",
        "nodes/n1.log",
    ] {
        assert!(
            report.join(file).is_file(),
            "{file} missing from the report"
        );
    }
    let verdict: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("verdict.json")).expect("verdict.json"),
    )
    .expect("verdict.json is JSON");
    assert_eq!(verdict["verdict"]["result"], "valid");
    assert_eq!(verdict["checks"][0]["checker"], "linearizable");
    assert_eq!(verdict["level"], "linearizable");
    let history = std::fs::read_to_string(report.join("history.jsonl")).expect("history");
    let parsed = dialkv_consistency::history::History::from_jsonl(&history)
        .expect("the history is in the referee's format");
    assert!(
        parsed.ops().iter().filter(|o| o.is_ok()).count() > 50,
        "five seconds should complete many operations"
    );
    assert!(
        parsed.ops().iter().any(|o| o.f == "final-read"),
        "final reads are recorded"
    );
    let log = std::fs::read_to_string(report.join("nodes/n1.log")).expect("node log");
    assert!(log.contains("serving gRPC on"), "the node's stdout is kept");
}
