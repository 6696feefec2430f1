//! Causal delivery: updates from each origin arrive in order but may depend on updates of
//! other origins not yet applied here. [`CausalBuffer`] holds them until they may apply.
//!
//! An update `(origin, seq, prev, deps)` names the origin's update before it (`prev`,
//! normally `seq - 1`; more after the origin skipped positions it found already used). It is
//! *deliverable* at a replica whose applied vector `vv` has `prev ≤ vv[origin] < seq` (the
//! origin's stream is applied in order, without missing a link) and `deps ≤ vv` (everything
//! its writer had seen is applied). Applying it raises `vv[origin]` to `seq`. The buffer is a pure structure: the applier thread owns it, so it needs no
//! synchronisation of its own.

use std::collections::BTreeMap;

use dialkv_consistency::clock::{ReplicaId, VectorClock};

/// The most updates held per origin: past it an origin's further updates are refused (not
/// acknowledged), and the origin resends them later.
pub const MAX_PENDING_PER_ORIGIN: usize = 100_000;

/// Updates received but not yet deliverable.
#[derive(Debug)]
pub struct CausalBuffer<U> {
    pending: BTreeMap<ReplicaId, BTreeMap<u64, Held<U>>>,
}

#[derive(Debug)]
struct Held<U> {
    prev: u64,
    deps: VectorClock,
    update: U,
}

impl<U> Default for CausalBuffer<U> {
    fn default() -> Self {
        Self {
            pending: BTreeMap::new(),
        }
    }
}

impl<U> CausalBuffer<U> {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Holds update `seq` of `origin` (following `prev`) with dependencies `deps`, unless
    /// `applied` already has it, it is held already, or the origin's share of the buffer is
    /// full. Returns whether it is now held.
    pub fn offer(
        &mut self,
        applied: &VectorClock,
        origin: ReplicaId,
        seq: u64,
        prev: u64,
        deps: VectorClock,
        update: U,
    ) -> bool {
        if seq <= applied.get(origin) {
            return false;
        }
        let queue = self.pending.entry(origin).or_default();
        if queue.len() >= MAX_PENDING_PER_ORIGIN || queue.contains_key(&seq) {
            return false;
        }
        queue.insert(seq, Held { prev, deps, update });
        true
    }

    /// Takes every update that may apply on top of `applied`, in an order that respects
    /// causality, raising `applied` as each is taken.
    pub fn take_ready(&mut self, applied: &mut VectorClock) -> Vec<(ReplicaId, u64, U)> {
        let mut out = Vec::new();
        loop {
            let mut progressed = false;
            for (&origin, queue) in self.pending.iter_mut() {
                // Drop what `applied` already covers (it may have been raised by a repair).
                while queue
                    .first_key_value()
                    .is_some_and(|(&s, _)| s <= applied.get(origin))
                {
                    queue.pop_first();
                }
                while let Some((&seq, held)) = queue.first_key_value() {
                    let ready = held.prev <= applied.get(origin)
                        && held
                            .deps
                            .iter()
                            .all(|(r, c)| r == origin || c <= applied.get(r));
                    if !ready {
                        break;
                    }
                    let (_, Held { update, .. }) = queue.pop_first().expect("a first entry");
                    applied.raise(origin, seq);
                    out.push((origin, seq, update));
                    progressed = true;
                }
            }
            self.pending.retain(|_, q| !q.is_empty());
            if !progressed {
                return out;
            }
        }
    }

    /// How many updates are held.
    pub fn len(&self) -> usize {
        self.pending.values().map(BTreeMap::len).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A history of writes at three origins: each write depends on everything its origin
    /// had applied when it was made (its own earlier writes and what it had received).
    fn history() -> impl Strategy<Value = Vec<(ReplicaId, u64, VectorClock)>> {
        proptest::collection::vec((1u64..4, proptest::collection::vec(1u64..4, 0..2)), 1..25)
            .prop_map(|script| {
                let mut seen: BTreeMap<ReplicaId, VectorClock> = BTreeMap::new();
                let mut all: Vec<(ReplicaId, u64, VectorClock)> = Vec::new();
                for (origin, receive_from) in script {
                    // The origin first receives the latest write of some others (transitively
                    // with their pasts), then writes.
                    for r in receive_from {
                        if let Some((_, s, d)) = all.iter().rev().find(|(o, _, _)| *o == r) {
                            let mut v = d.clone();
                            v.raise(r, *s);
                            seen.entry(origin).or_default().merge(&v);
                        }
                    }
                    let past = seen.entry(origin).or_default();
                    let seq = past.get(origin) + 1;
                    let deps = past.clone();
                    past.raise(origin, seq);
                    all.push((origin, seq, deps));
                }
                all
            })
    }

    proptest! {
        /// Offered in any interleaving that keeps each origin's order (with duplicates), the
        /// buffer delivers every update exactly once, each after all of its dependencies.
        #[test]
        fn delivers_everything_once_in_causal_order(
            writes in history(),
            order in proptest::collection::vec(0usize..3, 0..200),
            dup in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            // Per-origin FIFO queues, merged in the order `order` picks (then the rest).
            let mut queues: BTreeMap<ReplicaId, Vec<(u64, VectorClock)>> = BTreeMap::new();
            for (o, s, d) in &writes {
                queues.entry(*o).or_default().push((*s, d.clone()));
            }
            let mut arrivals = Vec::new();
            let origins: Vec<ReplicaId> = queues.keys().copied().collect();
            let mut picks = order.into_iter().chain(std::iter::repeat_n(0, writes.len() * 4));
            let mut dups = dup.into_iter();
            while queues.values().any(|q| !q.is_empty()) {
                let i = picks.next().unwrap_or(0) % origins.len();
                let o = origins.iter().cycle().skip(i).take(origins.len()).find(|o| !queues[o].is_empty()).copied().expect("a non-empty queue");
                let (s, d) = queues.get_mut(&o).expect("queue").remove(0);
                if dups.next().unwrap_or(false) {
                    arrivals.push((o, s, d.clone()));
                }
                arrivals.push((o, s, d));
            }
            let mut buffer = CausalBuffer::new();
            let mut applied = VectorClock::new();
            let mut delivered: Vec<(ReplicaId, u64)> = Vec::new();
            for (o, s, d) in arrivals {
                buffer.offer(&applied, o, s, s - 1, d.clone(), d);
                for (origin, seq, deps) in buffer.take_ready(&mut applied) {
                    // Every dependency was delivered before.
                    for (r, c) in deps.iter() {
                        if r != origin {
                            prop_assert!(delivered.iter().any(|&(dr, ds)| dr == r && ds == c), "({origin},{seq}) before its dependency ({r},{c})");
                        }
                    }
                    prop_assert!(!delivered.contains(&(origin, seq)), "({origin},{seq}) delivered twice");
                    delivered.push((origin, seq));
                }
            }
            prop_assert_eq!(delivered.len(), writes.len(), "everything is delivered");
            prop_assert!(buffer.is_empty());
        }
    }

    #[test]
    fn an_update_waits_for_its_dependency() {
        let mut b = CausalBuffer::new();
        let mut applied = VectorClock::new();
        assert!(b.offer(&applied, 2, 1, 0, VectorClock::from_entries([(1, 1)]), "b"));
        assert!(b.take_ready(&mut applied).is_empty());
        assert!(b.offer(&applied, 1, 1, 0, VectorClock::new(), "a"));
        let got: Vec<_> = b
            .take_ready(&mut applied)
            .into_iter()
            .map(|(_, _, u)| u)
            .collect();
        assert_eq!(got, vec!["a", "b"]);
        assert!(
            !b.offer(&applied, 1, 1, 0, VectorClock::new(), "a"),
            "applied already"
        );
    }

    #[test]
    fn a_skip_in_a_stream_is_followed_through_its_link() {
        let mut b = CausalBuffer::new();
        let mut applied = VectorClock::from_entries([(1, 3)]);
        // Origin 1 skipped 4..=9 (positions it found used): update 10 follows update 3.
        assert!(b.offer(&applied, 1, 11, 10, VectorClock::new(), "after"));
        assert!(b.offer(&applied, 1, 10, 3, VectorClock::new(), "skip"));
        let got: Vec<_> = b
            .take_ready(&mut applied)
            .into_iter()
            .map(|(_, s, _)| s)
            .collect();
        assert_eq!(got, vec![10, 11]);
        assert_eq!(applied.get(1), 11);
        // A replica that lacks the link waits.
        let mut behind = VectorClock::from_entries([(1, 2)]);
        let mut b = CausalBuffer::new();
        assert!(b.offer(&behind, 1, 10, 3, VectorClock::new(), "skip"));
        assert!(b.take_ready(&mut behind).is_empty());
    }
}
