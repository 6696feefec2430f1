//! The `dialkv-check` binary: exit codes and the line number of a broken input.

use std::io::Write;
use std::process::Command;

fn run(args: &[&str], history: &str) -> (i32, String, String) {
    let mut file = tempfile_path();
    file.1
        .write_all(history.as_bytes())
        .expect("write temp history");
    let out = Command::new(env!("CARGO_BIN_EXE_dialkv-check"))
        .args(args)
        .arg(&file.0)
        .output()
        .expect("dialkv-check runs");
    std::fs::remove_file(&file.0).expect("remove temp history");
    file.0.clear();
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tempfile_path() -> (String, std::fs::File) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "dialkv-check-test-{}-{}.jsonl",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let f = std::fs::File::create(&path).expect("create temp history");
    (path.to_string_lossy().into_owned(), f)
}

const STALE: &str = r#"{"index":0,"process":1,"type":"invoke","f":"write","key":"x","value":1,"time_ns":0}
{"index":1,"process":1,"type":"ok","f":"write","key":"x","value":1,"time_ns":1}
{"index":2,"process":2,"type":"invoke","f":"read","key":"x","value":null,"time_ns":2}
{"index":3,"process":2,"type":"ok","f":"read","key":"x","value":null,"time_ns":3}
"#;

#[test]
fn exit_codes() {
    let (code, out, _) = run(&["--level", "linearizable"], STALE);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("stale-read") && out.contains("#2 p2"), "{out}");
    let (code, out, _) = run(
        &["--level", "sequential", "--guarantees", "rywr,mr,mw,wfr"],
        STALE,
    );
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = run(&["--level", "serializable"], STALE);
    assert_eq!(code, 2);
    assert!(err.contains("not available"), "{err}");
    let (code, out, _) = run(&["--level", "eventual", "--json"], STALE);
    assert_eq!(code, 2, "no final reads: unknown");
    assert!(out.contains("\"result\": \"unknown\""), "{out}");
}

#[test]
fn malformed_input_names_the_line() {
    let broken = format!(
        "{}{{\"index\":9,\"process\"\n",
        &STALE[..STALE.find("{\"index\":2").expect("line 3")]
    );
    let (code, _, err) = run(&["--level", "linearizable"], &broken);
    assert_eq!(code, 3);
    assert!(err.contains("line 3"), "{err}");
}
