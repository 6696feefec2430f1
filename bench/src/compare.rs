//! `dialkv-bench compare`: every target in turn, in one run, on the same machine.
//!
//! For each target: check it can run the workload, start its cluster in a fresh directory,
//! open the client connections, load every record, run the warm-up and the measured window,
//! optionally run open-loop points for the latency-versus-throughput curve, read the servers'
//! peak memory and the CPU time used per operation in the measured window (by the servers, by
//! this load generator, and the machine's busy share), and stop the cluster before the next
//! target starts, so targets never compete for the two cores. A target that cannot run, or fails, is reported as skipped with the
//! reason, and the run goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::machine;
use crate::plot;
use crate::process::{cpu_seconds, peak_rss_kib};
use crate::progress::{spinner, Measure, PhaseBar};
use crate::report::{CurvePoint, Report, Skipped, TargetReport};
use crate::runner::{self, Live, RunPlan, RunStats};
use crate::schedule::{OpenLoop, Pacing};
use crate::target::{self, Readiness, Settings, Store, Target};
use crate::workload::{Distribution, KeyChooser, OpGenerator, Workload};

/// Warm-up before each point of the latency curve.
const CURVE_WARMUP: Duration = Duration::from_secs(1);

/// Everything a `compare` run needs.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// Target names, in the order to run them.
    pub targets: Vec<String>,
    /// The operation mix.
    pub workload: Workload,
    /// The key distribution.
    pub distribution: Distribution,
    /// Records loaded before measuring (the key space).
    pub records: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Client connections the clients share (one each when unset).
    pub connections: Option<usize>,
    /// Concurrent writers of the load phase (over the same connections).
    pub load_clients: usize,
    /// Warm-up before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// A fixed rate for the main measurement (closed loop when unset).
    pub rate: Option<u64>,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Where to draw the latency-versus-throughput PNG.
    pub plot: Option<PathBuf>,
    /// Rates of the curve's points, as fractions of the target's closed-loop throughput.
    pub plot_rates: Vec<f64>,
    /// Measured time of each curve point.
    pub plot_time: Duration,
    /// Directory for the clusters' data and logs (kept); a fresh temporary one when unset.
    pub work_dir: Option<PathBuf>,
    /// Seed of the clients' random streams.
    pub seed: u64,
    /// Every target's settings.
    pub settings: Settings,
}

/// Runs the comparison; returns the report after printing its table and writing its files.
pub async fn compare(config: &CompareConfig) -> Result<Report> {
    // Validate every name before starting anything.
    for name in &config.targets {
        target::build(name, &config.settings)?;
    }
    let temp;
    let dir: PathBuf = match &config.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("dialkv-bench-")
                .tempdir_in(std::env::var_os("DIALKV_BENCH_TMP").unwrap_or("/var/tmp".into()))
                .context("creating a work directory (on disk, not tmpfs, so fsync is real)")?;
            temp.path().to_path_buf()
        }
    };
    let keys = KeyChooser::new(config.distribution, config.records)?;
    let mut report = Report {
        workload: format!("{}", config.workload),
        distribution: config.distribution.to_string(),
        records: config.records,
        value_size: config.value_size,
        clients: config.clients,
        pacing: match config.rate {
            Some(rate) => Pacing::Open(OpenLoop::new(rate)).to_string(),
            None => Pacing::Closed.to_string(),
        },
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        machine: machine::describe(&dir)?,
        targets: Vec::new(),
        skipped: Vec::new(),
    };
    eprintln!(
        "dialkv-bench: workload {}, {} clients, work directory {}",
        config.workload.describe(),
        config.clients,
        dir.display()
    );
    for name in &config.targets {
        let mut target = target::build(name, &config.settings)?;
        if let Some(reason) = target.unsupported(config.workload) {
            eprintln!("dialkv-bench: {name} skipped: {reason}");
            report.skipped.push(Skipped {
                name: name.clone(),
                reason,
            });
            continue;
        }
        let target_dir = dir.join(name);
        // A kept work directory may hold an earlier run's data: every cluster starts fresh.
        if target_dir.exists() {
            std::fs::remove_dir_all(&target_dir)
                .with_context(|| format!("clearing {}", target_dir.display()))?;
        }
        std::fs::create_dir_all(&target_dir)
            .with_context(|| format!("creating {}", target_dir.display()))?;
        let outcome = measure(target.as_mut(), &target_dir, config, &keys).await;
        let stopping = spinner(format!("stopping {name}"));
        target.stop();
        stopping.finish_and_clear();
        match outcome {
            Ok(Ok(row)) => {
                eprintln!(
                    "dialkv-bench: {name}: {:.0} ops/s, p50 {:.3} ms, p99 {:.3} ms",
                    row.ops_per_sec, row.p50_ms, row.p99_ms
                );
                report.targets.push(row);
            }
            Ok(Err(reason)) => {
                eprintln!("dialkv-bench: {name} unavailable: {reason}");
                report.skipped.push(Skipped {
                    name: name.clone(),
                    reason,
                });
            }
            Err(e) => {
                eprintln!("dialkv-bench: {name} failed: {e:#}");
                report.skipped.push(Skipped {
                    name: name.clone(),
                    reason: format!("failed: {e:#}"),
                });
            }
        }
    }
    report.machine.load_avg_end = machine::load_average();
    println!("{}", report.table());
    if let Some(path) = &config.json {
        std::fs::write(path, report.to_json()? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("dialkv-bench: wrote {}", path.display());
    }
    if let Some(path) = &config.plot {
        plot::draw(path, &report.plot_title(), &report.curves())?;
        eprintln!("dialkv-bench: wrote {}", path.display());
    }
    Ok(report)
}

/// Starts, loads and measures one target. `Ok(Err(reason))` when it is unavailable.
async fn measure(
    target: &mut dyn Target,
    dir: &Path,
    config: &CompareConfig,
    keys: &KeyChooser,
) -> Result<std::result::Result<TargetReport, String>> {
    let name = target.name().to_string();
    let starting = spinner(format!("starting {name}: {}", target.describe()));
    let readiness = target.start(dir).await;
    starting.finish_and_clear();
    if let Readiness::Unavailable(reason) = readiness.with_context(|| format!("starting {name}"))? {
        return Ok(Err(reason));
    }

    let connections = config.connections.unwrap_or(config.clients).max(1);
    let mut stores: Vec<Box<dyn Store>> = Vec::with_capacity(connections);
    for _ in 0..connections {
        stores.push(target.connect().await?);
    }

    let live = Arc::new(Live::default());
    let generators = make_generators(config, keys);
    let value = generators
        .first()
        .map(OpGenerator::value)
        .unwrap_or_default();
    {
        let _bar = PhaseBar::start(
            &format!("{name}: load"),
            Measure::Ops(config.records),
            live.clone(),
        );
        let concurrency = config.load_clients.max(1);
        runner::load(&stores, config.records, value, concurrency, live).await?;
    }

    let pacing = match config.rate {
        Some(rate) => Pacing::Open(OpenLoop::new(rate)),
        None => Pacing::Closed,
    };
    let plan = RunPlan {
        pacing,
        warmup: config.warmup,
        duration: config.duration,
    };
    let window_start = tokio::time::Instant::now() + plan.warmup;
    let cpu = tokio::spawn(cpu_over(
        target.server_pids(),
        window_start,
        window_start + plan.duration,
    ));
    let stats = run_phase(
        &format!("{name}: {}", config.workload),
        &stores,
        config,
        keys,
        plan,
    )
    .await?;
    let cpu = cpu.await.ok().flatten().unwrap_or_default();
    let per_op = |seconds: f64| {
        if stats.ops == 0 {
            0.0
        } else {
            seconds / stats.ops as f64 * 1e6
        }
    };

    let mut curve = Vec::new();
    if config.plot.is_some() {
        let capacity = stats.ops_per_sec().max(1.0);
        for fraction in &config.plot_rates {
            let rate = (capacity * fraction).round().max(1.0);
            let plan = RunPlan {
                pacing: Pacing::Open(OpenLoop::new(rate as u64)),
                warmup: CURVE_WARMUP,
                duration: config.plot_time,
            };
            let label = format!("{name}: {rate:.0} ops/s");
            let point = run_phase(&label, &stores, config, keys, plan).await?;
            curve.push(CurvePoint {
                target_ops_per_sec: rate,
                ops_per_sec: point.ops_per_sec(),
                p50_ms: point.latency_ms(0.5),
                p99_ms: point.latency_ms(0.99),
            });
        }
    }

    let rss: Vec<u64> = target
        .server_pids()
        .into_iter()
        .filter_map(peak_rss_kib)
        .collect();
    Ok(Ok(TargetReport {
        name,
        ops_per_sec: stats.ops_per_sec(),
        p50_ms: stats.latency_ms(0.5),
        p99_ms: stats.latency_ms(0.99),
        p999_ms: stats.latency_ms(0.999),
        peak_rss_mb: rss.iter().sum::<u64>() as f64 / 1024.0,
        peak_rss_mb_max_process: rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        processes: rss.len(),
        server_cpu_us_per_op: per_op(cpu.servers),
        client_cpu_us_per_op: per_op(cpu.client),
        machine_busy: cpu.machine_busy,
        errors: stats.errors,
        misses: stats.misses,
        first_error: stats.first_error.clone(),
        settings: target.describe(),
        curve,
    }))
}

/// CPU time used in a window: by a target's servers together and by this process, in
/// seconds, and the share of the machine's CPUs that was busy.
#[derive(Clone, Copy, Debug, Default)]
struct CpuUse {
    servers: f64,
    client: f64,
    machine_busy: f64,
}

/// The CPU time `pids` and this process use between `from` and `until` (waiting for both), or
/// `None` when a process's time cannot be read at either end (one exited, or no `/proc`).
async fn cpu_over(
    pids: Vec<u32>,
    from: tokio::time::Instant,
    until: tokio::time::Instant,
) -> Option<CpuUse> {
    let sample = || -> Option<(f64, f64, machine::CpuTimes)> {
        let servers = pids
            .iter()
            .map(|&pid| cpu_seconds(pid))
            .sum::<Option<f64>>()?;
        Some((
            servers,
            cpu_seconds(std::process::id())?,
            machine::cpu_times()?,
        ))
    };
    tokio::time::sleep_until(from).await;
    let (servers, client, machine) = sample()?;
    tokio::time::sleep_until(until).await;
    let (servers_end, client_end, machine_end) = sample()?;
    Some(CpuUse {
        servers: servers_end - servers,
        client: client_end - client,
        machine_busy: machine.busy_share_until(&machine_end),
    })
}

fn make_generators(config: &CompareConfig, keys: &KeyChooser) -> Vec<OpGenerator> {
    (0..config.clients.max(1))
        .map(|i| {
            OpGenerator::new(
                config.workload,
                keys.clone(),
                config.value_size,
                config.seed.wrapping_add(i as u64),
            )
        })
        .collect()
}

async fn run_phase(
    label: &str,
    stores: &[Box<dyn Store>],
    config: &CompareConfig,
    keys: &KeyChooser,
    plan: RunPlan,
) -> Result<RunStats> {
    let live = Arc::new(Live::default());
    let _bar = PhaseBar::start(
        label,
        Measure::Time(plan.warmup + plan.duration),
        live.clone(),
    );
    runner::run(stores, make_generators(config, keys), plan, live).await
}
