//! Group commit of proposals at the primary: writes that arrive while earlier ones are being
//! committed share one log entry.
//!
//! Every entry costs an fsync on each replica and its own Raft messages, so proposing every
//! write as its own entry caps the cluster at about one write per fsync however many clients
//! wait (when openraft 0.9 still synced the primary's append before replicating it, that was
//! the measured ceiling: 0.25× etcd's puts). The proposer keeps one entry between proposal
//! and apply; writes arriving meanwhile queue, and the next entry takes all of them (up to
//! [`MAX_BATCH_COMMANDS`] commands and about [`MAX_BATCH_BYTES`]) as one [`Command::Batch`]
//! entry. A lone write is proposed at once as a plain entry, so one client
//! waits for nothing. The state machine gives each command of a batch its own revision and
//! outcome; a refusal of one command does not touch the others.
//!
//! The queue is unbounded here because it is bounded upstream: a replica admits at most
//! `--write-queue` writes at a time (`WRITE_QUEUE_FULL` past that).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot};

use super::types::{Request, Response, TypeConfig};
use super::ReplicaError;
use crate::storage::store::Command;

/// Commands in one entry, at most.
pub(super) const MAX_BATCH_COMMANDS: usize = 1024;
/// Encoded bytes of the commands of one batch entry, at most (a single larger command goes
/// alone), so that openraft's AppendEntries batches stay within the Raft message limit.
pub(super) const MAX_BATCH_BYTES: usize = 1 << 20;

/// Why a proposal did not produce a response.
#[derive(Debug)]
pub(super) enum Failure {
    /// This replica is not (or no longer) the primary.
    NotLeader,
    /// Anything else, as the replica reports it.
    Other(ReplicaError),
}

impl Failure {
    /// A copy for each write of the failed entry.
    fn duplicate(&self) -> Failure {
        match self {
            Failure::NotLeader => Failure::NotLeader,
            Failure::Other(e) => Failure::Other(e.duplicate()),
        }
    }
}

/// A write waiting to be proposed.
#[derive(Debug)]
pub(super) struct Proposal {
    command: Command,
    bytes: usize,
    reply: oneshot::Sender<Result<Response, Failure>>,
}

impl Proposal {
    /// `command`, answered on `reply`.
    pub(super) fn new(
        command: Command,
        reply: oneshot::Sender<Result<Response, Failure>>,
    ) -> Proposal {
        let bytes = bincode::serialized_size(&command).map_or(usize::MAX, |n| n as usize);
        Proposal {
            command,
            bytes,
            reply,
        }
    }
}

/// Starts the proposer of `raft`; a proposal whose entry does not apply within `timeout` is
/// answered with [`ReplicaError::CommitTimeout`]. It stops when every sender is dropped.
pub(super) fn start(raft: Raft<TypeConfig>, timeout: Duration) -> mpsc::UnboundedSender<Proposal> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(raft, rx, timeout));
    tx
}

/// Proposes one entry at a time: the next takes everything that queued while the last one
/// committed. Measured with 64 clients on three replicas sharing two cores and a disk
/// (`dialkv-bench`, same runs as etcd), keeping more entries in flight lost: 1 gave 1.10×
/// etcd's puts, 2 gave 0.95×, 4 gave 0.87×, 8 gave 0.79× — overlapping entries costs more
/// fsyncs and more per-entry work than it saves in waiting.
async fn run(
    raft: Raft<TypeConfig>,
    mut queue: mpsc::UnboundedReceiver<Proposal>,
    timeout: Duration,
) {
    let mut carried: Option<Proposal> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        if first.reply.is_closed() {
            continue;
        }
        let (batch, rest) = gather(first, &mut queue);
        carried = rest;
        propose(&raft, batch, timeout).await;
    }
}

/// `first` and whatever is queued behind it, within the batch limits; the proposal that would
/// exceed the byte limit is returned to start the next batch.
fn gather(
    first: Proposal,
    queue: &mut mpsc::UnboundedReceiver<Proposal>,
) -> (Vec<Proposal>, Option<Proposal>) {
    let mut bytes = first.bytes;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH_COMMANDS {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        if next.reply.is_closed() {
            // Its caller gave up (and reported the outcome unknown): not proposing it is one
            // of the outcomes it allowed, and spares an overloaded primary the work.
            continue;
        }
        if bytes.saturating_add(next.bytes) > MAX_BATCH_BYTES {
            return (batch, Some(next));
        }
        bytes += next.bytes;
        batch.push(next);
    }
    (batch, None)
}

/// Proposes `batch` as one entry and answers each of its writes.
async fn propose(raft: &Raft<TypeConfig>, batch: Vec<Proposal>, timeout: Duration) {
    let (commands, mut replies): (Vec<Command>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    let command = match <[Command; 1]>::try_from(commands) {
        Ok([one]) => one,
        Err(many) => Command::Batch(many),
    };
    let request = Request {
        command,
        at_ms: now_ms(),
    };
    let outcome = match tokio::time::timeout(timeout, raft.client_write(request)).await {
        Err(_) => Err(Failure::Other(ReplicaError::CommitTimeout(timeout))),
        Ok(Ok(reply)) => Ok(reply.data),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
            Err(Failure::NotLeader)
        }
        Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
            Err(Failure::Other(ReplicaError::Membership(e.to_string())))
        }
        Ok(Err(RaftError::Fatal(e))) => Err(Failure::Other(ReplicaError::Stopped(e.to_string()))),
    };
    match outcome {
        Ok(response) if replies.len() == 1 => {
            if let Some(reply) = replies.pop() {
                let _ = reply.send(Ok(response));
            }
        }
        Ok(Response::Batch(responses)) if responses.len() == replies.len() => {
            for (reply, response) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(response));
            }
        }
        Ok(_) => {
            for reply in replies {
                let _ = reply.send(Err(Failure::Other(ReplicaError::Stopped(
                    "an entry applied with a different number of outcomes than commands".into(),
                ))));
            }
        }
        Err(failure) => {
            for reply in replies {
                let _ = reply.send(Err(failure.duplicate()));
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
