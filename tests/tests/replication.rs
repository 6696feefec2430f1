//! Primary-backup replication with real replica processes: failover without loss, recovery,
//! snapshot catch-up, no stale linearizable reads from a deposed primary, read-your-writes on
//! a lagging backup, and membership changes under load.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dialkv_proto::v1;
use dialkv_tests::{wait_for, TestCluster, TestServer};
use tonic::transport::Channel;

type Acked = Arc<Mutex<BTreeMap<String, (String, Instant)>>>;

fn level(l: v1::ConsistencyLevel) -> Option<v1::Consistency> {
    Some(v1::Consistency {
        level: l as i32,
        ..Default::default()
    })
}

async fn client(node: &TestServer) -> v1::kv_client::KvClient<Channel> {
    let channel = Channel::from_shared(node.endpoint())
        .expect("endpoint")
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    v1::kv_client::KvClient::new(channel)
}

async fn put(
    kv: &mut v1::kv_client::KvClient<Channel>,
    key: &str,
    value: &str,
) -> Result<v1::PutResponse, tonic::Status> {
    kv.put(v1::PutRequest {
        namespace: "default".into(),
        key: Bytes::from(key.to_string()),
        value: Bytes::from(value.to_string()),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn get(
    kv: &mut v1::kv_client::KvClient<Channel>,
    key: &str,
    consistency: Option<v1::Consistency>,
    session: Option<v1::Session>,
) -> Result<v1::GetResponse, tonic::Status> {
    kv.get(v1::GetRequest {
        namespace: "default".into(),
        key: Bytes::from(key.to_string()),
        consistency,
        session,
        transaction: 0,
    })
    .await
    .map(tonic::Response::into_inner)
}

/// A write load: one writer per replica endpoint, each putting unique keys until stopped,
/// recording each acknowledged key with its value and time.
struct Load {
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &TestCluster) -> Load {
        let acked: Acked = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (w, node) in cluster.nodes.iter().enumerate() {
            let endpoint = node.endpoint();
            let (acked, stop) = (acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let channel = Channel::from_shared(endpoint)
                    .expect("endpoint")
                    .timeout(Duration::from_secs(3))
                    .connect_lazy();
                let mut kv = v1::kv_client::KvClient::new(channel);
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (key, value) = (format!("w{w}-{i:06}"), format!("v{w}-{i}"));
                    i += 1;
                    if put(&mut kv, &key, &value).await.is_ok() {
                        acked
                            .lock()
                            .expect("acked")
                            .insert(key, (value, Instant::now()));
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        Load { acked, stop, tasks }
    }

    fn count(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    /// Waits (up to 60 s) until `more` writes beyond those acknowledged so far are.
    async fn wait_for_more(&self, more: usize, what: &str) {
        let target = self.count() + more;
        wait_for(what, Duration::from_secs(60), || {
            let n = self.count();
            async move { n >= target }
        })
        .await
        .expect(what);
    }

    /// Stops the writers and returns every acknowledged write.
    async fn stop(self) -> BTreeMap<String, (String, Instant)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("writer task");
        }
        let acked = self.acked.lock().expect("acked");
        acked.clone()
    }
}

/// Checks every acknowledged write at LINEARIZABLE through `node`, retrying a read that finds
/// no primary (an election may still be settling) for up to 30 s, as a client would.
async fn check_acked(node: &TestServer, acked: &BTreeMap<String, (String, Instant)>) {
    let mut kv = client(node).await;
    let until = Instant::now() + Duration::from_secs(30);
    for (key, (value, _)) in acked {
        let got = loop {
            match get(
                &mut kv,
                key,
                level(v1::ConsistencyLevel::Linearizable),
                None,
            )
            .await
            {
                Ok(got) => break got,
                Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("reading {key}: {e}"),
            }
        };
        assert!(got.found, "acknowledged key {key} was lost");
        assert_eq!(got.value, Bytes::from(value.clone()), "key {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    let load = Load::start(&cluster);
    load.wait_for_more(100, "100 acknowledged writes").await;
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a primary");
    let killed_at = Instant::now();
    cluster.node(leader).kill();
    let new_leader = cluster
        .new_leader(leader, Duration::from_secs(30))
        .await
        .expect("a new primary");
    assert_ne!(new_leader, leader);
    load.wait_for_more(50, "writes after the failover").await;
    let acked = load.stop().await;
    let first_after = acked
        .values()
        .map(|(_, t)| *t)
        .filter(|t| *t > killed_at)
        .min()
        .expect("writes after the kill");
    eprintln!(
        "failover: unavailability window {} ms (kill of the primary to the next acknowledged write)",
        first_after.duration_since(killed_at).as_millis()
    );
    check_acked(&cluster.nodes[(new_leader - 1) as usize], &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_replica_and_restarting_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    let load = Load::start(&cluster);
    load.wait_for_more(200, "200 acknowledged writes").await;
    for n in cluster.nodes.iter_mut() {
        n.kill();
    }
    let acked = load.stop().await;
    for n in cluster.nodes.iter_mut() {
        n.restart().expect("restart");
    }
    let leader = cluster
        .leader(Duration::from_secs(60))
        .await
        .expect("a primary after restart");
    check_acked(&cluster.nodes[(leader - 1) as usize], &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_backup_catches_up_by_snapshot_and_serves_eventual_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(dir.path(), 3, &["--snapshot-every", "20"])
        .await
        .expect("cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a primary");
    // A backup other than replica 1 (which bootstraps a cluster when it starts empty).
    let backup = (2..=3).find(|id| *id != leader).expect("a backup");
    let mut kv = client(&cluster.nodes[(leader - 1) as usize]).await;
    for i in 0..150 {
        put(&mut kv, &format!("k{i:03}"), &format!("v{i}"))
            .await
            .expect("put");
    }
    let target = cluster.nodes[(leader - 1) as usize]
        .node_status()
        .await
        .expect("status")
        .applied_index;
    let node = cluster.node(backup);
    node.kill();
    std::fs::remove_dir_all(node.data_dir()).expect("wiping the backup");
    node.restart().expect("restart");
    let node = &cluster.nodes[(backup - 1) as usize];
    wait_for(
        "the wiped backup to catch up",
        Duration::from_secs(60),
        || async {
            node.node_status()
                .await
                .is_some_and(|s| s.applied_index >= target)
        },
    )
    .await
    .expect("catch-up");
    let log = node.log();
    assert!(
        log.contains("installed snapshot"),
        "the backup caught up without a snapshot; log:\n{log}"
    );
    let mut backup_kv = client(node).await;
    for i in (0..150).step_by(7) {
        let got = get(
            &mut backup_kv,
            &format!("k{i:03}"),
            level(v1::ConsistencyLevel::Eventual),
            None,
        )
        .await
        .expect("eventual read");
        assert!(got.found, "k{i:03} missing at the caught-up backup");
        assert_eq!(got.value, Bytes::from(format!("v{i}")));
        assert_eq!(
            got.header.expect("header").replica_id,
            backup,
            "served by the backup itself"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_primary_never_answers_a_linearizable_read_with_stale_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    let old = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a primary");
    let mut old_kv = client(&cluster.nodes[(old - 1) as usize]).await;
    put(&mut old_kv, "k", "old").await.expect("put");
    // Freeze the primary: the others elect a new one and accept a write it cannot know of.
    cluster.node(old).signal("STOP");
    let new = cluster
        .new_leader(old, Duration::from_secs(30))
        .await
        .expect("a new primary");
    let mut new_kv = client(&cluster.nodes[(new - 1) as usize]).await;
    put(&mut new_kv, "k", "new")
        .await
        .expect("put at the new primary");
    // Thaw it and read at once, before it hears of the new term.
    cluster.node(old).signal("CONT");
    let mut reads = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        match get(
            &mut old_kv,
            "k",
            level(v1::ConsistencyLevel::Linearizable),
            None,
        )
        .await
        {
            Ok(r) => {
                assert_eq!(
                    r.value,
                    Bytes::from_static(b"new"),
                    "a stale linearizable read from the deposed primary"
                );
                reads += 1;
            }
            Err(e) => assert_eq!(e.code(), tonic::Code::Unavailable, "{e}"),
        }
    }
    assert!(
        reads > 0,
        "the deposed primary never answered (directly or forwarded)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_holds_at_a_lagging_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a primary");
    let backup = (1..=3).find(|id| *id != leader).expect("a backup");
    let mut leader_kv = client(&cluster.nodes[(leader - 1) as usize]).await;
    put(&mut leader_kv, "k", "old").await.expect("put");
    for round in 0..5 {
        // The backup is frozen while the session writes, so it is behind when it thaws.
        cluster.node(backup).signal("STOP");
        let value = format!("new-{round}");
        let written = put(&mut leader_kv, "k", &value).await.expect("put");
        let token = written.header.expect("header").session;
        cluster.node(backup).signal("CONT");
        let mut backup_kv = client(&cluster.nodes[(backup - 1) as usize]).await;
        let session = v1::Session {
            token,
            guarantees: Some(v1::SessionGuarantees {
                read_your_writes: true,
                monotonic_reads: true,
                ..Default::default()
            }),
        };
        match get(
            &mut backup_kv,
            "k",
            level(v1::ConsistencyLevel::Sequential),
            Some(session),
        )
        .await
        {
            Ok(r) => {
                assert_eq!(
                    r.value,
                    Bytes::from(value.clone()),
                    "round {round}: the session read an older value"
                );
                assert_eq!(r.header.expect("header").replica_id, backup);
            }
            // Waiting too long is allowed to end in SESSION_BEHIND (the client moves on).
            Err(e) => assert_eq!(e.code(), tonic::Code::Unavailable, "round {round}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_and_removing_replicas_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    let load = Load::start(&cluster);
    // Replica 4 starts empty and waits to be added.
    let dir4 = dir.path().join("n4");
    std::fs::create_dir_all(&dir4).expect("dir");
    let fourth = TestServer::start_with_id(&dir4, 4, &["--join"]).expect("start replica 4");
    let channel = cluster.nodes[0].channel().await;
    let mut admin = v1::cluster_client::ClusterClient::new(channel);
    let added = admin
        .add_node(v1::AddNodeRequest {
            id: 4,
            address: fourth.addr.to_string(),
        })
        .await
        .expect("add replica 4")
        .into_inner();
    assert!(added.voters.contains(&4), "{added:?}");
    // Remove the primary itself: it steps down once the change commits, and the remaining
    // replicas (replica 4 among them) elect a new one.
    let removed_id = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a primary");
    let removed = admin
        .remove_node(v1::RemoveNodeRequest { id: removed_id })
        .await
        .expect("remove the primary")
        .into_inner();
    assert!(
        !removed.voters.contains(&removed_id) && removed.voters.contains(&4),
        "{removed:?}"
    );
    let missing = admin
        .remove_node(v1::RemoveNodeRequest { id: 9 })
        .await
        .expect_err("not a member");
    assert_eq!(missing.code(), tonic::Code::FailedPrecondition, "{missing}");
    load.wait_for_more(50, "writes after the changes").await;
    let acked = load.stop().await;
    check_acked(&fourth, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_staleness_reads_are_refused_once_a_backup_is_provably_too_stale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a primary");
    let backup = (1..=3).find(|id| *id != leader).expect("a backup");
    let mut leader_kv = client(&cluster.nodes[(leader - 1) as usize]).await;
    put(&mut leader_kv, "k", "v").await.expect("put");
    let bounded = |ms| {
        Some(v1::Consistency {
            level: v1::ConsistencyLevel::BoundedStaleness as i32,
            max_staleness_ms: ms,
            ..Default::default()
        })
    };
    let mut backup_kv = client(&cluster.nodes[(backup - 1) as usize]).await;
    // With the primary's heartbeats arriving, the backup is fresh within a generous bound.
    let until = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        match get(&mut backup_kv, "k", bounded(5_000), None).await {
            Ok(r) => break r,
            Err(e) if Instant::now() < until => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the backup never served a bounded read: {e}"),
        }
    };
    let header = fresh.header.expect("header");
    assert_eq!(header.replica_id, backup);
    assert_eq!(
        header.served_level,
        v1::ConsistencyLevel::BoundedStaleness as i32
    );
    assert!(header.lag_ms <= 5_000, "{header:?}");
    // The put was acknowledged once a majority had it, which need not include this backup:
    // wait until the backup has applied it, so that what it serves once cut off is known.
    wait_for(
        "the backup to apply the put",
        Duration::from_secs(10),
        || {
            let mut kv = backup_kv.clone();
            async move {
                get(&mut kv, "k", level(v1::ConsistencyLevel::Eventual), None)
                    .await
                    .is_ok_and(|r| r.value == Bytes::from_static(b"v"))
            }
        },
    )
    .await
    .expect("the backup applies the put");
    // Freeze the primary: the backup hears nothing more, and within a second it can no
    // longer prove it is within 300 ms of the primary.
    cluster.node(leader).signal("STOP");
    wait_for(
        "the backup to refuse a 300 ms bound",
        Duration::from_secs(10),
        || {
            let mut kv = backup_kv.clone();
            let bounded = bounded(300);
            async move {
                match get(&mut kv, "k", bounded, None).await {
                    Err(e) => {
                        use tonic_types::StatusExt;
                        e.code() == tonic::Code::Unavailable
                            && e.get_details_error_info()
                                .is_some_and(|i| i.reason == "STALENESS_BOUND_EXCEEDED")
                    }
                    Ok(_) => false,
                }
            }
        },
    )
    .await
    .expect("a stale backup refuses");
    // EVENTUAL still answers.
    let eventual = get(
        &mut backup_kv,
        "k",
        level(v1::ConsistencyLevel::Eventual),
        None,
    )
    .await
    .expect("eventual read");
    assert_eq!(eventual.value, Bytes::from_static(b"v"));
    cluster.node(leader).signal("CONT");
}

/// Writes sent together share log entries (the primary batches the writes that queue behind
/// the entries in flight), yet each keeps its own revision and outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_log_entries_and_keep_their_own_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    let leader = cluster
        .leader(Duration::from_secs(60))
        .await
        .expect("a primary");
    let primary = &cluster.nodes[(leader - 1) as usize];
    let before = primary.node_status().await.expect("status").last_log_index;
    const WRITES: u64 = 256;
    let kv = client(primary).await;
    let mut tasks = Vec::new();
    for i in 0..WRITES {
        let mut kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let written = put(&mut kv, &format!("batch-{i}"), &format!("value-{i}"))
                .await
                .expect("put");
            written.version.expect("a version").revision
        }));
    }
    let mut revisions = BTreeMap::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let revision = t.await.expect("task");
        assert!(
            revisions.insert(revision, i).is_none(),
            "two writes got revision {revision}"
        );
    }
    let after = primary.node_status().await.expect("status").last_log_index;
    assert!(
        after - before < WRITES,
        "{WRITES} concurrent writes took {} log entries: none were batched",
        after - before
    );
    let mut kv = kv.clone();
    for (revision, i) in revisions {
        let got = get(
            &mut kv,
            &format!("batch-{i}"),
            level(v1::ConsistencyLevel::Linearizable),
            None,
        )
        .await
        .expect("get");
        assert_eq!(got.value, Bytes::from(format!("value-{i}")));
        assert_eq!(got.version.expect("version").revision, revision);
    }
}
