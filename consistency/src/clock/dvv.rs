//! Dotted version vectors (Preguiça, Baquero, Almeida, Fonte, Gonçalves, "Dotted Version
//! Vectors: Logical Clocks for Optimistic Replication", 2010; the sibling-set form follows
//! Almeida et al., "Scalable and Accurate Causality Tracking for Eventually Consistent
//! Stores", DAIS 2014).
//!
//! In a leaderless namespace any replica may coordinate a write, and one replica coordinates
//! writes for many clients. A plain version vector per value then either loses concurrent
//! writes or grows with the number of clients. A dotted version vector names each write by a
//! [`Dot`] `(replica, counter)` and keeps, beside it, the causal past the client had read (a
//! [`VectorClock`]). Two writes are concurrent exactly when neither's dot is in the other's
//! past, however many clients share a coordinator.
//!
//! [`Siblings`] is the set of versions of one key a replica keeps:
//!
//! - [`Siblings::update`] (the coordinator's write with the client's causal context) makes a
//!   fresh dot at the coordinator and discards the versions the context covers;
//! - [`Siblings::sync`] (anti-entropy, read repair, a quorum read) merges two replicas' sets,
//!   keeping only versions not covered by another;
//! - [`Siblings::context`] (the "join") is the causal context returned to a reading client.
//!
//! Laws (property-tested below): `sync` is commutative, associative and idempotent (sibling
//! sets form a join-semilattice); after `sync` the versions are pairwise concurrent; a write
//! whose context is the set's own context leaves exactly one version; a write with an older
//! context never discards a version it had not seen.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::vector::{ReplicaId, VectorClock};

/// The name of one write event: the coordinating replica and its event counter there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that coordinated the write.
    pub replica: ReplicaId,
    /// The write's position among that replica's events (starts at 1).
    pub counter: u64,
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.replica, self.counter)
    }
}

/// The clock of one version: the dot of the write that made it and the causal past that
/// write had seen. Invariant: `past.get(dot.replica) < dot.counter`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DottedVersionVector {
    /// The write's own event.
    pub dot: Dot,
    /// Every event the write causally depends on.
    pub past: VectorClock,
}

impl DottedVersionVector {
    /// Returns true when the event `dot` is in this version's history (its own dot or its
    /// past).
    pub fn contains(&self, dot: Dot) -> bool {
        dot == self.dot || dot.counter <= self.past.get(dot.replica)
    }

    /// Returns true when every event in this version's history is covered by `context`.
    pub fn covered_by(&self, context: &VectorClock) -> bool {
        self.dot.counter <= context.get(self.dot.replica) && self.past.le(context)
    }

    /// Returns true when this version's history is included in `other`'s (`self ≤ other`):
    /// `other` was written knowing this version, or is this version.
    pub fn le(&self, other: &DottedVersionVector) -> bool {
        if !other.contains(self.dot) {
            return false;
        }
        // Every event (r, k) with k ≤ past[r] must be in `other`: either in other's past, or
        // the last one of them is exactly other's dot, right after other's past.
        self.past.iter().all(|(r, c)| {
            let theirs = other.past.get(r);
            c <= theirs || (r == other.dot.replica && c == other.dot.counter && theirs + 1 == c)
        })
    }

    /// Returns true when neither version's history includes the other's.
    pub fn concurrent(&self, other: &DottedVersionVector) -> bool {
        !self.le(other) && !other.le(self)
    }

    /// Returns the version vector of this version's whole history (past plus dot).
    pub fn to_vector(&self) -> VectorClock {
        let mut v = self.past.clone();
        v.raise(self.dot.replica, self.dot.counter);
        v
    }
}

/// One version of a key: a value and its clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version<T> {
    /// The clock of the write that produced it.
    pub clock: DottedVersionVector,
    /// The written value.
    pub value: T,
}

/// The versions of one key kept by a replica: pairwise concurrent, sorted by dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Siblings<T> {
    versions: Vec<Version<T>>,
}

impl<T> Default for Siblings<T> {
    fn default() -> Self {
        Siblings {
            versions: Vec::new(),
        }
    }
}

impl<T: Clone> Siblings<T> {
    /// Returns an empty set (the key was never written).
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the versions, sorted by dot.
    pub fn versions(&self) -> &[Version<T>] {
        &self.versions
    }

    /// Returns the concurrent values, sorted by dot.
    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.versions.iter().map(|v| &v.value)
    }

    /// Returns the number of concurrent versions.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Returns true when there is no version.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Returns the causal context of the whole set (the DVV "join"): a client that read this
    /// set sends it back with its next write so that the write supersedes what it read.
    pub fn context(&self) -> VectorClock {
        let mut ctx = VectorClock::new();
        for v in &self.versions {
            ctx.merge(&v.clock.to_vector());
        }
        ctx
    }

    /// Coordinates a write at `replica`: makes a dot after every event of `replica` known here
    /// or in `context`, drops the versions `context` covers, and stores the new version.
    /// Returns the new dot.
    pub fn update(&mut self, replica: ReplicaId, context: &VectorClock, value: T) -> Dot {
        let known = self.known(replica).max(context.get(replica));
        let dot = Dot {
            replica,
            counter: known + 1,
        };
        self.update_at(dot, context, value);
        dot
    }

    /// The greatest event counter of `replica` in this set's history.
    pub fn known(&self, replica: ReplicaId) -> u64 {
        self.versions
            .iter()
            .map(|v| v.clock.to_vector().get(replica))
            .max()
            .unwrap_or(0)
    }

    /// [`Siblings::update`] with a dot the caller chose — for example a replica's event
    /// counter over all keys, so that dots stay unique even where a replica lost its own
    /// history of the key. The dot must be above every event of its replica known here or
    /// in `context` (`known` and `context.get`); a smaller one could name another write.
    pub fn update_at(&mut self, dot: Dot, context: &VectorClock, value: T) {
        debug_assert!(
            dot.counter > self.known(dot.replica).max(context.get(dot.replica)),
            "a dot must be above every known event of its replica"
        );
        self.versions.retain(|v| !v.clock.covered_by(context));
        // The dot is above context[replica], so the invariant past[r] < dot.counter holds.
        self.versions.push(Version {
            clock: DottedVersionVector {
                dot,
                past: context.clone(),
            },
            value,
        });
        self.versions.sort_by_key(|v| v.clock.dot);
    }

    /// Merges another replica's versions of the same key into this one, keeping the versions
    /// that no other version includes.
    pub fn sync(&mut self, other: &Siblings<T>) {
        let mut all: Vec<Version<T>> = self.versions.drain(..).collect();
        all.extend(other.versions.iter().cloned());
        all.sort_by_key(|v| v.clock.dot);
        all.dedup_by_key(|v| v.clock.dot);
        let keep: Vec<bool> = all
            .iter()
            .map(|v| {
                !all.iter()
                    .any(|w| w.clock.dot != v.clock.dot && v.clock.le(&w.clock))
            })
            .collect();
        self.versions = all
            .into_iter()
            .zip(keep)
            .filter_map(|(v, k)| k.then_some(v))
            .collect();
    }

    /// Keeps only the versions `keep` accepts (a conflict policy such as last-writer-wins
    /// prunes concurrent versions this way). The versions kept stay pairwise concurrent.
    pub fn retain(&mut self, mut keep: impl FnMut(&Version<T>) -> bool) {
        self.versions.retain(|v| keep(v));
    }

    /// Returns the result of [`Siblings::sync`] without changing `self`.
    pub fn synced(&self, other: &Siblings<T>) -> Siblings<T> {
        let mut out = self.clone();
        out.sync(other);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn concurrent_writes_through_one_coordinator_are_kept() {
        // Two clients read the empty key and both write through replica 1.
        let mut s: Siblings<&str> = Siblings::new();
        let empty = VectorClock::new();
        let d1 = s.update(1, &empty, "a");
        let d2 = s.update(1, &empty, "b");
        assert_eq!(
            d1,
            Dot {
                replica: 1,
                counter: 1
            }
        );
        assert_eq!(
            d2,
            Dot {
                replica: 1,
                counter: 2
            }
        );
        assert_eq!(
            s.len(),
            2,
            "a plain version vector would have lost one write"
        );
        assert!(s.versions()[0].clock.concurrent(&s.versions()[1].clock));
        // A client that read both writes once more: one version remains.
        let ctx = s.context();
        s.update(2, &ctx, "c");
        assert_eq!(s.values().copied().collect::<Vec<_>>(), vec!["c"]);
    }

    #[test]
    fn le_handles_the_dot_right_after_the_past() {
        let a = DottedVersionVector {
            dot: Dot {
                replica: 2,
                counter: 1,
            },
            past: VectorClock::from_entries([(1, 1)]),
        };
        let b = DottedVersionVector {
            dot: Dot {
                replica: 1,
                counter: 2,
            },
            past: VectorClock::from_entries([(1, 1), (2, 1)]),
        };
        assert!(a.le(&b));
        assert!(!b.le(&a));
        // c's past claims (1,1) and (1,2); d has (1,1) in its past and the dot (1,3), so it
        // misses (1,2).
        let c = DottedVersionVector {
            dot: Dot {
                replica: 3,
                counter: 1,
            },
            past: VectorClock::from_entries([(1, 2)]),
        };
        let d = DottedVersionVector {
            dot: Dot {
                replica: 1,
                counter: 3,
            },
            past: VectorClock::from_entries([(1, 1)]),
        };
        assert!(!c.le(&d));
    }

    /// Simulates replicas doing writes (with a context read at some replica) and syncs, and
    /// returns every state each replica went through.
    fn states() -> impl Strategy<Value = Vec<Siblings<u32>>> {
        proptest::collection::vec((0u64..3, 0u64..3, any::<bool>()), 1..12).prop_map(|steps| {
            let mut replicas: Vec<Siblings<u32>> = vec![Siblings::new(); 3];
            let mut seen = Vec::new();
            for (i, (at, from, write)) in steps.into_iter().enumerate() {
                let (at, from) = (at as usize, from as usize);
                if write {
                    let ctx = replicas[from].context();
                    replicas[at].update(at as u64, &ctx, i as u32);
                } else {
                    let other = replicas[from].clone();
                    replicas[at].sync(&other);
                }
                seen.push(replicas[at].clone());
            }
            seen
        })
    }

    proptest! {
        #[test]
        fn sync_is_a_semilattice_join(states in states(), i in 0usize..12, j in 0usize..12, k in 0usize..12) {
            let n = states.len();
            let (a, b, c) = (&states[i % n], &states[j % n], &states[k % n]);
            prop_assert_eq!(a.synced(b), b.synced(a));
            prop_assert_eq!(a.synced(b).synced(c), a.synced(&b.synced(c)));
            prop_assert_eq!(a.synced(a), a.clone());
        }

        #[test]
        fn siblings_are_pairwise_concurrent(states in states()) {
            for s in &states {
                for (x, v) in s.versions().iter().enumerate() {
                    for w in &s.versions()[x + 1..] {
                        prop_assert!(v.clock.concurrent(&w.clock));
                    }
                }
            }
        }

        #[test]
        fn writing_with_the_full_context_leaves_one_version(states in states(), r in 0u64..3) {
            let mut s = states[states.len() - 1].clone();
            let ctx = s.context();
            s.update(r, &ctx, 99);
            prop_assert_eq!(s.len(), 1);
        }

        #[test]
        fn an_old_context_never_discards_unseen_versions(states in states(), r in 0u64..3) {
            let mut s = states[states.len() - 1].clone();
            let before = s.len();
            s.update(r, &VectorClock::new(), 1);
            prop_assert_eq!(s.len(), before + 1);
        }
    }
}
