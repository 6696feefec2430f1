//! The consistency-level lattice and the session guarantees a request may ask for.
//!
//! Every dialkv read and write names a [`ConsistencyLevel`] (DESIGN.md §4). A replica may serve
//! a request at a stronger level than asked, never a weaker one; [`ConsistencyLevel::is_at_least`]
//! is the test. The levels form a lattice under "at least as strong as" (`≥`):
//!
//! ```text
//!                 Linearizable
//!                /            \
//!          Sequential     BoundedStaleness(b)   (a chain: tighter bounds are stronger)
//!              |               |
//!            Causal            |
//!                \            /
//!                  Eventual
//! ```
//!
//! - Linearizable ≥ everything: it is sequential consistency that also respects real time
//!   (Herlihy, Wing 1990), so its reads are never stale (staleness 0).
//! - Sequential ≥ Causal ≥ Eventual: a sequential execution is causal (Lamport 1979;
//!   Ahamad et al., "Causal memory", 1995), and causal+ includes convergence (Lloyd et al.,
//!   COPS, SOSP 2011).
//! - BoundedStaleness(b) is incomparable with Sequential and Causal: a sequential read may be
//!   arbitrarily old, and a bounded-stale read need not respect causality. A bound `b1` is
//!   at least as strong as `b2` when it implies it: every limit `b2` sets, `b1` sets no looser.
//!
//! Laws ([`ConsistencyLevel::is_at_least`] is a partial order, [`ConsistencyLevel::join`] and
//! [`ConsistencyLevel::meet`] are its least upper and greatest lower bounds): reflexive,
//! antisymmetric, transitive; `a.join(b).is_at_least(a)`, and any `c ≥ a, c ≥ b` has
//! `c ≥ a.join(b)`; dually for `meet`. Tested below.
//!
//! [`SessionGuarantees`] are the four client-centric guarantees of Terry et al., "Session
//! Guarantees for Weakly Consistent Replicated Data" (PDIS 1994, Bayou): read-your-writes,
//! monotonic reads, monotonic writes, writes-follow-reads. Each can be switched on or off per
//! session; the default is all on. The checker for them is [`crate::session`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A staleness limit: how far behind the most recent write a read may be. At least one of the
/// two limits is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StalenessBound {
    /// Maximum lag in milliseconds, if limited.
    pub max_lag_ms: Option<u64>,
    /// Maximum lag in versions (writes), if limited.
    pub max_versions: Option<u64>,
}

impl StalenessBound {
    /// Returns true when every limit of `other` is implied by a limit of `self`.
    pub fn implies(&self, other: &StalenessBound) -> bool {
        fn dim(mine: Option<u64>, theirs: Option<u64>) -> bool {
            match (mine, theirs) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a <= b,
            }
        }
        dim(self.max_lag_ms, other.max_lag_ms) && dim(self.max_versions, other.max_versions)
    }
}

/// A consistency level a request can name. See the module docs for the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencyLevel {
    /// Linearizability (Herlihy, Wing 1990): one total order that respects real time.
    Linearizable,
    /// Sequential consistency (Lamport 1979): one total order that respects each session's
    /// order.
    Sequential,
    /// Causal+ consistency (Lloyd et al. 2011): causally related operations are seen in
    /// order by everyone, and replicas converge.
    Causal,
    /// Reads lag the latest write by at most the bound.
    BoundedStaleness(StalenessBound),
    /// Replicas converge once writes stop; no ordering promise before that.
    Eventual,
}

impl ConsistencyLevel {
    /// Returns true when a request served at `self` satisfies a request for `required`, i.e.
    /// `self ≥ required` in the lattice.
    pub fn is_at_least(&self, required: &ConsistencyLevel) -> bool {
        use ConsistencyLevel::*;
        match (self, required) {
            (Linearizable, _) => true,
            (_, Eventual) => true,
            (Sequential, Sequential | Causal) => true,
            (Causal, Causal) => true,
            (BoundedStaleness(a), BoundedStaleness(b)) => a.implies(b),
            _ => false,
        }
    }

    /// Returns the weakest level at least as strong as both (least upper bound).
    pub fn join(&self, other: &ConsistencyLevel) -> ConsistencyLevel {
        use ConsistencyLevel::*;
        if self.is_at_least(other) {
            return *self;
        }
        if other.is_at_least(self) {
            return *other;
        }
        match (self, other) {
            (BoundedStaleness(a), BoundedStaleness(b)) => BoundedStaleness(StalenessBound {
                max_lag_ms: min_limit(a.max_lag_ms, b.max_lag_ms),
                max_versions: min_limit(a.max_versions, b.max_versions),
            }),
            // A bounded level and one of Sequential/Causal: only Linearizable is above both.
            _ => Linearizable,
        }
    }

    /// Returns the strongest level both satisfy (greatest lower bound).
    pub fn meet(&self, other: &ConsistencyLevel) -> ConsistencyLevel {
        use ConsistencyLevel::*;
        if self.is_at_least(other) {
            return *other;
        }
        if other.is_at_least(self) {
            return *self;
        }
        match (self, other) {
            (BoundedStaleness(a), BoundedStaleness(b)) => {
                let bound = StalenessBound {
                    max_lag_ms: max_limit(a.max_lag_ms, b.max_lag_ms),
                    max_versions: max_limit(a.max_versions, b.max_versions),
                };
                if bound.max_lag_ms.is_none() && bound.max_versions.is_none() {
                    Eventual
                } else {
                    BoundedStaleness(bound)
                }
            }
            _ => Eventual,
        }
    }

    /// Returns the session guarantees the level gives by itself, whatever the session asks:
    /// all four for Linearizable, Sequential and Causal (a causal order contains each
    /// session's order and the reads-from order; Terry et al. §5 and Brzezinski et al. 2004),
    /// none for BoundedStaleness and Eventual.
    pub fn implied_guarantees(&self) -> SessionGuarantees {
        match self {
            ConsistencyLevel::Linearizable
            | ConsistencyLevel::Sequential
            | ConsistencyLevel::Causal => SessionGuarantees::ALL,
            ConsistencyLevel::BoundedStaleness(_) | ConsistencyLevel::Eventual => {
                SessionGuarantees::NONE
            }
        }
    }
}

fn min_limit(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_limit(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => None,
    }
}

impl fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsistencyLevel::Linearizable => write!(f, "linearizable"),
            ConsistencyLevel::Sequential => write!(f, "sequential"),
            ConsistencyLevel::Causal => write!(f, "causal"),
            ConsistencyLevel::Eventual => write!(f, "eventual"),
            ConsistencyLevel::BoundedStaleness(b) => {
                let mut parts = Vec::new();
                if let Some(ms) = b.max_lag_ms {
                    parts.push(format!("{ms}ms"));
                }
                if let Some(k) = b.max_versions {
                    parts.push(format!("{k}v"));
                }
                write!(f, "bounded-staleness({})", parts.join(","))
            }
        }
    }
}

/// A level or guarantee list could not be parsed; the message lists what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseLevelError(String);

impl FromStr for ConsistencyLevel {
    type Err = ParseLevelError;

    /// Parses `linearizable`, `sequential`, `causal`, `eventual`, or
    /// `bounded-staleness(100ms)`, `bounded-staleness(5v)`, `bounded-staleness(100ms,5v)`.
    /// Case-insensitive; `_` may replace `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        match norm.as_str() {
            "linearizable" | "strong" => return Ok(ConsistencyLevel::Linearizable),
            "sequential" => return Ok(ConsistencyLevel::Sequential),
            "causal" => return Ok(ConsistencyLevel::Causal),
            "eventual" => return Ok(ConsistencyLevel::Eventual),
            _ => {}
        }
        let bad = || {
            ParseLevelError(format!(
                "unknown consistency level {s:?}: expected linearizable, sequential, causal, \
                 eventual or bounded-staleness(<N>ms[,<K>v])"
            ))
        };
        let inner = norm
            .strip_prefix("bounded-staleness(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(bad)?;
        let mut bound = StalenessBound {
            max_lag_ms: None,
            max_versions: None,
        };
        for part in inner.split(',').map(str::trim) {
            if let Some(ms) = part.strip_suffix("ms") {
                bound.max_lag_ms = Some(ms.parse().map_err(|_| bad())?);
            } else if let Some(k) = part.strip_suffix('v') {
                bound.max_versions = Some(k.parse().map_err(|_| bad())?);
            } else {
                return Err(bad());
            }
        }
        if bound.max_lag_ms.is_none() && bound.max_versions.is_none() {
            return Err(bad());
        }
        Ok(ConsistencyLevel::BoundedStaleness(bound))
    }
}

/// One of the four session guarantees of Terry et al. (1994).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionGuarantee {
    /// A read sees every write the same session made before it (RYW).
    ReadYourWrites,
    /// A session's successive reads never go back in time (MR).
    MonotonicReads,
    /// A session's writes are applied everywhere in session order (MW).
    MonotonicWrites,
    /// A write is ordered after the writes its session had read (WFR).
    WritesFollowReads,
}

impl SessionGuarantee {
    /// All four, in the order Terry et al. list them.
    pub const EVERY: [SessionGuarantee; 4] = [
        SessionGuarantee::ReadYourWrites,
        SessionGuarantee::MonotonicReads,
        SessionGuarantee::MonotonicWrites,
        SessionGuarantee::WritesFollowReads,
    ];

    /// Returns the short name used in flags: `ryw`, `mr`, `mw`, `wfr`.
    pub fn short_name(&self) -> &'static str {
        match self {
            SessionGuarantee::ReadYourWrites => "ryw",
            SessionGuarantee::MonotonicReads => "mr",
            SessionGuarantee::MonotonicWrites => "mw",
            SessionGuarantee::WritesFollowReads => "wfr",
        }
    }
}

/// The set of session guarantees a session asks for. Default: all four (DESIGN.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionGuarantees {
    /// Read-your-writes.
    pub read_your_writes: bool,
    /// Monotonic reads.
    pub monotonic_reads: bool,
    /// Monotonic writes.
    pub monotonic_writes: bool,
    /// Writes-follow-reads.
    pub writes_follow_reads: bool,
}

impl SessionGuarantees {
    /// All four guarantees.
    pub const ALL: SessionGuarantees = SessionGuarantees {
        read_your_writes: true,
        monotonic_reads: true,
        monotonic_writes: true,
        writes_follow_reads: true,
    };

    /// No guarantee.
    pub const NONE: SessionGuarantees = SessionGuarantees {
        read_your_writes: false,
        monotonic_reads: false,
        monotonic_writes: false,
        writes_follow_reads: false,
    };

    /// Returns true when `g` is switched on.
    pub fn contains(&self, g: SessionGuarantee) -> bool {
        match g {
            SessionGuarantee::ReadYourWrites => self.read_your_writes,
            SessionGuarantee::MonotonicReads => self.monotonic_reads,
            SessionGuarantee::MonotonicWrites => self.monotonic_writes,
            SessionGuarantee::WritesFollowReads => self.writes_follow_reads,
        }
    }

    /// Switches `g` on.
    pub fn insert(&mut self, g: SessionGuarantee) {
        match g {
            SessionGuarantee::ReadYourWrites => self.read_your_writes = true,
            SessionGuarantee::MonotonicReads => self.monotonic_reads = true,
            SessionGuarantee::MonotonicWrites => self.monotonic_writes = true,
            SessionGuarantee::WritesFollowReads => self.writes_follow_reads = true,
        }
    }

    /// Returns the guarantees switched on, in Terry et al.'s order.
    pub fn iter(&self) -> impl Iterator<Item = SessionGuarantee> + '_ {
        SessionGuarantee::EVERY
            .into_iter()
            .filter(|g| self.contains(*g))
    }

    /// Returns true when every guarantee in `other` is also in `self`.
    pub fn covers(&self, other: &SessionGuarantees) -> bool {
        other.iter().all(|g| self.contains(g))
    }
}

impl Default for SessionGuarantees {
    fn default() -> Self {
        SessionGuarantees::ALL
    }
}

impl fmt::Display for SessionGuarantees {
    /// Writes the canonical flag list, e.g. `ryw,mr`; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(|g| g.short_name()).collect();
        if names.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", names.join(","))
        }
    }
}

impl FromStr for SessionGuarantees {
    type Err = ParseLevelError;

    /// Parses a comma-separated list of `ryw` (also `rywr`, `read-your-writes`), `mr`
    /// (`monotonic-reads`), `mw` (`monotonic-writes`), `wfr` (`writes-follow-reads`), or
    /// `all` / `none`. Case-insensitive; the empty string is `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = SessionGuarantees::NONE;
        for part in s
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase().replace('_', "-"))
        {
            match part.as_str() {
                "" | "none" => {}
                "all" => out = SessionGuarantees::ALL,
                "ryw" | "rywr" | "read-your-writes" => out.insert(SessionGuarantee::ReadYourWrites),
                "mr" | "monotonic-reads" => out.insert(SessionGuarantee::MonotonicReads),
                "mw" | "monotonic-writes" => out.insert(SessionGuarantee::MonotonicWrites),
                "wfr" | "writes-follow-reads" => out.insert(SessionGuarantee::WritesFollowReads),
                other => {
                    return Err(ParseLevelError(format!(
                        "unknown session guarantee {other:?}: expected ryw (rywr), mr, mw, wfr, all or none"
                    )))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ConsistencyLevel::*;

    fn bounded(ms: Option<u64>, k: Option<u64>) -> ConsistencyLevel {
        BoundedStaleness(StalenessBound {
            max_lag_ms: ms,
            max_versions: k,
        })
    }

    fn level() -> impl Strategy<Value = ConsistencyLevel> {
        let limit = proptest::option::of(0u64..5);
        prop_oneof![
            Just(Linearizable),
            Just(Sequential),
            Just(Causal),
            Just(Eventual),
            (limit.clone(), limit)
                .prop_filter("at least one limit", |(a, b)| a.is_some() || b.is_some())
                .prop_map(|(a, b)| bounded(a, b)),
        ]
    }

    #[test]
    fn the_chain_and_the_incomparable_pairs() {
        assert!(Linearizable.is_at_least(&Sequential));
        assert!(Sequential.is_at_least(&Causal));
        assert!(Causal.is_at_least(&Eventual));
        assert!(Linearizable.is_at_least(&bounded(Some(10), None)));
        assert!(!Sequential.is_at_least(&bounded(Some(10), None)));
        assert!(!bounded(Some(0), Some(0)).is_at_least(&Causal));
        assert!(bounded(Some(5), Some(1)).is_at_least(&bounded(Some(10), None)));
        assert!(!bounded(Some(5), None).is_at_least(&bounded(Some(10), Some(3))));
        assert!(!Eventual.is_at_least(&Causal));
        assert_eq!(Causal.join(&bounded(Some(1), None)), Linearizable);
        assert_eq!(Causal.meet(&bounded(Some(1), None)), Eventual);
        assert_eq!(
            bounded(Some(5), None).join(&bounded(None, Some(2))),
            bounded(Some(5), Some(2))
        );
        assert_eq!(
            bounded(Some(5), None).meet(&bounded(None, Some(2))),
            Eventual
        );
    }

    #[test]
    fn levels_parse_and_print() {
        for s in [
            "linearizable",
            "sequential",
            "causal",
            "eventual",
            "bounded-staleness(100ms)",
            "bounded-staleness(3v)",
            "bounded-staleness(100ms,3v)",
        ] {
            let l: ConsistencyLevel = s.parse().expect("parses");
            assert_eq!(l.to_string(), s);
        }
        assert_eq!("STRONG".parse::<ConsistencyLevel>(), Ok(Linearizable));
        assert!("bounded-staleness()".parse::<ConsistencyLevel>().is_err());
        assert!("serializable".parse::<ConsistencyLevel>().is_err());
    }

    #[test]
    fn guarantees_parse_and_print() {
        let g: SessionGuarantees = "rywr,mr,mw,wfr".parse().expect("parses");
        assert_eq!(g, SessionGuarantees::ALL);
        assert_eq!(g.to_string(), "ryw,mr,mw,wfr");
        let g: SessionGuarantees = "MR, wfr".parse().expect("parses");
        assert!(g.monotonic_reads && g.writes_follow_reads);
        assert!(!g.read_your_writes && !g.monotonic_writes);
        assert_eq!("".parse::<SessionGuarantees>(), Ok(SessionGuarantees::NONE));
        assert_eq!(SessionGuarantees::NONE.to_string(), "none");
        assert!("ryw,xx".parse::<SessionGuarantees>().is_err());
        assert!(SessionGuarantees::ALL.covers(&g));
        assert!(!g.covers(&SessionGuarantees::ALL));
        assert_eq!(Causal.implied_guarantees(), SessionGuarantees::ALL);
        assert_eq!(Eventual.implied_guarantees(), SessionGuarantees::NONE);
    }

    proptest! {
        #[test]
        fn at_least_is_a_partial_order(a in level(), b in level(), c in level()) {
            prop_assert!(a.is_at_least(&a));
            if a.is_at_least(&b) && b.is_at_least(&a) {
                prop_assert_eq!(a, b);
            }
            if a.is_at_least(&b) && b.is_at_least(&c) {
                prop_assert!(a.is_at_least(&c));
            }
        }

        #[test]
        fn join_and_meet_are_bounds(a in level(), b in level(), c in level()) {
            let j = a.join(&b);
            prop_assert!(j.is_at_least(&a) && j.is_at_least(&b));
            if c.is_at_least(&a) && c.is_at_least(&b) {
                prop_assert!(c.is_at_least(&j), "{} {} {} join {}", a, b, c, j);
            }
            let m = a.meet(&b);
            prop_assert!(a.is_at_least(&m) && b.is_at_least(&m));
            if a.is_at_least(&c) && b.is_at_least(&c) {
                prop_assert!(m.is_at_least(&c), "{} {} {} meet {}", a, b, c, m);
            }
        }

        #[test]
        fn display_round_trips(a in level()) {
            prop_assert_eq!(a.to_string().parse::<ConsistencyLevel>(), Ok(a));
        }
    }
}
