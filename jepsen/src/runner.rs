//! One run, start to verdict: start the cluster, drive the workload while the nemesis follows
//! its schedule, heal, wait, read every key from every node, stop the cluster, check the
//! history and write the report.
//!
//! Every phase is bounded: the workload stops at `--time` (each operation has its own
//! timeout), node starts have a timeout, and the final reads have one. A run that cannot be
//! carried out (no binary, a node that will not start, a malformed history) is an error: the
//! binary exits 3 ("broken"), distinct from a verdict.
//!
//! Layout of the report directory (`--out`):
//!
//! | file | what |
//! |---|---|
//! | `history.jsonl` | the history, in the referee's JSON-lines format |
//! | `verdict.json` | the run's parameters, every checker's verdict with its witness, the overall verdict |
//! | `schedule.json` | the nemesis schedule generated from the seed |
//! | `nemesis.jsonl` | what the nemesis actually did, with times on the history's clock |
//! | `index.html`, `latency.svg`, `throughput.svg` | the report (see [`crate::report`]) |
//! | `nodes/n<ID>.log` | each node's stdout and stderr, across restarts |
//! | `data/`, `clock/` | the nodes' data directories and clock offset files |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use dialkv_client::{CallOptions, Client, Consistency, Level as ClientLevel, SessionGuarantees};
use dialkv_consistency::history::EventType;
use dialkv_consistency::level::SessionGuarantees as SessionGuaranteeSet;
use dialkv_consistency::verdict::Verdict;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cluster::{Cluster, ClusterConfig, NodeId};
use crate::nemesis::{FaultKind, Nemesis, Schedule};
use crate::recorder::{OpRecord, Processes, Recorder};
use crate::report;
use crate::workload::txn::TxnConn;
use crate::workload::{
    self, bank, CheckResult, Conn, Generator, Level, OpSpec, Outcome, WorkloadKind,
};

/// The replication protocol a run tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Raft-ordered primary-backup (the `default` namespace).
    PrimaryBackup,
    /// The leaderless quorum protocol (a last-writer-wins namespace created for the run).
    Quorum,
}

/// The namespace quorum runs use.
pub const QUORUM_NAMESPACE: &str = "jepsen-quorum";

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary-backup" => Ok(Protocol::PrimaryBackup),
            "quorum" => Ok(Protocol::Quorum),
            other => Err(format!(
                "unknown protocol {other:?} (primary-backup, quorum)"
            )),
        }
    }
}

/// Everything a run needs to know.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// How many nodes.
    pub nodes: usize,
    /// The replication protocol.
    pub protocol: Protocol,
    /// The workload.
    pub workload: WorkloadKind,
    /// The level asked for and checked.
    pub level: Level,
    /// The fault kinds.
    pub nemesis: Vec<FaultKind>,
    /// How long the workload runs.
    pub time: Duration,
    /// Concurrent client workers.
    pub concurrency: usize,
    /// The seed of the operation and fault schedules.
    pub seed: u64,
    /// The report directory.
    pub out: PathBuf,
    /// The `dialkv` server binary.
    pub dialkv_bin: PathBuf,
    /// Mean time between faults.
    pub interval: Duration,
    /// Quiet period between healing and the final reads.
    pub quiet: Duration,
    /// Timeout of each operation.
    pub op_timeout: Duration,
    /// Target total operations per second (0: as fast as the cluster answers).
    pub rate: u32,
    /// Extra arguments for every `dialkv serve` (e.g. a test-only switch).
    pub server_args: Vec<String>,
    /// Run every node as a cluster of its own (the split-brain self-test): a deliberately
    /// broken system.
    pub split_brain: bool,
    /// Bind each client to one node (worker `w` to node `w mod n`), as Jepsen's clients are,
    /// instead of letting it follow the primary: so that some clients keep talking to a node
    /// however it behaves (the stale-read self-test needs reads at a deposed primary).
    pub pin_clients: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Run every client in a session with these guarantees (and check each of them); by
    /// default the `session` workload and SEQUENTIAL or CAUSAL runs use all four, others
    /// none.
    pub session: Option<SessionGuaranteeSet>,
    /// Registers at LINEARIZABLE, without sessions, also get deletes (ignored otherwise: only
    /// the linearizability search is sure to decide such histories, and the session
    /// checkers know no deletes). The CI suite turns it on for its rate-limited linearizable
    /// register cases on both protocols and for the one without history.
    pub deletes: bool,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The overall verdict (any invalid check wins, then any unknown).
    pub verdict: Verdict,
    /// Every check.
    pub checks: Vec<CheckResult>,
    /// The report directory.
    pub report: PathBuf,
    /// Operations by completion type.
    pub counts: BTreeMap<String, u64>,
}

/// A line of `nemesis.jsonl`: what the nemesis did and when, on the history's clock.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct NemesisRecord {
    /// When the action started, ns since the history's zero.
    pub start_ns: u64,
    /// When it finished.
    pub end_ns: u64,
    /// The scheduled action.
    pub action: String,
    /// Whether it heals.
    pub heal: bool,
    /// What was done, or the error.
    pub result: String,
}

/// Parses durations like `30s`, `500ms`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {text:?} (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {text:?} (ms, s, m, h)")),
    };
    if !(0.0..=1e7).contains(&secs) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Checks that the server binary supports what the run needs.
fn preflight(cfg: &RunConfig) -> anyhow::Result<()> {
    if cfg.nodes == 0 || cfg.concurrency == 0 {
        bail!("--nodes and --concurrency must be at least 1");
    }
    if !cfg.workload.levels().contains(&cfg.level) {
        bail!(
            "the {} workload cannot be checked at {} (it can at: {})",
            cfg.workload,
            cfg.level,
            cfg.workload
                .levels()
                .iter()
                .map(|l| l.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let partitions = cfg.nemesis.contains(&FaultKind::Partition)
        || cfg.nemesis.contains(&FaultKind::PartitionLeader);
    if partitions && (cfg.nodes < 2 || cfg.split_brain) {
        bail!("the partition nemesis needs a replicated cluster of at least 2 nodes (--nodes)");
    }
    if cfg.nodes > 1 && !cfg.split_brain {
        let help = std::process::Command::new(&cfg.dialkv_bin)
            .args(["serve", "--help"])
            .output()
            .with_context(|| format!("running {} serve --help", cfg.dialkv_bin.display()))?;
        if !String::from_utf8_lossy(&help.stdout).contains("--peers") {
            bail!(
                "{} has no `serve --peers`: this build is a single replica, so a {}-node cluster \
                 cannot be formed (use --nodes 1 until replication lands)",
                cfg.dialkv_bin.display(),
                cfg.nodes
            );
        }
    }
    Ok(())
}

/// Shared state of the workers.
struct Shared {
    recorder: Recorder,
    processes: Processes,
    generator: Mutex<Generator>,
    opts: CallOptions,
    kind: WorkloadKind,
    op_timeout: Duration,
    completed: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn note_error(&self, err: &str) {
        // Group errors by their first words (the code and reason), not their details.
        let head: String = err.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        *self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(head)
            .or_default() += 1;
    }
}

/// Runs one operation for a worker and records it; returns how it completed (after `info`
/// the process is retired).
async fn run_op(
    shared: &Shared,
    conn: &Conn,
    process: u64,
    session: u64,
    spec: &OpSpec,
) -> EventType {
    let rec = OpRecord {
        process,
        session,
        f: spec.f.to_string(),
        key: (!spec.key.is_empty()).then(|| spec.key.clone()),
    };
    shared.recorder.invoke(&rec, spec.value.clone());
    let outcome = workload::execute(shared.kind, conn, spec, &shared.opts, shared.op_timeout).await;
    let (value, node) = match &outcome {
        Outcome::Ok { value, node } => (value.clone(), node.map(|n| format!("n{n}"))),
        _ => (Value::Null, None),
    };
    if let Some(err) = outcome.error() {
        shared.note_error(err);
    }
    shared
        .recorder
        .complete(&rec, outcome.event_type(), value, node);
    shared.completed.fetch_add(1, Ordering::Relaxed);
    outcome.event_type()
}

/// Builds the client of worker `w`: every endpoint, starting at node `w mod n`, so the
/// workers spread over the nodes; with `pin`, only node `w mod n`.
fn worker_client(
    endpoints: &[String],
    w: usize,
    op_timeout: Duration,
    pin: bool,
) -> anyhow::Result<Client> {
    let n = endpoints.len();
    let count = if pin { 1 } else { n };
    let rotated: Vec<String> = (0..count).map(|i| endpoints[(w + i) % n].clone()).collect();
    Client::builder()
        .endpoints(rotated)
        .timeout(op_timeout)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .context("building a client")
}

/// Runs the whole test; see the module docs.
pub async fn run(cfg: &RunConfig) -> anyhow::Result<RunOutcome> {
    preflight(cfg)?;
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    for stale in [
        "history.jsonl",
        "verdict.json",
        "nemesis.jsonl",
        "index.html",
    ] {
        let _ = std::fs::remove_file(cfg.out.join(stale));
    }
    let _ = std::fs::remove_dir_all(cfg.out.join("nodes"));
    let schedule = Schedule::generate(cfg.seed, &cfg.nemesis, cfg.nodes, cfg.time, cfg.interval);
    std::fs::write(
        cfg.out.join("schedule.json"),
        serde_json::to_string_pretty(&schedule)?,
    )?;

    let mut cluster = Cluster::start(ClusterConfig {
        binary: cfg.dialkv_bin.clone(),
        nodes: cfg.nodes,
        dir: cfg.out.clone(),
        replicated: !cfg.split_brain,
        faketime: cfg.nemesis.contains(&FaultKind::Clock),
        server_args: cfg.server_args.clone(),
        start_timeout: Duration::from_secs(30),
    })
    .await?;
    let endpoints: Vec<String> = cluster
        .endpoints()
        .values()
        .map(ToString::to_string)
        .collect();
    wait_until_serving(&endpoints).await?;
    if cfg.protocol == Protocol::Quorum {
        create_quorum_namespace(&endpoints).await?;
    }

    let (live, per_key) = Generator::defaults(cfg.workload);
    // The sequential and causal searches may reorder across real time, so they blow up on
    // far fewer operations per key than the linearizable one.
    let per_key = if cfg.workload == WorkloadKind::Register
        && matches!(cfg.level, Level::Sequential | Level::Causal)
    {
        per_key.min(30)
    } else {
        per_key
    };
    let shared = Arc::new(Shared {
        recorder: Recorder::new(),
        processes: Processes::new(cfg.concurrency as u64),
        generator: Mutex::new(
            Generator::new(cfg.workload, cfg.seed, live, per_key)
                .without_cas(cfg.protocol == Protocol::Quorum)
                // Only the linearizability search is sure to decide histories with deletes
                // within its budget (without real time to prune it, the sequential search
                // may not), and the session checkers know no deletes.
                .with_deletes(
                    cfg.deletes
                        && cfg.level == Level::Linearizable
                        && session_guarantees(cfg).is_none(),
                ),
        ),
        opts: match cfg.protocol {
            Protocol::PrimaryBackup => CallOptions::new(),
            Protocol::Quorum => CallOptions::new().namespace(QUORUM_NAMESPACE),
        }
        .consistency(cfg.level.consistency())
        .timeout(cfg.op_timeout),
        kind: cfg.workload,
        op_timeout: cfg.op_timeout + Duration::from_millis(500),
        completed: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
    });

    // Transactional workers share what they learn of the primary.
    let primary_hint = Arc::new(AtomicU64::new(0));
    let nodes: Vec<(NodeId, SocketAddr)> = cluster.endpoints().into_iter().collect();
    if cfg.workload == WorkloadKind::Bank {
        bank_init(cfg, &shared, &nodes, &primary_hint).await?;
    }

    let progress = progress_bar(cfg);
    let start = Instant::now();
    let deadline = start + cfg.time;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..cfg.concurrency {
        let client = worker_client(&endpoints, w, cfg.op_timeout, cfg.pin_clients)?;
        // A stateless server learns a client's order only from its session token: the
        // session workload, and every SEQUENTIAL or CAUSAL run, give each client a session.
        let guarantees = session_guarantees(cfg);
        let conn = if cfg.workload.transactional() {
            let rotated: Vec<(NodeId, SocketAddr)> = (0..nodes.len())
                .map(|i| nodes[(w + i) % nodes.len()])
                .collect();
            Conn::Txn(TxnConn::new(
                &rotated,
                primary_hint.clone(),
                cfg.op_timeout,
            )?)
        } else if let Some(g) = guarantees {
            Conn::Session(client.session(SessionGuarantees {
                read_your_writes: g.read_your_writes,
                monotonic_reads: g.monotonic_reads,
                monotonic_writes: g.monotonic_writes,
                writes_follow_reads: g.writes_follow_reads,
            }))
        } else {
            Conn::Plain(client)
        };
        let shared = shared.clone();
        let pause = if cfg.rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(cfg.concurrency as f64 / f64::from(cfg.rate))
        };
        workers.spawn(async move {
            let session = w as u64;
            let mut process = w as u64;
            while Instant::now() < deadline {
                let spec = shared
                    .generator
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .next_op();
                if run_op(&shared, &conn, process, session, &spec).await == EventType::Info {
                    process = shared.processes.fresh();
                }
                if !pause.is_zero() {
                    let jitter = rand::random_range(0.5..1.5);
                    let wait = pause.mul_f64(jitter);
                    let until = (Instant::now() + wait).min(deadline);
                    tokio::time::sleep_until(until).await;
                }
            }
        });
    }

    // The nemesis follows its schedule on this task while the workers run.
    let mut nemesis = Nemesis::new();
    let mut nemesis_log: Vec<NemesisRecord> = Vec::new();
    let mut current_fault = String::from("none");
    let mut steps = schedule.steps.iter().peekable();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while Instant::now() < deadline {
        let next_at = steps
            .peek()
            .map(|s| start + Duration::from_millis(s.at_ms))
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(next_at) => {
                if Instant::now() >= deadline { break; }
                if let Some(step) = steps.next() {
                    let t0 = shared.recorder.now_ns();
                    let result = nemesis.apply(&mut cluster, &step.action).await;
                    let result = match result {
                        Ok(r) => r,
                        Err(e) => format!("error: {e:#}"),
                    };
                    current_fault = if step.action.is_heal() { "none".into() } else { step.action.label() };
                    nemesis_log.push(NemesisRecord {
                        start_ns: t0,
                        end_ns: shared.recorder.now_ns(),
                        action: step.action.label(),
                        heal: step.action.is_heal(),
                        result,
                    });
                }
            }
            _ = ticker.tick() => {
                if let Some(pb) = &progress {
                    pb.set_position(start.elapsed().as_secs().min(cfg.time.as_secs()));
                    pb.set_message(format!(
                        "{} ops, fault: {current_fault}",
                        shared.completed.load(Ordering::Relaxed)
                    ));
                }
            }
        }
    }
    // Heal first, so workers stuck on a paused node get their answers or time out.
    let t0 = shared.recorder.now_ns();
    let healed = nemesis
        .heal_all(&mut cluster)
        .await
        .unwrap_or_else(|e| format!("error: {e:#}"));
    nemesis_log.push(NemesisRecord {
        start_ns: t0,
        end_ns: shared.recorder.now_ns(),
        action: "heal all".into(),
        heal: true,
        result: healed,
    });
    while let Some(joined) = workers.join_next().await {
        joined.context("a worker panicked")?;
    }
    if let Some(pb) = &progress {
        pb.set_message(format!(
            "{} ops; quiet period, then final reads",
            shared.completed.load(Ordering::Relaxed)
        ));
    }
    tokio::time::sleep(cfg.quiet).await;
    final_reads(cfg, &cluster, &shared).await?;
    if let Some(pb) = &progress {
        pb.finish_with_message(format!(
            "{} ops; checking",
            shared.completed.load(Ordering::Relaxed)
        ));
    }
    cluster.stop().await;
    drop(cluster);

    shared
        .recorder
        .write_jsonl(&cfg.out.join("history.jsonl"))?;
    let mut nemesis_text = String::new();
    for r in &nemesis_log {
        nemesis_text.push_str(&serde_json::to_string(r)?);
        nemesis_text.push('\n');
    }
    std::fs::write(cfg.out.join("nemesis.jsonl"), nemesis_text)?;

    let history = shared.recorder.history()?;
    let checks = workload::check(cfg.workload, cfg.level, session_guarantees(cfg), &history);
    let verdict = Verdict::merge(checks.iter().map(|c| c.verdict.clone()));
    let mut counts = BTreeMap::new();
    for op in history.ops() {
        *counts
            .entry(format!("{:?}", op.kind).to_lowercase())
            .or_insert(0u64) += 1;
    }
    let errors = shared
        .errors
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let verdict_doc = json!({
        "workload": cfg.workload,
        "level": cfg.level,
        "protocol": cfg.protocol,
        "nodes": cfg.nodes,
        "nemesis": cfg.nemesis,
        "seed": cfg.seed,
        "time_s": cfg.time.as_secs_f64(),
        "concurrency": cfg.concurrency,
        "split_brain": cfg.split_brain,
        "server_args": cfg.server_args,
        "ops": counts,
        "errors": errors,
        "checks": checks,
        "verdict": verdict,
    });
    std::fs::write(
        cfg.out.join("verdict.json"),
        serde_json::to_string_pretty(&verdict_doc)?,
    )?;
    report::write(&cfg.out, cfg, &history, &nemesis_log, &checks, &verdict)?;
    Ok(RunOutcome {
        verdict,
        checks,
        report: cfg.out.clone(),
        counts,
    })
}

fn progress_bar(cfg: &RunConfig) -> Option<ProgressBar> {
    if !cfg.progress {
        return None;
    }
    let pb = ProgressBar::new(cfg.time.as_secs());
    let style =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    Some(pb)
}

/// Opens the bank: one `init` transaction writes every account's starting balance, retried
/// (it writes absolute values, and nothing else runs yet) until it commits, for up to 30 s.
async fn bank_init(
    cfg: &RunConfig,
    shared: &Shared,
    nodes: &[(NodeId, SocketAddr)],
    primary_hint: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let conn = Conn::Txn(TxnConn::new(nodes, primary_hint.clone(), cfg.op_timeout)?);
    let spec = OpSpec {
        f: "init",
        key: String::new(),
        value: json!(bank::initial_balances()),
    };
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let process = shared.processes.fresh();
        if run_op(shared, &conn, process, process, &spec).await == EventType::Ok {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("the bank's init transaction did not commit within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The session guarantees a run's clients keep, if they keep a session.
pub fn session_guarantees(cfg: &RunConfig) -> Option<SessionGuaranteeSet> {
    cfg.session.or_else(|| {
        (cfg.workload == WorkloadKind::Session
            || matches!(cfg.level, Level::Sequential | Level::Causal))
        .then_some(SessionGuaranteeSet::ALL)
    })
}

/// Creates the quorum namespace of a run and waits until every node serves it.
async fn create_quorum_namespace(endpoints: &[String]) -> anyhow::Result<()> {
    let client = Client::builder()
        .endpoints(endpoints.to_vec())
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut spec = dialkv_client::NamespaceSpec::new(QUORUM_NAMESPACE);
    spec.protocol = Some(dialkv_client::Protocol::Quorum);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match client.create_namespace(&spec).await {
            Ok(_) => break,
            Err(e) if Instant::now() >= end => bail!("creating the quorum namespace: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    for ep in endpoints {
        let node = Client::builder()
            .endpoints([ep.clone()])
            .timeout(Duration::from_secs(2))
            .build()?;
        let opts = CallOptions::new()
            .namespace(QUORUM_NAMESPACE)
            .consistency(Consistency::level(ClientLevel::Eventual));
        loop {
            match node.get_with("jepsen-probe", &opts).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= end => {
                    bail!("node {ep} does not serve the quorum namespace: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

async fn wait_until_serving(endpoints: &[String]) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    for ep in endpoints {
        let client = Client::builder()
            .endpoints([ep.clone()])
            .timeout(Duration::from_secs(2))
            .build()?;
        let opts = CallOptions::new().consistency(Consistency::level(ClientLevel::Eventual));
        loop {
            match client.get_with("jepsen-probe", &opts).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= end => {
                    bail!("node {ep} did not answer a read within 30 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(())
}

/// Reads every used key from every node, one process per node, at the run's level, and
/// records them as `final-read`s naming the node. A final read that fails is recorded as
/// `fail` (a read changes nothing).
async fn final_reads(
    cfg: &RunConfig,
    cluster: &Cluster,
    shared: &Arc<Shared>,
) -> anyhow::Result<()> {
    let keys = match cfg.workload {
        // One read of every account per node.
        WorkloadKind::Bank => vec![String::new()],
        _ => shared
            .generator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .used_keys(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (id, addr) in cluster.endpoints() {
        let conn = if cfg.workload.transactional() {
            Conn::Txn(TxnConn::pinned(id, addr, cfg.op_timeout)?)
        } else {
            Conn::Plain(
                Client::builder()
                    .endpoints([addr.to_string()])
                    .timeout(cfg.op_timeout)
                    .build()?,
            )
        };
        let keys = keys.clone();
        let shared = shared.clone();
        let process = shared.processes.fresh();
        tasks.spawn(async move {
            for key in keys {
                let spec = OpSpec {
                    f: "final-read",
                    key,
                    value: Value::Null,
                };
                let rec = OpRecord {
                    process,
                    session: process,
                    f: spec.f.to_string(),
                    key: (!spec.key.is_empty()).then(|| spec.key.clone()),
                };
                shared.recorder.invoke(&rec, Value::Null);
                let outcome =
                    workload::execute(shared.kind, &conn, &spec, &shared.opts, shared.op_timeout)
                        .await;
                let (event_type, value) = match outcome {
                    Outcome::Ok { value, .. } => (EventType::Ok, value),
                    _ => (EventType::Fail, Value::Null),
                };
                shared
                    .recorder
                    .complete(&rec, event_type, value, Some(format!("n{id}")));
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a final-read task panicked")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }
}
