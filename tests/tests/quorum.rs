//! Quorum (leaderless) namespaces with real replica processes: every level on three
//! replicas, siblings that appear and collapse, a replica that was down receiving what it
//! missed, a replica restored from an old copy converging through anti-entropy, and a
//! deleted key that does not come back.

use std::time::Duration;

use bytes::Bytes;
use dialkv_proto::v1;
use dialkv_tests::{http_get, wait_for, TestCluster, TestServer};
use tonic::transport::Channel;
use tonic::Code;

type Kv = v1::kv_client::KvClient<Channel>;

async fn client(node: &TestServer) -> Kv {
    let channel = Channel::from_shared(node.endpoint())
        .expect("endpoint")
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    v1::kv_client::KvClient::new(channel)
}

fn at(level: v1::ConsistencyLevel) -> Option<v1::Consistency> {
    Some(v1::Consistency {
        level: level as i32,
        ..Default::default()
    })
}

/// Creates quorum namespace `name` and waits until every running replica knows it.
async fn create(cluster: &TestCluster, name: &str, conflicts: v1::ConflictPolicy) {
    let mut ns = cluster.nodes[0].namespaces().await;
    ns.create_namespace(v1::CreateNamespaceRequest {
        spec: Some(v1::NamespaceSpec {
            name: name.into(),
            protocol: v1::Protocol::Quorum as i32,
            conflicts: conflicts as i32,
            ..Default::default()
        }),
    })
    .await
    .expect("create");
    for node in cluster.nodes.iter().filter(|n| n.is_running()) {
        let mut kv = client(node).await;
        wait_for(
            "the namespace on every replica",
            Duration::from_secs(20),
            || {
                let mut kv = kv.clone();
                let name = name.to_string();
                async move {
                    kv.get(v1::GetRequest {
                        namespace: name,
                        key: Bytes::from_static(b"probe"),
                        consistency: at(v1::ConsistencyLevel::Eventual),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
                }
            },
        )
        .await
        .expect("namespace known");
        let _ = &mut kv;
    }
}

async fn put(
    kv: &mut Kv,
    ns: &str,
    key: &str,
    value: &str,
    level: v1::ConsistencyLevel,
) -> Result<v1::PutResponse, tonic::Status> {
    kv.put(v1::PutRequest {
        namespace: ns.into(),
        key: Bytes::from(key.to_string()),
        value: Bytes::from(value.to_string()),
        consistency: at(level),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn get(
    kv: &mut Kv,
    ns: &str,
    key: &str,
    level: v1::ConsistencyLevel,
) -> Result<v1::GetResponse, tonic::Status> {
    kv.get(v1::GetRequest {
        namespace: ns.into(),
        key: Bytes::from(key.to_string()),
        consistency: at(level),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Waits until `node` reads `key` as `value` (`None`: absent) at EVENTUAL.
async fn converges(
    node: &TestServer,
    ns: &str,
    key: &str,
    value: Option<&str>,
    deadline: Duration,
) -> anyhow::Result<()> {
    let kv = client(node).await;
    wait_for(
        &format!("{key} = {value:?} at replica {}", node.id()),
        deadline,
        || {
            let mut kv = kv.clone();
            async move {
                match get(&mut kv, ns, key, v1::ConsistencyLevel::Eventual).await {
                    Ok(r) => match value {
                        Some(v) => r.found && r.value == v.as_bytes(),
                        None => !r.found,
                    },
                    Err(_) => false,
                }
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_level_on_three_replicas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    create(&cluster, "q", v1::ConflictPolicy::Lww).await;
    let mut kvs = Vec::new();
    for n in &cluster.nodes {
        kvs.push(client(n).await);
    }
    use v1::ConsistencyLevel as L;

    // LINEARIZABLE (ABD): a write at one replica is read at once at any other.
    for (i, value) in ["a", "b", "c"].into_iter().enumerate() {
        let p = put(&mut kvs[i], "q", "lin", value, L::Linearizable)
            .await
            .expect("put");
        assert_eq!(
            p.header.expect("header").served_level,
            L::Linearizable as i32
        );
        let r = get(&mut kvs[(i + 1) % 3], "q", "lin", L::Linearizable)
            .await
            .expect("get");
        assert!(r.found);
        assert_eq!(
            r.value,
            value.as_bytes(),
            "a linearizable read sees the last write"
        );
        assert!(r.version.expect("version").revision > 0);
    }
    // SEQUENTIAL is served as LINEARIZABLE.
    let r = get(&mut kvs[0], "q", "lin", L::Sequential)
        .await
        .expect("get");
    assert_eq!(
        r.header.expect("header").served_level,
        L::Linearizable as i32
    );

    // R + W ≤ N is refused for LINEARIZABLE, naming the field.
    let weak = kvs[0]
        .get(v1::GetRequest {
            namespace: "q".into(),
            key: Bytes::from_static(b"lin"),
            consistency: Some(v1::Consistency {
                level: L::Linearizable as i32,
                read_quorum: 1,
                write_quorum: 1,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("R + W <= N");
    assert_eq!(weak.code(), Code::InvalidArgument);
    assert!(
        weak.message().contains("consistency.read_quorum"),
        "{}",
        weak.message()
    );

    // EVENTUAL with W = 1 converges everywhere.
    put(&mut kvs[2], "q", "ev", "x", L::Eventual)
        .await
        .expect("put");
    for n in &cluster.nodes {
        converges(n, "q", "ev", Some("x"), Duration::from_secs(20))
            .await
            .expect("converges");
    }

    // CAUSAL: a session that wrote at replica 1 reads its write at replica 2 (the replica
    // waits until it has the session's causal past).
    let w = kvs[0]
        .put(v1::PutRequest {
            namespace: "q".into(),
            key: Bytes::from_static(b"c1"),
            value: Bytes::from_static(b"v1"),
            consistency: at(L::Causal),
            ..Default::default()
        })
        .await
        .expect("put")
        .into_inner();
    let token = w.header.expect("header").session;
    let r = kvs[1]
        .get(v1::GetRequest {
            namespace: "q".into(),
            key: Bytes::from_static(b"c1"),
            consistency: at(L::Causal),
            session: Some(v1::Session {
                token,
                guarantees: None,
            }),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert!(
        r.found && r.value == "v1".as_bytes(),
        "the session's causal past is visible"
    );
    assert_eq!(r.header.expect("header").served_level, L::Causal as i32);

    // BOUNDED_STALENESS within a generous bound, once the replicas have heard each other.
    wait_for("a bounded-staleness read", Duration::from_secs(20), || {
        let mut kv = kvs[1].clone();
        async move {
            kv.get(v1::GetRequest {
                namespace: "q".into(),
                key: Bytes::from_static(b"ev"),
                consistency: Some(v1::Consistency {
                    level: L::BoundedStaleness as i32,
                    max_staleness_ms: 5_000,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .is_ok_and(|r| r.into_inner().found)
        }
    })
    .await
    .expect("bounded staleness");

    // Scans are served at EVENTUAL, refused at LINEARIZABLE.
    let scan = kvs[0]
        .scan(v1::ScanRequest {
            namespace: "q".into(),
            consistency: at(L::Eventual),
            ..Default::default()
        })
        .await
        .expect("scan")
        .into_inner();
    assert!(scan.items.iter().any(|i| i.key == "ev".as_bytes()));
    let lin_scan = kvs[0]
        .scan(v1::ScanRequest {
            namespace: "q".into(),
            ..Default::default()
        })
        .await
        .expect_err("linearizable scan");
    assert_eq!(lin_scan.code(), Code::FailedPrecondition);

    // Compare-and-set needs a primary-backup namespace.
    let cas = kvs[0]
        .compare_and_set(v1::CompareAndSetRequest {
            namespace: "q".into(),
            key: Bytes::from_static(b"ev"),
            condition: Some(v1::Condition {
                kind: Some(v1::condition::Kind::Absent(v1::KeyAbsent {})),
            }),
            ..Default::default()
        })
        .await
        .expect_err("cas");
    assert_eq!(cas.code(), Code::FailedPrecondition);

    // A malformed context is refused, naming the field, and nothing is written.
    let bad = kvs[0]
        .put(v1::PutRequest {
            namespace: "q".into(),
            key: Bytes::from_static(b"never"),
            value: Bytes::from_static(b"x"),
            context: Bytes::from_static(b"junk"),
            consistency: at(L::Eventual),
            ..Default::default()
        })
        .await
        .expect_err("bad context");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("context"), "{}", bad.message());
    let r = get(&mut kvs[0], "q", "never", L::Eventual)
        .await
        .expect("get");
    assert!(!r.found);

    // A well-formed context no replica could have handed out — its newest version stamped
    // at the end of time — is refused too: it would drag every replica's clock along.
    let mut future = vec![1u8]; // format version
    future.extend_from_slice(&0u64.to_le_bytes()); // an empty vector clock
    future.extend_from_slice(&(u64::MAX - 1).to_le_bytes()); // floor: wall-clock ns
    future.extend_from_slice(&0u32.to_le_bytes()); // floor: logical
    future.extend_from_slice(&1u64.to_le_bytes()); // floor: replica
    let refused = kvs[0]
        .put(v1::PutRequest {
            namespace: "q".into(),
            key: Bytes::from_static(b"never"),
            value: Bytes::from_static(b"x"),
            context: Bytes::from(future),
            consistency: at(L::Eventual),
            ..Default::default()
        })
        .await
        .expect_err("a context from the future");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("ahead"), "{}", refused.message());

    // Under last-writer-wins a write wins over what it did not see: a LINEARIZABLE write
    // sent with an old context still becomes the value.
    let old = get(&mut kvs[0], "q", "lin", L::Linearizable)
        .await
        .expect("get")
        .version
        .expect("version")
        .context;
    put(&mut kvs[1], "q", "lin", "newer", L::Linearizable)
        .await
        .expect("put");
    kvs[2]
        .put(v1::PutRequest {
            namespace: "q".into(),
            key: Bytes::from_static(b"lin"),
            value: Bytes::from_static(b"newest"),
            context: old,
            consistency: at(L::Linearizable),
            ..Default::default()
        })
        .await
        .expect("put with an old context");
    let r = get(&mut kvs[0], "q", "lin", L::Linearizable)
        .await
        .expect("get");
    assert_eq!(r.value, "newest".as_bytes(), "the last write wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn siblings_appear_for_concurrent_writes_and_collapse_after_a_resolving_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    create(&cluster, "s", v1::ConflictPolicy::Siblings).await;
    let mut a = client(&cluster.nodes[0]).await;
    let mut b = client(&cluster.nodes[1]).await;
    use v1::ConsistencyLevel as L;
    // Two blind writes (no context) at two replicas are concurrent.
    put(&mut a, "s", "k", "from-a", L::Eventual)
        .await
        .expect("put a");
    put(&mut b, "s", "k", "from-b", L::Eventual)
        .await
        .expect("put b");
    let c = client(&cluster.nodes[2]).await;
    wait_for(
        "both siblings at replica 3",
        Duration::from_secs(20),
        || {
            let mut c = c.clone();
            async move {
                get(&mut c, "s", "k", L::Eventual)
                    .await
                    .is_ok_and(|r| r.siblings.len() == 2)
            }
        },
    )
    .await
    .expect("siblings");
    let mut c = c.clone();
    let read = get(&mut c, "s", "k", L::Eventual).await.expect("get");
    let mut values: Vec<_> = read.siblings.iter().map(|s| s.value.clone()).collect();
    values.sort();
    assert_eq!(
        values,
        vec![Bytes::from_static(b"from-a"), Bytes::from_static(b"from-b")]
    );
    // A write with the context read supersedes both.
    let context = read.version.expect("version").context;
    c.put(v1::PutRequest {
        namespace: "s".into(),
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"merged"),
        context,
        consistency: at(L::Eventual),
        ..Default::default()
    })
    .await
    .expect("resolving put");
    for n in &cluster.nodes {
        let kv = client(n).await;
        wait_for("one value everywhere", Duration::from_secs(20), || {
            let mut kv = kv.clone();
            async move {
                get(&mut kv, "s", "k", L::Eventual)
                    .await
                    .is_ok_and(|r| r.siblings.is_empty() && r.value == "merged".as_bytes())
            }
        })
        .await
        .expect("collapsed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_was_down_receives_the_writes_it_missed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    create(&cluster, "h", v1::ConflictPolicy::Lww).await;
    cluster.node(3).kill();
    let mut a = client(&cluster.nodes[0]).await;
    // W = 2 of 3 still succeeds with one replica down.
    for i in 0..50 {
        a.put(v1::PutRequest {
            namespace: "h".into(),
            key: Bytes::from(format!("k{i}")),
            value: Bytes::from(format!("v{i}")),
            consistency: Some(v1::Consistency {
                level: v1::ConsistencyLevel::Eventual as i32,
                write_quorum: 2,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("put with W = 2");
    }
    cluster.node(3).restart().expect("restart");
    for i in [0, 25, 49] {
        converges(
            &cluster.nodes[2],
            "h",
            &format!("k{i}"),
            Some(&format!("v{i}")),
            Duration::from_secs(30),
        )
        .await
        .expect("handed off");
    }
}

/// A coordinator that has the answers it needs lets its calls to a slower replica run to
/// their end. Cancelled, each would reset an HTTP/2 stream that replica had not accepted yet,
/// and a replica that sees more than a few such resets closes the whole connection (h2's
/// rapid-reset guard), failing every other call on it. Replica 2 is paused while replica 1
/// coordinates linearizable writes (replicas 1 and 3 answer them); resumed, it serves every
/// merge that was waiting for it. No write waits on it meanwhile: the first write's read
/// asks replica 2 first (peers are taken in id order, none busy yet) and is hedged to
/// replica 3; later reads find replica 2 busy with the calls it has not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_to_a_slower_replica_run_to_their_end() {
    // Few enough that the last is sent well within the coordinator's 5 s timeout of the
    // first even on a slow machine (a call that times out is cancelled after all).
    const WRITES: u64 = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    create(&cluster, "s", v1::ConflictPolicy::Lww).await;
    let mut a = client(&cluster.nodes[0]).await;
    let slow = &cluster.nodes[1];
    let before = merges_served(slow).await.expect("metrics of replica 2");
    slow.signal("STOP");
    for i in 0..WRITES {
        let started = std::time::Instant::now();
        put(
            &mut a,
            "s",
            &format!("k{i}"),
            "v",
            v1::ConsistencyLevel::Linearizable,
        )
        .await
        .expect("a linearizable put with replica 2 paused");
        // Far under the 5 s coordinator timeout that waiting on replica 2 would take.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "put {i} took {:?} with replica 2 paused",
            started.elapsed()
        );
    }
    slow.signal("CONT");
    let waited = wait_for(
        "replica 2 to serve every merge sent to it",
        Duration::from_secs(20),
        || async {
            merges_served(slow)
                .await
                .is_some_and(|n| n >= before + WRITES)
        },
    )
    .await;
    if let Err(e) = waited {
        let served = merges_served(slow).await.map(|n| n.saturating_sub(before));
        panic!(
            "{e}: replica 2 served {served:?} of {WRITES} merges\n{}",
            slow.log()
        );
    }
}

/// The `Quorum.Merge` requests `node` answered successfully (none before its first).
async fn merges_served(node: &TestServer) -> Option<u64> {
    let text = http_get(node.admin, "/metrics").await.ok()?;
    Some(
        text.lines()
            .find(|l| {
                l.starts_with("dialkv_peer_requests_total{")
                    && l.contains("rpc=\"Quorum.Merge\"")
                    && l.contains("code=\"Ok\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    )
}

async fn metric(node: &TestServer, what: &str) -> Option<i64> {
    let text = http_get(node.admin, "/metrics").await.ok()?;
    let needle = format!("dialkv_quorum_state{{what=\"{what}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_restored_from_an_old_copy_converges_through_anti_entropy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(dir.path(), 3, &["--anti-entropy-ms", "300"])
        .await
        .expect("cluster");
    create(&cluster, "r", v1::ConflictPolicy::Lww).await;
    let mut a = client(&cluster.nodes[0]).await;
    put(&mut a, "r", "old", "1", v1::ConsistencyLevel::Linearizable)
        .await
        .expect("put");
    // An old copy of replica 3's data, taken while it is stopped.
    cluster
        .node(3)
        .terminate(Duration::from_secs(20))
        .expect("stop");
    let backup = dir.path().join("backup");
    copy_dir(cluster.nodes[2].data_dir(), &backup);
    cluster.node(3).restart().expect("restart");
    // A write coordinated at replica 3 after the copy: its restored self will not have it.
    let mut c = client(&cluster.nodes[2]).await;
    put(
        &mut c,
        "r",
        "mine",
        "before",
        v1::ConsistencyLevel::Eventual,
    )
    .await
    .expect("put");
    converges(
        &cluster.nodes[0],
        "r",
        "mine",
        Some("before"),
        Duration::from_secs(30),
    )
    .await
    .expect("propagated");
    for i in 0..20 {
        put(
            &mut a,
            "r",
            &format!("new{i}"),
            "2",
            v1::ConsistencyLevel::Linearizable,
        )
        .await
        .expect("put");
    }
    // Replica 3 applies them all, so the others drop them from their outgoing logs.
    converges(
        &cluster.nodes[2],
        "r",
        "new19",
        Some("2"),
        Duration::from_secs(30),
    )
    .await
    .expect("applied");
    for n in [1usize, 2] {
        let node = &cluster.nodes[n - 1];
        wait_for(
            "outgoing logs trimmed",
            Duration::from_secs(30),
            || async move { metric(node, "outgoing_log").await == Some(0) },
        )
        .await
        .expect("trimmed");
    }
    // Restore the old copy: replica 3 is now behind what the others' logs still hold.
    cluster
        .node(3)
        .terminate(Duration::from_secs(20))
        .expect("stop");
    let data = cluster.nodes[2].data_dir().to_path_buf();
    std::fs::remove_dir_all(&data).expect("wipe");
    copy_dir(&backup, &data);
    cluster.node(3).restart().expect("restart");
    // At once, a write to the key it wrote before the restore: it must not reuse that
    // write's identity (its stream position), or the replicas would disagree on which
    // version the key holds.
    let mut c = client(&cluster.nodes[2]).await;
    put(&mut c, "r", "mine", "after", v1::ConsistencyLevel::Eventual)
        .await
        .expect("put");
    for i in [0, 10, 19] {
        converges(
            &cluster.nodes[2],
            "r",
            &format!("new{i}"),
            Some("2"),
            Duration::from_secs(30),
        )
        .await
        .expect("anti-entropy repaired");
    }
    // Once repaired it counts its own writes as applied again: a session reads its own
    // CAUSAL write there (a replica that still lacked what it skipped would answer
    // SESSION_BEHIND).
    let written = c
        .put(v1::PutRequest {
            namespace: "r".into(),
            key: Bytes::from_static(b"own"),
            value: Bytes::from_static(b"mine"),
            consistency: at(v1::ConsistencyLevel::Causal),
            ..Default::default()
        })
        .await
        .expect("causal put")
        .into_inner();
    let session = v1::Session {
        token: written.header.expect("header").session,
        guarantees: None,
    };
    wait_for(
        "a causal read of its own write at the restored replica",
        Duration::from_secs(30),
        || {
            let mut c = c.clone();
            let session = session.clone();
            async move {
                c.get(v1::GetRequest {
                    namespace: "r".into(),
                    key: Bytes::from_static(b"own"),
                    consistency: at(v1::ConsistencyLevel::Causal),
                    session: Some(session),
                    ..Default::default()
                })
                .await
                .is_ok_and(|r| r.into_inner().value == "mine".as_bytes())
            }
        },
    )
    .await
    .expect("read your writes");
    // And it keeps taking part: its writes reach the others.
    put(&mut c, "r", "after", "3", v1::ConsistencyLevel::Eventual)
        .await
        .expect("put");
    for node in &cluster.nodes {
        converges(node, "r", "after", Some("3"), Duration::from_secs(30))
            .await
            .expect("propagated");
        converges(node, "r", "mine", Some("after"), Duration::from_secs(30))
            .await
            .expect("one version everywhere");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_key_does_not_come_back_from_a_replica_that_was_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::start(
        dir.path(),
        3,
        &["--anti-entropy-ms", "300", "--tombstone-grace-ms", "100"],
    )
    .await
    .expect("cluster");
    create(&cluster, "t", v1::ConflictPolicy::Lww).await;
    let mut a = client(&cluster.nodes[0]).await;
    put(&mut a, "t", "k", "alive", v1::ConsistencyLevel::Eventual)
        .await
        .expect("put");
    converges(
        &cluster.nodes[2],
        "t",
        "k",
        Some("alive"),
        Duration::from_secs(20),
    )
    .await
    .expect("replicated");
    cluster.node(3).kill();
    let deleted = a
        .delete(v1::DeleteRequest {
            namespace: "t".into(),
            key: Bytes::from_static(b"k"),
            consistency: at(v1::ConsistencyLevel::Eventual),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.existed);
    converges(&cluster.nodes[1], "t", "k", None, Duration::from_secs(20))
        .await
        .expect("deleted at 2");
    // While replica 3 is down its tombstone stays, however long past the grace period: watch
    // for several collection rounds (the collector runs every second).
    let n1 = &cluster.nodes[0];
    wait_for(
        "the tombstone counted",
        Duration::from_secs(10),
        || async move { metric(n1, "tombstones").await == Some(1) },
    )
    .await
    .expect("tombstone");
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        assert_eq!(
            metric(&cluster.nodes[0], "tombstones").await,
            Some(1),
            "collected while a replica is down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.node(3).restart().expect("restart");
    converges(&cluster.nodes[2], "t", "k", None, Duration::from_secs(30))
        .await
        .expect("deleted at 3");
    // Once every replica has it, it is collected, and the key stays deleted everywhere.
    for n in &cluster.nodes {
        wait_for(
            "tombstone collected",
            Duration::from_secs(30),
            || async move { metric(n, "tombstones").await == Some(0) },
        )
        .await
        .expect("collected");
    }
    for n in &cluster.nodes {
        let mut kv = client(n).await;
        let r = get(&mut kv, "t", "k", v1::ConsistencyLevel::Eventual)
            .await
            .expect("get");
        assert!(!r.found, "the deleted key came back at replica {}", n.id());
    }
}
