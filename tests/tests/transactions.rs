//! Transactions over gRPC against real servers: interactive transactions validated at commit
//! (conflicts on keys and ranges abort, naming the key), snapshot reads, idempotent commits,
//! one-shot compare/then/else, limits, forwarding from a backup, and a bank invariant under
//! concurrent transfers.

use std::time::Duration;

use bytes::Bytes;
use dialkv_proto::v1;
use dialkv_tests::{TestCluster, TestServer};
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

type Kv = v1::kv_client::KvClient<Channel>;

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

async fn begin(kv: &mut Kv) -> v1::BeginResponse {
    kv.begin(v1::BeginRequest {
        namespace: "default".into(),
        session: None,
    })
    .await
    .expect("begin")
    .into_inner()
}

async fn tget(kv: &mut Kv, txn: u64, key: &str) -> v1::GetResponse {
    kv.get(v1::GetRequest {
        namespace: "default".into(),
        key: b(key),
        transaction: txn,
        ..Default::default()
    })
    .await
    .expect("get in transaction")
    .into_inner()
}

async fn put(kv: &mut Kv, key: &str, value: &str) -> u64 {
    kv.put(v1::PutRequest {
        namespace: "default".into(),
        key: b(key),
        value: b(value),
        ..Default::default()
    })
    .await
    .expect("put")
    .into_inner()
    .version
    .expect("version")
    .revision
}

fn commit_req(txn: u64, reads: Vec<(&str, u64)>, writes: Vec<(&str, &str)>) -> v1::CommitRequest {
    v1::CommitRequest {
        namespace: "default".into(),
        transaction: txn,
        reads: reads
            .into_iter()
            .map(|(k, r)| v1::ReadKey {
                key: b(k),
                revision: r,
            })
            .collect(),
        writes: writes
            .into_iter()
            .map(|(k, v)| v1::WriteOp {
                key: b(k),
                value: b(v),
                delete: false,
            })
            .collect(),
        ..Default::default()
    }
}

fn reason(s: &tonic::Status) -> String {
    s.get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

#[tokio::test]
async fn conflicting_transactions_abort_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let mut kv = server.kv().await;
    let r0 = put(&mut kv, "x", "1").await;

    let t1 = begin(&mut kv).await;
    let t2 = begin(&mut kv).await;
    let x1 = tget(&mut kv, t1.transaction, "x").await;
    let x2 = tget(&mut kv, t2.transaction, "x").await;
    assert_eq!(x1.version.as_ref().expect("v").revision, r0);
    // A write outside both transactions is invisible at their snapshots.
    let ry = put(&mut kv, "y", "outside").await;
    let leaked = tget(&mut kv, t1.transaction, "y").await;
    assert!(
        !leaked.found,
        "a write after the snapshot {} leaked in: {leaked:?} (written at {ry})",
        t1.snapshot_revision
    );
    kv.commit(commit_req(
        t1.transaction,
        vec![("x", r0)],
        vec![("x", "from-t1")],
    ))
    .await
    .expect("t1 commits");
    let e = kv
        .commit(commit_req(
            t2.transaction,
            vec![("x", x2.version.expect("v").revision)],
            vec![("x", "from-t2"), ("z", "t2")],
        ))
        .await
        .expect_err("t2 read a stale x");
    assert_eq!(e.code(), Code::Aborted, "{e}");
    assert_eq!(reason(&e), "TRANSACTION_CONFLICT");
    assert!(e.message().contains("key x"), "{}", e.message());
    let info = e.get_details_error_info().expect("error info");
    assert_eq!(info.metadata.get("key").map(String::as_str), Some("x"));
    let z = kv
        .get(v1::GetRequest {
            namespace: "default".into(),
            key: b("z"),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert!(!z.found, "an aborted transaction wrote");
    let x = kv
        .get(v1::GetRequest {
            namespace: "default".into(),
            key: b("x"),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(x.value, b("from-t1"));
}

#[tokio::test]
async fn a_scanned_range_that_gains_a_key_aborts_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let mut kv = server.kv().await;
    put(&mut kv, "a", "1").await;
    let t = begin(&mut kv).await;
    let page = kv
        .scan(v1::ScanRequest {
            namespace: "default".into(),
            start_key: b("a"),
            end_key: b("n"),
            transaction: t.transaction,
            ..Default::default()
        })
        .await
        .expect("scan")
        .into_inner();
    assert_eq!(page.items.len(), 1);
    put(&mut kv, "m", "phantom").await;
    let mut c = commit_req(t.transaction, vec![], vec![("count", "1")]);
    c.ranges.push(v1::ReadRange {
        start_key: b("a"),
        end_key: b("n"),
    });
    let e = kv.commit(c).await.expect_err("phantom");
    assert_eq!(reason(&e), "TRANSACTION_CONFLICT");
    assert!(e.message().contains("key m"), "{}", e.message());
}

#[tokio::test]
async fn commits_are_idempotent_and_read_only_commits_need_no_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let mut kv = server.kv().await;
    let t = begin(&mut kv).await;
    let mut c = commit_req(t.transaction, vec![("k", 0)], vec![("k", "v")]);
    c.request_id = Some(v1::RequestId {
        client_id: 5,
        seq: 1,
    });
    let first = kv.commit(c.clone()).await.expect("commit").into_inner();
    // The transaction is closed; the same commit retried gets the first outcome.
    let again = kv.commit(c).await.expect("retried commit").into_inner();
    assert_eq!(first.version, again.version);
    // A commit of a transaction that never existed is aborted.
    let e = kv
        .commit(commit_req(424242, vec![], vec![("k", "x")]))
        .await
        .expect_err("unknown");
    assert_eq!(reason(&e), "TRANSACTION_UNKNOWN");
    let ro = begin(&mut kv).await;
    assert_eq!(tget(&mut kv, ro.transaction, "k").await.value, b("v"));
    let done = kv
        .commit(commit_req(ro.transaction, vec![("k", 1)], vec![]))
        .await
        .expect("read-only commit")
        .into_inner();
    assert!(done.version.is_none());
    kv.abort(v1::AbortRequest {
        namespace: "default".into(),
        transaction: ro.transaction,
    })
    .await
    .expect("abort is idempotent");
}

#[tokio::test]
async fn one_shot_transactions_and_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let mut kv = server.kv().await;
    let txn = |exists: bool| v1::TxnRequest {
        namespace: "default".into(),
        compares: vec![v1::Compare {
            key: b("lock"),
            target: Some(v1::compare::Target::Exists(exists)),
        }],
        success: vec![
            v1::TxnOp {
                op: Some(v1::txn_op::Op::Put(v1::PutOp {
                    key: b("lock"),
                    value: b("me"),
                })),
            },
            v1::TxnOp {
                op: Some(v1::txn_op::Op::Put(v1::PutOp {
                    key: b("owner"),
                    value: b("me"),
                })),
            },
        ],
        failure: vec![v1::TxnOp {
            op: Some(v1::txn_op::Op::Get(v1::GetOp { key: b("lock") })),
        }],
        ..Default::default()
    };
    let first = kv.txn(txn(false)).await.expect("txn").into_inner();
    assert!(first.succeeded);
    assert_eq!(first.results.len(), 2);
    let second = kv.txn(txn(false)).await.expect("txn").into_inner();
    assert!(!second.succeeded);
    assert_eq!(second.results[0].value, b("me"));
    let too_many = v1::CommitRequest {
        namespace: "default".into(),
        transaction: begin(&mut kv).await.transaction,
        writes: (0..10_001)
            .map(|i| v1::WriteOp {
                key: b(&format!("k{i}")),
                value: Bytes::new(),
                delete: false,
            })
            .collect(),
        ..Default::default()
    };
    let e = kv.commit(too_many).await.expect_err("too many writes");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("writes") && e.message().contains("10000"),
        "{}",
        e.message()
    );
    let e = kv
        .txn(v1::TxnRequest {
            namespace: "default".into(),
            compares: vec![v1::Compare {
                key: b("k"),
                target: None,
            }],
            ..Default::default()
        })
        .await
        .expect_err("no target");
    assert!(
        e.message().contains("compares[0].target"),
        "{}",
        e.message()
    );
}

/// Transfers between accounts in concurrent interactive transactions, through every replica
/// of a cluster (backups forward to the primary): the total never changes in any snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_keep_the_total_through_any_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = TestCluster::start(dir.path(), 3, &[])
        .await
        .expect("cluster");
    const ACCOUNTS: u32 = 5;
    let mut kv = cluster.nodes[0].kv().await;
    for a in 0..ACCOUNTS {
        put(&mut kv, &format!("acct{a}"), "100").await;
    }
    let mut tasks = Vec::new();
    for (w, node) in cluster.nodes.iter().enumerate() {
        let mut kv = node.kv().await;
        tasks.push(tokio::spawn(async move {
            let mut committed = 0;
            for i in 0..15u32 {
                let (from, to) = ((i + w as u32) % ACCOUNTS, (i * 3 + w as u32 + 1) % ACCOUNTS);
                if from == to {
                    continue;
                }
                loop {
                    let t = begin(&mut kv).await;
                    let f = tget(&mut kv, t.transaction, &format!("acct{from}")).await;
                    let g = tget(&mut kv, t.transaction, &format!("acct{to}")).await;
                    let fv: i64 = String::from_utf8_lossy(&f.value).parse().expect("number");
                    let gv: i64 = String::from_utf8_lossy(&g.value).parse().expect("number");
                    let c = v1::CommitRequest {
                        namespace: "default".into(),
                        transaction: t.transaction,
                        reads: vec![
                            v1::ReadKey {
                                key: b(&format!("acct{from}")),
                                revision: f.version.expect("v").revision,
                            },
                            v1::ReadKey {
                                key: b(&format!("acct{to}")),
                                revision: g.version.expect("v").revision,
                            },
                        ],
                        writes: vec![
                            v1::WriteOp {
                                key: b(&format!("acct{from}")),
                                value: b(&(fv - 7).to_string()),
                                delete: false,
                            },
                            v1::WriteOp {
                                key: b(&format!("acct{to}")),
                                value: b(&(gv + 7).to_string()),
                                delete: false,
                            },
                        ],
                        ..Default::default()
                    };
                    match kv.commit(c).await {
                        Ok(_) => {
                            committed += 1;
                            break;
                        }
                        Err(e) if e.code() == Code::Aborted => continue,
                        Err(e) => panic!("commit failed: {e}"),
                    }
                }
            }
            committed
        }));
    }
    let mut committed = 0;
    for t in tasks {
        committed += t.await.expect("task");
    }
    assert!(committed > 0);
    // Every account read in one snapshot sums to the starting total.
    let t = begin(&mut kv).await;
    let mut total = 0i64;
    for a in 0..ACCOUNTS {
        let v = tget(&mut kv, t.transaction, &format!("acct{a}")).await;
        total += String::from_utf8_lossy(&v.value)
            .parse::<i64>()
            .expect("number");
    }
    assert_eq!(total, 100 * ACCOUNTS as i64, "after {committed} transfers");
    let _ = Duration::ZERO;
}
