//! dialkv-jepsen: a Jepsen-style stress harness for dialkv (DESIGN.md §10).
//!
//! A run starts a cluster of real `dialkv serve` processes, drives it with concurrent clients
//! running one workload, injects faults on a seeded schedule, records every operation as a
//! history in the referee's JSON-lines format, checks it with `dialkv-consistency`, and writes
//! a report a person can read. The pieces, bottom up:
//!
//! - [`cluster`]: process control of the nodes (start, SIGKILL and restart, SIGSTOP and
//!   SIGCONT, clock offsets through libfaketime), every process killed on drop, on a signal
//!   or on a panic;
//! - [`ports`]: the nodes' listening ports, chosen outside the kernel's ephemeral range so no
//!   outgoing connection takes one while its node is down (also used by the integration tests
//!   and the benchmarks);
//! - [`proxy`]: a TCP proxy on every node-to-node link, which can pass, drop or blackhole the
//!   link: the network partitions are made here, not through a flag in the server;
//! - [`leader`]: who leads, by asking every live node `Cluster/GetNodeStatus`;
//! - [`nemesis`]: the fault kinds, partition shapes, the seeded schedule of faults and heals,
//!   and the code that applies them to a cluster;
//! - [`recorder`]: the history being written: invocations and completions with monotonic
//!   timestamps, process ids retired after an indeterminate outcome;
//! - [`workload`]: what the clients do (`register`, `list-append`, `set`, `session`, `txn`,
//!   `bank`), how each operation maps onto the dialkv client (or, for transactions, the raw
//!   gRPC API), and which checker verifies which level;
//! - [`runner`]: one run from start to verdict; [`report`]: `verdict.json`, `index.html` and
//!   the plots; [`suite`]: the list of runs CI makes, with the self-test that must be caught.
//!
//! The binary `dialkv-jepsen` (src/main.rs) is the command line over [`runner`] and [`suite`].

pub mod cluster;
pub mod leader;
pub mod nemesis;
pub mod ports;
pub mod proxy;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod suite;
pub mod workload;
