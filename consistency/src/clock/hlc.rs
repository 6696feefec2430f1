//! Hybrid logical clocks (Kulkarni, Demirbas, Madappa, Avva, Leone, "Logical Physical Clocks
//! and Consistent Snapshots in Globally Distributed Databases", OPODIS 2014, Fig. 5).
//!
//! An [`HlcTimestamp`] is a pair `(l, c)`: `l` is the largest physical time the node has heard
//! of, `c` a logical counter that orders events sharing the same `l`. Timestamps are compared
//! lexicographically. The clock takes the wall-clock reading as a parameter, so it does no I/O
//! and can be driven by tests and simulations.
//!
//! Laws (the paper's Theorems 1–3, property-tested below):
//!
//! - monotone: every timestamp a clock returns is strictly greater than the one before, even
//!   when the wall clock goes back;
//! - causal: [`Hlc::update`] returns a timestamp strictly greater than both the clock's
//!   previous timestamp and the received one (`e hb f ⇒ hlc(e) < hlc(f)`);
//! - close to physical time: `l` is never below the wall-clock reading passed in, and exceeds
//!   it only by what other clocks were ahead (bounded by the clock offset ε).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A hybrid logical timestamp `(l, c)`, ordered lexicographically.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct HlcTimestamp {
    /// `l`: the largest physical time (ns) heard of.
    pub wall_ns: u64,
    /// `c`: orders events with the same `l`.
    pub logical: u32,
}

impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ns, self.logical)
    }
}

impl HlcTimestamp {
    /// Returns the smallest timestamp strictly greater than `self`. When the logical counter
    /// is exhausted it moves `l` on by one nanosecond, which keeps the order.
    fn successor(self) -> HlcTimestamp {
        match self.logical.checked_add(1) {
            Some(c) => HlcTimestamp {
                wall_ns: self.wall_ns,
                logical: c,
            },
            None => HlcTimestamp {
                wall_ns: self
                    .wall_ns
                    .checked_add(1)
                    .expect("an HLC cannot reach u64::MAX nanoseconds"),
                logical: 0,
            },
        }
    }
}

/// A hybrid logical clock: the last timestamp issued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hlc {
    last: HlcTimestamp,
}

impl Hlc {
    /// Returns a clock that has issued nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the last timestamp issued (or the zero timestamp).
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// Timestamps a local or send event, given the current wall-clock reading `wall_ns`
    /// (the paper's "send or local event" rule).
    pub fn now(&mut self, wall_ns: u64) -> HlcTimestamp {
        self.last = if wall_ns > self.last.wall_ns {
            HlcTimestamp {
                wall_ns,
                logical: 0,
            }
        } else {
            self.last.successor()
        };
        self.last
    }

    /// Timestamps the receipt of a message stamped `remote`, given the wall-clock reading
    /// (the paper's "receive event of message m" rule). The result is greater than both the
    /// previous timestamp and `remote`.
    pub fn update(&mut self, remote: HlcTimestamp, wall_ns: u64) -> HlcTimestamp {
        let local = self.last;
        let l = local.wall_ns.max(remote.wall_ns).max(wall_ns);
        self.last = if l == local.wall_ns && l == remote.wall_ns {
            local.max(remote).successor()
        } else if l == local.wall_ns {
            local.successor()
        } else if l == remote.wall_ns {
            remote.successor()
        } else {
            HlcTimestamp {
                wall_ns: l,
                logical: 0,
            }
        };
        self.last
    }

    /// Returns true when `remote` is more than `max_offset_ns` ahead of the wall clock: a
    /// caller may reject such a message rather than let a runaway clock drag its own `l`
    /// forward (the paper's ε bound; CockroachDB's max-offset check).
    pub fn exceeds_offset(remote: HlcTimestamp, wall_ns: u64, max_offset_ns: u64) -> bool {
        remote.wall_ns.saturating_sub(wall_ns) > max_offset_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_the_paper() {
        let mut a = Hlc::new();
        assert_eq!(
            a.now(10),
            HlcTimestamp {
                wall_ns: 10,
                logical: 0
            }
        );
        assert_eq!(
            a.now(10),
            HlcTimestamp {
                wall_ns: 10,
                logical: 1
            }
        );
        // The wall clock goes back: l stays, c counts.
        assert_eq!(
            a.now(5),
            HlcTimestamp {
                wall_ns: 10,
                logical: 2
            }
        );
        // A message from the future: l jumps to it, c continues after the remote one.
        let remote = HlcTimestamp {
            wall_ns: 20,
            logical: 7,
        };
        assert_eq!(
            a.update(remote, 12),
            HlcTimestamp {
                wall_ns: 20,
                logical: 8
            }
        );
        // Same l on both sides: after the larger counter.
        let remote = HlcTimestamp {
            wall_ns: 20,
            logical: 3,
        };
        assert_eq!(
            a.update(remote, 12),
            HlcTimestamp {
                wall_ns: 20,
                logical: 9
            }
        );
        // The wall clock overtakes everything: c resets.
        assert_eq!(
            a.update(remote, 30),
            HlcTimestamp {
                wall_ns: 30,
                logical: 0
            }
        );
        assert!(Hlc::exceeds_offset(
            HlcTimestamp {
                wall_ns: 100,
                logical: 0
            },
            10,
            50
        ));
        assert!(!Hlc::exceeds_offset(
            HlcTimestamp {
                wall_ns: 50,
                logical: 0
            },
            10,
            50
        ));
    }

    #[test]
    fn counter_overflow_moves_l() {
        let mut a = Hlc::new();
        a.update(
            HlcTimestamp {
                wall_ns: 5,
                logical: u32::MAX,
            },
            0,
        );
        assert_eq!(
            a.last(),
            HlcTimestamp {
                wall_ns: 6,
                logical: 0
            }
        );
    }

    #[derive(Clone, Debug)]
    enum Step {
        Local(u64),
        Receive(HlcTimestamp, u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u64..50).prop_map(Step::Local),
            ((0u64..60, 0u32..4), 0u64..50).prop_map(|((l, c), w)| Step::Receive(
                HlcTimestamp {
                    wall_ns: l,
                    logical: c
                },
                w
            )),
        ]
    }

    proptest! {
        #[test]
        fn monotone_even_when_the_wall_clock_goes_back(steps in proptest::collection::vec(step(), 1..40)) {
            let mut clock = Hlc::new();
            let mut prev = clock.last();
            for s in steps {
                let (ts, wall) = match s {
                    Step::Local(w) => (clock.now(w), w),
                    Step::Receive(r, w) => {
                        let ts = clock.update(r, w);
                        prop_assert!(ts > r, "update {} must exceed remote {}", ts, r);
                        (ts, w)
                    }
                };
                prop_assert!(ts > prev, "{} after {}", ts, prev);
                prop_assert!(ts.wall_ns >= wall, "l below the wall clock");
                prev = ts;
            }
        }

        #[test]
        fn update_exceeds_both_inputs(l1 in 0u64..30, c1 in 0u32..3, l2 in 0u64..30, c2 in 0u32..3, w in 0u64..30) {
            let mut clock = Hlc::new();
            clock.update(HlcTimestamp { wall_ns: l1, logical: c1 }, 0);
            let before = clock.last();
            let remote = HlcTimestamp { wall_ns: l2, logical: c2 };
            let after = clock.update(remote, w);
            prop_assert!(after > before && after > remote);
            prop_assert_eq!(after.wall_ns, l1.max(l2).max(w));
        }
    }
}
