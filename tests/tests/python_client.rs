//! A Python client generated from the `.proto` files with grpcio-tools puts and gets a key:
//! the proof that any language can use dialkv from the `.proto` files alone. Needs Python 3
//! with `grpcio` and `grpcio-tools` (the README's test command installs them).

use std::path::PathBuf;
use std::process::Command;

use dialkv_tests::TestServer;

/// The package's directory as cargo gives it to the running test (else as at build time):
/// clones that share one target directory may run test binaries built in another clone.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

#[test]
fn a_python_client_generated_from_the_protos_works() {
    let root = package_dir();
    let root = root.as_path();
    let probe = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .expect("running python3");
    assert!(
        probe.status.success(),
        "python3 with grpcio and grpcio-tools is needed: pip install grpcio grpcio-tools ({})",
        String::from_utf8_lossy(&probe.stderr)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path()).expect("start");
    let out = dir.path().join("stubs");
    std::fs::create_dir_all(&out).expect("stub dir");
    let run = Command::new("python3")
        .arg(root.join("python/smoke.py"))
        .arg(root.join("../proto/proto"))
        .arg(&out)
        .arg(server.addr.to_string())
        .output()
        .expect("running the python client");
    assert!(
        run.status.success(),
        "python client failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("python client ok"));
}
