//! Raft traffic between replicas over gRPC (`dialkv.replication.v1.Raft`).
//!
//! The client side ([`NetworkFactory`], [`PeerClient`]) sends openraft's requests bincode-encoded
//! in a `bytes` field, over one lazily connected channel per peer address, reused across calls
//! and across openraft's per-call clients. The server side ([`RaftService`]) decodes them,
//! hands them to the local Raft instance and returns its whole result, so a remote error comes
//! back as openraft's own `RemoteError`.
//!
//! Addresses: a replica reaches peer `j` at the address its own `--peers` flag gives for `j`
//! when it has one, else at the address stored in the cluster membership. Per-replica
//! addresses let each link go through its own proxy (the fault-injection harness relies on
//! it).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use dialkv_proto::replication::{raft_client::RaftClient, raft_server, RaftMessage};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::flush::Flushes;
use super::log_store::{decode, encode};
use super::types::{NodeId, TypeConfig};

/// The largest Raft message accepted: room for a batch of entries with full-size values.
pub const MAX_RAFT_MESSAGE_BYTES: usize = 256 << 20;

/// How replicas reach each other: local address overrides and one channel per address.
#[derive(Debug)]
pub struct Peers {
    /// This replica's id.
    pub id: NodeId,
    overrides: RwLock<BTreeMap<NodeId, String>>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    /// Peers of replica `id`, with the addresses of its `--peers` flag.
    pub fn new(id: NodeId, overrides: BTreeMap<NodeId, String>) -> Self {
        Self {
            id,
            overrides: RwLock::new(overrides),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The address to reach `target` at: the local override, else `node`'s address.
    pub fn address(&self, target: NodeId, node: Option<&BasicNode>) -> Option<String> {
        let overrides = self.overrides.read().expect("peers lock poisoned");
        overrides
            .get(&target)
            .cloned()
            .or_else(|| node.map(|n| n.addr.clone()))
            .filter(|a| !a.is_empty())
    }

    /// The shared channel to `addr`, created (without connecting) on first use.
    pub fn channel(&self, addr: &str) -> Channel {
        let mut channels = self.channels.lock().expect("channels lock poisoned");
        if let Some(c) = channels.get(addr) {
            return c.clone();
        }
        let uri = if addr.starts_with("http://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let channel = match Endpoint::from_shared(uri) {
            Ok(e) => e
                .connect_timeout(Duration::from_millis(500))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(5))
                .connect_lazy(),
            // An address that is not a URI: a channel to nowhere, whose calls fail as
            // unreachable.
            Err(_) => Endpoint::from_static("http://invalid.invalid:1").connect_lazy(),
        };
        channels.insert(addr.to_string(), channel.clone());
        channel
    }
}

/// Creates [`PeerClient`]s for openraft.
#[derive(Clone, Debug)]
pub struct NetworkFactory {
    peers: Arc<Peers>,
    flushes: Arc<Flushes>,
}

impl NetworkFactory {
    /// A factory reaching peers through `peers`, telling them only the commit index that
    /// `flushes` lets out.
    pub fn new(peers: Arc<Peers>, flushes: Arc<Flushes>) -> Self {
        Self { peers, flushes }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let channel = self
            .peers
            .address(target, Some(node))
            .map(|a| self.peers.channel(&a));
        PeerClient {
            from: self.peers.id,
            target,
            channel,
            flushes: self.flushes.clone(),
        }
    }
}

/// The client side of the Raft RPCs to one peer.
#[derive(Debug)]
pub struct PeerClient {
    from: NodeId,
    target: NodeId,
    channel: Option<Channel>,
    flushes: Arc<Flushes>,
}

/// Maps a transport failure: a peer that cannot be reached is `Unreachable` (openraft backs
/// off), anything else a transient network error.
fn transport_error<E: std::error::Error>(status: tonic::Status) -> RPCError<NodeId, BasicNode, E> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&status))
        }
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(channel) = self.channel.clone() else {
            let e = std::io::Error::other(format!("no address known for replica {}", self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftMessage {
            from: self.from,
            to: self.target,
            payload: payload.into(),
        });
        request.set_timeout(option.hard_ttl());
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        let reply = match method {
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::Snapshot => client.install_snapshot(request).await,
        }
        .map_err(transport_error)?;
        let result: Result<Resp, RaftError<NodeId, E>> = decode(&reply.into_inner().payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        // A backup learns no commit index past what is durable here (see `flush`).
        rpc.leader_commit = self.flushes.clamp_commit(rpc.leader_commit);
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}

/// How fresh a follower's state is: the commit indexes the primary announced in recent
/// AppendEntries, with when each arrived. A follower whose applied index covers a commit index
/// announced at time `t` has every write committed before `t` (less the one-way network
/// delay), so its staleness is at most `now - t`.
#[derive(Debug, Default)]
pub struct Freshness {
    heard: Mutex<VecDeque<(u64, Instant)>>,
}

/// How many announcements are remembered.
const FRESHNESS_WINDOW: usize = 256;

impl Freshness {
    /// Records that the primary announced commit index `commit` just now.
    pub fn heard(&self, commit: u64) {
        let mut heard = self.heard.lock().expect("freshness lock poisoned");
        if heard.back().is_some_and(|(c, _)| *c == commit) {
            heard.pop_back();
        }
        heard.push_back((commit, Instant::now()));
        if heard.len() > FRESHNESS_WINDOW {
            heard.pop_front();
        }
    }

    /// The newest commit index announced.
    pub fn commit(&self) -> u64 {
        self.heard
            .lock()
            .expect("freshness lock poisoned")
            .back()
            .map_or(0, |(c, _)| *c)
    }

    /// How stale a state that has applied up to `applied` is known to be at most; `None` when
    /// nothing is known (no announcement covered by `applied` is remembered).
    pub fn staleness(&self, applied: u64) -> Option<Duration> {
        let heard = self.heard.lock().expect("freshness lock poisoned");
        heard
            .iter()
            .rev()
            .find(|(c, _)| *c <= applied)
            .map(|(_, t)| t.elapsed())
    }
}

/// The server side of the Raft RPCs.
#[derive(Clone)]
pub struct RaftService {
    id: NodeId,
    raft: Raft<TypeConfig>,
    freshness: Arc<Freshness>,
}

impl RaftService {
    /// Serves the Raft RPCs of replica `id`.
    pub fn new(id: NodeId, raft: Raft<TypeConfig>, freshness: Arc<Freshness>) -> Self {
        Self {
            id,
            raft,
            freshness,
        }
    }

    fn unpack<T: DeserializeOwned>(&self, msg: &RaftMessage) -> Result<T, tonic::Status> {
        if msg.to != self.id {
            return Err(tonic::Status::failed_precondition(format!(
                "this is replica {}, not replica {}: check the --peers addresses",
                self.id, msg.to
            )));
        }
        decode(&msg.payload).map_err(|e| tonic::Status::invalid_argument(format!("payload: {e}")))
    }

    fn pack<T: Serialize>(
        &self,
        to: NodeId,
        result: &T,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let payload = encode(result).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(RaftMessage {
            from: self.id,
            to,
            payload: payload.into(),
        }))
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let msg = request.into_inner();
        let req: AppendEntriesRequest<TypeConfig> = self.unpack(&msg)?;
        let commit = req.leader_commit.map(|l| l.index);
        let result = self.raft.append_entries(req).await;
        if let (Ok(AppendEntriesResponse::Success), Some(commit)) = (&result, commit) {
            self.freshness.heard(commit);
        }
        self.pack(msg.from, &result)
    }

    async fn vote(
        &self,
        request: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let msg = request.into_inner();
        let req: VoteRequest<NodeId> = self.unpack(&msg)?;
        let result = self.raft.vote(req).await;
        self.pack(msg.from, &result)
    }

    async fn install_snapshot(
        &self,
        request: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        let msg = request.into_inner();
        let req: InstallSnapshotRequest<TypeConfig> = self.unpack(&msg)?;
        let result = self.raft.install_snapshot(req).await;
        self.pack(msg.from, &result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_is_measured_from_the_newest_covered_announcement() {
        let f = Freshness::default();
        assert_eq!(f.staleness(10), None);
        f.heard(5);
        f.heard(9);
        assert!(f.staleness(4).is_none(), "nothing announced is covered");
        assert!(f.staleness(5).is_some());
        assert_eq!(f.commit(), 9);
        let at9 = f.staleness(9).expect("covered");
        let at5 = f.staleness(5).expect("covered");
        assert!(at9 <= at5, "a newer announcement is fresher");
    }

    #[test]
    fn local_addresses_override_the_membership() {
        let peers = Peers::new(1, BTreeMap::from([(2, "127.0.0.1:9002".to_string())]));
        let node = BasicNode::new("10.0.0.2:7000");
        assert_eq!(
            peers.address(2, Some(&node)).as_deref(),
            Some("127.0.0.1:9002")
        );
        assert_eq!(
            peers.address(3, Some(&node)).as_deref(),
            Some("10.0.0.2:7000")
        );
        assert_eq!(peers.address(4, None), None);
    }
}
