//! The leaderless quorum protocol (DESIGN.md §6): any replica coordinates a write, versions
//! are dotted version vectors with hybrid-logical stamps, each origin's updates travel to
//! every peer in order with their dependencies (causal delivery), and repairs converge
//! replicas: read repair, the durable outgoing log (a peer that was down receives what it
//! missed — hinted handoff without a second copy), and periodic anti-entropy over range
//! digests.
//!
//! - [`object`]: the versions of a key and their orders;
//! - [`delivery`]: the causal-delivery buffer;
//! - [`digest`]: range digests for anti-entropy;
//! - [`applier`]: the one thread that changes quorum data, in synced groups;
//! - this module: the replica's handle ([`Quorum`]) — coordinator steps (read and merge at a
//!   quorum of replicas, wait for stream acknowledgements or for the session's causal past),
//!   the per-peer senders, anti-entropy and tombstone collection — and the peer service.
//!
//! Deletes are tombstones, collected once every replica has applied them and a grace period
//! has passed (a death certificate outliving the grace period is what keeps a deleted key
//! from coming back from a replica that was down).

pub mod applier;
pub mod delivery;
pub mod digest;
pub mod object;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialkv_consistency::clock::{ReplicaId, VectorClock};
use dialkv_proto::replication::{quorum_client::QuorumClient, QuorumMessage};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tonic::transport::Channel;

use self::applier::{wall_ns, Applier, Job, LocalWrite, Published, Update, Written};
use self::object::{Object, Policy};
use crate::error::ServiceError;
use crate::peer_stream::{self, Link, Replies};
use crate::replication::network::MAX_RAFT_MESSAGE_BYTES;
use crate::replication::Replica;
use crate::storage::keys::NamespaceId;
use crate::storage::store::Store;
use crate::storage::{Cf, Engine, ReadTier, StorageError};

/// Settings of the quorum protocol.
#[derive(Clone, Debug)]
pub struct QuorumOptions {
    /// How often each replica runs anti-entropy with one of its peers (round robin).
    pub anti_entropy: Duration,
    /// How long a tombstone is kept after every replica has it.
    pub tombstone_grace: Duration,
    /// The longest a coordinator waits for replicas to answer.
    pub timeout: Duration,
    /// How long a quorum read waits for the peers it asked first before it asks the others
    /// too (a hedged read).
    pub hedge_after: Duration,
    /// How often an origin tells each peer where its stream is, even with nothing to send
    /// (what bounded-staleness reads measure lag by).
    pub heartbeat: Duration,
    /// TEST ONLY, UNSAFE: serve LINEARIZABLE with one replica read and one written, so that
    /// quorums need not intersect (for proving that the harness catches it).
    pub unsafe_weak_quorums: bool,
}

impl Default for QuorumOptions {
    fn default() -> Self {
        Self {
            anti_entropy: Duration::from_secs(5),
            tombstone_grace: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
            hedge_after: Duration::from_millis(10),
            heartbeat: Duration::from_millis(100),
            unsafe_weak_quorums: false,
        }
    }
}

/// An origin's stream as a receiver knows it.
#[derive(Clone, Copy, Debug)]
struct OriginView {
    /// The origin's last position, as it announced.
    announced: u64,
    /// When this replica last had everything announced applied.
    caught_up: Option<Instant>,
}

/// A peer as its sender knows it.
#[derive(Clone, Debug)]
struct PeerView {
    /// The peer's applied vector, as it last answered.
    vv: VectorClock,
}

#[derive(Debug, Default)]
struct Views {
    peers: HashMap<ReplicaId, PeerView>,
    origins: HashMap<ReplicaId, OriginView>,
    /// Peers whose stream has a gap here (their log was trimmed past what this replica
    /// has): anti-entropy with them soon.
    repair: Vec<ReplicaId>,
}

/// An origin's updates for a peer.
#[derive(Debug, Serialize, Deserialize)]
pub struct PushRequest {
    origin: ReplicaId,
    /// The origin's last position.
    seq: u64,
    /// The origin no longer has its log through here.
    trimmed: u64,
    updates: Vec<Update>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PushResponse {
    vv: VectorClock,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReadRequest {
    ns: NamespaceId,
    key: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReadResponse {
    object: Option<Object>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MergeRequest {
    ns: NamespaceId,
    key: Vec<u8>,
    object: Object,
    policy: Policy,
}

#[derive(Debug, Serialize, Deserialize)]
struct DigestResponse {
    vv: VectorClock,
    namespaces: Vec<(NamespaceId, Vec<u64>)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FetchRequest {
    ns: NamespaceId,
    leaves: Vec<u16>,
    after: Option<Vec<u8>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FetchResponse {
    items: Vec<(Vec<u8>, Object)>,
    more: bool,
}

/// The RPCs of the peer service.
#[derive(Clone, Copy, Debug)]
enum Rpc {
    Push,
    Read,
    Merge,
    Digest,
    Fetch,
}

/// The most bytes of updates in one push, and of items in one fetch.
const MAX_PUSH_BYTES: usize = 4 << 20;

/// One replica's side of the quorum protocol.
pub struct Quorum {
    me: ReplicaId,
    engine: Arc<dyn Engine>,
    store: Arc<Store>,
    replica: Replica,
    jobs: mpsc::Sender<Job>,
    published: Arc<Mutex<Published>>,
    applied: watch::Receiver<VectorClock>,
    views: Mutex<Views>,
    /// Bumped whenever a peer acknowledges more of this replica's stream.
    acks: watch::Sender<u64>,
    metrics: Arc<crate::metrics::Metrics>,
    /// When this replica started: writes wait (briefly) until the peers have said how much of
    /// its stream they hold.
    started: Instant,
    /// Set once that wait is over.
    synced: std::sync::atomic::AtomicBool,
    /// Each peer's share of [`MAX_CALLS_PER_PEER`].
    outstanding: Mutex<HashMap<ReplicaId, Arc<Semaphore>>>,
    /// Quorum reads coordinated, for taking peers in turn.
    reads: AtomicUsize,
    /// The settings.
    pub options: QuorumOptions,
}

/// The longest a freshly started replica holds writes back until it has heard from its peers.
pub const STARTUP_SYNC: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("me", &self.me)
            .field("applied", &*self.applied.borrow())
            .finish()
    }
}

fn unavailable(reason: &'static str, message: String) -> ServiceError {
    ServiceError::Unavailable {
        reason,
        message,
        retry_after: Some(Duration::from_millis(100)),
    }
}

fn storage(e: impl std::fmt::Display) -> ServiceError {
    unavailable("STORAGE_FAILED", format!("quorum storage: {e}"))
}

/// The most calls a replica has outstanding to one peer for the coordinator's fan-out (reads
/// and merges of client requests): far above what a responsive peer holds (about two per
/// concurrent client request), and a bound on what a peer that stopped answering piles up
/// within the coordinator timeout.
pub const MAX_CALLS_PER_PEER: usize = 4096;

/// A client of the quorum peer service over `channel`.
fn quorum_client(channel: Channel) -> QuorumClient<Channel> {
    QuorumClient::new(channel)
        .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
}

/// `req`, encoded, from replica `me` to replica `peer`.
fn message<Req: Serialize>(
    me: ReplicaId,
    peer: ReplicaId,
    req: &Req,
) -> Result<QuorumMessage, String> {
    Ok(QuorumMessage {
        from: me,
        to: peer,
        payload: bincode::serialize(req).map_err(|e| e.to_string())?.into(),
    })
}

/// Calls `rpc` on replica `peer` over `channel` on behalf of replica `me`, within `timeout`.
async fn call_peer<Req: Serialize, Resp: DeserializeOwned>(
    channel: Channel,
    me: ReplicaId,
    peer: ReplicaId,
    rpc: Rpc,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, String> {
    let mut client = quorum_client(channel);
    let mut request = tonic::Request::new(message(me, peer, req)?);
    request.set_timeout(timeout);
    let call = async {
        match rpc {
            Rpc::Push => client.push(request).await,
            Rpc::Read => client.read(request).await,
            Rpc::Merge => client.merge(request).await,
            Rpc::Digest => client.digest(request).await,
            Rpc::Fetch => client.fetch(request).await,
        }
    };
    let reply = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| format!("replica {peer} did not answer within {timeout:?}"))?
        .map_err(|s| format!("replica {peer}: {}", s.message()))?;
    bincode::deserialize(&reply.into_inner().payload).map_err(|e| e.to_string())
}

impl Quorum {
    /// Recovers the protocol's state from `engine` and starts the applier thread and the
    /// background tasks (senders, anti-entropy, collection), which stop when `stop` flips.
    pub fn start(
        me: ReplicaId,
        engine: Arc<dyn Engine>,
        store: Arc<Store>,
        replica: Replica,
        options: QuorumOptions,
        metrics: Arc<crate::metrics::Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Result<(Arc<Self>, std::thread::JoinHandle<()>), StorageError> {
        let published = Arc::new(Mutex::new(Published::default()));
        let (applied_tx, applied) = watch::channel(VectorClock::new());
        let catalog = store.clone();
        let applier = Applier::recover(me, engine.clone(), published.clone(), applied_tx)?
            .with_drop_check(move |ns| catalog.namespace_dropped(ns));
        let (jobs, rx) = mpsc::channel(4096);
        let thread = std::thread::Builder::new()
            .name("quorum-applier".into())
            .spawn(move || applier.run(rx))
            .map_err(|e| StorageError::Engine(format!("starting the quorum applier: {e}")))?;
        let quorum = Arc::new(Quorum {
            me,
            engine,
            store,
            replica,
            jobs,
            published,
            applied,
            views: Mutex::new(Views::default()),
            acks: watch::channel(0).0,
            metrics,
            started: Instant::now(),
            synced: std::sync::atomic::AtomicBool::new(false),
            outstanding: Mutex::new(HashMap::new()),
            reads: AtomicUsize::new(0),
            options,
        });
        tokio::spawn(quorum.clone().supervise(stop));
        Ok((quorum, thread))
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.me
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Job,
    ) -> Result<T, ServiceError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(job(tx))
            .await
            .map_err(|_| unavailable("STOPPING", "the replica is shutting down".into()))?;
        rx.await
            .map_err(|_| unavailable("STOPPING", "the replica is shutting down".into()))?
            .map_err(storage)
    }

    /// Coordinates a write here: stamps it, stores it durably and appends it to this
    /// replica's outgoing stream.
    pub async fn write_local(&self, w: LocalWrite) -> Result<Written, ServiceError> {
        self.startup_sync().await;
        self.submit(|tx| Job::Write(w, tx)).await
    }

    /// Right after a start, waits until every peer has answered once (at most
    /// [`STARTUP_SYNC`]): a peer that holds more of this replica's own stream than this
    /// replica does (its data was restored from an older copy) makes it skip ahead first, so
    /// no stream position, and no dot, is ever used twice.
    pub async fn startup_sync(&self) {
        if self.synced.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let deadline = self.started + STARTUP_SYNC;
        let mut changes = self.acks.subscribe();
        loop {
            let heard = self.is_member() && {
                let ids = self.peer_ids();
                let views = self.views.lock().expect("views lock poisoned");
                ids.iter().all(|p| views.peers.contains_key(p))
            };
            if heard || Instant::now() >= deadline {
                self.synced
                    .store(true, std::sync::atomic::Ordering::Release);
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, changes.changed()).await;
        }
    }

    /// Merges versions into this replica's.
    pub async fn merge_local(
        &self,
        items: Vec<(NamespaceId, Vec<u8>, Object, Policy)>,
    ) -> Result<(), ServiceError> {
        self.submit(|reply| Job::Merge { items, reply }).await
    }

    /// Reads this replica's versions of a key.
    pub async fn read_local(
        &self,
        ns: NamespaceId,
        key: &[u8],
    ) -> Result<Option<Object>, ServiceError> {
        match applier::read(&*self.engine, ns, key, ReadTier::Memory) {
            Err(StorageError::WouldBlock) => {}
            other => return other.map_err(storage),
        }
        let (engine, key) = (self.engine.clone(), key.to_vec());
        tokio::task::spawn_blocking(move || applier::read(&*engine, ns, &key, ReadTier::Any))
            .await
            .map_err(storage)?
            .map_err(storage)
    }

    /// Scans this replica's keys of `ns` in `[start, end)` (`end` empty: to the end), up to
    /// `limit` keys or about `max_bytes`. Returns the items and whether more remain.
    pub async fn scan_local(
        &self,
        ns: NamespaceId,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(Vec<u8>, Object)>, bool), ServiceError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let lo = applier::data_key(ns, &start);
            let hi = if end.is_empty() {
                (ns + 1).to_be_bytes().to_vec()
            } else {
                applier::data_key(ns, &end)
            };
            let mut items = Vec::new();
            let (mut bytes, mut more, mut bad) = (0, false, false);
            engine.scan(Cf::Quorum, &lo, Some(&hi), ReadTier::Any, &mut |k, v| {
                let Some(o) = object::decode(v) else {
                    bad = true;
                    return false;
                };
                if object::visible(&o).is_none() {
                    return true;
                }
                if items.len() >= limit || bytes >= max_bytes {
                    more = true;
                    return false;
                }
                bytes += k.len() + v.len();
                items.push((k[4..].to_vec(), o));
                true
            })?;
            if bad {
                return Err(StorageError::Corrupt {
                    cf: Cf::Quorum,
                    reason: "undecodable object".into(),
                });
            }
            Ok((items, more))
        })
        .await
        .map_err(storage)?
        .map_err(storage)
    }

    /// This replica's last position in its own stream.
    pub fn position(&self) -> u64 {
        self.published.lock().expect("published lock poisoned").seq
    }

    /// What this replica has applied, per origin.
    pub fn applied(&self) -> VectorClock {
        self.applied.borrow().clone()
    }

    /// Waits (at most `within`) until this replica has applied everything in `needed`.
    pub async fn wait_covered(&self, needed: &VectorClock, within: Duration) -> bool {
        let mut applied = self.applied.clone();
        let covered = tokio::time::timeout(within, applied.wait_for(|vv| needed.le(vv)))
            .await
            .is_ok_and(|r| r.is_ok());
        covered
    }

    /// How far behind the other replicas this one is known to be: the most updates any
    /// origin announced that are not applied here, and the longest time since this replica
    /// had applied everything an origin announced (`None` when some peer was never heard).
    pub fn lag(&self) -> (u64, Option<Duration>) {
        let vv = self.applied();
        let views = self.views.lock().expect("views lock poisoned");
        let peers = self.peer_ids();
        let mut versions = 0;
        let mut time = Some(Duration::ZERO);
        for p in peers {
            match views.origins.get(&p) {
                Some(o) => {
                    versions = versions.max(o.announced.saturating_sub(vv.get(p)));
                    time = match (time, o.caught_up) {
                        (Some(t), Some(c)) => Some(t.max(c.elapsed())),
                        _ => None,
                    };
                }
                None => time = None,
            }
        }
        (versions, time)
    }

    /// The other members of the cluster with their addresses.
    fn peers(&self) -> Vec<(ReplicaId, String)> {
        self.replica
            .member_addresses()
            .into_iter()
            .filter(|(id, _)| *id != self.me)
            .filter_map(|(id, a)| a.map(|a| (id, a)))
            .collect()
    }

    /// Whether this replica is in the cluster's membership (as it knows it).
    fn is_member(&self) -> bool {
        self.replica
            .member_addresses()
            .iter()
            .any(|(id, _)| *id == self.me)
    }

    fn peer_ids(&self) -> Vec<ReplicaId> {
        self.replica
            .member_addresses()
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| *id != self.me)
            .collect()
    }

    /// The replicas of a quorum namespace: every member (N is the cluster size).
    pub fn replica_count(&self) -> usize {
        self.peer_ids().len() + 1
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: ReplicaId,
        addr: &str,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, String> {
        let channel = self.replica.peers().channel(addr);
        call_peer(channel, self.me, peer, rpc, req, timeout).await
    }

    /// The calls this replica may have outstanding to `peer` at once.
    fn outstanding(&self, peer: ReplicaId) -> Arc<Semaphore> {
        self.outstanding
            .lock()
            .expect("outstanding lock poisoned")
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_CALLS_PER_PEER)))
            .clone()
    }

    /// Sends `req` to every peer, each call its own task, and returns their results as they
    /// come. A call still running when the caller has what it needs (and drops the receiver)
    /// runs to its end, within the coordinator timeout, rather than being cancelled: a
    /// cancelled call resets its HTTP/2 stream, and a peer that sees more than a few streams
    /// reset before it accepted them (as a loaded peer does, when every request drops its
    /// slower peer's call) closes the whole connection as h2's rapid-reset guard, failing
    /// every other call on it. A merge that runs to its end also delivers the version to that
    /// peer, which is the point of it.
    ///
    /// The tasks hold a channel and the request only, not this replica's state (whose last
    /// reference ends the applier thread at shutdown), and at most [`MAX_CALLS_PER_PEER`]
    /// run at once for each peer: past that (a peer that stopped answering) a call fails at
    /// once, and the peer gets the write from this replica's stream instead.
    fn fan_out<Req, Resp>(&self, rpc: Rpc, req: Req) -> mpsc::Receiver<Result<Resp, String>>
    where
        Req: Serialize + Send + Sync + 'static,
        Resp: DeserializeOwned + Send + 'static,
    {
        let peers = self.peers();
        let (tx, rx) = mpsc::channel(peers.len().max(1));
        self.spawn_calls(peers, rpc, Arc::new(req), &tx);
        rx
    }

    /// Starts one call of `rpc` to each of `peers` (see [`Quorum::fan_out`]); each sends its
    /// result on `tx`, which must have room for one result per peer.
    fn spawn_calls<Req, Resp>(
        &self,
        peers: Vec<(ReplicaId, String)>,
        rpc: Rpc,
        req: Arc<Req>,
        tx: &mpsc::Sender<Result<Resp, String>>,
    ) where
        Req: Serialize + Send + Sync + 'static,
        Resp: DeserializeOwned + Send + 'static,
    {
        for (id, addr) in peers {
            let Ok(permit) = self.outstanding(id).try_acquire_owned() else {
                let _ = tx.try_send(Err(format!(
                    "replica {id} has {MAX_CALLS_PER_PEER} calls outstanding"
                )));
                continue;
            };
            let channel = self.replica.peers().channel(&addr);
            let (me, timeout, req, tx) = (self.me, self.options.timeout, req.clone(), tx.clone());
            tokio::spawn(async move {
                let result = call_peer::<Req, Resp>(channel, me, id, rpc, &req, timeout).await;
                drop(permit);
                let _ = tx.send(result).await;
            });
        }
    }

    /// Reads a key at `r` replicas, this one included: the versions of each that answered,
    /// as soon as `r` have. UNAVAILABLE / QUORUM_UNAVAILABLE when fewer can.
    ///
    /// The read is hedged: it asks the `r - 1` peers with the fewest calls outstanding first,
    /// and the others only when one of those fails, or fewer than `r` have answered within
    /// [`QuorumOptions::hedge_after`]. Asking every peer at once made each replica serve a
    /// read whose answer was thrown away for every read it coordinated; a peer that stopped
    /// answering keeps its calls outstanding (until they time out), so meanwhile it is not
    /// asked first.
    pub async fn read_quorum(
        &self,
        ns: NamespaceId,
        key: &[u8],
        r: usize,
    ) -> Result<Vec<Option<Object>>, ServiceError> {
        let mut got = vec![self.read_local(ns, key).await?];
        if got.len() >= r {
            return Ok(got);
        }
        let req = Arc::new(ReadRequest {
            ns,
            key: key.to_vec(),
        });
        // Peers in turn, so that ties spread reads evenly; then the least busy first.
        let mut peers = self.peers();
        if !peers.is_empty() {
            let turn = self.reads.fetch_add(1, Ordering::Relaxed) % peers.len();
            peers.rotate_left(turn);
        }
        let busy = |id: ReplicaId| {
            MAX_CALLS_PER_PEER.saturating_sub(self.outstanding(id).available_permits())
        };
        peers.sort_by_cached_key(|(id, _)| busy(*id));
        let later = peers.split_off((r - got.len()).min(peers.len()));
        let (tx, mut calls) = mpsc::channel(peers.len() + later.len() + 1);
        // Kept until the rest are asked, then dropped: once every call's task is done
        // (answered, or ended without answering) the channel closes.
        let mut tx = Some(tx);
        // Calls started and not answered yet: each started call answers exactly once.
        let mut pending = peers.len();
        if let Some(tx) = &tx {
            self.spawn_calls::<_, ReadResponse>(peers, Rpc::Read, req.clone(), tx);
        }
        let mut later = Some(later);
        let hedge = tokio::time::sleep(self.options.hedge_after);
        tokio::pin!(hedge);
        let mut errors = Vec::new();
        loop {
            let ask_the_rest = tokio::select! {
                result = calls.recv(), if pending > 0 => {
                    pending -= 1;
                    match result {
                        Some(Ok(resp)) => {
                            got.push(resp.object);
                            if got.len() >= r {
                                return Ok(got);
                            }
                            pending == 0
                        }
                        Some(Err(e)) => {
                            errors.push(e);
                            true
                        }
                        // Every task is done and the rest were asked: nothing more comes.
                        None => break,
                    }
                }
                () = &mut hedge, if later.is_some() => true,
                else => break,
            };
            if ask_the_rest {
                match later.take() {
                    Some(rest) => {
                        pending += rest.len();
                        if let Some(tx) = tx.take() {
                            self.spawn_calls::<_, ReadResponse>(rest, Rpc::Read, req.clone(), &tx);
                        }
                    }
                    None if pending == 0 => break,
                    None => {}
                }
            }
        }
        Err(unavailable(
            "QUORUM_UNAVAILABLE",
            format!(
                "{} of the {r} replicas a read needs answered ({}); nothing was written, retry",
                got.len(),
                errors.join("; ")
            ),
        ))
    }

    /// Merges `object` into the replicas other than this one (this one has it already)
    /// until `w` replicas in all have it. Returns how many have it when that is fewer.
    pub async fn merge_quorum(
        &self,
        ns: NamespaceId,
        key: &[u8],
        object: &Object,
        policy: Policy,
        w: usize,
    ) -> Result<(), usize> {
        let mut have = 1;
        if have >= w {
            // The rest learn it from this replica's stream.
            return Ok(());
        }
        let req = MergeRequest {
            ns,
            key: key.to_vec(),
            object: object.clone(),
            policy,
        };
        let mut calls = self.fan_out::<_, ()>(Rpc::Merge, req);
        while let Some(result) = calls.recv().await {
            if result.is_ok() {
                have += 1;
                if have >= w {
                    return Ok(());
                }
            }
        }
        Err(have)
    }

    /// Waits (at most the coordinator timeout) until `count` peers have applied this
    /// replica's stream through `seq`. Returns how many have.
    pub async fn wait_acked(&self, seq: u64, count: usize) -> usize {
        let acked = || {
            let members = self.peer_ids();
            let views = self.views.lock().expect("views lock poisoned");
            members
                .iter()
                .filter(|id| {
                    views
                        .peers
                        .get(id)
                        .is_some_and(|p| p.vv.get(self.me) >= seq)
                })
                .count()
        };
        let mut changes = self.acks.subscribe();
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        loop {
            let n = acked();
            if n >= count {
                return n;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return acked();
            }
        }
    }

    fn policy_of(&self, ns: NamespaceId) -> Option<Policy> {
        self.store
            .namespaces()
            .into_iter()
            .find(|m| m.id == ns)
            .filter(|m| m.spec.protocol == dialkv_proto::v1::Protocol::Quorum as i32)
            .map(|m| policy(&m.spec))
    }

    // ---- background tasks ----

    async fn supervise(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut senders: HashMap<ReplicaId, (String, tokio::task::JoinHandle<()>)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_ae = Instant::now();
        let mut last_gc = Instant::now();
        let mut next_peer = 0usize;
        let mut passes_since_gap = std::collections::BTreeSet::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            {
                let p = self.published.lock().expect("published lock poisoned");
                let m = &self.metrics.quorum;
                m.with_label_values(&["tombstones"])
                    .set(p.tombstones as i64);
                m.with_label_values(&["pending_updates"])
                    .set(p.pending as i64);
                m.with_label_values(&["outgoing_log"])
                    .set(p.seq.saturating_sub(p.trimmed) as i64);
            }
            m_lag(&self.metrics, self.lag().0);
            // One sender per peer, following membership and address changes.
            let peers = self.peers();
            senders.retain(|id, (addr, task)| {
                let keep = peers.iter().any(|(p, a)| p == id && a == addr) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for (id, addr) in &peers {
                senders.entry(*id).or_insert_with(|| {
                    let task = tokio::spawn(self.clone().send_to(*id, addr.clone()));
                    (addr.clone(), task)
                });
            }
            // Forget namespaces dropped since their data arrived.
            let held: Vec<NamespaceId> = self
                .published
                .lock()
                .expect("published lock poisoned")
                .digests
                .namespaces()
                .collect();
            for ns in held {
                if self.store.namespace_dropped(ns) {
                    let _ = self.jobs.send(Job::Forget { ns }).await;
                }
            }
            // Trim what every peer has (everything, with no peer at all).
            let ids = self.peer_ids();
            let min_acked = {
                let views = self.views.lock().expect("views lock poisoned");
                ids.iter()
                    .map(|id| views.peers.get(id).map_or(0, |p| p.vv.get(self.me)))
                    .min()
            };
            // Alone in the membership: nobody to keep the log for. Not in it (yet, or the
            // membership is not loaded): keep everything.
            let member = self.is_member();
            let min_acked = match (member, min_acked) {
                (false, _) => None,
                (true, None) => Some(self.published.lock().expect("published lock poisoned").seq),
                (true, some) => some,
            };
            if let Some(upto) = min_acked {
                let trimmed = self
                    .published
                    .lock()
                    .expect("published lock poisoned")
                    .trimmed;
                if upto > trimmed {
                    let _ = self.jobs.send(Job::Trim { upto }).await;
                }
            }
            // Collect tombstones every replica has.
            if member && last_gc.elapsed() >= Duration::from_secs(1) {
                last_gc = Instant::now();
                // Every other member must have answered (those without a known address too:
                // collecting past one that cannot be asked could bring a key back).
                let replicas: Option<Vec<VectorClock>> = {
                    let views = self.views.lock().expect("views lock poisoned");
                    ids.iter()
                        .map(|id| views.peers.get(id).map(|p| p.vv.clone()))
                        .collect()
                };
                if let Some(replicas) = replicas {
                    let before_ns =
                        wall_ns().saturating_sub(self.options.tombstone_grace.as_nanos() as u64);
                    let _ = self
                        .jobs
                        .send(Job::Collect {
                            replicas,
                            before_ns,
                        })
                        .await;
                }
            }
            // Anti-entropy: a peer with a gap at once, else one peer per interval in turn.
            let urgent = {
                let mut views = self.views.lock().expect("views lock poisoned");
                std::mem::take(&mut views.repair)
            };
            let mut targets: Vec<(ReplicaId, String)> = peers
                .iter()
                .filter(|(id, _)| urgent.contains(id))
                .cloned()
                .collect();
            // The round robin goes on beside urgent repairs (the peer that can repair a gap
            // may not be the one that reported it).
            if !peers.is_empty() && last_ae.elapsed() >= self.options.anti_entropy {
                last_ae = Instant::now();
                next_peer = (next_peer + 1) % peers.len();
                if !targets.contains(&peers[next_peer]) {
                    targets.push(peers[next_peer].clone());
                }
            }
            let gap = self.published.lock().expect("published lock poisoned").gap;
            if !gap {
                passes_since_gap.clear();
            }
            for (id, addr) in targets {
                match self.anti_entropy(id, &addr).await {
                    Ok(true) if gap => {
                        passes_since_gap.insert(id);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(peer = id, error = %e, "anti-entropy round failed"),
                }
            }
            // This replica skipped ahead in its own stream and no member has what it skipped
            // (each has been through a complete pass since): those writes are gone from
            // everywhere, so its own later writes count as applied again.
            if gap && !ids.is_empty() && ids.iter().all(|id| passes_since_gap.contains(id)) {
                let _ = self.jobs.send(Job::ClearGap).await;
                passes_since_gap.clear();
            }
        }
        for (_, (_, task)) in senders {
            task.abort();
        }
    }

    /// Sends this replica's stream to `peer`, from what the peer has applied, forever.
    async fn send_to(self: Arc<Self>, peer: ReplicaId, addr: String) {
        let mut applied = self.applied.clone();
        let mut acked: Option<u64> = None;
        let mut link = Link::Closed;
        loop {
            let (seq, trimmed) = {
                let p = self.published.lock().expect("published lock poisoned");
                (p.seq, p.trimmed)
            };
            let updates = match acked {
                Some(a) if a < seq => {
                    let engine = self.engine.clone();
                    let from = (a + 1).max(trimmed + 1);
                    match tokio::task::spawn_blocking(move || {
                        applier::read_log(&*engine, from, 512, MAX_PUSH_BYTES)
                    })
                    .await
                    {
                        Ok(Ok(u)) => u,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "reading the quorum log");
                            Vec::new()
                        }
                        Err(_) => Vec::new(),
                    }
                }
                _ => Vec::new(),
            };
            let sent = updates.len();
            let req = PushRequest {
                origin: self.me,
                seq,
                trimmed,
                updates,
            };
            match self.push(&mut link, peer, &addr, &req).await {
                Ok(resp) => {
                    let theirs = resp.vv.get(self.me);
                    if theirs > applier::MAX_COUNTER {
                        tracing::warn!(
                            peer,
                            theirs,
                            "a peer answered an impossible stream position"
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    let progressed = acked != Some(theirs);
                    acked = Some(theirs);
                    if theirs > seq {
                        // The peer has more of this replica's stream than this replica: its
                        // data directory was restored from an older copy. Continue after it,
                        // and repair from that peer.
                        let (tx, rx) = oneshot::channel();
                        let _ = self
                            .jobs
                            .send(Job::SkipAhead {
                                to: theirs,
                                reply: tx,
                            })
                            .await;
                        let _ = rx.await;
                        let mut views = self.views.lock().expect("views lock poisoned");
                        if !views.repair.contains(&peer) {
                            views.repair.push(peer);
                        }
                    }
                    self.views
                        .lock()
                        .expect("views lock poisoned")
                        .peers
                        .insert(peer, PeerView { vv: resp.vv });
                    self.acks.send_modify(|n| *n += 1);
                    if sent > 0 && progressed && theirs < seq {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::debug!(peer, error = %e, "push failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            let _ = tokio::time::timeout(self.options.heartbeat, applied.changed()).await;
        }
    }

    /// Sends one push to `peer` over `link`, the push stream of this sender (see
    /// [`crate::peer_stream`]), or as a unary call to a peer without the stream.
    async fn push(
        &self,
        link: &mut Link<QuorumMessage>,
        peer: ReplicaId,
        addr: &str,
        req: &PushRequest,
    ) -> Result<PushResponse, String> {
        let timeout = self.options.timeout;
        if link.is_unary() {
            return self.call(peer, addr, Rpc::Push, req, timeout).await;
        }
        let message = message(self.me, peer, req)?;
        let mut client = quorum_client(self.replica.peers().channel(addr));
        let exchanged = link
            .exchange(message, timeout, |requests| async move {
                client.push_stream(requests).await
            })
            .await;
        match exchanged {
            Ok(reply) => bincode::deserialize(&reply.payload).map_err(|e| {
                *link = Link::Closed;
                e.to_string()
            }),
            // A server from before the stream: unary calls from now on.
            Err(_) if link.is_unary() => self.call(peer, addr, Rpc::Push, req, timeout).await,
            Err(status) => Err(format!("replica {peer}: {}", status.message())),
        }
    }

    /// One anti-entropy pass with `peer`: compare range digests, pull the keys of the ranges
    /// that differ and merge them; when every differing range came through, this replica has
    /// everything the peer had applied, and raises its applied vector to the peer's.
    async fn anti_entropy(&self, peer: ReplicaId, addr: &str) -> Result<bool, String> {
        let timeout = self.options.timeout * 2;
        let theirs: DigestResponse = self.call(peer, addr, Rpc::Digest, &(), timeout).await?;
        let ours = self
            .published
            .lock()
            .expect("published lock poisoned")
            .digests
            .clone();
        // Whether every namespace the peer holds was reconciled: only then does this replica
        // have everything the peer had applied.
        let mut complete = true;
        for (ns, leaves) in &theirs.namespaces {
            let Some(policy) = self.policy_of(*ns) else {
                // Not in this replica's catalog yet: its data cannot be merged, so the
                // applied vector must not be raised past it. (Dropped: nothing to merge.)
                complete &= self.store.namespace_dropped(*ns) || leaves.iter().all(|l| *l == 0);
                continue;
            };
            let differ: Vec<u16> = digest::diff(&ours.of(*ns), leaves)
                .into_iter()
                .map(|l| l as u16)
                .collect();
            if differ.is_empty() {
                continue;
            }
            let mut after = None;
            loop {
                let req = FetchRequest {
                    ns: *ns,
                    leaves: differ.clone(),
                    after: after.clone(),
                };
                let page: FetchResponse = self.call(peer, addr, Rpc::Fetch, &req, timeout).await?;
                after = page.items.last().map(|(k, _)| k.clone());
                let items = page
                    .items
                    .into_iter()
                    .map(|(k, o)| (*ns, k, o, policy))
                    .collect();
                self.merge_local(items).await.map_err(|e| e.to_string())?;
                if !page.more {
                    break;
                }
            }
        }
        if !complete {
            return Ok(false);
        }
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Raise {
                vv: theirs.vv,
                reply: tx,
            })
            .await
            .map_err(|_| "stopping".to_string())?;
        rx.await.map_err(|_| "stopping".to_string())??;
        Ok(true)
    }

    // ---- the peer service's handlers ----

    async fn on_push(&self, from: ReplicaId, req: PushRequest) -> Result<PushResponse, String> {
        let origin = req.origin;
        if origin != from || origin == self.me {
            return Err(format!(
                "replica {from} pushed the stream of replica {origin}; only an origin pushes its own"
            ));
        }
        let first_prev = req.updates.first().map(|u| u.prev);
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Push {
                origin,
                updates: req.updates,
                reply: tx,
            })
            .await
            .map_err(|_| "stopping".to_string())?;
        let vv = rx.await.map_err(|_| "stopping".to_string())??;
        let have = vv.get(origin);
        let mut views = self.views.lock().expect("views lock poisoned");
        let view = views.origins.entry(origin).or_insert(OriginView {
            announced: 0,
            caught_up: None,
        });
        view.announced = view.announced.max(req.seq);
        if have >= view.announced {
            view.caught_up = Some(Instant::now());
        }
        // The origin's log no longer has what this replica needs next (or names a link this
        // replica lacks): repair from it.
        let gap = match first_prev {
            Some(p) => p > have,
            None => have < req.trimmed,
        };
        if gap && !views.repair.contains(&origin) {
            views.repair.push(origin);
        }
        Ok(PushResponse { vv })
    }

    async fn on_digest(&self) -> DigestResponse {
        let (vv, digests) = {
            let p = self.published.lock().expect("published lock poisoned");
            (p.vv.clone(), p.digests.clone())
        };
        // Every quorum namespace of the catalog, and every namespace holding data here (one
        // whose creation the catalog has not applied yet included).
        let mut ids: std::collections::BTreeSet<NamespaceId> = self
            .store
            .namespaces()
            .into_iter()
            .filter(|m| m.spec.protocol == dialkv_proto::v1::Protocol::Quorum as i32)
            .map(|m| m.id)
            .collect();
        ids.extend(digests.namespaces());
        ids.retain(|id| !self.store.namespace_dropped(*id));
        let namespaces = ids.into_iter().map(|id| (id, digests.of(id))).collect();
        DigestResponse { vv, namespaces }
    }

    async fn on_fetch(&self, req: FetchRequest) -> Result<FetchResponse, String> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let wanted: std::collections::BTreeSet<usize> =
                req.leaves.iter().map(|l| *l as usize).collect();
            let lo = match &req.after {
                Some(k) => {
                    let mut k = applier::data_key(req.ns, k);
                    k.push(0);
                    k
                }
                None => req.ns.to_be_bytes().to_vec(),
            };
            let hi = req.ns.saturating_add(1).to_be_bytes().to_vec();
            let mut items = Vec::new();
            let (mut bytes, mut more) = (0, false);
            engine
                .scan(Cf::Quorum, &lo, Some(&hi), ReadTier::Any, &mut |k, v| {
                    let key = &k[4..];
                    if !wanted.contains(&digest::leaf(key)) {
                        return true;
                    }
                    if bytes >= MAX_PUSH_BYTES {
                        more = true;
                        return false;
                    }
                    if let Some(o) = object::decode(v) {
                        bytes += k.len() + v.len();
                        items.push((key.to_vec(), o));
                    }
                    true
                })
                .map_err(|e| e.to_string())?;
            Ok(FetchResponse { items, more })
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

fn m_lag(metrics: &crate::metrics::Metrics, versions: u64) {
    metrics
        .quorum
        .with_label_values(&["lag_versions"])
        .set(versions as i64);
}

/// The conflict policy of a namespace spec.
pub fn policy(spec: &dialkv_proto::v1::NamespaceSpec) -> Policy {
    if spec.conflicts == dialkv_proto::v1::ConflictPolicy::Siblings as i32 {
        Policy::Siblings
    } else {
        Policy::LastWriterWins
    }
}

/// The peer service of the quorum protocol.
#[derive(Clone, Debug)]
pub struct QuorumService {
    quorum: Arc<Quorum>,
}

impl QuorumService {
    /// Serves `quorum`.
    pub fn new(quorum: Arc<Quorum>) -> Self {
        Self { quorum }
    }

    fn open<T: DeserializeOwned>(&self, msg: QuorumMessage) -> Result<T, tonic::Status> {
        if msg.to != self.quorum.me {
            return Err(tonic::Status::failed_precondition(format!(
                "this is replica {}, not {}",
                self.quorum.me, msg.to
            )));
        }
        bincode::deserialize(&msg.payload)
            .map_err(|e| tonic::Status::invalid_argument(format!("undecodable message: {e}")))
    }

    /// Decodes a request, runs `handler` on it and encodes its answer; the request is
    /// counted in the replica's peer request metrics as `rpc` (`Quorum.Merge`, ...).
    async fn handle<Req, Resp, Fut>(
        &self,
        rpc: &str,
        request: tonic::Request<QuorumMessage>,
        handler: impl FnOnce(Arc<Quorum>, ReplicaId, Req) -> Fut,
    ) -> Result<tonic::Response<QuorumMessage>, tonic::Status>
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        Fut: std::future::Future<Output = Result<Resp, tonic::Status>>,
    {
        self.handle_message(rpc, request.into_inner(), handler)
            .await
            .map(tonic::Response::new)
    }

    /// [`QuorumService::handle`] for one message of a stream.
    async fn handle_message<Req, Resp, Fut>(
        &self,
        rpc: &str,
        msg: QuorumMessage,
        handler: impl FnOnce(Arc<Quorum>, ReplicaId, Req) -> Fut,
    ) -> Result<QuorumMessage, tonic::Status>
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        Fut: std::future::Future<Output = Result<Resp, tonic::Status>>,
    {
        let started = Instant::now();
        let answer = async {
            let from = msg.from;
            let req: Req = self.open(msg)?;
            let resp = handler(self.quorum.clone(), from, req).await?;
            self.reply(from, &resp)
        }
        .await;
        let code = answer
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.quorum
            .metrics
            .observe_peer_request(rpc, code, started.elapsed().as_secs_f64());
        answer
    }

    fn reply<T: Serialize>(&self, to: u64, body: &T) -> Result<QuorumMessage, tonic::Status> {
        Ok(QuorumMessage {
            from: self.quorum.me,
            to,
            payload: bincode::serialize(body)
                .map_err(|e| tonic::Status::internal(e.to_string()))?
                .into(),
        })
    }
}

fn internal(e: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::unavailable(e.to_string())
}

#[tonic::async_trait]
impl dialkv_proto::replication::quorum_server::Quorum for QuorumService {
    async fn push(
        &self,
        request: tonic::Request<QuorumMessage>,
    ) -> Result<tonic::Response<QuorumMessage>, tonic::Status> {
        self.handle(
            "Quorum.Push",
            request,
            |q, from, req: PushRequest| async move { q.on_push(from, req).await.map_err(internal) },
        )
        .await
    }

    type PushStreamStream = Replies<QuorumMessage>;

    async fn push_stream(
        &self,
        request: tonic::Request<tonic::Streaming<QuorumMessage>>,
    ) -> Result<tonic::Response<Replies<QuorumMessage>>, tonic::Status> {
        let service = self.clone();
        let replies = peer_stream::serve(request.into_inner(), move |msg| {
            let service = service.clone();
            async move {
                service
                    .handle_message("Quorum.Push", msg, |q, from, req: PushRequest| async move {
                        q.on_push(from, req).await.map_err(internal)
                    })
                    .await
            }
        });
        Ok(tonic::Response::new(replies))
    }

    async fn read(
        &self,
        request: tonic::Request<QuorumMessage>,
    ) -> Result<tonic::Response<QuorumMessage>, tonic::Status> {
        self.handle(
            "Quorum.Read",
            request,
            |q, _, req: ReadRequest| async move {
                let object = q.read_local(req.ns, &req.key).await?;
                Ok(ReadResponse { object })
            },
        )
        .await
    }

    async fn merge(
        &self,
        request: tonic::Request<QuorumMessage>,
    ) -> Result<tonic::Response<QuorumMessage>, tonic::Status> {
        self.handle(
            "Quorum.Merge",
            request,
            |q, _, req: MergeRequest| async move {
                q.merge_local(vec![(req.ns, req.key, req.object, req.policy)])
                    .await?;
                Ok(())
            },
        )
        .await
    }

    async fn digest(
        &self,
        request: tonic::Request<QuorumMessage>,
    ) -> Result<tonic::Response<QuorumMessage>, tonic::Status> {
        self.handle("Quorum.Digest", request, |q, _, ()| async move {
            Ok(q.on_digest().await)
        })
        .await
    }

    async fn fetch(
        &self,
        request: tonic::Request<QuorumMessage>,
    ) -> Result<tonic::Response<QuorumMessage>, tonic::Status> {
        self.handle(
            "Quorum.Fetch",
            request,
            |q, _, req: FetchRequest| async move { q.on_fetch(req).await.map_err(internal) },
        )
        .await
    }
}
