//! Nemeses: the faults a run injects, the seeded schedule that alternates faults and heals,
//! and the code that applies a step to a [`Cluster`].
//!
//! Fault kinds ([`FaultKind`]) and what a fault and its heal do:
//!
//! | kind | fault | heal |
//! |---|---|---|
//! | `kill` | SIGKILL a random minority of the nodes, or the leader | restart them on their data |
//! | `pause` | SIGSTOP a random minority, or the leader | SIGCONT |
//! | `partition` | cut links by a [`Shape`] (isolate one, majority/minority, bridge, ring), each cut a drop or a blackhole | heal every link |
//! | `partition-leader` | cut the leader off from every other node, a drop or a blackhole | heal every link |
//! | `clock` | jump random nodes' wall clocks by up to ±60 s, or strobe one between two offsets every few ms | reset every offset to 0 |
//!
//! With one node, "a minority" is that node (the only way to test crash recovery of a
//! cluster of one), and there is nothing to partition.
//!
//! [`Schedule::generate`] is a pure function of the seed, the fault kinds, the node count and
//! the run's length: the same seed gives the same steps, the same targets and the same shapes.
//! Only "the leader" is resolved when the step runs: every live node is asked for its status
//! (`Cluster/GetNodeStatus`) and the node they call the leader is hit (see [`crate::leader`]).
//! The schedule always ends healed; the run then waits a quiet period and makes its final
//! reads.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, NodeId};
use crate::proxy::LinkMode;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP and SIGCONT.
    Pause,
    /// Network partitions through the link proxies.
    Partition,
    /// The leader cut off from every other node (the partition that lets a deposed leader
    /// keep answering, if it wrongly does).
    PartitionLeader,
    /// Wall-clock skew through libfaketime.
    Clock,
}

impl FaultKind {
    /// Returns the kind's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::Clock => "clock",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a comma-separated list of fault kinds; `none` (or an empty list) is no fault.
pub fn parse_kinds(text: &str) -> Result<Vec<FaultKind>, String> {
    let mut kinds = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "none" => {}
            "kill" => {
                kinds.insert(FaultKind::Kill);
            }
            "pause" => {
                kinds.insert(FaultKind::Pause);
            }
            "partition" => {
                kinds.insert(FaultKind::Partition);
            }
            "partition-leader" => {
                kinds.insert(FaultKind::PartitionLeader);
            }
            "clock" => {
                kinds.insert(FaultKind::Clock);
            }
            other => {
                let known = "kill, pause, partition, partition-leader, clock, none";
                return Err(format!("unknown nemesis {other:?} ({known})"));
            }
        }
    }
    Ok(kinds.into_iter().collect())
}

/// Which nodes a process fault hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// These nodes.
    Nodes(Vec<NodeId>),
    /// Whichever node leads when the step runs.
    Leader,
}

/// The shape of a network partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// One node cut off from every other.
    IsolateOne(NodeId),
    /// Whichever node leads when the step runs, cut off from every other.
    IsolateLeader,
    /// Two sides, the smaller one a minority.
    MajorityMinority {
        /// The minority side.
        minority: Vec<NodeId>,
    },
    /// Two sides that cannot talk, and one node that talks to both.
    Bridge {
        /// The node that reaches both sides.
        bridge: NodeId,
        /// One side.
        left: Vec<NodeId>,
        /// The other side.
        right: Vec<NodeId>,
    },
    /// The nodes in a ring, each talking only to its nearest neighbours: every node sees a
    /// majority, no two nodes the same one.
    Ring(Vec<NodeId>),
}

impl Shape {
    /// Returns the directed links the shape cuts, among nodes `1..=n`.
    pub fn cut_links(&self, n: usize) -> BTreeSet<(NodeId, NodeId)> {
        let all: Vec<NodeId> = (1..=n as NodeId).collect();
        let mut cut = BTreeSet::new();
        let mut cut_between = |a: &[NodeId], b: &[NodeId]| {
            for &x in a {
                for &y in b {
                    if x != y {
                        cut.insert((x, y));
                        cut.insert((y, x));
                    }
                }
            }
        };
        match self {
            // Resolved to `IsolateOne` when the step runs; on its own it cuts nothing.
            Shape::IsolateLeader => {}
            Shape::IsolateOne(id) => {
                let rest: Vec<NodeId> = all.iter().copied().filter(|x| x != id).collect();
                cut_between(&[*id], &rest);
            }
            Shape::MajorityMinority { minority } => {
                let rest: Vec<NodeId> = all
                    .iter()
                    .copied()
                    .filter(|x| !minority.contains(x))
                    .collect();
                cut_between(minority, &rest);
            }
            Shape::Bridge { left, right, .. } => cut_between(left, right),
            Shape::Ring(order) => {
                let len = order.len();
                // Each node keeps links to the `reach` nodes on either side of it, so it sees
                // 2 * reach + 1 nodes: a majority.
                let reach = (len / 2).div_ceil(2).max(1);
                for (i, &x) in order.iter().enumerate() {
                    for (j, &y) in order.iter().enumerate() {
                        let d = i.abs_diff(j);
                        let ring_distance = d.min(len - d);
                        if x != y && ring_distance > reach {
                            cut.insert((x, y));
                        }
                    }
                }
            }
        }
        cut
    }
}

/// One thing the nemesis does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// SIGKILL the target.
    Kill {
        /// Who.
        target: Target,
    },
    /// Restart every node that is down.
    Restart,
    /// SIGSTOP the target.
    Pause {
        /// Who.
        target: Target,
    },
    /// SIGCONT every paused node.
    Resume,
    /// Cut links.
    Partition {
        /// The shape.
        shape: Shape,
        /// Drop or blackhole.
        mode: LinkMode,
    },
    /// Heal every link.
    HealNetwork,
    /// Set wall-clock offsets.
    ClockJump {
        /// `(node, offset in seconds)`.
        offsets: Vec<(NodeId, f64)>,
    },
    /// Flip a node's clock between 0 and `delta_s` every `period_ms`, for `duration_ms`.
    ClockStrobe {
        /// The node.
        node: NodeId,
        /// The offset flipped to, seconds.
        delta_s: f64,
        /// Flip period.
        period_ms: u64,
        /// How long the strobe lasts.
        duration_ms: u64,
    },
    /// Reset every clock offset to 0.
    ClockReset,
}

impl Action {
    /// Whether this action ends a fault.
    pub fn is_heal(&self) -> bool {
        matches!(
            self,
            Action::Restart | Action::Resume | Action::HealNetwork | Action::ClockReset
        )
    }

    /// A short label for timelines and logs.
    pub fn label(&self) -> String {
        match self {
            Action::Kill { target } => format!("kill {}", target_label(target)),
            Action::Restart => "restart".into(),
            Action::Pause { target } => format!("pause {}", target_label(target)),
            Action::Resume => "resume".into(),
            Action::Partition { shape, mode } => format!("partition {shape:?} ({mode:?})"),
            Action::HealNetwork => "heal network".into(),
            Action::ClockJump { offsets } => format!(
                "clock jump {}",
                offsets
                    .iter()
                    .map(|(n, o)| format!("n{n}{o:+.3}s"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Action::ClockStrobe {
                node,
                delta_s,
                period_ms,
                ..
            } => format!("clock strobe n{node} 0/{delta_s:+.3}s every {period_ms}ms"),
            Action::ClockReset => "clock reset".into(),
        }
    }
}

fn target_label(t: &Target) -> String {
    match t {
        Target::Leader => "leader".into(),
        Target::Nodes(ids) => ids
            .iter()
            .map(|n| format!("n{n}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// One step of a schedule: an action at an offset from the start of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Milliseconds after the start of the workload.
    pub at_ms: u64,
    /// What to do.
    pub action: Action,
}

/// A seeded sequence of faults and heals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The steps in time order; every fault is followed by its heal before the next fault.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Generates the schedule for a run of `time` with faults of `kinds` on `nodes` nodes:
    /// a fault every `interval` or so (each lasting 40–100 % of `interval`, followed by a
    /// healed gap of 30–70 % of it), every fault healed before `time`. Kinds that cannot
    /// apply (partition with one node) are left out.
    pub fn generate(
        seed: u64,
        kinds: &[FaultKind],
        nodes: usize,
        time: Duration,
        interval: Duration,
    ) -> Schedule {
        let kinds: Vec<FaultKind> = kinds
            .iter()
            .copied()
            .filter(|k| {
                !matches!(k, FaultKind::Partition | FaultKind::PartitionLeader) || nodes >= 2
            })
            .collect();
        let mut steps = Vec::new();
        if kinds.is_empty() || nodes == 0 {
            return Schedule { steps };
        }
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
        let total = time.as_millis() as u64;
        let iv = (interval.as_millis() as u64).max(200);
        let mut t = rng.random_range(iv / 4..=iv / 2);
        loop {
            let dur = rng.random_range(iv * 2 / 5..=iv);
            if t + dur + iv / 10 > total {
                break;
            }
            let kind = kinds[rng.random_range(0..kinds.len())];
            let (fault, heal) = fault_and_heal(&mut rng, kind, nodes, dur);
            steps.push(Step {
                at_ms: t,
                action: fault,
            });
            steps.push(Step {
                at_ms: t + dur,
                action: heal,
            });
            t += dur + rng.random_range(iv * 3 / 10..=iv * 7 / 10);
        }
        Schedule { steps }
    }

    /// Returns the fault periods `(start_ms, end_ms, label)`.
    pub fn fault_periods(&self) -> Vec<(u64, u64, String)> {
        self.steps
            .windows(2)
            .filter(|w| !w[0].action.is_heal() && w[1].action.is_heal())
            .map(|w| (w[0].at_ms, w[1].at_ms, w[0].action.label()))
            .collect()
    }
}

/// A random minority of `nodes` (at least one node).
fn minority(rng: &mut StdRng, nodes: usize) -> Vec<NodeId> {
    let size = ((nodes - 1) / 2).max(1);
    let mut ids: Vec<NodeId> = (1..=nodes as NodeId).collect();
    ids.shuffle(rng);
    let mut pick: Vec<NodeId> = ids.into_iter().take(size).collect();
    pick.sort_unstable();
    pick
}

fn fault_and_heal(rng: &mut StdRng, kind: FaultKind, nodes: usize, dur: u64) -> (Action, Action) {
    let target = |rng: &mut StdRng| {
        if nodes > 1 && rng.random_bool(0.5) {
            Target::Leader
        } else {
            Target::Nodes(minority(rng, nodes))
        }
    };
    match kind {
        FaultKind::Kill => (
            Action::Kill {
                target: target(rng),
            },
            Action::Restart,
        ),
        FaultKind::Pause => (
            Action::Pause {
                target: target(rng),
            },
            Action::Resume,
        ),
        FaultKind::Partition => {
            let mut ids: Vec<NodeId> = (1..=nodes as NodeId).collect();
            ids.shuffle(rng);
            let shape = match rng.random_range(0..4) {
                1 if nodes >= 3 => {
                    let mut m = ids[..nodes.div_ceil(2) - 1].to_vec();
                    m.sort_unstable();
                    Shape::MajorityMinority { minority: m }
                }
                2 if nodes >= 3 => {
                    let half = (nodes - 1) / 2;
                    let mut left = ids[1..1 + half].to_vec();
                    let mut right = ids[1 + half..].to_vec();
                    left.sort_unstable();
                    right.sort_unstable();
                    Shape::Bridge {
                        bridge: ids[0],
                        left,
                        right,
                    }
                }
                3 if nodes >= 4 => Shape::Ring(ids),
                _ => Shape::IsolateOne(ids[0]),
            };
            let mode = if rng.random_bool(0.5) {
                LinkMode::Drop
            } else {
                LinkMode::Blackhole
            };
            (Action::Partition { shape, mode }, Action::HealNetwork)
        }
        FaultKind::PartitionLeader => {
            let mode = if rng.random_bool(0.5) {
                LinkMode::Drop
            } else {
                LinkMode::Blackhole
            };
            (
                Action::Partition {
                    shape: Shape::IsolateLeader,
                    mode,
                },
                Action::HealNetwork,
            )
        }
        FaultKind::Clock => {
            if rng.random_bool(0.5) {
                let mut ids: Vec<NodeId> = (1..=nodes as NodeId).collect();
                ids.shuffle(rng);
                let count = rng.random_range(1..=nodes);
                let mut offsets: Vec<(NodeId, f64)> = ids[..count]
                    .iter()
                    .map(|&n| {
                        let magnitude = f64::from(rng.random_range(50u32..=60_000)) / 1000.0;
                        let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                        (n, sign * magnitude)
                    })
                    .collect();
                offsets.sort_by_key(|(n, _)| *n);
                (Action::ClockJump { offsets }, Action::ClockReset)
            } else {
                let node = rng.random_range(1..=nodes as NodeId);
                let magnitude = f64::from(rng.random_range(100u32..=10_000)) / 1000.0;
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                (
                    Action::ClockStrobe {
                        node,
                        delta_s: sign * magnitude,
                        period_ms: rng.random_range(5..=50),
                        duration_ms: dur,
                    },
                    Action::ClockReset,
                )
            }
        }
    }
}

/// Applies schedule steps to a cluster, and heals everything at the end.
#[derive(Debug, Default)]
pub struct Nemesis {
    strobe: Option<JoinHandle<()>>,
    /// The last leader found by asking the nodes.
    last_leader: Option<NodeId>,
}

impl Nemesis {
    /// Returns a nemesis with nothing in effect.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one action; returns what was done, for the nemesis log.
    pub async fn apply(
        &mut self,
        cluster: &mut Cluster,
        action: &Action,
    ) -> anyhow::Result<String> {
        // "The leader" is resolved now, by asking the nodes (see `crate::leader`).
        let needs_leader = matches!(
            action,
            Action::Kill {
                target: Target::Leader
            } | Action::Pause {
                target: Target::Leader
            } | Action::Partition {
                shape: Shape::IsolateLeader,
                ..
            }
        );
        let (leader, leader_note) = if needs_leader {
            let (id, note) = self.find_leader(cluster).await;
            (id, format!(" [leader: {note}]"))
        } else {
            (0, String::new())
        };
        let resolve = |t: &Target| match t {
            Target::Nodes(ids) => ids.clone(),
            Target::Leader => vec![leader],
        };
        Ok(match action {
            Action::Kill { target } => {
                let ids = resolve(target);
                cluster.kill(&ids).await?;
                format!("killed {ids:?}{leader_note}")
            }
            Action::Restart => format!("restarted {:?}", cluster.restart_down().await?),
            Action::Pause { target } => {
                let ids = resolve(target);
                cluster.pause(&ids);
                format!("paused {ids:?}{leader_note}")
            }
            Action::Resume => format!("resumed {:?}", cluster.resume_all()),
            Action::Partition { shape, mode } => {
                let n = cluster.ids().len();
                let shape = match shape {
                    Shape::IsolateLeader => Shape::IsolateOne(leader),
                    other => other.clone(),
                };
                let cut = shape.cut_links(n);
                match cluster.network() {
                    Some(net) => {
                        net.partition(&cut, *mode);
                        format!(
                            "{shape:?}: cut {} links ({mode:?}): {cut:?}{leader_note}",
                            cut.len()
                        )
                    }
                    None => "no network to partition (single node or unreplicated)".into(),
                }
            }
            Action::HealNetwork => {
                if let Some(net) = cluster.network() {
                    net.heal();
                }
                "healed every link".into()
            }
            Action::ClockJump { offsets } => {
                for (n, o) in offsets {
                    cluster.set_clock_offset(*n, *o)?;
                }
                format!("clock offsets {offsets:?}")
            }
            Action::ClockStrobe {
                node,
                delta_s,
                period_ms,
                duration_ms,
            } => {
                self.stop_strobe();
                // The strobe writes the node's offset file directly, so it does not need the
                // cluster while it runs.
                let cluster_clock = cluster.clock_handle(*node)?;
                let (delta, period, duration) = (*delta_s, *period_ms, *duration_ms);
                self.strobe = Some(tokio::spawn(async move {
                    let end = tokio::time::Instant::now() + Duration::from_millis(duration);
                    let mut on = false;
                    while tokio::time::Instant::now() < end {
                        on = !on;
                        let _ = cluster_clock.set(if on { delta } else { 0.0 });
                        tokio::time::sleep(Duration::from_millis(period)).await;
                    }
                    let _ = cluster_clock.set(0.0);
                }));
                format!("strobing n{node}")
            }
            Action::ClockReset => {
                self.stop_strobe();
                for id in cluster.ids() {
                    cluster.set_clock_offset(id, 0.0)?;
                }
                "clocks reset".into()
            }
        })
    }

    /// Finds the leader by asking the live nodes; when none is found, falls back to the last
    /// leader found (or node 1). Returns the node and a note saying how it was chosen.
    async fn find_leader(&mut self, cluster: &Cluster) -> (NodeId, String) {
        if cluster.ids().len() == 1 {
            return (1, "n1 (the only node)".into());
        }
        // A fresh election takes a few hundred milliseconds: ask again briefly before
        // falling back.
        let mut guess = cluster.detect_leader().await;
        for _ in 0..3 {
            if guess.id.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            guess = cluster.detect_leader().await;
        }
        match guess.id {
            Some(id) if cluster.ids().contains(&id) => {
                self.last_leader = Some(id);
                (id, format!("n{id}: {}", guess.how))
            }
            _ => {
                let id = self.last_leader.unwrap_or(1);
                (
                    id,
                    format!("none found ({}); using n{id}, the last known", guess.how),
                )
            }
        }
    }

    fn stop_strobe(&mut self) {
        if let Some(h) = self.strobe.take() {
            h.abort();
        }
    }

    /// Heals everything: resumes paused nodes, restarts dead ones, heals the network, resets
    /// the clocks.
    pub async fn heal_all(&mut self, cluster: &mut Cluster) -> anyhow::Result<String> {
        let mut done = Vec::new();
        for a in [
            Action::ClockReset,
            Action::HealNetwork,
            Action::Resume,
            Action::Restart,
        ] {
            done.push(self.apply(cluster, &a).await?);
        }
        Ok(done.join("; "))
    }
}

impl Drop for Nemesis {
    fn drop(&mut self) {
        self.stop_strobe();
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse_kinds(s)?.as_slice() {
            [k] => Ok(*k),
            _ => Err(format!("expected one fault kind, got {s:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule() {
        let kinds = [
            FaultKind::Kill,
            FaultKind::Pause,
            FaultKind::Partition,
            FaultKind::Clock,
        ];
        let a = Schedule::generate(
            42,
            &kinds,
            5,
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        let b = Schedule::generate(
            42,
            &kinds,
            5,
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        let c = Schedule::generate(
            43,
            &kinds,
            5,
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        assert_eq!(a, b);
        assert_ne!(a, c, "another seed, another schedule");
        assert!(a.steps.len() >= 8, "{} steps", a.steps.len());
    }

    #[test]
    fn faults_alternate_with_heals_and_end_healed() {
        for seed in 0..50 {
            let s = Schedule::generate(
                seed,
                &[FaultKind::Kill, FaultKind::Partition, FaultKind::Clock],
                3,
                Duration::from_secs(30),
                Duration::from_secs(3),
            );
            for (i, step) in s.steps.iter().enumerate() {
                assert_eq!(step.action.is_heal(), i % 2 == 1, "seed {seed}: {s:?}");
                assert!(step.at_ms <= 30_000);
                if i > 0 {
                    assert!(step.at_ms > s.steps[i - 1].at_ms, "time order");
                }
            }
            assert_eq!(s.steps.len() % 2, 0, "the last fault is healed");
            assert_eq!(s.fault_periods().len(), s.steps.len() / 2);
        }
    }

    #[test]
    fn one_node_has_no_partitions_and_no_faults_means_no_steps() {
        let s = Schedule::generate(
            7,
            &[FaultKind::Partition],
            1,
            Duration::from_secs(30),
            Duration::from_secs(3),
        );
        assert!(s.steps.is_empty());
        let s = Schedule::generate(7, &[], 3, Duration::from_secs(30), Duration::from_secs(3));
        assert!(s.steps.is_empty());
        let s = Schedule::generate(
            7,
            &[FaultKind::Kill],
            1,
            Duration::from_secs(30),
            Duration::from_secs(3),
        );
        assert!(s.steps.iter().all(|st| match &st.action {
            Action::Kill { target } => *target == Target::Nodes(vec![1]),
            a => a.is_heal(),
        }));
    }

    #[test]
    fn shapes_cut_the_right_links() {
        let iso = Shape::IsolateOne(2).cut_links(3);
        assert_eq!(
            iso,
            [(2, 1), (1, 2), (2, 3), (3, 2)]
                .into_iter()
                .collect::<BTreeSet<_>>()
        );
        let mm = Shape::MajorityMinority {
            minority: vec![1, 2],
        }
        .cut_links(5);
        assert_eq!(mm.len(), 2 * 2 * 3);
        assert!(!mm.contains(&(1, 2)) && mm.contains(&(1, 3)));
        let bridge = Shape::Bridge {
            bridge: 3,
            left: vec![1, 2],
            right: vec![4, 5],
        }
        .cut_links(5);
        assert!(bridge.iter().all(|(a, b)| *a != 3 && *b != 3));
        assert!(bridge.contains(&(1, 4)) && !bridge.contains(&(1, 2)));
        // A ring of 5: each node keeps its two neighbours, so it sees 3 of 5 (a majority).
        let ring = Shape::Ring(vec![1, 2, 3, 4, 5]).cut_links(5);
        for x in 1..=5u64 {
            let reachable = (1..=5u64).filter(|y| !ring.contains(&(x, *y))).count();
            assert_eq!(reachable, 3, "node {x} sees itself and two neighbours");
        }
        assert!(ring.contains(&(1, 3)) && !ring.contains(&(1, 5)));
    }

    #[test]
    fn parses_kinds() {
        assert_eq!(
            parse_kinds("kill,pause"),
            Ok(vec![FaultKind::Kill, FaultKind::Pause])
        );
        assert_eq!(parse_kinds("none"), Ok(vec![]));
        assert_eq!(
            parse_kinds("partition-leader"),
            Ok(vec![FaultKind::PartitionLeader])
        );
        assert!(parse_kinds("flood").is_err());
    }
}
