//! Compiles the .proto files with protox (a pure-Rust protobuf compiler, so no system `protoc`
//! is needed) and generates prost messages and tonic services from them. Also writes the
//! encoded file descriptor set that the server's reflection service publishes.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/dialkv/v1/types.proto",
    "proto/dialkv/v1/kv.proto",
    "proto/dialkv/v1/admin.proto",
    "proto/dialkv/replication/v1/raft.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("dialkv_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
