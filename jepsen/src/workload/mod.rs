//! Workloads: what the clients do, how each operation maps onto the dialkv client, and which
//! checker of the referee verifies which level.
//!
//! | workload | operations (history `f`) | checked by |
//! |---|---|---|
//! | `register` | `read`, `write` (unique values), `cas [expected, new]`, and with `--deletes` at LINEARIZABLE `delete`, on a few keys at a time | `linearizable`, `sequential`, `causal` (CC) or `eventual` per `--level` |
//! | `list-append` | `append` (unique per key), `read` of the whole list | Elle's `check_list_append` (linearizable, sequential) or `eventual` |
//! | `set` | `add` of unique elements, `read` of the whole set | `dialkv_consistency::set::check`: no lost or unexpected elements; at linearizable also no stale reads |
//! | `session` | list-append through one session per client, with all four guarantees | `session::check_each` (RYW, MR, MW, WFR) and the level's check |
//! | `txn` | `txn`: 1–4 micro-ops `["r", k, nil]` / `["append", k, v]` over a few keys, one interactive transaction each ([`txn`]) | Elle's `check_txn` at strict serializability |
//! | `bank` | `transfer` between two accounts and `read` of every account, each a transaction | [`bank::check`]: every read sums to the total, no negative balance |
//!
//! The level (`--level`) is the consistency every request asks for, and the model the history
//! is checked against. dialkv has no append operation, so `append` is a read-modify-write: a
//! compare-and-set of the key's whole list (JSON text) with the element added, retried on a
//! failed comparison with the current list the failure returns. A retry only follows a
//! *definite* failure; after an indeterminate attempt the append stops as `info`, so an
//! element is never written twice. A set is a key prefix: `add e` puts `<set>/<e>`, `read`
//! scans the prefix in one page. The `txn` and `bank` workloads run interactive transactions
//! through the raw gRPC API (see [`txn`] for how each attempt is recorded).
//!
//! [`Generator`] is seeded: the sequence of operations it hands out (which key, which value,
//! which expected value) depends only on the seed; which worker runs which operation, and when,
//! depends on timing. Keys rotate: a few are live at a time, and each is retired after a
//! fixed number of operations, which keeps the per-key search of the linearizability checker
//! small.

pub mod bank;
pub mod txn;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use dialkv_client::{
    CallOptions, CasAction, Client, Condition, Consistency, Error, ScanRange, Session,
};
use dialkv_consistency::causal::{self, CausalModel};
use dialkv_consistency::elle::{self, Isolation, ListAppendLevel};
use dialkv_consistency::history::{EventType, History, Workload as HistoryWorkload};
use dialkv_consistency::level::SessionGuarantees;
use dialkv_consistency::verdict::Verdict;
use dialkv_consistency::{eventual, linearizable, sequential, session, set};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

/// Which workload a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Read/write/CAS registers.
    Register,
    /// Append-only lists.
    ListAppend,
    /// Grow-only sets.
    Set,
    /// List-append through one session per client; checks the session guarantees.
    Session,
    /// Multi-key list-append transactions (Elle).
    Txn,
    /// Transfers between accounts whose total never changes.
    Bank,
}

impl WorkloadKind {
    /// Returns the name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::ListAppend => "list-append",
            WorkloadKind::Set => "set",
            WorkloadKind::Session => "session",
            WorkloadKind::Txn => "txn",
            WorkloadKind::Bank => "bank",
        }
    }

    /// Whether the workload runs interactive transactions (through [`txn::TxnConn`]).
    pub fn transactional(self) -> bool {
        matches!(self, WorkloadKind::Txn | WorkloadKind::Bank)
    }

    /// Returns the levels this workload can be checked at.
    pub fn levels(self) -> &'static [Level] {
        match self {
            WorkloadKind::Register => &[
                Level::Linearizable,
                Level::Sequential,
                Level::Causal,
                Level::Eventual,
            ],
            WorkloadKind::ListAppend | WorkloadKind::Session => {
                &[Level::Linearizable, Level::Sequential, Level::Eventual]
            }
            WorkloadKind::Set => &[Level::Linearizable, Level::Eventual],
            WorkloadKind::Txn | WorkloadKind::Bank => &[Level::StrictSerializable],
        }
    }

    fn key_prefix(self) -> &'static str {
        match self {
            WorkloadKind::Register => "r",
            WorkloadKind::ListAppend | WorkloadKind::Session => "l",
            WorkloadKind::Set => "s",
            WorkloadKind::Txn => "t",
            WorkloadKind::Bank => bank::PREFIX,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WorkloadKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "register" => Ok(WorkloadKind::Register),
            "list-append" => Ok(WorkloadKind::ListAppend),
            "set" => Ok(WorkloadKind::Set),
            "session" => Ok(WorkloadKind::Session),
            "txn" => Ok(WorkloadKind::Txn),
            "bank" => Ok(WorkloadKind::Bank),
            other => Err(format!(
                "unknown workload {other:?} (register, list-append, set, session, txn, bank)"
            )),
        }
    }
}

/// The consistency level requests ask for and the history is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// LINEARIZABLE.
    Linearizable,
    /// SEQUENTIAL.
    Sequential,
    /// CAUSAL (checked as CC on registers).
    Causal,
    /// EVENTUAL (no thin-air reads, convergence of final reads).
    Eventual,
    /// Strict serializability of transactions (the `txn` and `bank` workloads).
    StrictSerializable,
}

impl Level {
    /// Returns the name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Linearizable => "linearizable",
            Level::Sequential => "sequential",
            Level::Causal => "causal",
            Level::Eventual => "eventual",
            Level::StrictSerializable => "strict-serializable",
        }
    }

    /// Returns the client consistency requests ask for (transactions are served at
    /// LINEARIZABLE whatever this says; the final reads of a transactional run ask for it).
    pub fn consistency(self) -> Consistency {
        match self {
            Level::Linearizable | Level::StrictSerializable => Consistency::linearizable(),
            Level::Sequential => Consistency::sequential(),
            Level::Causal => Consistency::causal(),
            Level::Eventual => Consistency::eventual(),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "linearizable" => Ok(Level::Linearizable),
            "sequential" => Ok(Level::Sequential),
            "causal" => Ok(Level::Causal),
            "eventual" => Ok(Level::Eventual),
            "strict-serializable" => Ok(Level::StrictSerializable),
            other => Err(format!(
                "unknown level {other:?} (linearizable, sequential, causal, eventual, strict-serializable)"
            )),
        }
    }
}

/// One operation to run: the history's `f`, key and invocation value.
#[derive(Clone, Debug, PartialEq)]
pub struct OpSpec {
    /// The operation name.
    pub f: &'static str,
    /// The key (a register, list or set); empty for multi-key operations (`txn`, `transfer`,
    /// a bank `read`), which the history records without a key.
    pub key: String,
    /// The argument: a value, `[expected, new]`, an element, or `null` for reads.
    pub value: Value,
}

/// A live key and how many operations it has had.
#[derive(Clone, Debug)]
struct LiveKey {
    name: String,
    used: u32,
}

/// The seeded source of operations, shared by all workers of a run.
#[derive(Debug)]
pub struct Generator {
    kind: WorkloadKind,
    rng: StdRng,
    live: Vec<LiveKey>,
    next_key: u64,
    next_value: i64,
    ops_per_key: u32,
    /// The last value handed out for each register, the expected value of the next CAS.
    last_written: BTreeMap<String, i64>,
    /// Every key handed out, for the final reads.
    touched: Vec<String>,
    /// Registers get reads and writes only (a quorum namespace has no compare-and-set).
    no_cas: bool,
    /// Registers get deletes too (for the checkers whose model knows them).
    deletes: bool,
}

impl Generator {
    /// Returns a generator for `kind` with `live_keys` keys in use at a time, each retired
    /// after `ops_per_key` operations.
    pub fn new(kind: WorkloadKind, seed: u64, live_keys: usize, ops_per_key: u32) -> Self {
        let mut g = Generator {
            kind,
            rng: StdRng::seed_from_u64(seed),
            live: Vec::new(),
            next_key: 0,
            next_value: 1,
            ops_per_key: ops_per_key.max(1),
            last_written: BTreeMap::new(),
            touched: Vec::new(),
            no_cas: false,
            deletes: false,
        };
        for _ in 0..live_keys.max(1) {
            let k = g.fresh_key();
            g.live.push(k);
        }
        g
    }

    /// With `no_cas`, registers get reads and writes only.
    pub fn without_cas(mut self, no_cas: bool) -> Self {
        self.no_cas = no_cas;
        self
    }

    /// With `deletes`, a tenth of the register operations are deletes.
    pub fn with_deletes(mut self, deletes: bool) -> Self {
        self.deletes = deletes;
        self
    }

    /// Returns the default live keys and operations per key of a workload.
    pub fn defaults(kind: WorkloadKind) -> (usize, u32) {
        match kind {
            WorkloadKind::Register => (4, 80),
            WorkloadKind::ListAppend | WorkloadKind::Session => (4, 300),
            WorkloadKind::Set => (1, 2000),
            // Micro-ops per key: about 40 appends, so lists stay short and every key is
            // read often.
            WorkloadKind::Txn => (5, 80),
            WorkloadKind::Bank => (bank::ACCOUNTS, u32::MAX),
        }
    }

    /// Returns the key of the next micro-op, counting it against the key's budget.
    fn next_key(&mut self) -> String {
        let slot = self.rng.random_range(0..self.live.len());
        self.live[slot].used += 1;
        let key = self.live[slot].name.clone();
        if self.live[slot].used >= self.ops_per_key {
            self.live[slot] = self.fresh_key();
        }
        key
    }

    /// A transaction of 1-4 micro-ops, half reads and half appends of unique values.
    fn next_txn(&mut self) -> OpSpec {
        let len = self.rng.random_range(1..=4);
        let mut mops = Vec::with_capacity(len);
        for _ in 0..len {
            let key = self.next_key();
            if self.rng.random_bool(0.5) {
                mops.push(json!(["r", key, null]));
            } else {
                let v = self.unique();
                mops.push(json!(["append", key, v]));
            }
        }
        OpSpec {
            f: "txn",
            key: String::new(),
            value: Value::Array(mops),
        }
    }

    /// A read of every account (40 %) or a transfer between two of them.
    fn next_bank(&mut self) -> OpSpec {
        if self.rng.random_bool(0.4) {
            return OpSpec {
                f: "read",
                key: String::new(),
                value: Value::Null,
            };
        }
        let from = self.rng.random_range(0..bank::ACCOUNTS);
        let to = (from + self.rng.random_range(1..bank::ACCOUNTS)) % bank::ACCOUNTS;
        let amount = self.rng.random_range(1..=bank::MAX_TRANSFER);
        OpSpec {
            f: "transfer",
            key: String::new(),
            value: json!({"from": bank::account(from), "to": bank::account(to), "amount": amount}),
        }
    }

    fn fresh_key(&mut self) -> LiveKey {
        let name = format!("{}{}", self.kind.key_prefix(), self.next_key);
        self.next_key += 1;
        self.touched.push(name.clone());
        LiveKey { name, used: 0 }
    }

    fn unique(&mut self) -> i64 {
        let v = self.next_value;
        self.next_value += 1;
        v
    }

    /// Returns the next operation.
    pub fn next_op(&mut self) -> OpSpec {
        match self.kind {
            WorkloadKind::Txn => return self.next_txn(),
            WorkloadKind::Bank => return self.next_bank(),
            _ => {}
        }
        let slot = self.rng.random_range(0..self.live.len());
        self.live[slot].used += 1;
        let key = self.live[slot].name.clone();
        if self.live[slot].used >= self.ops_per_key {
            self.live[slot] = self.fresh_key();
        }
        let roll: f64 = self.rng.random();
        match self.kind {
            WorkloadKind::Register => {
                if roll < 0.5 {
                    OpSpec {
                        f: "read",
                        key,
                        value: Value::Null,
                    }
                } else if self.deletes && roll < 0.6 {
                    // The next compare-and-set expects the key absent.
                    self.last_written.remove(&key);
                    OpSpec {
                        f: "delete",
                        key,
                        value: Value::Null,
                    }
                } else if roll < 0.75 || self.no_cas {
                    let v = self.unique();
                    self.last_written.insert(key.clone(), v);
                    OpSpec {
                        f: "write",
                        key,
                        value: json!(v),
                    }
                } else {
                    let expected = self.last_written.get(&key).copied();
                    let v = self.unique();
                    self.last_written.insert(key.clone(), v);
                    OpSpec {
                        f: "cas",
                        key,
                        value: json!([expected, v]),
                    }
                }
            }
            WorkloadKind::ListAppend | WorkloadKind::Session => {
                if roll < 0.5 {
                    OpSpec {
                        f: "read",
                        key,
                        value: Value::Null,
                    }
                } else {
                    let v = self.unique();
                    OpSpec {
                        f: "append",
                        key,
                        value: json!(v),
                    }
                }
            }
            WorkloadKind::Set | WorkloadKind::Txn | WorkloadKind::Bank => {
                if roll < 0.2 {
                    OpSpec {
                        f: "read",
                        key,
                        value: Value::Null,
                    }
                } else {
                    let v = self.unique();
                    OpSpec {
                        f: "add",
                        key,
                        value: json!(v),
                    }
                }
            }
        }
    }

    /// Returns every key handed out so far, in order.
    pub fn touched_keys(&self) -> &[String] {
        &self.touched
    }

    /// Returns the keys that had at least one operation (the ones worth a final read).
    pub fn used_keys(&self) -> Vec<String> {
        let live_unused: Vec<&str> = self
            .live
            .iter()
            .filter(|k| k.used == 0)
            .map(|k| k.name.as_str())
            .collect();
        self.touched
            .iter()
            .filter(|k| !live_unused.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// How an operation ended, as the history will say.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It took effect; the result and the serving replica.
    Ok {
        /// The result (what was read, or the value written).
        value: Value,
        /// The replica that served it.
        node: Option<u64>,
    },
    /// It certainly did not take effect.
    Fail(String),
    /// It may or may not take effect.
    Info(String),
}

impl Outcome {
    /// Returns the history event type of the outcome.
    pub fn event_type(&self) -> EventType {
        match self {
            Outcome::Ok { .. } => EventType::Ok,
            Outcome::Fail(_) => EventType::Fail,
            Outcome::Info(_) => EventType::Info,
        }
    }

    /// Returns the error message of a failed or indeterminate outcome.
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Ok { .. } => None,
            Outcome::Fail(e) | Outcome::Info(e) => Some(e),
        }
    }
}

/// Sorts a client error into fail or info. A read that failed changed nothing: `fail`. A write
/// is `info` when its outcome is unknown (the client says indeterminate, or the error is not
/// one the server documents as "nothing written"), else `fail`.
pub fn classify(err: &Error, is_write: bool) -> Outcome {
    let msg = err.to_string();
    if !is_write {
        return Outcome::Fail(msg);
    }
    match err {
        Error::Indeterminate(_) | Error::Other(_) | Error::UnexpectedResponse(_) => {
            Outcome::Info(msg)
        }
        Error::DeadlineExceeded(_) => Outcome::Info(msg),
        _ => Outcome::Fail(msg),
    }
}

/// A worker's way to the cluster: a plain client or a session over one.
#[derive(Clone, Debug)]
pub enum Conn {
    /// Calls outside any session.
    Plain(Client),
    /// Calls in a session (the `session` workload).
    Session(Session),
    /// Interactive transactions over the raw gRPC API (the `txn` and `bank` workloads).
    Txn(txn::TxnConn),
}

impl Conn {
    async fn get(&self, key: &str, opts: &CallOptions) -> Result<dialkv_client::GetOutput, Error> {
        match self {
            Conn::Plain(c) => c.get_with(key, opts).await,
            Conn::Session(s) => s.get_with(key, opts).await,
            Conn::Txn(_) => Err(Error::UnexpectedResponse(NOT_PLAIN.into())),
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        opts: &CallOptions,
    ) -> Result<dialkv_client::PutOutput, Error> {
        match self {
            Conn::Plain(c) => c.put_with(key, value, opts).await,
            Conn::Session(s) => s.put_with(key, value, opts).await,
            Conn::Txn(_) => Err(Error::UnexpectedResponse(NOT_PLAIN.into())),
        }
    }

    async fn delete(
        &self,
        key: &str,
        opts: &CallOptions,
    ) -> Result<dialkv_client::DeleteOutput, Error> {
        match self {
            Conn::Plain(c) => c.delete_with(key, opts).await,
            Conn::Session(s) => s.delete_with(key, opts).await,
            Conn::Txn(_) => Err(Error::UnexpectedResponse(NOT_PLAIN.into())),
        }
    }

    async fn cas(
        &self,
        key: &str,
        cond: Condition,
        value: Bytes,
        opts: &CallOptions,
    ) -> Result<dialkv_client::CasOutput, Error> {
        match self {
            Conn::Plain(c) => {
                c.compare_and_set_with(key, cond, CasAction::Set(value), opts)
                    .await
            }
            Conn::Session(s) => {
                s.compare_and_set_with(key, cond, CasAction::Set(value), opts)
                    .await
            }
            Conn::Txn(_) => Err(Error::UnexpectedResponse(NOT_PLAIN.into())),
        }
    }

    async fn scan(
        &self,
        range: &ScanRange,
        opts: &CallOptions,
    ) -> Result<dialkv_client::ScanPage, Error> {
        match self {
            Conn::Plain(c) => c.scan(range, None, opts).await,
            Conn::Session(s) => s.scan(range, None, opts).await,
            Conn::Txn(_) => Err(Error::UnexpectedResponse(NOT_PLAIN.into())),
        }
    }
}

/// The error of a single-key call on a transactional connection (a harness bug).
const NOT_PLAIN: &str = "a transactional connection makes no single-key calls";

/// Decodes a register value (decimal text).
fn decode_int(bytes: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an integer: {:?}", String::from_utf8_lossy(bytes)))
}

/// Decodes a list value (JSON array of integers).
fn decode_list(bytes: &[u8]) -> Result<Vec<i64>, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("not a list ({e}): {:?}", String::from_utf8_lossy(bytes)))
}

fn encode_list(list: &[i64]) -> Bytes {
    Bytes::from(serde_json::to_vec(list).expect("a list of integers always serialises"))
}

/// The element key of `e` in the set `set`.
fn set_member_key(set: &str, e: i64) -> String {
    format!("{set}/{e:012}")
}

/// Runs one operation of `kind` and says how it ended. `f = "final-read"` is a read.
pub async fn execute(
    kind: WorkloadKind,
    conn: &Conn,
    spec: &OpSpec,
    opts: &CallOptions,
    timeout: Duration,
) -> Outcome {
    let is_write = !matches!(spec.f, "read" | "final-read");
    match tokio::time::timeout(timeout, execute_inner(kind, conn, spec, opts)).await {
        Ok(outcome) => outcome,
        Err(_) if is_write => Outcome::Info(format!("no answer within {timeout:?}")),
        Err(_) => Outcome::Fail(format!("no answer within {timeout:?}")),
    }
}

async fn execute_inner(
    kind: WorkloadKind,
    conn: &Conn,
    spec: &OpSpec,
    opts: &CallOptions,
) -> Outcome {
    let key = spec.key.as_str();
    let ok = |value: Value, replica: u64| Outcome::Ok {
        value,
        node: Some(replica),
    };
    if let Conn::Txn(tc) = conn {
        return execute_txn(kind, tc, spec).await;
    }
    match (kind, spec.f) {
        (WorkloadKind::Set, "read" | "final-read") => {
            let range = ScanRange::prefix(Bytes::from(format!("{key}/"))).limit(10_000);
            match conn.scan(&range, opts).await {
                Ok(page) if page.continuation.is_some() => {
                    Outcome::Fail("the set outgrew one scan page".into())
                }
                Ok(page) => {
                    let mut elems = Vec::with_capacity(page.items.len());
                    for item in &page.items {
                        match decode_int(&item.value) {
                            Ok(v) => elems.push(v),
                            Err(e) => return Outcome::Fail(e),
                        }
                    }
                    elems.sort_unstable();
                    ok(json!(elems), page.meta.replica_id)
                }
                Err(e) => classify(&e, false),
            }
        }
        (WorkloadKind::Set, "add") => {
            let Some(e) = spec.value.as_i64() else {
                return Outcome::Fail(format!("bad add argument {}", spec.value));
            };
            match conn
                .put(&set_member_key(key, e), Bytes::from(e.to_string()), opts)
                .await
            {
                Ok(out) => ok(json!(e), out.meta.replica_id),
                Err(err) => classify(&err, true),
            }
        }
        (WorkloadKind::Register, "read" | "final-read") => match conn.get(key, opts).await {
            Ok(out) => match out.value().map(|v| decode_int(v)).transpose() {
                Ok(v) => ok(json!(v), out.meta.replica_id),
                Err(e) => Outcome::Fail(e),
            },
            Err(e) => classify(&e, false),
        },
        (WorkloadKind::Register, "write") => {
            let Some(v) = spec.value.as_i64() else {
                return Outcome::Fail(format!("bad write argument {}", spec.value));
            };
            match conn.put(key, Bytes::from(v.to_string()), opts).await {
                Ok(out) => ok(json!(v), out.meta.replica_id),
                Err(e) => classify(&e, true),
            }
        }
        (WorkloadKind::Register, "delete") => match conn.delete(key, opts).await {
            Ok(out) => ok(Value::Null, out.meta.replica_id),
            Err(e) => classify(&e, true),
        },
        (WorkloadKind::Register, "cas") => {
            let (expected, new) = match spec.value.as_array().map(Vec::as_slice) {
                Some([e, Value::Number(n)]) if n.is_i64() => (e.as_i64(), n.as_i64()),
                _ => return Outcome::Fail(format!("bad cas argument {}", spec.value)),
            };
            let Some(new) = new else {
                return Outcome::Fail(format!("bad cas argument {}", spec.value));
            };
            let cond = match expected {
                Some(e) => Condition::ValueEquals(Bytes::from(e.to_string())),
                None => Condition::Absent,
            };
            match conn
                .cas(key, cond, Bytes::from(new.to_string()), opts)
                .await
            {
                Ok(out) if out.succeeded => Outcome::Ok {
                    value: Value::Null,
                    node: Some(out.meta.replica_id),
                },
                Ok(_) => Outcome::Fail("compare failed".into()),
                Err(e) => classify(&e, true),
            }
        }
        (WorkloadKind::ListAppend | WorkloadKind::Session, "read" | "final-read") => {
            match conn.get(key, opts).await {
                Ok(out) => match out.value().map(|v| decode_list(v)).transpose() {
                    Ok(list) => ok(json!(list.unwrap_or_default()), out.meta.replica_id),
                    Err(e) => Outcome::Fail(e),
                },
                Err(e) => classify(&e, false),
            }
        }
        (WorkloadKind::ListAppend | WorkloadKind::Session, "append") => {
            let Some(v) = spec.value.as_i64() else {
                return Outcome::Fail(format!("bad append argument {}", spec.value));
            };
            append(conn, key, v, opts).await
        }
        (_, f) => Outcome::Fail(format!("the {kind} workload has no {f} operation")),
    }
}

/// Runs an operation of a transactional workload.
async fn execute_txn(kind: WorkloadKind, conn: &txn::TxnConn, spec: &OpSpec) -> Outcome {
    match (kind, spec.f) {
        (WorkloadKind::Txn, "txn") => txn::list_append(conn, &spec.value).await,
        (WorkloadKind::Txn, "read" | "final-read") => txn::plain_list_read(conn, &spec.key).await,
        (WorkloadKind::Bank, "init") => match bank_balances(&spec.value) {
            Some(b) => txn::bank_init(conn, &b).await,
            None => Outcome::Fail(format!("bad init argument {}", spec.value)),
        },
        (WorkloadKind::Bank, "transfer") => {
            let from = spec.value["from"].as_str();
            let to = spec.value["to"].as_str();
            let amount = spec.value["amount"].as_i64();
            match (from, to, amount) {
                (Some(from), Some(to), Some(amount)) if from != to => {
                    txn::bank_transfer(conn, from, to, amount).await
                }
                _ => Outcome::Fail(format!("bad transfer argument {}", spec.value)),
            }
        }
        (WorkloadKind::Bank, "read" | "final-read") => {
            txn::bank_read(conn, bank::PREFIX, bank::PREFIX_END).await
        }
        (_, f) => Outcome::Fail(format!(
            "the {kind} workload has no transactional {f} operation"
        )),
    }
}

/// Decodes `{account: balance}`.
fn bank_balances(v: &Value) -> Option<BTreeMap<String, i64>> {
    v.as_object()?
        .iter()
        .map(|(k, b)| b.as_i64().map(|b| (k.clone(), b)))
        .collect()
}

/// Appends `v` to the list at `key` by compare-and-set of the whole list, retrying after
/// definite failures (another append got in first) until the caller's timeout.
async fn append(conn: &Conn, key: &str, v: i64, opts: &CallOptions) -> Outcome {
    // The current list and the condition that it is still current.
    let (mut list, mut cond) = match conn.get(key, opts).await {
        Ok(out) => match out.value() {
            Some(bytes) => match decode_list(bytes) {
                Ok(l) => (l, Condition::ValueEquals(bytes.clone())),
                Err(e) => return Outcome::Fail(e),
            },
            None => (Vec::new(), Condition::Absent),
        },
        Err(e) => return Outcome::Fail(format!("reading before the append: {e}")),
    };
    loop {
        let mut new = list.clone();
        new.push(v);
        match conn.cas(key, cond.clone(), encode_list(&new), opts).await {
            Ok(out) if out.succeeded => {
                return Outcome::Ok {
                    value: json!(v),
                    node: Some(out.meta.replica_id),
                }
            }
            Ok(out) => match out.current {
                Some(entry) => match decode_list(&entry.value) {
                    Ok(l) => {
                        list = l;
                        cond = Condition::ValueEquals(entry.value);
                    }
                    Err(e) => return Outcome::Fail(e),
                },
                None => {
                    list = Vec::new();
                    cond = Condition::Absent;
                }
            },
            // The attempt may still apply: retrying with a new request id could append v
            // twice, so the append ends here, outcome unknown.
            Err(e) => return classify(&e, true),
        }
        tokio::task::yield_now().await;
    }
}

/// One checker's verdict in a run.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Which checker ran (`linearizable`, `elle-list-append`, `session/RYW`, ...).
    pub checker: String,
    /// The level or guarantee it verified.
    pub level: String,
    /// Its verdict.
    pub verdict: Verdict,
}

/// Checks a history of `kind` at `level` with the referee's checkers, and each session
/// guarantee the clients kept (`session`) on its own.
pub fn check(
    kind: WorkloadKind,
    level: Level,
    session: Option<SessionGuarantees>,
    history: &History,
) -> Vec<CheckResult> {
    let result = |checker: &str, level: &str, verdict: Verdict| CheckResult {
        checker: checker.into(),
        level: level.into(),
        verdict,
    };
    let list_level = |history: &History| match level {
        Level::Linearizable => result(
            "elle-list-append",
            "linearizable",
            elle::check_list_append(history, ListAppendLevel::Linearizable),
        ),
        Level::Sequential => result(
            "elle-list-append",
            "sequential",
            elle::check_list_append(history, ListAppendLevel::Sequential),
        ),
        Level::Causal | Level::Eventual | Level::StrictSerializable => result(
            "eventual",
            "eventual",
            eventual::check(history, HistoryWorkload::ListAppend),
        ),
    };
    let guarantees = |workload: HistoryWorkload| -> Vec<CheckResult> {
        session
            .map(|g| {
                session::check_each(history, g, workload)
                    .into_iter()
                    .map(|(g, v)| result(&format!("session/{}", g.short_name()), g.short_name(), v))
                    .collect()
            })
            .unwrap_or_default()
    };
    match kind {
        WorkloadKind::Register => std::iter::once(match level {
            Level::Linearizable => {
                result("linearizable", "linearizable", linearizable::check(history))
            }
            Level::Sequential => result("sequential", "sequential", sequential::check(history)),
            Level::Causal => result("causal", "causal", causal::check(history, CausalModel::CC)),
            Level::Eventual | Level::StrictSerializable => result(
                "eventual",
                "eventual",
                eventual::check(history, HistoryWorkload::Register),
            ),
        })
        // A session kept on registers is checked guarantee by guarantee.
        .chain(guarantees(HistoryWorkload::Register))
        .collect(),
        WorkloadKind::ListAppend => vec![list_level(history)],
        WorkloadKind::Set => vec![result(
            "set",
            level.name(),
            set::check(history, level == Level::Linearizable),
        )],
        WorkloadKind::Session => {
            let mut out = guarantees(HistoryWorkload::ListAppend);
            out.push(list_level(history));
            out
        }
        WorkloadKind::Txn => vec![result(
            "elle-txn",
            Isolation::StrictSerializable.name(),
            elle::check_txn(history, Isolation::StrictSerializable),
        )],
        WorkloadKind::Bank => vec![result("bank", level.name(), bank::check(history))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_operations() {
        for kind in [
            WorkloadKind::Register,
            WorkloadKind::ListAppend,
            WorkloadKind::Set,
            WorkloadKind::Session,
            WorkloadKind::Txn,
            WorkloadKind::Bank,
        ] {
            let (live, per) = Generator::defaults(kind);
            let mut a = Generator::new(kind, 9, live, per);
            let mut b = Generator::new(kind, 9, live, per);
            let mut c = Generator::new(kind, 10, live, per);
            let xs: Vec<OpSpec> = (0..500).map(|_| a.next_op()).collect();
            let ys: Vec<OpSpec> = (0..500).map(|_| b.next_op()).collect();
            let zs: Vec<OpSpec> = (0..500).map(|_| c.next_op()).collect();
            assert_eq!(xs, ys, "{kind}");
            assert_ne!(xs, zs, "{kind}");
        }
    }

    #[test]
    fn written_values_are_unique_and_keys_rotate() {
        let mut g = Generator::new(WorkloadKind::Register, 1, 2, 10);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let op = g.next_op();
            let written = match op.f {
                "write" => op.value.as_i64(),
                "cas" => op.value[1].as_i64(),
                _ => None,
            };
            if let Some(v) = written {
                assert!(seen.insert(v), "value {v} written twice");
            }
        }
        assert!(
            g.touched_keys().len() >= 20,
            "keys rotate after 10 ops each"
        );
        assert!(g.used_keys().len() <= g.touched_keys().len());
    }

    #[test]
    fn deletes_come_only_when_asked_and_the_next_cas_expects_absence() {
        let mut plain = Generator::new(WorkloadKind::Register, 3, 1, 10_000);
        assert!((0..500).all(|_| plain.next_op().f != "delete"));
        let mut g = Generator::new(WorkloadKind::Register, 3, 1, 10_000).with_deletes(true);
        let ops: Vec<OpSpec> = (0..500).map(|_| g.next_op()).collect();
        let deletes = ops.iter().filter(|o| o.f == "delete").count();
        assert!(
            (20..100).contains(&deletes),
            "{deletes} deletes in 500 operations"
        );
        // One key: every cas right after a delete (nothing written between) expects null.
        let mut after_delete = 0;
        for pair in ops.windows(2) {
            if pair[0].f == "delete" && pair[1].f == "cas" {
                assert_eq!(pair[1].value[0], Value::Null, "{:?}", pair[1]);
                after_delete += 1;
            }
        }
        assert!(
            after_delete > 0,
            "no cas right after a delete in 500 operations"
        );
    }

    #[test]
    fn classify_reads_fail_and_unknown_writes_are_info() {
        use dialkv_client::ErrorStatus;
        let status = ErrorStatus::local(tonic::Code::DeadlineExceeded, "late");
        assert!(matches!(
            classify(&Error::Indeterminate(status.clone()), true),
            Outcome::Info(_)
        ));
        assert!(matches!(
            classify(&Error::Indeterminate(status.clone()), false),
            Outcome::Fail(_)
        ));
        assert!(matches!(
            classify(&Error::Unavailable(status), true),
            Outcome::Fail(_)
        ));
    }

    #[test]
    fn parses_names() {
        assert_eq!("list-append".parse(), Ok(WorkloadKind::ListAppend));
        assert_eq!("txn".parse(), Ok(WorkloadKind::Txn));
        assert_eq!("bank".parse(), Ok(WorkloadKind::Bank));
        assert!("banks".parse::<WorkloadKind>().is_err());
        assert_eq!("eventual".parse(), Ok(Level::Eventual));
        assert_eq!("strict-serializable".parse(), Ok(Level::StrictSerializable));
        assert_eq!(WorkloadKind::Txn.levels(), &[Level::StrictSerializable]);
    }

    #[test]
    fn transactions_are_short_unique_and_multi_key() {
        let (live, per) = Generator::defaults(WorkloadKind::Txn);
        let mut g = Generator::new(WorkloadKind::Txn, 3, live, per);
        let mut appended = std::collections::HashSet::new();
        let mut multi_key = 0;
        for _ in 0..500 {
            let op = g.next_op();
            assert_eq!(op.f, "txn");
            assert!(op.key.is_empty());
            let mops = txn::parse_mops(&op.value).expect("well-formed micro-ops");
            assert!((1..=4).contains(&mops.len()), "{}", op.value);
            let keys: std::collections::BTreeSet<&str> = mops
                .iter()
                .map(|m| match m {
                    txn::Mop::Read(k) | txn::Mop::Append(k, _) => k.as_str(),
                })
                .collect();
            if keys.len() > 1 {
                multi_key += 1;
            }
            for m in &mops {
                if let txn::Mop::Append(_, v) = m {
                    assert!(appended.insert(*v), "{v} appended twice");
                }
            }
        }
        assert!(multi_key > 100, "{multi_key} multi-key transactions");
    }

    #[test]
    fn bank_operations_move_money_between_two_accounts() {
        let mut g = Generator::new(WorkloadKind::Bank, 5, bank::ACCOUNTS, u32::MAX);
        let (mut reads, mut transfers) = (0, 0);
        for _ in 0..300 {
            let op = g.next_op();
            match op.f {
                "read" => reads += 1,
                "transfer" => {
                    transfers += 1;
                    assert_ne!(op.value["from"], op.value["to"]);
                    let a = op.value["amount"].as_i64().expect("an amount");
                    assert!((1..=bank::MAX_TRANSFER).contains(&a));
                }
                f => panic!("unexpected {f}"),
            }
        }
        assert!(
            reads > 50 && transfers > 100,
            "{reads} reads, {transfers} transfers"
        );
    }
}
