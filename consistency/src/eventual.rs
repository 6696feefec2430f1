//! Eventual consistency checks: no thin-air reads, and convergence after quiescence.
//!
//! Eventual consistency promises little before the writes stop (Vogels, "Eventually
//! Consistent", CACM 2009; Burckhardt, "Principles of Eventual Consistency", 2014, §5): reads
//! may return any value that was written. What can be checked:
//!
//! - **No thin-air reads** ([`check_no_thin_air`]): every value an ok read returned was
//!   written by some write that was invoked and did not fail, or is the initial `null` (for
//!   list-append: every element of every list read was appended that way). A read of a value
//!   that only a *failed* write carried is an aborted read; a read that completed before every
//!   write of its value was even invoked read from the future. Both are reported.
//! - **Convergence** ([`check_convergence`]): once the system has quiesced (no more writes,
//!   anti-entropy had time to run), reading every key from every replica gives the same
//!   answer. The harness marks these reads with `f = "final-read"`, one per (key, replica),
//!   with the replica in the `node` field; all ok final reads of a key must agree. A history
//!   without final reads cannot show convergence: the verdict is then `Unknown`.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::history::{History, Op, OpKind, Workload};
use crate::verdict::{Verdict, WitnessOp};

/// Checks no thin-air reads and convergence, and combines the two verdicts.
pub fn check(history: &History, workload: Workload) -> Verdict {
    Verdict::merge([
        check_no_thin_air(history, workload),
        check_convergence(history),
    ])
}

/// Returns the values (register) or elements (list-append) an operation writes.
fn written(op: &Op, workload: Workload) -> Result<Vec<i64>, Verdict> {
    let bad = |e: crate::history::HistoryError| Verdict::unknown(e.to_string());
    match (workload, op.f.as_str()) {
        (Workload::Register, "write") | (Workload::ListAppend, "append") => {
            Ok(op.int_value().map_err(bad)?.into_iter().collect())
        }
        (Workload::Register, "cas") => Ok(vec![op.cas_value().map_err(bad)?.1]),
        (_, "read" | "final-read") => Ok(Vec::new()),
        (Workload::Txn, _) => Err(Verdict::unknown(
            "the eventual checker handles register and list-append histories",
        )),
        (_, other) => Err(Verdict::unknown(format!(
            "operation {other:?} at event {} is not a {workload} operation",
            op.index
        ))),
    }
}

/// Returns the values an ok read returned (the value, or each element of the list).
fn read_values(op: &Op, workload: Workload) -> Result<Vec<i64>, Verdict> {
    let bad = |e: crate::history::HistoryError| Verdict::unknown(e.to_string());
    if !op.is_ok() || !matches!(op.f.as_str(), "read" | "final-read") {
        return Ok(Vec::new());
    }
    match workload {
        Workload::Register => Ok(op.int_value().map_err(bad)?.into_iter().collect()),
        _ => Ok(op.list_value().map_err(bad)?.unwrap_or_default()),
    }
}

/// Checks that every value read was written by an invoked, not failed, write that was invoked
/// before the read completed.
pub fn check_no_thin_air(history: &History, workload: Workload) -> Verdict {
    // Per (key, value): the writers.
    let mut writers: HashMap<(&str, i64), Vec<&Op>> = HashMap::new();
    for op in history.ops() {
        let Some(key) = op.key.as_deref() else {
            return Verdict::unknown(format!(
                "{} at event {} has no key; the eventual checker handles single-key operations",
                op.f, op.index
            ));
        };
        match written(op, workload) {
            Ok(vs) => {
                for v in vs {
                    writers.entry((key, v)).or_default().push(op);
                }
            }
            Err(v) => return v,
        }
    }
    for op in history.ops() {
        let key = op.key.as_deref().expect("checked in the loop above");
        let values = match read_values(op, workload) {
            Ok(v) => v,
            Err(v) => return v,
        };
        for v in values {
            let ws = writers.get(&(key, v)).map(Vec::as_slice).unwrap_or(&[]);
            let live: Vec<&&Op> = ws.iter().filter(|w| w.kind != OpKind::Fail).collect();
            let read = WitnessOp::from(op).with_role("read");
            if live.is_empty() && ws.is_empty() {
                return Verdict::invalid(
                    "thin-air-read",
                    vec![read],
                    format!("key {key}: read returned {v}, which no operation ever wrote"),
                );
            }
            if live.is_empty() {
                let mut witness: Vec<WitnessOp> = ws
                    .iter()
                    .map(|w| WitnessOp::from(*w).with_role("failed write"))
                    .collect();
                witness.push(read);
                witness.sort_by_key(|w| w.index);
                return Verdict::invalid(
                    "aborted-read",
                    witness,
                    format!(
                        "key {key}: read returned {v}, which only a failed write (certainly not \
                         applied) carried"
                    ),
                );
            }
            let done = op.end_ns();
            if live.iter().all(|w| w.invoke_ns > done) {
                let mut witness: Vec<WitnessOp> = live
                    .iter()
                    .map(|w| WitnessOp::from(**w).with_role("write invoked later"))
                    .collect();
                witness.push(read);
                witness.sort_by_key(|w| w.index);
                return Verdict::invalid(
                    "read-from-future",
                    witness,
                    format!(
                        "key {key}: read returned {v} and completed before any write of {v} was \
                         invoked"
                    ),
                );
            }
        }
    }
    Verdict::Valid
}

/// Checks that the ok final reads (`f = "final-read"`) of each key agree.
pub fn check_convergence(history: &History) -> Verdict {
    let mut finals: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history.ops() {
        if op.f == "final-read" && op.is_ok() {
            if let Some(key) = op.key.as_deref() {
                finals.entry(key).or_default().push(op);
            }
        }
    }
    if finals.is_empty() {
        return Verdict::unknown(
            "no ok final-read operations: convergence cannot be checked (the harness should \
             read every key from every replica after quiescence, with f = \"final-read\")",
        );
    }
    for (key, reads) in &finals {
        let first = reads[0];
        if let Some(other) = reads.iter().find(|r| r.value != first.value) {
            return Verdict::invalid(
                "divergence",
                vec![
                    WitnessOp::from(first).with_role("final read"),
                    WitnessOp::from(*other).with_role("disagrees"),
                ],
                format!(
                    "key {key}: after quiescence replica {} returned {} and replica {} returned {}",
                    node(first),
                    first.value,
                    node(other),
                    other.value
                ),
            );
        }
    }
    Verdict::Valid
}

fn node(op: &Op) -> String {
    op.node
        .clone()
        .unwrap_or_else(|| format!("(unnamed, process {})", op.process))
}

/// Returns the value a final read agreed on for each key, for reports.
pub fn final_values(history: &History) -> BTreeMap<&str, &Value> {
    history
        .ops()
        .iter()
        .filter(|op| op.f == "final-read" && op.is_ok())
        .filter_map(|op| op.key.as_deref().map(|k| (k, &op.value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, EventType, HistoryBuilder};
    use serde_json::json;

    fn op(b: &mut HistoryBuilder, p: u64, f: &str, v: Value, t: u64) {
        let inv = if f == "read" { Value::Null } else { v.clone() };
        b.invoke(p, f, "k", inv, t);
        b.ok(p, f, "k", v, t + 1);
    }

    fn final_read(b: &mut HistoryBuilder, p: u64, node: &str, v: Value, t: u64) {
        for (ty, value, time) in [
            (EventType::Invoke, Value::Null, t),
            (EventType::Ok, v, t + 1),
        ] {
            b.push(Event {
                index: 0,
                process: p,
                session: None,
                event_type: ty,
                f: "final-read".into(),
                key: Some("k".into()),
                value,
                time_ns: time,
                node: Some(node.into()),
            });
        }
    }

    #[test]
    fn converged_history_is_valid() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0);
        op(&mut b, 2, "read", Value::Null, 1);
        final_read(&mut b, 10, "n1", json!(1), 100);
        final_read(&mut b, 11, "n2", json!(1), 100);
        assert_eq!(
            check(&b.build().expect("ok"), Workload::Register),
            Verdict::Valid
        );
    }

    #[test]
    fn divergence_names_the_replicas() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0);
        op(&mut b, 2, "write", json!(2), 0);
        final_read(&mut b, 10, "n1", json!(1), 100);
        final_read(&mut b, 11, "n2", json!(2), 100);
        let v = check(&b.build().expect("ok"), Workload::Register);
        assert_eq!(v.anomaly(), Some("divergence"));
        assert!(v.to_string().contains("n2"), "{v}");
    }

    #[test]
    fn thin_air_aborted_and_future_reads() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "read", json!(7), 0);
        let v = check_no_thin_air(&b.build().expect("ok"), Workload::Register);
        assert_eq!(v.anomaly(), Some("thin-air-read"));

        let mut b = HistoryBuilder::new();
        b.invoke(1, "write", "k", json!(7), 0);
        b.fail(1, "write", "k", json!(7), 1);
        op(&mut b, 2, "read", json!(7), 5);
        let v = check_no_thin_air(&b.build().expect("ok"), Workload::Register);
        assert_eq!(v.anomaly(), Some("aborted-read"));

        let mut b = HistoryBuilder::new();
        op(&mut b, 2, "read", json!(7), 0);
        op(&mut b, 1, "write", json!(7), 5);
        let v = check_no_thin_air(&b.build().expect("ok"), Workload::Register);
        assert_eq!(v.anomaly(), Some("read-from-future"));
        assert_eq!(v.witness().len(), 2);
    }

    #[test]
    fn list_elements_must_be_appended() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "append", json!(1), 0);
        op(&mut b, 2, "read", json!([1, 3]), 5);
        let v = check_no_thin_air(&b.build().expect("ok"), Workload::ListAppend);
        assert_eq!(v.anomaly(), Some("thin-air-read"), "{v}");
    }

    #[test]
    fn no_final_reads_is_unknown() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0);
        assert!(check(&b.build().expect("ok"), Workload::Register).is_unknown());
    }
}
