//! The Raft type configuration of dialkv: what a log entry carries and what applying it
//! returns.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::storage::store::{ApplyError, Command, Outcome};

/// A replica's id, unique within a cluster.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The Raft types of dialkv.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The application payload of a log entry: a command and the primary's clock when it was
/// proposed, so that every replica stamps it with the same time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The change.
    pub command: Command,
    /// Unix milliseconds on the primary when it proposed the entry.
    pub at_ms: u64,
}

/// What applying an entry produced: its outcome, or why it was refused (a refusal is a normal,
/// replicated result: every replica refuses the same entry the same way).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A blank or membership entry.
    None,
    /// The command's outcome.
    Applied(Outcome),
    /// The command was refused; nothing of it was written.
    Refused(Refusal),
    /// The responses of a [`Command::Batch`], one per
    /// command in order.
    Batch(Vec<Response>),
}

/// A replicated refusal, mirroring [`ApplyError`] without the storage failures (which stop
/// the replica instead of producing a result).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// See [`ApplyError::NamespaceNotFound`].
    NamespaceNotFound(String),
    /// See [`ApplyError::NamespaceExists`].
    NamespaceExists(String),
    /// See [`ApplyError::DefaultNamespace`].
    DefaultNamespace,
    /// See [`ApplyError::NamespaceIdsExhausted`].
    NamespaceIdsExhausted,
    /// See [`ApplyError::TransactionUnknown`].
    TransactionUnknown,
    /// See [`ApplyError::RequestIdReused`].
    RequestIdReused {
        /// The client.
        client_id: u64,
        /// The request number.
        seq: u64,
    },
}

impl From<Refusal> for ApplyError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NamespaceNotFound(n) => ApplyError::NamespaceNotFound(n),
            Refusal::NamespaceExists(n) => ApplyError::NamespaceExists(n),
            Refusal::DefaultNamespace => ApplyError::DefaultNamespace,
            Refusal::NamespaceIdsExhausted => ApplyError::NamespaceIdsExhausted,
            Refusal::TransactionUnknown => ApplyError::TransactionUnknown,
            Refusal::RequestIdReused { client_id, seq } => {
                ApplyError::RequestIdReused { client_id, seq }
            }
        }
    }
}
