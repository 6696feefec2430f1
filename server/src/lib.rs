//! The dialkv replica server.
//!
//! Bottom up:
//! - [`storage`]: the engine seam (RocksDB, and memory for tests), the versioned keyspace and
//!   the single group-commit writer;
//! - [`limits`] and [`error`]: the input rules and the one table of error codes;
//! - [`service`]: the gRPC services of the public API over a [`service::Node`];
//! - [`server`]: starting and stopping a replica on listeners it is given;
//! - [`config`]: flags, environment and TOML file; [`metrics`] and [`admin`]: observability.
//!
//! `ARCHITECTURE.md` at the repository root walks through the design.

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod peer_stream;
pub mod quorum;
pub mod replication;
pub mod server;
pub mod service;
pub mod storage;
