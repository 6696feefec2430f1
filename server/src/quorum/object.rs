//! The versions of one key in a quorum namespace, and their encodings.
//!
//! A key's state is a [`Object`]: a set of pairwise-concurrent versions, each named by a dot
//! and carrying the causal past its writer had seen (dotted version vectors, see
//! [`dialkv_consistency::clock::Siblings`]). Every version also has a [`Stamp`] — a hybrid
//! logical timestamp and the coordinating replica — giving all versions one total order, and
//! the position of its write in its origin's update stream.
//!
//! Two rules make the two orders agree: a write's stamp is above the stamp of every version
//! its context covers, and merging keeps every version no other version includes. Hence the
//! version with the greatest stamp (the *winner*) is never dropped by a merge, and:
//! - under last-writer-wins only the winner is kept, and merging stays a join (the winner of
//!   a merge is the winner of the union);
//! - the winner's stamp at a replica only grows, which is the register order ABD needs.

use dialkv_consistency::clock::{HlcTimestamp, ReplicaId, Siblings, VectorClock};
use serde::{Deserialize, Serialize};

/// The total order of versions: a hybrid logical timestamp, ties broken by the replica that
/// coordinated the write.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Stamp {
    /// When the write was coordinated.
    pub ts: HlcTimestamp,
    /// The replica that coordinated it.
    pub origin: ReplicaId,
}

impl Stamp {
    /// The public revision of the version: `(microseconds << 12 | logical counter) + 1`
    /// (both saturating), so that a greater stamp never has a smaller revision and every
    /// version has a revision above 0.
    pub fn revision(&self) -> u64 {
        let micros = (self.ts.wall_ns / 1_000).min((1 << 51) - 1);
        ((micros << 12) | u64::from(self.ts.logical.min(0xFFF))) + 1
    }
}

/// One version's payload: its stamp, its stream position and its value (`None`: a tombstone).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Val {
    /// The version's place in the total order.
    pub stamp: Stamp,
    /// The write's position in its origin's update stream (`stamp.origin`).
    pub seq: u64,
    /// The value; `None` for a deletion.
    pub value: Option<Vec<u8>>,
}

/// Every current version of one key.
pub type Object = Siblings<Val>;

/// The conflict policy of a namespace, as the protocol applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    /// Keep only the version with the greatest stamp.
    LastWriterWins,
    /// Keep every concurrent version.
    Siblings,
}

/// Applies the policy after a change: under last-writer-wins, drops all but the winner.
pub fn settle(object: &mut Object, policy: Policy) {
    if policy == Policy::LastWriterWins {
        if let Some(w) = winner(object).map(|v| v.stamp) {
            object.retain(|v| v.value.stamp == w);
        }
    }
}

/// The version with the greatest stamp.
pub fn winner(object: &Object) -> Option<&Val> {
    object.values().max_by_key(|v| v.stamp)
}

/// The version a read returns: the live version with the greatest stamp, if the winner is
/// live or another sibling is; `None` when every version is a deletion (or there is none).
pub fn visible(object: &Object) -> Option<&Val> {
    object
        .values()
        .filter(|v| v.value.is_some())
        .max_by_key(|v| v.stamp)
        .filter(|_| winner(object).is_some_and(|w| w.value.is_some()) || object.len() > 1)
}

/// Whether versions from elsewhere are fit to merge: every stamp at most `max_wall_ns` and
/// every counter far from overflow (a peer's or a client's data must not be able to wreck
/// every replica's clock or counters).
pub fn sane(object: &Object, max_wall_ns: u64) -> bool {
    const MAX: u64 = 1 << 62;
    object.versions().iter().all(|v| {
        v.value.stamp.ts.wall_ns <= max_wall_ns
            && v.value.seq <= MAX
            && v.clock.dot.counter <= MAX
            && v.clock.past.iter().all(|(_, c)| c <= MAX)
    })
}

/// Whether every version is a deletion (and there is at least one): a tombstone.
pub fn is_tombstone(object: &Object) -> bool {
    !object.is_empty() && object.values().all(|v| v.value.is_none())
}

/// The greatest stamp of the versions.
pub fn max_stamp(object: &Object) -> Stamp {
    object.values().map(|v| v.stamp).max().unwrap_or_default()
}

/// The stream positions of the versions: a reader that saw them has seen these writes.
pub fn positions(object: &Object) -> VectorClock {
    VectorClock::from_entries(object.values().map(|v| (v.stamp.origin, v.seq)))
}

/// The causal context handed to clients: the versions' joint history, and the greatest stamp
/// among them (a write that supersedes them must be stamped above it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Every event the versions read include.
    pub clock: VectorClock,
    /// The greatest stamp of those versions.
    pub floor: Stamp,
}

/// Version byte of the context encoding.
const CONTEXT_V1: u8 = 1;

impl Context {
    /// The context of everything in `object`.
    pub fn of(object: &Object) -> Self {
        Context {
            clock: object.context(),
            floor: max_stamp(object),
        }
    }

    /// The opaque bytes given to clients.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CONTEXT_V1];
        out.extend(bincode::serialize(self).expect("a context serializes"));
        out
    }

    /// Reads the bytes of [`Context::encode`]; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first() {
            Some((&CONTEXT_V1, rest)) => bincode::deserialize(rest).ok(),
            _ => None,
        }
    }
}

/// Encodes an object for storage and the wire.
pub fn encode(object: &Object) -> Vec<u8> {
    bincode::serialize(object).expect("an object serializes")
}

/// Decodes an object.
pub fn decode(bytes: &[u8]) -> Option<Object> {
    bincode::deserialize(bytes).ok()
}

/// FNV-1a, 64 bits: a stable hash for digests (the same on every replica and build).
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp(wall: u64, origin: ReplicaId) -> Stamp {
        Stamp {
            ts: HlcTimestamp {
                wall_ns: wall,
                logical: 0,
            },
            origin,
        }
    }

    /// A write at `replica`: stamped above what its context covers, as the coordinator does
    /// (its hybrid clock never issues a timestamp twice: `unique` stands for that).
    fn write(
        o: &mut Object,
        replica: ReplicaId,
        ctx: &Context,
        wall: u64,
        unique: u32,
        value: Option<u8>,
        policy: Policy,
    ) {
        // Under last-writer-wins a write without a context supersedes what the replica has.
        let own;
        let ctx = if policy == Policy::LastWriterWins && ctx.clock.is_empty() {
            own = Context::of(o);
            &own
        } else {
            ctx
        };
        let floor = o
            .versions()
            .iter()
            .filter(|v| v.clock.covered_by(&ctx.clock))
            .map(|v| v.value.stamp)
            .max()
            .unwrap_or_default()
            .max(ctx.floor);
        let wall = wall.max(floor.ts.wall_ns + 1);
        // As the applier does: the dot is the write's position in its replica's stream, a
        // counter over every key (`unique` grows with every step of a test).
        let counter = u64::from(unique) + 1;
        assert!(counter > o.known(replica).max(ctx.clock.get(replica)));
        o.update_at(
            dialkv_consistency::clock::Dot { replica, counter },
            &ctx.clock,
            Val {
                stamp: Stamp {
                    ts: HlcTimestamp {
                        wall_ns: wall,
                        logical: unique,
                    },
                    origin: replica,
                },
                seq: counter,
                value: value.map(|v| vec![v]),
            },
        );
        settle(o, policy);
    }

    #[derive(Clone, Debug)]
    enum Step {
        Write {
            replica: usize,
            with_context: bool,
            wall: u64,
            value: Option<u8>,
        },
        Sync {
            from: usize,
            to: usize,
        },
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            prop_oneof![
                (
                    0usize..3,
                    any::<bool>(),
                    0u64..50,
                    proptest::option::of(any::<u8>())
                )
                    .prop_map(|(replica, with_context, wall, value)| Step::Write {
                        replica,
                        with_context,
                        wall,
                        value
                    }),
                (0usize..3, 0usize..3).prop_map(|(from, to)| Step::Sync { from, to }),
            ],
            0..30,
        )
    }

    fn run(steps: &[Step], policy: Policy) -> Vec<Object> {
        let mut replicas = vec![Object::new(), Object::new(), Object::new()];
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Write {
                    replica,
                    with_context,
                    wall,
                    value,
                } => {
                    let ctx = if *with_context {
                        Context::of(&replicas[*replica])
                    } else {
                        Context::default()
                    };
                    write(
                        &mut replicas[*replica],
                        *replica as u64 + 1,
                        &ctx,
                        *wall,
                        i as u32,
                        *value,
                        policy,
                    );
                }
                Step::Sync { from, to } => {
                    let other = replicas[*from].clone();
                    replicas[*to].sync(&other);
                    settle(&mut replicas[*to], policy);
                }
            }
        }
        replicas
    }

    proptest! {
        /// The winner's stamp at a replica never goes down, under either policy: the
        /// register order of ABD.
        #[test]
        fn the_winner_only_grows(steps in steps(), lww in any::<bool>()) {
            let policy = if lww { Policy::LastWriterWins } else { Policy::Siblings };
            for n in 0..=steps.len() {
                let before = run(&steps[..n], policy);
                let after = run(&steps[..(n + 1).min(steps.len())], policy);
                for (b, a) in before.iter().zip(&after) {
                    prop_assert!(max_stamp(b) <= max_stamp(a));
                }
            }
        }

        /// After every replica has synced with every other, they hold the same versions, and
        /// under last-writer-wins exactly one.
        #[test]
        fn replicas_converge(steps in steps(), lww in any::<bool>()) {
            let policy = if lww { Policy::LastWriterWins } else { Policy::Siblings };
            let mut replicas = run(&steps, policy);
            for _ in 0..2 {
                for from in 0..3 {
                    for to in 0..3 {
                        let other = replicas[from].clone();
                        replicas[to].sync(&other);
                        settle(&mut replicas[to], policy);
                    }
                }
            }
            prop_assert_eq!(&replicas[0], &replicas[1]);
            prop_assert_eq!(&replicas[1], &replicas[2]);
            if policy == Policy::LastWriterWins {
                prop_assert!(replicas[0].len() <= 1);
            }
        }

        /// Context and object encodings round-trip.
        #[test]
        fn encodings_round_trip(steps in steps()) {
            for o in run(&steps, Policy::Siblings) {
                prop_assert_eq!(decode(&encode(&o)).expect("decodes"), o.clone());
                let c = Context::of(&o);
                prop_assert_eq!(Context::decode(&c.encode()).expect("decodes"), c);
            }
        }
    }

    #[test]
    fn a_write_with_the_read_context_collapses_siblings() {
        let mut a = Object::new();
        let mut b = Object::new();
        write(
            &mut a,
            1,
            &Context::default(),
            10,
            0,
            Some(1),
            Policy::Siblings,
        );
        write(
            &mut b,
            2,
            &Context::default(),
            11,
            0,
            Some(2),
            Policy::Siblings,
        );
        a.sync(&b);
        assert_eq!(a.len(), 2, "concurrent writes are both kept");
        assert_eq!(visible(&a).and_then(|v| v.value.clone()), Some(vec![2]));
        let ctx = Context::of(&a);
        write(&mut a, 1, &ctx, 5, 1, Some(3), Policy::Siblings);
        assert_eq!(a.len(), 1);
        assert!(
            max_stamp(&a) > stamp(11, 2),
            "stamped above what it supersedes"
        );
    }

    #[test]
    fn revisions_follow_stamps() {
        let a = stamp(1_000_000, 1);
        let b = Stamp {
            ts: HlcTimestamp {
                wall_ns: 1_000_000,
                logical: 3,
            },
            origin: 1,
        };
        let c = stamp(2_000_000, 1);
        assert!(a.revision() < b.revision() && b.revision() < c.revision());
        assert!(Stamp::default().revision() > 0);
    }

    #[test]
    fn malformed_contexts_are_refused() {
        assert_eq!(Context::decode(b""), None);
        assert_eq!(Context::decode(b"\x02abc"), None);
        assert_eq!(Context::decode(b"\x01\xff"), None);
    }
}
