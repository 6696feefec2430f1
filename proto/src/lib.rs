//! The dialkv wire API: code generated from the `.proto` files under `proto/`.
//!
//! The public API is the package `dialkv.v1` (data in `kv.proto`, namespace administration in
//! `admin.proto`, shared messages in `types.proto`). The files are documented field by field so
//! that a user of any language can work from them alone; this crate only holds the generated
//! Rust code (prost messages with `bytes::Bytes` for byte fields, tonic clients and servers)
//! and the encoded file descriptor set that the server publishes through gRPC reflection.

/// The public API, package `dialkv.v1`.
pub mod v1 {
    #![allow(
        missing_docs,
        clippy::doc_lazy_continuation,
        clippy::large_enum_variant
    )]
    tonic::include_proto!("dialkv.v1");
}

/// The internal replica-to-replica service, package `dialkv.replication.v1`.
pub mod replication {
    #![allow(
        missing_docs,
        clippy::doc_lazy_continuation,
        clippy::large_enum_variant
    )]
    tonic::include_proto!("dialkv.replication.v1");
}

/// The encoded `FileDescriptorSet` of every dialkv `.proto` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dialkv_descriptor.bin"));
