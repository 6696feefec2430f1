//! The etcd baseline: a cluster of Debian's `etcd` (3.4) members on loopback.
//!
//! Every member gets its own client and peer port and a fresh data directory, and the default
//! durability: etcd fsyncs its write-ahead log before a proposal commits, so a put is durable
//! on a majority when acknowledged. Reads are linearizable (etcd's default, a ReadIndex round
//! through the leader) when the benchmark's level is LINEARIZABLE, and serializable (served by
//! whichever member the client reached, possibly stale) for anything weaker. Workload T runs
//! as one etcd `Txn` with 4 range reads and 2 puts in its success branch.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use dialkv_client::Level;
use etcd_client::{Client, ConnectOptions, GetOptions, KvClient, Txn, TxnOp};
use futures::future::BoxFuture;

use super::{Readiness, Settings, Store, Target};
use crate::process::ServerProcess;
use crate::workload::Workload;

/// How long members may take to elect a leader and accept a first write.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// An etcd cluster.
#[derive(Debug)]
pub struct Etcd {
    settings: Settings,
    binary: PathBuf,
    members: Vec<ServerProcess>,
    endpoints: Vec<String>,
}

impl Etcd {
    /// A target with `settings` (nothing starts yet).
    pub fn new(settings: &Settings) -> Self {
        Etcd {
            settings: settings.clone(),
            binary: std::env::var_os("ETCD_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("etcd")),
            members: Vec::new(),
            endpoints: Vec::new(),
        }
    }

    fn serializable(&self) -> bool {
        self.settings.level != Level::Linearizable
    }

    async fn client(&self) -> Result<Client> {
        let options = ConnectOptions::new()
            .with_timeout(self.settings.timeout)
            .with_connect_timeout(Duration::from_secs(2));
        Client::connect(&self.endpoints, Some(options))
            .await
            .context("connecting to etcd")
    }

    async fn start_cluster(&mut self, dir: &Path) -> Result<Readiness> {
        let n = self.settings.etcd_members.max(1);
        let ports = dialkv_jepsen::ports::listen_ports(2 * n)?;
        let client_urls: Vec<String> = ports[..n]
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let peer_urls: Vec<String> = ports[n..]
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let initial_cluster = peer_urls
            .iter()
            .enumerate()
            .map(|(i, url)| format!("m{}={url}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        for i in 0..n {
            let name = format!("m{}", i + 1);
            let args = vec![
                "--name".to_string(),
                name.clone(),
                "--data-dir".into(),
                dir.join(&name).display().to_string(),
                "--listen-client-urls".into(),
                client_urls[i].clone(),
                "--advertise-client-urls".into(),
                client_urls[i].clone(),
                "--listen-peer-urls".into(),
                peer_urls[i].clone(),
                "--initial-advertise-peer-urls".into(),
                peer_urls[i].clone(),
                "--initial-cluster".into(),
                initial_cluster.clone(),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                "dialkv-bench".into(),
                "--logger".into(),
                "zap".into(),
                "--log-level".into(),
                "warn".into(),
            ];
            self.members.push(ServerProcess::spawn(
                &format!("etcd {name}"),
                &self.binary,
                &args,
                &[],
                &dir.join(format!("{name}.log")),
            )?);
        }
        self.endpoints = client_urls;
        // zap at warn logs nothing on a healthy start: poll with a client instead, and
        // watch each member for an early exit.
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            for member in &mut self.members {
                member.check_running()?;
            }
            let attempt = async {
                let mut client = self.client().await?;
                client
                    .put("dialkv-bench-probe", "ready", None)
                    .await
                    .context("probe put")?;
                anyhow::Ok(())
            };
            match attempt.await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(e.context(format!("etcd not ready after {START_TIMEOUT:?}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok(Readiness::Ready)
    }
}

impl Target for Etcd {
    fn name(&self) -> &str {
        "etcd"
    }

    fn describe(&self) -> String {
        format!(
            "{} members, fsync per commit (default), {} reads",
            self.settings.etcd_members,
            if self.serializable() {
                "serializable"
            } else {
                "linearizable"
            }
        )
    }

    fn unsupported(&self, _workload: Workload) -> Option<String> {
        None
    }

    fn start<'a>(&'a mut self, dir: &'a Path) -> BoxFuture<'a, Result<Readiness>> {
        Box::pin(self.start_cluster(dir))
    }

    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn Store>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let read = if self.serializable() {
                GetOptions::new().with_serializable()
            } else {
                GetOptions::new()
            };
            Ok(Box::new(EtcdStore {
                kv: client.kv_client(),
                read,
            }) as Box<dyn Store>)
        })
    }

    fn server_pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(ServerProcess::pid).collect()
    }

    fn stop(&mut self) {
        for member in &mut self.members {
            member.stop();
        }
        self.members.clear();
    }
}

/// One etcd client (a balanced channel over every member).
#[derive(Clone)]
struct EtcdStore {
    kv: KvClient,
    read: GetOptions,
}

impl Store for EtcdStore {
    fn read<'a>(&'a mut self, key: &'a Bytes) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let reply = self.kv.get(key.to_vec(), Some(self.read.clone())).await?;
            Ok(!reply.kvs().is_empty())
        })
    }

    fn update<'a>(&'a mut self, key: &'a Bytes, value: &'a Bytes) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.kv.put(key.to_vec(), value.to_vec(), None).await?;
            Ok(())
        })
    }

    fn txn<'a>(
        &'a mut self,
        reads: &'a [Bytes],
        writes: &'a [(Bytes, Bytes)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut ops: Vec<TxnOp> = reads.iter().map(|k| TxnOp::get(k.to_vec(), None)).collect();
            ops.extend(
                writes
                    .iter()
                    .map(|(k, v)| TxnOp::put(k.to_vec(), v.to_vec(), None)),
            );
            let reply = self.kv.txn(Txn::new().and_then(ops)).await?;
            if !reply.succeeded() {
                return Err(anyhow!("an unconditional etcd txn did not succeed"));
            }
            Ok(())
        })
    }

    fn duplicate(&self) -> Box<dyn Store> {
        Box::new(self.clone())
    }
}
