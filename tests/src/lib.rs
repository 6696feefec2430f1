//! Helpers for dialkv's integration tests, which start real `dialkv` server processes.
//!
//! [`TestServer`] runs the `dialkv` binary from the build's target directory (or the one named
//! by `DIALKV_BIN`) on free ports in a fresh data directory, waits until it says it is serving,
//! and stops or kills it. The binaries must be built first: `cargo build --bins` (the README's
//! test command does it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dialkv_proto::v1;
use tonic::transport::Channel;

/// The directory holding the workspace's built binaries: the parent of the test binary's
/// `deps/` directory.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let deps = exe.parent().expect("the test binary is in deps/");
    deps.parent()
        .expect("deps/ is in the profile directory")
        .to_path_buf()
}

/// The path of a built workspace binary (`dialkv`, `dialctl`, ...); `DIALKV_BIN` overrides
/// the server's.
pub fn binary(name: &str) -> PathBuf {
    if name == "dialkv" {
        if let Some(p) = std::env::var_os("DIALKV_BIN") {
            return PathBuf::from(p);
        }
    }
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --bins` first",
        p.display()
    );
    p
}

/// A running `dialkv serve` process.
pub struct TestServer {
    child: Option<Child>,
    data_dir: PathBuf,
    /// The gRPC address it serves.
    pub addr: SocketAddr,
    /// The admin HTTP address it serves.
    pub admin: SocketAddr,
    extra: Vec<String>,
    log: PathBuf,
    id: u64,
}

impl TestServer {
    /// Starts a server with a fresh data directory under `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<TestServer> {
        Self::start_with(dir, &[])
    }

    /// Starts a server with replica id `id` and extra `dialkv serve` flags.
    pub fn start_with_id(dir: &Path, id: u64, extra: &[&str]) -> anyhow::Result<TestServer> {
        let data_dir = dir.join("data");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let log = dir.join("server.log");
        let (child, addr, admin) = spawn(id, &data_dir, &extra, &log, None)?;
        Ok(TestServer {
            child: Some(child),
            data_dir,
            addr,
            admin,
            extra,
            log,
            id,
        })
    }

    /// Starts a server with extra `dialkv serve` flags.
    pub fn start_with(dir: &Path, extra: &[&str]) -> anyhow::Result<TestServer> {
        let data_dir = dir.join("data");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let log = dir.join("server.log");
        let (child, addr, admin) = spawn(1, &data_dir, &extra, &log, None)?;
        Ok(TestServer {
            child: Some(child),
            data_dir,
            addr,
            admin,
            extra,
            log,
            id: 1,
        })
    }

    /// The `http://` endpoint of the gRPC API.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A KV client connected to the server.
    pub async fn kv(&self) -> v1::kv_client::KvClient<Channel> {
        v1::kv_client::KvClient::new(self.channel().await)
    }

    /// A Namespaces client connected to the server.
    pub async fn namespaces(&self) -> v1::namespaces_client::NamespacesClient<Channel> {
        v1::namespaces_client::NamespacesClient::new(self.channel().await)
    }

    /// A channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .expect("a valid endpoint")
            .connect()
            .await
            .expect("connecting to the test server")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// Sends a signal (`"KILL"`, `"TERM"`, `"STOP"`, `"CONT"`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Kills the server with SIGKILL and waits for it to die.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (up to `deadline`) for the process to exit; returns its status.
    pub fn terminate(&mut self, deadline: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.signal("TERM");
        let mut child = self.child.take().expect("the server is running");
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > until {
                let _ = child.kill();
                bail!("the server did not exit within {deadline:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts a stopped or killed server on the same data directory and ports.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let (child, addr, admin) = spawn(
            self.id,
            &self.data_dir,
            &self.extra,
            &self.log,
            Some((self.addr, self.admin)),
        )?;
        self.child = Some(child);
        self.addr = addr;
        self.admin = admin;
        Ok(())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(
    id: u64,
    data_dir: &Path,
    extra: &[String],
    log: &Path,
    ports: Option<(SocketAddr, SocketAddr)>,
) -> anyhow::Result<(Child, SocketAddr, SocketAddr)> {
    let (listen, admin) = match ports {
        Some((a, b)) => (a.to_string(), b.to_string()),
        // Not port 0: a restart binds the same ports again, and while the server is down a
        // port from the ephemeral range may be taken by any outgoing connection.
        None => {
            let ports = dialkv_jepsen::ports::listen_ports(2)?;
            (
                format!("127.0.0.1:{}", ports[0]),
                format!("127.0.0.1:{}", ports[1]),
            )
        }
    };
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = Command::new(binary("dialkv"))
        .args(["serve", "--id", &id.to_string(), "--listen", &listen])
        .args(["--admin", &admin, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context("starting dialkv")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    // The server prints one line per listener once it serves; read them with a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut grpc, mut http) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while grpc.is_none() || http.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "dialkv did not start serving within 60 s; log: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        };
        let addr = line
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse::<SocketAddr>().ok());
        if line.contains("serving gRPC on") {
            grpc = addr;
        } else if line.contains("serving admin HTTP on") {
            http = addr;
        }
    }
    Ok((child, grpc.expect("set above"), http.expect("set above")))
}

/// A cluster of real replica processes on loopback, started with `--peers`.
pub struct TestCluster {
    /// The replicas, by position (replica id = position + 1).
    pub nodes: Vec<TestServer>,
    /// The `--peers` value every replica was started with.
    pub peers: String,
}

impl TestCluster {
    /// Starts `n` replicas under `dir`, each with `extra` flags, and waits for a primary.
    pub async fn start(dir: &Path, n: usize, extra: &[&str]) -> anyhow::Result<TestCluster> {
        let ports = dialkv_jepsen::ports::listen_ports(2 * n)?;
        let peers: Vec<String> = (0..n)
            .map(|i| format!("{}=127.0.0.1:{}", i + 1, ports[i]))
            .collect();
        let peers = peers.join(",");
        let mut nodes = Vec::new();
        for i in 0..n {
            let node_dir = dir.join(format!("n{}", i + 1));
            std::fs::create_dir_all(&node_dir)?;
            let mut args: Vec<String> = vec!["--peers".into(), peers.clone()];
            args.extend(extra.iter().map(|s| s.to_string()));
            let data_dir = node_dir.join("data");
            let log = node_dir.join("server.log");
            let addr: SocketAddr = format!("127.0.0.1:{}", ports[i]).parse()?;
            let admin: SocketAddr = format!("127.0.0.1:{}", ports[n + i]).parse()?;
            let (child, addr, admin) =
                spawn((i + 1) as u64, &data_dir, &args, &log, Some((addr, admin)))?;
            nodes.push(TestServer {
                child: Some(child),
                data_dir,
                addr,
                admin,
                extra: args,
                log,
                id: (i + 1) as u64,
            });
        }
        let cluster = TestCluster { nodes, peers };
        cluster.leader(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// The replica with id `id`.
    pub fn node(&mut self, id: u64) -> &mut TestServer {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Waits until a running replica reports a primary that is running too, and returns its
    /// id.
    pub async fn leader(&self, deadline: Duration) -> anyhow::Result<u64> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Some(id) = n.status_leader().await {
                    if self
                        .nodes
                        .get((id - 1) as usize)
                        .is_some_and(|l| l.child.is_some())
                    {
                        return Ok(id);
                    }
                }
            }
            if tokio::time::Instant::now() > until {
                bail!("no primary within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a primary other than `old` is elected, asking only replicas other than
    /// `old`.
    pub async fn new_leader(&self, old: u64, deadline: Duration) -> anyhow::Result<u64> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            for n in self
                .nodes
                .iter()
                .filter(|n| n.child.is_some() && n.id != old)
            {
                if let Some(id) = n.status_leader().await {
                    if id != old {
                        return Ok(id);
                    }
                }
            }
            if tokio::time::Instant::now() > until {
                bail!("no new primary within {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl TestServer {
    /// This replica's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the process is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The primary this replica knows of, asked with a short deadline.
    pub async fn status_leader(&self) -> Option<u64> {
        let status = self.node_status().await?;
        (status.leader_id != 0).then_some(status.leader_id)
    }

    /// This replica's own status, asked with a short deadline.
    pub async fn node_status(&self) -> Option<v1::NodeStatus> {
        let endpoint = Channel::from_shared(self.endpoint())
            .ok()?
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_millis(500));
        let channel = endpoint.connect().await.ok()?;
        let mut client = v1::cluster_client::ClusterClient::new(channel);
        let reply = client
            .get_node_status(v1::NodeStatusRequest {})
            .await
            .ok()?;
        Some(reply.into_inner())
    }
}

/// Waits until `check` returns true, polling every 20 ms, or fails after `deadline`.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    while !check().await {
        if tokio::time::Instant::now() > until {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Fetches `path` from an HTTP server with a bare HTTP/1.1 request; returns the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let (head, body) = out.split_once("\r\n\r\n").context("an HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {head}");
    }
    Ok(body.to_string())
}
