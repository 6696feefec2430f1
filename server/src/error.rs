//! The errors the server's services answer with, named by what the caller should do.
//!
//! [`status`] is the one table that maps them to gRPC status codes with rich details
//! (`google.rpc.ErrorInfo` with a stable reason, `BadRequest` naming the field,
//! `RetryInfo` for retryable errors), as etcd's `rpctypes` does.

use std::time::Duration;

use tonic_types::{ErrorDetails, StatusExt};

use crate::replication::types::NodeId;
use crate::replication::ReplicaError;
use crate::storage::store::ApplyError;
use crate::storage::writer::WriteError;
use crate::storage::StorageError;

/// The `domain` of every `ErrorInfo` the server sends.
pub const ERROR_DOMAIN: &str = "dialkv";

/// A request failure, as the caller should act on it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or over a limit; fix it, do not retry it as is. Nothing was
    /// written.
    #[error("{field}: {message}")]
    InvalidArgument {
        field: String,
        reason: &'static str,
        message: String,
    },
    /// What the request names does not exist.
    #[error("{message}")]
    NotFound {
        reason: &'static str,
        message: String,
    },
    /// What the request would create exists already.
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
    },
    /// The system is not in a state where the request can work; retrying it as is fails the
    /// same way.
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    /// The server cannot serve now (overloaded, shutting down, storage failing); retry later,
    /// perhaps elsewhere. Nothing was written.
    #[error("{message}")]
    Unavailable {
        reason: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// This replica is not the primary and did not forward the request; retry at the primary
    /// named in the `ErrorInfo` metadata (`leader_id`, `leader_address`) when one is known.
    /// Nothing was written.
    #[error("{message}")]
    NotLeader {
        leader: Option<(NodeId, String)>,
        message: String,
    },
    /// The transaction was aborted (a conflict, its age, or a primary change); nothing of it
    /// was written. Retry the whole transaction.
    #[error("{message}")]
    Aborted {
        reason: &'static str,
        message: String,
    },
    /// A transaction's commit found that `key`, which it read, changed after its snapshot;
    /// nothing was written. Retry the whole transaction. The key is in the `ErrorInfo`
    /// metadata (`key`, and `key_hex` for keys that are not UTF-8).
    #[error("{message}")]
    Conflict { key: bytes::Bytes, message: String },
    /// A write's outcome is unknown: it may or may not take effect. Check before retrying
    /// with a new request id (a retry with the same request id is safe).
    #[error("{message}")]
    Indeterminate {
        reason: &'static str,
        message: String,
    },
    /// The reply of the primary to a forwarded request, passed on unchanged.
    #[error("{0}")]
    Forwarded(tonic::Status),
    /// A limit of the server is reached; retry later. Nothing was written.
    #[error("{message}")]
    ResourceExhausted {
        reason: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
}

impl ServiceError {
    /// An invalid argument naming `field`.
    pub fn invalid(
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ServiceError::InvalidArgument {
            field: field.into(),
            reason,
            message: message.into(),
        }
    }

    /// The stable reason string sent in `ErrorInfo`.
    pub fn reason(&self) -> &'static str {
        match self {
            ServiceError::InvalidArgument { reason, .. }
            | ServiceError::NotFound { reason, .. }
            | ServiceError::AlreadyExists { reason, .. }
            | ServiceError::FailedPrecondition { reason, .. }
            | ServiceError::Unavailable { reason, .. }
            | ServiceError::Indeterminate { reason, .. }
            | ServiceError::Aborted { reason, .. }
            | ServiceError::ResourceExhausted { reason, .. } => reason,
            ServiceError::NotLeader { .. } => "NOT_LEADER",
            ServiceError::Conflict { .. } => "TRANSACTION_CONFLICT",
            ServiceError::Forwarded(_) => "FORWARDED",
        }
    }
}

/// Maps a service error to its gRPC status: the one table of codes.
pub fn status(err: ServiceError) -> tonic::Status {
    if let ServiceError::Forwarded(status) = err {
        return status;
    }
    let mut details = ErrorDetails::new();
    let mut metadata = std::collections::HashMap::new();
    match &err {
        ServiceError::NotLeader {
            leader: Some((id, addr)),
            ..
        } => {
            metadata.insert("leader_id".to_string(), id.to_string());
            metadata.insert("leader_address".to_string(), addr.clone());
        }
        ServiceError::Conflict { key, .. } => match std::str::from_utf8(key) {
            Ok(k) => {
                metadata.insert("key".to_string(), k.to_string());
            }
            Err(_) => {
                metadata.insert("key_hex".to_string(), hex_of(key));
            }
        },
        _ => {}
    }
    details.set_error_info(err.reason(), ERROR_DOMAIN, metadata);
    let (code, message) = match &err {
        ServiceError::InvalidArgument { field, message, .. } => {
            details.add_bad_request_violation(field.clone(), message.clone());
            (tonic::Code::InvalidArgument, err.to_string())
        }
        ServiceError::NotFound { .. } => (tonic::Code::NotFound, err.to_string()),
        ServiceError::AlreadyExists { .. } => (tonic::Code::AlreadyExists, err.to_string()),
        ServiceError::FailedPrecondition { .. } => {
            (tonic::Code::FailedPrecondition, err.to_string())
        }
        ServiceError::Unavailable { retry_after, .. } => {
            details.set_retry_info(*retry_after);
            (tonic::Code::Unavailable, err.to_string())
        }
        ServiceError::Forwarded(_) => unreachable!("returned above"),
        ServiceError::NotLeader { .. } => {
            details.set_retry_info(Some(Duration::from_millis(50)));
            (tonic::Code::Unavailable, err.to_string())
        }
        ServiceError::Indeterminate { .. } => (tonic::Code::DeadlineExceeded, err.to_string()),
        ServiceError::Aborted { .. } | ServiceError::Conflict { .. } => {
            (tonic::Code::Aborted, err.to_string())
        }
        ServiceError::ResourceExhausted { retry_after, .. } => {
            details.set_retry_info(*retry_after);
            (tonic::Code::ResourceExhausted, err.to_string())
        }
    };
    tonic::Status::with_error_details(code, message, details)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl From<ServiceError> for tonic::Status {
    fn from(err: ServiceError) -> Self {
        status(err)
    }
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        ServiceError::Unavailable {
            reason: "STORAGE_FAILURE",
            message: format!("storage failed: {e}"),
            retry_after: Some(Duration::from_millis(500)),
        }
    }
}

impl From<ApplyError> for ServiceError {
    fn from(e: ApplyError) -> Self {
        let message = e.to_string();
        match e {
            ApplyError::NamespaceNotFound(_) => ServiceError::NotFound {
                reason: "NAMESPACE_NOT_FOUND",
                message,
            },
            ApplyError::NamespaceExists(_) => ServiceError::AlreadyExists {
                reason: "NAMESPACE_EXISTS",
                message,
            },
            ApplyError::DefaultNamespace => ServiceError::FailedPrecondition {
                reason: "DEFAULT_NAMESPACE",
                message,
            },
            ApplyError::NamespaceIdsExhausted => ServiceError::ResourceExhausted {
                reason: "NAMESPACE_IDS_EXHAUSTED",
                message,
                retry_after: None,
            },
            ApplyError::TransactionUnknown => ServiceError::Aborted {
                reason: "TRANSACTION_UNKNOWN",
                message,
            },
            ApplyError::RequestIdReused { .. } => {
                ServiceError::invalid("request_id", "REQUEST_ID_REUSED", message)
            }
            ApplyError::Storage(e) => e.into(),
        }
    }
}

impl From<ReplicaError> for ServiceError {
    fn from(e: ReplicaError) -> Self {
        let message = e.to_string();
        match e {
            ReplicaError::NotLeader { leader, .. } => ServiceError::NotLeader { leader, message },
            ReplicaError::Refused(e) => e.into(),
            ReplicaError::CommitTimeout(_) => ServiceError::Indeterminate {
                reason: "COMMIT_TIMEOUT",
                message,
            },
            ReplicaError::NoQuorum(_) => ServiceError::Unavailable {
                reason: "NO_QUORUM",
                message,
                retry_after: Some(Duration::from_millis(200)),
            },
            ReplicaError::Membership(_) => ServiceError::FailedPrecondition {
                reason: "MEMBERSHIP_CHANGE_REFUSED",
                message,
            },
            ReplicaError::Stopped(_) => ServiceError::Unavailable {
                reason: "REPLICATION_STOPPED",
                message,
                retry_after: Some(Duration::from_millis(500)),
            },
        }
    }
}

impl From<WriteError> for ServiceError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Storage(e) => e.into(),
            WriteError::Stopped => ServiceError::Unavailable {
                reason: "SHUTTING_DOWN",
                message: "the server is shutting down".into(),
                retry_after: Some(Duration::from_millis(100)),
            },
        }
    }
}
