//! The gRPC services of the public API (`dialkv.v1`) over one replica's [`Node`].
//!
//! Each handler validates its request at the edge ([`crate::limits`]), so that nothing is
//! queued or written for a refused request, then reads from the store or submits a command to
//! the writer, and answers with a [`v1::ResponseHeader`] saying which level served it and the
//! session token advanced past it.
//!
//! Writes go through the replica's Raft log. A replica that is not the primary forwards writes
//! and LINEARIZABLE reads to the primary (once: a forwarded request is never forwarded again)
//! and passes its reply on; with no primary known it answers `UNAVAILABLE` / `NOT_LEADER`.
//! Other reads are served where they arrive, once the replica meets the level (see
//! [`Node::admit_read`]).

pub mod cluster;
pub mod kv;
pub mod namespaces;
pub mod quorum;
pub mod txn;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialkv_consistency::session_token::SessionToken;
use dialkv_proto::v1;

use crate::config::ReplicaId;
use crate::error::ServiceError;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::replication::Replica;
use crate::storage::store::{Command, NamespaceMeta, Outcome, Store};
use crate::storage::{ReadTier, StorageError};

/// Metadata key marking a request forwarded by a replica to the primary.
pub const FORWARDED: &str = "dialkv-forwarded";

/// One replica's state shared by its services.
#[derive(Debug)]
pub struct Node {
    /// This replica's id.
    pub id: ReplicaId,
    /// The versioned keyspace.
    pub store: Arc<Store>,
    /// The Raft group (primary-backup namespaces and the namespace catalog).
    pub replica: Replica,
    /// The leaderless protocol (quorum namespaces).
    pub quorum: Arc<crate::quorum::Quorum>,
    /// Admission of writes: a permit per write in flight; none left means overload.
    pub write_permits: Arc<tokio::sync::Semaphore>,
    /// Open interactive transactions (at the primary).
    pub txns: txn::Transactions,
    /// How many revisions of history the store keeps readable (transaction snapshots must
    /// stay within it).
    pub retain_revisions: u64,
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

    /// Orders a command through the log, if a write permit is free.
    pub async fn write(&self, command: Command) -> Result<Outcome, ServiceError> {
        let _permit = self
            .write_permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| ServiceError::ResourceExhausted {
                reason: "WRITE_QUEUE_FULL",
                message: format!(
                    "replica {} has too many writes in flight; retry shortly",
                    self.id
                ),
                retry_after: Some(Duration::from_millis(50)),
            })?;
        Ok(self.replica.write(command).await?)
    }

    /// Decodes the session of a request and waits (bounded) until this replica has applied
    /// what the session needs in `ns`: with `whole_session`, everything the session has read
    /// or written; else what its guarantees (read-your-writes, monotonic reads) need.
    /// Returns the session's token.
    pub async fn admit_session(
        &self,
        session: Option<&v1::Session>,
        ns: &NamespaceMeta,
        whole_session: bool,
    ) -> Result<SessionToken, ServiceError> {
        let Some(session) = session else {
            return Ok(SessionToken::new());
        };
        let token = self.decode_token(session)?;
        let g = session.guarantees.unwrap_or_default();
        let progress = token.progress(&ns.spec.name, u64::from(ns.id));
        let mut needed = 0;
        if whole_session {
            needed = progress.read.max(progress.write);
        }
        if g.read_your_writes {
            needed = needed.max(progress.write);
        }
        if g.monotonic_reads {
            needed = needed.max(progress.read);
        }
        if needed == 0 {
            return Ok(token);
        }
        let mut applied = self.store.subscribe();
        let caught_up = tokio::time::timeout(self.session_wait, applied.wait_for(|a| *a >= needed))
            .await
            .is_ok_and(|r| r.is_ok());
        match caught_up {
            true => Ok(token),
            false => Err(ServiceError::Unavailable {
                reason: "SESSION_BEHIND",
                message: format!(
                    "replica {} has applied revision {}, behind the session's {needed} in namespace {:?}; try another replica",
                    self.id,
                    self.store.applied(),
                    ns.spec.name
                ),
                retry_after: Some(Duration::from_millis(100)),
            }),
        }
    }

    /// Decodes the token of a request's session.
    pub fn decode_token(&self, session: &v1::Session) -> Result<SessionToken, ServiceError> {
        let bytes = session
            .token
            .as_ref()
            .map(|t| &t.token[..])
            .unwrap_or_default();
        SessionToken::decode(bytes).map_err(|e| {
            ServiceError::invalid(
                "session.token",
                "BAD_SESSION_TOKEN",
                format!("not a session token: {e}"),
            )
        })
    }

    /// Admits a read at `level` (already validated) of namespace `ns`: waits for what the
    /// level and the session need, and returns the level served and the session token.
    ///
    /// - LINEARIZABLE: a ReadIndex barrier at the primary (elsewhere NOT_LEADER, and the
    ///   caller forwards);
    /// - SEQUENTIAL, and CAUSAL served as SEQUENTIAL: this replica has applied everything the
    ///   session has seen, so the session's order holds on any replica;
    /// - BOUNDED_STALENESS: the session's guarantees, and this replica's known lag within the
    ///   bound (else UNAVAILABLE / STALENESS_BOUND_EXCEEDED: try another replica);
    /// - EVENTUAL: the session's guarantees only.
    pub async fn admit_read(
        &self,
        level: v1::ConsistencyLevel,
        consistency: Option<&v1::Consistency>,
        session: Option<&v1::Session>,
        ns: &NamespaceMeta,
    ) -> Result<(v1::ConsistencyLevel, SessionToken), ServiceError> {
        use v1::ConsistencyLevel as L;
        match level {
            L::Linearizable | L::Unspecified => {
                let token = self.admit_session(session, ns, false).await?;
                self.replica.linearizable_barrier().await?;
                Ok((L::Linearizable, token))
            }
            L::Sequential | L::Causal => {
                Ok((L::Sequential, self.admit_session(session, ns, true).await?))
            }
            L::BoundedStaleness => {
                let token = self.admit_session(session, ns, false).await?;
                let c = consistency.cloned().unwrap_or_default();
                let (versions, time) = self.replica.lag();
                let within_time = c.max_staleness_ms == 0
                    || time.is_some_and(|t| t.as_millis() as u64 <= c.max_staleness_ms);
                let within_versions =
                    c.max_staleness_versions == 0 || versions <= c.max_staleness_versions;
                if !(within_time && within_versions) {
                    let known = time.map_or("an unknown time".to_string(), |t| {
                        format!("{} ms", t.as_millis())
                    });
                    return Err(ServiceError::Unavailable {
                        reason: "STALENESS_BOUND_EXCEEDED",
                        message: format!(
                            "replica {} is {versions} versions and {known} behind the primary, over the bound; try another replica",
                            self.id
                        ),
                        retry_after: Some(Duration::from_millis(50)),
                    });
                }
                Ok((L::BoundedStaleness, token))
            }
            L::Eventual => Ok((L::Eventual, self.admit_session(session, ns, false).await?)),
        }
    }

    /// The header of a response served by this replica at `level`, with `token` as the
    /// session and this replica's known lag (`lag_ms` is `u64::MAX` when unknown).
    pub fn header(
        &self,
        level: v1::ConsistencyLevel,
        token: &SessionToken,
    ) -> Option<v1::ResponseHeader> {
        self.header_with_lag(level, token, self.replica.lag())
    }

    /// The header of a response served at `level`, with `token` and a known lag (versions,
    /// and time when known).
    pub fn header_with_lag(
        &self,
        level: v1::ConsistencyLevel,
        token: &SessionToken,
        (lag_versions, lag): (u64, Option<Duration>),
    ) -> Option<v1::ResponseHeader> {
        Some(v1::ResponseHeader {
            served_level: level as i32,
            session: Some(v1::SessionToken {
                token: token.encode().into(),
            }),
            replica_id: self.id,
            lag_versions,
            lag_ms: lag.map_or(u64::MAX, |d| d.as_millis() as u64),
        })
    }

    /// A channel to the replica at `addr` (the primary, to forward to).
    pub fn channel_to(&self, addr: &str) -> tonic::transport::Channel {
        self.replica.peers().channel(addr)
    }
}

/// Whether a request was forwarded by another replica (and so must not be forwarded again).
pub fn forwarded<T>(request: &tonic::Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED)
}

/// A request to forward to the primary: marked as forwarded, with a deadline.
pub fn forward_request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request.set_timeout(timeout);
    request
}

/// Where to forward a request refused with NOT_LEADER: the primary's address, unless the
/// request was itself forwarded or no primary is known.
pub fn forward_target(err: &ServiceError, already_forwarded: bool) -> Option<String> {
    match err {
        ServiceError::NotLeader {
            leader: Some((_, addr)),
            ..
        } if !already_forwarded => Some(addr.clone()),
        _ => None,
    }
}

/// Maps the failure of a request forwarded to the primary: the primary's own answer (with
/// dialkv's `ErrorInfo`) passes on unchanged; a connection that could not be made means
/// nothing was sent, so nothing was written; any other transport failure leaves a write's
/// outcome unknown.
pub fn forward_error(status: tonic::Status, write: bool) -> ServiceError {
    use tonic_types::StatusExt;
    let from_primary = status
        .get_details_error_info()
        .is_some_and(|i| i.domain == crate::error::ERROR_DOMAIN);
    if from_primary {
        return ServiceError::Forwarded(status);
    }
    let not_sent =
        status.code() == tonic::Code::Unavailable && status.message().contains("connect");
    if write && !not_sent {
        return ServiceError::Indeterminate {
            reason: "FORWARD_INTERRUPTED",
            message: format!("forwarding to the primary failed after sending: {}; the write may or may not take effect", status.message()),
        };
    }
    ServiceError::Unavailable {
        reason: "FORWARD_FAILED",
        message: format!(
            "the primary could not be reached ({}); nothing was written, retry",
            status.message()
        ),
        retry_after: Some(Duration::from_millis(100)),
    }
}

/// How long a forwarded request may take at the primary.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

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
