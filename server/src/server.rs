//! Starting and stopping a replica: [`run`] serves the gRPC API and the admin HTTP port on
//! listeners its caller bound, until `shutdown` resolves.
//!
//! Taking the listeners and the shutdown future from the caller (as mini-redis's
//! `server::run` does) lets tests start servers on port 0 and stop them cleanly.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dialkv_proto::v1::{kv_server::KvServer, namespaces_server::NamespacesServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::limits::MAX_SCAN_PAGE_BYTES;
use crate::metrics::Metrics;
use crate::replication::network::{RaftService, MAX_RAFT_MESSAGE_BYTES};
use crate::replication::{Bootstrap, Replica};
use crate::service::cluster::ClusterService;
use crate::service::kv::KvService;
use crate::service::namespaces::NamespacesService;
use crate::service::txn::Transactions;
use crate::service::Node;
use crate::storage::rocksdb::RocksEngine;
use crate::storage::store::{Command, Store, StoreOptions};
use crate::storage::writer::{Writer, WriterOptions};
use crate::storage::Engine;
use dialkv_proto::replication::raft_server::RaftServer;
use dialkv_proto::v1::cluster_server::ClusterServer;

/// How often expired dedup records are swept.
const DEDUP_SWEEP_EVERY: Duration = Duration::from_secs(30);
/// The most concurrent requests one connection may have in flight.
const CONCURRENCY_PER_CONNECTION: usize = 1024;

/// Serves the replica described by `config` on `listener` (and the admin port on `admin`)
/// until `shutdown` resolves; then stops taking requests, finishes those in flight (for at
/// most the configured grace), writes what the writer holds and closes the store.
pub async fn run(
    config: Config,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let engine: Arc<dyn Engine> = Arc::new(
        RocksEngine::open(&config.data_dir.join("db"))
            .with_context(|| format!("opening storage in {}", config.data_dir.display()))?,
    );
    let metrics = Arc::new(Metrics::new());
    let writer_options = WriterOptions {
        sync: config.sync,
        queue_capacity: config.write_queue,
        ..Default::default()
    };
    let (writer, writer_thread) = Writer::start(engine.clone(), writer_options, metrics.clone())?;
    let store = Arc::new(Store::open(
        engine,
        StoreOptions {
            retain_revisions: config.retain_revisions,
            unsafe_skip_txn_validation: config.unsafe_skip_txn_validation,
        },
    )?);
    let api_addr = listener.local_addr()?;
    let advertised = match &config.bootstrap {
        Bootstrap::Members(m) => m.get(&config.id).cloned(),
        _ => None,
    }
    .unwrap_or_else(|| api_addr.to_string());
    let replica = Replica::start(
        config.id,
        advertised,
        config.bootstrap.clone(),
        store.clone(),
        writer,
        config.replication.clone(),
    )
    .await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (quorum, quorum_thread) = crate::quorum::Quorum::start(
        config.id,
        store.engine().clone(),
        store.clone(),
        replica.clone(),
        config.quorum.clone(),
        metrics.clone(),
        stop_rx.clone(),
    )?;
    let node = Arc::new(Node {
        id: config.id,
        store: store.clone(),
        replica: replica.clone(),
        quorum: quorum.clone(),
        write_permits: Arc::new(tokio::sync::Semaphore::new(config.write_queue)),
        txns: Transactions::new(config.max_transactions, config.txn_max_age),
        retain_revisions: config.retain_revisions,
        limits: config.limits,
        metrics: metrics.clone(),
        session_wait: config.session_wait,
    });

    let sweeper = tokio::spawn(sweep_dedup(node.clone(), config.dedup_ttl, stop_rx.clone()));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<KvServer<KvService>>().await;
    health_reporter
        .set_serving::<NamespacesServer<NamespacesService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(dialkv_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;

    let max_decode = config.limits.max_decoding_message_bytes();
    let max_encode = MAX_SCAN_PAGE_BYTES + 2 * config.limits.max_value_bytes + (1 << 20);
    let kv = KvServer::new(KvService::new(node.clone()))
        .max_decoding_message_size(max_decode)
        .max_encoding_message_size(max_encode);
    let namespaces = NamespacesServer::new(NamespacesService::new(node.clone()))
        .max_decoding_message_size(max_decode)
        .max_encoding_message_size(max_encode);
    let cluster = ClusterServer::new(ClusterService::new(node.clone()));
    let raft = RaftServer::new(RaftService::new(
        config.id,
        replica.raft().clone(),
        replica.freshness().clone(),
    ))
    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
    let quorum_peer = dialkv_proto::replication::quorum_server::QuorumServer::new(
        crate::quorum::QuorumService::new(quorum.clone()),
    )
    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);

    let admin_task = match admin {
        Some(admin) => {
            let addr = admin.local_addr()?;
            println!("dialkv: replica {} serving admin HTTP on {addr}", config.id);
            Some(tokio::spawn(crate::admin::serve(
                admin,
                metrics.clone(),
                wait_stop(stop_rx.clone()),
            )))
        }
        None => None,
    };
    let ready = {
        let replica = replica.clone();
        let single = config.bootstrap == Bootstrap::Single;
        let id = config.id;
        async move {
            // A cluster of one elects itself at once: wait for it, so the first request finds
            // a primary. A replica of a larger cluster needs its peers to elect anyone.
            if single {
                let wait = replica.raft().wait(Some(Duration::from_secs(30)));
                if let Err(e) = wait
                    .state(openraft::ServerState::Leader, "single-replica leadership")
                    .await
                {
                    tracing::warn!(error = %e, "no leadership yet");
                }
            }
            println!("dialkv: replica {id} serving gRPC on {api_addr}");
        }
    };
    tracing::info!(replica = config.id, %api_addr, data_dir = %config.data_dir.display(), "serving");

    // Shutdown: flip the stop flag when the caller's future resolves.
    // Stop on the caller's signal, or when the Raft group fails (a replica whose replication
    // has stopped must not go on answering as if it were part of the cluster).
    let raft_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let stopper = {
        let stop_tx = stop_tx.clone();
        let reporter = health_reporter.clone();
        let replica = replica.clone();
        let raft_failure = raft_failure.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => {}
                reason = replica.failed() => {
                    tracing::error!(%reason, "replication stopped; shutting the replica down");
                    *raft_failure.lock().expect("failure lock poisoned") = Some(reason);
                }
            }
            reporter.set_not_serving::<KvServer<KvService>>().await;
            let _ = stop_tx.send(true);
        })
    };
    let grace = config.shutdown_grace;
    // Boxed so that it can be dropped (with the services and their writer handles) before
    // the writer thread is joined.
    let mut serve = Box::pin(
        tonic::transport::Server::builder()
            .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(kv)
            .add_service(namespaces)
            .add_service(cluster)
            .add_service(raft)
            .add_service(quorum_peer)
            .serve_with_incoming_shutdown(incoming(listener), wait_stop(stop_rx.clone())),
    );
    let (served, ()) = tokio::join!(
        async {
            tokio::select! {
                r = &mut serve => r,
                _ = async {
                    wait_stop(stop_rx.clone()).await;
                    tokio::time::sleep(grace).await;
                } => {
                    tracing::warn!(?grace, "in-flight requests did not finish within the shutdown grace; closing");
                    Ok(())
                }
            }
        },
        ready
    );
    stopper.abort();
    let _ = stop_tx.send(true);
    drop(serve);
    let _ = sweeper.await;
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    replica.shutdown().await;
    drop(replica);
    drop(node);
    // The writer thread ends once the last writer handle is gone, after writing its queue.
    tokio::task::spawn_blocking(move || writer_thread.join()).await?;
    // The quorum applier ends once its background tasks (stopped above) let go of it.
    drop(quorum);
    let joined = tokio::task::spawn_blocking(move || quorum_thread.join());
    if tokio::time::timeout(Duration::from_secs(5), joined)
        .await
        .is_err()
    {
        tracing::warn!("the quorum applier did not stop within 5 s");
    }
    drop(store);
    tracing::info!(replica = config.id, "stopped");
    served.context("serving gRPC")?;
    let failure = raft_failure.lock().expect("failure lock poisoned").take();
    match failure {
        Some(reason) => Err(anyhow::anyhow!("replication stopped: {reason}")),
        None => Ok(()),
    }
}

/// The accepted connections of `listener`, with Nagle's algorithm off: a reply is a few small
/// HTTP/2 frames, and holding them back for the peer's delayed ACK adds about 40 ms.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        if let Err(e) = conn.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        Ok(conn)
    })
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// Has the primary remove expired dedup records every [`DEDUP_SWEEP_EVERY`] until stopped.
/// The cut-off travels in the log entry, so every replica removes the same records.
async fn sweep_dedup(node: Arc<Node>, ttl: Duration, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(DEDUP_SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopped = wait_stop(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tick.tick() => {}
        }
        if !node.replica.is_leader() {
            continue;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let before_ms = now.saturating_sub(ttl.as_millis() as u64);
        match node.write(Command::SweepDedup { before_ms }).await {
            Ok(outcome) => tracing::debug!(?outcome, "swept expired request ids"),
            Err(e) => tracing::debug!(error = %e, "sweeping expired request ids did not run"),
        }
    }
}
