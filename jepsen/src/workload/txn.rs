//! Interactive transactions over the raw gRPC API (`dialkv.v1.KV`: `Begin`, `Get`/`Scan` with
//! `transaction`, `Commit`, `Abort`), for the `txn` and `bank` workloads.
//!
//! The harness drives transactions through the generated client (`dialkv_proto`) rather than a
//! client-library wrapper, so what is recorded is exactly what the wire said:
//!
//! 1. `Begin` at one node (the primary when known; a follower forwards it). The transaction
//!    lives at the primary that began it, so every later call of the transaction goes to the
//!    replica that answered `Begin` (its `header.replica_id`).
//! 2. Reads at the snapshot (`Get`, `Scan` with `transaction`); each key read is remembered
//!    with the revision seen (0 when absent) for the read set. Writes are buffered here; a
//!    read of a key the transaction wrote sees the buffered value.
//! 3. `Commit` with the read set (keys and revisions, and scanned ranges) and the write set.
//!
//! How an attempt is recorded: anything that fails before `Commit` is sent is `fail` (nothing
//! of the transaction can have been written; the transaction is aborted, best effort).
//! `Commit` answering `ABORTED` (`TRANSACTION_CONFLICT`, `TRANSACTION_UNKNOWN`,
//! `TRANSACTION_EXPIRED`, `SNAPSHOT_TOO_OLD`) is `fail`; so is any refusal the server documents
//! as "nothing written" (`NOT_LEADER`, `NO_QUORUM`, `FORWARD_FAILED`, invalid arguments, ...).
//! `Commit` whose outcome is unknown — `DEADLINE_EXCEEDED` from the server (`COMMIT_TIMEOUT`,
//! `FORWARD_INTERRUPTED`), `REPLICATION_STOPPED`, the harness's own deadline, or a transport
//! failure after the request may have been sent — is `info`. Commits are never retried, so
//! an element is never appended twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use dialkv_client::error::code_name;
use dialkv_client::ErrorStatus;
use dialkv_proto::v1::kv_client::KvClient;
use dialkv_proto::v1::{
    AbortRequest, BeginRequest, CommitRequest, GetRequest, ReadKey, ReadRange, RequestId,
    ScanRequest, WriteOp,
};
use serde_json::{json, Value};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use super::Outcome;
use crate::cluster::NodeId;

/// The namespace every transaction runs in.
pub const NAMESPACE: &str = "default";

/// A worker's way to run transactions: a gRPC channel to every node, the node to start at,
/// and the primary learned from earlier answers (shared by all workers of a run).
#[derive(Clone, Debug)]
pub struct TxnConn {
    nodes: Vec<(NodeId, KvClient<Channel>)>,
    cursor: Arc<AtomicUsize>,
    primary: Arc<AtomicU64>,
    pinned: bool,
    client_id: u64,
    seq: Arc<AtomicU64>,
    timeout: Duration,
}

fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .context("a node address")?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .connect_lazy())
}

impl TxnConn {
    /// A connection to every node of `endpoints`, starting at the first; `primary` is the
    /// shared hint of which node is the primary (0: unknown); `timeout` bounds one whole
    /// transaction.
    pub fn new(
        endpoints: &[(NodeId, SocketAddr)],
        primary: Arc<AtomicU64>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut nodes = Vec::with_capacity(endpoints.len());
        for &(id, addr) in endpoints {
            nodes.push((id, KvClient::new(channel(addr)?)));
        }
        if nodes.is_empty() {
            anyhow::bail!("a transaction connection needs at least one node");
        }
        Ok(TxnConn {
            nodes,
            cursor: Arc::new(AtomicUsize::new(0)),
            primary,
            pinned: false,
            client_id: rand::random::<u64>() | 1,
            seq: Arc::new(AtomicU64::new(0)),
            timeout,
        })
    }

    /// A connection that only ever talks to node `id` at `addr` (final reads per node).
    pub fn pinned(id: NodeId, addr: SocketAddr, timeout: Duration) -> anyhow::Result<Self> {
        let mut conn = Self::new(&[(id, addr)], Arc::new(AtomicU64::new(0)), timeout)?;
        conn.pinned = true;
        Ok(conn)
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|(n, _)| *n == id)
    }

    /// The node a new transaction starts at: the known primary, else the cursor's node.
    fn pick(&self) -> usize {
        if !self.pinned {
            if let Some(i) = self.index_of(self.primary.load(Ordering::Relaxed)) {
                return i;
            }
        }
        self.cursor.load(Ordering::Relaxed) % self.nodes.len()
    }

    /// Notes that node `i` could not serve: the next transaction starts elsewhere.
    fn failed_at(&self, i: usize) {
        let id = self.nodes[i].0;
        let _ = self
            .primary
            .compare_exchange(id, 0, Ordering::Relaxed, Ordering::Relaxed);
        let _ = self.cursor.compare_exchange(
            i,
            (i + 1) % self.nodes.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    fn request_id(&self) -> RequestId {
        RequestId {
            client_id: self.client_id,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
enum CallError {
    /// The server (or the transport) answered with a status.
    Status(tonic::Status),
    /// The harness's deadline passed first.
    Timeout,
}

impl CallError {
    /// `CODE REASON message`, for the history's error counts.
    fn describe(&self) -> String {
        match self {
            CallError::Timeout => {
                "DEADLINE_EXCEEDED no answer before the harness's deadline".into()
            }
            CallError::Status(s) => {
                let st = ErrorStatus::from_tonic(s);
                match st.reason() {
                    Some(r) => format!("{} {r} {}", code_name(st.code()), st.message()),
                    None => format!("{} {}", code_name(st.code()), st.message()),
                }
            }
        }
    }

    /// Whether the node looks unable to serve (move on to another one).
    fn node_trouble(&self) -> bool {
        match self {
            CallError::Timeout => true,
            CallError::Status(s) => matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
            ),
        }
    }

    /// Whether a commit that failed this way may still have been applied.
    fn commit_may_have_applied(&self) -> bool {
        match self {
            CallError::Timeout => true,
            CallError::Status(s) => ErrorStatus::from_tonic(s).write_may_have_applied(),
        }
    }
}

/// A request whose gRPC deadline is what is left until `deadline`.
fn request<T>(msg: T, deadline: Instant) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    );
    r
}

/// Awaits a call, bounded by `deadline` on the harness side too.
async fn within<T>(
    deadline: Instant,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallError> {
    match tokio::time::timeout_at(deadline + Duration::from_millis(50), call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(CallError::Status(s)),
        Err(_) => Err(CallError::Timeout),
    }
}

/// A key read inside a transaction: its value (`None`: absent) and revision (0: absent).
#[derive(Clone, Debug)]
pub struct ReadValue {
    /// The value at the snapshot.
    pub value: Option<Bytes>,
    /// The revision seen, 0 when absent.
    pub revision: u64,
}

/// An open transaction.
struct Txn<'c> {
    conn: &'c TxnConn,
    at: usize,
    kv: KvClient<Channel>,
    id: u64,
    deadline: Instant,
}

/// How a commit ended.
enum CommitEnd {
    /// Committed; the replica that answered.
    Ok(u64),
    /// Certainly not applied.
    Fail(String),
    /// Maybe applied.
    Info(String),
}

impl<'c> Txn<'c> {
    /// Begins a transaction, at the primary when known.
    async fn begin(conn: &'c TxnConn) -> Result<Txn<'c>, String> {
        let deadline = Instant::now() + conn.timeout;
        let at = conn.pick();
        let mut kv = conn.nodes[at].1.clone();
        let req = request(
            BeginRequest {
                namespace: NAMESPACE.into(),
                session: None,
            },
            deadline,
        );
        match within(deadline, kv.begin(req)).await {
            Ok(resp) => {
                let primary = resp.header.map_or(0, |h| h.replica_id);
                let mut txn = Txn {
                    conn,
                    at,
                    kv,
                    id: resp.transaction,
                    deadline,
                };
                if !conn.pinned {
                    if let Some(i) = conn.index_of(primary) {
                        // The transaction lives at the primary that began it: talk to it
                        // directly from now on.
                        conn.primary.store(primary, Ordering::Relaxed);
                        txn.at = i;
                        txn.kv = conn.nodes[i].1.clone();
                    }
                }
                Ok(txn)
            }
            Err(e) => {
                if e.node_trouble() {
                    conn.failed_at(at);
                }
                Err(format!("begin: {}", e.describe()))
            }
        }
    }

    fn trouble(&self, e: &CallError) {
        if e.node_trouble() {
            self.conn.failed_at(self.at);
        }
    }

    /// Reads `key` at the snapshot.
    async fn get(&mut self, key: &str) -> Result<ReadValue, String> {
        let req = request(
            GetRequest {
                namespace: NAMESPACE.into(),
                key: Bytes::from(key.to_string()),
                transaction: self.id,
                ..Default::default()
            },
            self.deadline,
        );
        match within(self.deadline, self.kv.get(req)).await {
            Ok(resp) if resp.found => Ok(ReadValue {
                value: Some(resp.value),
                revision: resp.version.map_or(0, |v| v.revision),
            }),
            Ok(_) => Ok(ReadValue {
                value: None,
                revision: 0,
            }),
            Err(e) => {
                self.trouble(&e);
                Err(format!("get {key}: {}", e.describe()))
            }
        }
    }

    /// Scans `[start, end)` at the snapshot, in one page: `(key, value)` in key order.
    async fn scan(&mut self, start: &str, end: &str) -> Result<Vec<(String, Bytes)>, String> {
        let req = request(
            ScanRequest {
                namespace: NAMESPACE.into(),
                start_key: Bytes::from(start.to_string()),
                end_key: Bytes::from(end.to_string()),
                limit: 1000,
                transaction: self.id,
                ..Default::default()
            },
            self.deadline,
        );
        match within(self.deadline, self.kv.scan(req)).await {
            Ok(resp) if !resp.continuation.is_empty() => {
                Err(format!("scan {start}..{end}: more than one page"))
            }
            Ok(resp) => Ok(resp
                .items
                .into_iter()
                .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value))
                .collect()),
            Err(e) => {
                self.trouble(&e);
                Err(format!("scan {start}..{end}: {}", e.describe()))
            }
        }
    }

    /// Aborts the transaction, best effort, in the background.
    fn abort(self) {
        let mut kv = self.kv.clone();
        let id = self.id;
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_millis(300);
            let req = request(
                AbortRequest {
                    namespace: NAMESPACE.into(),
                    transaction: id,
                },
                deadline,
            );
            let _ = within(deadline, kv.abort(req)).await;
        });
    }

    /// Commits with the read set `reads` (key, revision seen), the scanned `ranges` and the
    /// buffered `writes` (key, value).
    async fn commit(
        mut self,
        reads: Vec<(String, u64)>,
        ranges: Vec<(String, String)>,
        writes: Vec<(String, Bytes)>,
    ) -> CommitEnd {
        let req = request(
            CommitRequest {
                namespace: NAMESPACE.into(),
                transaction: self.id,
                reads: reads
                    .into_iter()
                    .map(|(key, revision)| ReadKey {
                        key: Bytes::from(key),
                        revision,
                    })
                    .collect(),
                ranges: ranges
                    .into_iter()
                    .map(|(s, e)| ReadRange {
                        start_key: Bytes::from(s),
                        end_key: Bytes::from(e),
                    })
                    .collect(),
                writes: writes
                    .into_iter()
                    .map(|(key, value)| WriteOp {
                        key: Bytes::from(key),
                        value,
                        delete: false,
                    })
                    .collect(),
                request_id: Some(self.conn.request_id()),
                session: None,
            },
            self.deadline,
        );
        match within(self.deadline, self.kv.commit(req)).await {
            Ok(resp) => CommitEnd::Ok(
                resp.header
                    .map_or(self.conn.nodes[self.at].0, |h| h.replica_id),
            ),
            Err(e) => {
                self.trouble(&e);
                let msg = format!("commit: {}", e.describe());
                if e.commit_may_have_applied() {
                    CommitEnd::Info(msg)
                } else {
                    CommitEnd::Fail(msg)
                }
            }
        }
    }
}

/// Decodes a list value (JSON array of integers); absent is the empty list.
fn decode_list(value: Option<&Bytes>) -> Result<Vec<i64>, String> {
    match value {
        None => Ok(Vec::new()),
        Some(b) => serde_json::from_slice(b)
            .map_err(|e| format!("not a list ({e}): {:?}", String::from_utf8_lossy(b))),
    }
}

/// Decodes a balance (decimal text).
fn decode_int(bytes: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an integer: {:?}", String::from_utf8_lossy(bytes)))
}

/// One micro-operation of a list-append transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mop {
    /// `["r", key, null]`.
    Read(String),
    /// `["append", key, value]`.
    Append(String, i64),
}

/// Parses the invocation value of a `txn` operation.
pub fn parse_mops(value: &Value) -> Result<Vec<Mop>, String> {
    let bad = || format!("bad txn value {value}");
    let mops = value.as_array().ok_or_else(bad)?;
    mops.iter()
        .map(|m| match m.as_array().map(Vec::as_slice) {
            Some([f, k, _]) if f == "r" => Ok(Mop::Read(k.as_str().ok_or_else(bad)?.into())),
            Some([f, k, v]) if f == "append" => Ok(Mop::Append(
                k.as_str().ok_or_else(bad)?.into(),
                v.as_i64().ok_or_else(bad)?,
            )),
            _ => Err(bad()),
        })
        .collect()
}

/// Runs one list-append transaction: each append reads the key's list and writes the list
/// with the element added; every key read (for a read or an append) goes into the read set
/// with the revision seen. The `ok` value is the micro-ops with the reads filled in.
pub async fn list_append(conn: &TxnConn, value: &Value) -> Outcome {
    let mops = match parse_mops(value) {
        Ok(m) => m,
        Err(e) => return Outcome::Fail(e),
    };
    let mut txn = match Txn::begin(conn).await {
        Ok(t) => t,
        Err(e) => return Outcome::Fail(e),
    };
    // key -> (current list, revision read, written)
    let mut state: BTreeMap<String, (Vec<i64>, u64, bool)> = BTreeMap::new();
    let mut done = Vec::with_capacity(mops.len());
    for mop in &mops {
        let key = match mop {
            Mop::Read(k) | Mop::Append(k, _) => k,
        };
        if !state.contains_key(key) {
            let read = match txn.get(key).await {
                Ok(r) => r,
                Err(e) => {
                    txn.abort();
                    return Outcome::Fail(e);
                }
            };
            match decode_list(read.value.as_ref()) {
                Ok(list) => {
                    state.insert(key.clone(), (list, read.revision, false));
                }
                Err(e) => {
                    txn.abort();
                    return Outcome::Fail(e);
                }
            }
        }
        let Some(entry) = state.get_mut(key) else {
            txn.abort();
            return Outcome::Fail(format!("{key} vanished from the transaction's reads"));
        };
        match mop {
            Mop::Read(k) => done.push(json!(["r", k, entry.0])),
            Mop::Append(k, v) => {
                entry.0.push(*v);
                entry.2 = true;
                done.push(json!(["append", k, v]));
            }
        }
    }
    let reads: Vec<(String, u64)> = state.iter().map(|(k, e)| (k.clone(), e.1)).collect();
    let mut writes = Vec::new();
    for (k, (list, _, written)) in &state {
        if *written {
            match serde_json::to_vec(list) {
                Ok(bytes) => writes.push((k.clone(), Bytes::from(bytes))),
                Err(e) => {
                    txn.abort();
                    return Outcome::Fail(format!("encoding {k}: {e}"));
                }
            }
        }
    }
    match txn.commit(reads, Vec::new(), writes).await {
        CommitEnd::Ok(node) => Outcome::Ok {
            value: Value::Array(done),
            node: Some(node),
        },
        CommitEnd::Fail(e) => Outcome::Fail(e),
        CommitEnd::Info(e) => Outcome::Info(e),
    }
}

/// Writes every account with its starting balance in one transaction (the bank's `init`).
pub async fn bank_init(conn: &TxnConn, balances: &BTreeMap<String, i64>) -> Outcome {
    let txn = match Txn::begin(conn).await {
        Ok(t) => t,
        Err(e) => return Outcome::Fail(e),
    };
    let writes = balances
        .iter()
        .map(|(k, b)| (k.clone(), Bytes::from(b.to_string())))
        .collect();
    match txn.commit(Vec::new(), Vec::new(), writes).await {
        CommitEnd::Ok(node) => Outcome::Ok {
            value: json!(balances),
            node: Some(node),
        },
        CommitEnd::Fail(e) => Outcome::Fail(e),
        CommitEnd::Info(e) => Outcome::Info(e),
    }
}

/// Moves `amount` from account `from` to account `to`: reads both, refuses (`fail`) when
/// `from` has less than `amount` or an account is missing, else writes both with both reads
/// in the read set. The `ok` value records the balances read.
pub async fn bank_transfer(conn: &TxnConn, from: &str, to: &str, amount: i64) -> Outcome {
    let mut txn = match Txn::begin(conn).await {
        Ok(t) => t,
        Err(e) => return Outcome::Fail(e),
    };
    let mut seen = Vec::with_capacity(2);
    for key in [from, to] {
        let read = match txn.get(key).await {
            Ok(r) => r,
            Err(e) => {
                txn.abort();
                return Outcome::Fail(e);
            }
        };
        let Some(bytes) = read.value else {
            txn.abort();
            return Outcome::Fail(format!("account {key} is absent at the snapshot"));
        };
        match decode_int(&bytes) {
            Ok(b) => seen.push((key, b, read.revision)),
            Err(e) => {
                txn.abort();
                return Outcome::Fail(format!("account {key}: {e}"));
            }
        }
    }
    let (b_from, b_to) = (seen[0].1, seen[1].1);
    if b_from < amount {
        txn.abort();
        return Outcome::Fail(format!(
            "insufficient funds (refused): {from} has {b_from}, the transfer is {amount}"
        ));
    }
    let reads = seen.iter().map(|(k, _, r)| (k.to_string(), *r)).collect();
    let writes = vec![
        (from.to_string(), Bytes::from((b_from - amount).to_string())),
        (to.to_string(), Bytes::from((b_to + amount).to_string())),
    ];
    match txn.commit(reads, Vec::new(), writes).await {
        CommitEnd::Ok(node) => Outcome::Ok {
            value: json!({"from": from, "to": to, "amount": amount, "read": {from: b_from, to: b_to}}),
            node: Some(node),
        },
        CommitEnd::Fail(e) => Outcome::Fail(e),
        CommitEnd::Info(e) => Outcome::Info(e),
    }
}

/// Reads every account (a scan of `[start, end)`) in one read-only transaction; the `ok`
/// value is `{account: balance}`.
pub async fn bank_read(conn: &TxnConn, start: &str, end: &str) -> Outcome {
    let mut txn = match Txn::begin(conn).await {
        Ok(t) => t,
        Err(e) => return Outcome::Fail(e),
    };
    let items = match txn.scan(start, end).await {
        Ok(items) => items,
        Err(e) => {
            txn.abort();
            return Outcome::Fail(e);
        }
    };
    let mut balances = BTreeMap::new();
    for (k, v) in &items {
        match decode_int(v) {
            Ok(b) => {
                balances.insert(k.clone(), b);
            }
            Err(e) => {
                txn.abort();
                return Outcome::Fail(format!("account {k}: {e}"));
            }
        }
    }
    match txn
        .commit(Vec::new(), vec![(start.into(), end.into())], Vec::new())
        .await
    {
        CommitEnd::Ok(node) => Outcome::Ok {
            value: json!(balances),
            node: Some(node),
        },
        // A read-only transaction changes nothing, whatever its commit says.
        CommitEnd::Fail(e) | CommitEnd::Info(e) => Outcome::Fail(e),
    }
}

/// Reads one key outside any transaction, at LINEARIZABLE, from the pinned node (the `txn`
/// workload's final reads): the list, `[]` when absent.
pub async fn plain_list_read(conn: &TxnConn, key: &str) -> Outcome {
    let deadline = Instant::now() + conn.timeout;
    let at = conn.pick();
    let mut kv = conn.nodes[at].1.clone();
    let req = request(
        GetRequest {
            namespace: NAMESPACE.into(),
            key: Bytes::from(key.to_string()),
            ..Default::default()
        },
        deadline,
    );
    match within(deadline, kv.get(req)).await {
        Ok(resp) => {
            let node = resp.header.map_or(conn.nodes[at].0, |h| h.replica_id);
            let value = resp.found.then_some(resp.value);
            match decode_list(value.as_ref()) {
                Ok(list) => Outcome::Ok {
                    value: json!(list),
                    node: Some(node),
                },
                Err(e) => Outcome::Fail(e),
            }
        }
        Err(e) => Outcome::Fail(format!("get {key}: {}", e.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_micro_ops() {
        let v = json!([["r", "t1", null], ["append", "t2", 7]]);
        assert_eq!(
            parse_mops(&v),
            Ok(vec![Mop::Read("t1".into()), Mop::Append("t2".into(), 7)])
        );
        assert!(parse_mops(&json!([["w", "t1", 1]])).is_err());
        assert!(parse_mops(&json!(["r", "t1", null])).is_err());
        assert!(parse_mops(&json!(null)).is_err());
    }

    #[test]
    fn commit_outcomes_are_classified() {
        use tonic::Code;
        assert!(CallError::Timeout.commit_may_have_applied());
        assert!(
            CallError::Status(tonic::Status::new(Code::DeadlineExceeded, "late"))
                .commit_may_have_applied()
        );
        // A transport failure after sending (no dialkv ErrorInfo, not a connect failure).
        assert!(
            CallError::Status(tonic::Status::new(Code::Unavailable, "reset"))
                .commit_may_have_applied()
        );
        assert!(
            !CallError::Status(tonic::Status::new(Code::Aborted, "conflict"))
                .commit_may_have_applied()
        );
        assert!(
            !CallError::Status(tonic::Status::new(Code::InvalidArgument, "bad"))
                .commit_may_have_applied()
        );
    }

    #[test]
    fn lists_and_balances_decode() {
        assert_eq!(decode_list(None), Ok(vec![]));
        assert_eq!(decode_list(Some(&Bytes::from("[1,2]"))), Ok(vec![1, 2]));
        assert!(decode_list(Some(&Bytes::from("x"))).is_err());
        assert_eq!(decode_int(b"-3"), Ok(-3));
        assert!(decode_int(b"3.5").is_err());
    }
}
