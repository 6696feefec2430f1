//! What operators and load balancers rely on: the standard gRPC health service, server
//! reflection, Prometheus metrics, namespaces, and session tokens.

use std::time::Duration;

use bytes::Bytes;
use dialkv_consistency::session_token::SessionToken;
use dialkv_proto::v1;
use dialkv_tests::{http_get, TestServer};
use tonic::Code;

#[tokio::test]
async fn health_reflection_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let channel = server.channel().await;

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "dialkv.v1.KV", "dialkv.v1.Namespaces"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a response")
        .expect("not empty");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "dialkv.v1.KV",
        "dialkv.v1.Namespaces",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }

    let mut kv = v1::kv_client::KvClient::new(channel);
    kv.put(v1::PutRequest {
        namespace: "default".into(),
        key: Bytes::from_static(b"k"),
        ..Default::default()
    })
    .await
    .expect("put");
    let _ = kv
        .get(v1::GetRequest {
            namespace: "nope".into(),
            key: Bytes::from_static(b"k"),
            ..Default::default()
        })
        .await;
    let metrics = http_get(server.admin, "/metrics").await.expect("metrics");
    for expected in [
        "dialkv_requests_total{code=\"Ok\",rpc=\"Put\"} 1",
        "dialkv_requests_total{code=\"NotFound\",rpc=\"Get\"} 1",
        "dialkv_request_duration_seconds_bucket",
        "dialkv_storage_batch_commands_count",
        "dialkv_storage_sync_seconds_count",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} not in metrics:\n{metrics}"
        );
    }
    assert_eq!(
        http_get(server.admin, "/healthz").await.expect("healthz"),
        "ok\n"
    );
}

#[tokio::test]
async fn namespaces_are_created_listed_and_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let mut ns = server.namespaces().await;
    let created = ns
        .create_namespace(v1::CreateNamespaceRequest {
            spec: Some(v1::NamespaceSpec {
                name: "users".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("create")
        .into_inner()
        .namespace
        .expect("info");
    let spec = created.spec.expect("spec");
    assert_eq!(spec.protocol, v1::Protocol::PrimaryBackup as i32);
    assert_eq!(spec.replicas, 1);
    let again = ns
        .create_namespace(v1::CreateNamespaceRequest {
            spec: Some(v1::NamespaceSpec {
                name: "users".into(),
                ..Default::default()
            }),
        })
        .await
        .expect_err("exists");
    assert_eq!(again.code(), Code::AlreadyExists);
    let too_large = ns
        .create_namespace(v1::CreateNamespaceRequest {
            spec: Some(v1::NamespaceSpec {
                name: "q".into(),
                protocol: v1::Protocol::Quorum as i32,
                write_quorum: 2,
                ..Default::default()
            }),
        })
        .await
        .expect_err("W over N");
    assert_eq!(too_large.code(), Code::InvalidArgument);
    assert!(
        too_large.message().contains("spec.write_quorum"),
        "{}",
        too_large.message()
    );
    let quorum = ns
        .create_namespace(v1::CreateNamespaceRequest {
            spec: Some(v1::NamespaceSpec {
                name: "q".into(),
                protocol: v1::Protocol::Quorum as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("a quorum namespace")
        .into_inner()
        .namespace
        .and_then(|n| n.spec)
        .expect("spec");
    assert_eq!(
        quorum.conflicts,
        v1::ConflictPolicy::Lww as i32,
        "LWW by default"
    );
    let mut kv = server.kv().await;
    kv.put(v1::PutRequest {
        namespace: "users".into(),
        key: Bytes::from_static(b"alice"),
        ..Default::default()
    })
    .await
    .expect("put");
    let names: Vec<String> = ns
        .list_namespaces(v1::ListNamespacesRequest {})
        .await
        .expect("list")
        .into_inner()
        .namespaces
        .into_iter()
        .filter_map(|n| n.spec.map(|s| s.name))
        .collect();
    assert_eq!(names, vec!["default", "q", "users"]);
    ns.drop_namespace(v1::DropNamespaceRequest {
        name: "users".into(),
    })
    .await
    .expect("drop");
    let gone = kv
        .get(v1::GetRequest {
            namespace: "users".into(),
            key: Bytes::from_static(b"alice"),
            ..Default::default()
        })
        .await
        .expect_err("dropped");
    assert_eq!(gone.code(), Code::NotFound);
    // A namespace created again under the same name starts empty.
    ns.create_namespace(v1::CreateNamespaceRequest {
        spec: Some(v1::NamespaceSpec {
            name: "users".into(),
            ..Default::default()
        }),
    })
    .await
    .expect("create again");
    let fresh = kv
        .get(v1::GetRequest {
            namespace: "users".into(),
            key: Bytes::from_static(b"alice"),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert!(!fresh.found);
}

#[tokio::test]
async fn session_tokens_advance_and_a_token_from_ahead_is_refused_as_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(dir.path(), &["--session-wait-ms", "200"]).expect("start");
    let mut kv = server.kv().await;
    let put = kv
        .put(v1::PutRequest {
            namespace: "default".into(),
            key: Bytes::from_static(b"k"),
            ..Default::default()
        })
        .await
        .expect("put")
        .into_inner();
    let token = put.header.expect("header").session.expect("token");
    let decoded = SessionToken::decode(&token.token).expect("a valid token");
    let ns_id = 1; // the default namespace is the first created
    assert_eq!(
        decoded.progress("default", ns_id).write,
        put.version.expect("version").revision
    );

    // A session that has seen revision 1000 cannot be served by a replica at revision 1.
    let mut ahead = SessionToken::new();
    ahead.observe_write("default", ns_id, 1000);
    let guarantees = v1::SessionGuarantees {
        read_your_writes: true,
        monotonic_reads: true,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let e = kv
        .get(v1::GetRequest {
            namespace: "default".into(),
            key: Bytes::from_static(b"k"),
            session: Some(v1::Session {
                token: Some(v1::SessionToken {
                    token: ahead.encode().into(),
                }),
                guarantees: Some(guarantees),
            }),
            ..Default::default()
        })
        .await
        .expect_err("session behind");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("behind"), "{}", e.message());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the wait is bounded"
    );
    // The token of the put itself is satisfied at once.
    kv.get(v1::GetRequest {
        namespace: "default".into(),
        key: Bytes::from_static(b"k"),
        session: Some(v1::Session {
            token: Some(token),
            guarantees: Some(guarantees),
        }),
        ..Default::default()
    })
    .await
    .expect("read your writes");
}
