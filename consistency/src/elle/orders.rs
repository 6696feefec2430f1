//! Real-time and session-order edges, for strict serializability and strong session
//! serializability (Elle, Kingsbury & Alvaro, VLDB 2020, §4.4).
//!
//! Real time is the order of events in the history (a completion's index before an
//! invocation's), which is what the harness observed; an `info` transaction never completes,
//! so it has incoming real-time edges only. Rather than all O(n²) pairs, [`realtime`] emits a
//! transitive reduction in the way Elle does: it keeps the *frontier* of completed
//! transactions not yet known to precede another completed one; an invocation gets an edge
//! from each member, and a completion retires the members that preceded it.

use std::collections::HashMap;

use super::graph::{Edge, EdgeKind, Why};
use super::txn::{TxnId, Txns};
use crate::history::OpKind;

/// Pushes real-time edges: `a → b` (transitively) whenever `a` completed `ok` before `b` was
/// invoked. Failed transactions take no part.
pub(crate) fn realtime(t: &Txns, edges: &mut Vec<Edge>) {
    // (event index, transaction, is completion)
    let mut events: Vec<(u64, TxnId, bool)> = Vec::with_capacity(t.txns.len() * 2);
    for (id, txn) in t.txns.iter().enumerate() {
        let id = TxnId::try_from(id).expect("checked in Txns::from_history");
        match txn.kind() {
            OpKind::Fail => {}
            OpKind::Info => events.push((txn.op.index, id, false)),
            OpKind::Ok => {
                events.push((txn.op.index, id, false));
                let done = txn
                    .op
                    .complete_index
                    .expect("an ok operation has a completion event");
                events.push((done, id, true));
            }
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<TxnId> = Vec::new();
    let mut in_frontier = vec![false; t.txns.len()];
    // Frontier members at each open transaction's invocation.
    let mut preds: HashMap<TxnId, Vec<TxnId>> = HashMap::new();
    for (_, id, completion) in events {
        if completion {
            if let Some(ps) = preds.remove(&id) {
                for p in ps {
                    in_frontier[p as usize] = false;
                }
                frontier.retain(|&f| in_frontier[f as usize]);
            }
            in_frontier[id as usize] = true;
            frontier.push(id);
        } else {
            for &f in &frontier {
                edges.push(Edge {
                    from: f,
                    to: id,
                    kind: EdgeKind::Rt,
                    why: Why::ORDER,
                });
            }
            if t.txns[id as usize].kind() == OpKind::Ok && !frontier.is_empty() {
                preds.insert(id, frontier.clone());
            }
        }
    }
}

/// Pushes session-order edges: each `ok` transaction precedes the next transaction of its
/// session. An `info` transaction precedes nothing (it may take effect arbitrarily late), so
/// the chain continues from the last `ok` one.
pub(crate) fn session(t: &Txns, edges: &mut Vec<Edge>) {
    let mut last_ok: HashMap<u64, TxnId> = HashMap::new();
    // Transactions are in invocation order already.
    for (id, txn) in t.txns.iter().enumerate() {
        let id = TxnId::try_from(id).expect("checked in Txns::from_history");
        if txn.kind() == OpKind::Fail {
            continue;
        }
        let s = txn.op.session;
        if let Some(&p) = last_ok.get(&s) {
            edges.push(Edge {
                from: p,
                to: id,
                kind: EdgeKind::Po,
                why: Why::ORDER,
            });
        }
        if txn.kind() == OpKind::Ok {
            last_ok.insert(s, id);
        }
    }
}
