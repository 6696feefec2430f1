//! dialkv-consistency, "the referee": the pure consistency logic of dialkv. No I/O lives here
//! except in the `dialkv-check` binary.
//!
//! - [`history`]: the history model (clients' invocations and completions) and its stable
//!   JSON-lines format;
//! - [`verdict`]: the verdict and witness every checker returns.
//!
//! See `DESIGN.md` §4 (consistency levels) and §10 (verification).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod causal;
pub mod clock;
pub mod elle;
pub mod history;
pub mod level;
pub mod linearizable;
pub mod register;
pub mod sequential;
pub mod session;
pub mod verdict;
