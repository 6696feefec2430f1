//! `dialctl` end to end against a live server, exit codes included.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use dialkv_tests::{binary, TestServer};

fn dialctl(server: &TestServer, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(binary("dialctl"))
        .arg("--endpoints")
        .arg(server.addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running dialctl");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("writing stdin");
    }
    drop(input);
    child.wait_with_output().expect("dialctl output")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("dialctl exited")
}

#[test]
fn dialctl_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");

    let put = dialctl(&server, &["put", "greeting", "hello"], None);
    assert_eq!(
        code(&put),
        0,
        "put: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let piped = dialctl(&server, &["put", "planet"], Some(b"world"));
    assert_eq!(
        code(&piped),
        0,
        "put from stdin: {}",
        String::from_utf8_lossy(&piped.stderr)
    );

    let get = dialctl(&server, &["get", "greeting"], None);
    assert_eq!(code(&get), 0);
    assert_eq!(get.stdout, b"hello");
    let get = dialctl(&server, &["get", "planet"], None);
    assert_eq!(get.stdout, b"world");

    let json = dialctl(&server, &["--output", "json", "get", "greeting"], None);
    assert_eq!(code(&json), 0);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json output");
    assert_eq!(v["value"], "hello");
    assert_eq!(v["served_level"], "linearizable", "{v}");
    assert!(v["revision"].as_u64().expect("revision") >= 1);

    let missing = dialctl(&server, &["get", "nope"], None);
    assert_eq!(code(&missing), 1, "a missing key exits 1");

    let scan = dialctl(&server, &["scan", "--all"], None);
    assert_eq!(code(&scan), 0);
    let text = String::from_utf8_lossy(&scan.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec!["greeting\thello", "planet\tworld"]
    );

    let cas = dialctl(
        &server,
        &[
            "cas",
            "greeting",
            "--expect-value",
            "hello",
            "--value",
            "bonjour",
        ],
        None,
    );
    assert_eq!(code(&cas), 0, "{}", String::from_utf8_lossy(&cas.stderr));
    let cas_failed = dialctl(
        &server,
        &[
            "cas",
            "greeting",
            "--expect-value",
            "hello",
            "--value",
            "hola",
        ],
        None,
    );
    assert_eq!(code(&cas_failed), 1, "a failed condition exits 1");
    assert_eq!(
        dialctl(&server, &["get", "greeting"], None).stdout,
        b"bonjour"
    );

    let del = dialctl(&server, &["del", "greeting"], None);
    assert_eq!(code(&del), 0);
    assert_eq!(code(&dialctl(&server, &["get", "greeting"], None)), 1);

    let created = dialctl(&server, &["ns", "create", "users"], None);
    assert_eq!(
        code(&created),
        0,
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let list = dialctl(&server, &["ns", "list"], None);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .collect::<Vec<_>>(),
        vec!["default", "users"]
    );
    let in_ns = dialctl(
        &server,
        &["--namespace", "users", "put", "alice", "pro"],
        None,
    );
    assert_eq!(code(&in_ns), 0);
    assert_eq!(
        code(&dialctl(&server, &["get", "alice"], None)),
        1,
        "namespaces are separate"
    );

    let usage = dialctl(&server, &["frobnicate"], None);
    assert_eq!(code(&usage), 2, "a usage error exits 2");

    let long_key = "k".repeat(5000);
    let refused = dialctl(&server, &["put", &long_key, "v"], None);
    assert_eq!(code(&refused), 3, "a server error exits 3");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("INVALID_ARGUMENT") && stderr.contains("4096"),
        "{stderr}"
    );

    let no_server = Command::new(binary("dialctl"))
        .args(["--endpoints", "127.0.0.1:1", "--timeout", "2", "get", "k"])
        .output()
        .expect("dialctl");
    assert_eq!(code(&no_server), 3, "an unreachable server exits 3");
}

#[test]
fn dialctl_shows_siblings_and_resolves_them_with_a_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let create = dialctl(
        &server,
        &[
            "ns",
            "create",
            "s",
            "--protocol",
            "quorum",
            "--conflicts",
            "siblings",
        ],
        None,
    );
    assert_eq!(
        code(&create),
        0,
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    let data = |args: &[&str]| -> Output {
        let mut all = vec!["-n", "s", "--consistency", "eventual"];
        all.extend_from_slice(args);
        dialctl(&server, &all, None)
    };
    // Two writes without a context are concurrent: both are kept.
    for v in ["one", "two"] {
        let put = data(&["put", "k", v]);
        assert_eq!(code(&put), 0, "{}", String::from_utf8_lossy(&put.stderr));
    }
    let got = data(&["--output", "json", "get", "k"]);
    assert_eq!(code(&got), 0, "{}", String::from_utf8_lossy(&got.stderr));
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).expect("json");
    let siblings = v["siblings"].as_array().expect("siblings");
    let values: Vec<&str> = siblings
        .iter()
        .filter_map(|s| s["value"].as_str())
        .collect();
    assert_eq!(values, vec!["one", "two"], "{v}");
    let context = v["context"].as_str().expect("context").to_string();
    // Text output names them on stderr, with the command that resolves them.
    let text = data(&["get", "k"]);
    let err = String::from_utf8_lossy(&text.stderr);
    assert!(
        err.contains("2 concurrent versions") && err.contains("--context"),
        "{err}"
    );
    // A write with the context supersedes both.
    let put = data(&["put", "k", "merged", "--context", &context]);
    assert_eq!(code(&put), 0, "{}", String::from_utf8_lossy(&put.stderr));
    let got = data(&["--output", "json", "get", "k"]);
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).expect("json");
    assert_eq!(v["value"], "merged");
    assert_eq!(v.get("siblings"), None, "{v}");
    // A context that is not one is a usage error, and nothing is written.
    let bad = data(&["put", "k", "x", "--context", "!!"]);
    assert_eq!(code(&bad), 2);
    assert_eq!(data(&["get", "k"]).stdout, b"merged");
}
