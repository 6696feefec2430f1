//! Targets: the systems compared, behind one pair of traits.
//!
//! A [`Target`] owns a cluster's lifecycle: it starts its server processes on loopback in a
//! fresh directory, says whether it can run a workload at all, hands out [`Store`]
//! connections, reports its server pids (for peak memory) and stops everything. A [`Store`] is
//! one client connection with the three operations the workloads need. The load generator
//! knows nothing else about a target.
//!
//! Targets: [`dialkv::Dialkv`] (`dialkv-pb`, `dialkv-quorum`), [`etcd::Etcd`] (`etcd`, with
//! the `etcd` cargo feature) and [`redis::Redis`] (`redis`, `redis-fast`).

pub mod dialkv;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod redis;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use dialkv_client::Level;
use futures::future::BoxFuture;

use crate::workload::Workload;

/// One client connection to a target.
///
/// Methods take `&mut self` because the underlying clients want it; [`Store::duplicate`]
/// makes another handle on the same connection, so several benchmark clients can share one.
pub trait Store: Send {
    /// Reads `key`; `Ok(false)` when it has no value.
    fn read<'a>(&'a mut self, key: &'a Bytes) -> BoxFuture<'a, Result<bool>>;

    /// Writes `key` = `value`, acknowledged as the target's durability settings say.
    fn update<'a>(&'a mut self, key: &'a Bytes, value: &'a Bytes) -> BoxFuture<'a, Result<()>>;

    /// Reads `reads` and writes `writes` in one atomic transaction.
    fn txn<'a>(
        &'a mut self,
        reads: &'a [Bytes],
        writes: &'a [(Bytes, Bytes)],
    ) -> BoxFuture<'a, Result<()>>;

    /// Another handle on the same connection.
    fn duplicate(&self) -> Box<dyn Store>;
}

/// Whether a started target can be measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Serving, loaded with nothing yet.
    Ready,
    /// Cannot serve this benchmark; the reason says why (the run skips it).
    Unavailable(String),
}

/// A system under test: a cluster the benchmark starts, measures and stops.
pub trait Target: Send {
    /// The name used on the command line and in reports (`etcd`, `dialkv-pb`, ...).
    fn name(&self) -> &str;

    /// The settings that matter for a fair reading: members, durability, read level.
    fn describe(&self) -> String;

    /// Why this target cannot run `workload`, if it cannot (checked before starting it).
    fn unsupported(&self, workload: Workload) -> Option<String>;

    /// Starts the cluster with its data under `dir` (fresh and empty) and waits until it
    /// serves requests.
    fn start<'a>(&'a mut self, dir: &'a Path) -> BoxFuture<'a, Result<Readiness>>;

    /// Opens one client connection.
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn Store>>>;

    /// The pids of the server processes now running.
    fn server_pids(&self) -> Vec<u32>;

    /// Stops every server process (also done on drop).
    fn stop(&mut self);
}

/// The read level and the settings of every target, from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The level dialkv reads (and writes) ask for; etcd reads are linearizable for
    /// LINEARIZABLE and serializable (local, possibly stale) for anything weaker.
    pub level: Level,
    /// The staleness bound when `level` is BOUNDED_STALENESS.
    pub staleness: Duration,
    /// The `dialkv` server binary.
    pub dialkv_bin: PathBuf,
    /// dialkv replicas; `None` picks 3 when the binary supports `--peers`, else 1.
    pub dialkv_nodes: Option<usize>,
    /// `--sync` of every dialkv replica (`always` or `batch`).
    pub dialkv_sync: String,
    /// dialkv-quorum's write quorum W (unset: by level, a majority for linearizable requests, else 1).
    pub quorum_w: Option<u32>,
    /// dialkv-quorum's read quorum R (unset: by level, a majority for linearizable requests, else 1).
    pub quorum_r: Option<u32>,
    /// etcd members.
    pub etcd_members: usize,
    /// Redis replicas besides the primary.
    pub redis_replicas: usize,
    /// Per-call timeout of every client.
    pub timeout: Duration,
}

/// Every target name `compare` accepts.
pub const TARGET_NAMES: [&str; 5] = ["dialkv-pb", "dialkv-quorum", "etcd", "redis", "redis-fast"];

/// Builds the target called `name`.
pub fn build(name: &str, settings: &Settings) -> Result<Box<dyn Target>> {
    Ok(match name {
        "dialkv-pb" => Box::new(dialkv::Dialkv::new(
            dialkv::Protocol::PrimaryBackup,
            settings,
        )),
        "dialkv-quorum" => Box::new(dialkv::Dialkv::new(dialkv::Protocol::Quorum, settings)),
        #[cfg(feature = "etcd")]
        "etcd" => Box::new(etcd::Etcd::new(settings)),
        #[cfg(not(feature = "etcd"))]
        "etcd" => Box::new(Missing {
            name: "etcd",
            reason: "this dialkv-bench was built without the `etcd` cargo feature",
        }),
        "redis" => Box::new(redis::Redis::new(redis::Fsync::Always, settings)),
        "redis-fast" => Box::new(redis::Redis::new(redis::Fsync::EverySec, settings)),
        other => bail!(
            "unknown target {other:?}; known targets: {}",
            TARGET_NAMES.join(", ")
        ),
    })
}

/// Retries `attempt` every 100 ms until it succeeds or `timeout` passes; the error is the
/// last attempt's.
pub(crate) async fn retry_until<T, F, Fut>(timeout: Duration, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context(format!("still failing after {timeout:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A target this build cannot drive (its cargo feature is off): it skips every workload.
#[cfg_attr(feature = "etcd", allow(dead_code))]
#[derive(Debug)]
struct Missing {
    name: &'static str,
    reason: &'static str,
}

impl Target for Missing {
    fn name(&self) -> &str {
        self.name
    }

    fn describe(&self) -> String {
        self.reason.to_string()
    }

    fn unsupported(&self, _workload: Workload) -> Option<String> {
        Some(self.reason.to_string())
    }

    fn start<'a>(&'a mut self, _dir: &'a Path) -> BoxFuture<'a, Result<Readiness>> {
        Box::pin(async { Ok(Readiness::Unavailable(self.reason.to_string())) })
    }

    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn Store>>> {
        Box::pin(async { bail!("{}", self.reason) })
    }

    fn server_pids(&self) -> Vec<u32> {
        Vec::new()
    }

    fn stop(&mut self) {}
}
