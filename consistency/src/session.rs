//! Checkers for the four session guarantees of Terry, Demers, Petersen, Spreitzer, Theimer,
//! Welch, "Session Guarantees for Weakly Consistent Replicated Data" (PDIS 1994, Bayou).
//!
//! Each guarantee is checked on its own ([`check_guarantee`]), so a report can say which of
//! read-your-writes (RYW), monotonic reads (MR), monotonic writes (MW) and writes-follow-reads
//! (WFR) failed. Session order: operation `a` precedes `b` when both belong to the same
//! session and `a` completed before `b` was invoked. `fail` operations are ignored; `info`
//! operations never count as "the session's own write" (they may not have happened), but an
//! element an `info` append wrote that shows up in a read did happen.
//!
//! Written values must be unique per key (the checker answers `Unknown` otherwise): a value
//! read then names the one write that produced it.
//!
//! # List-append histories (exact)
//!
//! A read returns the list of elements appended to a key, so it shows exactly which writes
//! it includes and in what order:
//!
//! - **RYW**: a read of key `k` includes every element the session appended to `k` before
//!   it (ok appends only).
//! - **MR**: a read of `k` includes every element an earlier read of `k` in the session
//!   returned.
//! - **MW**: in every read (by any session) that includes an element `b` the session appended
//!   to `k`, every element the session had appended to `k` before `b` appears, before `b`.
//! - **WFR**: in every read (by any session) that includes an element `b` the session appended
//!   to `k` after reading `k`, every element of that earlier read appears, before `b`.
//!
//! MW and WFR are checked per key; across keys they cannot be told apart from a missing MR
//! guarantee of the reader, so they are left to [`crate::causal`].
//!
//! # Register histories (what the history shows)
//!
//! A register read returns one value, so "a later version" is only known where the history
//! establishes the order of two values. The checker uses the *known version order* of each key:
//! the transitive closure of (1) the initial `null` before every written value; (2) `e` before
//! `n` for every ok `cas [e, n]`; (3) every ok-written value before the value all final reads
//! of the key agree on (`f = "final-read"`, issued after quiescence, so that value is the last
//! one). Then:
//!
//! - **RYW**: a read after the session's last ok write `w` of `k` returns `w`'s value, or a
//!   value not known to be older. Reading `null`, a value known to be older, or one of the
//!   session's own earlier values (the session's own writes are taken to be ordered in session
//!   order) is a violation.
//! - **MR**: a read never returns `null` after a value, or a value known to be older than one
//!   an earlier read of the session returned.
//! - **MW**: a session's later write to `k` is never known to be older than its earlier one.
//! - **WFR**: a session's write to `k` after reading `x` from `k` is never known to be older
//!   than `x`.
//!
//! A register violation is therefore reported only with evidence in the history; without
//! `cas` or final reads, MW and WFR on registers can only pass.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use crate::history::{History, Op, OpKind, SessionId, Workload};
use crate::level::{SessionGuarantee, SessionGuarantees};
use crate::verdict::{Verdict, WitnessOp};

/// Checks each guarantee in `guarantees` on its own and combines the verdicts (the first
/// violation wins).
pub fn check(history: &History, guarantees: SessionGuarantees, workload: Workload) -> Verdict {
    Verdict::merge(
        check_each(history, guarantees, workload)
            .into_iter()
            .map(|(_, v)| v),
    )
}

/// Checks each guarantee in `guarantees` on its own, in Terry et al.'s order.
pub fn check_each(
    history: &History,
    guarantees: SessionGuarantees,
    workload: Workload,
) -> Vec<(SessionGuarantee, Verdict)> {
    guarantees
        .iter()
        .map(|g| (g, check_guarantee(history, g, workload)))
        .collect()
}

/// Checks one session guarantee.
pub fn check_guarantee(history: &History, g: SessionGuarantee, workload: Workload) -> Verdict {
    match workload {
        Workload::Register => register_check(history, g),
        Workload::ListAppend => list_check(history, g),
        Workload::Txn => Verdict::unknown(
            "session guarantees are checked on register and list-append histories; for \
             transactions use the Elle checker (strong-session-serializable)",
        ),
    }
}

fn anomaly_name(g: SessionGuarantee) -> &'static str {
    match g {
        SessionGuarantee::ReadYourWrites => "read-your-writes",
        SessionGuarantee::MonotonicReads => "monotonic-reads",
        SessionGuarantee::MonotonicWrites => "monotonic-writes",
        SessionGuarantee::WritesFollowReads => "writes-follow-reads",
    }
}

fn violation(g: SessionGuarantee, ops: Vec<(&Op, &str)>, explanation: String) -> Verdict {
    let mut witness: Vec<WitnessOp> = Vec::new();
    let mut seen = HashSet::new();
    for (op, role) in ops {
        if seen.insert(op.index) {
            witness.push(WitnessOp::from(op).with_role(role));
        }
    }
    witness.sort_by_key(|w| w.index);
    Verdict::invalid(anomaly_name(g), witness, explanation)
}

/// Visits each session's operations in invocation order. Before `visit(op)` runs, `apply` has
/// been called on every earlier operation of the session that completed before `op` was
/// invoked (and on no other), which is session order even for sessions whose processes
/// overlap. `fail` operations are skipped; `info` operations are visited but never applied.
fn for_each_session<'h, E>(
    history: &'h History,
    mut apply: impl FnMut(SessionId, &'h Op),
    mut visit: impl FnMut(SessionId, &'h Op) -> Result<(), E>,
) -> Result<(), E> {
    let mut by_session: BTreeMap<SessionId, Vec<&'h Op>> = BTreeMap::new();
    for op in history.ops().iter().filter(|op| op.kind != OpKind::Fail) {
        by_session.entry(op.session).or_default().push(op);
    }
    for (session, ops) in by_session {
        let mut pending: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        for (i, &op) in ops.iter().enumerate() {
            while let Some(&Reverse((t, j))) = pending.peek() {
                if t >= op.invoke_ns {
                    break;
                }
                pending.pop();
                apply(session, ops[j]);
            }
            visit(session, op)?;
            if let Some(t) = op.complete_ns.filter(|_| op.kind == OpKind::Ok) {
                pending.push(Reverse((t, i)));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Register histories.

/// The known version order of one key (see the module docs), with the operation that
/// established each edge.
#[derive(Default)]
struct KnownOrder<'h> {
    edges: HashMap<i64, Vec<(i64, &'h Op)>>,
}

impl<'h> KnownOrder<'h> {
    /// Returns the operations proving `x` is older than `y`, or `None` when that is not known.
    fn older(&self, x: Option<i64>, y: Option<i64>) -> Option<Vec<&'h Op>> {
        match (x, y) {
            (_, None) => None,
            (None, Some(_)) => Some(Vec::new()),
            (Some(a), Some(b)) if a == b => None,
            (Some(a), Some(b)) => {
                let mut parent: HashMap<i64, (i64, &'h Op)> = HashMap::new();
                let mut queue = VecDeque::from([a]);
                while let Some(v) = queue.pop_front() {
                    for &(w, op) in self.edges.get(&v).map(Vec::as_slice).unwrap_or(&[]) {
                        if w == a || parent.contains_key(&w) {
                            continue;
                        }
                        parent.insert(w, (v, op));
                        if w == b {
                            let mut path = Vec::new();
                            let mut at = b;
                            while at != a {
                                let (from, op) = parent[&at];
                                path.push(op);
                                at = from;
                            }
                            path.reverse();
                            return Some(path);
                        }
                        queue.push_back(w);
                    }
                }
                None
            }
        }
    }
}

struct RegisterKey<'h> {
    order: KnownOrder<'h>,
}

/// Decodes a register operation: `(is_read, value)`; writes and cas give the written value.
fn reg_decode(op: &Op) -> Result<(bool, Option<i64>), Verdict> {
    let bad = |e: crate::history::HistoryError| Verdict::unknown(e.to_string());
    match op.f.as_str() {
        "read" | "final-read" => Ok((true, op.int_value().map_err(bad)?)),
        "write" => Ok((false, op.int_value().map_err(bad)?)),
        "cas" => Ok((false, Some(op.cas_value().map_err(bad)?.1))),
        other => Err(Verdict::unknown(format!(
            "operation {other:?} at event {} is not a register operation",
            op.index
        ))),
    }
}

fn register_keys(history: &History) -> Result<HashMap<&str, RegisterKey<'_>>, Verdict> {
    let mut keys = HashMap::new();
    for (key, ops) in history.ops_by_key() {
        let mut written: HashSet<i64> = HashSet::new();
        let mut order = KnownOrder::default();
        let mut finals: HashSet<Option<i64>> = HashSet::new();
        let mut final_op = None;
        for &op in &ops {
            if op.kind == OpKind::Fail {
                continue;
            }
            let (is_read, v) = reg_decode(op)?;
            if is_read {
                if op.f == "final-read" && op.is_ok() {
                    finals.insert(v);
                    final_op = Some(op);
                }
                continue;
            }
            let v = v.ok_or_else(|| {
                Verdict::unknown(format!("write at event {} has no value", op.index))
            })?;
            if !written.insert(v) {
                return Err(Verdict::unknown(format!(
                    "key {key}: value {v} is written twice; the session checkers need unique \
                     written values"
                )));
            }
            if op.f == "cas" && op.is_ok() {
                if let Ok((Some(e), n)) = op.cas_value() {
                    order.edges.entry(e).or_default().push((n, op));
                }
            }
        }
        if let (1, Some(fop)) = (finals.len(), final_op) {
            if let Some(Some(last)) = finals.iter().next().copied() {
                for &op in &ops {
                    if op.is_ok() && op.f != "read" && op.f != "final-read" {
                        if let Ok((_, Some(v))) = reg_decode(op) {
                            if v != last {
                                order.edges.entry(v).or_default().push((last, fop));
                            }
                        }
                    }
                }
            }
        }
        keys.insert(key, RegisterKey { order });
    }
    Ok(keys)
}

#[derive(Default)]
struct RegSessionKey<'h> {
    /// The session's last ok write (completed), and all its earlier ones by value.
    last_write: Option<(i64, &'h Op)>,
    own_values: HashMap<i64, &'h Op>,
    /// Values read so far that no later read is known to supersede (MR frontier).
    frontier: Vec<(Option<i64>, &'h Op)>,
    /// The last completed read.
    last_read: Option<(Option<i64>, &'h Op)>,
}

fn register_check(history: &History, g: SessionGuarantee) -> Verdict {
    let keys = match register_keys(history) {
        Ok(k) => k,
        Err(v) => return v,
    };
    let mut state: HashMap<(SessionId, &str), RegSessionKey<'_>> = HashMap::new();
    let apply_keys = &keys;
    let apply_state = std::cell::RefCell::new(&mut state);
    let result = for_each_session(
        history,
        |session, op| {
            let Some(key) = op.key.as_deref() else { return };
            let Ok((is_read, v)) = reg_decode(op) else {
                return;
            };
            let order = &apply_keys[key].order;
            let mut st = apply_state.borrow_mut();
            let s = st.entry((session, key)).or_default();
            if is_read {
                if !s
                    .frontier
                    .iter()
                    .any(|&(y, _)| y == v || order.older(v, y).is_some())
                {
                    s.frontier.retain(|&(y, _)| order.older(y, v).is_none());
                    s.frontier.push((v, op));
                }
                s.last_read = Some((v, op));
            } else if let Some(v) = v {
                if let Some((prev, prev_op)) = s.last_write {
                    s.own_values.insert(prev, prev_op);
                }
                s.last_write = Some((v, op));
            }
        },
        |session, op| {
            let Some(key) = op.key.as_deref() else {
                return Ok(());
            };
            let (is_read, v) = reg_decode(op)?;
            let order = &keys[key].order;
            let mut st = apply_state.borrow_mut();
            let s = st.entry((session, key)).or_default();
            match g {
                SessionGuarantee::ReadYourWrites if is_read && op.is_ok() => {
                    let Some((w, w_op)) = s.last_write else {
                        return Ok(());
                    };
                    if v == Some(w) {
                        return Ok(());
                    }
                    if v.is_none() {
                        return Err(violation(
                            g,
                            vec![(w_op, "own write"), (op, "read misses it")],
                            format!(
                                "key {key}: session {session} wrote {w}, then read the initial \
                                 value null"
                            ),
                        ));
                    }
                    let x = v.expect("checked above");
                    if let Some(&earlier) = s.own_values.get(&x) {
                        return Err(violation(
                            g,
                            vec![
                                (earlier, "own earlier write"),
                                (w_op, "own later write"),
                                (op, "read misses it"),
                            ],
                            format!(
                                "key {key}: session {session} wrote {x} then {w}, then read \
                                 {x} again"
                            ),
                        ));
                    }
                    if let Some(proof) = order.older(v, Some(w)) {
                        let mut ops = vec![(w_op, "own write"), (op, "read misses it")];
                        ops.extend(proof.into_iter().map(|p| (p, "shows the order")));
                        return Err(violation(
                            g,
                            ops,
                            format!(
                                "key {key}: session {session} wrote {w}, then read {x}, which \
                                 is known to be older than {w}"
                            ),
                        ));
                    }
                    Ok(())
                }
                SessionGuarantee::MonotonicReads if is_read && op.is_ok() => {
                    for &(y, r1) in &s.frontier {
                        if let Some(proof) = order.older(v, y) {
                            let mut ops = vec![(r1, "earlier read"), (op, "later read goes back")];
                            ops.extend(proof.into_iter().map(|p| (p, "shows the order")));
                            return Err(violation(
                                g,
                                ops,
                                format!(
                                    "key {key}: session {session} read {}, then {}, which is \
                                     known to be older",
                                    show(y),
                                    show(v)
                                ),
                            ));
                        }
                    }
                    Ok(())
                }
                SessionGuarantee::MonotonicWrites if !is_read && op.is_ok() => {
                    let Some((a, a_op)) = s.last_write else {
                        return Ok(());
                    };
                    if let Some(proof) = order.older(v, Some(a)) {
                        let mut ops = vec![(a_op, "earlier write"), (op, "later write")];
                        ops.extend(proof.into_iter().map(|p| (p, "orders them the other way")));
                        return Err(violation(
                            g,
                            ops,
                            format!(
                                "key {key}: session {session} wrote {a} then {}, but {} is \
                                 known to be ordered before {a}",
                                show(v),
                                show(v)
                            ),
                        ));
                    }
                    Ok(())
                }
                SessionGuarantee::WritesFollowReads if !is_read && op.is_ok() => {
                    let Some((x, r_op)) = s.last_read else {
                        return Ok(());
                    };
                    if let Some(proof) = order.older(v, x) {
                        let mut ops = vec![(r_op, "read"), (op, "later write")];
                        ops.extend(proof.into_iter().map(|p| (p, "orders them the other way")));
                        return Err(violation(
                            g,
                            ops,
                            format!(
                                "key {key}: session {session} read {} then wrote {}, but {} is \
                                 known to be ordered before {}",
                                show(x),
                                show(v),
                                show(v),
                                show(x)
                            ),
                        ));
                    }
                    Ok(())
                }
                _ => Ok(()),
            }
        },
    );
    match result {
        Ok(()) => Verdict::Valid,
        Err(v) => v,
    }
}

fn show(v: Option<i64>) -> String {
    v.map_or_else(|| "null".to_string(), |x| x.to_string())
}

// ---------------------------------------------------------------------------------------
// List-append histories.

/// A constraint on every read that includes `element`: each of `required` must appear in it,
/// before `element`.
struct Before<'h> {
    element: i64,
    appender: &'h Op,
    /// The ops that make the requirement (the earlier appends, or the earlier read), with the
    /// elements each one requires.
    required: Vec<(i64, &'h Op)>,
}

fn list_check(history: &History, g: SessionGuarantee) -> Verdict {
    // Validate and decode once.
    let mut lists: HashMap<u64, Vec<i64>> = HashMap::new();
    let mut appended: HashMap<&str, HashSet<i64>> = HashMap::new();
    for op in history.ops().iter().filter(|op| op.kind != OpKind::Fail) {
        let Some(key) = op.key.as_deref() else {
            return Verdict::unknown(format!(
                "{} at event {} has no key; list-append session checks need keyed operations",
                op.f, op.index
            ));
        };
        match op.f.as_str() {
            "append" => match op.int_value() {
                Ok(Some(v)) => {
                    if !appended.entry(key).or_default().insert(v) {
                        return Verdict::unknown(format!(
                            "key {key}: element {v} is appended twice; the session checkers \
                             need unique appended elements"
                        ));
                    }
                }
                _ => {
                    return Verdict::unknown(format!(
                        "append at event {} has no integer value",
                        op.index
                    ))
                }
            },
            "read" | "final-read" => {
                if op.is_ok() {
                    match op.list_value() {
                        Ok(l) => {
                            lists.insert(op.index, l.unwrap_or_default());
                        }
                        Err(e) => return Verdict::unknown(e.to_string()),
                    }
                }
            }
            other => {
                return Verdict::unknown(format!(
                    "operation {other:?} at event {} is not a list-append operation",
                    op.index
                ))
            }
        }
    }

    #[derive(Default)]
    struct ListSessionKey<'h> {
        own: Vec<(i64, &'h Op)>,
        seen: Vec<(i64, &'h Op)>,
        seen_set: HashSet<i64>,
        last_read: Option<&'h Op>,
    }
    let state: std::cell::RefCell<HashMap<(SessionId, &str), ListSessionKey<'_>>> =
        Default::default();
    let mut constraints: HashMap<&str, Vec<Before<'_>>> = HashMap::new();
    let result = for_each_session(
        history,
        |session, op| {
            let key = op.key.as_deref().expect("validated above");
            let mut st = state.borrow_mut();
            let s = st.entry((session, key)).or_default();
            if op.f == "append" {
                let v = op.int_value().ok().flatten().expect("validated above");
                s.own.push((v, op));
            } else {
                for &e in &lists[&op.index] {
                    if s.seen_set.insert(e) {
                        s.seen.push((e, op));
                    }
                }
                s.last_read = Some(op);
            }
        },
        |session, op| {
            let key = op.key.as_deref().expect("validated above");
            let mut st = state.borrow_mut();
            let s = st.entry((session, key)).or_default();
            if op.f == "append" {
                let v = op.int_value().ok().flatten().expect("validated above");
                let required: Vec<(i64, &Op)> = match g {
                    SessionGuarantee::MonotonicWrites => s.own.clone(),
                    SessionGuarantee::WritesFollowReads => match s.last_read {
                        Some(r) => lists[&r.index].iter().map(|&e| (e, r)).collect(),
                        None => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                if !required.is_empty() {
                    constraints.entry(key).or_default().push(Before {
                        element: v,
                        appender: op,
                        required,
                    });
                }
                return Ok(());
            }
            let Some(list) = lists.get(&op.index) else {
                return Ok(());
            };
            let present: HashSet<i64> = list.iter().copied().collect();
            match g {
                SessionGuarantee::ReadYourWrites => {
                    if let Some(&(v, a)) = s.own.iter().find(|(v, _)| !present.contains(v)) {
                        return Err(violation(
                            g,
                            vec![(a, "own append"), (op, "read misses it")],
                            format!(
                                "key {key}: session {session} appended {v}, then read a list \
                                 without it"
                            ),
                        ));
                    }
                }
                SessionGuarantee::MonotonicReads => {
                    if let Some(&(v, r1)) = s.seen.iter().find(|(v, _)| !present.contains(v)) {
                        return Err(violation(
                            g,
                            vec![(r1, "earlier read sees it"), (op, "later read misses it")],
                            format!(
                                "key {key}: session {session} read a list containing {v}, then \
                                 one without it"
                            ),
                        ));
                    }
                }
                _ => {}
            }
            Ok(())
        },
    );
    if let Err(v) = result {
        return v;
    }
    // MW and WFR: every read of the key that includes a constrained element.
    let mut by_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in history.ops() {
        if lists.contains_key(&op.index) {
            by_key
                .entry(op.key.as_deref().expect("validated above"))
                .or_default()
                .push(op);
        }
    }
    for (key, cs) in &constraints {
        let mut of_element: HashMap<i64, Vec<&Before<'_>>> = HashMap::new();
        for c in cs {
            of_element.entry(c.element).or_default().push(c);
        }
        for &read in by_key.get(key).map(Vec::as_slice).unwrap_or(&[]) {
            let list = &lists[&read.index];
            let pos: HashMap<i64, usize> = list.iter().enumerate().map(|(i, &e)| (e, i)).collect();
            for (i, e) in list.iter().enumerate() {
                for c in of_element.get(e).map(Vec::as_slice).unwrap_or(&[]) {
                    for &(req, req_op) in &c.required {
                        if pos.get(&req).is_some_and(|&p| p < i) {
                            continue;
                        }
                        let how = if pos.contains_key(&req) {
                            "after"
                        } else {
                            "without"
                        };
                        let (role, why) = match g {
                            SessionGuarantee::MonotonicWrites => (
                                "earlier append",
                                format!(
                                    "key {key}: session {} appended {req} then {e}; a read \
                                     shows {e} {how} {req}",
                                    c.appender.session
                                ),
                            ),
                            _ => (
                                "read before the append",
                                format!(
                                    "key {key}: session {} read a list containing {req}, then \
                                     appended {e}; a read shows {e} {how} {req}",
                                    c.appender.session
                                ),
                            ),
                        };
                        return violation(
                            g,
                            vec![
                                (req_op, role),
                                (c.appender, "later append"),
                                (read, "read showing the wrong order"),
                            ],
                            why,
                        );
                    }
                }
            }
        }
    }
    Verdict::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryBuilder;
    use serde_json::{json, Value};

    fn op(b: &mut HistoryBuilder, p: u64, f: &str, key: &str, v: Value, t: u64) {
        let inv = if f == "read" || f == "final-read" {
            Value::Null
        } else {
            v.clone()
        };
        b.invoke(p, f, key, inv, t);
        b.ok(p, f, key, v, t + 1);
    }

    fn g(s: &str) -> SessionGuarantee {
        let gs: SessionGuarantees = s.parse().expect("valid flag");
        let all: Vec<SessionGuarantee> = gs.iter().collect();
        all[0]
    }

    #[test]
    fn list_ryw() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "append", "x", json!(1), 0);
        op(&mut b, 1, "read", "x", json!([]), 10);
        let h = b.build().expect("well-formed");
        let v = check_guarantee(&h, g("ryw"), Workload::ListAppend);
        assert_eq!(v.anomaly(), Some("read-your-writes"), "{v}");
        assert_eq!(v.witness().len(), 2);
        for other in ["mr", "mw", "wfr"] {
            assert!(check_guarantee(&h, g(other), Workload::ListAppend).is_valid());
        }
    }

    #[test]
    fn list_mr() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 2, "append", "x", json!(1), 0);
        op(&mut b, 1, "read", "x", json!([1]), 10);
        op(&mut b, 1, "read", "x", json!([]), 20);
        let h = b.build().expect("well-formed");
        let v = check_guarantee(&h, g("mr"), Workload::ListAppend);
        assert_eq!(v.anomaly(), Some("monotonic-reads"), "{v}");
        assert!(check_guarantee(&h, g("ryw"), Workload::ListAppend).is_valid());
    }

    #[test]
    fn list_mw() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "append", "x", json!(1), 0);
        op(&mut b, 1, "append", "x", json!(2), 10);
        op(&mut b, 2, "read", "x", json!([2, 1]), 20);
        let h = b.build().expect("well-formed");
        let v = check_guarantee(&h, g("mw"), Workload::ListAppend);
        assert_eq!(v.anomaly(), Some("monotonic-writes"), "{v}");
        assert_eq!(v.witness().len(), 3);
        assert!(check_guarantee(&h, g("wfr"), Workload::ListAppend).is_valid());
    }

    #[test]
    fn list_wfr() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "append", "x", json!(1), 0);
        op(&mut b, 2, "read", "x", json!([1]), 10);
        op(&mut b, 2, "append", "x", json!(2), 20);
        op(&mut b, 3, "read", "x", json!([2]), 30);
        let h = b.build().expect("well-formed");
        let v = check_guarantee(&h, g("wfr"), Workload::ListAppend);
        assert_eq!(v.anomaly(), Some("writes-follow-reads"), "{v}");
        assert!(check_guarantee(&h, g("mw"), Workload::ListAppend).is_valid());
    }

    #[test]
    fn register_ryw_and_mr() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", "k", json!(1), 0);
        op(&mut b, 1, "write", "k", json!(2), 10);
        op(&mut b, 1, "read", "k", json!(1), 20);
        let h = b.build().expect("well-formed");
        let v = check_guarantee(&h, g("ryw"), Workload::Register);
        assert_eq!(v.anomaly(), Some("read-your-writes"), "{v}");
        assert_eq!(v.witness().len(), 3);

        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", "k", json!(1), 0);
        op(&mut b, 2, "read", "k", json!(1), 10);
        op(&mut b, 2, "read", "k", Value::Null, 20);
        let h = b.build().expect("well-formed");
        let v = check_guarantee(&h, g("mr"), Workload::Register);
        assert_eq!(v.anomaly(), Some("monotonic-reads"), "{v}");
        assert!(check_guarantee(&h, g("ryw"), Workload::Register).is_valid());
    }

    #[test]
    fn register_order_from_cas_and_final_reads() {
        // cas 1 -> 2 orders 1 before 2; a session reading 2 then 1 goes back.
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", "k", json!(1), 0);
        op(&mut b, 1, "cas", "k", json!([1, 2]), 10);
        op(&mut b, 2, "read", "k", json!(2), 20);
        op(&mut b, 2, "read", "k", json!(1), 30);
        let v = check_guarantee(&b.build().expect("ok"), g("mr"), Workload::Register);
        assert_eq!(v.anomaly(), Some("monotonic-reads"), "{v}");

        // Session 1 writes 1 then 2, but every replica ends with 1: MW failed.
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", "k", json!(1), 0);
        op(&mut b, 1, "write", "k", json!(2), 10);
        op(&mut b, 5, "final-read", "k", json!(1), 100);
        op(&mut b, 6, "final-read", "k", json!(1), 100);
        let h = b.build().expect("ok");
        let v = check_guarantee(&h, g("mw"), Workload::Register);
        assert_eq!(v.anomaly(), Some("monotonic-writes"), "{v}");
        assert!(check_guarantee(&h, g("mr"), Workload::Register).is_valid());

        // Session 2 reads 1 then writes 2, but 1 is final: WFR failed.
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", "k", json!(1), 0);
        op(&mut b, 2, "read", "k", json!(1), 10);
        op(&mut b, 2, "write", "k", json!(2), 20);
        op(&mut b, 5, "final-read", "k", json!(1), 100);
        let v = check_guarantee(&b.build().expect("ok"), g("wfr"), Workload::Register);
        assert_eq!(v.anomaly(), Some("writes-follow-reads"), "{v}");
    }

    #[test]
    fn duplicate_values_are_unknown() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", "k", json!(1), 0);
        op(&mut b, 2, "write", "k", json!(1), 10);
        let v = check(
            &b.build().expect("ok"),
            SessionGuarantees::ALL,
            Workload::Register,
        );
        assert!(v.is_unknown(), "{v}");
    }

    #[test]
    fn overlapping_ops_are_not_session_ordered() {
        // Two processes of one session overlap: the read is not after the append.
        let mut b = HistoryBuilder::new();
        b.session(2, 1);
        b.invoke(1, "append", "x", json!(1), 0);
        b.invoke(2, "read", "x", Value::Null, 1);
        b.ok(1, "append", "x", json!(1), 5);
        b.ok(2, "read", "x", json!([]), 6);
        let h = b.build().expect("ok");
        assert!(check(&h, SessionGuarantees::ALL, Workload::ListAppend).is_valid());
    }
}
