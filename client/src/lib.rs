//! The dialkv Rust client: an async library over the `dialkv.v1` gRPC API, and the `dialctl`
//! command-line tool built on it.
//!
//! - [`Client`] (built by [`Client::connect`] or [`ClientBuilder`]) holds one lazily
//!   connected channel per endpoint, assigns request ids, routes each call per [`routing`]
//!   (writes and LINEARIZABLE reads to the primary, weaker reads spread over the replicas)
//!   and retries per [`retry`]: it is the entry point for data calls (`get`, `put`,
//!   `delete`, `scan`, `compare_and_set`), namespace administration and cluster
//!   administration (`cluster_status`, `add_node`, `remove_node`).
//! - [`Session`] adds the Bayou session guarantees by carrying a [`SessionToken`].
//! - [`transaction`]: interactive transactions ([`Client::transaction`], retried when
//!   aborted) and one-shot compare/then/else ([`Client::txn`]) on primary-backup namespaces.
//! - [`Error`] says what the caller should do with a failure; a write whose outcome is
//!   unknown is [`Error::Indeterminate`].
//! - [`cli`] is `dialctl`'s argument parsing and output, kept in the library so it can be
//!   unit-tested.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dialkv_client::Error> {
//! use dialkv_client::{CallOptions, Client, Consistency, SessionGuarantees};
//!
//! let client = Client::connect(["127.0.0.1:7401"])?;
//! client.put("greeting", "hello").await?;
//! let read = client
//!     .get_with("greeting", &CallOptions::new().consistency(Consistency::eventual()))
//!     .await?;
//! assert_eq!(read.value().map(|v| &v[..]), Some(&b"hello"[..]));
//!
//! let session = client.session(SessionGuarantees::all());
//! session.put("cart", "1 book").await?;
//! let saved = session.token_string(); // e.g. kept in a cookie
//! let later = dialkv_client::Session::resume(&client, &saved)?;
//! later.get("cart").await?; // sees the put: read-your-writes
//! # Ok(()) }
//! ```

pub mod cli;
pub mod client;
pub mod error;
pub mod options;
pub mod retry;
pub mod routing;
pub mod session;
pub mod transaction;
pub mod types;

/// The generated wire types of `dialkv.v1`, re-exported.
pub use dialkv_proto::v1 as proto;

pub use client::{Client, ClientBuilder};
pub use dialkv_consistency::session_token::SessionToken;
pub use error::{Error, ErrorStatus};
pub use options::{CallOptions, Consistency, Level};
pub use retry::RetryPolicy;
pub use session::{Session, SessionGuarantees};
pub use transaction::{
    Committed, Compare, CompareTarget, ReadWriteSet, Transaction, TransactionOptions, TxnOp,
    TxnOpKind, TxnOpResult, TxnOutput,
};
pub use types::{
    CasAction, CasOutput, ClusterStatus, Condition, ConflictPolicy, DeleteOutput, Entry, GetOutput,
    Membership, NamespaceInfo, NamespaceSpec, NodeStatus, Protocol, PutOutput, ResponseMeta, Role,
    ScanPage, ScanRange, Sibling, Version,
};
