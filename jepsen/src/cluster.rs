//! Cluster control: real `dialkv serve` processes on loopback, and the faults that act on
//! processes (SIGKILL and restart, SIGSTOP and SIGCONT, wall-clock offsets).
//!
//! A [`Cluster`] owns its nodes' processes. Each node gets fixed ports for the whole run (so
//! a restarted node comes back at the same address), a fresh data directory under the run's
//! directory, and a log file (`nodes/n<ID>.log`) that collects its stdout and stderr across
//! restarts. With more than one node and replication on, each node is started with
//! `--peers`, in which every other node's address is the harness proxy of that link (see
//! [`crate::proxy`]), so partitions can be made per directed link.
//!
//! No process outlives the harness: every child is registered in a process-wide table that a
//! panic hook and the signal handler of the binary empty with SIGKILL
//! ([`kill_registered`]); [`Cluster`]'s `Drop` kills its children; and every child is started
//! with `PR_SET_PDEATHSIG = SIGKILL`, so even a SIGKILL of the harness takes the nodes down.
//! That last one fires when the *thread* that forked the child exits: the harness therefore
//! runs on a current-thread runtime, on the main thread.
//!
//! Clock skew uses libfaketime (Debian package `faketime`): when enabled, every node runs
//! with `LD_PRELOAD` of the library and `FAKETIME_TIMESTAMP_FILE` pointing at a per-node file
//! holding the offset, re-read on every clock call (`FAKETIME_NO_CACHE=1`), so the offset
//! changes at run time. `FAKETIME_DONT_FAKE_MONOTONIC=1` keeps the monotonic clock true, as a
//! real skewed wall clock (NTP step, bad RTC) would: only `CLOCK_REALTIME` moves.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::leader::{self, LeaderGuess};
use crate::proxy::Network;

/// A node id, unique within a cluster, starting at 1 (as `dialkv serve --id` wants).
pub type NodeId = u64;

/// Where Debian's `faketime` package puts libfaketime.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The line `dialkv serve` prints on stdout once it serves.
const READY_MARKER: &str = "serving gRPC on";

/// Child process ids of every cluster in this process, for [`kill_registered`].
static CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn register(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(pid);
}

fn unregister(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&pid);
}

/// Sends SIGCONT and SIGKILL to every node process still registered, and forgets them. Safe to
/// call from a panic hook; the processes are reaped by tokio or by init.
pub fn kill_registered() {
    let pids: Vec<u32> = std::mem::take(
        &mut *CHILDREN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_iter()
    .collect();
    for pid in pids {
        signal(pid, libc::SIGCONT);
        signal(pid, libc::SIGKILL);
    }
}

/// Sends `sig` to `pid`; a process that is already gone is not an error.
fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is one of our children.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The `dialkv` server binary.
    pub binary: PathBuf,
    /// How many nodes.
    pub nodes: usize,
    /// The run directory: data under `data/`, logs under `nodes/`, clock files under `clock/`.
    pub dir: PathBuf,
    /// Whether the nodes form one replicated cluster (`--peers`, with a proxy on every link).
    /// When false, each node is a cluster of one: with several nodes that is a deliberately
    /// broken "replicated" system, used by the self-test.
    pub replicated: bool,
    /// Whether the nodes run under libfaketime so their wall clocks can be skewed.
    pub faketime: bool,
    /// Extra arguments for every `dialkv serve`.
    pub server_args: Vec<String>,
    /// How long a node may take to say it serves.
    pub start_timeout: Duration,
}

/// The state of a node's process, as the harness left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Running (or starting).
    Running,
    /// Stopped with SIGSTOP.
    Paused,
    /// Killed with SIGKILL (or stopped at the end).
    Down,
}

/// One node: its addresses, files, and process.
#[derive(Debug)]
struct Node {
    id: NodeId,
    listen: SocketAddr,
    admin: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    clock_file: PathBuf,
    peers: Option<String>,
    child: Option<Child>,
    state: NodeState,
    starts: u32,
}

/// A running cluster of `dialkv` processes.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    nodes: BTreeMap<NodeId, Node>,
    network: Option<Network>,
}

impl Cluster {
    /// Creates the directories, the link proxies and the nodes, starts every node and waits
    /// until each one says it serves.
    pub async fn start(config: ClusterConfig) -> anyhow::Result<Cluster> {
        if config.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        if !config.binary.is_file() {
            bail!(
                "the dialkv binary {} does not exist (build it, or pass --dialkv-bin / set DIALKV_BIN)",
                config.binary.display()
            );
        }
        if config.faketime && !Path::new(LIBFAKETIME).is_file() {
            bail!(
                "the clock nemesis needs libfaketime at {LIBFAKETIME}: apt-get install -y faketime"
            );
        }
        for sub in ["data", "nodes", "clock"] {
            std::fs::create_dir_all(config.dir.join(sub))
                .with_context(|| format!("creating {}", config.dir.join(sub).display()))?;
        }
        let ids: Vec<NodeId> = (1..=config.nodes as NodeId).collect();
        // Each node's gRPC port, then its admin port.
        let ports = crate::ports::listen_ports(2 * ids.len())?;
        let mut ports = ports
            .into_iter()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        let mut listen = BTreeMap::new();
        for &id in &ids {
            listen.insert(id, ports.next().context("a port per node")?);
        }
        let network = if config.replicated && config.nodes > 1 {
            Some(Network::start(&listen).await?)
        } else {
            None
        };
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let data_dir = config.dir.join("data").join(format!("n{id}"));
            if data_dir.exists() {
                std::fs::remove_dir_all(&data_dir)
                    .with_context(|| format!("clearing {}", data_dir.display()))?;
            }
            let peers = network.as_ref().map(|net| {
                ids.iter()
                    .map(|&j| {
                        let addr = if j == id {
                            listen[&id]
                        } else {
                            net.link_addr(id, j).unwrap_or(listen[&j])
                        };
                        format!("{j}={addr}")
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            });
            let clock_file = config.dir.join("clock").join(format!("n{id}.faketime"));
            write_offset(&clock_file, 0.0)?;
            nodes.insert(
                id,
                Node {
                    id,
                    listen: listen[&id],
                    admin: ports.next().context("an admin port per node")?,
                    data_dir,
                    log: config.dir.join("nodes").join(format!("n{id}.log")),
                    clock_file,
                    peers,
                    child: None,
                    state: NodeState::Down,
                    starts: 0,
                },
            );
        }
        let mut cluster = Cluster {
            config,
            nodes,
            network,
        };
        let all = cluster.ids();
        cluster.start_nodes(&all).await?;
        Ok(cluster)
    }

    /// Returns the node ids.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Returns the gRPC address of every node.
    pub fn endpoints(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.nodes.iter().map(|(&id, n)| (id, n.listen)).collect()
    }

    /// Returns the proxies of the node-to-node links, when the cluster is replicated.
    pub fn network(&self) -> Option<&Network> {
        self.network.as_ref()
    }

    /// Returns the gRPC address of every node that is running (not paused, not down).
    pub fn live_endpoints(&self) -> Vec<(NodeId, SocketAddr)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Running)
            .map(|(&id, n)| (id, n.listen))
            .collect()
    }

    /// Asks every live node for its status (`Cluster/GetNodeStatus`, short deadline) and
    /// returns the leader they name; see [`crate::leader`].
    pub async fn detect_leader(&self) -> LeaderGuess {
        leader::detect(&self.live_endpoints()).await
    }

    /// Returns the state of a node.
    pub fn state(&self, id: NodeId) -> Option<NodeState> {
        self.nodes.get(&id).map(|n| n.state)
    }

    /// Returns the log files of the nodes.
    pub fn logs(&self) -> Vec<(NodeId, PathBuf)> {
        self.nodes
            .iter()
            .map(|(&id, n)| (id, n.log.clone()))
            .collect()
    }

    /// Starts the given nodes that are down, all at once, and waits for each to serve.
    pub async fn start_nodes(&mut self, ids: &[NodeId]) -> anyhow::Result<()> {
        let mut waits = Vec::new();
        for id in ids {
            let Some(node) = self.nodes.get_mut(id) else {
                bail!("no node {id}");
            };
            if node.state != NodeState::Down {
                continue;
            }
            waits.push((*id, spawn_node(&self.config, node).await?));
        }
        for (id, ready) in waits {
            let outcome = tokio::time::timeout(self.config.start_timeout, ready).await;
            let node = self.nodes.get_mut(&id).context("node vanished")?;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!(
                    "node {id} exited before serving; its log {} ends with:\n{}",
                    node.log.display(),
                    log_tail(&node.log)
                ),
                Err(_) => bail!(
                    "node {id} did not serve within {:?}; its log {} ends with:\n{}",
                    self.config.start_timeout,
                    node.log.display(),
                    log_tail(&node.log)
                ),
            }
        }
        Ok(())
    }

    /// Kills the given nodes with SIGKILL (no chance to flush or say goodbye) and reaps them.
    pub async fn kill(&mut self, ids: &[NodeId]) -> anyhow::Result<()> {
        for id in ids {
            if let Some(node) = self.nodes.get_mut(id) {
                stop_child(node, libc::SIGKILL, Duration::ZERO).await;
            }
        }
        Ok(())
    }

    /// Restarts every node that is down, on its old data directory and ports.
    pub async fn restart_down(&mut self) -> anyhow::Result<Vec<NodeId>> {
        let down: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Down)
            .map(|n| n.id)
            .collect();
        self.start_nodes(&down).await?;
        Ok(down)
    }

    /// Stops the given nodes with SIGSTOP: they keep their sockets but answer nothing.
    pub fn pause(&mut self, ids: &[NodeId]) {
        for id in ids {
            if let Some(node) = self.nodes.get_mut(id) {
                if node.state == NodeState::Running {
                    if let Some(pid) = node.child.as_ref().and_then(Child::id) {
                        signal(pid, libc::SIGSTOP);
                        node.state = NodeState::Paused;
                    }
                }
            }
        }
    }

    /// Resumes every paused node with SIGCONT.
    pub fn resume_all(&mut self) -> Vec<NodeId> {
        let mut resumed = Vec::new();
        for node in self.nodes.values_mut() {
            if node.state == NodeState::Paused {
                if let Some(pid) = node.child.as_ref().and_then(Child::id) {
                    signal(pid, libc::SIGCONT);
                }
                node.state = NodeState::Running;
                resumed.push(node.id);
            }
        }
        resumed
    }

    /// Sets a node's wall-clock offset in seconds (libfaketime); a no-op without faketime.
    pub fn set_clock_offset(&self, id: NodeId, offset_s: f64) -> anyhow::Result<()> {
        self.clock_handle(id)?.set(offset_s)
    }

    /// Returns a handle that sets a node's clock offset without borrowing the cluster.
    pub fn clock_handle(&self, id: NodeId) -> anyhow::Result<ClockHandle> {
        let node = self.nodes.get(&id).context("no such node")?;
        Ok(ClockHandle {
            path: node.clock_file.clone(),
            enabled: self.config.faketime,
        })
    }

    /// Whether the nodes run under libfaketime.
    pub fn has_faketime(&self) -> bool {
        self.config.faketime
    }

    /// Stops every node: SIGCONT, then SIGTERM with a grace period, then SIGKILL.
    pub async fn stop(&mut self) {
        for node in self.nodes.values_mut() {
            stop_child(node, libc::SIGTERM, Duration::from_secs(3)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                if let Some(pid) = child.id() {
                    signal(pid, libc::SIGCONT);
                    unregister(pid);
                }
                // start_kill sends SIGKILL; tokio reaps the process in the background.
                let _ = child.start_kill();
            }
            node.state = NodeState::Down;
        }
    }
}

/// Sets one node's wall-clock offset (the libfaketime file it re-reads on every clock call).
#[derive(Clone, Debug)]
pub struct ClockHandle {
    path: PathBuf,
    enabled: bool,
}

impl ClockHandle {
    /// Sets the offset in seconds; a no-op when the cluster runs without libfaketime.
    pub fn set(&self, offset_s: f64) -> anyhow::Result<()> {
        if self.enabled {
            write_offset(&self.path, offset_s)
        } else {
            Ok(())
        }
    }
}

/// Writes a libfaketime offset file atomically (write then rename), since the nodes re-read
/// it on every clock call.
fn write_offset(path: &Path, offset_s: f64) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{offset_s:+.3}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Returns the last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Starts a node's process; the returned receiver fires once it prints its ready line (and
/// is dropped unfired if it exits first).
async fn spawn_node(
    config: &ClusterConfig,
    node: &mut Node,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<()>> {
    node.starts += 1;
    let mut log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .await
        .with_context(|| format!("opening {}", node.log.display()))?;
    log.write_all(
        format!(
            "==== dialkv-jepsen: start #{} of node {} ====\n",
            node.starts, node.id
        )
        .as_bytes(),
    )
    .await?;
    let stderr = log.try_clone().await?.into_std().await;

    let mut cmd = Command::new(&config.binary);
    cmd.arg("serve")
        .arg("--id")
        .arg(node.id.to_string())
        .arg("--listen")
        .arg(node.listen.to_string())
        .arg("--admin")
        .arg(node.admin.to_string())
        .arg("--data-dir")
        .arg(&node.data_dir);
    if let Some(peers) = &node.peers {
        cmd.arg("--peers").arg(peers);
    }
    cmd.args(&config.server_args);
    if config.faketime {
        cmd.env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &node.clock_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", config.binary.display()))?;
    if let Some(pid) = child.id() {
        register(pid);
    }
    let stdout = child.stdout.take().context("child stdout is piped")?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log.write_all(line.as_bytes()).await;
            let _ = log.write_all(b"\n").await;
            if line.contains(READY_MARKER) {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    node.child = Some(child);
    node.state = NodeState::Running;
    Ok(ready_rx)
}

/// Stops a node's process with `sig` (SIGKILL at once, or SIGTERM and then SIGKILL after
/// `grace`), reaps it and marks the node down.
async fn stop_child(node: &mut Node, sig: libc::c_int, grace: Duration) {
    let Some(mut child) = node.child.take() else {
        node.state = NodeState::Down;
        return;
    };
    if let Some(pid) = child.id() {
        signal(pid, libc::SIGCONT);
        if sig != libc::SIGKILL {
            signal(pid, sig);
            if tokio::time::timeout(grace, child.wait()).await.is_ok() {
                unregister(pid);
                node.state = NodeState::Down;
                return;
            }
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        unregister(pid);
    }
    node.state = NodeState::Down;
}
