//! The `dialkv-bench` command: `dialkv-bench compare --targets dialkv-pb,etcd,redis
//! --workload A --clients 64 --time 30s [--json FILE] [--plot FILE.png]`, and
//! `dialkv-bench plot --json FILE --out FILE.png` to redraw a saved run's plot.
//!
//! Every server the run starts is stopped before it exits: at the end of each target, on an
//! error, on Ctrl-C (the run is dropped, which stops the clusters) and on a panic (the panic
//! hook kills every child process).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use dialkv_bench::cli::{parse_duration, parse_fractions, parse_list};
use dialkv_bench::compare::{compare, CompareConfig};
use dialkv_bench::process::{install_panic_hook, kill_all};
use dialkv_bench::report::Report;
use dialkv_bench::target::{dialkv::default_binary, Settings, TARGET_NAMES};
use dialkv_bench::workload::{Distribution, Workload};
use dialkv_client::Level;

/// YCSB-style benchmarks of dialkv against etcd and Redis, in one run.
#[derive(Parser, Debug)]
#[command(name = "dialkv-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Starts each target's cluster in turn, loads it, measures it, stops it, and prints one
    /// table of throughput and latency with each target's ratio to etcd.
    Compare(Box<CompareArgs>),
    /// Redraws the latency-versus-throughput PNG from a JSON report written by `compare`.
    Plot(PlotArgs),
}

#[derive(Parser, Debug)]
struct PlotArgs {
    /// The JSON report (`compare --json`, run with `--plot` so it holds the curves).
    #[arg(long)]
    json: PathBuf,
    /// Where to write the PNG.
    #[arg(long)]
    out: PathBuf,
}

fn run_plot(args: &PlotArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.json)
        .with_context(|| format!("reading {}", args.json.display()))?;
    let report = Report::from_json(&text)
        .with_context(|| format!("{} is not a dialkv-bench report", args.json.display()))?;
    dialkv_bench::plot::draw(&args.out, &report.plot_title(), &report.curves())?;
    eprintln!("dialkv-bench: wrote {}", args.out.display());
    Ok(())
}

#[derive(Parser, Debug)]
struct CompareArgs {
    /// Targets, comma-separated: dialkv-pb, dialkv-quorum, etcd, redis (appendfsync always),
    /// redis-fast (appendfsync everysec).
    #[arg(long, default_value = "dialkv-pb,dialkv-quorum,etcd,redis")]
    targets: String,
    /// Workload: A (50/50 read/update), B (95/5), C (read only), W (write only), T
    /// (transactions of 4 reads + 2 writes).
    #[arg(long, default_value = "A")]
    workload: Workload,
    /// Key distribution: uniform or zipfian (YCSB's, constant 0.99).
    #[arg(long, default_value = "zipfian")]
    distribution: Distribution,
    /// Records loaded before measuring: the key space.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Connections the clients share, round robin (default: one per client).
    #[arg(long)]
    connections: Option<usize>,
    /// Concurrent writers in the load phase (not measured), over the clients' connections.
    #[arg(long, default_value_t = 32)]
    load_clients: usize,
    /// Measured time per target, e.g. 30s.
    #[arg(long = "time", default_value = "30s", value_parser = parse_duration)]
    time: Duration,
    /// Warm-up before the measured window (excluded).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// Run the main measurement open loop at this many ops/s (closed loop when unset).
    #[arg(long)]
    rate: Option<u64>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw a latency-versus-throughput PNG here (runs extra open-loop points per target).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The plot's rates, as fractions of each target's closed-loop throughput.
    #[arg(long, default_value = "0.1,0.25,0.5,0.75,0.9")]
    plot_rates: String,
    /// Measured time of each plot point.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    plot_time: Duration,
    /// Read consistency: linearizable, sequential, causal, bounded-staleness or eventual
    /// (dialkv takes it as is; etcd reads serializable for anything below linearizable).
    #[arg(long, default_value = "linearizable")]
    consistency: String,
    /// The staleness bound for bounded-staleness reads.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    staleness: Duration,
    /// The dialkv server binary (default: $DIALKV_BIN, else a build in /var/tmp/dialkv-target).
    #[arg(long)]
    dialkv_bin: Option<PathBuf>,
    /// dialkv replicas (default: 3 when the binary supports --peers, else 1).
    #[arg(long)]
    dialkv_nodes: Option<usize>,
    /// dialkv's --sync: batch (group commit) or always (an fsync per write). Both durable.
    #[arg(long, default_value = "batch")]
    dialkv_sync: String,
    /// dialkv-quorum's write quorum W (default: by level: a majority for linearizable requests, else 1).
    #[arg(long)]
    quorum_w: Option<u32>,
    /// dialkv-quorum's read quorum R (default: by level: a majority for linearizable requests, else 1).
    #[arg(long)]
    quorum_r: Option<u32>,
    /// etcd members.
    #[arg(long, default_value_t = 3)]
    etcd_members: usize,
    /// Redis replicas besides the primary.
    #[arg(long, default_value_t = 2)]
    redis_replicas: usize,
    /// Per-call timeout of every client.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Seed of the clients' random streams.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the clusters' data and logs in this directory (default: a temporary one under
    /// /var/tmp, removed at the end).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Load-generator threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

fn parse_level(text: &str) -> Result<Level> {
    Level::ALL
        .into_iter()
        .find(|l| l.name() == text.trim().to_ascii_lowercase())
        .with_context(|| {
            let names: Vec<&str> = Level::ALL.iter().map(|l| l.name()).collect();
            format!(
                "unknown consistency {text:?}: expected one of {}",
                names.join(", ")
            )
        })
}

impl CompareArgs {
    fn config(&self) -> Result<CompareConfig> {
        let targets = parse_list(&self.targets);
        if targets.is_empty() {
            bail!(
                "--targets names no target; known: {}",
                TARGET_NAMES.join(", ")
            );
        }
        if !["batch", "always"].contains(&self.dialkv_sync.as_str()) {
            bail!("--dialkv-sync must be batch or always");
        }
        if self.workload.needs_transactions() && self.records < 4 {
            bail!("workload T needs at least 4 records");
        }
        Ok(CompareConfig {
            targets,
            workload: self.workload,
            distribution: self.distribution,
            records: self.records,
            value_size: self.value_size,
            clients: self.clients.max(1),
            connections: self.connections,
            load_clients: self.load_clients,
            warmup: self.warmup,
            duration: self.time,
            rate: self.rate,
            json: self.json.clone(),
            plot: self.plot.clone(),
            plot_rates: parse_fractions(&self.plot_rates)?,
            plot_time: self.plot_time,
            work_dir: self.work_dir.clone(),
            seed: self.seed,
            settings: Settings {
                level: parse_level(&self.consistency)?,
                staleness: self.staleness,
                dialkv_bin: self.dialkv_bin.clone().unwrap_or_else(default_binary),
                dialkv_nodes: self.dialkv_nodes,
                dialkv_sync: self.dialkv_sync.clone(),
                quorum_w: self.quorum_w,
                quorum_r: self.quorum_r,
                etcd_members: self.etcd_members,
                redis_replicas: self.redis_replicas,
                timeout: self.timeout,
            },
        })
    }
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compare(args) => run_compare(&args),
        Command::Plot(args) => run_plot(&args),
    };
    kill_all();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialkv-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_compare(args: &CompareArgs) -> Result<()> {
    let config = args.config()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.enable_all().build().context("starting tokio")?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            report = compare(&config) => report.map(|_| ()),
            signal = tokio::signal::ctrl_c() => {
                signal.context("waiting for Ctrl-C")?;
                // Dropping the comparison has stopped the running cluster by now.
                bail!("interrupted; every server started has been stopped")
            }
        }
    });
    // Clients still in flight hold connections only; the runtime drops them here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome
}
