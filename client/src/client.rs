//! [`Client`]: connections to a set of replicas, request ids, routing, retries, and every
//! data, namespace and cluster operation.
//!
//! A client holds one lazily connected tonic `Channel` per endpoint (each multiplexes any
//! number of concurrent calls over HTTP/2) and is cheap to clone: clones share the channels,
//! the endpoint list, the remembered primary, the client id and the request sequence. Each
//! call runs under one deadline (the per-call timeout unless [`CallOptions`] says otherwise)
//! that bounds all of its attempts; see [`crate::routing`] for where attempts go and
//! [`crate::retry`] for what is retried.
//!
//! Every mutating call carries a fresh request id `(client_id, seq)` (`types.proto`,
//! `RequestId`), and every retry of that call repeats the same id, so the server applies it at
//! most once and answers a retry with the reply to its first application.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, ErrorStatus};
use crate::options::CallOptions;
use crate::proto::{
    self, cluster_client::ClusterClient, kv_client::KvClient, namespaces_client::NamespacesClient,
};
use crate::retry::{decide, final_error, CallKind, Decision, RetryPolicy};
use crate::routing::{self, Route, Step};
use crate::session::{Session, SessionGuarantees, SessionState};
use crate::types::{
    CasAction, CasOutput, ClusterStatus, Condition, DeleteOutput, Entry, GetOutput, Membership,
    NamespaceInfo, NamespaceSpec, PutOutput, ResponseMeta, ScanPage, ScanRange, Version,
};

/// The namespace calls use when their options name none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The per-call timeout when the builder sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The per-call timeout of [`Client::add_node`] when its options set none: the server lets
/// a new replica catch up for 120 s, and a backup forwarding the call waits 15 s more.
pub const ADD_NODE_TIMEOUT: Duration = Duration::from_secs(150);
/// How long an endpoint that refused a connection is passed over by reads that any replica
/// may serve (it is still tried when every endpoint is down, and by retries that need it).
pub const DOWN_FOR: Duration = Duration::from_secs(1);
/// The connect timeout when the builder sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A dialkv client: cheap to clone, safe to share between tasks.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The endpoints: those the client was built with, then primaries learned from
    /// `NOT_LEADER` answers (at most [`routing::MAX_ENDPOINTS`]). Only ever grows, so an
    /// index stays valid.
    endpoints: RwLock<Vec<Arc<Slot>>>,
    /// The endpoint writes and LINEARIZABLE reads start at: the one that last served a
    /// write, or the one a primary-bound call last moved to (a `NOT_LEADER` hint, or away
    /// from a replica that failed).
    primary: AtomicUsize,
    /// The round-robin counter of reads that any replica may serve.
    ticket: AtomicUsize,
    /// The connect timeout of endpoints added later.
    connect_timeout: Duration,
    namespace: String,
    timeout: Duration,
    retry: RetryPolicy,
    /// A random id of this client, chosen once (`RequestId.client_id`).
    client_id: u64,
    /// The last request sequence number handed out (`RequestId.seq`).
    seq: AtomicU64,
    /// Whether each namespace written so far is a quorum namespace, as described by the
    /// cluster: quorum writes are not deduplicated by request id, so they are not repeated
    /// after a failure that may have applied them.
    quorum_namespaces: std::sync::Mutex<std::collections::HashMap<String, bool>>,
    /// The implicit session of calls made without one: the merged token of every reply, sent
    /// (with no guarantees) by SEQUENTIAL and CAUSAL reads, so that this client's own order of
    /// operations holds on any replica. Without it, a SEQUENTIAL read at a backup could miss
    /// the client's own earlier write.
    process_token: std::sync::Mutex<dialkv_consistency::session_token::SessionToken>,
}

impl Inner {
    fn endpoints(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Slot>>> {
        self.endpoints
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many endpoints there are (at least 1).
    fn len(&self) -> usize {
        self.endpoints().len().max(1)
    }

    /// The endpoint at `index` (wrapped into the list).
    fn slot(&self, index: usize) -> Option<Arc<Slot>> {
        let endpoints = self.endpoints();
        let n = endpoints.len().max(1);
        endpoints.get(index % n).cloned()
    }

    /// The addresses of the endpoints, in order.
    fn addresses(&self) -> Vec<String> {
        self.endpoints().iter().map(|s| s.address.clone()).collect()
    }

    /// Which endpoints are up (not refused a connection in the last [`DOWN_FOR`]), in order.
    fn up(&self, now: Instant) -> Vec<bool> {
        self.endpoints().iter().map(|s| s.is_up(now)).collect()
    }

    /// The index of the endpoint at `address`, added if it is not in the list yet. `None`
    /// when the address does not parse or the list is full.
    fn add_endpoint(&self, address: &str) -> Option<usize> {
        let mut endpoints = self
            .endpoints
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = endpoints
            .iter()
            .position(|s| routing::same_address(&s.address, address))
        {
            return Some(i);
        }
        if endpoints.len() >= routing::MAX_ENDPOINTS {
            return None;
        }
        let slot = Slot::new(address, self.connect_timeout).ok()?;
        endpoints.push(Arc::new(slot));
        Some(endpoints.len() - 1)
    }
}

/// One endpoint and its channel, created on first use.
#[derive(Debug)]
struct Slot {
    /// The address as given (or as a `NOT_LEADER` answer named it).
    address: String,
    endpoint: Endpoint,
    channel: OnceLock<Channel>,
    /// Until when the endpoint counts as down: set when a connection to it fails.
    down_until: std::sync::Mutex<Option<Instant>>,
}

impl Slot {
    fn new(address: &str, connect_timeout: Duration) -> Result<Slot, Error> {
        Ok(Slot {
            address: address.trim().to_string(),
            endpoint: parse_endpoint(address)?
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true),
            channel: OnceLock::new(),
            down_until: std::sync::Mutex::new(None),
        })
    }

    fn down_until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_up(&self, now: Instant) -> bool {
        self.down_until().is_none_or(|until| now >= until)
    }

    /// Records how an attempt here went: a refused connection marks the endpoint down for
    /// [`DOWN_FOR`] (reads then start elsewhere); any answer marks it up.
    fn record(&self, connect_failed: bool) {
        *self.down_until() = connect_failed.then(|| Instant::now() + DOWN_FOR);
    }

    fn channel(&self) -> Channel {
        self.channel
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone()
    }
}

/// Builds a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    namespace: String,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            endpoints: Vec::new(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

impl ClientBuilder {
    /// A builder with the defaults: namespace `default`, 5 s per call, 10 attempts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds endpoints, each `host:port` or `http://host:port`.
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.endpoints.extend(endpoints.into_iter().map(Into::into));
        self
    }

    /// Sets the namespace of calls whose options name none.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the per-call timeout: the longest a call may take, retries included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the longest wait for a TCP connection to an endpoint.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how many attempts a call makes, the first included (at least 1).
    pub fn retry_attempts(mut self, attempts: u32) -> Self {
        self.retry.attempts = attempts.max(1);
        self
    }

    /// Sets the whole retry policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = RetryPolicy {
            attempts: policy.attempts.max(1),
            ..policy
        };
        self
    }

    /// Builds the client. No connection is made until the first call, so this works outside
    /// a tokio runtime and succeeds while servers are down.
    pub fn build(self) -> Result<Client, Error> {
        if self.endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let mut endpoints: Vec<Arc<Slot>> = Vec::new();
        for e in &self.endpoints {
            let slot = Slot::new(e, self.connect_timeout)?;
            // A repeated endpoint would only skew the round robin.
            if !endpoints
                .iter()
                .any(|s| routing::same_address(&s.address, &slot.address))
            {
                endpoints.push(Arc::new(slot));
            }
        }
        endpoints.truncate(routing::MAX_ENDPOINTS);
        // Sequence numbers start at 1: (client_id, 0) would read as "not deduplicated" if
        // client_id were ever 0.
        let client_id = loop {
            let id: u64 = rand::random();
            if id != 0 {
                break id;
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints: RwLock::new(endpoints),
                primary: AtomicUsize::new(0),
                // Clients built at once should not all start their reads at one replica.
                ticket: AtomicUsize::new(rand::random::<u16>().into()),
                connect_timeout: self.connect_timeout,
                namespace: self.namespace,
                timeout: self.timeout,
                retry: self.retry,
                client_id,
                seq: AtomicU64::new(0),
                quorum_namespaces: std::sync::Mutex::default(),
                process_token: std::sync::Mutex::default(),
            }),
        })
    }
}

/// Parses `host:port` or `http(s)://host:port` into a tonic endpoint.
fn parse_endpoint(text: &str) -> Result<Endpoint, Error> {
    let text = text.trim();
    let invalid = |message: String| Error::InvalidEndpoint {
        endpoint: text.to_string(),
        message,
    };
    if text.is_empty() {
        return Err(invalid("empty".into()));
    }
    let uri = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    Endpoint::from_shared(uri).map_err(|e| invalid(e.to_string()))
}

/// Makes a tonic request with the attempt's remaining time as its `grpc-timeout`.
pub(crate) fn request<T>(message: T, remaining: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(remaining);
    req
}

impl Client {
    /// Connects (lazily) to `endpoints` with the default settings.
    pub fn connect(
        endpoints: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Client, Error> {
        ClientBuilder::new().endpoints(endpoints).build()
    }

    /// A builder for a client with non-default settings.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// The namespace calls use when their options name none.
    pub fn default_namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// This client's random id, sent in every request id.
    pub fn client_id(&self) -> u64 {
        self.inner.client_id
    }

    /// Starts a new session with `guarantees` (see [`Session`]).
    pub fn session(&self, guarantees: SessionGuarantees) -> Session {
        Session::new(self.clone(), guarantees, Default::default())
    }

    /// A fresh request id for one mutating call.
    pub(crate) fn next_request_id(&self) -> proto::RequestId {
        proto::RequestId {
            client_id: self.inner.client_id,
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    pub(crate) fn namespace_of(&self, opts: &CallOptions) -> String {
        opts.namespace
            .clone()
            .unwrap_or_else(|| self.inner.namespace.clone())
    }

    pub(crate) fn deadline_of(&self, opts: &CallOptions) -> Instant {
        let by_timeout = Instant::now() + opts.timeout.unwrap_or(self.inner.timeout);
        opts.deadline.map_or(by_timeout, |d| d.min(by_timeout))
    }

    /// Runs one call: attempts at successive endpoints until one succeeds, the retry rules
    /// say stop, the attempts run out, or the deadline passes. The call starts where `route`
    /// says ([`routing::first_endpoint`]) and moves as the retry rules say
    /// ([`routing::next_endpoint`]); a write that succeeds makes its endpoint the one later
    /// primary-bound calls start at.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        kind: CallKind,
        route: Route,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let inner = &self.inner;
        let mut index = routing::first_endpoint(
            route,
            &inner.up(Instant::now()),
            inner.primary.load(Ordering::Relaxed),
            inner.ticket.fetch_add(1, Ordering::Relaxed),
        );
        let mut maybe_applied = false;
        let mut failed = 0u32;
        loop {
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            let slot = inner.slot(index);
            let status = match slot {
                _ if remaining.is_zero() => {
                    ErrorStatus::local(tonic::Code::DeadlineExceeded, "the call's deadline passed")
                }
                None => return Err(Error::NoEndpoints),
                Some(slot) => {
                    match tokio::time::timeout_at(deadline, attempt(slot.channel(), remaining)).await {
                        Ok(Ok(reply)) => {
                            slot.record(false);
                            if kind != CallKind::Read {
                                inner.primary.store(index, Ordering::Relaxed);
                            }
                            return Ok(reply);
                        }
                        Ok(Err(status)) => {
                            let status = ErrorStatus::from_tonic(&status);
                            slot.record(status.is_connect_failure());
                            status
                        }
                        Err(_) => ErrorStatus::local(
                            tonic::Code::DeadlineExceeded,
                            format!("no reply within the call's deadline ({remaining:?} left at the last attempt)"),
                        ),
                    }
                }
            };
            failed += 1;
            let decision = decide(kind, &status);
            tracing::debug!(
                endpoint = index,
                attempt = failed,
                code = ?status.code(),
                reason = status.reason(),
                leader = status.leader_address(),
                ?decision,
                "dialkv call failed"
            );
            let next = match decision {
                Decision::Retry { next } if failed < inner.retry.attempts => next,
                _ => return Err(final_error(kind, status, maybe_applied)),
            };
            let delay = inner.retry.backoff(failed, status.retry_delay());
            if Instant::now() + delay >= deadline {
                return Err(final_error(kind, status, maybe_applied));
            }
            maybe_applied |= status.write_may_have_applied();
            let moved_from = index;
            let up = inner.up(Instant::now());
            index = match routing::next_endpoint(index, &inner.addresses(), &up, &next) {
                Step::To(i) => i,
                Step::Add(address) => inner
                    .add_endpoint(&address)
                    .unwrap_or((index + 1) % inner.len()),
            };
            if route == Route::Primary && index != moved_from {
                // The primary is elsewhere (a NOT_LEADER hint) or this replica failed: later
                // primary-bound calls start where this one goes next.
                inner.primary.store(index, Ordering::Relaxed);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// The endpoints the client knows, in order: those it was built with, then primaries
    /// learned from `NOT_LEADER` answers.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.addresses()
    }

    // ---- data operations -------------------------------------------------------------

    /// Reads `key` from the default namespace at the default consistency.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<GetOutput, Error> {
        self.get_with(key, &CallOptions::default()).await
    }

    /// Reads `key` with `opts`.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        opts: &CallOptions,
    ) -> Result<GetOutput, Error> {
        self.get_in(Bytes::copy_from_slice(key.as_ref()), opts, None)
            .await
    }

    /// Writes `key` = `value` in the default namespace.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
    ) -> Result<PutOutput, Error> {
        self.put_with(key, value, &CallOptions::default()).await
    }

    /// Writes `key` = `value` with `opts`.
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        opts: &CallOptions,
    ) -> Result<PutOutput, Error> {
        self.put_in(
            Bytes::copy_from_slice(key.as_ref()),
            value.into(),
            opts,
            None,
        )
        .await
    }

    /// Deletes `key` from the default namespace; deleting an absent key succeeds with
    /// `existed == false`.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteOutput, Error> {
        self.delete_with(key, &CallOptions::default()).await
    }

    /// Deletes `key` with `opts`.
    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        opts: &CallOptions,
    ) -> Result<DeleteOutput, Error> {
        self.delete_in(Bytes::copy_from_slice(key.as_ref()), opts, None)
            .await
    }

    /// Writes or deletes `key` only if `condition` holds, atomically.
    pub async fn compare_and_set(
        &self,
        key: impl AsRef<[u8]>,
        condition: Condition,
        action: CasAction,
    ) -> Result<CasOutput, Error> {
        self.compare_and_set_with(key, condition, action, &CallOptions::default())
            .await
    }

    /// [`Client::compare_and_set`] with `opts`.
    pub async fn compare_and_set_with(
        &self,
        key: impl AsRef<[u8]>,
        condition: Condition,
        action: CasAction,
        opts: &CallOptions,
    ) -> Result<CasOutput, Error> {
        self.cas_in(
            Bytes::copy_from_slice(key.as_ref()),
            condition,
            action,
            opts,
            None,
        )
        .await
    }

    /// Reads one page of `range`: the first page when `continuation` is `None`, else the page
    /// after the one that returned it.
    pub async fn scan(
        &self,
        range: &ScanRange,
        continuation: Option<Bytes>,
        opts: &CallOptions,
    ) -> Result<ScanPage, Error> {
        self.scan_in(range, continuation, opts, None).await
    }

    /// Reads every key of `range`, following continuations (each page is a call of its own,
    /// with its own deadline).
    pub async fn scan_all(
        &self,
        range: &ScanRange,
        opts: &CallOptions,
    ) -> Result<Vec<Entry>, Error> {
        self.scan_stream(range.clone(), opts.clone())
            .try_collect()
            .await
    }

    /// Streams every key of `range`, fetching a page at a time as the stream is read.
    pub fn scan_stream(
        &self,
        range: ScanRange,
        opts: CallOptions,
    ) -> impl Stream<Item = Result<Entry, Error>> + Send + 'static {
        scan_stream(self.clone(), range, opts, None)
    }

    pub(crate) async fn get_in(
        &self,
        key: Bytes,
        opts: &CallOptions,
        session: Option<&SessionState>,
    ) -> Result<GetOutput, Error> {
        let namespace = self.namespace_of(opts);
        let consistency = opts.consistency.map(|c| c.to_proto());
        let reply = self
            .call(
                CallKind::Read,
                routing::route(CallKind::Read, opts.consistency.map(|c| c.level)),
                self.deadline_of(opts),
                |channel, remaining| {
                    let req = proto::GetRequest {
                        namespace: namespace.clone(),
                        key: key.clone(),
                        consistency,
                        session: self.session_proto(session),
                        // Fields this client does not set (e.g. `transaction`) keep their defaults.
                        ..Default::default()
                    };
                    async move {
                        Ok(KvClient::new(channel)
                            .get(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        let meta = self.observe(session, reply.header)?;
        let context = reply
            .version
            .as_ref()
            .map(|v| v.context.clone())
            .unwrap_or_default();
        let entry = reply.found.then(|| Entry {
            key,
            value: reply.value,
            version: reply.version.map(Version::from_proto).unwrap_or_default(),
        });
        let siblings = reply
            .siblings
            .into_iter()
            .map(|s| crate::types::Sibling {
                value: s.value,
                deleted: s.deleted,
                revision: s.revision,
            })
            .collect();
        Ok(GetOutput {
            entry,
            siblings,
            context,
            meta,
        })
    }

    /// How a write to `namespace` may be repeated: with a request id the server dedups
    /// (primary-backup), or only when it certainly did not apply (quorum namespaces, whose
    /// writes are not deduplicated). Learned once per namespace with a describe call; when
    /// that fails, the write is sent as idempotent and nothing is cached.
    async fn write_kind(&self, namespace: &str) -> CallKind {
        // The default namespace is primary-backup on every cluster.
        if namespace == DEFAULT_NAMESPACE {
            return CallKind::IdempotentWrite;
        }
        let known = self
            .inner
            .quorum_namespaces
            .lock()
            .expect("namespace cache lock poisoned")
            .get(namespace)
            .copied();
        let quorum = match known {
            Some(q) => q,
            None => match self.describe_namespace(namespace).await {
                Ok(info) => {
                    let q = info.spec.protocol == Some(crate::types::Protocol::Quorum);
                    self.inner
                        .quorum_namespaces
                        .lock()
                        .expect("namespace cache lock poisoned")
                        .insert(namespace.to_string(), q);
                    q
                }
                Err(_) => false,
            },
        };
        if quorum {
            CallKind::Write
        } else {
            CallKind::IdempotentWrite
        }
    }

    pub(crate) async fn put_in(
        &self,
        key: Bytes,
        value: Bytes,
        opts: &CallOptions,
        session: Option<&SessionState>,
    ) -> Result<PutOutput, Error> {
        let namespace = self.namespace_of(opts);
        let write_kind = self.write_kind(&namespace).await;
        let consistency = opts.consistency.map(|c| c.to_proto());
        let write_context = opts.context.clone().unwrap_or_default();
        let id = self.next_request_id();
        let reply = self
            .call(
                write_kind,
                Route::Primary,
                self.deadline_of(opts),
                |channel, remaining| {
                    let req = proto::PutRequest {
                        namespace: namespace.clone(),
                        key: key.clone(),
                        value: value.clone(),
                        request_id: Some(id),
                        consistency,
                        session: self.session_proto(session),
                        context: write_context.clone(),
                    };
                    async move {
                        Ok(KvClient::new(channel)
                            .put(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        let meta = self.observe(session, reply.header)?;
        Ok(PutOutput {
            version: reply.version.map(Version::from_proto).unwrap_or_default(),
            meta,
        })
    }

    pub(crate) async fn delete_in(
        &self,
        key: Bytes,
        opts: &CallOptions,
        session: Option<&SessionState>,
    ) -> Result<DeleteOutput, Error> {
        let namespace = self.namespace_of(opts);
        let write_kind = self.write_kind(&namespace).await;
        let consistency = opts.consistency.map(|c| c.to_proto());
        let write_context = opts.context.clone().unwrap_or_default();
        let id = self.next_request_id();
        let reply = self
            .call(
                write_kind,
                Route::Primary,
                self.deadline_of(opts),
                |channel, remaining| {
                    let req = proto::DeleteRequest {
                        namespace: namespace.clone(),
                        key: key.clone(),
                        request_id: Some(id),
                        consistency,
                        session: self.session_proto(session),
                        context: write_context.clone(),
                    };
                    async move {
                        Ok(KvClient::new(channel)
                            .delete(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        let meta = self.observe(session, reply.header)?;
        Ok(DeleteOutput {
            existed: reply.existed,
            version: reply.version.map(Version::from_proto),
            meta,
        })
    }

    pub(crate) async fn cas_in(
        &self,
        key: Bytes,
        condition: Condition,
        action: CasAction,
        opts: &CallOptions,
        session: Option<&SessionState>,
    ) -> Result<CasOutput, Error> {
        let namespace = self.namespace_of(opts);
        let consistency = opts.consistency.map(|c| c.to_proto());
        let condition = condition.to_proto();
        let (new_value, delete) = match action {
            CasAction::Set(v) => (v, false),
            CasAction::Delete => (Bytes::new(), true),
        };
        let id = self.next_request_id();
        let reply = self
            .call(
                CallKind::IdempotentWrite,
                Route::Primary,
                self.deadline_of(opts),
                |channel, remaining| {
                    let req = proto::CompareAndSetRequest {
                        namespace: namespace.clone(),
                        key: key.clone(),
                        condition: Some(condition.clone()),
                        new_value: new_value.clone(),
                        delete,
                        request_id: Some(id),
                        consistency,
                        session: self.session_proto(session),
                    };
                    async move {
                        Ok(KvClient::new(channel)
                            .compare_and_set(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        let meta = self.observe(session, reply.header)?;
        let current = if reply.succeeded || !reply.found {
            None
        } else {
            reply.current.map(Entry::from_proto)
        };
        Ok(CasOutput {
            succeeded: reply.succeeded,
            version: reply
                .succeeded
                .then(|| reply.version.map(Version::from_proto))
                .flatten(),
            current,
            meta,
        })
    }

    pub(crate) async fn scan_in(
        &self,
        range: &ScanRange,
        continuation: Option<Bytes>,
        opts: &CallOptions,
        session: Option<&SessionState>,
    ) -> Result<ScanPage, Error> {
        let namespace = self.namespace_of(opts);
        let consistency = opts.consistency.map(|c| c.to_proto());
        let reply = self
            .call(
                CallKind::Read,
                routing::route(CallKind::Read, opts.consistency.map(|c| c.level)),
                self.deadline_of(opts),
                |channel, remaining| {
                    let req = proto::ScanRequest {
                        namespace: namespace.clone(),
                        start_key: range.start.clone(),
                        end_key: range.end.clone(),
                        limit: range.limit,
                        continuation: continuation.clone().unwrap_or_default(),
                        consistency,
                        session: self.session_proto(session),
                        // Fields this client does not set (e.g. `transaction`) keep their defaults.
                        ..Default::default()
                    };
                    async move {
                        Ok(KvClient::new(channel)
                            .scan(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        let meta = self.observe(session, reply.header)?;
        Ok(ScanPage {
            items: reply.items.into_iter().map(Entry::from_proto).collect(),
            continuation: (!reply.continuation.is_empty()).then_some(reply.continuation),
            meta,
        })
    }

    // ---- namespace administration ----------------------------------------------------

    /// Creates a namespace. ALREADY_EXISTS (`NAMESPACE_EXISTS`) when the name is taken.
    pub async fn create_namespace(&self, spec: &NamespaceSpec) -> Result<NamespaceInfo, Error> {
        let spec = spec.to_proto();
        let reply = self
            .call(
                CallKind::Write,
                Route::Primary,
                self.deadline_of(&CallOptions::default()),
                |channel, remaining| {
                    let req = proto::CreateNamespaceRequest {
                        spec: Some(spec.clone()),
                    };
                    async move {
                        Ok(NamespacesClient::new(channel)
                            .create_namespace(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        namespace_info(reply.namespace)
    }

    /// Lists every namespace in name order.
    pub async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>, Error> {
        let reply = self
            .call(
                CallKind::Read,
                Route::Primary,
                self.deadline_of(&CallOptions::default()),
                |channel, remaining| async move {
                    Ok(NamespacesClient::new(channel)
                        .list_namespaces(request(proto::ListNamespacesRequest {}, remaining))
                        .await?
                        .into_inner())
                },
            )
            .await?;
        reply
            .namespaces
            .into_iter()
            .map(NamespaceInfo::from_proto)
            .collect()
    }

    /// Describes one namespace. NOT_FOUND (`NAMESPACE_NOT_FOUND`) when there is none.
    pub async fn describe_namespace(&self, name: &str) -> Result<NamespaceInfo, Error> {
        let reply = self
            .call(
                CallKind::Read,
                Route::Primary,
                self.deadline_of(&CallOptions::default()),
                |channel, remaining| {
                    let req = proto::DescribeNamespaceRequest {
                        name: name.to_string(),
                    };
                    async move {
                        Ok(NamespacesClient::new(channel)
                            .describe_namespace(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        namespace_info(reply.namespace)
    }

    /// Drops a namespace and all its keys. NOT_FOUND when there is none; the `default`
    /// namespace cannot be dropped (FAILED_PRECONDITION, `DEFAULT_NAMESPACE`).
    pub async fn drop_namespace(&self, name: &str) -> Result<(), Error> {
        self.call(
            CallKind::Write,
            Route::Primary,
            self.deadline_of(&CallOptions::default()),
            |channel, remaining| {
                let req = proto::DropNamespaceRequest {
                    name: name.to_string(),
                };
                async move {
                    Ok(NamespacesClient::new(channel)
                        .drop_namespace(request(req, remaining))
                        .await?
                        .into_inner())
                }
            },
        )
        .await?;
        Ok(())
    }

    // ---- cluster administration ------------------------------------------------------

    /// Reports every member of the cluster (voters and learners) as the primary sees it,
    /// when the client knows the primary, else as the replica that answers sees it. Members
    /// that do not answer within a second are reported unreachable.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, Error> {
        self.cluster_status_with(&CallOptions::default()).await
    }

    /// [`Client::cluster_status`] with `opts` (only the timeout and deadline apply).
    pub async fn cluster_status_with(&self, opts: &CallOptions) -> Result<ClusterStatus, Error> {
        let reply = self
            .call(
                CallKind::Read,
                Route::Primary,
                self.deadline_of(opts),
                |channel, remaining| async move {
                    Ok(ClusterClient::new(channel)
                        .cluster_status(request(proto::ClusterStatusRequest {}, remaining))
                        .await?
                        .into_inner())
                },
            )
            .await?;
        Ok(ClusterStatus::from_proto(reply))
    }

    /// Adds replica `id` (unused in the cluster, at least 1) serving at `address`
    /// (`host:port`; the replica must be running, started with `--join`). It first catches up
    /// as a learner, then joins the voters through joint consensus, so the call may take up
    /// to [`ADD_NODE_TIMEOUT`]. Returns the membership after the change.
    ///
    /// Errors: INVALID_ARGUMENT (`BAD_REPLICA_ID`, `BAD_ADDRESS`); FAILED_PRECONDITION
    /// (`MEMBERSHIP_CHANGE_REFUSED`, e.g. the replica did not catch up in time); a failure
    /// after the request may have reached the primary is [`Error::Indeterminate`] (check
    /// with [`Client::cluster_status`]).
    pub async fn add_node(&self, id: u64, address: &str) -> Result<Membership, Error> {
        self.add_node_with(id, address, &CallOptions::default())
            .await
    }

    /// [`Client::add_node`] with `opts` (only the timeout and deadline apply; the timeout
    /// is [`ADD_NODE_TIMEOUT`] when unset).
    pub async fn add_node_with(
        &self,
        id: u64,
        address: &str,
        opts: &CallOptions,
    ) -> Result<Membership, Error> {
        let opts = CallOptions {
            timeout: Some(opts.timeout.unwrap_or(ADD_NODE_TIMEOUT)),
            ..opts.clone()
        };
        let reply = self
            .call(
                CallKind::Write,
                Route::Primary,
                self.deadline_of(&opts),
                |channel, remaining| {
                    let req = proto::AddNodeRequest {
                        id,
                        address: address.trim().to_string(),
                    };
                    async move {
                        Ok(ClusterClient::new(channel)
                            .add_node(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        Ok(Membership::from_proto(reply))
    }

    /// Removes replica `id` from the voters and then from the cluster, through joint
    /// consensus. Returns the membership after the change. Removing a replica that is not a
    /// member changes nothing; removing the last voter is refused (FAILED_PRECONDITION,
    /// `MEMBERSHIP_CHANGE_REFUSED`).
    pub async fn remove_node(&self, id: u64) -> Result<Membership, Error> {
        self.remove_node_with(id, &CallOptions::default()).await
    }

    /// [`Client::remove_node`] with `opts` (only the timeout and deadline apply).
    pub async fn remove_node_with(&self, id: u64, opts: &CallOptions) -> Result<Membership, Error> {
        let reply = self
            .call(
                CallKind::Write,
                Route::Primary,
                self.deadline_of(opts),
                |channel, remaining| async move {
                    Ok(ClusterClient::new(channel)
                        .remove_node(request(proto::RemoveNodeRequest { id }, remaining))
                        .await?
                        .into_inner())
                },
            )
            .await?;
        Ok(Membership::from_proto(reply))
    }
}

impl Client {
    /// Reads a response header, merging its token into the explicit session if there is one,
    /// else into the client's implicit one.
    fn observe(
        &self,
        session: Option<&SessionState>,
        header: Option<proto::ResponseHeader>,
    ) -> Result<ResponseMeta, Error> {
        let meta = ResponseMeta::from_proto(header)?;
        match session {
            Some(session) => session.merge(&meta.session_token),
            None => self
                .inner
                .process_token
                .lock()
                .expect("process token lock poisoned")
                .merge(&meta.session_token),
        }
        Ok(meta)
    }

    /// The session a request carries: the explicit one, else the client's implicit token
    /// with no guarantees (which the server uses only for SEQUENTIAL and CAUSAL reads).
    fn session_proto(&self, session: Option<&SessionState>) -> Option<proto::Session> {
        if let Some(session) = session {
            return Some(session.to_proto());
        }
        let token = self
            .inner
            .process_token
            .lock()
            .expect("process token lock poisoned");
        (!token.is_empty()).then(|| proto::Session {
            token: Some(proto::SessionToken {
                token: Bytes::from(token.encode()),
            }),
            guarantees: Some(proto::SessionGuarantees::default()),
        })
    }
}

fn namespace_info(info: Option<proto::NamespaceInfo>) -> Result<NamespaceInfo, Error> {
    NamespaceInfo::from_proto(
        info.ok_or_else(|| Error::UnexpectedResponse("namespace info missing".into()))?,
    )
}

/// Streams every key of `range`, a page at a time, through `session` if given.
pub(crate) fn scan_stream(
    client: Client,
    range: ScanRange,
    opts: CallOptions,
    session: Option<Arc<SessionState>>,
) -> impl Stream<Item = Result<Entry, Error>> + Send + 'static {
    // The state is the continuation of the next page; `None` once the range is done.
    futures::stream::try_unfold(Some(None::<Bytes>), move |next| {
        let client = client.clone();
        let range = range.clone();
        let opts = opts.clone();
        let session = session.clone();
        async move {
            let Some(continuation) = next else {
                return Ok(None);
            };
            let page = client
                .scan_in(&range, continuation, &opts, session.as_deref())
                .await?;
            let next = page.continuation.map(Some);
            Ok::<_, Error>(Some((page.items, next)))
        }
    })
    .map_ok(|items| futures::stream::iter(items.into_iter().map(Ok)))
    .try_flatten()
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_host_port_or_a_uri() {
        assert_eq!(
            parse_endpoint("127.0.0.1:7401")
                .expect("valid")
                .uri()
                .to_string(),
            "http://127.0.0.1:7401/"
        );
        assert_eq!(
            parse_endpoint("http://db1:7401")
                .expect("valid")
                .uri()
                .to_string(),
            "http://db1:7401/"
        );
        assert!(matches!(
            parse_endpoint(""),
            Err(Error::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            parse_endpoint("bad host:1"),
            Err(Error::InvalidEndpoint { .. })
        ));
    }

    #[test]
    fn a_client_needs_an_endpoint() {
        assert!(matches!(
            Client::connect(Vec::<String>::new()),
            Err(Error::NoEndpoints)
        ));
    }

    #[test]
    fn request_ids_are_fresh_per_call_and_share_the_client_id() {
        let client = Client::connect(["127.0.0.1:1"]).expect("valid");
        let clone = client.clone();
        let a = client.next_request_id();
        let b = clone.next_request_id();
        assert_eq!(a.client_id, b.client_id);
        assert_ne!(a.client_id, 0);
        assert_eq!((a.seq, b.seq), (1, 2));
        let other = Client::connect(["127.0.0.1:1"]).expect("valid");
        assert_ne!(other.client_id(), client.client_id());
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_and_not_indeterminate() {
        // Nothing listens on port 1: every attempt fails to connect, so the write was never
        // sent and the failure is definite.
        let client = Client::builder()
            .endpoints(["127.0.0.1:1"])
            .retry_attempts(2)
            .timeout(Duration::from_secs(3))
            .build()
            .expect("valid");
        let err = client.put("k", "v").await.expect_err("nothing listens");
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        assert!(
            err.status().is_some_and(ErrorStatus::is_connect_failure),
            "{err:?}"
        );
        let err = client.get("k").await.expect_err("nothing listens");
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    }

    /// A fake `Cluster` service: each call answers with `answer` and is counted.
    mod fake {
        use super::*;
        use std::collections::HashMap;
        use std::sync::Mutex;
        use tonic_types::{ErrorDetails, StatusExt};

        /// How a fake replica answers membership calls.
        #[derive(Clone, Debug)]
        pub enum Answer {
            Ok,
            NotLeader(Option<String>),
            Status(tonic::Code, &'static str),
        }

        #[derive(Clone)]
        pub struct Replica {
            pub answer: Arc<Mutex<Answer>>,
            pub calls: Arc<AtomicUsize>,
        }

        impl Replica {
            pub fn calls(&self) -> usize {
                self.calls.load(Ordering::SeqCst)
            }

            fn reply(
                &self,
            ) -> Result<tonic::Response<proto::ChangeMembershipResponse>, tonic::Status>
            {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let answer = self
                    .answer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let (code, why, metadata) = match answer {
                    Answer::Ok => {
                        return Ok(tonic::Response::new(proto::ChangeMembershipResponse {
                            voters: vec![1, 2],
                            learners: vec![],
                        }))
                    }
                    Answer::NotLeader(hint) => (
                        tonic::Code::Unavailable,
                        crate::error::reason::NOT_LEADER,
                        hint.map(|a| {
                            HashMap::from([
                                ("leader_id".to_string(), "2".to_string()),
                                ("leader_address".to_string(), a),
                            ])
                        })
                        .unwrap_or_default(),
                    ),
                    Answer::Status(code, why) => (code, why, HashMap::new()),
                };
                let mut details = ErrorDetails::new();
                details.set_error_info(why, crate::error::ERROR_DOMAIN, metadata);
                details.set_retry_info(Some(Duration::from_millis(1)));
                Err(tonic::Status::with_error_details(code, why, details))
            }
        }

        #[tonic::async_trait]
        impl proto::cluster_server::Cluster for Replica {
            async fn cluster_status(
                &self,
                _: tonic::Request<proto::ClusterStatusRequest>,
            ) -> Result<tonic::Response<proto::ClusterStatusResponse>, tonic::Status> {
                self.reply().map(|_| {
                    tonic::Response::new(proto::ClusterStatusResponse {
                        leader_id: 2,
                        nodes: vec![],
                    })
                })
            }

            async fn get_node_status(
                &self,
                _: tonic::Request<proto::NodeStatusRequest>,
            ) -> Result<tonic::Response<proto::NodeStatus>, tonic::Status> {
                Err(tonic::Status::unimplemented("fake"))
            }

            async fn add_node(
                &self,
                _: tonic::Request<proto::AddNodeRequest>,
            ) -> Result<tonic::Response<proto::ChangeMembershipResponse>, tonic::Status>
            {
                self.reply()
            }

            async fn remove_node(
                &self,
                _: tonic::Request<proto::RemoveNodeRequest>,
            ) -> Result<tonic::Response<proto::ChangeMembershipResponse>, tonic::Status>
            {
                self.reply()
            }
        }

        /// Starts a fake replica on a free local port; returns it and its address.
        pub async fn start(answer: Answer) -> (Replica, String) {
            let replica = Replica {
                answer: Arc::new(Mutex::new(answer)),
                calls: Arc::new(AtomicUsize::new(0)),
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a free port");
            let address = listener.local_addr().expect("bound").to_string();
            let incoming = futures::stream::unfold(listener, |l| async move {
                let conn = l.accept().await.map(|(stream, _)| stream);
                Some((conn, l))
            });
            let service = proto::cluster_server::ClusterServer::new(replica.clone());
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming),
            );
            (replica, address)
        }
    }

    fn client_of(endpoints: &[&str]) -> Client {
        Client::builder()
            .endpoints(endpoints.iter().copied())
            .timeout(Duration::from_secs(5))
            .build()
            .expect("valid")
    }

    #[tokio::test]
    async fn a_not_leader_hint_is_followed_added_and_remembered() {
        let (b, b_addr) = fake::start(fake::Answer::Ok).await;
        let (a, a_addr) = fake::start(fake::Answer::NotLeader(Some(b_addr.clone()))).await;
        let client = client_of(&[&a_addr]);
        let m = client.remove_node(3).await.expect("removed at the primary");
        assert_eq!(m.voters, [1, 2]);
        assert_eq!(client.endpoints(), [a_addr.clone(), b_addr.clone()]);
        assert_eq!((a.calls(), b.calls()), (1, 1));
        // The next primary-bound calls start at the primary that served the write.
        client.remove_node(3).await.expect("removed");
        let status = client.cluster_status().await.expect("status");
        assert_eq!(status.leader_id, Some(2));
        assert_eq!((a.calls(), b.calls()), (1, 3));
        // A hint naming a known endpoint does not add it again.
        let other = client_of(&[&a_addr, &format!("http://{b_addr}/")]);
        other.add_node(4, "h:1").await.expect("added");
        assert_eq!(other.endpoints().len(), 2);
    }

    #[tokio::test]
    async fn without_a_hint_not_leader_moves_to_the_next_endpoint() {
        let (a, a_addr) = fake::start(fake::Answer::NotLeader(None)).await;
        let (b, b_addr) = fake::start(fake::Answer::Ok).await;
        let client = client_of(&[&a_addr, &b_addr]);
        client.remove_node(3).await.expect("removed");
        assert_eq!((a.calls(), b.calls()), (1, 1));
        client.remove_node(3).await.expect("removed");
        assert_eq!((a.calls(), b.calls()), (1, 2));
        assert_eq!(client.endpoints().len(), 2);
    }

    #[tokio::test]
    async fn commit_timeout_and_refusals_are_not_retried() {
        use crate::error::reason;
        let (a, a_addr) = fake::start(fake::Answer::Status(
            tonic::Code::DeadlineExceeded,
            reason::COMMIT_TIMEOUT,
        ))
        .await;
        let (b, b_addr) = fake::start(fake::Answer::Ok).await;
        let client = client_of(&[&a_addr, &b_addr]);
        let err = client.add_node(4, "h:1").await.expect_err("timed out");
        assert!(err.is_indeterminate(), "{err:?}");
        assert_eq!(err.reason(), Some(reason::COMMIT_TIMEOUT));
        assert_eq!((a.calls(), b.calls()), (1, 0));

        *a.answer.lock().expect("lock") = fake::Answer::Status(
            tonic::Code::FailedPrecondition,
            reason::MEMBERSHIP_CHANGE_REFUSED,
        );
        let err = client.remove_node(1).await.expect_err("refused");
        assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
        assert_eq!((a.calls(), b.calls()), (2, 0));

        // A replica behind the session, or over a staleness bound, sends the call elsewhere.
        *a.answer.lock().expect("lock") =
            fake::Answer::Status(tonic::Code::Unavailable, reason::SESSION_BEHIND);
        client.cluster_status().await.expect("served elsewhere");
        assert_eq!((a.calls(), b.calls()), (3, 1));
    }
}
