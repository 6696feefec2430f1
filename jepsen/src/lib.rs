//! Jepsen-style stress harness for dialkv.
//!
//! This crate will hold the `dialkv-jepsen` binary: cluster control of real `dialkv`
//! processes, nemeses (kill, pause, network partition, clock skew), workloads (register,
//! list-append, set, session, txn, bank), history recording in the referee's JSON-lines format,
//! checking with `dialkv-consistency`, and a report per run. It arrives with the jepsen
//! harness issue; until then it holds no code.
