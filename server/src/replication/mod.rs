//! Primary-backup replication on openraft: one Raft group per cluster whose leader is the
//! primary (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm").
//!
//! - [`types`]: what a log entry carries ([`types::Request`]) and what applying it returns;
//! - [`log_store`]: the log and Raft's durable state in the storage engine;
//! - [`flush`]: the primary's log appends not durable yet, and what they hold back;
//! - [`state_machine`]: the versioned keyspace driven by committed entries, and snapshots;
//! - [`network`]: Raft RPCs between replicas over gRPC, and follower freshness tracking;
//! - [`Replica`]: the handle the services use: writes through the log, read barriers,
//!   staleness, membership and status.
//!
//! The whole cluster is one Raft group for now: every primary-backup namespace shares its log
//! and its revisions (counted by the state machine, one per command; a namespace's are
//! increasing, not contiguous). `ARCHITECTURE.md` says why and what per-namespace groups will
//! need.

pub mod flush;
// openraft's `StorageError` is large and its trait methods return it; boxing it is not ours.
#[allow(clippy::result_large_err)]
pub mod log_store;
pub mod network;
mod proposer;
pub mod read_index;
#[allow(clippy::result_large_err)]
pub mod state_machine;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, Raft, ServerState, SnapshotPolicy};

use self::log_store::LogStore;
use self::network::{Freshness, NetworkFactory, Peers};
use self::state_machine::StateMachine;
use self::types::{NodeId, Response, TypeConfig};
use crate::storage::store::{ApplyError, Command, Outcome, Store};
use crate::storage::writer::Writer;

/// How a replica joins its cluster when it starts on an empty log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// A cluster of one: it initializes itself.
    Single,
    /// A cluster of the given members: the one with the lowest id initializes it with all of
    /// them; the others wait to be contacted.
    Members(BTreeMap<NodeId, String>),
    /// An existing cluster: it waits to be added (`dialctl cluster add`).
    Join,
}

/// Replication settings.
#[derive(Clone, Debug)]
pub struct ReplicationOptions {
    /// The Raft heartbeat interval, also the AppendEntries timeout.
    pub heartbeat: Duration,
    /// Elections start after a random time in `[election_min, 2 × election_min)` without a
    /// heartbeat.
    pub election_min: Duration,
    /// A snapshot is taken after about this many entries since the last one (see
    /// [`snapshot_interval`]).
    pub snapshot_every: u64,
    /// How long a write waits to commit before its outcome is reported unknown.
    pub commit_timeout: Duration,
    /// Test only: answer LINEARIZABLE reads at the primary without confirming leadership, so
    /// that the fault-injection harness can prove it catches stale reads.
    pub unsafe_stale_linearizable_reads: bool,
}

/// The entries replica `id` lets pass between snapshots: `every`, stretched by between 0 and
/// half of it by the replica's id (a multiplicative hash), so that the replicas of a group do
/// not all build theirs at the same entry. Building one takes a CPU for a good part of a
/// second once the state machine holds a few hundred thousand records; when every replica
/// built at once, every member of a majority was slowed together, and on a machine the
/// replicas shared, they queued for the CPU: 90 s at 5,000 ops/s (workload A, 64 clients, 3
/// replicas on 2 cores) had p99 186–239 ms with equal intervals, 11–14 ms staggered.
pub fn snapshot_interval(every: u64, id: NodeId) -> u64 {
    let every = every.max(1);
    let spread = id.wrapping_mul(2_654_435_761) % 1000;
    every.saturating_add(every / 2000 * spread + every % 2000 * spread / 2000)
}

impl Default for ReplicationOptions {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(150),
            election_min: Duration::from_millis(1000),
            snapshot_every: 10_000,
            commit_timeout: Duration::from_secs(10),
            unsafe_stale_linearizable_reads: false,
        }
    }
}

/// Why a replicated operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// This replica is not the primary; `leader` is the primary if one is known.
    #[error("replica {me} is not the primary{}", leader.as_ref().map(|(id, addr)| format!("; the primary is replica {id} at {addr}")).unwrap_or_default())]
    NotLeader {
        me: NodeId,
        leader: Option<(NodeId, String)>,
    },
    /// The command was refused; nothing was written.
    #[error(transparent)]
    Refused(ApplyError),
    /// The write did not commit in time: it may still commit.
    #[error("the write did not commit within {0:?}; it may or may not take effect")]
    CommitTimeout(Duration),
    /// The primary could not confirm its leadership with a quorum (it may be partitioned).
    #[error("the primary could not reach a quorum: {0}")]
    NoQuorum(String),
    /// A membership change is refused.
    #[error("{0}")]
    Membership(String),
    /// Raft stopped (storage failure or shutdown).
    #[error("replication stopped: {0}")]
    Stopped(String),
}

impl ReplicaError {
    /// A copy of a read-barrier error, for each read that shared the round.
    fn duplicate(&self) -> ReplicaError {
        match self {
            ReplicaError::NotLeader { me, leader } => ReplicaError::NotLeader {
                me: *me,
                leader: leader.clone(),
            },
            ReplicaError::NoQuorum(m) => ReplicaError::NoQuorum(m.clone()),
            ReplicaError::CommitTimeout(d) => ReplicaError::CommitTimeout(*d),
            ReplicaError::Membership(m) => ReplicaError::Membership(m.clone()),
            other => ReplicaError::Stopped(other.to_string()),
        }
    }
}

/// One replica's Raft group and what the services need from it.
#[derive(Clone)]
pub struct Replica {
    /// This replica's id.
    pub id: NodeId,
    raft: Raft<TypeConfig>,
    store: Arc<Store>,
    peers: Arc<Peers>,
    freshness: Arc<Freshness>,
    options: ReplicationOptions,
    /// Linearizable reads waiting for a leadership confirmation round.
    reads: Arc<read_index::Coalescer<tokio::sync::oneshot::Sender<Result<(), ReplicaError>>>>,
    /// Writes waiting to be proposed.
    proposals: tokio::sync::mpsc::UnboundedSender<proposer::Proposal>,
    /// The task that sends a commit index held back once it is released (see `flush`); it
    /// holds a Raft handle, so it ends with the last handle to the replica.
    _released_commits: Arc<AbortOnDrop>,
}

/// A task aborted when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Starts the Raft group of replica `id` (advertised at `address`) over `store`, and
    /// bootstraps the cluster if its log is empty.
    pub async fn start(
        id: NodeId,
        address: String,
        bootstrap: Bootstrap,
        store: Arc<Store>,
        writer: Writer,
        options: ReplicationOptions,
    ) -> anyhow::Result<Replica> {
        let heartbeat = options.heartbeat.as_millis() as u64;
        let election = options.election_min.as_millis() as u64;
        let config = Config {
            cluster_name: "dialkv".into(),
            heartbeat_interval: heartbeat,
            election_timeout_min: election,
            election_timeout_max: 2 * election,
            install_snapshot_timeout: 30_000,
            snapshot_max_chunk_size: 1 << 20,
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_interval(
                options.snapshot_every,
                id,
            )),
            max_in_snapshot_log_to_keep: options.snapshot_every.clamp(1, 1000),
            purge_batch_size: 64,
            ..Default::default()
        }
        .validate()?;
        let overrides = match &bootstrap {
            Bootstrap::Members(m) => m.clone(),
            _ => BTreeMap::new(),
        };
        let peers = Arc::new(Peers::new(id, overrides));
        let freshness = Arc::new(Freshness::default());
        let log = LogStore::new(id, store.engine().clone(), writer.clone());
        let flushes = log.flushes().clone();
        let sm = StateMachine::new(store.clone(), writer, flushes.clone());
        let raft = Raft::new(
            id,
            Arc::new(config),
            NetworkFactory::new(peers.clone(), flushes.clone()),
            log,
            sm,
        )
        .await?;
        let released_commits = Arc::new(AbortOnDrop(send_released_commits(
            raft.clone(),
            flushes.released(),
        )));
        let proposals = proposer::start(raft.clone(), options.commit_timeout);
        let replica = Replica {
            id,
            raft,
            store,
            peers,
            freshness,
            options,
            reads: Arc::default(),
            proposals,
            _released_commits: released_commits,
        };
        replica.bootstrap(address, bootstrap).await?;
        Ok(replica)
    }

    async fn bootstrap(&self, address: String, bootstrap: Bootstrap) -> anyhow::Result<()> {
        if self.raft.is_initialized().await? {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = match bootstrap {
            Bootstrap::Join => return Ok(()),
            Bootstrap::Single => BTreeMap::from([(self.id, BasicNode::new(address))]),
            Bootstrap::Members(m) => {
                if m.keys().next() != Some(&self.id) {
                    // The lowest id initializes; this replica waits to hear from it.
                    return Ok(());
                }
                m.into_iter()
                    .map(|(id, addr)| (id, BasicNode::new(addr)))
                    .collect()
            }
        };
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(anyhow::anyhow!("bootstrapping the cluster: {e}")),
        }
    }

    /// The Raft handle (for the peer service).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The freshness tracker (for the peer service).
    pub fn freshness(&self) -> &Arc<Freshness> {
        &self.freshness
    }

    /// The peer addresses and channels.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// The primary as this replica knows it, with its address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader).cloned();
        let addr = self.peers.address(leader, node.as_ref())?;
        Some((leader, addr))
    }

    /// Whether this replica believes it is the primary.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The error for a request only the primary can serve, with the primary if known.
    pub fn not_leader(&self) -> ReplicaError {
        ReplicaError::NotLeader {
            me: self.id,
            leader: self.leader().filter(|(id, _)| *id != self.id),
        }
    }

    /// Refuses at once when this primary has not heard from a quorum for longer than an
    /// election timeout: it is probably cut off and deposed, and a request it took would only
    /// wait out its deadline (the check-quorum rule of Raft §6.2 / etcd). The client then
    /// tries another replica, which knows the new primary.
    fn check_quorum(&self) -> Result<(), ReplicaError> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        if m.membership_config.membership().voter_ids().count() <= 1 {
            return Ok(());
        }
        let limit = self.options.election_min.as_millis() as u64;
        match m.millis_since_quorum_ack {
            Some(ms) if ms > limit => Err(ReplicaError::NoQuorum(format!(
                "replica {} is the primary but has not heard from a quorum for {ms} ms; try another replica",
                self.id
            ))),
            _ => Ok(()),
        }
    }

    /// Orders `command` through the log and returns its outcome once it is committed and
    /// applied here.
    ///
    /// Writes arriving together share a log entry (the `proposer` module): every entry costs an
    /// fsync on each replica and its own Raft messages, so an entry per write would cap the
    /// cluster at about one write per fsync.
    pub async fn write(&self, command: Command) -> Result<Outcome, ReplicaError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        self.check_quorum()?;
        let timeout = self.options.commit_timeout;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.proposals
            .send(proposer::Proposal::new(command, reply))
            .map_err(|_| ReplicaError::Stopped("the proposer stopped".into()))?;
        let response = tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| ReplicaError::CommitTimeout(timeout))?
            .map_err(|_| ReplicaError::CommitTimeout(timeout))?;
        match response {
            Ok(Response::Applied(outcome)) => Ok(outcome),
            Ok(Response::Refused(r)) => Err(ReplicaError::Refused(r.into())),
            Ok(Response::None | Response::Batch(_)) => Err(ReplicaError::Stopped(
                "a command applied without its outcome".into(),
            )),
            Err(proposer::Failure::NotLeader) => Err(self.not_leader()),
            Err(proposer::Failure::Other(e)) => Err(e),
        }
    }

    /// Waits until a read here sees every write committed before the call: the primary
    /// confirms its leadership with a quorum (ReadIndex, Raft §6.4) and applies up to the
    /// commit index. Fails at a replica that is not the primary.
    pub async fn linearizable_barrier(&self) -> Result<(), ReplicaError> {
        if self.options.unsafe_stale_linearizable_reads && self.is_leader() {
            return Ok(());
        }
        if self.is_leader() {
            self.check_quorum()?;
        }
        // Reads arriving together share one confirmation round that starts after each of them
        // arrived (see `read_index`).
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.reads.join(tx) {
            let me = self.clone();
            tokio::spawn(async move {
                while let Some(round) = me.reads.next_round() {
                    let result = me.confirm_leadership().await;
                    for waiter in round {
                        let _ = waiter
                            .send(result.as_ref().map(|_| ()).map_err(ReplicaError::duplicate));
                    }
                }
            });
        }
        rx.await
            .map_err(|_| ReplicaError::Stopped("the read barrier was dropped".into()))?
    }

    /// One ReadIndex round: the primary confirms its leadership with a quorum and applies up
    /// to the commit index.
    async fn confirm_leadership(&self) -> Result<(), ReplicaError> {
        match tokio::time::timeout(self.options.commit_timeout, self.raft.ensure_linearizable())
            .await
        {
            Err(_) => Err(ReplicaError::NoQuorum(format!(
                "no quorum confirmed the primary within {:?}",
                self.options.commit_timeout
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(e))) => match e {
                openraft::error::CheckIsLeaderError::ForwardToLeader(_) => Err(self.not_leader()),
                openraft::error::CheckIsLeaderError::QuorumNotEnough(q) => {
                    Err(ReplicaError::NoQuorum(q.to_string()))
                }
            },
            Ok(Err(RaftError::Fatal(e))) => Err(ReplicaError::Stopped(e.to_string())),
        }
    }

    /// How far behind the primary this replica is known to be: (versions, time). The primary
    /// itself is current as of its last quorum acknowledgement.
    pub fn lag(&self) -> (u64, Option<Duration>) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let applied = self.store.applied_index();
        if m.state == ServerState::Leader {
            let since_ack = m.millis_since_quorum_ack.map(Duration::from_millis);
            let single = m.membership_config.membership().voter_ids().count() <= 1;
            return (
                0,
                if single {
                    Some(Duration::ZERO)
                } else {
                    since_ack
                },
            );
        }
        let commit = self.freshness.commit();
        (
            commit.saturating_sub(applied),
            self.freshness.staleness(applied),
        )
    }

    /// Adds replica `id` at `address`: as a learner until it has every entry the primary had
    /// when the call began, then as a voter. A replica that does not catch up within
    /// `timeout` is taken out again and the call fails.
    pub async fn add_node(
        &self,
        id: NodeId,
        address: String,
        timeout: Duration,
    ) -> Result<(), ReplicaError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let target = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
        let learner = self
            .raft
            .add_learner(id, BasicNode::new(address), false)
            .await;
        self.membership_result(learner)?;
        let caught_up = self
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id).copied().flatten())
                        .is_some_and(|matched| matched.index >= target)
                },
                "the new replica to catch up",
            )
            .await;
        if caught_up.is_err() {
            let undo = self
                .raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await;
            self.membership_result(undo)?;
            return Err(ReplicaError::Membership(format!(
                "replica {id} did not catch up within {timeout:?} (is it running at that address, started with --join?); it was not added"
            )));
        }
        let change = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await;
        self.membership_result(change)
    }

    /// Removes replica `id` from the cluster (voter or learner) through joint consensus. The
    /// primary may remove itself: once the change commits it steps down and the others elect
    /// a new primary.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), ReplicaError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let membership = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(ReplicaError::Membership(
                    "the last voter cannot be removed".into(),
                ));
            }
            // retain = false: the removed voter leaves the cluster, not just the voters.
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else if membership.get_node(&id).is_some() {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Err(ReplicaError::Membership(format!(
                "replica {id} is not a member"
            )));
        };
        let changed = self.raft.change_membership(change, false).await;
        self.membership_result(changed)
    }

    fn membership_result<T>(
        &self,
        r: Result<T, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>,
    ) -> Result<(), ReplicaError> {
        match r {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(self.not_leader())
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ReplicaError::Membership(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(ReplicaError::Stopped(e.to_string())),
        }
    }

    /// The voters and learners of the current membership.
    pub fn members(&self) -> (Vec<NodeId>, Vec<NodeId>) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        (
            membership.voter_ids().collect(),
            membership.learner_ids().collect(),
        )
    }

    /// Every member with its address.
    pub fn member_addresses(&self) -> Vec<(NodeId, Option<String>)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, self.peers.address(*id, Some(node))))
            .collect()
    }

    /// The local Raft metrics.
    pub fn metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Resolves when the Raft group has stopped on its own (a storage failure or a panic in
    /// it), with the reason: the replica must then stop serving.
    pub async fn failed(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(e) = &metrics.borrow().running_state {
                return e.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the Raft group stopped".into();
            }
        }
    }

    /// Stops the Raft group.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping raft");
        }
    }
}

/// Sends the backups a heartbeat whenever a commit index held back from them can go out (see
/// `flush`), so that they learn it without waiting for the next write or the next periodic
/// heartbeat. Ends when the replica's Raft stops (the sender lives in its log store), or when
/// aborted.
fn send_released_commits(
    raft: Raft<TypeConfig>,
    mut released: tokio::sync::watch::Receiver<u64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while released.changed().await.is_ok() {
            if raft.trigger().heartbeat().await.is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::snapshot_interval;

    /// Each replica waits between the interval and one and a half times it, and the first
    /// replicas of a group wait differently.
    #[test]
    fn snapshot_intervals_are_staggered_within_half_an_interval() {
        let intervals: Vec<u64> = (1..=5).map(|id| snapshot_interval(10_000, id)).collect();
        for i in &intervals {
            assert!((10_000..15_000).contains(i), "{intervals:?}");
        }
        let mut distinct = intervals.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), intervals.len(), "{intervals:?}");
        assert_eq!(snapshot_interval(0, 7), 1);
        assert_eq!(snapshot_interval(u64::MAX, 3), u64::MAX);
    }
}
