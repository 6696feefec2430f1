//! `dialkv-jepsen`: the command line of the harness.
//!
//! - `dialkv-jepsen run ...`: one run; exit 0 Valid, 1 Invalid, 2 Unknown, 3 the run broke.
//! - `dialkv-jepsen suite --ci ...`: the CI suite; exit 0 when every case ended as expected,
//!   1 when a case was Invalid (or a self-test was not caught), 2 when one was Unknown, 3 when
//!   a run broke.
//!
//! The harness runs on a current-thread runtime on the main thread: node processes die with
//! the thread that forked them (see `cluster`), and the main thread lives as long as the
//! process. Ctrl-C or SIGTERM stops the run and kills every node; so does a panic.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dialkv_consistency::level::SessionGuarantees;
use dialkv_jepsen::cluster::kill_registered;
use dialkv_jepsen::nemesis::{parse_kinds, FaultKind};
use dialkv_jepsen::runner::{self, parse_duration, Protocol, RunConfig};
use dialkv_jepsen::suite::{self, SuiteConfig};
use dialkv_jepsen::workload::{Level, WorkloadKind};

/// Jepsen-style tests of dialkv: real processes, real faults, checked histories.
#[derive(Parser, Debug)]
#[command(name = "dialkv-jepsen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one test and writes its report.
    Run(RunArgs),
    /// Runs the suite of tests CI makes.
    Suite(SuiteArgs),
}

#[derive(Parser, Debug)]
struct RunArgs {
    /// How many nodes (more than 1 needs a dialkv with `serve --peers`).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The replication protocol under test.
    #[arg(long, default_value = "primary-backup")]
    protocol: Protocol,
    /// register, list-append, set, session, txn or bank.
    #[arg(long, default_value = "register")]
    workload: WorkloadKind,
    /// The level requests ask for and the history is checked at: linearizable, sequential,
    /// causal (register), eventual, strict-serializable (txn, bank). Default: the workload's
    /// strongest (linearizable, or strict-serializable for txn and bank).
    #[arg(long)]
    level: Option<Level>,
    /// Faults, comma-separated: kill, pause, partition, clock, or none.
    #[arg(long, default_value = "none")]
    nemesis: String,
    /// How long the workload runs (30s, 2m, ...).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    time: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Seed of the operation and fault schedules (random when not given; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The report directory.
    #[arg(long, default_value = "jepsen-report")]
    out: PathBuf,
    /// The dialkv server binary (default: $DIALKV_BIN, else `dialkv` next to this binary).
    #[arg(long)]
    dialkv_bin: Option<PathBuf>,
    /// Mean time between faults.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    interval: Duration,
    /// Quiet period after healing, before the final reads.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    quiet: Duration,
    /// Timeout of each operation.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    op_timeout: Duration,
    /// Target operations per second over all clients (0: unlimited).
    #[arg(long, default_value_t = 300)]
    rate: u32,
    /// Extra argument for every `dialkv serve` (repeatable), e.g. a test-only switch.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Self-test: make every node a cluster of its own (a broken "replicated" system).
    #[arg(long)]
    split_brain: bool,
    /// Bind each client to one node (worker w to node w mod n) instead of letting it follow
    /// the primary.
    #[arg(long)]
    pin_clients: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Keep every client in a session with these guarantees, comma-separated (ryw, mr, mw,
    /// wfr, all or none), and check each; by default the session workload and sequential or
    /// causal runs keep all four, others none.
    #[arg(long, value_parser = parse_guarantees)]
    session: Option<SessionGuarantees>,
    /// Registers at linearizable without sessions also get deletes (a tenth of the
    /// operations).
    #[arg(long)]
    deletes: bool,
}

fn parse_guarantees(text: &str) -> Result<SessionGuarantees, String> {
    let mut g = SessionGuarantees {
        read_your_writes: false,
        monotonic_reads: false,
        monotonic_writes: false,
        writes_follow_reads: false,
    };
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "ryw" => g.read_your_writes = true,
            "mr" => g.monotonic_reads = true,
            "mw" => g.monotonic_writes = true,
            "wfr" => g.writes_follow_reads = true,
            "all" => g = SessionGuarantees::ALL,
            "none" => {}
            other => {
                return Err(format!(
                    "unknown guarantee {other:?} (ryw, mr, mw, wfr, all, none)"
                ))
            }
        }
    }
    Ok(g)
}

#[derive(Parser, Debug)]
struct SuiteArgs {
    /// Run the CI selection (the only selection so far).
    #[arg(long)]
    ci: bool,
    /// The cluster size; 3 or more adds partition cases and the stale-read self-test.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Where the reports go, one directory per case.
    #[arg(long, default_value = "jepsen-suite")]
    out: PathBuf,
    /// The dialkv server binary (default: $DIALKV_BIN, else `dialkv` next to this binary).
    #[arg(long)]
    dialkv_bin: Option<PathBuf>,
    /// Seed of every case (random when not given; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Multiplies every case's duration.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Concurrent clients per case (a case that sets its own keeps it).
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Only the cases whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

const EXIT_BROKEN: u8 = 3;

/// The server binary: the flag, else $DIALKV_BIN, else `dialkv` next to this executable.
fn dialkv_bin(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    if let Some(p) = std::env::var_os("DIALKV_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("dialkv")))
        .unwrap_or_else(|| PathBuf::from("dialkv"))
}

fn seed_or_random(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(rand::random)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_registered();
        default_hook(info);
    }));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dialkv-jepsen: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_BROKEN);
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            code = dispatch(cli) => code,
            sig = interrupted() => {
                eprintln!("\ndialkv-jepsen: {sig}: stopping every node");
                EXIT_BROKEN
            }
        }
    });
    // Dropping the run future killed the cluster; this catches anything left over.
    kill_registered();
    ExitCode::from(code)
}

/// Resolves on SIGINT or SIGTERM, naming it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers the run still ends by itself; wait for ever.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Suite(args) => suite(args).await,
    }
}

async fn run(args: RunArgs) -> u8 {
    let seed = seed_or_random(args.seed);
    let nemesis: Vec<FaultKind> = match parse_kinds(&args.nemesis) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("dialkv-jepsen: --nemesis: {e}");
            return EXIT_BROKEN;
        }
    };
    let cfg = RunConfig {
        nodes: args.nodes,
        protocol: args.protocol,
        workload: args.workload,
        level: args.level.unwrap_or(args.workload.levels()[0]),
        nemesis,
        time: args.time,
        concurrency: args.concurrency,
        seed,
        out: args.out,
        dialkv_bin: dialkv_bin(args.dialkv_bin),
        interval: args.interval,
        quiet: args.quiet,
        op_timeout: args.op_timeout,
        rate: args.rate,
        server_args: args.server_args,
        split_brain: args.split_brain,
        pin_clients: args.pin_clients,
        progress: !args.no_progress,
        session: args.session,
        deletes: args.deletes,
    };
    eprintln!(
        "dialkv-jepsen: {} at {} on {} node(s), seed {seed}, report in {}",
        cfg.workload,
        cfg.level,
        cfg.nodes,
        cfg.out.display()
    );
    match runner::run(&cfg).await {
        Ok(outcome) => {
            for c in &outcome.checks {
                println!("{} ({}): {}", c.checker, c.level, c.verdict);
            }
            println!(
                "verdict: {}\nops: {:?}\nreport: {}",
                outcome.verdict.to_string().lines().next().unwrap_or(""),
                outcome.counts,
                outcome.report.join("index.html").display()
            );
            outcome.verdict.exit_code() as u8
        }
        Err(e) => {
            eprintln!("dialkv-jepsen: the run broke: {e:#}");
            EXIT_BROKEN
        }
    }
}

async fn suite(args: SuiteArgs) -> u8 {
    if !args.ci {
        eprintln!("dialkv-jepsen suite: give --ci (the only selection so far)");
        return EXIT_BROKEN;
    }
    let seed = seed_or_random(args.seed);
    let mut cases = suite::ci_cases(args.nodes);
    if let Some(only) = &args.only {
        cases.retain(|c| c.name.contains(only.as_str()));
    }
    let cfg = SuiteConfig {
        out: args.out,
        dialkv_bin: dialkv_bin(args.dialkv_bin),
        seed,
        time_scale: args.time_scale,
        concurrency: args.concurrency,
        progress: !args.no_progress,
    };
    eprintln!(
        "dialkv-jepsen suite: {} case(s), {} node(s), seed {seed}, reports in {}",
        cases.len(),
        args.nodes,
        cfg.out.display()
    );
    let started = std::time::Instant::now();
    let results = suite::run(&cases, &cfg).await;
    println!("\n{:<46} {:>6} {:>8}  result", "case", "status", "time");
    for r in &results {
        println!(
            "{:<46} {:>6} {:>7.1}s  {}",
            r.name,
            if r.passed { "PASS" } else { "FAIL" },
            r.elapsed.as_secs_f64(),
            r.summary.lines().next().unwrap_or("")
        );
    }
    println!(
        "suite took {:.0} s, seed {seed}",
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    for r in &failed {
        println!(
            "\nFAILED {}:\n{}\nreport: {}",
            r.name,
            r.summary,
            r.report.join("index.html").display()
        );
    }
    // The plain closing line CI systems read.
    println!(
        "\njepsen: {} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        return 0;
    }
    if failed.iter().any(|r| r.broken) {
        EXIT_BROKEN
    } else if failed.iter().any(|r| r.summary.starts_with("unknown")) {
        2
    } else {
        1
    }
}
