//! The suite CI runs: every implemented (protocol, level) pair under the nemeses that matter to
//! it, plus self-tests — runs of a deliberately broken system that the referee must call
//! Invalid. A suite fails when any ordinary run is not Valid (Invalid, Unknown or broken) or
//! any self-test is not caught.
//!
//! Which cases run depends on the cluster size (`--nodes`):
//!
//! - always (one node is enough): linearizable register and list-append under kill and
//!   pause; the session guarantees (list-append through sessions at EVENTUAL) under kill and
//!   pause; eventual register under kill and clock skew; the grow-only set under kill;
//!   list-append transactions (`txn`, Elle at strict serializability) and the `bank` under
//!   kill and pause; the **skipped-validation self-test**: every node started with
//!   `--unsafe-skip-txn-validation` (commits skip read-set validation), the `txn` workload
//!   checked as strict serializable, which must be caught (lost updates show as
//!   incompatible orders, G-single or G2); and the
//!   **split-brain self-test**: two nodes that are each a cluster of one (no replication at
//!   all) behind one set of clients, checked as a linearizable register. Writes that land on
//!   one node are never seen on the other, so the referee must find a stale read. This proves
//!   the whole chain — real processes, recording, checking, verdict, exit code — catches a
//!   real consistency violation produced by real servers; it does not prove any particular
//!   server bug would be caught.
//! - with `--nodes 3` or more (needs `dialkv serve --peers`): the same runs on the replicated
//!   cluster with partitions added (the transactional ones under partition, kill and pause),
//!   sequential and eventual reads, and the **stale-read
//!   self-test**: every node started with `--unsafe-stale-linearizable-reads` (a leader
//!   answers linearizable reads without the ReadIndex check) with the leader cut off for 4-10 s
//!   at a time, checked as a linearizable register: a deposed leader serving reads must be
//!   caught. Quorum namespaces too: the ABD register (linearizable) under partition, kill and
//!   clock skew; causal+ with every session guarantee under partition and kill; eventual
//!   convergence; each session guarantee alone; and the **weak-quorum self-test**: every
//!   node started with `--unsafe-weak-quorums` (LINEARIZABLE with R = W = 1), checked as
//!   linearizable, which must be caught.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::nemesis::FaultKind;
use crate::runner::{self, Protocol, RunConfig};
use crate::workload::{Level, WorkloadKind};
use dialkv_consistency::level::{SessionGuarantee, SessionGuarantees};

/// What a case must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A correct system: the verdict must be Valid.
    Valid,
    /// A deliberately broken system: the verdict must be Invalid.
    Caught,
}

/// One run of the suite.
#[derive(Clone, Debug)]
pub struct Case {
    /// A name, also the report's directory.
    pub name: String,
    /// The workload.
    pub workload: WorkloadKind,
    /// The level.
    pub level: Level,
    /// The faults.
    pub nemesis: Vec<FaultKind>,
    /// The node count.
    pub nodes: usize,
    /// How long the workload runs.
    pub time: Duration,
    /// What must come out.
    pub expect: Expect,
    /// Every node its own cluster (the split-brain self-test).
    pub split_brain: bool,
    /// Extra server arguments.
    pub server_args: Vec<String>,
    /// Mean time between faults (faults last 40-100 % of it).
    pub interval: Duration,
    /// Bind each client to one node (see `RunConfig::pin_clients`).
    pub pin_clients: bool,
    /// The replication protocol.
    pub protocol: Protocol,
    /// Session guarantees the clients keep (see `RunConfig::session`).
    pub session: Option<SessionGuarantees>,
    /// Concurrent clients, when not the suite's.
    pub concurrency: Option<usize>,
    /// Target operations per second over all clients (0: unlimited).
    pub rate: u32,
    /// The register workload also deletes (see `RunConfig::deletes`).
    pub deletes: bool,
}

fn case(
    name: &str,
    workload: WorkloadKind,
    level: Level,
    nemesis: &[FaultKind],
    nodes: usize,
    secs: u64,
) -> Case {
    Case {
        name: name.into(),
        workload,
        level,
        nemesis: nemesis.to_vec(),
        nodes,
        time: Duration::from_secs(secs),
        expect: Expect::Valid,
        split_brain: false,
        server_args: Vec::new(),
        interval: Duration::from_secs(4),
        pin_clients: false,
        protocol: Protocol::PrimaryBackup,
        session: None,
        concurrency: None,
        rate: 300,
        deletes: false,
    }
}

/// A case on a quorum namespace. Anti-entropy runs every second, so that replicas a
/// partition kept apart converge soon after it heals.
fn quorum_case(name: &str, level: Level, nemesis: &[FaultKind], nodes: usize, secs: u64) -> Case {
    let mut c = case(name, WorkloadKind::Register, level, nemesis, nodes, secs);
    c.protocol = Protocol::Quorum;
    c.server_args = vec!["--anti-entropy-ms".into(), "1000".into()];
    c
}

/// `c` with deletes in its register workload.
fn with_deletes(mut c: Case) -> Case {
    c.deletes = true;
    c
}

/// Only guarantee `g` of the four.
fn only(g: SessionGuarantee) -> SessionGuarantees {
    SessionGuarantees {
        read_your_writes: g == SessionGuarantee::ReadYourWrites,
        monotonic_reads: g == SessionGuarantee::MonotonicReads,
        monotonic_writes: g == SessionGuarantee::MonotonicWrites,
        writes_follow_reads: g == SessionGuarantee::WritesFollowReads,
    }
}

/// Returns the CI cases for a cluster of `nodes`.
pub fn ci_cases(nodes: usize) -> Vec<Case> {
    use FaultKind::{Clock, Kill, Partition, PartitionLeader, Pause};
    use Level::{Causal, Eventual, Linearizable, Sequential, StrictSerializable};
    use WorkloadKind::{Bank, ListAppend, Register, Session, Set, Txn};
    let mut cases = vec![
        with_deletes(case(
            "register-linearizable-kill-pause",
            Register,
            Linearizable,
            &[Kill, Pause],
            nodes,
            30,
        )),
        case(
            "list-append-linearizable-kill-pause",
            ListAppend,
            Linearizable,
            &[Kill, Pause],
            nodes,
            30,
        ),
        case(
            "session-eventual-kill-pause",
            Session,
            Eventual,
            &[Kill, Pause],
            nodes,
            25,
        ),
        case(
            "register-eventual-kill-clock",
            Register,
            Eventual,
            &[Kill, Clock],
            nodes,
            20,
        ),
        case(
            "set-linearizable-kill",
            Set,
            Linearizable,
            &[Kill],
            nodes,
            20,
        ),
        case(
            "txn-strict-serializable-kill-pause",
            Txn,
            StrictSerializable,
            &[Kill, Pause],
            nodes,
            25,
        ),
        case(
            "bank-strict-serializable-kill-pause",
            Bank,
            StrictSerializable,
            &[Kill, Pause],
            nodes,
            20,
        ),
    ];
    if nodes >= 3 {
        cases = vec![
            with_deletes(case(
                "register-linearizable-all",
                Register,
                Linearizable,
                &[Kill, Pause, Partition, Clock],
                nodes,
                40,
            )),
            case(
                "list-append-linearizable-partition-kill",
                ListAppend,
                Linearizable,
                &[Partition, Kill],
                nodes,
                30,
            ),
            case(
                "register-sequential-partition-pause",
                Register,
                Sequential,
                &[Partition, Pause],
                nodes,
                25,
            ),
            case(
                "session-eventual-partition-kill",
                Session,
                Eventual,
                &[Partition, Kill],
                nodes,
                30,
            ),
            case(
                "register-eventual-partition-clock",
                Register,
                Eventual,
                &[Partition, Clock],
                nodes,
                25,
            ),
            case(
                "set-linearizable-partition",
                Set,
                Linearizable,
                &[Partition],
                nodes,
                20,
            ),
            case(
                "txn-strict-serializable-partition-kill-pause",
                Txn,
                StrictSerializable,
                &[Partition, Kill, Pause],
                nodes,
                30,
            ),
            case(
                "bank-strict-serializable-partition-kill-pause",
                Bank,
                StrictSerializable,
                &[Partition, Kill, Pause],
                nodes,
                25,
            ),
        ];
        // Many clients and no rate limit: the primary batches the writes that queue behind
        // the entry being committed, so batched entries meet kills, pauses and partitions.
        let mut batched = case(
            "register-linearizable-batched-kill-pause-partition",
            Register,
            Linearizable,
            &[Kill, Pause, Partition],
            nodes,
            15,
        );
        batched.concurrency = Some(30);
        batched.rate = 0;
        cases.push(batched);
        // Without history a write collects the key's one older version from what the store
        // remembers, with no read: a wrong memory would leave a stale version readable.
        let mut no_history = case(
            "register-linearizable-no-history-kill-pause-partition",
            Register,
            Linearizable,
            &[Kill, Pause, Partition],
            nodes,
            15,
        );
        no_history.server_args = vec!["--retain-revisions".into(), "0".into()];
        no_history.concurrency = Some(20);
        no_history.rate = 0;
        // Deletes without history leave no tombstone: the version below must go too.
        no_history.deletes = true;
        cases.push(no_history);
        // A failover takes about 3 s (an election timeout of 1-2 s after the leader lease):
        // longer faults make transactions span primary changes (begun at one primary,
        // committed at the next, or cut off mid-commit).
        for c in cases.iter_mut().filter(|c| c.workload.transactional()) {
            c.interval = Duration::from_secs(7);
        }
        let mut stale = case(
            "selftest-stale-linearizable-reads",
            Register,
            Linearizable,
            &[PartitionLeader],
            nodes,
            40,
        );
        // Long partitions: the majority must elect a new leader and take writes while the
        // old one, cut off, still answers reads.
        stale.interval = Duration::from_secs(10);
        stale.expect = Expect::Caught;
        stale.server_args = vec!["--unsafe-stale-linearizable-reads".into()];
        // Clients bound to their nodes: those of the cut-off primary keep reading there (a
        // client free to move follows the writes to the new primary and never reads stale).
        stale.pin_clients = true;
        cases.push(stale);
        // Quorum namespaces: ABD registers (R + W > N, no compare-and-set), causal+ with
        // every session guarantee, eventual convergence after healing, and each session
        // guarantee alone with the others off.
        cases.push(with_deletes(quorum_case(
            "quorum-register-linearizable-partition-kill-clock",
            Linearizable,
            &[Partition, Kill, Clock],
            nodes,
            30,
        )));
        // Paused replicas: a coordinator's reads are hedged away from a peer that does not
        // answer, and its calls to that peer run on after the request is answered.
        let mut paused = quorum_case(
            "quorum-register-linearizable-pause",
            Linearizable,
            &[Pause],
            nodes,
            20,
        );
        paused.concurrency = Some(30);
        paused.rate = 1000;
        cases.push(paused);
        cases.push(quorum_case(
            "quorum-register-causal-partition-kill",
            Causal,
            &[Partition, Kill],
            nodes,
            25,
        ));
        cases.push(quorum_case(
            "quorum-register-eventual-partition-kill",
            Eventual,
            &[Partition, Kill],
            nodes,
            20,
        ));
        for g in SessionGuarantee::EVERY {
            let mut c = quorum_case(
                &format!("quorum-session-{}-partition", g.short_name()),
                Eventual,
                &[Partition],
                nodes,
                15,
            );
            c.session = Some(only(g));
            cases.push(c);
        }
        // LINEARIZABLE with one replica read and one written: quorums that need not
        // intersect. Clients bound to their nodes read where the writes have not arrived.
        let mut weak = quorum_case(
            "selftest-quorum-weak-quorums",
            Linearizable,
            &[Partition],
            nodes,
            20,
        );
        weak.expect = Expect::Caught;
        weak.server_args.push("--unsafe-weak-quorums".into());
        weak.pin_clients = true;
        cases.push(weak);
    }
    // Commits that skip read-set validation: concurrent read-modify-writes of one key both
    // commit, so appends are lost and lists diverge (lost update, G-single, G2, incompatible
    // orders). No faults are needed; concurrency alone breaks it.
    let mut skip = case(
        "selftest-txn-skip-validation",
        Txn,
        StrictSerializable,
        &[],
        nodes,
        15,
    );
    skip.expect = Expect::Caught;
    skip.server_args = vec!["--unsafe-skip-txn-validation".into()];
    cases.push(skip);
    let mut split = case("selftest-split-brain", Register, Linearizable, &[], 2, 15);
    split.expect = Expect::Caught;
    split.split_brain = true;
    cases.push(split);
    cases
}

/// Settings shared by every case of a suite.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// Where the reports go: one directory per case.
    pub out: PathBuf,
    /// The server binary.
    pub dialkv_bin: PathBuf,
    /// The seed of every case.
    pub seed: u64,
    /// Scales every case's time (CI on a slow machine can use less than 1).
    pub time_scale: f64,
    /// Concurrency of every case.
    pub concurrency: usize,
    /// Show progress bars.
    pub progress: bool,
}

/// How one case ended.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case.
    pub name: String,
    /// Whether it ended as expected.
    pub passed: bool,
    /// The verdict, or the error that broke the run.
    pub summary: String,
    /// The report directory.
    pub report: PathBuf,
    /// How long it took.
    pub elapsed: Duration,
    /// Set when the run itself broke (exit 3).
    pub broken: bool,
}

/// Runs the cases one after another and returns their results.
pub async fn run(cases: &[Case], cfg: &SuiteConfig) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let time = c.time.mul_f64(cfg.time_scale.max(0.05));
        eprintln!(
            "[{}/{}] {}: {} {} nemesis [{}], {} node(s), {:.0} s, expect {:?}",
            i + 1,
            cases.len(),
            c.name,
            c.workload,
            c.level,
            c.nemesis
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(","),
            c.nodes,
            time.as_secs_f64(),
            c.expect
        );
        let run_cfg = RunConfig {
            nodes: c.nodes,
            protocol: c.protocol,
            workload: c.workload,
            level: c.level,
            nemesis: c.nemesis.clone(),
            time,
            concurrency: c.concurrency.unwrap_or(cfg.concurrency),
            seed: cfg.seed,
            out: cfg.out.join(&c.name),
            dialkv_bin: cfg.dialkv_bin.clone(),
            interval: c.interval,
            quiet: Duration::from_secs(2),
            op_timeout: Duration::from_secs(2),
            rate: c.rate,
            server_args: c.server_args.clone(),
            split_brain: c.split_brain,
            pin_clients: c.pin_clients,
            progress: cfg.progress,
            session: c.session,
            deletes: c.deletes,
        };
        let started = Instant::now();
        let result = match runner::run(&run_cfg).await {
            Ok(outcome) => {
                let passed = match c.expect {
                    Expect::Valid => outcome.verdict.is_valid(),
                    Expect::Caught => outcome.verdict.is_invalid(),
                };
                let summary = match (c.expect, passed) {
                    (Expect::Caught, true) => format!(
                        "caught as expected: {}",
                        outcome.verdict.anomaly().unwrap_or("invalid")
                    ),
                    (Expect::Caught, false) => format!(
                        "SELF-TEST NOT CAUGHT: a broken system was judged {}",
                        outcome.verdict
                    ),
                    _ => outcome.verdict.to_string(),
                };
                CaseResult {
                    name: c.name.clone(),
                    passed,
                    summary,
                    report: outcome.report,
                    elapsed: started.elapsed(),
                    broken: false,
                }
            }
            Err(e) => CaseResult {
                name: c.name.clone(),
                passed: false,
                summary: format!("run broke: {e:#}"),
                report: run_cfg.out.clone(),
                elapsed: started.elapsed(),
                broken: true,
            },
        };
        eprintln!(
            "    {} in {:.1} s: {}\n    report: {}",
            if result.passed { "PASS" } else { "FAIL" },
            result.elapsed.as_secs_f64(),
            result.summary.lines().next().unwrap_or(""),
            result.report.join("index.html").display()
        );
        results.push(result);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_fits_in_the_budget_and_has_a_self_test() {
        for nodes in [1, 3, 5] {
            let cases = ci_cases(nodes);
            let total: Duration = cases.iter().map(|c| c.time).sum();
            // Each run adds start-up, quiet period, final reads and checking: ~10 s.
            let budget = total + Duration::from_secs(10) * cases.len() as u32;
            assert!(
                budget <= Duration::from_secs(15 * 60),
                "{nodes}: {budget:?}"
            );
            assert!(cases.iter().any(|c| c.expect == Expect::Caught));
            assert!(cases
                .iter()
                .all(|c| c.time >= Duration::from_secs(15) && c.time <= Duration::from_secs(40)));
            assert!(cases
                .iter()
                .filter(|c| !c.split_brain)
                .all(|c| c.nodes == nodes));
            let partition = cases
                .iter()
                .any(|c| c.nemesis.contains(&FaultKind::Partition));
            assert_eq!(partition, nodes >= 3);
        }
    }

    #[test]
    fn deletes_run_only_where_the_checker_knows_them() {
        for nodes in [1, 3] {
            let cases = ci_cases(nodes);
            let deleting: Vec<&Case> = cases.iter().filter(|c| c.deletes).collect();
            // A case asking for deletes where the run ignores them would test less than
            // its settings say: linearizable registers without sessions only.
            assert!(!deleting.is_empty(), "{nodes}");
            for c in &deleting {
                assert_eq!(c.workload, WorkloadKind::Register, "{}", c.name);
                assert_eq!(c.level, Level::Linearizable, "{}", c.name);
                assert!(c.session.is_none(), "{}", c.name);
                assert_eq!(c.expect, Expect::Valid, "{}", c.name);
            }
            if nodes >= 3 {
                // Both protocols, and the store without history (no tombstones).
                assert!(deleting.iter().any(|c| c.protocol == Protocol::Quorum));
                assert!(deleting
                    .iter()
                    .any(|c| c.server_args.iter().any(|a| a == "--retain-revisions")));
            }
        }
    }
}
