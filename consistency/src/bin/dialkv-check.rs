//! `dialkv-check`: checks a JSON-lines history (see `dialkv_consistency::history`) against a
//! consistency level and/or session guarantees, prints the verdict and its witness.
//!
//! Exit status: 0 valid, 1 invalid, 2 unknown (or the level is not available for the
//! workload), 3 the history could not be read (the message names the line that broke).

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dialkv_consistency::causal::{self, CausalModel};
use dialkv_consistency::elle::{self, Isolation, ListAppendLevel};
use dialkv_consistency::history::{History, Workload};
use dialkv_consistency::level::SessionGuarantees;
use dialkv_consistency::register::SearchConfig;
use dialkv_consistency::verdict::Verdict;
use dialkv_consistency::{eventual, linearizable, sequential, session};

/// Checks a dialkv history against a consistency level and session guarantees.
#[derive(Parser, Debug)]
#[command(name = "dialkv-check", version, about, long_about = None)]
struct Args {
    /// Consistency level: linearizable, sequential, causal, causal-convergence, eventual; for
    /// txn: read-committed, snapshot-isolation, serializable, strong-session-serializable,
    /// strict-serializable.
    #[arg(long)]
    level: Option<String>,

    /// Session guarantees to check, comma-separated: rywr (or ryw), mr, mw, wfr, all.
    #[arg(long)]
    guarantees: Option<SessionGuarantees>,

    /// What the history records.
    #[arg(long, default_value = "register")]
    workload: Workload,

    /// Search budget per key for the linearizable and sequential checkers.
    #[arg(long, default_value_t = SearchConfig::default().max_steps)]
    max_steps: u64,

    /// Print the verdicts as JSON (one object with a verdict per check) instead of text.
    #[arg(long)]
    json: bool,

    /// The history, one JSON event per line.
    history: PathBuf,
}

/// Exit status for a history that cannot be read.
const UNREADABLE: u8 = 3;
/// Exit status for a check that is not available.
const UNAVAILABLE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.level.is_none() && args.guarantees.is_none() {
        eprintln!("dialkv-check: give --level, --guarantees, or both");
        return ExitCode::from(UNAVAILABLE);
    }
    let file = match File::open(&args.history) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("dialkv-check: cannot open {}: {e}", args.history.display());
            return ExitCode::from(UNREADABLE);
        }
    };
    let history = match History::from_reader(BufReader::new(file)) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("dialkv-check: {}: {e}", args.history.display());
            return ExitCode::from(UNREADABLE);
        }
    };
    let config = SearchConfig {
        max_steps: args.max_steps,
        ..SearchConfig::default()
    };

    let mut results: Vec<(String, Verdict)> = Vec::new();
    if let Some(level) = &args.level {
        match check_level(&history, level, args.workload, &config) {
            Ok(v) => results.push((level.clone(), v)),
            Err(msg) => {
                eprintln!("dialkv-check: {msg}");
                return ExitCode::from(UNAVAILABLE);
            }
        }
    }
    if let Some(gs) = args.guarantees {
        for (g, v) in session::check_each(&history, gs, args.workload) {
            results.push((g.short_name().to_string(), v));
        }
    }

    if args.json {
        let obj: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(name, v)| {
                (
                    name.clone(),
                    serde_json::to_value(v).expect("a verdict always serialises"),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&obj).expect("a JSON map always serialises")
        );
    } else {
        for (name, v) in &results {
            println!("{name}: {v}");
        }
    }
    let overall = Verdict::merge(results.into_iter().map(|(_, v)| v));
    ExitCode::from(overall.exit_code() as u8)
}

/// Runs the checker for `level` on `workload`, or says why there is none.
fn check_level(
    history: &History,
    level: &str,
    workload: Workload,
    config: &SearchConfig,
) -> Result<Verdict, String> {
    let unavailable = || {
        format!(
            "level {level:?} is not available for the {workload} workload (register: \
             linearizable, sequential, causal, causal-convergence, eventual; list-append: \
             linearizable, sequential, eventual; txn: read-committed, snapshot-isolation, \
             serializable, strong-session-serializable, strict-serializable)"
        )
    };
    match workload {
        Workload::Register => match level {
            "linearizable" => Ok(linearizable::check_with(history, config)),
            "sequential" => Ok(sequential::check_with(history, config)),
            "eventual" => Ok(eventual::check(history, workload)),
            "causal" | "causal-convergence" => {
                let model: CausalModel = level.parse().map_err(|_| unavailable())?;
                Ok(causal::check(history, model))
            }
            _ => Err(unavailable()),
        },
        Workload::ListAppend => match level {
            "linearizable" | "sequential" => {
                let l: ListAppendLevel = level.parse().map_err(|_| unavailable())?;
                Ok(elle::check_list_append(history, l))
            }
            "eventual" => Ok(eventual::check(history, workload)),
            _ => Err(unavailable()),
        },
        Workload::Txn => {
            let isolation: Isolation = level.parse().map_err(|_| unavailable())?;
            Ok(elle::check_txn(history, isolation))
        }
    }
}
