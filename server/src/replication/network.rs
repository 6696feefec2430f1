//! Raft traffic between replicas over gRPC (`dialkv.replication.v1.Raft`).
//!
//! The client side ([`NetworkFactory`], [`PeerClient`]) sends openraft's requests bincode-encoded
//! in a `bytes` field, over one lazily connected channel per peer address, reused across calls
//! and across openraft's per-call clients. The server side ([`RaftService`]) decodes them,
//! hands them to the local Raft instance and returns its whole result, so a remote error comes
//! back as openraft's own `RemoteError`.
//!
//! AppendEntries, the one RPC on every write's path, goes over a long-lived `AppendStream`
//! per [`PeerClient`] (openraft keeps one per replication stream and calls it one request at a
//! time), one HTTP/2 DATA frame a request instead of a unary call's three writes: see
//! [`crate::peer_stream`].
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
#[cfg(test)]
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint};

use super::flush::Flushes;
use super::log_store::{decode, encode};
use super::types::{NodeId, TypeConfig};
use crate::peer_stream::{self, Link, Replies};

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
            append: Link::Closed,
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
    /// How AppendEntries reach the peer.
    append: Link<RaftMessage>,
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
    fn client(&self) -> Result<RaftClient<Channel>, std::io::Error> {
        let Some(channel) = self.channel.clone() else {
            return Err(std::io::Error::other(format!(
                "no address known for replica {}",
                self.target
            )));
        };
        Ok(RaftClient::new(channel)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES))
    }

    /// Sends `rpc` on the append stream (opening it first if none is open) and waits for its
    /// reply, for at most `option`'s hard time limit.
    async fn append_on_stream(
        &mut self,
        rpc: &AppendEntriesRequest<TypeConfig>,
        option: &RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let mut client = self
            .client()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let message = self.message(rpc).map_err(RPCError::Network)?;
        let exchanged = self
            .append
            .exchange(message, option.hard_ttl(), |requests| async move {
                client.append_stream(requests).await
            })
            .await;
        let reply = match exchanged {
            Ok(reply) => reply,
            // A server from before the stream: unary calls from now on.
            Err(_) if self.append.is_unary() => {
                return self.call(Method::Append, rpc, option).await;
            }
            Err(status) => return Err(transport_error(status)),
        };
        let answer = self.answer(&reply.payload);
        if let Err(RPCError::Network(_)) = answer {
            // An undecodable reply: whatever follows on this stream is not to be trusted.
            self.append = Link::Closed;
        }
        answer
    }

    /// `req`, encoded, from this replica to the peer.
    fn message<Req: Serialize>(&self, req: &Req) -> Result<RaftMessage, NetworkError> {
        let payload = encode(req).map_err(|e| NetworkError::new(&e))?;
        Ok(RaftMessage {
            from: self.from,
            to: self.target,
            payload: payload.into(),
        })
    }

    /// The peer's whole result, decoded from a reply's payload: its error as a remote error.
    /// (The error is openraft's, as the `RaftNetwork` methods return it.)
    #[allow(clippy::result_large_err)]
    fn answer<Resp, E>(
        &self,
        payload: &[u8],
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

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
        let mut client = self
            .client()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut request = tonic::Request::new(self.message(req).map_err(RPCError::Network)?);
        request.set_timeout(option.hard_ttl());
        let reply = match method {
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::Snapshot => client.install_snapshot(request).await,
        }
        .map_err(transport_error)?;
        self.answer(&reply.into_inner().payload)
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
        if self.append.is_unary() {
            return self.call(Method::Append, &rpc, &option).await;
        }
        self.append_on_stream(&rpc, &option).await
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
        self.reply(to, result).map(tonic::Response::new)
    }

    fn reply<T: Serialize>(&self, to: NodeId, result: &T) -> Result<RaftMessage, tonic::Status> {
        let payload = encode(result).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(RaftMessage {
            from: self.id,
            to,
            payload: payload.into(),
        })
    }

    /// Hands one AppendEntries request to Raft and packs its whole result.
    async fn append(&self, msg: RaftMessage) -> Result<RaftMessage, tonic::Status> {
        let req: AppendEntriesRequest<TypeConfig> = self.unpack(&msg)?;
        let commit = req.leader_commit.map(|l| l.index);
        let result = self.raft.append_entries(req).await;
        if let (Ok(AppendEntriesResponse::Success), Some(commit)) = (&result, commit) {
            self.freshness.heard(commit);
        }
        self.reply(msg.from, &result)
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        self.append(request.into_inner())
            .await
            .map(tonic::Response::new)
    }

    type AppendStreamStream = Replies<RaftMessage>;

    async fn append_stream(
        &self,
        request: tonic::Request<tonic::Streaming<RaftMessage>>,
    ) -> Result<tonic::Response<Replies<RaftMessage>>, tonic::Status> {
        let service = self.clone();
        let replies = peer_stream::serve(request.into_inner(), move |msg| {
            let service = service.clone();
            async move { service.append(msg).await }
        });
        Ok(tonic::Response::new(replies))
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
    use dialkv_proto::replication::raft_server::RaftServer;
    use openraft::{CommittedLeaderId, LogId, Vote};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The index a request's `leader_commit` carries to make the fake peer hold its reply.
    const SLOW: u64 = 1_000_000;

    /// A peer that answers each AppendEntries with `PartialSuccess` at the request's own
    /// commit index (so a reply shows which request it answers), holds the reply of a request
    /// at [`SLOW`] for ten seconds, and counts the streams and unary calls it was sent.
    #[derive(Clone, Default)]
    struct FakePeer {
        /// Refuse the stream, as a server from before it would.
        no_streams: bool,
        streams: Arc<AtomicUsize>,
        unary: Arc<AtomicUsize>,
    }

    impl FakePeer {
        async fn answer(msg: RaftMessage) -> Result<RaftMessage, tonic::Status> {
            let req: AppendEntriesRequest<TypeConfig> =
                decode(&msg.payload).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            if req.leader_commit.is_some_and(|c| c.index == SLOW) {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            let result: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
                Ok(AppendEntriesResponse::PartialSuccess(req.leader_commit));
            Ok(RaftMessage {
                from: msg.to,
                to: msg.from,
                payload: encode(&result).expect("encodes").into(),
            })
        }
    }

    #[tonic::async_trait]
    impl raft_server::Raft for FakePeer {
        async fn append_entries(
            &self,
            request: tonic::Request<RaftMessage>,
        ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
            self.unary.fetch_add(1, Ordering::SeqCst);
            Self::answer(request.into_inner())
                .await
                .map(tonic::Response::new)
        }

        type AppendStreamStream = Replies<RaftMessage>;

        async fn append_stream(
            &self,
            request: tonic::Request<tonic::Streaming<RaftMessage>>,
        ) -> Result<tonic::Response<Replies<RaftMessage>>, tonic::Status> {
            if self.no_streams {
                return Err(tonic::Status::unimplemented("no append stream here"));
            }
            self.streams.fetch_add(1, Ordering::SeqCst);
            Ok(tonic::Response::new(peer_stream::serve(
                request.into_inner(),
                Self::answer,
            )))
        }

        async fn vote(
            &self,
            _: tonic::Request<RaftMessage>,
        ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
            Err(tonic::Status::unimplemented("not in this test"))
        }

        async fn install_snapshot(
            &self,
            _: tonic::Request<RaftMessage>,
        ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
            Err(tonic::Status::unimplemented("not in this test"))
        }
    }

    /// A client of replica 1 to `peer` (replica 2), served on a loopback port.
    async fn client_of(peer: FakePeer) -> PeerClient {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("has an address");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RaftServer::new(peer))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let peers = Arc::new(Peers::new(1, BTreeMap::new()));
        let mut factory = NetworkFactory::new(peers, Arc::new(Flushes::default()));
        factory
            .new_client(2, &BasicNode::new(addr.to_string()))
            .await
    }

    fn request(commit: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: Some(LogId::new(CommittedLeaderId::new(1, 1), commit)),
        }
    }

    /// The commit index a fake peer's reply names.
    fn answered(
        reply: Result<
            AppendEntriesResponse<NodeId>,
            RPCError<NodeId, BasicNode, RaftError<NodeId>>,
        >,
    ) -> u64 {
        match reply {
            Ok(AppendEntriesResponse::PartialSuccess(Some(id))) => id.index,
            other => panic!("not a fake peer's reply: {other:?}"),
        }
    }

    #[tokio::test]
    async fn appends_share_one_stream_and_each_gets_its_own_reply() {
        let peer = FakePeer::default();
        let mut client = client_of(peer.clone()).await;
        let option = RPCOption::new(Duration::from_secs(5));
        for commit in 1..=5 {
            assert_eq!(
                answered(client.append_entries(request(commit), option.clone()).await),
                commit
            );
        }
        assert_eq!(peer.streams.load(Ordering::SeqCst), 1);
        assert_eq!(peer.unary.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_late_reply_is_dropped_with_its_stream() {
        let peer = FakePeer::default();
        let mut client = client_of(peer.clone()).await;
        let option = RPCOption::new(Duration::from_secs(5));
        assert_eq!(
            answered(client.append_entries(request(1), option.clone()).await),
            1
        );
        let short = RPCOption::new(Duration::from_millis(100));
        match client.append_entries(request(SLOW), short).await {
            Err(RPCError::Unreachable(_)) => {}
            other => panic!("a request past its time limit fails as unreachable: {other:?}"),
        }
        // The held reply to SLOW must not be taken as the answer to the next request.
        assert_eq!(answered(client.append_entries(request(2), option).await), 2);
        assert_eq!(peer.streams.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_dropped_call_takes_its_stream_with_it() {
        let peer = FakePeer::default();
        let mut client = client_of(peer.clone()).await;
        let option = RPCOption::new(Duration::from_secs(5));
        assert_eq!(
            answered(client.append_entries(request(1), option.clone()).await),
            1
        );
        // The caller gives up on a request (its future is dropped) before the reply comes.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            client.append_entries(request(SLOW), option.clone()),
        )
        .await;
        assert!(gave_up.is_err(), "the slow request is still waiting");
        assert_eq!(answered(client.append_entries(request(3), option).await), 3);
        assert_eq!(peer.streams.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_peer_without_the_stream_is_sent_unary_calls() {
        let peer = FakePeer {
            no_streams: true,
            ..FakePeer::default()
        };
        let mut client = client_of(peer.clone()).await;
        let option = RPCOption::new(Duration::from_secs(5));
        for commit in 1..=3 {
            assert_eq!(
                answered(client.append_entries(request(commit), option.clone()).await),
                commit
            );
        }
        assert_eq!(peer.unary.load(Ordering::SeqCst), 3);
    }

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
