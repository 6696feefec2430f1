//! Acknowledged writes survive `kill -9`: a load of concurrent puts is killed mid-flight, the
//! server restarted, and every acknowledged key is found with its value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dialkv_proto::v1;
use dialkv_tests::{wait_for, TestServer};

type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Starts `writers` tasks that put unique keys until a put fails, recording each
/// acknowledged one.
async fn start_load(
    server: &TestServer,
    writers: usize,
    acked: &Acked,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut kv = server.kv().await;
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let (key, value) = (format!("w{w}-k{i:06}"), format!("value-{w}-{i}"));
                let put = kv.put(v1::PutRequest {
                    namespace: "default".into(),
                    key: Bytes::from(key.clone()),
                    value: Bytes::from(value.clone()),
                    ..Default::default()
                });
                match put.await {
                    Ok(_) => {
                        acked.lock().expect("acked lock").insert(key, value);
                    }
                    // The kill ends the load; the outcome of the put in flight is unknown.
                    Err(_) => return,
                }
            }
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    for sync in ["always", "batch"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = TestServer::start_with(dir.path(), &["--sync", sync]).expect("start");
        let acked: Acked = Arc::default();
        let tasks = start_load(&server, 8, &acked).await;
        wait_for("300 acknowledged writes", Duration::from_secs(120), || {
            let n = acked.lock().expect("acked lock").len();
            async move { n >= 300 }
        })
        .await
        .expect("the load makes progress");
        server.kill();
        for t in tasks {
            t.await.expect("writer task");
        }
        let acked = acked.lock().expect("acked lock").clone();
        server.restart().expect("restart");
        let mut kv = server.kv().await;
        for (key, value) in &acked {
            let got = kv
                .get(v1::GetRequest {
                    namespace: "default".into(),
                    key: Bytes::from(key.clone()),
                    ..Default::default()
                })
                .await
                .expect("get")
                .into_inner();
            assert!(got.found, "sync={sync}: acknowledged key {key} was lost");
            assert_eq!(
                got.value,
                Bytes::from(value.clone()),
                "sync={sync}: key {key}"
            );
        }
        // Revisions carry on from where they were: a new write is newer than every recovered one.
        let put = kv
            .put(v1::PutRequest {
                namespace: "default".into(),
                key: Bytes::from_static(b"after-restart"),
                value: Bytes::new(),
                ..Default::default()
            })
            .await
            .expect("put")
            .into_inner();
        let revision = put.version.expect("a version").revision;
        assert!(
            revision as usize > acked.len(),
            "sync={sync}: revision {revision} reused after restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_keeps_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(dir.path()).expect("start");
    let mut kv = server.kv().await;
    kv.put(v1::PutRequest {
        namespace: "default".into(),
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"v"),
        ..Default::default()
    })
    .await
    .expect("put");
    let status = server
        .terminate(Duration::from_secs(30))
        .expect("terminates");
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}; log:\n{}",
        server.log()
    );
    server.restart().expect("restart");
    let mut kv = server.kv().await;
    let got = kv
        .get(v1::GetRequest {
            namespace: "default".into(),
            key: Bytes::from_static(b"k"),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.value, Bytes::from_static(b"v"));
}
