//! The anomalies the Elle checker reports, their names, and how they are collected.
//!
//! Names follow Elle (Kingsbury & Alvaro, VLDB 2020, §3–4) and Adya's thesis ("Weak
//! Consistency: A Generalized Theory and Optimistic Implementations for Distributed
//! Transactions", MIT 1999): `G0`, `G1a`, `G1b`, `G1c`, `G-single`, `G2` (Elle's `G2-item`),
//! `lost-update`, with `-process` and `-realtime` suffixes for cycles that need
//! session-order or real-time edges, plus the list-append sanity anomalies `garbage-read`,
//! `duplicate-append`, `incompatible-order` and `internal`.

use std::collections::BTreeMap;

use super::txn::TxnId;

/// The shape of a dependency cycle, by the data edges it contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum CycleBase {
    /// Only `ww` edges: dirty write.
    G0,
    /// `ww` and `wr` edges, at least one `wr`: circular information flow.
    G1c,
    /// Exactly one `rw` edge: read skew, lost update.
    GSingle,
    /// Two or more `rw` edges: write skew.
    G2,
}

/// Which order edges, beyond data dependencies, a cycle needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum CycleOrder {
    /// Data dependencies only.
    Data,
    /// At least one session-order edge.
    Process,
    /// At least one real-time edge.
    Realtime,
}

/// An anomaly class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AnomalyKind {
    /// A read saw an element nobody appended.
    GarbageRead,
    /// A read saw one element twice.
    DuplicateAppend,
    /// Two reads of a key are not prefixes of one another.
    IncompatibleOrder,
    /// A transaction's read disagrees with its own earlier micro-operations.
    Internal,
    /// A read saw an element appended by a failed transaction.
    G1a,
    /// A read saw the state in the middle of another transaction's appends to a key.
    G1b,
    /// Two committed transactions read the same version of a key and both appended to it.
    LostUpdate,
    /// A dependency cycle.
    Cycle(CycleBase, CycleOrder),
}

impl AnomalyKind {
    /// Returns the name used in verdicts.
    pub(crate) fn name(self) -> String {
        let (base, order) = match self {
            AnomalyKind::GarbageRead => return "garbage-read".into(),
            AnomalyKind::DuplicateAppend => return "duplicate-append".into(),
            AnomalyKind::IncompatibleOrder => return "incompatible-order".into(),
            AnomalyKind::Internal => return "internal".into(),
            AnomalyKind::G1a => return "G1a".into(),
            AnomalyKind::G1b => return "G1b".into(),
            AnomalyKind::LostUpdate => return "lost-update".into(),
            AnomalyKind::Cycle(base, order) => (base, order),
        };
        let base = match base {
            CycleBase::G0 => "G0",
            CycleBase::G1c => "G1c",
            CycleBase::GSingle => "G-single",
            CycleBase::G2 => "G2",
        };
        match order {
            CycleOrder::Data => base.into(),
            CycleOrder::Process => format!("{base}-process"),
            CycleOrder::Realtime => format!("{base}-realtime"),
        }
    }

    /// Returns the reporting rank: the lower, the more fundamental. When a history shows
    /// several anomalies the verdict names the lowest-ranked forbidden one.
    pub(crate) fn rank(self) -> u8 {
        match self {
            AnomalyKind::GarbageRead => 0,
            AnomalyKind::DuplicateAppend => 1,
            AnomalyKind::IncompatibleOrder => 2,
            AnomalyKind::Internal => 3,
            AnomalyKind::G1a => 4,
            AnomalyKind::G1b => 5,
            AnomalyKind::Cycle(CycleBase::G0, CycleOrder::Data) => 6,
            AnomalyKind::Cycle(CycleBase::G1c, CycleOrder::Data) => 7,
            AnomalyKind::Cycle(CycleBase::GSingle, CycleOrder::Data) => 8,
            AnomalyKind::LostUpdate => 9,
            AnomalyKind::Cycle(CycleBase::G2, CycleOrder::Data) => 10,
            AnomalyKind::Cycle(base, CycleOrder::Process) => 11 + base as u8,
            AnomalyKind::Cycle(base, CycleOrder::Realtime) => 15 + base as u8,
        }
    }
}

impl PartialOrd for AnomalyKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AnomalyKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// One instance of an anomaly with its evidence.
#[derive(Clone, Debug)]
pub(crate) struct Anomaly {
    /// The class.
    pub kind: AnomalyKind,
    /// The transactions involved, each with its role.
    pub txns: Vec<(TxnId, String)>,
    /// What happened, in terms of the witness.
    pub explanation: String,
}

/// Everything found in one history: per anomaly class, how many instances and the smallest
/// example (fewest transactions, then first found).
#[derive(Debug, Default)]
pub(crate) struct Report {
    found: BTreeMap<AnomalyKind, (usize, Anomaly)>,
}

impl Report {
    /// Records an instance.
    pub(crate) fn add(&mut self, a: Anomaly) {
        match self.found.get_mut(&a.kind) {
            Some((count, best)) => {
                *count += 1;
                if a.txns.len() < best.txns.len() {
                    *best = a;
                }
            }
            None => {
                self.found.insert(a.kind, (1, a));
            }
        }
    }

    /// Returns the classes found with their counts and examples, most fundamental first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (AnomalyKind, usize, &Anomaly)> {
        self.found.iter().map(|(k, (n, a))| (*k, *n, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ranks() {
        let gs = AnomalyKind::Cycle(CycleBase::GSingle, CycleOrder::Realtime);
        assert_eq!(gs.name(), "G-single-realtime");
        assert_eq!(
            AnomalyKind::Cycle(CycleBase::G2, CycleOrder::Data).name(),
            "G2"
        );
        assert_eq!(
            AnomalyKind::Cycle(CycleBase::G0, CycleOrder::Process).name(),
            "G0-process"
        );
        assert!(AnomalyKind::G1a < AnomalyKind::Cycle(CycleBase::G0, CycleOrder::Data));
        assert!(AnomalyKind::LostUpdate < AnomalyKind::Cycle(CycleBase::G2, CycleOrder::Data));
        assert!(AnomalyKind::Cycle(CycleBase::G2, CycleOrder::Data) < gs);
    }

    #[test]
    fn report_keeps_the_smallest_example() {
        let mut r = Report::default();
        let mk = |n: u32| Anomaly {
            kind: AnomalyKind::G1b,
            txns: (0..n).map(|t| (t, String::new())).collect(),
            explanation: format!("{n}"),
        };
        r.add(mk(3));
        r.add(mk(2));
        r.add(mk(4));
        let (kind, count, best) = r.iter().next().expect("one class");
        assert_eq!(
            (kind, count, best.explanation.as_str()),
            (AnomalyKind::G1b, 3, "2")
        );
    }
}
