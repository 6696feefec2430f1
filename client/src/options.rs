//! Per-call options: the namespace, the [`Consistency`] asked for and the deadline.
//!
//! A [`CallOptions`] left at its default uses the client's default namespace, the namespace's
//! default level (LINEARIZABLE) and the client's per-call timeout. See DESIGN.md §4 for what
//! each [`Level`] means in each replication protocol.

use bytes::Bytes;
use std::time::Duration;

use tokio::time::Instant;

use crate::proto;

/// A consistency level: a point between latency and guarantees. A request may be served at a
/// stronger level than asked for, never a weaker one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Level {
    /// Every operation appears to take effect at one instant between call and reply, in one
    /// order every client agrees on (Herlihy & Wing). The default.
    #[default]
    Linearizable,
    /// One order of operations respecting each session's order, possibly lagging real time.
    Sequential,
    /// Causal+ consistency: an operation is seen only after everything it depends on.
    Causal,
    /// Reads may be stale by at most the bound in [`Consistency`].
    BoundedStaleness,
    /// Reads may return any written value; replicas converge when writes stop.
    Eventual,
}

impl Level {
    /// Every level, strongest first.
    pub const ALL: [Level; 5] = [
        Level::Linearizable,
        Level::Sequential,
        Level::Causal,
        Level::BoundedStaleness,
        Level::Eventual,
    ];

    /// The wire enum.
    pub fn to_proto(self) -> proto::ConsistencyLevel {
        match self {
            Level::Linearizable => proto::ConsistencyLevel::Linearizable,
            Level::Sequential => proto::ConsistencyLevel::Sequential,
            Level::Causal => proto::ConsistencyLevel::Causal,
            Level::BoundedStaleness => proto::ConsistencyLevel::BoundedStaleness,
            Level::Eventual => proto::ConsistencyLevel::Eventual,
        }
    }

    /// The level of a wire value; UNSPECIFIED is LINEARIZABLE, an unknown number is `None`.
    pub fn from_proto(value: i32) -> Option<Level> {
        match proto::ConsistencyLevel::try_from(value).ok()? {
            proto::ConsistencyLevel::Unspecified | proto::ConsistencyLevel::Linearizable => {
                Some(Level::Linearizable)
            }
            proto::ConsistencyLevel::Sequential => Some(Level::Sequential),
            proto::ConsistencyLevel::Causal => Some(Level::Causal),
            proto::ConsistencyLevel::BoundedStaleness => Some(Level::BoundedStaleness),
            proto::ConsistencyLevel::Eventual => Some(Level::Eventual),
        }
    }

    /// The lower-case name used by `dialctl` and its JSON output (`bounded-staleness`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Linearizable => "linearizable",
            Level::Sequential => "sequential",
            Level::Causal => "causal",
            Level::BoundedStaleness => "bounded-staleness",
            Level::Eventual => "eventual",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The consistency asked for by one call: a level, its staleness bounds and, for quorum
/// namespaces, W/R overrides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Consistency {
    /// The level asked for.
    pub level: Level,
    /// For [`Level::BoundedStaleness`]: the largest staleness accepted in time (ms precision,
    /// at most one day).
    pub max_staleness: Option<Duration>,
    /// For [`Level::BoundedStaleness`]: the largest staleness accepted in versions.
    pub max_staleness_versions: Option<u64>,
    /// For quorum namespaces: how many replicas must acknowledge a write (W).
    pub write_quorum: Option<u32>,
    /// For quorum namespaces: how many replicas a read asks (R).
    pub read_quorum: Option<u32>,
}

impl Consistency {
    /// Consistency at `level` with no bounds or overrides.
    pub fn level(level: Level) -> Self {
        Consistency {
            level,
            ..Consistency::default()
        }
    }

    /// LINEARIZABLE.
    pub fn linearizable() -> Self {
        Self::level(Level::Linearizable)
    }

    /// SEQUENTIAL.
    pub fn sequential() -> Self {
        Self::level(Level::Sequential)
    }

    /// CAUSAL.
    pub fn causal() -> Self {
        Self::level(Level::Causal)
    }

    /// EVENTUAL.
    pub fn eventual() -> Self {
        Self::level(Level::Eventual)
    }

    /// BOUNDED_STALENESS of at most `max_staleness`.
    pub fn bounded_staleness(max_staleness: Duration) -> Self {
        Consistency {
            level: Level::BoundedStaleness,
            max_staleness: Some(max_staleness),
            ..Consistency::default()
        }
    }

    /// BOUNDED_STALENESS of at most `versions` versions behind the primary.
    pub fn bounded_staleness_versions(versions: u64) -> Self {
        Consistency {
            level: Level::BoundedStaleness,
            max_staleness_versions: Some(versions),
            ..Consistency::default()
        }
    }

    /// This consistency with the write quorum W set.
    pub fn with_write_quorum(mut self, w: u32) -> Self {
        self.write_quorum = Some(w);
        self
    }

    /// This consistency with the read quorum R set.
    pub fn with_read_quorum(mut self, r: u32) -> Self {
        self.read_quorum = Some(r);
        self
    }

    /// The wire message.
    pub fn to_proto(&self) -> proto::Consistency {
        proto::Consistency {
            level: self.level.to_proto() as i32,
            max_staleness_ms: self
                .max_staleness
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            max_staleness_versions: self.max_staleness_versions.unwrap_or(0),
            write_quorum: self.write_quorum.unwrap_or(0),
            read_quorum: self.read_quorum.unwrap_or(0),
        }
    }
}

impl From<Level> for Consistency {
    fn from(level: Level) -> Self {
        Consistency::level(level)
    }
}

/// Options of one call. Unset fields take the client's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// The namespace; the client's default namespace when unset.
    pub namespace: Option<String>,
    /// The consistency; the namespace default (LINEARIZABLE) when unset.
    pub consistency: Option<Consistency>,
    /// The longest the call may take, retries included; the client's timeout when unset.
    pub timeout: Option<Duration>,
    /// A deadline for the call, retries included; the earlier of this and `timeout` counts.
    pub deadline: Option<Instant>,
    /// Writes to quorum namespaces: the causal context of an earlier read
    /// (`GetOutput::context`); the write supersedes every version that read saw (with the
    /// siblings policy, this is how concurrent versions are resolved). Ignored elsewhere.
    pub context: Option<Bytes>,
}

impl CallOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// These options with the namespace set.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// These options with the consistency set.
    pub fn consistency(mut self, consistency: impl Into<Consistency>) -> Self {
        self.consistency = Some(consistency.into());
        self
    }

    /// These options with the timeout set.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// These options with the deadline set.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// These options with a causal context to supersede (see [`CallOptions::context`]).
    pub fn context(mut self, context: impl Into<Bytes>) -> Self {
        self.context = Some(context.into());
        self
    }
}
