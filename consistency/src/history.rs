//! The history model: what clients did, as seen from the clients, and the JSON-lines format
//! every tool in dialkv reads and writes.
//!
//! A *history* is the record a test harness (see `jepsen/`) keeps of a run: for every
//! operation, an `invoke` event when a client process starts it and one completion event when
//! the outcome is known. The checkers in this crate ([`crate::linearizable`],
//! [`crate::sequential`], [`crate::session`], [`crate::eventual`], and the Elle-style and causal
//! checkers) all read a [`History`]. The model follows Jepsen's (Kingsbury, Alvaro, "Elle:
//! Inferring Isolation Anomalies from Experimental Observations", VLDB 2020, §3): processes are
//! sequential, and an operation whose outcome is unknown stays open for ever.
//!
//! # The JSON-lines format (stable)
//!
//! One event per line, UTF-8, a JSON object per line; blank lines are ignored. Example:
//!
//! ```text
//! {"index":0,"process":3,"session":3,"type":"invoke","f":"write","key":"k1","value":5,"time_ns":1234,"node":null}
//! {"index":1,"process":3,"session":3,"type":"ok","f":"write","key":"k1","value":5,"time_ns":2345,"node":"n1"}
//! ```
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `index` | u64 | position of the event in the history; strictly increasing from line to line |
//! | `process` | u64 | a logical client thread; it runs one operation at a time. After an `info` completion the process id is retired and never used again |
//! | `session` | u64, optional | the client session the operation belongs to (a session may span several processes); defaults to `process` when absent |
//! | `type` | `"invoke"`, `"ok"`, `"fail"`, `"info"` | `ok`: took effect; `fail`: certainly did not take effect; `info`: indeterminate, it may take effect at any time after its invocation, or never |
//! | `f` | string | the operation name (see below) |
//! | `key` | string, optional | the key; absent for multi-key transactions |
//! | `value` | any JSON, optional (default `null`) | the argument or result (see below) |
//! | `time_ns` | u64 | a monotonic clock reading in nanoseconds, taken on the harness machine |
//! | `node` | string or null, optional | which replica served the operation, when known (used by final reads, see [`crate::eventual`]) |
//!
//! Unknown fields are ignored, so a harness may add its own (`error`, `latency`, ...).
//!
//! Values by workload:
//!
//! - register: `f = "read"` (invoke value `null`; ok value an integer, or `null` for the
//!   initial, never-written state), `f = "write"` (value an integer), `f = "cas"` (value
//!   `[expected, new]`, `expected` may be `null` for "still initial"); `f = "final-read"` is a
//!   read issued to one replica (named by `node`) after the system has quiesced.
//! - list-append: `f = "append"` (value an integer, unique per key), `f = "read"` (ok value a
//!   list of integers, the state of the list).
//! - transactions: `f = "txn"`, no key, value a list of micro-operations `["append","x",1]` and
//!   `["r","x",null]`; in the ok completion the reads are filled in: `["r","x",[1,2]]`.
//!
//! The completion of an invocation is the next event of the same process; it must carry the
//! same `f` and `key`. An invocation without a completion at the end of the history is treated
//! as `info`.
//!
//! # Rust types
//!
//! [`Event`] is one line; [`History`] is the validated sequence of events together with its
//! [`Op`]s, one per invocation, pairing the invoke with its completion. Typed accessors on
//! [`Op`] ([`Op::int_value`], [`Op::list_value`], [`Op::cas_value`], [`Op::mops`]) decode the
//! workload values. [`HistoryBuilder`] writes histories in tests and generators.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::BufRead;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A client process id: a logical thread that runs one operation at a time.
pub type ProcessId = u64;

/// A client session id; a session may span several processes.
pub type SessionId = u64;

/// The position of an event in a history.
pub type EventIndex = u64;

/// The kind of an event: an invocation or one of the three completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client started the operation.
    Invoke,
    /// The operation took effect; its result is in `value`.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// The outcome is unknown: the operation may take effect at any later time, or never.
    Info,
}

/// One line of a history file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position of the event in the history.
    pub index: EventIndex,
    /// The client process that ran the operation.
    pub process: ProcessId,
    /// The client session; defaults to `process` when absent from the input.
    #[serde(default)]
    pub session: Option<SessionId>,
    /// Invocation or completion.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Operation name: `read`, `write`, `cas`, `append`, `txn`, `final-read`, ...
    pub f: String,
    /// The key; `None` for multi-key transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Argument (in invocations) or result (in `ok` completions); see the module docs.
    #[serde(default)]
    pub value: Value,
    /// Monotonic time of the event in nanoseconds.
    pub time_ns: u64,
    /// The replica that served the operation, when known.
    #[serde(default)]
    pub node: Option<String>,
}

impl Event {
    /// Returns the session, falling back to the process id when the input gave none.
    pub fn session_id(&self) -> SessionId {
        self.session.unwrap_or(self.process)
    }

    /// Serialises the event as one JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("an Event always serialises: its fields are plain data")
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// It took effect and the result is known.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Indeterminate: it may take effect at any time after its invocation, or never. Also
    /// used for invocations that never completed.
    Info,
}

/// One operation: an invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Index of the invoke event; unique per operation, so it identifies the operation.
    pub index: EventIndex,
    /// Index of the completion event, if there was one.
    pub complete_index: Option<EventIndex>,
    /// The client process.
    pub process: ProcessId,
    /// The client session.
    pub session: SessionId,
    /// Operation name.
    pub f: String,
    /// The key, `None` for transactions.
    pub key: Option<String>,
    /// The value of the invocation (the argument).
    pub invoke_value: Value,
    /// The outcome value: the completion's value when it is not `null`, otherwise the
    /// invocation's value. For an ok read it is what was read; for a write, what was written.
    pub value: Value,
    /// How the operation ended.
    pub kind: OpKind,
    /// Time of the invocation.
    pub invoke_ns: u64,
    /// Time of the completion; `None` for `info` operations, which stay open for ever.
    pub complete_ns: Option<u64>,
    /// The replica that served the operation (from the completion, else the invocation).
    pub node: Option<String>,
}

/// A micro-operation of a transaction (`f = "txn"`), or the single micro-operation of a
/// list-append operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mop {
    /// Append `value` to the list at `key`.
    Append {
        /// The key.
        key: String,
        /// The appended element, unique per key.
        value: i64,
    },
    /// Read the list at `key`; `value` is `None` when the result is not known (invocations,
    /// `info` and `fail` operations).
    Read {
        /// The key.
        key: String,
        /// The list read, if known.
        value: Option<Vec<i64>>,
    },
}

impl Mop {
    /// Returns the key the micro-operation touches.
    pub fn key(&self) -> &str {
        match self {
            Mop::Append { key, .. } | Mop::Read { key, .. } => key,
        }
    }
}

impl Op {
    /// Returns true when the operation took effect with a known result.
    pub fn is_ok(&self) -> bool {
        self.kind == OpKind::Ok
    }

    /// Returns true when the operation may or may not have taken effect.
    pub fn is_info(&self) -> bool {
        self.kind == OpKind::Info
    }

    /// Returns true when the operation certainly did not take effect.
    pub fn is_fail(&self) -> bool {
        self.kind == OpKind::Fail
    }

    /// Returns the completion time, or `u64::MAX` for an `info` operation (it may take effect
    /// at any later time, so its interval never closes).
    pub fn end_ns(&self) -> u64 {
        self.complete_ns.unwrap_or(u64::MAX)
    }

    /// Returns the key, or a value error when the operation has none.
    pub fn require_key(&self) -> Result<&str, HistoryError> {
        self.key
            .as_deref()
            .ok_or_else(|| self.bad_value("operation has no key"))
    }

    /// Decodes [`Op::value`] as an optional integer: `null` is `None` (the initial state of a
    /// register), an integer is `Some`. Used for register reads and writes and for appends.
    pub fn int_value(&self) -> Result<Option<i64>, HistoryError> {
        decode_opt_int(&self.value).ok_or_else(|| self.bad_value("expected an integer or null"))
    }

    /// Decodes [`Op::value`] as an optional list of integers: `null` is `None` (unknown), a
    /// list is `Some`. Used for list-append reads.
    pub fn list_value(&self) -> Result<Option<Vec<i64>>, HistoryError> {
        decode_opt_list(&self.value)
            .ok_or_else(|| self.bad_value("expected a list of integers or null"))
    }

    /// Decodes the invocation value of a `cas` as `(expected, new)`; `expected = None` means
    /// "the register still holds its initial value".
    pub fn cas_value(&self) -> Result<(Option<i64>, i64), HistoryError> {
        let err =
            || self.bad_value("expected [expected, new] with integers (expected may be null)");
        let arr = self.invoke_value.as_array().ok_or_else(err)?;
        if arr.len() != 2 {
            return Err(err());
        }
        let expected = decode_opt_int(&arr[0]).ok_or_else(err)?;
        let new = arr[1].as_i64().ok_or_else(err)?;
        Ok((expected, new))
    }

    /// Decodes the micro-operations. For `f = "txn"` it reads the list of micro-operations in
    /// [`Op::value`] (reads are `None` unless the operation is ok). For a single-key
    /// list-append operation (`append` or `read` with a key) it returns the one equivalent
    /// micro-operation, so Elle-style checkers can treat both workloads alike.
    pub fn mops(&self) -> Result<Vec<Mop>, HistoryError> {
        match self.f.as_str() {
            "txn" => {
                let arr = self
                    .value
                    .as_array()
                    .ok_or_else(|| self.bad_value("txn value must be a list of micro-ops"))?;
                arr.iter()
                    .map(|m| decode_mop(m, self.is_ok()).ok_or_else(|| self.bad_mop(m)))
                    .collect()
            }
            "append" => {
                let key = self.require_key()?.to_string();
                let value = self
                    .int_value()?
                    .ok_or_else(|| self.bad_value("append needs an integer"))?;
                Ok(vec![Mop::Append { key, value }])
            }
            "read" | "final-read" => {
                let key = self.require_key()?.to_string();
                let value = if self.is_ok() {
                    self.list_value()?
                } else {
                    None
                };
                Ok(vec![Mop::Read { key, value }])
            }
            other => Err(self.bad_value(&format!("operation {other:?} has no micro-ops"))),
        }
    }

    fn bad_mop(&self, m: &Value) -> HistoryError {
        self.bad_value(&format!(
            "bad micro-op {m}: expected [\"append\",key,int] or [\"r\",key,null|[ints]]"
        ))
    }

    fn bad_value(&self, msg: &str) -> HistoryError {
        HistoryError::BadValue {
            index: self.index,
            msg: format!("{} {:?}: {msg}, got {}", self.f, self.key, self.value),
        }
    }
}

fn decode_opt_int(v: &Value) -> Option<Option<i64>> {
    match v {
        Value::Null => Some(None),
        other => other.as_i64().map(Some),
    }
}

fn decode_opt_list(v: &Value) -> Option<Option<Vec<i64>>> {
    match v {
        Value::Null => Some(None),
        Value::Array(items) => items
            .iter()
            .map(Value::as_i64)
            .collect::<Option<Vec<_>>>()
            .map(Some),
        _ => None,
    }
}

fn decode_mop(m: &Value, reads_known: bool) -> Option<Mop> {
    let arr = m.as_array()?;
    if arr.len() != 3 {
        return None;
    }
    let key = arr[1].as_str()?.to_string();
    match arr[0].as_str()? {
        "append" => Some(Mop::Append {
            key,
            value: arr[2].as_i64()?,
        }),
        "r" => {
            let value = decode_opt_list(&arr[2])?;
            Some(Mop::Read {
                key,
                value: if reads_known { value } else { None },
            })
        }
        _ => None,
    }
}

/// The kind of workload a history records, which decides how values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Single-key registers: `read`, `write`, `cas`, `final-read`.
    Register,
    /// Single-key lists: `append`, `read`, `final-read`.
    ListAppend,
    /// Multi-key transactions of list-append micro-operations: `txn`.
    Txn,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Register => "register",
            Workload::ListAppend => "list-append",
            Workload::Txn => "txn",
        })
    }
}

impl std::str::FromStr for Workload {
    type Err = String;

    /// Parses `register`, `list-append` or `txn`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "register" => Ok(Workload::Register),
            "list-append" => Ok(Workload::ListAppend),
            "txn" => Ok(Workload::Txn),
            other => Err(format!(
                "unknown workload {other:?}: expected register, list-append or txn"
            )),
        }
    }
}

/// Why a history could not be read. Every variant tells the caller which line or event to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line is not a valid event; `line` is 1-based.
    #[error("line {line}: {msg}")]
    Parse {
        /// The 1-based line number that broke.
        line: usize,
        /// What was wrong with it.
        msg: String,
    },
    /// The events are valid JSON but do not form a well-formed history (an unpaired
    /// completion, a process running two operations at once, ...). `line` is 1-based when the
    /// history came from a file, else the 1-based position of the event.
    #[error("line {line} (event {index}): {msg}")]
    Malformed {
        /// 1-based line (or position) of the offending event.
        line: usize,
        /// The offending event's index.
        index: EventIndex,
        /// What was wrong.
        msg: String,
    },
    /// An operation's value does not fit its workload (e.g. a write of a string).
    #[error("operation at event {index}: {msg}")]
    BadValue {
        /// Index of the operation's invoke event.
        index: EventIndex,
        /// What was expected and found.
        msg: String,
    },
    /// The input could not be read.
    #[error("cannot read history: {0}")]
    Io(String),
}

impl HistoryError {
    /// Returns the 1-based line number the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            HistoryError::Parse { line, .. } | HistoryError::Malformed { line, .. } => Some(*line),
            HistoryError::BadValue { .. } | HistoryError::Io(_) => None,
        }
    }
}

/// A validated history: events in index order, and the operations they form.
///
/// Invariants established by [`History::from_events`]: indexes strictly increase; every
/// completion follows an invocation of the same process with the same `f` and `key`, no sooner
/// in time; a process runs one operation at a time and is not used again after an `info`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    events: Vec<Event>,
    ops: Vec<Op>,
}

impl History {
    /// Builds a history from events, validating and pairing them.
    pub fn from_events(events: Vec<Event>) -> Result<History, HistoryError> {
        let lines: Vec<usize> = (1..=events.len()).collect();
        Self::from_events_with_lines(events, &lines)
    }

    fn from_events_with_lines(
        events: Vec<Event>,
        lines: &[usize],
    ) -> Result<History, HistoryError> {
        let mut ops: Vec<Op> = Vec::new();
        // Open operation per process: position in `ops`.
        let mut open: HashMap<ProcessId, usize> = HashMap::new();
        let mut retired: HashSet<ProcessId> = HashSet::new();
        let mut last_index: Option<EventIndex> = None;
        for (pos, e) in events.iter().enumerate() {
            let line = lines[pos];
            let malformed = |msg: String| HistoryError::Malformed {
                line,
                index: e.index,
                msg,
            };
            if let Some(prev) = last_index {
                if e.index <= prev {
                    return Err(malformed(format!(
                        "index {} does not increase (previous {prev})",
                        e.index
                    )));
                }
            }
            last_index = Some(e.index);
            if retired.contains(&e.process) {
                return Err(malformed(format!(
                    "process {} was retired by an earlier info completion and cannot be reused",
                    e.process
                )));
            }
            match e.event_type {
                EventType::Invoke => {
                    if let Some(&at) = open.get(&e.process) {
                        return Err(malformed(format!(
                            "process {} invokes while its operation at event {} is still open",
                            e.process, ops[at].index
                        )));
                    }
                    open.insert(e.process, ops.len());
                    ops.push(Op {
                        index: e.index,
                        complete_index: None,
                        process: e.process,
                        session: e.session_id(),
                        f: e.f.clone(),
                        key: e.key.clone(),
                        invoke_value: e.value.clone(),
                        value: e.value.clone(),
                        kind: OpKind::Info,
                        invoke_ns: e.time_ns,
                        complete_ns: None,
                        node: e.node.clone(),
                    });
                }
                completion => {
                    let at = open.remove(&e.process).ok_or_else(|| {
                        malformed(format!(
                            "{completion:?} completion of process {} without an open invocation",
                            e.process
                        ))
                    })?;
                    let op = &mut ops[at];
                    if op.f != e.f || op.key != e.key {
                        return Err(malformed(format!(
                            "completion ({} {:?}) does not match its invocation ({} {:?}) at event {}",
                            e.f, e.key, op.f, op.key, op.index
                        )));
                    }
                    if e.time_ns < op.invoke_ns {
                        return Err(malformed(format!(
                            "completion time {} is before its invocation time {}",
                            e.time_ns, op.invoke_ns
                        )));
                    }
                    op.complete_index = Some(e.index);
                    if !e.value.is_null() {
                        op.value = e.value.clone();
                    }
                    if e.node.is_some() {
                        op.node = e.node.clone();
                    }
                    match completion {
                        EventType::Ok => {
                            op.kind = OpKind::Ok;
                            op.complete_ns = Some(e.time_ns);
                        }
                        EventType::Fail => {
                            op.kind = OpKind::Fail;
                            op.complete_ns = Some(e.time_ns);
                        }
                        EventType::Info => {
                            op.kind = OpKind::Info;
                            retired.insert(e.process);
                        }
                        EventType::Invoke => unreachable!("handled by the outer match"),
                    }
                }
            }
        }
        Ok(History { events, ops })
    }

    /// Parses a JSON-lines history. Errors name the 1-based line that broke.
    pub fn from_jsonl(text: &str) -> Result<History, HistoryError> {
        Self::from_reader(text.as_bytes())
    }

    /// Parses a JSON-lines history from a reader. Errors name the 1-based line that broke.
    pub fn from_reader<R: BufRead>(reader: R) -> Result<History, HistoryError> {
        let mut events = Vec::new();
        let mut lines = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line_no = i + 1;
            let line = line.map_err(|err| HistoryError::Parse {
                line: line_no,
                msg: err.to_string(),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let event: Event = serde_json::from_str(&line).map_err(|err| HistoryError::Parse {
                line: line_no,
                msg: err.to_string(),
            })?;
            events.push(event);
            lines.push(line_no);
        }
        Self::from_events_with_lines(events, &lines)
    }

    /// Writes the history as JSON lines, one event per line, each ending in a newline.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in &self.events {
            out.push_str(&e.to_json_line());
            out.push('\n');
        }
        out
    }

    /// Returns the events in index order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Returns the operations, one per invocation, in invocation order. Invocations that never
    /// completed are `info`.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Returns true when the history has no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Returns the operations grouped by key (operations without a key are left out), in
    /// invocation order within each key.
    pub fn ops_by_key(&self) -> BTreeMap<&str, Vec<&Op>> {
        let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
        for op in &self.ops {
            if let Some(k) = op.key.as_deref() {
                by_key.entry(k).or_default().push(op);
            }
        }
        by_key
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            OpKind::Ok => "ok",
            OpKind::Fail => "fail",
            OpKind::Info => "info",
        };
        write!(
            f,
            "#{} p{} s{} {}",
            self.index, self.process, self.session, self.f
        )?;
        if let Some(k) = &self.key {
            write!(f, " {k}")?;
        }
        if self.f == "cas" || self.invoke_value != self.value {
            write!(f, " {} -> {}", self.invoke_value, self.value)?;
        } else {
            write!(f, " {}", self.value)?;
        }
        write!(f, " {kind} [{}, ", self.invoke_ns)?;
        match self.complete_ns {
            Some(t) => write!(f, "{t}]")?,
            None => write!(f, "∞)")?,
        }
        if let Some(n) = &self.node {
            write!(f, " @{n}")?;
        }
        Ok(())
    }
}

/// Writes histories one event at a time, assigning indexes in order. Used by tests, benches
/// and history generators; the harness in `jepsen/` may use it too.
///
/// Sessions default to the process id; set one with [`HistoryBuilder::session`].
#[derive(Clone, Debug, Default)]
pub struct HistoryBuilder {
    events: Vec<Event>,
    sessions: HashMap<ProcessId, SessionId>,
}

impl HistoryBuilder {
    /// Returns an empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `process` into `session` for its later events.
    pub fn session(&mut self, process: ProcessId, session: SessionId) -> &mut Self {
        self.sessions.insert(process, session);
        self
    }

    /// Appends an event and returns its index, which the builder assigns (the `index` field
    /// is overwritten). A missing session is filled in from [`HistoryBuilder::session`].
    pub fn push(&mut self, mut event: Event) -> EventIndex {
        let index = self.events.len() as EventIndex;
        event.index = index;
        if event.session.is_none() {
            event.session = Some(*self.sessions.get(&event.process).unwrap_or(&event.process));
        }
        self.events.push(event);
        index
    }

    /// Appends an event without a node and returns its index.
    pub fn event(
        &mut self,
        process: ProcessId,
        event_type: EventType,
        f: &str,
        key: Option<&str>,
        value: Value,
        time_ns: u64,
    ) -> EventIndex {
        self.push(Event {
            index: 0,
            process,
            session: None,
            event_type,
            f: f.to_string(),
            key: key.map(str::to_string),
            value,
            time_ns,
            node: None,
        })
    }

    /// Appends an invocation of `f` on `key`.
    pub fn invoke(
        &mut self,
        process: ProcessId,
        f: &str,
        key: &str,
        value: Value,
        time_ns: u64,
    ) -> EventIndex {
        self.event(process, EventType::Invoke, f, Some(key), value, time_ns)
    }

    /// Appends an `ok` completion.
    pub fn ok(
        &mut self,
        process: ProcessId,
        f: &str,
        key: &str,
        value: Value,
        time_ns: u64,
    ) -> EventIndex {
        self.event(process, EventType::Ok, f, Some(key), value, time_ns)
    }

    /// Appends a `fail` completion.
    pub fn fail(
        &mut self,
        process: ProcessId,
        f: &str,
        key: &str,
        value: Value,
        time_ns: u64,
    ) -> EventIndex {
        self.event(process, EventType::Fail, f, Some(key), value, time_ns)
    }

    /// Appends an `info` completion.
    pub fn info(
        &mut self,
        process: ProcessId,
        f: &str,
        key: &str,
        value: Value,
        time_ns: u64,
    ) -> EventIndex {
        self.event(process, EventType::Info, f, Some(key), value, time_ns)
    }

    /// Returns the events written so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Validates and returns the history.
    pub fn build(self) -> Result<History, HistoryError> {
        History::from_events(self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SAMPLE: &str = r#"{"index":0,"process":3,"session":3,"type":"invoke","f":"write","key":"k1","value":5,"time_ns":1234,"node":null}
{"index":1,"process":4,"type":"invoke","f":"read","key":"k1","value":null,"time_ns":1300}
{"index":2,"process":3,"session":3,"type":"ok","f":"write","key":"k1","value":5,"time_ns":2345,"node":"n1"}

{"index":3,"process":4,"type":"ok","f":"read","key":"k1","value":5,"time_ns":2400}
{"index":4,"process":5,"type":"invoke","f":"txn","value":[["append","x",1],["r","x",null]],"time_ns":2500}
{"index":5,"process":5,"type":"ok","f":"txn","value":[["append","x",1],["r","x",[1]]],"time_ns":2600}
{"index":6,"process":6,"type":"invoke","f":"cas","key":"k1","value":[5,6],"time_ns":2700}
"#;

    #[test]
    fn parses_and_pairs_the_sample() {
        let h = History::from_jsonl(SAMPLE).expect("sample parses");
        assert_eq!(h.events().len(), 7);
        let ops = h.ops();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].kind, OpKind::Ok);
        assert_eq!(ops[0].int_value(), Ok(Some(5)));
        assert_eq!(ops[0].node.as_deref(), Some("n1"));
        assert_eq!(ops[1].session, 4, "session defaults to process");
        assert_eq!(ops[1].int_value(), Ok(Some(5)));
        assert_eq!(ops[1].complete_ns, Some(2400));
        assert_eq!(
            ops[2].mops(),
            Ok(vec![
                Mop::Append {
                    key: "x".into(),
                    value: 1
                },
                Mop::Read {
                    key: "x".into(),
                    value: Some(vec![1])
                },
            ])
        );
        assert_eq!(
            ops[3].kind,
            OpKind::Info,
            "an invoke without completion is info"
        );
        assert_eq!(ops[3].end_ns(), u64::MAX);
        assert_eq!(ops[3].cas_value(), Ok((Some(5), 6)));
    }

    #[test]
    fn round_trips_through_jsonl() {
        let h = History::from_jsonl(SAMPLE).expect("sample parses");
        let again = History::from_jsonl(&h.to_jsonl()).expect("own output parses");
        assert_eq!(h.ops(), again.ops());
    }

    #[test]
    fn malformed_json_names_the_line() {
        let text = "{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"a\",\"time_ns\":1}\n\n{\"index\":1,\"process\":1,\"type\":\"ok\",\"f\":\"read\" oops\n";
        let err = History::from_jsonl(text).expect_err("line 3 is broken");
        assert_eq!(err.line(), Some(3));
        assert!(err.to_string().starts_with("line 3:"), "{err}");
    }

    #[test]
    fn unknown_type_is_a_parse_error() {
        let text = "{\"index\":0,\"process\":1,\"type\":\"done\",\"f\":\"read\",\"time_ns\":1}\n";
        let err = History::from_jsonl(text).expect_err("bad type");
        assert!(matches!(err, HistoryError::Parse { line: 1, .. }));
    }

    #[test]
    fn structural_errors_name_the_line() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "read", "a", Value::Null, 1);
        b.invoke(1, "read", "a", Value::Null, 2);
        let err = b.build().expect_err("two open ops on one process");
        assert_eq!(err.line(), Some(2));

        let mut b = HistoryBuilder::new();
        b.ok(1, "read", "a", json!(1), 1);
        assert!(b.build().is_err(), "completion without invocation");

        let mut b = HistoryBuilder::new();
        b.invoke(1, "write", "a", json!(1), 1);
        b.info(1, "write", "a", json!(1), 2);
        b.invoke(1, "write", "a", json!(2), 3);
        let err = b.build().expect_err("retired process reused");
        assert!(err.to_string().contains("retired"), "{err}");

        let mut b = HistoryBuilder::new();
        b.invoke(1, "write", "a", json!(1), 5);
        b.ok(1, "write", "b", json!(1), 6);
        assert!(b.build().is_err(), "mismatched key");

        let mut b = HistoryBuilder::new();
        b.invoke(1, "write", "a", json!(1), 5);
        b.ok(1, "write", "a", json!(1), 4);
        assert!(b.build().is_err(), "completion before invocation");
    }

    #[test]
    fn bad_values_are_reported() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "write", "a", json!("x"), 1);
        b.ok(1, "write", "a", json!("x"), 2);
        let h = b.build().expect("well-formed");
        assert!(matches!(
            h.ops()[0].int_value(),
            Err(HistoryError::BadValue { index: 0, .. })
        ));
        assert!(h.ops()[0].cas_value().is_err());
        assert!(h.ops()[0].mops().is_err());
    }

    #[test]
    fn list_append_ops_have_one_mop() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "append", "x", json!(3), 1);
        b.ok(1, "append", "x", json!(3), 2);
        b.invoke(2, "read", "x", Value::Null, 3);
        b.ok(2, "read", "x", json!([3]), 4);
        let h = b.build().expect("well-formed");
        assert_eq!(
            h.ops()[0].mops(),
            Ok(vec![Mop::Append {
                key: "x".into(),
                value: 3
            }])
        );
        assert_eq!(h.ops()[1].list_value(), Ok(Some(vec![3])));
        assert_eq!(h.ops_by_key()["x"].len(), 2);
    }

    #[test]
    fn failed_and_info_txn_reads_are_unknown() {
        let mut b = HistoryBuilder::new();
        b.event(
            1,
            EventType::Invoke,
            "txn",
            None,
            json!([["r", "x", null]]),
            1,
        );
        b.event(1, EventType::Fail, "txn", None, json!([["r", "x", [1]]]), 2);
        let h = b.build().expect("well-formed");
        assert_eq!(
            h.ops()[0].mops(),
            Ok(vec![Mop::Read {
                key: "x".into(),
                value: None
            }])
        );
    }
}
