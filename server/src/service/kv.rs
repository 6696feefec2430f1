//! The `dialkv.v1.KV` service: Get, Put, Delete, Scan and CompareAndSet.

use std::sync::Arc;

use bytes::Bytes;
use dialkv_consistency::session_token::SessionToken;
use dialkv_proto::v1::{self, kv_client::KvClient, kv_server::Kv};
use tonic::{Request, Response, Status};

use super::txn;
use super::{
    forward_error, forward_request, forward_target, forwarded, request_key, version, Node,
    FORWARD_TIMEOUT,
};
use crate::error::ServiceError;
use crate::limits::{self, check_consistency, MAX_SCAN_PAGE_BYTES};
use crate::storage::store::txn::{Commit, OneShot, Op, Target};
use crate::storage::store::{Command, Condition, NamespaceMeta, Outcome, PageLimits};

/// The KV service of one replica.
#[derive(Clone, Debug)]
pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// Version byte of the scan continuation format: `0x01 ‖ last key returned`.
pub(crate) const CONTINUATION_V1: u8 = 1;

fn is_quorum(ns: &NamespaceMeta) -> bool {
    ns.spec.protocol == v1::Protocol::Quorum as i32
}

/// Forwards a request refused with NOT_LEADER to the primary, once, and passes its reply on.
macro_rules! or_forward {
    ($self:expr, $result:expr, $forwarded:expr, $req:expr, $method:ident, $write:expr) => {
        match $result {
            Err(e) => match forward_target(&e, $forwarded) {
                Some(addr) => {
                    let mut client = KvClient::new($self.node.channel_to(&addr))
                        .max_decoding_message_size(usize::MAX)
                        .max_encoding_message_size(usize::MAX);
                    client
                        .$method(forward_request($req, FORWARD_TIMEOUT))
                        .await
                        .map(Response::into_inner)
                        .map_err(|s| forward_error(s, $write))
                }
                None => Err(e),
            },
            ok => ok,
        }
    };
}

impl KvService {
    /// The snapshot of open transaction `id` for a read, at the primary that holds it; a
    /// snapshot behind the retained history aborts the transaction.
    fn txn_snapshot(&self, id: u64, ns: &NamespaceMeta) -> Result<u64, ServiceError> {
        let n = &self.node;
        if !n.replica.is_leader() {
            return Err(n.replica.not_leader().into());
        }
        let txn = n.txns.get(id, &ns.spec.name, false)?;
        if n.store.applied().saturating_sub(txn.snapshot) > n.retain_revisions {
            n.txns.abort(id);
            return Err(ServiceError::Aborted {
                reason: "SNAPSHOT_TOO_OLD",
                message: format!(
                    "transaction {id}'s snapshot (revision {}) is more than {} revisions behind; retry it",
                    txn.snapshot, n.retain_revisions
                ),
            });
        }
        Ok(txn.snapshot)
    }

    /// Admits a read: inside transaction `txn` (when not 0) at its snapshot, else at `level`.
    /// Returns the level served, the session token and the revision to read at (`None`: the
    /// newest).
    async fn admit(
        &self,
        txn: u64,
        level: v1::ConsistencyLevel,
        consistency: Option<&v1::Consistency>,
        session: Option<&v1::Session>,
        ns: &NamespaceMeta,
    ) -> Result<(v1::ConsistencyLevel, SessionToken, Option<u64>), ServiceError> {
        if txn != 0 {
            let snapshot = self.txn_snapshot(txn, ns)?;
            return Ok((
                v1::ConsistencyLevel::Linearizable,
                SessionToken::new(),
                Some(snapshot),
            ));
        }
        let (served, token) = self
            .node
            .admit_read(level, consistency, session, ns)
            .await?;
        Ok((served, token, None))
    }

    fn primary_backup(ns: &NamespaceMeta) -> Result<(), ServiceError> {
        if is_quorum(ns) {
            return Err(ServiceError::FailedPrecondition {
                reason: "TRANSACTIONS_NEED_PRIMARY_BACKUP",
                message: format!(
                    "namespace {:?} is replicated by the quorum protocol; transactions need a primary-backup namespace",
                    ns.spec.name
                ),
            });
        }
        Ok(())
    }

    async fn begin_here(&self, req: &v1::BeginRequest) -> Result<v1::BeginResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        Self::primary_backup(&ns)?;
        if n.retain_revisions == 0 {
            return Err(ServiceError::FailedPrecondition {
                reason: "NO_HISTORY_RETAINED",
                message: "interactive transactions read at a snapshot and need history: start the replicas with --retain-revisions above 0".into(),
            });
        }
        let token = n.admit_session(req.session.as_ref(), &ns, false).await?;
        n.replica.linearizable_barrier().await?;
        let snapshot = n.store.applied();
        let transaction = n.txns.begin(&ns.spec.name, snapshot)?;
        Ok(v1::BeginResponse {
            header: n.header(v1::ConsistencyLevel::Linearizable, &token),
            transaction,
            snapshot_revision: snapshot,
            max_age_ms: n.txns.max_age.as_millis() as u64,
        })
    }

    async fn commit_here(
        &self,
        req: &v1::CommitRequest,
    ) -> Result<v1::CommitResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        Self::primary_backup(&ns)?;
        let reads = req.reads.len() + req.ranges.len();
        if reads > txn::MAX_TXN_KEYS || req.writes.len() > txn::MAX_TXN_KEYS {
            return Err(ServiceError::invalid(
                if reads > txn::MAX_TXN_KEYS {
                    "reads"
                } else {
                    "writes"
                },
                "TRANSACTION_TOO_LARGE",
                format!(
                    "a transaction may read at most {} keys and ranges and write at most {} keys",
                    txn::MAX_TXN_KEYS,
                    txn::MAX_TXN_KEYS
                ),
            ));
        }
        let mut bytes = 0usize;
        for (i, r) in req.reads.iter().enumerate() {
            n.limits.check_key(&format!("reads[{i}].key"), &r.key)?;
            bytes += r.key.len();
        }
        for (i, r) in req.ranges.iter().enumerate() {
            n.limits
                .check_key_bound(&format!("ranges[{i}].start_key"), &r.start_key)?;
            n.limits
                .check_key_bound(&format!("ranges[{i}].end_key"), &r.end_key)?;
            bytes += r.start_key.len() + r.end_key.len();
        }
        for (i, w) in req.writes.iter().enumerate() {
            n.limits.check_key(&format!("writes[{i}].key"), &w.key)?;
            n.limits
                .check_value(&format!("writes[{i}].value"), &w.value)?;
            bytes += w.key.len() + w.value.len();
        }
        if bytes > txn::MAX_TXN_BYTES {
            return Err(ServiceError::invalid(
                "writes",
                "TRANSACTION_TOO_LARGE",
                format!(
                    "{bytes} bytes of keys and values is over the limit of {} bytes",
                    txn::MAX_TXN_BYTES
                ),
            ));
        }
        if !n.replica.is_leader() {
            return Err(n.replica.not_leader().into());
        }
        let token = n.admit_session(req.session.as_ref(), &ns, false).await?;
        let request = request_key(req.request_id.as_ref());
        let snapshot = match n.txns.get(req.transaction, &ns.spec.name, true) {
            Ok(t) => Some(t.snapshot),
            // A retried commit: only its first outcome can answer it.
            Err(ServiceError::Aborted {
                reason: "TRANSACTION_UNKNOWN",
                ..
            }) if request.is_some() => None,
            Err(e) => return Err(e),
        };
        if snapshot.is_some() && req.writes.is_empty() {
            // Read-only: its reads are the state at its snapshot, taken after a ReadIndex
            // barrier inside the transaction's lifetime, so it is strict serializable as is.
            return Ok(v1::CommitResponse {
                header: n.header(v1::ConsistencyLevel::Linearizable, &token),
                version: None,
            });
        }
        let commit = Commit {
            ns: ns.spec.name.clone(),
            snapshot,
            reads: req
                .reads
                .iter()
                .map(|r| (r.key.clone(), r.revision))
                .collect(),
            ranges: req
                .ranges
                .iter()
                .map(|r| (r.start_key.clone(), r.end_key.clone()))
                .collect(),
            writes: req
                .writes
                .iter()
                .map(|w| (w.key.clone(), (!w.delete).then(|| w.value.clone())))
                .collect(),
            request,
        };
        match n.write(Command::Commit(commit)).await? {
            Outcome::Committed { revision, conflict: None } => {
                let mut token = token;
                if revision != 0 {
                    token.observe_write(&ns.spec.name, u64::from(ns.id), revision);
                }
                Ok(v1::CommitResponse { header: n.header(v1::ConsistencyLevel::Linearizable, &token), version: version(revision) })
            }
            Outcome::Committed { conflict: Some(key), .. } => Err(ServiceError::Conflict {
                message: format!(
                    "key {} changed after the transaction's snapshot; nothing was written, retry the transaction",
                    String::from_utf8_lossy(&key)
                ),
                key,
            }),
            other => unreachable!("a commit command has a committed outcome: {other:?}"),
        }
    }

    async fn abort_here(&self, req: &v1::AbortRequest) -> Result<v1::AbortResponse, ServiceError> {
        let n = &self.node;
        n.namespace("namespace", &req.namespace)?;
        if !n.replica.is_leader() {
            return Err(n.replica.not_leader().into());
        }
        n.txns.abort(req.transaction);
        Ok(v1::AbortResponse {})
    }

    async fn txn_here(&self, req: &v1::TxnRequest) -> Result<v1::TxnResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        Self::primary_backup(&ns)?;
        for (field, len) in [
            ("compares", req.compares.len()),
            ("success", req.success.len()),
            ("failure", req.failure.len()),
        ] {
            if len > txn::MAX_ONESHOT_OPS {
                return Err(ServiceError::invalid(
                    field,
                    "TRANSACTION_TOO_LARGE",
                    format!(
                        "{len} entries is over the limit of {}",
                        txn::MAX_ONESHOT_OPS
                    ),
                ));
            }
        }
        let mut bytes = 0usize;
        let mut compares = Vec::with_capacity(req.compares.len());
        for (i, c) in req.compares.iter().enumerate() {
            n.limits.check_key(&format!("compares[{i}].key"), &c.key)?;
            let target = match &c.target {
                Some(v1::compare::Target::ValueEquals(v)) => {
                    n.limits
                        .check_value(&format!("compares[{i}].value_equals"), v)?;
                    bytes += v.len();
                    Target::ValueEquals(v.clone())
                }
                Some(v1::compare::Target::RevisionEquals(r)) => Target::RevisionEquals(*r),
                Some(v1::compare::Target::Exists(e)) => Target::Exists(*e),
                None => {
                    return Err(ServiceError::invalid(
                        format!("compares[{i}].target"),
                        "COMPARE_TARGET_MISSING",
                        "is required: one of value_equals, revision_equals or exists",
                    ))
                }
            };
            bytes += c.key.len();
            compares.push((c.key.clone(), target));
        }
        let mut ops = |field: &str, list: &[v1::TxnOp]| -> Result<Vec<Op>, ServiceError> {
            let mut out = Vec::with_capacity(list.len());
            for (i, op) in list.iter().enumerate() {
                out.push(match &op.op {
                    Some(v1::txn_op::Op::Put(p)) => {
                        n.limits
                            .check_key(&format!("{field}[{i}].put.key"), &p.key)?;
                        n.limits
                            .check_value(&format!("{field}[{i}].put.value"), &p.value)?;
                        bytes += p.key.len() + p.value.len();
                        Op::Put(p.key.clone(), p.value.clone())
                    }
                    Some(v1::txn_op::Op::Delete(d)) => {
                        n.limits
                            .check_key(&format!("{field}[{i}].delete.key"), &d.key)?;
                        bytes += d.key.len();
                        Op::Delete(d.key.clone())
                    }
                    Some(v1::txn_op::Op::Get(g)) => {
                        n.limits
                            .check_key(&format!("{field}[{i}].get.key"), &g.key)?;
                        Op::Get(g.key.clone())
                    }
                    None => {
                        return Err(ServiceError::invalid(
                            format!("{field}[{i}].op"),
                            "TXN_OP_MISSING",
                            "is required: one of put, delete or get",
                        ))
                    }
                });
            }
            Ok(out)
        };
        let success = ops("success", &req.success)?;
        let failure = ops("failure", &req.failure)?;
        if bytes > txn::MAX_TXN_BYTES {
            return Err(ServiceError::invalid(
                "success",
                "TRANSACTION_TOO_LARGE",
                format!(
                    "{bytes} bytes of keys and values is over the limit of {} bytes",
                    txn::MAX_TXN_BYTES
                ),
            ));
        }
        let one_shot = OneShot {
            ns: ns.spec.name.clone(),
            compares,
            success,
            failure,
            request: request_key(req.request_id.as_ref()),
        };
        let mut token = n.admit_session(req.session.as_ref(), &ns, false).await?;
        match n.write(Command::OneShot(one_shot)).await? {
            Outcome::OneShotDone {
                succeeded,
                revision,
                results,
            } => {
                if revision != 0 {
                    token.observe_write(&ns.spec.name, u64::from(ns.id), revision);
                } else {
                    token.observe_read(&ns.spec.name, u64::from(ns.id), n.store.applied());
                }
                Ok(v1::TxnResponse {
                    header: n.header(v1::ConsistencyLevel::Linearizable, &token),
                    succeeded,
                    results: results
                        .into_iter()
                        .map(|r| v1::TxnOpResult {
                            key: r.key,
                            found: r.found,
                            value: r.value,
                            version: version(r.revision),
                        })
                        .collect(),
                    version: version(revision),
                })
            }
            other => unreachable!("a one-shot command has a one-shot outcome: {other:?}"),
        }
    }

    async fn get_here(&self, req: &v1::GetRequest) -> Result<v1::GetResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key("key", &req.key)?;
        if is_quorum(&ns) {
            if req.transaction != 0 {
                Self::primary_backup(&ns)?;
            }
            return super::quorum::get(n, &ns, req).await;
        }
        let level = check_consistency(req.consistency.as_ref(), is_quorum(&ns), ns.spec.replicas)?;
        let (served, mut token, at) = self
            .admit(
                req.transaction,
                level,
                req.consistency.as_ref(),
                req.session.as_ref(),
                &ns,
            )
            .await?;
        // Every write up to this revision is visible to the read.
        let served_at = at.unwrap_or_else(|| n.store.applied());
        let (id, key) = (ns.id, req.key.clone());
        let item = n.read(move |s, tier| s.get(id, &key, at, tier)).await?;
        token.observe_read(&ns.spec.name, u64::from(ns.id), served_at);
        Ok(match item {
            Some(item) => v1::GetResponse {
                header: n.header(served, &token),
                found: true,
                value: item.value,
                version: version(item.revision),
                siblings: Vec::new(),
            },
            None => v1::GetResponse {
                header: n.header(served, &token),
                found: false,
                value: Bytes::new(),
                version: None,
                siblings: Vec::new(),
            },
        })
    }

    /// Orders a write and records it in the session token.
    async fn write(
        &self,
        ns: &NamespaceMeta,
        session: Option<&v1::Session>,
        command: Command,
    ) -> Result<(Outcome, SessionToken), ServiceError> {
        let mut token = self.node.admit_session(session, ns, false).await?;
        let outcome = self.node.write(command).await?;
        let revision = match &outcome {
            Outcome::Put { revision }
            | Outcome::Delete { revision, .. }
            | Outcome::Cas { revision, .. } => *revision,
            _ => 0,
        };
        if revision != 0 {
            token.observe_write(&ns.spec.name, u64::from(ns.id), revision);
        } else {
            // A compare-and-set whose condition failed wrote nothing, but read the key as of
            // the state its entry was applied to.
            token.observe_read(&ns.spec.name, u64::from(ns.id), self.node.store.applied());
        }
        Ok((outcome, token))
    }

    async fn put_here(&self, req: &v1::PutRequest) -> Result<v1::PutResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key("key", &req.key)?;
        n.limits.check_value("value", &req.value)?;
        if is_quorum(&ns) {
            let done = super::quorum::write(
                n,
                &ns,
                &req.key,
                Some(req.value.clone()),
                &req.context,
                req.consistency.as_ref(),
                req.session.as_ref(),
            )
            .await?;
            return Ok(v1::PutResponse {
                header: done.header,
                version: Some(done.version),
            });
        }
        check_consistency(req.consistency.as_ref(), is_quorum(&ns), ns.spec.replicas)?;
        let command = Command::Put {
            ns: ns.spec.name.clone(),
            key: req.key.clone(),
            value: req.value.clone(),
            request: request_key(req.request_id.as_ref()),
        };
        let (outcome, token) = self.write(&ns, req.session.as_ref(), command).await?;
        let Outcome::Put { revision } = outcome else {
            unreachable!("a put command has a put outcome: {outcome:?}")
        };
        Ok(v1::PutResponse {
            header: n.header(v1::ConsistencyLevel::Linearizable, &token),
            version: version(revision),
        })
    }

    async fn delete_here(
        &self,
        req: &v1::DeleteRequest,
    ) -> Result<v1::DeleteResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key("key", &req.key)?;
        if is_quorum(&ns) {
            let done = super::quorum::write(
                n,
                &ns,
                &req.key,
                None,
                &req.context,
                req.consistency.as_ref(),
                req.session.as_ref(),
            )
            .await?;
            return Ok(v1::DeleteResponse {
                header: done.header,
                existed: done.existed,
                version: done.existed.then_some(done.version),
            });
        }
        check_consistency(req.consistency.as_ref(), is_quorum(&ns), ns.spec.replicas)?;
        let command = Command::Delete {
            ns: ns.spec.name.clone(),
            key: req.key.clone(),
            request: request_key(req.request_id.as_ref()),
        };
        let (outcome, token) = self.write(&ns, req.session.as_ref(), command).await?;
        let Outcome::Delete { existed, revision } = outcome else {
            unreachable!("a delete command has a delete outcome: {outcome:?}")
        };
        Ok(v1::DeleteResponse {
            header: n.header(v1::ConsistencyLevel::Linearizable, &token),
            existed,
            version: if existed { version(revision) } else { None },
        })
    }

    async fn compare_and_set_here(
        &self,
        req: &v1::CompareAndSetRequest,
    ) -> Result<v1::CompareAndSetResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key("key", &req.key)?;
        if is_quorum(&ns) {
            return Err(ServiceError::FailedPrecondition {
                reason: "CAS_NEEDS_PRIMARY_BACKUP",
                message: format!(
                    "namespace {:?} is replicated by the quorum protocol, where writes are not ordered by one primary; compare-and-set needs a primary-backup namespace",
                    ns.spec.name
                ),
            });
        }
        let condition = match req.condition.as_ref().and_then(|c| c.kind.clone()) {
            None => {
                return Err(ServiceError::invalid(
                    "condition",
                    "CONDITION_MISSING",
                    "is required: one of revision_equals, value_equals or absent",
                ))
            }
            Some(v1::condition::Kind::RevisionEquals(r)) => Condition::RevisionEquals(r),
            Some(v1::condition::Kind::ValueEquals(v)) => {
                n.limits.check_value("condition.value_equals", &v)?;
                Condition::ValueEquals(v)
            }
            Some(v1::condition::Kind::Absent(_)) => Condition::Absent,
        };
        n.limits.check_value("new_value", &req.new_value)?;
        if req.delete && !req.new_value.is_empty() {
            return Err(ServiceError::invalid(
                "new_value",
                "NEW_VALUE_WITH_DELETE",
                "must be empty when delete is set",
            ));
        }
        check_consistency(req.consistency.as_ref(), is_quorum(&ns), ns.spec.replicas)?;
        let command = Command::Cas {
            ns: ns.spec.name.clone(),
            key: req.key.clone(),
            condition,
            value: (!req.delete).then(|| req.new_value.clone()),
            request: request_key(req.request_id.as_ref()),
        };
        let (outcome, token) = self.write(&ns, req.session.as_ref(), command).await?;
        let Outcome::Cas {
            succeeded,
            revision,
            current,
        } = outcome
        else {
            unreachable!("a cas command has a cas outcome: {outcome:?}")
        };
        Ok(v1::CompareAndSetResponse {
            header: n.header(v1::ConsistencyLevel::Linearizable, &token),
            succeeded,
            version: if succeeded { version(revision) } else { None },
            found: current.is_some(),
            current: current.map(|c| v1::KeyValue {
                key: req.key.clone(),
                value: c.value,
                version: version(c.revision),
            }),
        })
    }

    async fn scan_here(&self, req: &v1::ScanRequest) -> Result<v1::ScanResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key_bound("start_key", &req.start_key)?;
        n.limits.check_key_bound("end_key", &req.end_key)?;
        if !req.end_key.is_empty() && req.start_key >= req.end_key {
            return Err(ServiceError::invalid(
                "end_key",
                "EMPTY_RANGE",
                "must be greater than start_key (or empty for the end of the namespace)",
            ));
        }
        let limit = limits::scan_limit("limit", req.limit)?;
        let level = check_consistency(req.consistency.as_ref(), is_quorum(&ns), ns.spec.replicas)?;
        let start = match req.continuation.split_first() {
            None => req.start_key.to_vec(),
            Some((&CONTINUATION_V1, last))
                if last >= &req.start_key[..] && (req.end_key.is_empty() || last < &req.end_key[..]) =>
            {
                // The immediate successor of the last key returned.
                let mut next = last.to_vec();
                next.push(0);
                next
            }
            Some(_) => {
                return Err(ServiceError::invalid(
                    "continuation",
                    "BAD_CONTINUATION",
                    "is not a continuation of this range; send back the continuation of the previous page unchanged, with the same namespace, start_key and end_key",
                ))
            }
        };
        if is_quorum(&ns) {
            if req.transaction != 0 {
                Self::primary_backup(&ns)?;
            }
            return super::quorum::scan(n, &ns, req, start).await;
        }
        let (served, mut token, at) = self
            .admit(
                req.transaction,
                level,
                req.consistency.as_ref(),
                req.session.as_ref(),
                &ns,
            )
            .await?;
        let served_at = at.unwrap_or_else(|| n.store.applied());
        let (id, end) = (ns.id, req.end_key.clone());
        let page = n
            .read(move |s, tier| {
                s.scan(
                    id,
                    (&start, &end),
                    PageLimits {
                        limit,
                        max_bytes: MAX_SCAN_PAGE_BYTES,
                    },
                    at,
                    tier,
                )
            })
            .await?;
        token.observe_read(&ns.spec.name, u64::from(ns.id), served_at);
        let continuation = match (page.more, page.items.last()) {
            (true, Some(last)) => {
                let mut c = Vec::with_capacity(1 + last.key.len());
                c.push(CONTINUATION_V1);
                c.extend_from_slice(&last.key);
                Bytes::from(c)
            }
            _ => Bytes::new(),
        };
        Ok(v1::ScanResponse {
            header: n.header(served, &token),
            items: page
                .items
                .into_iter()
                .map(|i| v1::KeyValue {
                    key: i.key,
                    value: i.value,
                    version: version(i.revision),
                })
                .collect(),
            continuation,
        })
    }
}

/// Implements the KV service: each RPC runs its `*_here` handler under the node's metrics,
/// and a request this replica may not serve (NOT_LEADER) is forwarded once to the primary.
macro_rules! kv_service {
    ($($method:ident($req:ty) -> $resp:ty, $rpc:literal, $here:ident, write: $write:expr;)*) => {
        #[tonic::async_trait]
        impl Kv for KvService {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let fwd = forwarded(&request);
                    let req = request.into_inner();
                    let handled = async {
                        let result = self.$here(&req).await;
                        or_forward!(self, result, fwd, req, $method, $write)
                    };
                    self.node.observe($rpc, handled).await
                }
            )*
        }
    };
}

kv_service! {
    get(v1::GetRequest) -> v1::GetResponse, "Get", get_here, write: false;
    put(v1::PutRequest) -> v1::PutResponse, "Put", put_here, write: true;
    delete(v1::DeleteRequest) -> v1::DeleteResponse, "Delete", delete_here, write: true;
    scan(v1::ScanRequest) -> v1::ScanResponse, "Scan", scan_here, write: false;
    compare_and_set(v1::CompareAndSetRequest) -> v1::CompareAndSetResponse, "CompareAndSet", compare_and_set_here, write: true;
    txn(v1::TxnRequest) -> v1::TxnResponse, "Txn", txn_here, write: true;
    begin(v1::BeginRequest) -> v1::BeginResponse, "Begin", begin_here, write: false;
    commit(v1::CommitRequest) -> v1::CommitResponse, "Commit", commit_here, write: true;
    abort(v1::AbortRequest) -> v1::AbortResponse, "Abort", abort_here, write: false;
}
