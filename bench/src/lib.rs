//! `dialkv-bench`: a YCSB-style load generator that measures dialkv next to etcd and Redis in
//! one run, on the same machine, with the same clients.
//!
//! Bottom up:
//! - [`workload`]: the operation mixes (YCSB A, B, C, plus W and T), uniform and zipfian keys.
//! - [`schedule`]: closed loop, or a fixed-rate open loop whose latencies count from each
//!   operation's intended start (no coordinated omission).
//! - [`runner`]: clients as tokio tasks, per-client HdrHistograms, warm-up excluded.
//! - [`target`]: the systems under test behind [`target::Target`] and [`target::Store`]:
//!   dialkv (primary-backup or quorum, any consistency level), etcd, Redis.
//! - [`process`]: the server processes a target starts, always stopped (drop, Ctrl-C, panic).
//! - [`compare`]: the `compare` command; [`report`], [`plot`] and [`machine`] present it.
//!
//! Fair settings are documented in `bench/README.md`.

pub mod cli;
pub mod compare;
pub mod machine;
pub mod plot;
pub mod process;
pub mod progress;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod target;
pub mod workload;
