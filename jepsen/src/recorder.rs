//! The history of a run as it is written: every operation's invocation and completion, with
//! monotonic timestamps, in the referee's model (`dialkv_consistency::history`).
//!
//! [`Recorder`] hands out event indexes and takes the timestamp under one lock, so index
//! order and time order agree. Times are nanoseconds on `Instant` (monotonic) since the
//! recorder was made; the same clock stamps the nemesis log, so the report can lay faults and
//! operations on one axis.
//!
//! Process ids follow Jepsen's rule: a process runs one operation at a time, and after an
//! `info` completion (outcome unknown: the operation may still take effect later) the process
//! id is retired for ever. [`Processes`] gives the worker a fresh id to carry on with, while
//! the session (the client's identity for the session guarantees) stays the same.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use dialkv_consistency::history::{Event, EventType, History, ProcessId, SessionId};
use serde_json::Value;

/// The events of a run, in order.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

/// What an operation is, as recorded: name, key and argument or result.
#[derive(Clone, Debug, PartialEq)]
pub struct OpRecord {
    /// The client process.
    pub process: ProcessId,
    /// The session.
    pub session: SessionId,
    /// The operation name.
    pub f: String,
    /// The key, if any.
    pub key: Option<String>,
}

impl Recorder {
    /// Returns an empty recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Returns the nanoseconds since the recorder was made.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Returns the instant time zero stands for.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn push(&self, op: &OpRecord, event_type: EventType, value: Value, node: Option<String>) {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let time_ns = self.now_ns();
        let index = events.len() as u64;
        events.push(Event {
            index,
            process: op.process,
            session: Some(op.session),
            event_type,
            f: op.f.clone(),
            key: op.key.clone(),
            value,
            time_ns,
            node,
        });
    }

    /// Records the invocation of `op` with its argument.
    pub fn invoke(&self, op: &OpRecord, value: Value) {
        self.push(op, EventType::Invoke, value, None);
    }

    /// Records the completion of `op`: its type, result (or `null`) and serving node.
    pub fn complete(
        &self,
        op: &OpRecord,
        event_type: EventType,
        value: Value,
        node: Option<String>,
    ) {
        self.push(op, event_type, value, node);
    }

    /// Returns how many events were recorded.
    pub fn len(&self) -> usize {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Returns true when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns a copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Writes the events as JSON lines to `path`.
    pub fn write_jsonl(&self, path: &Path) -> anyhow::Result<()> {
        let mut out = String::new();
        for e in self.events() {
            out.push_str(&e.to_json_line());
            out.push('\n');
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
    }

    /// Validates the events as a history (every completion matches its invocation, no retired
    /// process reused, ...).
    pub fn history(&self) -> anyhow::Result<History> {
        History::from_events(self.events()).context("the recorded history is malformed")
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// Hands out process ids: workers start with `0..workers`, and each retired id is replaced by
/// a never-used one.
#[derive(Debug)]
pub struct Processes {
    next: AtomicU64,
}

impl Processes {
    /// Ids `0..workers` belong to the workers at the start; fresh ids come after.
    pub fn new(workers: u64) -> Self {
        Processes {
            next: AtomicU64::new(workers),
        }
    }

    /// Returns a never-used process id.
    pub fn fresh(&self) -> ProcessId {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialkv_consistency::history::OpKind;
    use serde_json::json;

    fn op(process: ProcessId, f: &str, key: &str) -> OpRecord {
        OpRecord {
            process,
            session: 0,
            f: f.into(),
            key: Some(key.into()),
        }
    }

    #[test]
    fn records_a_valid_history_with_monotonic_times() {
        let r = Recorder::new();
        let procs = Processes::new(2);
        let w = op(0, "write", "k");
        r.invoke(&w, json!(1));
        let rd = op(1, "read", "k");
        r.invoke(&rd, Value::Null);
        r.complete(&w, EventType::Ok, json!(1), Some("n1".into()));
        r.complete(&rd, EventType::Info, Value::Null, None);
        // Process 1 is retired; its worker carries on as a fresh process, same session.
        let p = procs.fresh();
        assert_eq!(p, 2);
        let again = op(p, "read", "k");
        r.invoke(&again, Value::Null);
        r.complete(&again, EventType::Ok, json!(1), Some("n1".into()));

        let events = r.events();
        assert!(events.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
        assert!(events.iter().enumerate().all(|(i, e)| e.index == i as u64));
        let h = r.history().expect("valid");
        let kinds: Vec<OpKind> = h.ops().iter().map(|o| o.kind).collect();
        assert_eq!(kinds, vec![OpKind::Ok, OpKind::Info, OpKind::Ok]);
        assert_eq!(h.ops()[0].node.as_deref(), Some("n1"));
        assert_eq!(h.ops()[2].session, 0, "the session survives the process");
    }

    #[test]
    fn writes_jsonl_the_referee_reads() {
        let r = Recorder::new();
        let a = op(0, "append", "x");
        r.invoke(&a, json!(5));
        r.complete(&a, EventType::Ok, json!(5), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        r.write_jsonl(&path).expect("written");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(text.lines().count(), 2);
        let h = History::from_jsonl(&text).expect("parses");
        assert_eq!(h.ops()[0].int_value(), Ok(Some(5)));
    }

    #[test]
    fn reusing_a_retired_process_is_caught() {
        let r = Recorder::new();
        let w = op(0, "write", "k");
        r.invoke(&w, json!(1));
        r.complete(&w, EventType::Info, Value::Null, None);
        r.invoke(&w, json!(2));
        assert!(r.history().is_err());
    }
}
