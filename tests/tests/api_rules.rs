//! Every input rule is enforced at the edge: a bad request gets a status naming the field and
//! the limit, with a stable reason, and nothing is written. Garbage on the wire does not hurt
//! the server. Request ids make writes idempotent.

use bytes::Bytes;
use dialkv_proto::v1;
use dialkv_tests::TestServer;
use tonic::Code;
use tonic_types::StatusExt;

async fn revision(server: &TestServer) -> u64 {
    let mut ns = server.namespaces().await;
    ns.describe_namespace(v1::DescribeNamespaceRequest {
        name: "default".into(),
    })
    .await
    .expect("describe")
    .into_inner()
    .namespace
    .expect("info")
    .revision
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
}

fn check(status: tonic::Status, code: Code, expected_reason: &str, message_parts: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), expected_reason, "{status:?}");
    for part in message_parts {
        assert!(
            status.message().contains(part),
            "message {:?} lacks {part:?}",
            status.message()
        );
    }
}

fn put(key: Vec<u8>, value: Vec<u8>) -> v1::PutRequest {
    v1::PutRequest {
        namespace: "default".into(),
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_requests_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let mut kv = server.kv().await;
    let before = revision(&server).await;

    let e = kv
        .put(put(Vec::new(), b"v".to_vec()))
        .await
        .expect_err("empty key");
    check(e, Code::InvalidArgument, "KEY_EMPTY", &["key:", "4096"]);
    let e = kv
        .put(put(vec![b'k'; 4097], b"v".to_vec()))
        .await
        .expect_err("long key");
    check(
        e,
        Code::InvalidArgument,
        "KEY_TOO_LARGE",
        &["key:", "4097", "4096"],
    );
    let e = kv
        .put(put(b"k".to_vec(), vec![0; (1 << 20) + 1]))
        .await
        .expect_err("big value");
    check(
        e,
        Code::InvalidArgument,
        "VALUE_TOO_LARGE",
        &["value:", "1048577", "1048576"],
    );
    let mut bad_ns = put(b"k".to_vec(), b"v".to_vec());
    bad_ns.namespace = "Bad Name".into();
    let e = kv.put(bad_ns).await.expect_err("bad namespace name");
    check(
        e,
        Code::InvalidArgument,
        "BAD_NAMESPACE_NAME",
        &["namespace:", "64"],
    );
    let mut missing_ns = put(b"k".to_vec(), b"v".to_vec());
    missing_ns.namespace = "nope".into();
    let e = kv.put(missing_ns).await.expect_err("unknown namespace");
    check(e, Code::NotFound, "NAMESPACE_NOT_FOUND", &["nope"]);
    let mut bad_level = put(b"k".to_vec(), b"v".to_vec());
    bad_level.consistency = Some(v1::Consistency {
        level: 42,
        ..Default::default()
    });
    let e = kv.put(bad_level).await.expect_err("unknown enum");
    check(
        e,
        Code::InvalidArgument,
        "UNKNOWN_ENUM_VALUE",
        &["consistency.level", "42"],
    );
    let mut bad_token = put(b"k".to_vec(), b"v".to_vec());
    bad_token.session = Some(v1::Session {
        token: Some(v1::SessionToken {
            token: Bytes::from_static(b"\x07garbage"),
        }),
        guarantees: None,
    });
    let e = kv.put(bad_token).await.expect_err("bad session token");
    check(
        e,
        Code::InvalidArgument,
        "BAD_SESSION_TOKEN",
        &["session.token"],
    );
    let e = kv
        .compare_and_set(v1::CompareAndSetRequest {
            namespace: "default".into(),
            key: Bytes::from_static(b"k"),
            new_value: Bytes::from_static(b"v"),
            ..Default::default()
        })
        .await
        .expect_err("cas without condition");
    check(
        e,
        Code::InvalidArgument,
        "CONDITION_MISSING",
        &["condition"],
    );
    let e = kv
        .scan(v1::ScanRequest {
            namespace: "default".into(),
            limit: 10_001,
            ..Default::default()
        })
        .await
        .expect_err("scan limit");
    check(
        e,
        Code::InvalidArgument,
        "SCAN_LIMIT_TOO_LARGE",
        &["limit:", "10000"],
    );
    let e = kv
        .scan(v1::ScanRequest {
            namespace: "default".into(),
            start_key: Bytes::from_static(b"b"),
            end_key: Bytes::from_static(b"a"),
            ..Default::default()
        })
        .await
        .expect_err("empty range");
    check(e, Code::InvalidArgument, "EMPTY_RANGE", &["end_key"]);
    let e = kv
        .scan(v1::ScanRequest {
            namespace: "default".into(),
            continuation: Bytes::from_static(b"\x09zz"),
            ..Default::default()
        })
        .await
        .expect_err("bad continuation");
    check(
        e,
        Code::InvalidArgument,
        "BAD_CONTINUATION",
        &["continuation"],
    );
    let mut ns = server.namespaces().await;
    let e = ns
        .create_namespace(v1::CreateNamespaceRequest {
            spec: Some(v1::NamespaceSpec {
                name: "x".into(),
                replicas: 3,
                ..Default::default()
            }),
        })
        .await
        .expect_err("too many replicas");
    check(
        e,
        Code::FailedPrecondition,
        "NOT_ENOUGH_REPLICAS",
        &["spec.replicas", "3"],
    );
    let e = ns
        .drop_namespace(v1::DropNamespaceRequest {
            name: "default".into(),
        })
        .await
        .expect_err("drop default");
    check(
        e,
        Code::FailedPrecondition,
        "DEFAULT_NAMESPACE",
        &["default"],
    );

    assert_eq!(
        revision(&server).await,
        before,
        "a refused request wrote something"
    );
    let got = kv
        .get(v1::GetRequest {
            namespace: "default".into(),
            key: Bytes::from_static(b"k"),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert!(!got.found);
}

#[tokio::test]
async fn garbage_on_the_wire_does_not_hurt_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let payloads: [&[u8]; 4] = [
        b"\x00\x01\x02\x03garbage\xff\xfe",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0xAA; 4096],
    ];
    for p in payloads {
        let mut s = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        let _ = s.write_all(p).await;
        let mut sink = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut sink)).await;
    }
    // A gRPC message whose protobuf body is truncated gets an error, not a crash.
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let truncated: Result<tonic::Response<Bytes>, _> = grpc
        .unary(
            tonic::Request::new(Bytes::from_static(b"\x0a\x07defa")),
            http::uri::PathAndQuery::from_static("/dialkv.v1.KV/Put"),
            RawCodec,
        )
        .await;
    assert!(truncated.is_err(), "a truncated message was accepted");
    let mut kv = v1::kv_client::KvClient::new(channel);
    kv.put(put(b"still".to_vec(), b"serving".to_vec()))
        .await
        .expect("the server still serves");
}

/// A codec that sends and receives raw bytes, to put malformed protobuf on the wire.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Bytes>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[tokio::test]
async fn a_retried_request_applies_once_and_repeats_the_first_reply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let mut kv = server.kv().await;
    let id = Some(v1::RequestId {
        client_id: 77,
        seq: 1,
    });
    let mut req = put(b"k".to_vec(), b"first".to_vec());
    req.request_id = id;
    let first = kv.put(req.clone()).await.expect("put").into_inner();
    let second = kv.put(req).await.expect("retry").into_inner();
    assert_eq!(first.version, second.version);
    assert_eq!(
        revision(&server).await,
        first.version.expect("version").revision
    );
    // A CAS retried after the key changed still reports its first outcome.
    let cas = v1::CompareAndSetRequest {
        namespace: "default".into(),
        key: Bytes::from_static(b"k"),
        condition: Some(v1::Condition {
            kind: Some(v1::condition::Kind::ValueEquals(Bytes::from_static(
                b"first",
            ))),
        }),
        new_value: Bytes::from_static(b"second"),
        request_id: Some(v1::RequestId {
            client_id: 77,
            seq: 2,
        }),
        ..Default::default()
    };
    let c1 = kv
        .compare_and_set(cas.clone())
        .await
        .expect("cas")
        .into_inner();
    assert!(c1.succeeded);
    let c2 = kv
        .compare_and_set(cas)
        .await
        .expect("cas retry")
        .into_inner();
    assert!(
        c2.succeeded,
        "the retry must repeat the first outcome, not re-evaluate"
    );
    assert_eq!(c1.version, c2.version);
    // The same id for a different request is refused.
    let mut other = put(b"other".to_vec(), b"v".to_vec());
    other.request_id = id;
    let e = kv.put(other).await.expect_err("reused id");
    check(
        e,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        &["request_id"],
    );
}

#[tokio::test]
async fn crud_scan_pages_and_cas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let mut kv = server.kv().await;
    for i in 0..25u32 {
        kv.put(put(
            format!("key{i:03}").into_bytes(),
            vec![b'v'; i as usize],
        ))
        .await
        .expect("put");
    }
    let mut keys = Vec::new();
    let mut continuation = Bytes::new();
    loop {
        let page = kv
            .scan(v1::ScanRequest {
                namespace: "default".into(),
                start_key: Bytes::from_static(b"key005"),
                end_key: Bytes::from_static(b"key020"),
                limit: 4,
                continuation: continuation.clone(),
                ..Default::default()
            })
            .await
            .expect("scan")
            .into_inner();
        assert!(page.items.len() <= 4);
        keys.extend(
            page.items
                .iter()
                .map(|i| String::from_utf8(i.key.to_vec()).expect("utf8")),
        );
        if page.continuation.is_empty() {
            break;
        }
        continuation = page.continuation;
    }
    let expected: Vec<String> = (5..20).map(|i| format!("key{i:03}")).collect();
    assert_eq!(keys, expected);
    let del = kv
        .delete(v1::DeleteRequest {
            namespace: "default".into(),
            key: Bytes::from_static(b"key007"),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert!(del.existed);
    let absent = kv
        .compare_and_set(v1::CompareAndSetRequest {
            namespace: "default".into(),
            key: Bytes::from_static(b"key007"),
            condition: Some(v1::Condition {
                kind: Some(v1::condition::Kind::Absent(v1::KeyAbsent {})),
            }),
            new_value: Bytes::from_static(b"again"),
            ..Default::default()
        })
        .await
        .expect("cas")
        .into_inner();
    assert!(absent.succeeded);
    let stale = kv
        .compare_and_set(v1::CompareAndSetRequest {
            namespace: "default".into(),
            key: Bytes::from_static(b"key007"),
            condition: Some(v1::Condition {
                kind: Some(v1::condition::Kind::RevisionEquals(1)),
            }),
            delete: true,
            ..Default::default()
        })
        .await
        .expect("cas")
        .into_inner();
    assert!(!stale.succeeded);
    assert!(stale.found);
    assert_eq!(
        stale.current.expect("current").value,
        Bytes::from_static(b"again")
    );
    let header = stale.header.expect("header");
    assert_eq!(
        header.served_level,
        v1::ConsistencyLevel::Linearizable as i32
    );
    assert!(!header.session.expect("token").token.is_empty());
}
