//! Server configuration: command-line flags, `DIALKV_*` environment variables and a TOML
//! file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::limits::Limits;
use crate::replication::{Bootstrap, ReplicationOptions};
use crate::storage::writer::SyncPolicy;

/// A replica's id, unique within a cluster. Assigned by the operator when it is started.
pub type ReplicaId = u64;

/// The flags of `dialkv serve`; each can also come from its `DIALKV_*` variable or the file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// This replica's id, unique within the cluster (at least 1).
    #[arg(long, env = "DIALKV_ID")]
    pub id: Option<ReplicaId>,
    /// Address of the gRPC API (port 0 picks a free port, printed on start).
    #[arg(long, env = "DIALKV_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the replica's data; created if missing.
    #[arg(long, env = "DIALKV_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the admin HTTP port (`GET /metrics`, `GET /healthz`); off when unset.
    #[arg(long, env = "DIALKV_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// A TOML file with any of these settings (keys as the flags, with `_` for `-`).
    #[arg(long, env = "DIALKV_CONFIG")]
    pub config: Option<PathBuf>,
    /// When a write is made durable: `always` (an fsync per write) or `batch` (group commit:
    /// concurrent writes share an fsync). Both sync before acknowledging. Default `always`.
    #[arg(long, env = "DIALKV_SYNC", value_enum)]
    pub sync: Option<SyncPolicy>,
    /// The largest key in bytes (default 4096).
    #[arg(long, env = "DIALKV_MAX_KEY_BYTES")]
    pub max_key_bytes: Option<usize>,
    /// The largest value in bytes (default 1048576).
    #[arg(long, env = "DIALKV_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<usize>,
    /// How long a request id is remembered for deduplication, in seconds (default 600).
    #[arg(long, env = "DIALKV_DEDUP_TTL_SECS")]
    pub dedup_ttl_secs: Option<u64>,
    /// How many revisions of history stay readable behind the newest (default 10000): a
    /// transaction's snapshot must stay within it.
    #[arg(long, env = "DIALKV_RETAIN_REVISIONS")]
    pub retain_revisions: Option<u64>,
    /// The most writes waiting for the storage writer before new ones are refused with
    /// RESOURCE_EXHAUSTED (default 4096).
    #[arg(long, env = "DIALKV_WRITE_QUEUE")]
    pub write_queue: Option<usize>,
    /// How long a read waits for this replica to catch up with a session token before
    /// answering UNAVAILABLE / SESSION_BEHIND, in milliseconds (default 1000).
    #[arg(long, env = "DIALKV_SESSION_WAIT_MS")]
    pub session_wait_ms: Option<u64>,
    /// How long shutdown waits for in-flight requests, in milliseconds (default 10000).
    #[arg(long, env = "DIALKV_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,
    /// The initial members of the cluster, `ID=HOST:PORT,...`, this replica included: the
    /// address this replica uses to reach each one. Without it (and without --join) the
    /// replica is a cluster of one.
    #[arg(long, env = "DIALKV_PEERS")]
    pub peers: Option<String>,
    /// Join an existing cluster: start empty and wait to be added with `dialctl cluster add`.
    #[arg(long, env = "DIALKV_JOIN")]
    pub join: bool,
    /// The Raft heartbeat interval in milliseconds (default 150).
    #[arg(long, env = "DIALKV_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// The shortest election timeout in milliseconds (default 1000; the longest is twice it).
    #[arg(long, env = "DIALKV_ELECTION_TIMEOUT_MS")]
    pub election_timeout_ms: Option<u64>,
    /// Take a snapshot (and compact the log) after about this many entries (default 10000;
    /// each replica waits up to half as many again, by its id, so that not all build at once).
    #[arg(long, env = "DIALKV_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// How long a write waits to commit before its outcome is reported unknown, in
    /// milliseconds (default 10000).
    #[arg(long, env = "DIALKV_COMMIT_TIMEOUT_MS")]
    pub commit_timeout_ms: Option<u64>,
    /// TEST ONLY, UNSAFE: answer LINEARIZABLE reads at the primary without confirming its
    /// leadership, so that a deposed primary can return stale data. For proving that the
    /// fault-injection harness catches stale reads; never use it otherwise.
    #[arg(long, hide = true)]
    pub unsafe_stale_linearizable_reads: bool,
    /// The most interactive transactions open at once on a primary (default 10000).
    #[arg(long, env = "DIALKV_MAX_TRANSACTIONS")]
    pub max_transactions: Option<usize>,
    /// The longest an interactive transaction may stay open, in milliseconds (default 60000).
    #[arg(long, env = "DIALKV_TXN_MAX_AGE_MS")]
    pub txn_max_age_ms: Option<u64>,
    /// TEST ONLY, UNSAFE: commit transactions without checking what they read, so that the
    /// fault-injection harness can prove it catches the anomalies that follow.
    #[arg(long, hide = true)]
    pub unsafe_skip_txn_validation: bool,
    /// Quorum namespaces: run anti-entropy with one peer (in turn) every this many
    /// milliseconds (default 5000).
    #[arg(long, env = "DIALKV_ANTI_ENTROPY_MS")]
    pub anti_entropy_ms: Option<u64>,
    /// Quorum namespaces: keep a deletion's tombstone this many milliseconds after every
    /// replica has it before collecting it (default 3600000, one hour). A replica that
    /// comes back after a longer absence with its old data can bring deleted keys back.
    #[arg(long, env = "DIALKV_TOMBSTONE_GRACE_MS")]
    pub tombstone_grace_ms: Option<u64>,
    /// Quorum namespaces: the longest a coordinator waits for the replicas a request needs,
    /// in milliseconds (default 5000); past it a write answers `QUORUM_NOT_REACHED` and a
    /// read `QUORUM_UNAVAILABLE`.
    #[arg(long, env = "DIALKV_QUORUM_TIMEOUT_MS")]
    pub quorum_timeout_ms: Option<u64>,
    /// Quorum namespaces: a read that needs R > 1 replicas asks the R − 1 least busy peers
    /// first and the others after this many milliseconds without enough answers (a hedged
    /// read; default 10; 0 asks every peer at once).
    #[arg(long, env = "DIALKV_QUORUM_HEDGE_MS")]
    pub quorum_hedge_ms: Option<u64>,
    /// TEST ONLY, UNSAFE: serve LINEARIZABLE requests on quorum namespaces with one replica
    /// read and one written, quorums that need not intersect, so that the fault-injection
    /// harness can prove it catches the stale reads that follow.
    #[arg(long, hide = true)]
    pub unsafe_weak_quorums: bool,
}

/// The settings a TOML file may hold.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<ReplicaId>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    admin: Option<SocketAddr>,
    sync: Option<SyncPolicy>,
    max_key_bytes: Option<usize>,
    max_value_bytes: Option<usize>,
    dedup_ttl_secs: Option<u64>,
    retain_revisions: Option<u64>,
    write_queue: Option<usize>,
    session_wait_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    peers: Option<String>,
    join: Option<bool>,
    heartbeat_ms: Option<u64>,
    election_timeout_ms: Option<u64>,
    snapshot_every: Option<u64>,
    commit_timeout_ms: Option<u64>,
    max_transactions: Option<usize>,
    txn_max_age_ms: Option<u64>,
    anti_entropy_ms: Option<u64>,
    tombstone_grace_ms: Option<u64>,
    quorum_timeout_ms: Option<u64>,
    quorum_hedge_ms: Option<u64>,
}

/// The resolved configuration of a replica.
#[derive(Clone, Debug)]
pub struct Config {
    /// This replica's id.
    pub id: ReplicaId,
    /// The gRPC API address.
    pub listen: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The admin HTTP address, if any.
    pub admin: Option<SocketAddr>,
    /// The sync policy.
    pub sync: SyncPolicy,
    /// Key and value size limits.
    pub limits: Limits,
    /// How long request ids are remembered.
    pub dedup_ttl: Duration,
    /// Revisions of history kept readable.
    pub retain_revisions: u64,
    /// The write queue's capacity.
    pub write_queue: usize,
    /// The longest wait for a session token.
    pub session_wait: Duration,
    /// The longest wait for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// How the replica joins its cluster.
    pub bootstrap: Bootstrap,
    /// Raft settings.
    pub replication: ReplicationOptions,
    /// The most open interactive transactions.
    pub max_transactions: usize,
    /// The longest an interactive transaction may stay open.
    pub txn_max_age: Duration,
    /// Test only: skip transaction validation.
    pub unsafe_skip_txn_validation: bool,
    /// Quorum protocol settings.
    pub quorum: crate::quorum::QuorumOptions,
}

/// The largest key limit a server accepts.
pub const MAX_KEY_LIMIT: usize = 64 << 10;
/// The largest value limit a server accepts.
pub const MAX_VALUE_LIMIT: usize = 64 << 20;

impl Config {
    /// Resolves flags (and their environment variables) over the file over the defaults.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let id = args
            .id
            .or(file.id)
            .context("--id is required (or DIALKV_ID, or id in the config file)")?;
        if id == 0 {
            bail!("--id must be at least 1");
        }
        let data_dir = args.data_dir.clone().or(file.data_dir).context(
            "--data-dir is required (or DIALKV_DATA_DIR, or data_dir in the config file)",
        )?;
        let defaults = Limits::default();
        let limits = Limits {
            max_key_bytes: args
                .max_key_bytes
                .or(file.max_key_bytes)
                .unwrap_or(defaults.max_key_bytes),
            max_value_bytes: args
                .max_value_bytes
                .or(file.max_value_bytes)
                .unwrap_or(defaults.max_value_bytes),
        };
        if !(1..=MAX_KEY_LIMIT).contains(&limits.max_key_bytes) {
            bail!(
                "max_key_bytes must be 1 to {MAX_KEY_LIMIT}, not {}",
                limits.max_key_bytes
            );
        }
        if limits.max_value_bytes > MAX_VALUE_LIMIT {
            bail!(
                "max_value_bytes must be at most {MAX_VALUE_LIMIT}, not {}",
                limits.max_value_bytes
            );
        }
        let write_queue = args.write_queue.or(file.write_queue).unwrap_or(4096);
        if write_queue == 0 {
            bail!("write_queue must be at least 1");
        }
        let join = args.join || file.join.unwrap_or(false);
        let bootstrap = match (args.peers.clone().or(file.peers), join) {
            (Some(_), true) => bail!("--peers and --join exclude each other"),
            (Some(p), false) => Bootstrap::Members(parse_peers(&p, id)?),
            (None, true) => Bootstrap::Join,
            (None, false) => Bootstrap::Single,
        };
        let defaults = ReplicationOptions::default();
        let ms = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map_or(default, Duration::from_millis)
        };
        let replication = ReplicationOptions {
            heartbeat: ms(args.heartbeat_ms, file.heartbeat_ms, defaults.heartbeat),
            election_min: ms(
                args.election_timeout_ms,
                file.election_timeout_ms,
                defaults.election_min,
            ),
            snapshot_every: args
                .snapshot_every
                .or(file.snapshot_every)
                .unwrap_or(defaults.snapshot_every),
            commit_timeout: ms(
                args.commit_timeout_ms,
                file.commit_timeout_ms,
                defaults.commit_timeout,
            ),
            unsafe_stale_linearizable_reads: args.unsafe_stale_linearizable_reads,
        };
        if replication.election_min <= replication.heartbeat {
            bail!("the election timeout must be longer than the heartbeat interval");
        }
        if replication.snapshot_every == 0 {
            bail!("snapshot_every must be at least 1");
        }
        let quorum_defaults = crate::quorum::QuorumOptions::default();
        let quorum = crate::quorum::QuorumOptions {
            anti_entropy: ms(
                args.anti_entropy_ms,
                file.anti_entropy_ms,
                quorum_defaults.anti_entropy,
            ),
            tombstone_grace: ms(
                args.tombstone_grace_ms,
                file.tombstone_grace_ms,
                quorum_defaults.tombstone_grace,
            ),
            timeout: ms(
                args.quorum_timeout_ms,
                file.quorum_timeout_ms,
                quorum_defaults.timeout,
            ),
            hedge_after: ms(
                args.quorum_hedge_ms,
                file.quorum_hedge_ms,
                quorum_defaults.hedge_after,
            ),
            unsafe_weak_quorums: args.unsafe_weak_quorums,
            ..quorum_defaults
        };
        if quorum.anti_entropy.is_zero() {
            bail!("anti_entropy_ms must be at least 1");
        }
        if quorum.timeout.is_zero() {
            bail!("quorum_timeout_ms must be at least 1");
        }
        if quorum.hedge_after >= quorum.timeout {
            bail!(
                "quorum_hedge_ms ({} ms) must be below quorum_timeout_ms ({} ms): a hedged \
                 read asks the other peers before the first ones time out",
                quorum.hedge_after.as_millis(),
                quorum.timeout.as_millis()
            );
        }
        Ok(Config {
            quorum,
            bootstrap,
            replication,
            id,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7401))),
            data_dir,
            admin: args.admin.or(file.admin),
            sync: args.sync.or(file.sync).unwrap_or(SyncPolicy::Always),
            limits,
            dedup_ttl: Duration::from_secs(
                args.dedup_ttl_secs.or(file.dedup_ttl_secs).unwrap_or(600),
            ),
            retain_revisions: args
                .retain_revisions
                .or(file.retain_revisions)
                .unwrap_or(10_000),
            max_transactions: args
                .max_transactions
                .or(file.max_transactions)
                .unwrap_or(10_000),
            txn_max_age: Duration::from_millis(
                args.txn_max_age_ms
                    .or(file.txn_max_age_ms)
                    .unwrap_or(60_000),
            ),
            unsafe_skip_txn_validation: args.unsafe_skip_txn_validation,
            write_queue,
            session_wait: Duration::from_millis(
                args.session_wait_ms
                    .or(file.session_wait_ms)
                    .unwrap_or(1000),
            ),
            shutdown_grace: Duration::from_millis(
                args.shutdown_grace_ms
                    .or(file.shutdown_grace_ms)
                    .unwrap_or(10_000),
            ),
        })
    }
}

/// Parses `ID=HOST:PORT,...`; the map must name `me`.
pub fn parse_peers(
    text: &str,
    me: ReplicaId,
) -> anyhow::Result<std::collections::BTreeMap<ReplicaId, String>> {
    let mut peers = std::collections::BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .with_context(|| format!("--peers: {part:?} is not ID=HOST:PORT"))?;
        let id: ReplicaId = id
            .trim()
            .parse()
            .with_context(|| format!("--peers: {id:?} is not a replica id"))?;
        let addr = addr.trim();
        if id == 0
            || addr
                .rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            bail!("--peers: {part:?} is not ID=HOST:PORT with an id of at least 1");
        }
        if peers.insert(id, addr.to_string()).is_some() {
            bail!("--peers: replica {id} is listed twice");
        }
    }
    if !peers.contains_key(&me) {
        bail!("--peers must list this replica's own id {me}");
    }
    Ok(peers)
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("dialkv.toml");
        std::fs::write(
            &file,
            "id = 3\ndata_dir = \"/d\"\nsync = \"batch\"\nmax_key_bytes = 100\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(file.clone()),
            max_key_bytes: Some(200),
            ..Default::default()
        };
        let c = Config::resolve(&args).expect("resolves");
        assert_eq!(c.id, 3);
        assert_eq!(c.sync, SyncPolicy::Batch);
        assert_eq!(c.limits.max_key_bytes, 200);
        assert_eq!(c.limits.max_value_bytes, 1 << 20);
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 7401)));
        std::fs::write(&file, "id = 3\nbogus = 1\n").expect("write");
        let err = Config::resolve(&args).expect_err("unknown key");
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
    }

    #[test]
    fn quorum_timeouts_resolve_and_the_hedge_comes_first() {
        let base = ServeArgs {
            id: Some(1),
            data_dir: Some("/d".into()),
            ..Default::default()
        };
        let c = Config::resolve(&base).expect("defaults resolve");
        assert_eq!(c.quorum.timeout, Duration::from_secs(5));
        assert_eq!(c.quorum.hedge_after, Duration::from_millis(10));
        let c = Config::resolve(&ServeArgs {
            quorum_timeout_ms: Some(800),
            quorum_hedge_ms: Some(0),
            ..base.clone()
        })
        .expect("resolves");
        assert_eq!(c.quorum.timeout, Duration::from_millis(800));
        assert_eq!(c.quorum.hedge_after, Duration::ZERO);
        let err = Config::resolve(&ServeArgs {
            quorum_timeout_ms: Some(100),
            quorum_hedge_ms: Some(100),
            ..base.clone()
        })
        .expect_err("a hedge no earlier than the timeout");
        assert!(format!("{err:#}").contains("quorum_hedge_ms"), "{err:#}");
        let err = Config::resolve(&ServeArgs {
            quorum_timeout_ms: Some(0),
            ..base
        })
        .expect_err("no timeout");
        assert!(format!("{err:#}").contains("quorum_timeout_ms"), "{err:#}");
    }

    #[test]
    fn peers_parse_and_must_include_this_replica() {
        let p = parse_peers("1=127.0.0.1:7001, 2=127.0.0.1:7002,3=host:7003", 2).expect("parses");
        assert_eq!(p.len(), 3);
        assert_eq!(p[&3], "host:7003");
        assert!(parse_peers("1=127.0.0.1:7001", 2).is_err());
        assert!(parse_peers("1=127.0.0.1", 1).is_err());
        assert!(parse_peers("x=127.0.0.1:1", 1).is_err());
        assert!(parse_peers("1=a:1,1=b:2", 1).is_err());
    }

    #[test]
    fn id_and_data_dir_are_required() {
        assert!(Config::resolve(&ServeArgs::default()).is_err());
        let args = ServeArgs {
            id: Some(1),
            ..Default::default()
        };
        assert!(format!("{:#}", Config::resolve(&args).expect_err("no dir")).contains("--data-dir"));
    }
}
