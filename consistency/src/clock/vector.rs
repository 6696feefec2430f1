//! Vector clocks (Fidge 1988; Mattern, "Virtual Time and Global States of Distributed
//! Systems", 1989).
//!
//! A [`VectorClock`] maps each replica to the number of events of that replica it has seen.
//! Missing entries are zero, and zero entries are never stored, so two clocks that mean the
//! same thing are equal.
//!
//! Laws (checked by the property tests below):
//!
//! - `merge` is commutative, associative and idempotent (a join-semilattice), with the empty
//!   clock as identity; `a.merge(b)` is the least upper bound of `a` and `b` under `≤`.
//! - `≤` ([`VectorClock::le`], also `PartialOrd`) is a partial order: reflexive,
//!   antisymmetric, transitive; `a ≤ b` iff every entry of `a` is at most that of `b`.
//! - `a.concurrent(b)` iff neither `a ≤ b` nor `b ≤ a`.
//! - `increment(r)` yields a clock strictly greater than before.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A replica id, unique within a cluster.
pub type ReplicaId = u64;

/// A vector clock: per replica, the count of that replica's events seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VectorClock {
    /// Non-zero entries only (the invariant that makes structural equality meaningful).
    entries: BTreeMap<ReplicaId, u64>,
}

impl VectorClock {
    /// Returns the empty clock (all entries zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a clock from `(replica, counter)` pairs; zero counters are dropped and a
    /// replica given twice keeps the larger counter.
    pub fn from_entries(entries: impl IntoIterator<Item = (ReplicaId, u64)>) -> Self {
        let mut clock = VectorClock::new();
        for (r, c) in entries {
            clock.raise(r, c);
        }
        clock
    }

    /// Returns the entry for `replica` (zero when absent).
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.entries.get(&replica).copied().unwrap_or(0)
    }

    /// Raises the entry for `replica` to at least `counter`.
    pub fn raise(&mut self, replica: ReplicaId, counter: u64) {
        if counter > 0 {
            let e = self.entries.entry(replica).or_insert(0);
            *e = (*e).max(counter);
        }
    }

    /// Records one more event at `replica` and returns its new counter.
    pub fn increment(&mut self, replica: ReplicaId) -> u64 {
        let e = self.entries.entry(replica).or_insert(0);
        *e = e
            .checked_add(1)
            .expect("a vector clock entry cannot reach u64::MAX events");
        *e
    }

    /// Sets `self` to the pointwise maximum of `self` and `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        for (&r, &c) in &other.entries {
            self.raise(r, c);
        }
    }

    /// Returns the pointwise maximum of `self` and `other`.
    pub fn merged(&self, other: &VectorClock) -> VectorClock {
        let mut out = self.clone();
        out.merge(other);
        out
    }

    /// Returns true when `self ≤ other`: every event `self` has seen, `other` has seen.
    pub fn le(&self, other: &VectorClock) -> bool {
        self.entries.iter().all(|(&r, &c)| c <= other.get(r))
    }

    /// Returns true when `self ≥ other` (`self` descends from `other`).
    pub fn descends(&self, other: &VectorClock) -> bool {
        other.le(self)
    }

    /// Returns true when neither clock is `≤` the other.
    pub fn concurrent(&self, other: &VectorClock) -> bool {
        !self.le(other) && !other.le(self)
    }

    /// Returns true when every entry is zero.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the non-zero entries in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.entries.iter().map(|(&r, &c)| (r, c))
    }
}

impl PartialOrd for VectorClock {
    /// The causal partial order; `None` for concurrent clocks.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.le(other), other.le(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (false, false) => None,
        }
    }
}

impl fmt::Display for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (r, c)) in self.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{r}:{c}")?;
        }
        write!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::vec((0u64..4, 0u64..4), 0..5).prop_map(VectorClock::from_entries)
    }

    #[test]
    fn basic_order() {
        let mut a = VectorClock::new();
        a.increment(1);
        let mut b = a.clone();
        b.increment(2);
        assert!(a < b);
        assert!(a.le(&b) && !b.le(&a));
        let mut c = a.clone();
        c.increment(3);
        assert!(b.concurrent(&c));
        assert_eq!(b.partial_cmp(&c), None);
        let m = b.merged(&c);
        assert_eq!(m, VectorClock::from_entries([(1, 1), (2, 1), (3, 1)]));
        assert_eq!(m.to_string(), "{1:1, 2:1, 3:1}");
        assert_eq!(VectorClock::from_entries([(1, 0)]), VectorClock::new());
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in clock(), b in clock()) {
            prop_assert_eq!(a.merged(&b), b.merged(&a));
        }

        #[test]
        fn merge_is_associative(a in clock(), b in clock(), c in clock()) {
            prop_assert_eq!(a.merged(&b).merged(&c), a.merged(&b.merged(&c)));
        }

        #[test]
        fn merge_is_idempotent(a in clock()) {
            prop_assert_eq!(a.merged(&a), a);
        }

        #[test]
        fn merge_is_the_least_upper_bound(a in clock(), b in clock(), c in clock()) {
            let m = a.merged(&b);
            prop_assert!(a.le(&m) && b.le(&m));
            if a.le(&c) && b.le(&c) {
                prop_assert!(m.le(&c));
            }
        }

        #[test]
        fn le_is_a_partial_order(a in clock(), b in clock(), c in clock()) {
            prop_assert!(a.le(&a));
            if a.le(&b) && b.le(&a) {
                prop_assert_eq!(&a, &b);
            }
            if a.le(&b) && b.le(&c) {
                prop_assert!(a.le(&c));
            }
            prop_assert_eq!(a.concurrent(&b), a.partial_cmp(&b).is_none());
        }

        #[test]
        fn increment_moves_strictly_up(a in clock(), r in 0u64..5) {
            let mut b = a.clone();
            b.increment(r);
            prop_assert!(a < b);
        }
    }
}
