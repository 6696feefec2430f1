//! Logical clocks: vector clocks, dotted version vectors and hybrid logical clocks.
//!
//! - [`VectorClock`] (Fidge 1988, Mattern 1989): one counter per replica; `≤` is the causal
//!   order (happened-before) on the events the clocks stand for; `merge` is the pointwise
//!   maximum, the least upper bound of that order.
//! - [`Dot`], [`DottedVersionVector`] and [`Siblings`] (Preguiça, Baquero, Almeida, Fonte,
//!   Gonçalves, "Dotted Version Vectors: Logical Clocks for Optimistic Replication", 2010;
//!   Almeida et al., "Scalable and Accurate Causality Tracking for Eventually Consistent
//!   Stores", DAIS 2014): the versions of one key in a leaderless (quorum) namespace, with
//!   exact concurrency detection even when one replica coordinates writes for many clients.
//! - [`Hlc`] (Kulkarni, Demirbas, Madappa, Avva, Leone, "Logical Physical Clocks and
//!   Consistent Snapshots in Globally Distributed Databases", OPODIS 2014): a timestamp close to
//!   physical time that never goes backwards and respects causality.
//!
//! All of them are pure: wall-clock readings are passed in by the caller. Each type states its
//! laws, and the tests check them with proptest.

mod dvv;
mod hlc;
mod vector;

pub use dvv::{Dot, DottedVersionVector, Siblings, Version};
pub use hlc::{Hlc, HlcTimestamp};
pub use vector::{ReplicaId, VectorClock};
