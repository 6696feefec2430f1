//! The Rust-side shapes of requests and replies: versions, entries, per-operation outputs,
//! compare-and-set conditions and namespace specs.
//!
//! Each output carries a [`ResponseMeta`] (the level that served the call, the session token
//! advanced past it, and the serving replica), as every dialkv data response does.

use bytes::Bytes;
use dialkv_consistency::session_token::SessionToken;

use crate::error::Error;
use crate::options::Level;
use crate::proto;

/// One version of a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Version {
    /// The position of the write in its namespace's order of writes; greater is later.
    pub revision: u64,
    /// For quorum namespaces: the opaque causal context of the version (empty otherwise).
    pub context: Bytes,
}

impl Version {
    pub(crate) fn from_proto(v: proto::Version) -> Self {
        Version {
            revision: v.revision,
            context: v.context,
        }
    }
}

/// A key with its value and version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// The version of the value.
    pub version: Version,
}

impl Entry {
    pub(crate) fn from_proto(kv: proto::KeyValue) -> Self {
        Entry {
            key: kv.key,
            value: kv.value,
            version: kv.version.map(Version::from_proto).unwrap_or_default(),
        }
    }
}

/// What every data response says besides its result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The level that actually served the call: the one asked for or a stronger one.
    pub served_level: Level,
    /// The session token advanced past this call (empty when the server sent none).
    pub session_token: SessionToken,
    /// The replica that served the call.
    pub replica_id: u64,
    /// How many versions behind the primary the serving replica was known to be.
    pub lag_versions: u64,
    /// How many milliseconds behind the primary the serving replica was known to be.
    pub lag_ms: u64,
}

impl ResponseMeta {
    pub(crate) fn from_proto(header: Option<proto::ResponseHeader>) -> Result<Self, Error> {
        let Some(h) = header else {
            return Err(Error::UnexpectedResponse("response header missing".into()));
        };
        let served_level = Level::from_proto(h.served_level).ok_or_else(|| {
            Error::UnexpectedResponse(format!("unknown served_level {}", h.served_level))
        })?;
        let token_bytes = h.session.map(|t| t.token).unwrap_or_default();
        let session_token = SessionToken::decode(&token_bytes)?;
        Ok(ResponseMeta {
            served_level,
            session_token,
            replica_id: h.replica_id,
            lag_versions: h.lag_versions,
            lag_ms: h.lag_ms,
        })
    }
}

/// The reply to a get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetOutput {
    /// The key, its value and version; `None` when the key does not exist.
    pub entry: Option<Entry>,
    /// Quorum namespaces with siblings: every concurrent version of the key, oldest first,
    /// when there are two or more (empty otherwise). `entry` holds the newest live one.
    pub siblings: Vec<Sibling>,
    /// Quorum namespaces: the causal context of everything read, also when the key is
    /// deleted. Pass it to a write (`CallOptions::context`) to supersede what was read.
    pub context: Bytes,
    /// The response header.
    pub meta: ResponseMeta,
}

/// One of several concurrent versions of a key in a quorum namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// The value (empty for a deletion).
    pub value: Bytes,
    /// Whether this version is a deletion.
    pub deleted: bool,
    /// The version's revision (its timestamp).
    pub revision: u64,
}

impl GetOutput {
    /// The value, when the key exists.
    pub fn value(&self) -> Option<&Bytes> {
        self.entry.as_ref().map(|e| &e.value)
    }
}

/// The reply to a put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutput {
    /// The version the write created.
    pub version: Version,
    /// The response header.
    pub meta: ResponseMeta,
}

/// The reply to a delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteOutput {
    /// Whether the key existed before the delete.
    pub existed: bool,
    /// The version of the deletion (a tombstone); `None` when the key did not exist.
    pub version: Option<Version>,
    /// The response header.
    pub meta: ResponseMeta,
}

/// A key range to scan: `start` inclusive, `end` exclusive, empty meaning unbounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanRange {
    /// The first key, inclusive; empty for the first key of the namespace.
    pub start: Bytes,
    /// The end, exclusive; empty for the end of the namespace.
    pub end: Bytes,
    /// The most keys per page: 0..=10000, 0 meaning the server's default (1000).
    pub limit: u32,
}

impl ScanRange {
    /// The whole namespace, pages of the server's default size.
    pub fn all() -> Self {
        Self::default()
    }

    /// The keys in `[start, end)`.
    pub fn new(start: impl Into<Bytes>, end: impl Into<Bytes>) -> Self {
        ScanRange {
            start: start.into(),
            end: end.into(),
            limit: 0,
        }
    }

    /// The keys starting with `prefix`.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let start: Bytes = prefix.into();
        let mut end = start.to_vec();
        // The end of a prefix range is the prefix with its last non-0xFF byte incremented;
        // a prefix of only 0xFF bytes runs to the end of the namespace.
        while let Some(last) = end.pop() {
            if last < 0xFF {
                end.push(last + 1);
                break;
            }
        }
        ScanRange {
            start,
            end: Bytes::from(end),
            limit: 0,
        }
    }

    /// This range with the page size set.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}

/// One page of a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanPage {
    /// The keys of the page, in ascending key order.
    pub items: Vec<Entry>,
    /// What to pass to get the next page; `None` when the range is done.
    pub continuation: Option<Bytes>,
    /// The response header.
    pub meta: ResponseMeta,
}

/// What compare-and-set checks against the key's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The key exists and its current revision is this one.
    RevisionEquals(u64),
    /// The key exists and its current value is exactly these bytes.
    ValueEquals(Bytes),
    /// The key does not exist.
    Absent,
}

impl Condition {
    pub(crate) fn to_proto(&self) -> proto::Condition {
        use proto::condition::Kind;
        let kind = match self {
            Condition::RevisionEquals(r) => Kind::RevisionEquals(*r),
            Condition::ValueEquals(v) => Kind::ValueEquals(v.clone()),
            Condition::Absent => Kind::Absent(proto::KeyAbsent {}),
        };
        proto::Condition { kind: Some(kind) }
    }
}

/// What compare-and-set does when its condition holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasAction {
    /// Write this value.
    Set(Bytes),
    /// Delete the key.
    Delete,
}

/// The reply to a compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasOutput {
    /// Whether the condition held and the change was made.
    pub succeeded: bool,
    /// When it succeeded: the version the change created.
    pub version: Option<Version>,
    /// When it failed: the key's current value and version (`None` when the key is absent).
    pub current: Option<Entry>,
    /// The response header.
    pub meta: ResponseMeta,
}

/// How a namespace is replicated; fixed when it is created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// One primary (Raft leader) orders every write: strong reads, CAS, transactions.
    #[default]
    PrimaryBackup,
    /// Leaderless Dynamo-style quorums with vector clocks.
    Quorum,
}

impl Protocol {
    /// The lower-case name used by `dialctl` (`primary-backup`, `quorum`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::PrimaryBackup => "primary-backup",
            Protocol::Quorum => "quorum",
        }
    }
}

/// How a quorum namespace resolves concurrent writes to a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConflictPolicy {
    /// Last writer wins.
    #[default]
    Lww,
    /// Concurrent values are kept as siblings with a causal context.
    Siblings,
}

impl ConflictPolicy {
    /// The lower-case name used by `dialctl` (`lww`, `siblings`).
    pub fn name(self) -> &'static str {
        match self {
            ConflictPolicy::Lww => "lww",
            ConflictPolicy::Siblings => "siblings",
        }
    }
}

/// What a namespace is created with. Unset fields take the server's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceSpec {
    /// The name: `[a-z0-9_-]{1,64}`.
    pub name: String,
    /// The replication protocol; primary-backup when unset.
    pub protocol: Option<Protocol>,
    /// The replica count N; the cluster size when unset.
    pub replicas: Option<u32>,
    /// Quorum namespaces: the default W; when unset, by level (a majority of N for
    /// LINEARIZABLE and SEQUENTIAL, 1 for the others).
    pub write_quorum: Option<u32>,
    /// Quorum namespaces: the default R; when unset, by level (as W).
    pub read_quorum: Option<u32>,
    /// Quorum namespaces: the conflict policy; LWW when unset.
    pub conflicts: Option<ConflictPolicy>,
}

impl NamespaceSpec {
    /// A spec named `name` with every other field at its default.
    pub fn new(name: impl Into<String>) -> Self {
        NamespaceSpec {
            name: name.into(),
            ..NamespaceSpec::default()
        }
    }

    /// This spec with the protocol set.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// This spec with the replica count set.
    pub fn replicas(mut self, n: u32) -> Self {
        self.replicas = Some(n);
        self
    }

    /// This spec with the default write quorum set.
    pub fn write_quorum(mut self, w: u32) -> Self {
        self.write_quorum = Some(w);
        self
    }

    /// This spec with the default read quorum set.
    pub fn read_quorum(mut self, r: u32) -> Self {
        self.read_quorum = Some(r);
        self
    }

    /// This spec with the conflict policy set.
    pub fn conflicts(mut self, policy: ConflictPolicy) -> Self {
        self.conflicts = Some(policy);
        self
    }

    /// The wire message.
    pub fn to_proto(&self) -> proto::NamespaceSpec {
        proto::NamespaceSpec {
            name: self.name.clone(),
            protocol: match self.protocol {
                None => proto::Protocol::Unspecified,
                Some(Protocol::PrimaryBackup) => proto::Protocol::PrimaryBackup,
                Some(Protocol::Quorum) => proto::Protocol::Quorum,
            } as i32,
            replicas: self.replicas.unwrap_or(0),
            write_quorum: self.write_quorum.unwrap_or(0),
            read_quorum: self.read_quorum.unwrap_or(0),
            conflicts: match self.conflicts {
                None => proto::ConflictPolicy::Unspecified,
                Some(ConflictPolicy::Lww) => proto::ConflictPolicy::Lww,
                Some(ConflictPolicy::Siblings) => proto::ConflictPolicy::Siblings,
            } as i32,
        }
    }

    /// The spec of a wire message; unknown enum numbers are an unexpected response.
    pub fn from_proto(spec: proto::NamespaceSpec) -> Result<Self, Error> {
        let protocol = match proto::Protocol::try_from(spec.protocol) {
            Ok(proto::Protocol::Unspecified) => None,
            Ok(proto::Protocol::PrimaryBackup) => Some(Protocol::PrimaryBackup),
            Ok(proto::Protocol::Quorum) => Some(Protocol::Quorum),
            Err(_) => {
                return Err(Error::UnexpectedResponse(format!(
                    "unknown protocol {}",
                    spec.protocol
                )))
            }
        };
        let conflicts = match proto::ConflictPolicy::try_from(spec.conflicts) {
            Ok(proto::ConflictPolicy::Unspecified) => None,
            Ok(proto::ConflictPolicy::Lww) => Some(ConflictPolicy::Lww),
            Ok(proto::ConflictPolicy::Siblings) => Some(ConflictPolicy::Siblings),
            Err(_) => {
                return Err(Error::UnexpectedResponse(format!(
                    "unknown conflict policy {}",
                    spec.conflicts
                )))
            }
        };
        let nonzero = |v: u32| (v != 0).then_some(v);
        Ok(NamespaceSpec {
            name: spec.name,
            protocol,
            replicas: nonzero(spec.replicas),
            write_quorum: nonzero(spec.write_quorum),
            read_quorum: nonzero(spec.read_quorum),
            conflicts,
        })
    }
}

/// An existing namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The spec with the server's defaults filled in.
    pub spec: NamespaceSpec,
    /// The replicas that hold it.
    pub replica_ids: Vec<u64>,
    /// The namespace's latest revision.
    pub revision: u64,
}

impl NamespaceInfo {
    /// The info of a wire message.
    pub fn from_proto(info: proto::NamespaceInfo) -> Result<Self, Error> {
        let spec = info
            .spec
            .ok_or_else(|| Error::UnexpectedResponse("namespace spec missing".into()))?;
        Ok(NamespaceInfo {
            spec: NamespaceSpec::from_proto(spec)?,
            replica_ids: info.replica_ids,
            revision: info.revision,
        })
    }
}

/// What a replica is in its Raft group, as `ClusterStatus` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    /// The primary: it orders every write.
    Leader,
    /// A voting backup.
    Follower,
    /// A replica standing for election.
    Candidate,
    /// A replica that receives the log but does not vote (e.g. a new one catching up).
    Learner,
    /// The replica did not answer.
    Unreachable,
    /// The server sent no role, or one this client does not know.
    #[default]
    Unknown,
}

impl Role {
    /// The role of a wire value; unspecified and unknown numbers are [`Role::Unknown`] (a
    /// status report should not fail because a server knows more roles).
    pub fn from_proto(value: i32) -> Role {
        match proto::Role::try_from(value) {
            Ok(proto::Role::Leader) => Role::Leader,
            Ok(proto::Role::Follower) => Role::Follower,
            Ok(proto::Role::Candidate) => Role::Candidate,
            Ok(proto::Role::Learner) => Role::Learner,
            Ok(proto::Role::Unreachable) => Role::Unreachable,
            Ok(proto::Role::Unspecified) | Err(_) => Role::Unknown,
        }
    }

    /// The lower-case name used by `dialctl` (`leader`, `follower`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Unreachable => "unreachable",
            Role::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One replica's state, as it reported it (or as unreachable when it did not answer, with
/// only its id, address and voter flag known).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// The replica id.
    pub id: u64,
    /// The address (`host:port`) replicas and clients reach it at.
    pub address: String,
    /// Its role.
    pub role: Role,
    /// Whether it answered the status request.
    pub reachable: bool,
    /// Whether it votes (false for a learner).
    pub voter: bool,
    /// Its current Raft term.
    pub term: u64,
    /// The last log index it holds.
    pub last_log_index: u64,
    /// The commit index it has learned from the primary.
    pub commit_index: u64,
    /// The last log index it has applied: what its reads see.
    pub applied_index: u64,
    /// How many committed entries it has yet to apply, as far as it knows.
    pub lag_versions: u64,
    /// How long ago it was last known to be current with the primary, in ms; `None` when
    /// unknown.
    pub lag_ms: Option<u64>,
    /// The primary it follows; `None` when it knows none.
    pub leader_id: Option<u64>,
}

impl NodeStatus {
    /// The status of a wire message (`lag_ms == u64::MAX` and `leader_id == 0` mean
    /// unknown).
    pub fn from_proto(s: proto::NodeStatus) -> Self {
        NodeStatus {
            id: s.id,
            address: s.address,
            role: Role::from_proto(s.role),
            reachable: s.reachable,
            voter: s.voter,
            term: s.term,
            last_log_index: s.last_log_index,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            lag_versions: s.lag_versions,
            lag_ms: (s.lag_ms != u64::MAX).then_some(s.lag_ms),
            leader_id: (s.leader_id != 0).then_some(s.leader_id),
        }
    }
}

/// Every member of the cluster as the answering replica sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The primary's id as the answering replica knows it; `None` when it knows none.
    pub leader_id: Option<u64>,
    /// Every member, voters and learners, by id.
    pub nodes: Vec<NodeStatus>,
}

impl ClusterStatus {
    /// The status of a wire message.
    pub fn from_proto(s: proto::ClusterStatusResponse) -> Self {
        let mut nodes: Vec<NodeStatus> = s.nodes.into_iter().map(NodeStatus::from_proto).collect();
        nodes.sort_by_key(|n| n.id);
        ClusterStatus {
            leader_id: (s.leader_id != 0).then_some(s.leader_id),
            nodes,
        }
    }

    /// The primary's status, when a primary is known and is a member.
    pub fn leader(&self) -> Option<&NodeStatus> {
        let id = self.leader_id?;
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The member with this id.
    pub fn node(&self, id: u64) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// The cluster's members after a membership change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// The voting replicas' ids.
    pub voters: Vec<u64>,
    /// The learners' ids (replicas that receive the log but do not vote).
    pub learners: Vec<u64>,
}

impl Membership {
    /// The membership of a wire message.
    pub fn from_proto(m: proto::ChangeMembershipResponse) -> Self {
        Membership {
            voters: m.voters,
            learners: m.learners,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_end_after_the_prefix() {
        assert_eq!(ScanRange::prefix("ab").end, Bytes::from_static(b"ac"));
        assert_eq!(
            ScanRange::prefix(&b"a\xff"[..]).end,
            Bytes::from_static(b"b")
        );
        assert_eq!(ScanRange::prefix(&b"\xff\xff"[..]).end, Bytes::new());
    }

    #[test]
    fn namespace_specs_round_trip_the_wire() {
        let spec = NamespaceSpec::new("orders")
            .protocol(Protocol::Quorum)
            .replicas(3)
            .write_quorum(2)
            .read_quorum(2)
            .conflicts(ConflictPolicy::Siblings);
        assert_eq!(
            NamespaceSpec::from_proto(spec.to_proto()).expect("valid"),
            spec
        );
        let bare = NamespaceSpec::new("x");
        assert_eq!(
            NamespaceSpec::from_proto(bare.to_proto()).expect("valid"),
            bare
        );
    }

    #[test]
    fn cluster_status_reads_unknowns_and_sorts_by_id() {
        let wire = proto::ClusterStatusResponse {
            leader_id: 2,
            nodes: vec![
                proto::NodeStatus {
                    id: 3,
                    address: "h3:1".into(),
                    role: proto::Role::Unreachable as i32,
                    voter: true,
                    ..Default::default()
                },
                proto::NodeStatus {
                    id: 2,
                    address: "h2:1".into(),
                    role: proto::Role::Leader as i32,
                    reachable: true,
                    voter: true,
                    term: 4,
                    applied_index: 10,
                    lag_ms: 3,
                    leader_id: 2,
                    ..Default::default()
                },
                proto::NodeStatus {
                    id: 1,
                    role: 99,
                    reachable: true,
                    lag_versions: 5,
                    lag_ms: u64::MAX,
                    ..Default::default()
                },
            ],
        };
        let status = ClusterStatus::from_proto(wire);
        let ids: Vec<u64> = status.nodes.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        let leader = status.leader().expect("a leader");
        assert_eq!(
            (leader.id, leader.role, leader.lag_ms),
            (2, Role::Leader, Some(3))
        );
        assert_eq!(leader.leader_id, Some(2));
        let one = status.node(1).expect("node 1");
        assert_eq!(
            (one.role, one.lag_ms, one.leader_id),
            (Role::Unknown, None, None)
        );
        let three = status.node(3).expect("node 3");
        assert_eq!((three.role, three.reachable), (Role::Unreachable, false));
        assert_eq!(ClusterStatus::default().leader(), None);
        assert_eq!(
            Role::from_proto(proto::Role::Learner as i32).name(),
            "learner"
        );
    }
}
