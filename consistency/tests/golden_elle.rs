//! Golden histories for the Elle and causal checkers: every `tests/golden/{txn,la,causal}-*.jsonl`
//! has a `.expect` file of `level=valid`, `level=unknown` or `level=invalid [ANOMALY]` lines
//! (`#` starts a comment). Levels: the isolation levels (`read-committed`, ...,
//! `strict-serializable`) for `txn-`, `linearizable`/`sequential` for `la-`, and
//! `causal`/`causal-convergence` for `causal-`. The register-level golden files are checked by
//! their own runner.

use std::fs;
use std::path::{Path, PathBuf};

use dialkv_consistency::causal::{self, CausalModel};
use dialkv_consistency::elle::{check_list_append, check_txn, Isolation, ListAppendLevel};
use dialkv_consistency::history::History;
use dialkv_consistency::verdict::Verdict;

const PREFIXES: [&str; 3] = ["txn-", "la-", "causal-"];

fn run(prefix: &str, level: &str, h: &History) -> Result<Verdict, String> {
    match prefix {
        "txn-" => Ok(check_txn(h, level.parse::<Isolation>()?)),
        "la-" => Ok(check_list_append(h, level.parse::<ListAppendLevel>()?)),
        _ => Ok(causal::check(h, level.parse::<CausalModel>()?)),
    }
}

/// Returns a description of every mismatch in one golden file.
fn check_file(dir: &Path, name: &str, prefix: &str) -> Vec<String> {
    let jsonl = dir.join(format!("{name}.jsonl"));
    let text = fs::read_to_string(&jsonl).expect("golden history is readable");
    let h = match History::from_jsonl(&text) {
        Ok(h) => h,
        Err(e) => return vec![format!("{name}: history does not parse: {e}")],
    };
    let expect = fs::read_to_string(dir.join(format!("{name}.expect")))
        .unwrap_or_else(|_| panic!("{name}.jsonl has no {name}.expect"));
    let mut problems = Vec::new();
    let mut lines = 0;
    for line in expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        lines += 1;
        let Some((level, want)) = line.split_once('=') else {
            problems.push(format!("{name}: bad expect line {line:?}"));
            continue;
        };
        let mut want = want.split_whitespace();
        let result = want.next().unwrap_or("");
        let anomaly = want.next();
        let v = match run(prefix, level.trim(), &h) {
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
                "{name}: {level} expected {result} {anomaly:?}, got {v}"
            ));
        }
    }
    if lines == 0 {
        problems.push(format!("{name}: empty expect file"));
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
fn golden_histories() {
    let dir = package_dir().join("tests/golden");
    let mut names: Vec<(String, &str)> = fs::read_dir(&dir)
        .expect("tests/golden exists")
        .filter_map(|e| {
            let name = e
                .expect("readable dir entry")
                .file_name()
                .into_string()
                .ok()?;
            let stem = name.strip_suffix(".jsonl")?;
            let prefix = PREFIXES.into_iter().find(|p| stem.starts_with(p))?;
            Some((stem.to_string(), prefix))
        })
        .collect();
    names.sort();
    assert!(names.len() >= 15, "golden files missing: {names:?}");
    let problems: Vec<String> = names
        .iter()
        .flat_map(|(name, prefix)| check_file(&dir, name, prefix))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
