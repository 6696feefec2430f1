//! dialkv-consistency, "the referee": the pure consistency logic of dialkv. No I/O lives here
//! except in the `dialkv-check` binary.
//!
//! Model and shared types:
//! - [`history`]: the history model (clients' invocations and completions) and its stable
//!   JSON-lines format;
//! - [`verdict`]: the verdict and witness every checker returns;
//! - [`level`]: the consistency-level lattice and the session guarantees;
//! - [`clock`]: vector clocks, dotted version vectors, hybrid logical clocks.
//!
//! Checkers (each returns a [`verdict::Verdict`]):
//! - [`linearizable`] and [`sequential`]: register histories, per key, by search
//!   ([`register`] holds their shared model);
//! - [`session`]: the four session guarantees, on register and list-append histories;
//! - [`eventual`]: no thin-air reads, convergence of final reads;
//! - `elle`: Elle-style list-append and transactional isolation checkers;
//! - `causal`: causal consistency (CC, CCv);
//! - [`set`]: grow-only sets (lost, unexpected and, at linearizable, stale elements);
//! - [`bank`]: transfers between accounts (totals conserved, no negative balance).
//!
//! See `DESIGN.md` §4 (consistency levels) and §10 (verification).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bank;
pub mod causal;
pub mod clock;
pub mod elle;
pub mod eventual;
pub mod history;
pub mod level;
pub mod linearizable;
pub mod register;
pub mod sequential;
pub mod session;
pub mod session_token;
pub mod set;
pub mod verdict;
