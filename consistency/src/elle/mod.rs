//! Elle-style checkers for list-append histories: transactional isolation levels, and
//! linearizability or sequential consistency of single-key list-append operations.
//!
//! After Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from Experimental
//! Observations" (VLDB 2020), on Adya's formalism (Adya, Liskov, O'Neil, "Generalized
//! Isolation Level Definitions", ICDE 2000, and Adya's thesis, MIT 1999). The pipeline:
//!
//! 1. `txn`: every operation becomes a transaction of micro-operations over interned keys.
//! 2. `versions`: per key, the version order is the longest read, which every other read
//!    must prefix; it yields the `ww`, `wr` and `rw` dependency edges and the anomalies that
//!    need no cycle (`G1a`, `G1b`, `internal`, `lost-update`, `garbage-read`,
//!    `duplicate-append`, `incompatible-order`).
//! 3. `orders`: real-time edges (strict serializability, linearizability) or
//!    session-order edges (strong session serializability, sequential consistency).
//! 4. `graph`: Tarjan's strongly connected components over the edges a level cares about,
//!    then a breadth-first search inside each for the shortest cycle of each anomaly's shape:
//!    `G0` (only `ww`), `G1c` (`ww`/`wr`, some `wr`), `G-single` (exactly one `rw`), `G2`
//!    (two or more `rw`), and their `-process` and `-realtime` variants.
//!
//! Which anomalies a level forbids ([`Isolation`]): read committed forbids `G0`, `G1a`,
//! `G1b`, `G1c`; snapshot isolation also `G-single` and `lost-update`; serializability also
//! `G2`; strong session serializability also the `-process` cycles; strict serializability
//! the `-realtime` ones. `garbage-read`, `duplicate-append`, `incompatible-order` and
//! `internal` break the list-append contract itself and are forbidden at every level.
//!
//! Soundness: every edge is implied by the observations, so a reported cycle is a real
//! violation. Completeness is Elle's: anomalies involving appends nobody read may go unseen.
//! The verdict names the most fundamental forbidden anomaly with its smallest witness found
//! and lists the other classes seen. A search budget bounds the cycle search in pathological
//! components; when it runs out before anything forbidden is found the verdict is `Unknown`.

mod anomaly;
mod graph;
mod orders;
mod txn;
mod versions;

use std::fmt;
use std::str::FromStr;

use crate::history::History;
use crate::verdict::{Verdict, WitnessOp};
use anomaly::{Anomaly, AnomalyKind, CycleBase, CycleOrder, Report};
use graph::{CycleSearch, EdgeId, EdgeKind, Graph, Mask, RwCount, Shape, Why, DEPS};
use txn::Txns;

/// States the cycle search may visit in one check before it gives up on finding the
/// smallest witness (a valid history never searches at all).
const SEARCH_BUDGET: u64 = 10_000_000;

/// A transactional isolation level, from weakest to strongest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isolation {
    /// Adya's PL-2: forbids `G0`, `G1a`, `G1b`, `G1c`.
    ReadCommitted,
    /// Adya's PL-SI (approximated as in Elle): read committed, and forbids `G-single` and
    /// `lost-update`.
    SnapshotIsolation,
    /// Adya's PL-3: also forbids `G2`; every dependency cycle is a violation.
    Serializable,
    /// Serializable with each session's transactions in session order (Daudjee & Salem):
    /// also forbids cycles through session-order edges (`G0-process`, ...).
    StrongSessionSerializable,
    /// Serializable in an order consistent with real time: also forbids cycles through
    /// real-time edges (`G0-realtime`, ...).
    StrictSerializable,
}

impl Isolation {
    /// All levels, weakest first.
    pub const ALL: [Isolation; 5] = [
        Isolation::ReadCommitted,
        Isolation::SnapshotIsolation,
        Isolation::Serializable,
        Isolation::StrongSessionSerializable,
        Isolation::StrictSerializable,
    ];

    /// Returns the level's name as used in `.expect` files and on the command line
    /// (`read-committed`, `snapshot-isolation`, `serializable`, `strong-session-serializable`,
    /// `strict-serializable`).
    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read-committed",
            Isolation::SnapshotIsolation => "snapshot-isolation",
            Isolation::Serializable => "serializable",
            Isolation::StrongSessionSerializable => "strong-session-serializable",
            Isolation::StrictSerializable => "strict-serializable",
        }
    }

    /// Returns the edge kinds whose cycles matter at this level.
    fn mask(self) -> Mask {
        match self {
            Isolation::ReadCommitted => EdgeKind::Ww.bit() | EdgeKind::Wr.bit(),
            Isolation::SnapshotIsolation | Isolation::Serializable => DEPS,
            Isolation::StrongSessionSerializable => DEPS | EdgeKind::Po.bit(),
            Isolation::StrictSerializable => DEPS | EdgeKind::Rt.bit(),
        }
    }

    /// Returns true when this level forbids every cycle of [`Isolation::mask`] edges.
    fn forbids_every_cycle(self) -> bool {
        self != Isolation::SnapshotIsolation
    }

    fn forbids(self, kind: AnomalyKind) -> bool {
        match kind {
            AnomalyKind::GarbageRead
            | AnomalyKind::DuplicateAppend
            | AnomalyKind::IncompatibleOrder
            | AnomalyKind::Internal
            | AnomalyKind::G1a
            | AnomalyKind::G1b
            | AnomalyKind::Cycle(CycleBase::G0 | CycleBase::G1c, CycleOrder::Data) => true,
            AnomalyKind::LostUpdate | AnomalyKind::Cycle(CycleBase::GSingle, CycleOrder::Data) => {
                self >= Isolation::SnapshotIsolation
            }
            AnomalyKind::Cycle(CycleBase::G2, CycleOrder::Data) => self >= Isolation::Serializable,
            AnomalyKind::Cycle(_, CycleOrder::Process) => {
                self == Isolation::StrongSessionSerializable
            }
            AnomalyKind::Cycle(_, CycleOrder::Realtime) => self == Isolation::StrictSerializable,
        }
    }

    /// Returns the cycle shapes to look for, most fundamental first.
    fn shapes(self) -> Vec<Shape> {
        let shape = |start, path, rw| Shape { start, path, rw };
        let (ww, wr) = (EdgeKind::Ww.bit(), EdgeKind::Wr.bit());
        let mut shapes = vec![
            shape(EdgeKind::Ww, ww, RwCount::Any),
            shape(EdgeKind::Wr, ww | wr, RwCount::Any),
        ];
        if self >= Isolation::SnapshotIsolation {
            shapes.push(shape(EdgeKind::Rw, ww | wr, RwCount::Any));
        }
        if self >= Isolation::Serializable {
            shapes.push(shape(EdgeKind::Rw, DEPS, RwCount::AtLeastTwo));
        }
        let order = match self {
            Isolation::StrongSessionSerializable => Some(EdgeKind::Po),
            Isolation::StrictSerializable => Some(EdgeKind::Rt),
            _ => None,
        };
        if let Some(o) = order {
            let mask = self.mask();
            shapes.push(shape(o, ww | o.bit(), RwCount::Any));
            shapes.push(shape(o, ww | wr | o.bit(), RwCount::Any));
            shapes.push(shape(o, mask, RwCount::One));
            shapes.push(shape(o, mask, RwCount::AtLeastTwo));
        }
        shapes
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Isolation::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| format!("unknown isolation level {s:?}"))
    }
}

/// A consistency model for single-key list-append histories (`append`/`read` operations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListAppendLevel {
    /// Linearizable: one total order of the operations that respects real time.
    Linearizable,
    /// Sequentially consistent: one total order that respects each session's order.
    Sequential,
}

impl ListAppendLevel {
    /// Returns the level's name (`linearizable`, `sequential`).
    pub fn name(self) -> &'static str {
        match self {
            ListAppendLevel::Linearizable => "linearizable",
            ListAppendLevel::Sequential => "sequential",
        }
    }
}

impl fmt::Display for ListAppendLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ListAppendLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [ListAppendLevel::Linearizable, ListAppendLevel::Sequential]
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown list-append level {s:?}"))
    }
}

/// Checks a transactional list-append history (`f = "txn"` operations; single-key `append`
/// and `read` operations count as one-micro-op transactions) against an isolation level.
///
/// Returns `Unknown` when the history is not a list-append history (other operations, or an
/// element appended twice to one key) or when the cycle-search budget ran out before any
/// forbidden anomaly was found.
pub fn check_txn(history: &History, isolation: Isolation) -> Verdict {
    check(history, isolation, isolation.name())
}

/// Checks a single-key list-append history (`append` and `read` operations on keys) for
/// linearizability (each operation a one-micro-op transaction, with real-time edges: strict
/// serializability) or sequential consistency (session-order edges instead).
pub fn check_list_append(history: &History, level: ListAppendLevel) -> Verdict {
    let isolation = match level {
        ListAppendLevel::Linearizable => Isolation::StrictSerializable,
        ListAppendLevel::Sequential => Isolation::StrongSessionSerializable,
    };
    check(history, isolation, level.name())
}

fn check(history: &History, isolation: Isolation, model: &str) -> Verdict {
    let txns = match Txns::from_history(history) {
        Ok(t) => t,
        Err(reason) => return Verdict::unknown(reason),
    };
    let mut report = Report::default();
    let mut edges = Vec::new();
    if let Err(reason) = versions::analyse(&txns, &mut report, &mut edges) {
        return Verdict::unknown(reason);
    }
    match isolation {
        Isolation::StrictSerializable => orders::realtime(&txns, &mut edges),
        Isolation::StrongSessionSerializable => orders::session(&txns, &mut edges),
        _ => {}
    }
    let graph = Graph::new(txns.txns.len(), edges);
    let complete = search_cycles(&txns, &graph, isolation, &mut report);
    verdict(
        &txns,
        &report,
        isolation,
        model,
        complete,
        graph.edge_count(),
    )
}

/// Searches every strongly connected component for forbidden cycle shapes and records the
/// shortest cycle of each class found. Returns false when the budget cut a search short.
fn search_cycles(t: &Txns, graph: &Graph, isolation: Isolation, report: &mut Report) -> bool {
    let mask = isolation.mask();
    let shapes = isolation.shapes();
    let comps = graph.sccs(mask);
    let mut search = CycleSearch::new(graph, SEARCH_BUDGET);
    for (i, comp) in comps.iter().enumerate() {
        let id = u32::try_from(i).expect("fewer components than nodes");
        search.enter(id, comp);
        let mut found: Vec<Anomaly> = Vec::new();
        for shape in &shapes {
            if let Some(cycle) = search.shortest(id, comp, *shape) {
                let a = explain_cycle(t, graph, &cycle);
                match found.iter_mut().find(|f| f.kind == a.kind) {
                    Some(f) if f.txns.len() > a.txns.len() => *f = a,
                    Some(_) => {}
                    None => found.push(a),
                }
            }
        }
        if !found.iter().any(|a| isolation.forbids(a.kind)) && isolation.forbids_every_cycle() {
            if let Some(cycle) = search.any_cycle(id, comp, mask) {
                found.push(explain_cycle(t, graph, &cycle));
            }
        }
        for a in found {
            report.add(a);
        }
    }
    !search.exhausted
}

/// Classifies a cycle and writes its explanation: `T1 -rw-> T2 -wr-> T1`, then one clause
/// per edge naming the key and elements behind it.
fn explain_cycle(t: &Txns, graph: &Graph, cycle: &[EdgeId]) -> Anomaly {
    let edges: Vec<_> = cycle.iter().map(|&e| graph.edge(e)).collect();
    let count = |k: EdgeKind| edges.iter().filter(|e| e.2 == k).count();
    let base = match (count(EdgeKind::Rw), count(EdgeKind::Wr)) {
        (0, 0) => CycleBase::G0,
        (0, _) => CycleBase::G1c,
        (1, _) => CycleBase::GSingle,
        _ => CycleBase::G2,
    };
    let order = if count(EdgeKind::Rt) > 0 {
        CycleOrder::Realtime
    } else if count(EdgeKind::Po) > 0 {
        CycleOrder::Process
    } else {
        CycleOrder::Data
    };
    let mut chain = t.name(edges[0].0);
    let mut clauses = Vec::new();
    let mut txns = Vec::new();
    for &(from, to, kind, why) in &edges {
        let (a, b) = (t.name(from), t.name(to));
        chain.push_str(&format!(" -{}-> {b}", kind.name()));
        let show = |v: Option<i64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
        let clause = match kind {
            EdgeKind::Ww => format!(
                "{a} appended {} to {:?} before {b} appended {}",
                show(why.from_value),
                t.key(why.key),
                show(why.to_value)
            ),
            EdgeKind::Wr => format!(
                "{b} read {:?} ending in {}, which {a} appended",
                t.key(why.key),
                show(why.from_value)
            ),
            EdgeKind::Rw => {
                let read = match why.from_value {
                    Some(v) => format!("{:?} ending in {v}", t.key(why.key)),
                    None => format!("{:?} empty", t.key(why.key)),
                };
                format!(
                    "{a} read {read}, missing {b}'s append of {}",
                    show(why.to_value)
                )
            }
            EdgeKind::Rt => {
                let done = t.txns[from as usize]
                    .op
                    .complete_index
                    .map_or_else(|| "?".into(), |i| i.to_string());
                format!(
                    "{a} completed (event {done}) before {b} was invoked (event {})",
                    t.txns[to as usize].op.index
                )
            }
            EdgeKind::Po => format!(
                "{a} precedes {b} in session {}",
                t.txns[from as usize].op.session
            ),
        };
        let key = if why.key == Why::ORDER.key {
            String::new()
        } else {
            format!(" on {}", t.key(why.key))
        };
        txns.push((from, format!("-{}-> {b}{key}", kind.name())));
        clauses.push(clause);
    }
    Anomaly {
        kind: AnomalyKind::Cycle(base, order),
        txns,
        explanation: format!("cycle {chain}: {}", clauses.join("; ")),
    }
}

/// Turns the report into a verdict for `isolation`.
fn verdict(
    t: &Txns,
    report: &Report,
    isolation: Isolation,
    model: &str,
    complete: bool,
    edges: usize,
) -> Verdict {
    let mut forbidden = report.iter().filter(|(k, _, _)| isolation.forbids(*k));
    let Some((kind, count, example)) = forbidden.next() else {
        if !complete {
            return Verdict::unknown(format!(
                "the cycle search budget ({SEARCH_BUDGET} states over {} transactions and {edges} \
                 edges) ran out before any {model} anomaly was found",
                t.txns.len()
            ));
        }
        return Verdict::Valid;
    };
    let mut witness: Vec<WitnessOp> = example
        .txns
        .iter()
        .map(|(id, role)| WitnessOp::from(t.txns[*id as usize].op).with_role(role.clone()))
        .collect();
    witness.sort_by_key(|w| w.index);
    witness.dedup_by(|later, earlier| {
        if later.index == earlier.index {
            if let (Some(l), Some(e)) = (&later.role, &mut earlier.role) {
                e.push_str("; ");
                e.push_str(l);
            }
            true
        } else {
            false
        }
    });
    let others: Vec<String> = report
        .iter()
        .filter(|(k, _, _)| *k != kind)
        .map(|(k, n, _)| {
            let allowed = if isolation.forbids(k) {
                ""
            } else {
                ", allowed"
            };
            format!("{} ×{n}{allowed}", k.name())
        })
        .collect();
    let mut explanation = format!("{model} forbids {}: {}", kind.name(), example.explanation);
    if count > 1 {
        explanation.push_str(&format!(" ({count} instances)"));
    }
    if !others.is_empty() {
        explanation.push_str(&format!(". Also found: {}", others.join(", ")));
    }
    Verdict::invalid(kind.name(), witness, explanation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventType, HistoryBuilder};
    use serde_json::{json, Value};

    /// Writes transaction histories; times are event positions.
    #[derive(Default)]
    struct H {
        b: HistoryBuilder,
    }

    impl H {
        fn invoke(&mut self, p: u64, mops: Value) -> &mut Self {
            let t = self.b.events().len() as u64;
            self.b.event(p, EventType::Invoke, "txn", None, mops, t);
            self
        }

        fn end(&mut self, p: u64, kind: EventType, mops: Value) -> &mut Self {
            let t = self.b.events().len() as u64;
            self.b.event(p, kind, "txn", None, mops, t);
            self
        }

        /// An ok transaction that runs alone: invocation then completion.
        fn ok(&mut self, p: u64, mops: Value) -> &mut Self {
            let invoke = blank_reads(&mops);
            self.invoke(p, invoke).end(p, EventType::Ok, mops)
        }

        fn build(self) -> History {
            self.b.build().expect("test histories are well-formed")
        }
    }

    fn blank_reads(mops: &Value) -> Value {
        Value::Array(
            mops.as_array()
                .expect("mops are a list")
                .iter()
                .map(|m| {
                    if m[0] == "r" {
                        json!(["r", m[1], null])
                    } else {
                        m.clone()
                    }
                })
                .collect(),
        )
    }

    fn anomaly(h: &History, i: Isolation) -> Option<String> {
        match check_txn(h, i) {
            Verdict::Valid => None,
            Verdict::Invalid { anomaly, .. } => Some(anomaly),
            Verdict::Unknown { reason } => panic!("unknown: {reason}"),
        }
    }

    #[test]
    fn serial_history_is_valid_everywhere() {
        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1], ["r", "x", [1]]]))
            .ok(
                2,
                json!([["r", "x", [1]], ["append", "y", 1], ["append", "x", 2]]),
            )
            .ok(1, json!([["r", "y", [1]], ["r", "x", [1, 2]]]))
            .ok(3, json!([["append", "y", 2]]));
        let h = h.build();
        for i in Isolation::ALL {
            assert_eq!(anomaly(&h, i), None, "{i}");
        }
    }

    #[test]
    fn g0_write_cycle() {
        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1], ["append", "y", 1]]))
            .ok(2, json!([["append", "x", 2], ["append", "y", 2]]))
            .ok(3, json!([["r", "x", [1, 2]], ["r", "y", [2, 1]]]));
        let h = h.build();
        assert_eq!(anomaly(&h, Isolation::ReadCommitted).as_deref(), Some("G0"));
        match check_txn(&h, Isolation::Serializable) {
            Verdict::Invalid {
                witness,
                explanation,
                ..
            } => {
                assert_eq!(witness.len(), 2, "{witness:?}");
                assert!(
                    explanation.contains("T0 -ww-> T2 -ww-> T0")
                        || explanation.contains("T2 -ww-> T0 -ww-> T2"),
                    "{explanation}"
                );
            }
            v => panic!("{v}"),
        }
    }

    #[test]
    fn aborted_and_intermediate_reads() {
        let mut h = H::default();
        h.invoke(1, json!([["append", "x", 1]]))
            .end(1, EventType::Fail, json!([["append", "x", 1]]))
            .ok(2, json!([["r", "x", [1]]]));
        assert_eq!(
            anomaly(&h.build(), Isolation::ReadCommitted).as_deref(),
            Some("G1a")
        );

        let mut h = H::default();
        h.invoke(1, json!([["append", "x", 1], ["append", "x", 2]]))
            .ok(2, json!([["r", "x", [1]]]))
            .end(
                1,
                EventType::Ok,
                json!([["append", "x", 1], ["append", "x", 2]]),
            );
        assert_eq!(
            anomaly(&h.build(), Isolation::ReadCommitted).as_deref(),
            Some("G1b")
        );
    }

    #[test]
    fn g1c_circular_information_flow() {
        let mut h = H::default();
        h.invoke(1, json!([["append", "x", 1], ["r", "y", null]]))
            .invoke(2, json!([["append", "y", 1], ["r", "x", null]]))
            .end(
                1,
                EventType::Ok,
                json!([["append", "x", 1], ["r", "y", [1]]]),
            )
            .end(
                2,
                EventType::Ok,
                json!([["append", "y", 1], ["r", "x", [1]]]),
            );
        assert_eq!(
            anomaly(&h.build(), Isolation::ReadCommitted).as_deref(),
            Some("G1c")
        );
    }

    #[test]
    fn read_skew_is_g_single_and_write_skew_is_g2() {
        // Adya's H_single: T1 reads x before T2, y after it.
        let mut h = H::default();
        h.invoke(1, json!([["r", "x", null], ["r", "y", null]]))
            .ok(2, json!([["append", "x", 1], ["append", "y", 1]]))
            .end(1, EventType::Ok, json!([["r", "x", []], ["r", "y", [1]]]));
        let h = h.build();
        assert_eq!(anomaly(&h, Isolation::ReadCommitted), None);
        assert_eq!(
            anomaly(&h, Isolation::SnapshotIsolation).as_deref(),
            Some("G-single")
        );

        let mut h = H::default();
        h.invoke(
            1,
            json!([["r", "x", null], ["r", "y", null], ["append", "x", 1]]),
        )
        .invoke(
            2,
            json!([["r", "x", null], ["r", "y", null], ["append", "y", 1]]),
        )
        .end(
            1,
            EventType::Ok,
            json!([["r", "x", []], ["r", "y", []], ["append", "x", 1]]),
        )
        .end(
            2,
            EventType::Ok,
            json!([["r", "x", []], ["r", "y", []], ["append", "y", 1]]),
        )
        .ok(3, json!([["r", "x", [1]], ["r", "y", [1]]]));
        let h = h.build();
        assert_eq!(anomaly(&h, Isolation::SnapshotIsolation), None);
        assert_eq!(anomaly(&h, Isolation::Serializable).as_deref(), Some("G2"));
    }

    #[test]
    fn lost_update_even_when_unobserved() {
        let mut h = H::default();
        h.invoke(1, json!([["r", "x", null], ["append", "x", 1]]))
            .invoke(2, json!([["r", "x", null], ["append", "x", 2]]))
            .end(
                1,
                EventType::Ok,
                json!([["r", "x", []], ["append", "x", 1]]),
            )
            .end(
                2,
                EventType::Ok,
                json!([["r", "x", []], ["append", "x", 2]]),
            );
        let h = h.build();
        assert_eq!(anomaly(&h, Isolation::ReadCommitted), None);
        assert_eq!(
            anomaly(&h, Isolation::SnapshotIsolation).as_deref(),
            Some("lost-update")
        );
    }

    #[test]
    fn stale_read_needs_real_time() {
        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1]]))
            .ok(2, json!([["r", "x", []]]));
        let h = h.build();
        assert_eq!(anomaly(&h, Isolation::Serializable), None);
        assert_eq!(anomaly(&h, Isolation::StrongSessionSerializable), None);
        assert_eq!(
            anomaly(&h, Isolation::StrictSerializable).as_deref(),
            Some("G-single-realtime")
        );
    }

    #[test]
    fn session_order_cycle() {
        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1]]))
            .ok(1, json!([["r", "x", []]]));
        let h = h.build();
        assert_eq!(anomaly(&h, Isolation::Serializable), None);
        assert_eq!(
            anomaly(&h, Isolation::StrongSessionSerializable).as_deref(),
            Some("G-single-process")
        );
    }

    #[test]
    fn list_contract_anomalies() {
        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1]]))
            .ok(2, json!([["r", "x", [1, 1]]]));
        assert_eq!(
            anomaly(&h.build(), Isolation::ReadCommitted).as_deref(),
            Some("duplicate-append")
        );

        let mut h = H::default();
        h.ok(2, json!([["r", "x", [7]]]));
        assert_eq!(
            anomaly(&h.build(), Isolation::ReadCommitted).as_deref(),
            Some("garbage-read")
        );

        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1]]))
            .ok(1, json!([["append", "x", 2]]))
            .ok(2, json!([["r", "x", [1, 2]]]))
            .ok(3, json!([["r", "x", [2]]]));
        assert_eq!(
            anomaly(&h.build(), Isolation::ReadCommitted).as_deref(),
            Some("incompatible-order")
        );

        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1], ["r", "x", []]]));
        assert_eq!(
            anomaly(&h.build(), Isolation::ReadCommitted).as_deref(),
            Some("internal")
        );
    }

    #[test]
    fn info_appends_count_once_observed() {
        let mut h = H::default();
        h.invoke(1, json!([["append", "x", 1]]))
            .end(1, EventType::Info, json!([["append", "x", 1]]))
            .ok(2, json!([["r", "x", [1]]]))
            .ok(3, json!([["r", "x", []]]));
        let h = h.build();
        // T2 saw the info append, so it took effect before T2 completed; T4, invoked later,
        // missed it: T0 -wr-> T2 -rt-> T4 -rw-> T0.
        assert_eq!(
            anomaly(&h, Isolation::StrictSerializable).as_deref(),
            Some("G-single-realtime")
        );
        assert_eq!(anomaly(&h, Isolation::Serializable), None);
    }

    #[test]
    fn duplicate_elements_make_the_verdict_unknown() {
        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1]]))
            .ok(2, json!([["append", "x", 1]]));
        assert!(check_txn(&h.build(), Isolation::ReadCommitted).is_unknown());
        let mut b = HistoryBuilder::new();
        b.invoke(1, "write", "x", json!(1), 0);
        b.ok(1, "write", "x", json!(1), 1);
        assert!(check_txn(&b.build().expect("ok"), Isolation::ReadCommitted).is_unknown());
    }

    #[test]
    fn list_append_linearizability() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "append", "x", json!(1), 0);
        b.ok(1, "append", "x", json!(1), 1);
        b.invoke(2, "read", "x", Value::Null, 2);
        b.ok(2, "read", "x", json!([]), 3);
        let h = b.build().expect("ok");
        assert!(check_list_append(&h, ListAppendLevel::Linearizable).is_invalid());
        assert!(check_list_append(&h, ListAppendLevel::Sequential).is_valid());

        let mut b = HistoryBuilder::new();
        b.invoke(1, "append", "x", json!(1), 0);
        b.invoke(2, "read", "x", Value::Null, 1);
        b.ok(2, "read", "x", json!([]), 2);
        b.ok(1, "append", "x", json!(1), 3);
        b.invoke(2, "read", "x", Value::Null, 4);
        b.ok(2, "read", "x", json!([1]), 5);
        let h = b.build().expect("ok");
        assert!(check_list_append(&h, ListAppendLevel::Linearizable).is_valid());
    }

    #[test]
    fn reads_after_own_appends_see_what_came_before() {
        // T2 appends 2 and reads [1, 2]: it read from T0's 1, the middle of T0's appends.
        let t0 = json!([["append", "x", 1], ["append", "x", 3]]);
        let t2 = json!([["append", "x", 2], ["r", "x", [1, 2]]]);
        let mut h = H::default();
        h.invoke(1, t0.clone())
            .invoke(2, blank_reads(&t2))
            .end(2, EventType::Ok, t2)
            .end(1, EventType::Ok, t0);
        assert_eq!(
            anomaly(&h.build(), Isolation::ReadCommitted).as_deref(),
            Some("G1b")
        );

        // A clean read after an own append: no self-edges, no false anomaly.
        let mut h = H::default();
        h.ok(1, json!([["append", "x", 1]]))
            .ok(2, json!([["append", "x", 2], ["r", "x", [1, 2]]]));
        assert_eq!(anomaly(&h.build(), Isolation::StrictSerializable), None);
    }

    #[test]
    fn levels_parse_and_print() {
        for i in Isolation::ALL {
            assert_eq!(i.name().parse::<Isolation>(), Ok(i));
        }
        assert!("snapshot".parse::<Isolation>().is_err());
        assert_eq!(
            "sequential".parse::<ListAppendLevel>(),
            Ok(ListAppendLevel::Sequential)
        );
    }
}
