//! The dialkv targets: `dialkv-pb` (a primary-backup namespace) and `dialkv-quorum` (a
//! leaderless quorum namespace), both on a cluster of `dialkv serve` processes.
//!
//! The cluster has `--dialkv-nodes` replicas; by default 3 when the binary understands
//! `--peers` (primary-backup replication), else 1. Every replica is started with the same
//! `--peers id=addr,...` map, so they form one Raft group; the client gets every replica as an
//! endpoint and follows leader hints. `dialkv-quorum` creates a quorum namespace and reports
//! itself unavailable, with the server's message, when the server refuses to.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use dialkv_client::{CallOptions, Client, Consistency, Level, NamespaceSpec, TxnOp};
use futures::future::BoxFuture;

use super::{retry_until, Readiness, Settings, Store, Target};
use crate::process::{wait_for_log, ServerProcess};
use crate::workload::Workload;

/// How long a replica may take to start serving, and a cluster to accept a first write.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The namespace `dialkv-quorum` creates.
const QUORUM_NAMESPACE: &str = "bench-quorum";

/// Which replication protocol the benchmark's namespace uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The `default` namespace: primary-backup on Raft.
    PrimaryBackup,
    /// A namespace created with the quorum protocol.
    Quorum,
}

/// A dialkv cluster.
#[derive(Debug)]
pub struct Dialkv {
    protocol: Protocol,
    settings: Settings,
    replicas: Vec<ServerProcess>,
    endpoints: Vec<String>,
    /// The replica count actually started (known after `start`).
    nodes: Option<usize>,
}

impl Dialkv {
    /// A target of `protocol` with `settings` (nothing starts yet).
    pub fn new(protocol: Protocol, settings: &Settings) -> Self {
        Dialkv {
            protocol,
            settings: settings.clone(),
            replicas: Vec::new(),
            endpoints: Vec::new(),
            nodes: None,
        }
    }

    fn consistency(&self) -> Consistency {
        match self.settings.level {
            Level::BoundedStaleness => Consistency::bounded_staleness(self.settings.staleness),
            level => Consistency::level(level),
        }
    }

    fn namespace(&self) -> &str {
        match self.protocol {
            Protocol::PrimaryBackup => dialkv_client::client::DEFAULT_NAMESPACE,
            Protocol::Quorum => QUORUM_NAMESPACE,
        }
    }

    fn client(&self) -> Result<Client> {
        Client::builder()
            .endpoints(self.endpoints.iter().cloned())
            .namespace(self.namespace())
            .timeout(self.settings.timeout)
            .build()
            .context("building a dialkv client")
    }

    async fn start_cluster(&mut self, dir: &Path) -> Result<Readiness> {
        let peers_supported = supports_peers(&self.settings.dialkv_bin)?;
        let nodes = self
            .settings
            .dialkv_nodes
            .unwrap_or(if peers_supported { 3 } else { 1 })
            .max(1);
        if nodes > 1 && !peers_supported {
            return Ok(Readiness::Unavailable(format!(
                "{} has no --peers flag (no replication yet), so it cannot run {nodes} replicas; \
                 use --dialkv-nodes 1",
                self.settings.dialkv_bin.display()
            )));
        }
        self.nodes = Some(nodes);
        let ports = dialkv_jepsen::ports::listen_ports(2 * nodes)?;
        let listen: Vec<String> = ports[..nodes]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let peers = listen
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("{}={addr}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        for (i, addr) in listen.iter().enumerate() {
            let id = i + 1;
            let mut args = vec![
                "serve".to_string(),
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                addr.clone(),
                "--admin".into(),
                format!("127.0.0.1:{}", ports[nodes + i]),
                "--data-dir".into(),
                dir.join(format!("replica-{id}")).display().to_string(),
                "--sync".into(),
                self.settings.dialkv_sync.clone(),
            ];
            if nodes > 1 {
                args.extend(["--peers".to_string(), peers.clone()]);
            }
            let log = dir.join(format!("replica-{id}.log"));
            self.replicas.push(ServerProcess::spawn(
                &format!("dialkv replica {id}"),
                &self.settings.dialkv_bin,
                &args,
                &[("RUST_LOG", "warn")],
                &log,
            )?);
        }
        for replica in &mut self.replicas {
            wait_for_log(replica, "serving gRPC on", START_TIMEOUT).await?;
        }
        self.endpoints = listen;

        // A first write through the default namespace proves a leader is elected.
        let client = self.client()?;
        let probe = Client::builder()
            .endpoints(self.endpoints.iter().cloned())
            .timeout(Duration::from_secs(2))
            .build()?;
        retry_until(START_TIMEOUT, || async {
            probe
                .put("dialkv-bench-probe", "ready")
                .await
                .map(|_| ())
                .map_err(|e| anyhow!("probe write: {e}"))
        })
        .await?;
        if self.protocol == Protocol::Quorum {
            let mut spec =
                NamespaceSpec::new(QUORUM_NAMESPACE).protocol(dialkv_client::Protocol::Quorum);
            spec.write_quorum = self.settings.quorum_w;
            spec.read_quorum = self.settings.quorum_r;
            if let Err(e) = probe.create_namespace(&spec).await {
                return Ok(Readiness::Unavailable(format!(
                    "the server refuses a quorum namespace: {e}"
                )));
            }
            retry_until(START_TIMEOUT, || async {
                client
                    .put("dialkv-bench-probe", "ready")
                    .await
                    .map(|_| ())
                    .map_err(|e| anyhow!("probe write in {QUORUM_NAMESPACE}: {e}"))
            })
            .await?;
        }
        Ok(Readiness::Ready)
    }
}

/// Whether `dialkv serve --help` lists `--peers`.
pub fn supports_peers(binary: &Path) -> Result<bool> {
    let out = Command::new(binary)
        .args(["serve", "--help"])
        .output()
        .with_context(|| format!("running {} serve --help", binary.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("--peers"))
}

/// The dialkv binary to use: `$DIALKV_BIN`, else a release build, else a debug build in the
/// shared target directory, else `dialkv` on the PATH.
pub fn default_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DIALKV_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("DIALKV_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/dialkv-target"));
    for profile in ["release", "debug"] {
        let candidate = target.join(profile).join("dialkv");
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("dialkv")
}

impl Target for Dialkv {
    fn name(&self) -> &str {
        match self.protocol {
            Protocol::PrimaryBackup => "dialkv-pb",
            Protocol::Quorum => "dialkv-quorum",
        }
    }

    fn describe(&self) -> String {
        let nodes = match (self.nodes, self.settings.dialkv_nodes) {
            (Some(n), _) | (None, Some(n)) => n.to_string(),
            (None, None) => "3 (1 without --peers)".into(),
        };
        let protocol = match self.protocol {
            Protocol::PrimaryBackup => "primary-backup".to_string(),
            Protocol::Quorum => format!(
                "quorum W={} R={}",
                self.settings
                    .quorum_w
                    .map_or("by level".into(), |w| w.to_string()),
                self.settings
                    .quorum_r
                    .map_or("by level".into(), |r| r.to_string())
            ),
        };
        format!(
            "{nodes} replica(s), {protocol}, --sync {}, reads {}",
            self.settings.dialkv_sync, self.settings.level
        )
    }

    fn unsupported(&self, workload: Workload) -> Option<String> {
        (workload.needs_transactions() && self.protocol == Protocol::Quorum)
            .then(|| "quorum namespaces have no transactions".to_string())
    }

    fn start<'a>(&'a mut self, dir: &'a Path) -> BoxFuture<'a, Result<Readiness>> {
        Box::pin(self.start_cluster(dir))
    }

    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn Store>>> {
        Box::pin(async move {
            let store = DialkvStore {
                client: self.client()?,
                read: CallOptions::new().consistency(self.consistency()),
                // Primary-backup writes always go through the log; a quorum namespace's
                // writes take the level too (EVENTUAL: W of the namespace, 1 by default).
                write: match self.protocol {
                    Protocol::PrimaryBackup => CallOptions::new(),
                    Protocol::Quorum => CallOptions::new().consistency(self.consistency()),
                },
            };
            Ok(Box::new(store) as Box<dyn Store>)
        })
    }

    fn server_pids(&self) -> Vec<u32> {
        self.replicas
            .iter()
            .filter_map(ServerProcess::pid)
            .collect()
    }

    fn stop(&mut self) {
        for replica in &mut self.replicas {
            replica.stop();
        }
        self.replicas.clear();
    }
}

/// One dialkv client (its own HTTP/2 connection per replica).
#[derive(Clone, Debug)]
struct DialkvStore {
    client: Client,
    /// Reads ask for the configured level.
    read: CallOptions,
    /// Writes: primary-backup through the log; quorum at the configured level.
    write: CallOptions,
}

impl Store for DialkvStore {
    fn read<'a>(&'a mut self, key: &'a Bytes) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let out = self.client.get_with(key, &self.read).await?;
            Ok(out.value().is_some())
        })
    }

    fn update<'a>(&'a mut self, key: &'a Bytes, value: &'a Bytes) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client
                .put_with(key, value.clone(), &self.write)
                .await?;
            Ok(())
        })
    }

    /// A one-shot transaction with no compares (the reads and writes as one atomic log entry),
    /// the same shape as etcd's unconditional `Txn`.
    fn txn<'a>(
        &'a mut self,
        reads: &'a [Bytes],
        writes: &'a [(Bytes, Bytes)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ops = reads
                .iter()
                .map(|k| TxnOp::get(k.clone()))
                .chain(writes.iter().map(|(k, v)| TxnOp::put(k.clone(), v.clone())));
            let out = self.client.txn().then(ops).commit().await?;
            if !out.succeeded {
                return Err(anyhow!("an unconditional dialkv txn did not succeed"));
            }
            Ok(())
        })
    }

    fn duplicate(&self) -> Box<dyn Store> {
        Box::new(self.clone())
    }
}
