//! The gRPC services of the public API (`dialkv.v1`) over one replica's [`Node`].
//!
//! Each handler validates its request at the edge ([`crate::limits`]), so that nothing is
//! queued or written for a refused request, then reads from the store or submits a command to
//! the writer, and answers with a [`v1::ResponseHeader`] saying which level served it and the
//! session token advanced past it.
//!
//! While replication is not configured, a node is a cluster of one: every acknowledged write is
//! durable before its reply, and every read sees every acknowledged write, so every request is
//! served LINEARIZABLE whatever weaker level it asked for.

pub mod kv;
pub mod namespaces;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialkv_consistency::session_token::SessionToken;
use dialkv_proto::v1;

use crate::config::ReplicaId;
use crate::error::ServiceError;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::storage::store::{NamespaceMeta, Store};
use crate::storage::writer::Writer;
use crate::storage::{ReadTier, StorageError};

/// One replica's state shared by its services.
#[derive(Debug)]
pub struct Node {
    /// This replica's id.
    pub id: ReplicaId,
    /// The versioned keyspace.
    pub store: Arc<Store>,
    /// The single writer of the store.
    pub writer: Writer,
    /// Input limits.
    pub limits: Limits,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The longest wait for this replica to reach a session token.
    pub session_wait: Duration,
}

impl Node {
    /// Runs a handler, recording its latency and status code under `rpc`.
    pub async fn observe<T>(
        &self,
        rpc: &'static str,
        handler: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let started = Instant::now();
        let result = handler
            .await
            .map(tonic::Response::new)
            .map_err(tonic::Status::from);
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.metrics
            .observe_request(rpc, code, started.elapsed().as_secs_f64());
        result
    }

    /// Looks up a namespace named in a request, checking its name first.
    pub fn namespace(&self, field: &str, name: &str) -> Result<NamespaceMeta, ServiceError> {
        crate::limits::check_namespace_name(field, name)?;
        self.store
            .namespace(name)
            .ok_or_else(|| ServiceError::NotFound {
                reason: "NAMESPACE_NOT_FOUND",
                message: format!("namespace {name:?} does not exist"),
            })
    }

    /// Runs a read on the store: inline when it can be served from memory, else on the
    /// blocking pool, so the async workers never wait for the disk.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl Fn(&Store, ReadTier) -> Result<T, StorageError> + Send + Sync + 'static,
    ) -> Result<T, ServiceError> {
        match read(&self.store, ReadTier::Memory) {
            Err(StorageError::WouldBlock) => {}
            other => return other.map_err(ServiceError::from),
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || read(&store, ReadTier::Any))
            .await
            .map_err(|e| ServiceError::Unavailable {
                reason: "READ_FAILED",
                message: format!("the read task failed: {e}"),
                retry_after: None,
            })?
            .map_err(ServiceError::from)
    }

    /// Decodes the session of a request and waits (bounded) until this replica has applied
    /// what the session's guarantees need in `ns`. Returns the session's token.
    pub async fn admit_session(
        &self,
        session: Option<&v1::Session>,
        ns: &NamespaceMeta,
    ) -> Result<SessionToken, ServiceError> {
        let Some(session) = session else {
            return Ok(SessionToken::new());
        };
        let bytes = session
            .token
            .as_ref()
            .map(|t| &t.token[..])
            .unwrap_or_default();
        let token = SessionToken::decode(bytes).map_err(|e| {
            ServiceError::invalid(
                "session.token",
                "BAD_SESSION_TOKEN",
                format!("not a session token: {e}"),
            )
        })?;
        let g = session.guarantees.unwrap_or_default();
        let progress = token.progress(&ns.spec.name, u64::from(ns.id));
        let mut needed = 0;
        if g.read_your_writes {
            needed = needed.max(progress.write);
        }
        if g.monotonic_reads {
            needed = needed.max(progress.read);
        }
        if needed == 0 {
            return Ok(token);
        }
        let mut installed = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + self.session_wait;
        loop {
            let applied = self
                .store
                .namespace(&ns.spec.name)
                .map(|m| m.revision)
                .unwrap_or(0);
            if applied >= needed {
                return Ok(token);
            }
            match tokio::time::timeout_at(deadline, installed.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    return Err(ServiceError::Unavailable {
                        reason: "SESSION_BEHIND",
                        message: format!(
                            "replica {} has applied revision {applied} of namespace {:?}, behind the session's {needed}; try another replica",
                            self.id, ns.spec.name
                        ),
                        retry_after: Some(Duration::from_millis(100)),
                    })
                }
            }
        }
    }

    /// The header of a response served by this replica, with `token` as the session.
    pub fn header(&self, token: &SessionToken) -> Option<v1::ResponseHeader> {
        Some(v1::ResponseHeader {
            served_level: v1::ConsistencyLevel::Linearizable as i32,
            session: Some(v1::SessionToken {
                token: token.encode().into(),
            }),
            replica_id: self.id,
            lag_versions: 0,
            lag_ms: 0,
        })
    }
}

/// Converts a request id to the store's dedup key; `(0, 0)` and unset mean "not deduplicated".
pub fn request_key(id: Option<&v1::RequestId>) -> Option<crate::storage::store::RequestKey> {
    id.filter(|r| r.client_id != 0 || r.seq != 0)
        .map(|r| crate::storage::store::RequestKey {
            client_id: r.client_id,
            seq: r.seq,
        })
}

/// The version message of a revision (unset for revision 0: no version).
pub fn version(revision: u64) -> Option<v1::Version> {
    (revision != 0).then(|| v1::Version {
        revision,
        context: Default::default(),
    })
}
