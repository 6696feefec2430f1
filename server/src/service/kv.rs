//! The `dialkv.v1.KV` service: Get, Put, Delete, Scan and CompareAndSet.

use std::sync::Arc;

use bytes::Bytes;
use dialkv_consistency::session_token::SessionToken;
use dialkv_proto::v1::{self, kv_client::KvClient, kv_server::Kv};
use tonic::{Request, Response, Status};

use super::{
    forward_request, forward_target, forwarded, request_key, version, Node, FORWARD_TIMEOUT,
};
use crate::error::ServiceError;
use crate::limits::{self, check_consistency, MAX_SCAN_PAGE_BYTES};
use crate::storage::store::{Command, Condition, NamespaceMeta, Outcome};

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
const CONTINUATION_V1: u8 = 1;

fn is_quorum(ns: &NamespaceMeta) -> bool {
    ns.spec.protocol == v1::Protocol::Quorum as i32
}

/// Forwards a request refused with NOT_LEADER to the primary, once, and passes its reply on.
macro_rules! or_forward {
    ($self:expr, $result:expr, $forwarded:expr, $req:expr, $method:ident) => {
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
                        .map_err(ServiceError::Forwarded)
                }
                None => Err(e),
            },
            ok => ok,
        }
    };
}

impl KvService {
    async fn get(&self, req: v1::GetRequest, fwd: bool) -> Result<v1::GetResponse, ServiceError> {
        let result = self.get_here(&req).await;
        or_forward!(self, result, fwd, req, get)
    }

    async fn get_here(&self, req: &v1::GetRequest) -> Result<v1::GetResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key("key", &req.key)?;
        let level = check_consistency(req.consistency.as_ref(), is_quorum(&ns), ns.spec.replicas)?;
        let (served, mut token) = n
            .admit_read(level, req.consistency.as_ref(), req.session.as_ref(), &ns)
            .await?;
        // Every write up to this revision is visible to the read.
        let served_at = n.store.applied();
        let (id, key) = (ns.id, req.key.clone());
        let item = n.read(move |s, tier| s.get(id, &key, None, tier)).await?;
        token.observe_read(&ns.spec.name, u64::from(ns.id), served_at);
        Ok(match item {
            Some(item) => v1::GetResponse {
                header: n.header(served, &token),
                found: true,
                value: item.value,
                version: version(item.revision),
            },
            None => v1::GetResponse {
                header: n.header(served, &token),
                found: false,
                value: Bytes::new(),
                version: None,
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

    async fn put(&self, req: v1::PutRequest, fwd: bool) -> Result<v1::PutResponse, ServiceError> {
        let result = self.put_here(&req).await;
        or_forward!(self, result, fwd, req, put)
    }

    async fn put_here(&self, req: &v1::PutRequest) -> Result<v1::PutResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key("key", &req.key)?;
        n.limits.check_value("value", &req.value)?;
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

    async fn delete(
        &self,
        req: v1::DeleteRequest,
        fwd: bool,
    ) -> Result<v1::DeleteResponse, ServiceError> {
        let result = self.delete_here(&req).await;
        or_forward!(self, result, fwd, req, delete)
    }

    async fn delete_here(
        &self,
        req: &v1::DeleteRequest,
    ) -> Result<v1::DeleteResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key("key", &req.key)?;
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

    async fn compare_and_set(
        &self,
        req: v1::CompareAndSetRequest,
        fwd: bool,
    ) -> Result<v1::CompareAndSetResponse, ServiceError> {
        let result = self.compare_and_set_here(&req).await;
        or_forward!(self, result, fwd, req, compare_and_set)
    }

    async fn compare_and_set_here(
        &self,
        req: &v1::CompareAndSetRequest,
    ) -> Result<v1::CompareAndSetResponse, ServiceError> {
        let n = &self.node;
        let ns = n.namespace("namespace", &req.namespace)?;
        n.limits.check_key("key", &req.key)?;
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

    async fn scan(
        &self,
        req: v1::ScanRequest,
        fwd: bool,
    ) -> Result<v1::ScanResponse, ServiceError> {
        let result = self.scan_here(&req).await;
        or_forward!(self, result, fwd, req, scan)
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
        let (served, mut token) = n
            .admit_read(level, req.consistency.as_ref(), req.session.as_ref(), &ns)
            .await?;
        let served_at = n.store.applied();
        let (id, end) = (ns.id, req.end_key.clone());
        let page = n
            .read(move |s, tier| s.scan(id, &start, &end, limit, MAX_SCAN_PAGE_BYTES, tier))
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

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(
        &self,
        request: Request<v1::GetRequest>,
    ) -> Result<Response<v1::GetResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe("Get", KvService::get(self, request.into_inner(), fwd))
            .await
    }

    async fn put(
        &self,
        request: Request<v1::PutRequest>,
    ) -> Result<Response<v1::PutResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe("Put", KvService::put(self, request.into_inner(), fwd))
            .await
    }

    async fn delete(
        &self,
        request: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe("Delete", KvService::delete(self, request.into_inner(), fwd))
            .await
    }

    async fn scan(
        &self,
        request: Request<v1::ScanRequest>,
    ) -> Result<Response<v1::ScanResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe("Scan", KvService::scan(self, request.into_inner(), fwd))
            .await
    }

    async fn compare_and_set(
        &self,
        request: Request<v1::CompareAndSetRequest>,
    ) -> Result<Response<v1::CompareAndSetResponse>, Status> {
        let fwd = forwarded(&request);
        self.node
            .observe(
                "CompareAndSet",
                KvService::compare_and_set(self, request.into_inner(), fwd),
            )
            .await
    }
}
