//! The Redis baselines: Debian's `redis-server`, one primary and its replicas on loopback.
//!
//! Both targets turn the append-only file on. `redis` fsyncs it on every write
//! (`appendfsync always`: the reply leaves after the fsync, so a write is durable on the
//! primary when acknowledged); `redis-fast` fsyncs once a second (`everysec`: up to a second
//! of acknowledged writes can be lost). Replication is asynchronous in both, so an
//! acknowledged write is on one node only; RDB snapshots are off. Every client talks to the
//! primary. Workload T runs as MULTI/EXEC with 4 GETs and 2 SETs (atomic and isolated,
//! since Redis runs commands one at a time).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::future::BoxFuture;
use redis::aio::MultiplexedConnection;

use super::{retry_until, Readiness, Settings, Store, Target};
use crate::process::ServerProcess;
use crate::workload::Workload;

/// How long the servers may take to start and the replicas to catch up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// When Redis fsyncs its append-only file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Before replying to each write (`appendfsync always`).
    Always,
    /// Once a second (`appendfsync everysec`).
    EverySec,
}

impl Fsync {
    fn setting(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
        }
    }
}

/// A Redis primary with replicas.
#[derive(Debug)]
pub struct Redis {
    fsync: Fsync,
    settings: Settings,
    binary: PathBuf,
    servers: Vec<ServerProcess>,
    primary_port: Option<u16>,
}

impl Redis {
    /// A target with `fsync` and `settings` (nothing starts yet).
    pub fn new(fsync: Fsync, settings: &Settings) -> Self {
        Redis {
            fsync,
            settings: settings.clone(),
            binary: std::env::var_os("REDIS_SERVER_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("redis-server")),
            servers: Vec::new(),
            primary_port: None,
        }
    }

    async fn start_cluster(&mut self, dir: &Path) -> Result<Readiness> {
        let replicas = self.settings.redis_replicas;
        let ports = dialkv_jepsen::ports::listen_ports(1 + replicas)?;
        for (i, port) in ports.iter().enumerate() {
            let name = if i == 0 {
                "primary".to_string()
            } else {
                format!("replica-{i}")
            };
            let data = dir.join(&name);
            std::fs::create_dir_all(&data)
                .with_context(|| format!("creating {}", data.display()))?;
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &data.display().to_string(),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.fsync.setting(),
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if i > 0 {
                args.extend([
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    ports[0].to_string(),
                ]);
            }
            self.servers.push(ServerProcess::spawn(
                &format!("redis {name}"),
                &self.binary,
                &args,
                &[],
                &dir.join(format!("{name}.log")),
            )?);
        }
        self.primary_port = Some(ports[0]);
        let expected = format!("connected_slaves:{replicas}");
        retry_until(START_TIMEOUT, || async {
            let info = info_replication(ports[0]).await?;
            if !info.contains(&expected) {
                bail!("primary not yet joined by {replicas} replicas:\n{info}");
            }
            for port in &ports[1..] {
                let info = info_replication(*port).await?;
                if !info.contains("master_link_status:up") {
                    bail!("replica on port {port} not yet linked:\n{info}");
                }
            }
            Ok(())
        })
        .await?;
        for server in &mut self.servers {
            server.check_running()?;
        }
        Ok(Readiness::Ready)
    }
}

/// `INFO replication` of the server on `port`.
async fn info_replication(port: u16) -> Result<String> {
    let mut conn = connect(port).await?;
    Ok(redis::cmd("INFO")
        .arg("replication")
        .query_async::<String>(&mut conn)
        .await?)
}

async fn connect(port: u16) -> Result<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to redis on port {port}"))
}

impl Target for Redis {
    fn name(&self) -> &str {
        match self.fsync {
            Fsync::Always => "redis",
            Fsync::EverySec => "redis-fast",
        }
    }

    fn describe(&self) -> String {
        format!(
            "1 primary + {} async replicas, appendfsync {}, reads at the primary",
            self.settings.redis_replicas,
            self.fsync.setting()
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
            let Some(port) = self.primary_port else {
                bail!("redis is not started");
            };
            Ok(Box::new(RedisStore {
                conn: connect(port).await?,
            }) as Box<dyn Store>)
        })
    }

    fn server_pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(ServerProcess::pid).collect()
    }

    fn stop(&mut self) {
        for server in &mut self.servers {
            server.stop();
        }
        self.servers.clear();
    }
}

/// One connection to the primary.
#[derive(Clone)]
struct RedisStore {
    conn: MultiplexedConnection,
}

impl Store for RedisStore {
    fn read<'a>(&'a mut self, key: &'a Bytes) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&key[..])
                .query_async(&mut self.conn)
                .await?;
            Ok(value.is_some())
        })
    }

    fn update<'a>(&'a mut self, key: &'a Bytes, value: &'a Bytes) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            redis::cmd("SET")
                .arg(&key[..])
                .arg(&value[..])
                .query_async::<()>(&mut self.conn)
                .await?;
            Ok(())
        })
    }

    fn txn<'a>(
        &'a mut self,
        reads: &'a [Bytes],
        writes: &'a [(Bytes, Bytes)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for key in reads {
                pipe.cmd("GET").arg(&key[..]);
            }
            for (key, value) in writes {
                pipe.cmd("SET").arg(&key[..]).arg(&value[..]).ignore();
            }
            pipe.query_async::<()>(&mut self.conn).await?;
            Ok(())
        })
    }

    fn duplicate(&self) -> Box<dyn Store> {
        Box::new(self.clone())
    }
}
