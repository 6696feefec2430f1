//! YCSB-style load generator for dialkv.
//!
//! This crate will hold the `dialkv-bench` binary: workloads A, B, C, W and T with uniform or
//! zipfian keys, closed- and open-loop load with HdrHistogram latencies, and targets behind one
//! trait (dialkv, etcd, Redis) compared in one run. It arrives with the benchmarks issue;
//! until then it holds no code.
