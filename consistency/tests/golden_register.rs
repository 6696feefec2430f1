//! Golden histories for the register checkers: every `tests/golden/reg-*.jsonl` has a
//! `.expect` file of `check=valid`, `check=unknown` or `check=invalid [ANOMALY]` lines (`#`
//! starts a comment). Checks: `linearizable`, `sequential`, `eventual`, and the session
//! guarantees `ryw`, `mr`, `mw`, `wfr`. The Elle and causal golden files have their own
//! runner (`golden_elle.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use dialkv_consistency::history::{History, Workload};
use dialkv_consistency::level::SessionGuarantees;
use dialkv_consistency::verdict::Verdict;
use dialkv_consistency::{eventual, linearizable, sequential, session};

fn run(check: &str, h: &History) -> Result<Verdict, String> {
    match check {
        "linearizable" => Ok(linearizable::check(h)),
        "sequential" => Ok(sequential::check(h)),
        "eventual" => Ok(eventual::check(h, Workload::Register)),
        other => {
            let gs: SessionGuarantees = other.parse().map_err(|e| format!("{e}"))?;
            Ok(session::check(h, gs, Workload::Register))
        }
    }
}

fn check_file(dir: &Path, name: &str) -> Vec<String> {
    let text = fs::read_to_string(dir.join(format!("{name}.jsonl"))).expect("readable");
    let h = match History::from_jsonl(&text) {
        Ok(h) => h,
        Err(e) => return vec![format!("{name}: history does not parse: {e}")],
    };
    let expect = fs::read_to_string(dir.join(format!("{name}.expect")))
        .unwrap_or_else(|_| panic!("{name}.jsonl has no {name}.expect"));
    let mut problems = Vec::new();
    for line in expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Some((check, want)) = line.split_once('=') else {
            problems.push(format!("{name}: bad expect line {line:?}"));
            continue;
        };
        let mut want = want.split_whitespace();
        let result = want.next().unwrap_or("");
        let anomaly = want.next();
        let v = match run(check.trim(), &h) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        let got = match &v {
            Verdict::Valid => "valid",
            Verdict::Invalid { .. } => "invalid",
            Verdict::Unknown { .. } => "unknown",
        };
        if got != result || (anomaly.is_some() && v.anomaly() != anomaly) {
            problems.push(format!(
                "{name}: {check} expected {result} {anomaly:?}, got {v}"
            ));
        }
    }
    problems
}

/// The package's directory as cargo gives it to the running test (else as at build time):
/// clones that share one target directory may run test binaries built in another clone.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

#[test]
fn golden_register_histories() {
    let dir = package_dir().join("tests/golden");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("tests/golden exists")
        .filter_map(|e| {
            let name = e.expect("dir entry").file_name().into_string().ok()?;
            let stem = name.strip_suffix(".jsonl")?;
            stem.starts_with("reg-").then(|| stem.to_string())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 8, "golden files missing: {names:?}");
    let problems: Vec<String> = names.iter().flat_map(|n| check_file(&dir, n)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
