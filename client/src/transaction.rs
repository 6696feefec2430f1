//! Transactions on primary-backup namespaces (DESIGN.md §7): interactive ones
//! ([`Client::transaction`]) and one-shot compare/then/else ones ([`Client::txn`]).
//!
//! # Interactive transactions
//!
//! [`Client::transaction`] takes a closure that gets a [`Transaction`] and returns a future:
//!
//! ```no_run
//! # async fn demo(client: dialkv_client::Client) -> Result<(), dialkv_client::Error> {
//! use dialkv_client::Error;
//!
//! // Move 10 from alice to bob, atomically and isolated from every other transaction.
//! let left = client
//!     .transaction(|txn| async move {
//!         let balance = |v: Option<bytes::Bytes>| {
//!             v.and_then(|v| std::str::from_utf8(&v).ok()?.parse::<i64>().ok())
//!                 .unwrap_or(0)
//!         };
//!         let alice = balance(txn.get("alice").await?);
//!         let bob = balance(txn.get("bob").await?);
//!         txn.put("alice", (alice - 10).to_string());
//!         txn.put("bob", (bob + 10).to_string());
//!         Ok::<_, Error>(alice - 10)
//!     })
//!     .await?;
//! # let _ = left; Ok(()) }
//! ```
//!
//! Each attempt `Begin`s a transaction at the primary and hands the closure a fresh
//! [`Transaction`] (a cheap, cloneable handle). Its reads ([`Transaction::get`],
//! [`Transaction::scan`]) see the namespace as of one snapshot, and are recorded: each key
//! with the revision seen (0 when absent), each range scanned. Its writes
//! ([`Transaction::put`], [`Transaction::delete`]) are buffered in the client, and a read of a
//! key the transaction wrote returns the buffered value (read-your-own-writes). When the
//! closure returns `Ok`, the read set and write set are sent in one `Commit` with a fresh
//! request id; the primary validates that nothing read changed since the snapshot and applies
//! every write as one log entry.
//!
//! - ABORTED, at commit or on a read (`TRANSACTION_CONFLICT`, `TRANSACTION_UNKNOWN`,
//!   `TRANSACTION_EXPIRED`, `SNAPSHOT_TOO_OLD`): nothing was written; the whole closure runs
//!   again after a jittered exponential backoff, up to [`TransactionOptions::max_retries`]
//!   times (10 by default), then [`Error::TransactionAborted`] names the last reason. **The
//!   closure may therefore run several times: keep side effects out of it** and return what
//!   you need from it.
//! - A commit whose outcome is unknown (the deadline passed, `COMMIT_TIMEOUT`,
//!   `FORWARD_INTERRUPTED`, the connection failed after sending) is resent with the **same**
//!   request id, up to [`TransactionOptions::commit_resends`] times: the server answers a
//!   resent commit from its first outcome, and with `TRANSACTION_UNKNOWN` when the first never
//!   applied (then the closure runs again). If it stays unknown the call returns
//!   [`Error::Indeterminate`]: the transaction may or may not have committed. A commit that may
//!   have applied is never re-run as a new transaction.
//! - The closure returning `Err` aborts the transaction (an `Abort` is sent) and that error is
//!   returned as is. Its error type `E` is any type with `From<Error>`, so `?` works on the
//!   transaction's calls; [`Error`] itself will do.
//! - A read-only transaction still sends `Commit` (it frees the primary's slot); as it has
//!   nothing to write, a commit whose outcome is unknown is reported as committed: its reads
//!   were already a consistent snapshot.
//!
//! # One-shot transactions
//!
//! ```no_run
//! # async fn demo(client: dialkv_client::Client) -> Result<(), dialkv_client::Error> {
//! use dialkv_client::{Compare, TxnOp};
//!
//! let out = client
//!     .txn()
//!     .when([Compare::value("leader", "n1"), Compare::exists("lease")])
//!     .then([TxnOp::put("leader", "n2"), TxnOp::delete("lease")])
//!     .otherwise([TxnOp::get("leader")])
//!     .commit()
//!     .await?;
//! if !out.succeeded {
//!     println!("leader is {:?}", out.results[0].value);
//! }
//! # Ok(()) }
//! ```
//!
//! The compares are checked and one branch runs, all as one log entry (etcd's `Txn`), with a
//! request id, so a retried one-shot transaction applies at most once. At most 128 compares
//! and 128 ops per branch.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tonic::Code;

use crate::client::{request, Client};
use crate::error::{Error, ErrorStatus};
use crate::options::CallOptions;
use crate::proto::{self, kv_client::KvClient};
use crate::retry::{CallKind, RetryPolicy};
use crate::routing::Route;
use crate::types::{Entry, ResponseMeta, ScanRange, Version};

/// The default number of times an aborted transaction is run again.
pub const DEFAULT_MAX_RETRIES: u32 = 10;
/// The default number of times a commit whose outcome is unknown is resent with its id.
pub const DEFAULT_COMMIT_RESENDS: u32 = 2;

/// How [`Client::transaction_with`] runs a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionOptions {
    /// The namespace (the client's default when unset) and the timeout of each call
    /// (`Begin`, each read, each `Commit` send). The consistency is ignored: transactions
    /// are strict serializable.
    pub call: CallOptions,
    /// How many times an aborted transaction runs again (so at most `max_retries + 1`
    /// attempts). Default [`DEFAULT_MAX_RETRIES`].
    pub max_retries: u32,
    /// How many times a commit whose outcome is unknown is resent with the same request id
    /// before [`Error::Indeterminate`] is returned. Default [`DEFAULT_COMMIT_RESENDS`].
    pub commit_resends: u32,
    /// The wait before the first re-run (doubling, jittered, at least the server's
    /// `RetryInfo`).
    pub base_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
}

impl Default for TransactionOptions {
    fn default() -> Self {
        TransactionOptions {
            call: CallOptions::default(),
            max_retries: DEFAULT_MAX_RETRIES,
            commit_resends: DEFAULT_COMMIT_RESENDS,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(500),
        }
    }
}

impl TransactionOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// These options in `namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.call.namespace = Some(namespace.into());
        self
    }

    /// These options with each call's timeout set.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.call.timeout = Some(timeout);
        self
    }

    /// These options with the retry limit set.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// These options with the number of same-id resends of an unknown commit set.
    pub fn commit_resends(mut self, resends: u32) -> Self {
        self.commit_resends = resends;
        self
    }

    fn backoff(&self, failed: u32, hint: Option<Duration>) -> Duration {
        RetryPolicy {
            attempts: 1,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
        }
        .backoff(failed, hint)
    }
}

/// A committed interactive transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed<T> {
    /// What the closure returned on the attempt that committed.
    pub value: T,
    /// The revision of the transaction's writes; `None` for a read-only transaction.
    pub revision: Option<u64>,
    /// The snapshot the committed attempt read at.
    pub snapshot_revision: u64,
    /// How many times the closure ran (1 when the first attempt committed).
    pub attempts: u32,
}

/// What a transaction has read and buffered: the pure part of a [`Transaction`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadWriteSet {
    /// Keys read from the snapshot, with the revision seen (0: absent).
    reads: BTreeMap<Bytes, u64>,
    /// Ranges scanned, `[start, end)` (empty end: to the end of the namespace).
    ranges: Vec<(Bytes, Bytes)>,
    /// Buffered writes: the last value per key, `None` for a delete.
    writes: BTreeMap<Bytes, Option<Bytes>>,
}

impl ReadWriteSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the transaction wrote to `key`: `Some(Some(value))` for a put, `Some(None)` for
    /// a delete, `None` when it did not write it.
    pub fn buffered(&self, key: &[u8]) -> Option<Option<&Bytes>> {
        self.writes.get(key).map(Option::as_ref)
    }

    /// Records a read of `key` that saw `revision` (0: absent). The first read of a key
    /// counts (a snapshot answers every read of a key alike).
    pub fn record_read(&mut self, key: Bytes, revision: u64) {
        self.reads.entry(key).or_insert(revision);
    }

    /// Records a scan of `[start, end)`.
    pub fn record_range(&mut self, start: Bytes, end: Bytes) {
        if !self.ranges.iter().any(|(s, e)| *s == start && *e == end) {
            self.ranges.push((start, end));
        }
    }

    /// Buffers a put.
    pub fn put(&mut self, key: Bytes, value: Bytes) {
        self.writes.insert(key, Some(value));
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: Bytes) {
        self.writes.insert(key, None);
    }

    /// The keys read, with the revisions seen, in key order.
    pub fn reads(&self) -> impl Iterator<Item = (&Bytes, u64)> {
        self.reads.iter().map(|(k, r)| (k, *r))
    }

    /// The ranges scanned.
    pub fn ranges(&self) -> &[(Bytes, Bytes)] {
        &self.ranges
    }

    /// The buffered writes, in key order (`None`: a delete).
    pub fn writes(&self) -> impl Iterator<Item = (&Bytes, Option<&Bytes>)> {
        self.writes.iter().map(|(k, v)| (k, v.as_ref()))
    }

    /// Whether nothing is buffered.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty()
    }

    /// The entries of `[start, end)` as the transaction sees them: `snapshot` (the
    /// snapshot's entries of the range, in key order) with its own buffered writes laid
    /// over (puts added or replaced, with revision 0; deletes removed).
    pub fn overlay(&self, start: &[u8], end: &[u8], snapshot: Vec<Entry>) -> Vec<Entry> {
        let in_range = |k: &[u8]| k >= start && (end.is_empty() || k < end);
        let mut merged: BTreeMap<Bytes, Entry> = snapshot
            .into_iter()
            .filter(|e| self.buffered(&e.key).is_none())
            .map(|e| (e.key.clone(), e))
            .collect();
        for (key, value) in self.writes.iter().filter(|(k, _)| in_range(k)) {
            if let Some(value) = value {
                merged.insert(
                    key.clone(),
                    Entry {
                        key: key.clone(),
                        value: value.clone(),
                        version: Version::default(),
                    },
                );
            }
        }
        merged.into_values().collect()
    }

    /// The `Commit` request of this set.
    pub fn commit_request(
        &self,
        namespace: &str,
        transaction: u64,
        request_id: proto::RequestId,
    ) -> proto::CommitRequest {
        proto::CommitRequest {
            namespace: namespace.to_string(),
            transaction,
            reads: self
                .reads
                .iter()
                .map(|(key, revision)| proto::ReadKey {
                    key: key.clone(),
                    revision: *revision,
                })
                .collect(),
            ranges: self
                .ranges
                .iter()
                .map(|(start, end)| proto::ReadRange {
                    start_key: start.clone(),
                    end_key: end.clone(),
                })
                .collect(),
            writes: self
                .writes
                .iter()
                .map(|(key, value)| proto::WriteOp {
                    key: key.clone(),
                    value: value.clone().unwrap_or_default(),
                    delete: value.is_none(),
                })
                .collect(),
            request_id: Some(request_id),
            session: None,
        }
    }
}

/// The mutable state of one attempt.
#[derive(Debug, Default)]
struct AttemptState {
    set: ReadWriteSet,
    /// The ABORTED answer a read of this attempt got: the server ended the transaction.
    aborted: Option<ErrorStatus>,
    /// Set once the closure returned: the handle no longer does anything.
    ended: bool,
}

/// One attempt of an interactive transaction, as the closure of [`Client::transaction`]
/// sees it. Cheap to clone (clones share the attempt), so reads may run concurrently.
#[derive(Clone, Debug)]
pub struct Transaction {
    inner: Arc<Attempt>,
}

#[derive(Debug)]
struct Attempt {
    client: Client,
    namespace: String,
    id: u64,
    snapshot: u64,
    max_age: Duration,
    opts: CallOptions,
    state: Mutex<AttemptState>,
}

/// The error of a call on a transaction whose closure has returned.
fn ended() -> Error {
    Error::FailedPrecondition(ErrorStatus::local(
        Code::FailedPrecondition,
        "the transaction attempt has ended (its closure returned); use the Transaction only inside the closure",
    ))
}

impl Transaction {
    fn state(&self) -> MutexGuard<'_, AttemptState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The server's id of this transaction.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The revision this transaction's reads see.
    pub fn snapshot_revision(&self) -> u64 {
        self.inner.snapshot
    }

    /// How long the server lets this transaction stay open before aborting it.
    pub fn max_age(&self) -> Duration {
        self.inner.max_age
    }

    /// The namespace of this transaction.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// A copy of what this attempt has read and buffered so far.
    pub fn read_write_set(&self) -> ReadWriteSet {
        self.state().set.clone()
    }

    /// Notes a failed call: an ABORTED answer means the server ended the transaction.
    fn failed(&self, err: Error) -> Error {
        if let Error::Aborted(status) = &err {
            let mut state = self.state();
            if state.aborted.is_none() {
                state.aborted = Some(status.clone());
            }
        }
        err
    }

    /// Reads `key`'s value at the snapshot (or as this transaction wrote it); `None` when it
    /// does not exist.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        Ok(self.get_entry(key).await?.map(|e| e.value))
    }

    /// Reads `key` at the snapshot with its version; a key this transaction wrote is returned
    /// as written, with revision 0 (not committed yet), and a key it deleted as `None`.
    pub async fn get_entry(&self, key: impl AsRef<[u8]>) -> Result<Option<Entry>, Error> {
        let key = Bytes::copy_from_slice(key.as_ref());
        {
            let state = self.state();
            if state.ended {
                return Err(ended());
            }
            if let Some(written) = state.set.buffered(&key) {
                return Ok(written.map(|value| Entry {
                    key: key.clone(),
                    value: value.clone(),
                    version: Version::default(),
                }));
            }
        }
        let a = &self.inner;
        let reply = a
            .client
            .call(
                CallKind::Transaction,
                Route::Primary,
                a.client.deadline_of(&a.opts),
                |channel, remaining| {
                    let req = proto::GetRequest {
                        namespace: a.namespace.clone(),
                        key: key.clone(),
                        transaction: a.id,
                        ..Default::default()
                    };
                    async move {
                        Ok(KvClient::new(channel)
                            .get(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await
            .map_err(|e| self.failed(e))?;
        let version = reply.version.map(Version::from_proto).unwrap_or_default();
        let revision = if reply.found { version.revision } else { 0 };
        self.state().set.record_read(key.clone(), revision);
        Ok(reply.found.then(|| Entry {
            key,
            value: reply.value,
            version,
        }))
    }

    /// Reads every key of `range` at the snapshot (following pages of `range.limit` keys,
    /// the server's default when 0), with this transaction's own writes laid over. The whole
    /// range is recorded: the commit aborts if any key in it changed since the snapshot.
    pub async fn scan(&self, range: &ScanRange) -> Result<Vec<Entry>, Error> {
        if self.state().ended {
            return Err(ended());
        }
        let a = &self.inner;
        let mut items = Vec::new();
        let mut continuation = Bytes::new();
        loop {
            let reply = a
                .client
                .call(
                    CallKind::Transaction,
                    Route::Primary,
                    a.client.deadline_of(&a.opts),
                    |channel, remaining| {
                        let req = proto::ScanRequest {
                            namespace: a.namespace.clone(),
                            start_key: range.start.clone(),
                            end_key: range.end.clone(),
                            limit: range.limit,
                            continuation: continuation.clone(),
                            transaction: a.id,
                            ..Default::default()
                        };
                        async move {
                            Ok(KvClient::new(channel)
                                .scan(request(req, remaining))
                                .await?
                                .into_inner())
                        }
                    },
                )
                .await
                .map_err(|e| self.failed(e))?;
            items.extend(reply.items.into_iter().map(Entry::from_proto));
            if reply.continuation.is_empty() {
                break;
            }
            continuation = reply.continuation;
        }
        let mut state = self.state();
        state
            .set
            .record_range(range.start.clone(), range.end.clone());
        Ok(state.set.overlay(&range.start, &range.end, items))
    }

    /// Buffers a write of `key` = `value`, sent with the commit. Has no effect once the
    /// closure has returned.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl Into<Bytes>) {
        let mut state = self.state();
        if !state.ended {
            state
                .set
                .put(Bytes::copy_from_slice(key.as_ref()), value.into());
        }
    }

    /// Buffers a delete of `key`, sent with the commit. Has no effect once the closure has
    /// returned.
    pub fn delete(&self, key: impl AsRef<[u8]>) {
        let mut state = self.state();
        if !state.ended {
            state.set.delete(Bytes::copy_from_slice(key.as_ref()));
        }
    }

    /// Ends the attempt: later calls on any clone do nothing. Returns the ABORTED status a
    /// read got, if any, and the read and write sets.
    fn end(&self) -> (Option<ErrorStatus>, ReadWriteSet) {
        let mut state = self.state();
        state.ended = true;
        (state.aborted.take(), std::mem::take(&mut state.set))
    }

    /// Sends `Abort`, ignoring failures (the server drops the transaction at its maximum age
    /// anyway).
    async fn abort_quietly(&self) {
        let a = &self.inner;
        let opts = CallOptions {
            timeout: Some(Duration::from_secs(1)),
            ..a.opts.clone()
        };
        let result = a
            .client
            .call(
                CallKind::Transaction,
                Route::Primary,
                a.client.deadline_of(&opts),
                |channel, remaining| {
                    let req = proto::AbortRequest {
                        namespace: a.namespace.clone(),
                        transaction: a.id,
                    };
                    async move {
                        Ok(KvClient::new(channel)
                            .abort(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await;
        if let Err(e) = result {
            tracing::debug!(transaction = a.id, error = %e, "dialkv abort failed");
        }
    }
}

/// What to do after a commit call failed.
#[derive(Debug)]
pub enum CommitStep {
    /// Definitely not committed (ABORTED): run the closure again.
    Rerun(ErrorStatus),
    /// The outcome is unknown: send the same commit (same request id) again.
    Resend(ErrorStatus),
    /// The outcome is unknown and no resend is left: report [`Error::Indeterminate`].
    Indeterminate(ErrorStatus),
    /// A read-only transaction whose commit outcome is unknown: nothing could have been
    /// written and its reads were a snapshot, so it counts as committed.
    ReadOnlyDone,
    /// A definite failure that re-running will not fix: return it.
    Fail(Error),
}

/// Decides what follows a commit call that failed with `err`. `unknown_before` says whether
/// an earlier send of this commit may have applied; `may_resend` whether a resend is left;
/// `read_only` whether the transaction wrote nothing.
///
/// ABORTED is definite even after an unknown send: the server answers a resent commit from
/// its first outcome (a conflict, say), and with `TRANSACTION_UNKNOWN` when the first never
/// applied. Any other failure after an unknown send leaves the outcome unknown.
pub fn after_failed_commit(
    err: Error,
    unknown_before: bool,
    may_resend: bool,
    read_only: bool,
) -> CommitStep {
    let unknown = |status: ErrorStatus| {
        if read_only {
            CommitStep::ReadOnlyDone
        } else if may_resend {
            CommitStep::Resend(status)
        } else {
            CommitStep::Indeterminate(status)
        }
    };
    match err {
        Error::Aborted(status) | Error::TransactionAborted { status, .. } => {
            CommitStep::Rerun(status)
        }
        Error::Indeterminate(status) => unknown(status),
        other if unknown_before => {
            let status = other
                .status()
                .cloned()
                .unwrap_or_else(|| ErrorStatus::local(Code::Unknown, other.to_string()));
            if other.is_retryable() || read_only {
                unknown(status)
            } else {
                CommitStep::Indeterminate(status)
            }
        }
        other => CommitStep::Fail(other),
    }
}

/// How an attempt's commit ended, when it did not commit.
enum CommitFailure {
    /// ABORTED: run again.
    Aborted(ErrorStatus),
    /// Anything else: return it.
    Error(Error),
}

impl Client {
    /// Runs `f` as an interactive transaction in the default namespace, retrying it when
    /// aborted (see [`crate::transaction`]); returns what `f` returned on the attempt that
    /// committed.
    ///
    /// ```no_run
    /// # async fn demo(client: dialkv_client::Client) -> Result<(), dialkv_client::Error> {
    /// let seen = client
    ///     .transaction(|txn| async move {
    ///         let n = txn.get("counter").await?.map_or(0, |v| v.len());
    ///         txn.put("counter", vec![b'x'; n + 1]);
    ///         Ok::<_, dialkv_client::Error>(n)
    ///     })
    ///     .await?;
    /// # let _ = seen; Ok(()) }
    /// ```
    pub async fn transaction<T, E, F, Fut>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        self.transaction_with(&TransactionOptions::default(), f)
            .await
            .map(|c| c.value)
    }

    /// [`Client::transaction`] with `opts`; returns the closure's value with the commit's
    /// revision and the number of attempts.
    pub async fn transaction_with<T, E, F, Fut>(
        &self,
        opts: &TransactionOptions,
        mut f: F,
    ) -> Result<Committed<T>, E>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let txn = self.begin(&opts.call).await?;
            let result = f(txn.clone()).await;
            let (aborted, set) = txn.end();
            let status = match (result, aborted) {
                // The server ended the transaction under a read: whatever the closure made
                // of that, run it again.
                (_, Some(status)) => status,
                (Err(e), None) => {
                    txn.abort_quietly().await;
                    return Err(e);
                }
                (Ok(value), None) => match self.commit(&txn, &set, opts).await {
                    Ok(revision) => {
                        return Ok(Committed {
                            value,
                            revision,
                            snapshot_revision: txn.snapshot_revision(),
                            attempts,
                        })
                    }
                    Err(CommitFailure::Aborted(status)) => status,
                    Err(CommitFailure::Error(e)) => {
                        if !e.is_indeterminate() {
                            txn.abort_quietly().await;
                        }
                        return Err(e.into());
                    }
                },
            };
            tracing::debug!(
                transaction = txn.id(),
                attempt = attempts,
                reason = status.reason(),
                "dialkv transaction aborted"
            );
            if attempts > opts.max_retries {
                return Err(Error::TransactionAborted { status, attempts }.into());
            }
            tokio::time::sleep(opts.backoff(attempts, status.retry_delay())).await;
        }
    }

    /// Begins a transaction at the primary.
    async fn begin(&self, opts: &CallOptions) -> Result<Transaction, Error> {
        let namespace = self.namespace_of(opts);
        let reply = self
            .call(
                CallKind::Transaction,
                Route::Primary,
                self.deadline_of(opts),
                |channel, remaining| {
                    let req = proto::BeginRequest {
                        namespace: namespace.clone(),
                        session: None,
                    };
                    async move {
                        Ok(KvClient::new(channel)
                            .begin(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        Ok(Transaction {
            inner: Arc::new(Attempt {
                client: self.clone(),
                namespace,
                id: reply.transaction,
                snapshot: reply.snapshot_revision,
                max_age: Duration::from_millis(reply.max_age_ms),
                opts: opts.clone(),
                state: Mutex::new(AttemptState::default()),
            }),
        })
    }

    /// Commits an attempt: sends its sets with a fresh request id, and resends them with the
    /// same id while the outcome is unknown. Returns the writes' revision.
    async fn commit(
        &self,
        txn: &Transaction,
        set: &ReadWriteSet,
        opts: &TransactionOptions,
    ) -> Result<Option<u64>, CommitFailure> {
        let req = set.commit_request(txn.namespace(), txn.id(), self.next_request_id());
        let mut sends = 0u32;
        let mut unknown_before = false;
        loop {
            sends += 1;
            let result = self
                .call(
                    CallKind::Commit,
                    Route::Primary,
                    self.deadline_of(&opts.call),
                    |channel, remaining| {
                        let req = req.clone();
                        async move {
                            Ok(KvClient::new(channel)
                                .commit(request(req, remaining))
                                .await?
                                .into_inner())
                        }
                    },
                )
                .await;
            let err = match result {
                Ok(reply) => return Ok(reply.version.map(|v| v.revision).filter(|r| *r != 0)),
                Err(e) => e,
            };
            let may_resend = sends <= opts.commit_resends;
            match after_failed_commit(err, unknown_before, may_resend, set.is_read_only()) {
                CommitStep::Rerun(status) => return Err(CommitFailure::Aborted(status)),
                CommitStep::ReadOnlyDone => return Ok(None),
                CommitStep::Fail(e) => return Err(CommitFailure::Error(e)),
                CommitStep::Indeterminate(status) => {
                    return Err(CommitFailure::Error(Error::Indeterminate(status)))
                }
                CommitStep::Resend(status) => {
                    tracing::debug!(
                        transaction = txn.id(),
                        send = sends,
                        reason = status.reason(),
                        "dialkv commit outcome unknown; resending with the same request id"
                    );
                    unknown_before = true;
                    tokio::time::sleep(opts.backoff(sends, status.retry_delay())).await;
                }
            }
        }
    }

    /// A one-shot compare/then/else transaction in the default namespace; see
    /// [`TxnBuilder`].
    pub fn txn(&self) -> TxnBuilder<'_> {
        TxnBuilder {
            client: self,
            compares: Vec::new(),
            success: Vec::new(),
            failure: Vec::new(),
            opts: CallOptions::default(),
        }
    }
}

/// What a one-shot compare checks of a key's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key exists with exactly this value.
    ValueEquals(Bytes),
    /// The key exists at exactly this revision.
    RevisionEquals(u64),
    /// `true`: the key exists; `false`: it does not.
    Exists(bool),
}

/// One condition of a one-shot transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key.
    pub key: Bytes,
    /// What must hold of it.
    pub target: CompareTarget,
}

impl Compare {
    /// `key` exists with exactly `value`.
    pub fn value(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::ValueEquals(value.into()),
        }
    }

    /// `key` exists at exactly `revision`.
    pub fn revision(key: impl Into<Bytes>, revision: u64) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::RevisionEquals(revision),
        }
    }

    /// `key` exists.
    pub fn exists(key: impl Into<Bytes>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Exists(true),
        }
    }

    /// `key` does not exist.
    pub fn absent(key: impl Into<Bytes>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Exists(false),
        }
    }

    fn to_proto(&self) -> proto::Compare {
        use proto::compare::Target;
        proto::Compare {
            key: self.key.clone(),
            target: Some(match &self.target {
                CompareTarget::ValueEquals(v) => Target::ValueEquals(v.clone()),
                CompareTarget::RevisionEquals(r) => Target::RevisionEquals(*r),
                CompareTarget::Exists(e) => Target::Exists(*e),
            }),
        }
    }
}

/// One operation of a one-shot transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// Write `key` = `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: Bytes,
    },
}

impl TxnOp {
    /// A put.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A delete.
    pub fn delete(key: impl Into<Bytes>) -> Self {
        TxnOp::Delete { key: key.into() }
    }

    /// A get.
    pub fn get(key: impl Into<Bytes>) -> Self {
        TxnOp::Get { key: key.into() }
    }

    /// Which kind of operation this is.
    pub fn kind(&self) -> TxnOpKind {
        match self {
            TxnOp::Put { .. } => TxnOpKind::Put,
            TxnOp::Delete { .. } => TxnOpKind::Delete,
            TxnOp::Get { .. } => TxnOpKind::Get,
        }
    }

    /// The key it acts on.
    pub fn key(&self) -> &Bytes {
        match self {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } | TxnOp::Get { key } => key,
        }
    }

    fn to_proto(&self) -> proto::TxnOp {
        use proto::txn_op::Op;
        let op = match self {
            TxnOp::Put { key, value } => Op::Put(proto::PutOp {
                key: key.clone(),
                value: value.clone(),
            }),
            TxnOp::Delete { key } => Op::Delete(proto::DeleteOp { key: key.clone() }),
            TxnOp::Get { key } => Op::Get(proto::GetOp { key: key.clone() }),
        };
        proto::TxnOp { op: Some(op) }
    }
}

/// The kind of a [`TxnOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnOpKind {
    /// A put.
    Put,
    /// A delete.
    Delete,
    /// A get.
    Get,
}

impl TxnOpKind {
    /// The lower-case name used by `dialctl` (`put`, `del`, `get`).
    pub fn name(self) -> &'static str {
        match self {
            TxnOpKind::Put => "put",
            TxnOpKind::Delete => "del",
            TxnOpKind::Get => "get",
        }
    }
}

/// What one operation of a one-shot transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOpResult {
    /// The kind of operation.
    pub kind: TxnOpKind,
    /// The key.
    pub key: Bytes,
    /// For a get: whether the key exists; for a delete: whether it existed; for a put: true.
    pub found: bool,
    /// For a get: the value (empty otherwise).
    pub value: Bytes,
    /// For a get: the value's version; for a write: the write's version. `None` for a get
    /// of an absent key.
    pub version: Option<Version>,
}

/// The reply to a one-shot transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOutput {
    /// Whether every compare held, so the `then` ops ran (else the `otherwise` ops ran).
    pub succeeded: bool,
    /// The results of the ops that ran, in order.
    pub results: Vec<TxnOpResult>,
    /// The version of the writes, when any ran.
    pub version: Option<Version>,
    /// The response header.
    pub meta: ResponseMeta,
}

/// Builds a one-shot transaction: `when` compares all hold, `then` ops run, `otherwise` the
/// `otherwise` ops run; all as one atomic step. Made by [`Client::txn`].
#[derive(Clone, Debug)]
#[must_use = "a one-shot transaction does nothing until .commit().await"]
pub struct TxnBuilder<'a> {
    client: &'a Client,
    compares: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
    opts: CallOptions,
}

impl TxnBuilder<'_> {
    /// Adds compares (all must hold for the `then` ops to run; none means they run).
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds ops run when every compare holds.
    pub fn then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Adds ops run when a compare does not hold.
    pub fn otherwise(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// Sets the call options (namespace, timeout; the consistency is ignored).
    pub fn options(mut self, opts: CallOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Sends the transaction. A failure after it may have been applied is
    /// [`Error::Indeterminate`]; retries carry the same request id, so it applies at most
    /// once.
    pub async fn commit(self) -> Result<TxnOutput, Error> {
        let client = self.client;
        let namespace = client.namespace_of(&self.opts);
        let id = client.next_request_id();
        let req = proto::TxnRequest {
            namespace,
            compares: self.compares.iter().map(Compare::to_proto).collect(),
            success: self.success.iter().map(TxnOp::to_proto).collect(),
            failure: self.failure.iter().map(TxnOp::to_proto).collect(),
            request_id: Some(id),
            session: None,
        };
        let reply = client
            .call(
                CallKind::IdempotentWrite,
                Route::Primary,
                client.deadline_of(&self.opts),
                |channel, remaining| {
                    let req = req.clone();
                    async move {
                        Ok(KvClient::new(channel)
                            .txn(request(req, remaining))
                            .await?
                            .into_inner())
                    }
                },
            )
            .await?;
        let ran = if reply.succeeded {
            &self.success
        } else {
            &self.failure
        };
        if reply.results.len() != ran.len() {
            return Err(Error::UnexpectedResponse(format!(
                "{} results for {} ops",
                reply.results.len(),
                ran.len()
            )));
        }
        let results = ran
            .iter()
            .zip(reply.results)
            .map(|(op, r)| TxnOpResult {
                kind: op.kind(),
                key: r.key,
                found: r.found,
                value: r.value,
                version: r.version.map(Version::from_proto),
            })
            .collect();
        Ok(TxnOutput {
            succeeded: reply.succeeded,
            results,
            version: reply.version.map(Version::from_proto),
            meta: ResponseMeta::from_proto(reply.header)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::reason;
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicU32, Ordering};
    use tonic_types::{ErrorDetails, StatusExt};

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn entry(key: &str, value: &str, revision: u64) -> Entry {
        Entry {
            key: b(key),
            value: b(value),
            version: Version {
                revision,
                context: Bytes::new(),
            },
        }
    }

    /// A status as the server sends it.
    fn server_status(code: Code, why: &str) -> tonic::Status {
        let mut details = ErrorDetails::new();
        details.set_error_info(why, crate::error::ERROR_DOMAIN, HashMap::new());
        tonic::Status::with_error_details(code, format!("{why} (fake)"), details)
    }

    fn status_of(code: Code, why: &str) -> ErrorStatus {
        ErrorStatus::from_tonic(&server_status(code, why))
    }

    // ---- the pure parts -----------------------------------------------------------------

    #[test]
    fn reads_are_recorded_once_with_the_revision_seen() {
        let mut set = ReadWriteSet::new();
        set.record_read(b("a"), 5);
        set.record_read(b("missing"), 0);
        set.record_read(b("a"), 9); // a snapshot answers alike; the first read counts
        set.record_range(b("a"), b("m"));
        set.record_range(b("a"), b("m"));
        set.record_range(b("x"), Bytes::new());
        set.put(b("b"), b("1"));
        set.delete(b("c"));
        set.put(b("b"), b("2")); // the last write of a key wins
        let req = set.commit_request(
            "ns",
            77,
            proto::RequestId {
                client_id: 1,
                seq: 2,
            },
        );
        assert_eq!((req.namespace.as_str(), req.transaction), ("ns", 77));
        let reads: Vec<(Bytes, u64)> = req
            .reads
            .iter()
            .map(|r| (r.key.clone(), r.revision))
            .collect();
        assert_eq!(reads, [(b("a"), 5), (b("missing"), 0)]);
        let ranges: Vec<(Bytes, Bytes)> = req
            .ranges
            .iter()
            .map(|r| (r.start_key.clone(), r.end_key.clone()))
            .collect();
        assert_eq!(ranges, [(b("a"), b("m")), (b("x"), Bytes::new())]);
        let writes: Vec<(Bytes, Bytes, bool)> = req
            .writes
            .iter()
            .map(|w| (w.key.clone(), w.value.clone(), w.delete))
            .collect();
        assert_eq!(
            writes,
            [(b("b"), b("2"), false), (b("c"), Bytes::new(), true)]
        );
        assert_eq!(req.request_id.map(|r| r.seq), Some(2));
        assert!(!set.is_read_only());
        assert!(ReadWriteSet::new().is_read_only());
    }

    #[test]
    fn own_writes_are_read_back_and_laid_over_scans() {
        let mut set = ReadWriteSet::new();
        assert_eq!(set.buffered(b"k"), None);
        set.put(b("k"), b("v"));
        set.delete(b("gone"));
        assert_eq!(set.buffered(b"k"), Some(Some(&b("v"))));
        assert_eq!(set.buffered(b"gone"), Some(None));
        set.put(b("b2"), b("new"));
        set.put(b("a"), b("changed"));
        set.put(b("zz"), b("out of range"));
        let snapshot = vec![
            entry("a", "old", 3),
            entry("b", "1", 4),
            entry("gone", "x", 5),
        ];
        let seen = set.overlay(b"a", b"y", snapshot.clone());
        let shown: Vec<(&[u8], &[u8], u64)> = seen
            .iter()
            .map(|e| (&e.key[..], &e.value[..], e.version.revision))
            .collect();
        assert_eq!(
            shown,
            [
                (&b"a"[..], &b"changed"[..], 0),
                (b"b", b"1", 4),
                (b"b2", b"new", 0),
                (b"k", b"v", 0),
            ]
        );
        // An unbounded end takes every buffered put from the start on.
        assert_eq!(set.overlay(b"k", b"", Vec::new()).len(), 2);
    }

    #[test]
    fn commit_decisions() {
        use CommitStep::*;
        let conflict = || Error::Aborted(status_of(Code::Aborted, reason::TRANSACTION_CONFLICT));
        let late =
            || Error::Indeterminate(status_of(Code::DeadlineExceeded, reason::COMMIT_TIMEOUT));
        let cut = || {
            Error::Indeterminate(status_of(
                Code::DeadlineExceeded,
                reason::FORWARD_INTERRUPTED,
            ))
        };
        let unavailable = || Error::Unavailable(status_of(Code::Unavailable, reason::NOT_LEADER));
        let too_large = || {
            Error::InvalidArgument(status_of(
                Code::InvalidArgument,
                reason::TRANSACTION_TOO_LARGE,
            ))
        };
        // ABORTED is definite, before or after an unknown send: run the closure again.
        for unknown_before in [false, true] {
            assert!(matches!(
                after_failed_commit(conflict(), unknown_before, true, false),
                Rerun(_)
            ));
            let unknown = Error::Aborted(status_of(Code::Aborted, reason::TRANSACTION_UNKNOWN));
            assert!(matches!(
                after_failed_commit(unknown, unknown_before, false, false),
                Rerun(_)
            ));
        }
        // An unknown outcome is resent while resends are left, then indeterminate.
        assert!(matches!(
            after_failed_commit(late(), false, true, false),
            Resend(_)
        ));
        assert!(matches!(
            after_failed_commit(cut(), false, true, false),
            Resend(_)
        ));
        assert!(matches!(
            after_failed_commit(late(), true, false, false),
            Indeterminate(_)
        ));
        // After an unknown send, a definite failure of the resend settles nothing.
        assert!(matches!(
            after_failed_commit(unavailable(), true, true, false),
            Resend(_)
        ));
        assert!(matches!(
            after_failed_commit(unavailable(), true, false, false),
            Indeterminate(_)
        ));
        assert!(matches!(
            after_failed_commit(too_large(), true, true, false),
            Indeterminate(_)
        ));
        // Without one, it is returned.
        assert!(matches!(
            after_failed_commit(unavailable(), false, true, false),
            Fail(Error::Unavailable(_))
        ));
        assert!(matches!(
            after_failed_commit(too_large(), false, true, false),
            Fail(Error::InvalidArgument(_))
        ));
        // A read-only transaction has nothing to leave unknown.
        assert!(matches!(
            after_failed_commit(late(), false, true, true),
            ReadOnlyDone
        ));
        assert!(matches!(
            after_failed_commit(unavailable(), true, false, true),
            ReadOnlyDone
        ));
        assert!(matches!(
            after_failed_commit(conflict(), false, true, true),
            Rerun(_)
        ));
    }

    #[test]
    fn an_aborted_transaction_error_names_the_reason() {
        let err = Error::TransactionAborted {
            status: ErrorStatus::local(Code::Aborted, "key bob changed"),
            attempts: 11,
        };
        assert_eq!(
            err.to_string(),
            "ABORTED after 11 attempts: ABORTED key bob changed"
        );
        let s =
            ErrorStatus::from_tonic(&server_status(Code::Aborted, reason::TRANSACTION_CONFLICT));
        let err = Error::TransactionAborted {
            status: s,
            attempts: 3,
        };
        assert_eq!(err.reason(), Some(reason::TRANSACTION_CONFLICT));
        assert!(err
            .to_string()
            .starts_with("ABORTED after 3 attempts: TRANSACTION_CONFLICT "));
        assert!(err.is_retryable() && !err.is_indeterminate());
    }

    // ---- against a fake KV server -------------------------------------------------------

    /// How the fake answers one call (calls with no answer queued succeed).
    #[derive(Clone, Debug)]
    enum Answer {
        Status(Code, &'static str),
    }

    #[derive(Default)]
    struct FakeState {
        data: BTreeMap<Bytes, (Bytes, u64)>,
        /// Answers of the next commits, in order; `Ok` once empty.
        commits: VecDeque<Answer>,
        /// Answers of the next transactional gets, in order; `Ok` once empty.
        gets: VecDeque<Answer>,
        /// Every commit received.
        received: Vec<proto::CommitRequest>,
        begins: u64,
        aborts: Vec<u64>,
    }

    #[derive(Clone, Default)]
    struct FakeKv {
        state: Arc<Mutex<FakeState>>,
    }

    impl FakeKv {
        fn state(&self) -> MutexGuard<'_, FakeState> {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    fn header() -> Option<proto::ResponseHeader> {
        Some(proto::ResponseHeader {
            served_level: proto::ConsistencyLevel::Linearizable as i32,
            ..Default::default()
        })
    }

    fn answer(a: Option<Answer>) -> Result<(), tonic::Status> {
        match a {
            None => Ok(()),
            Some(Answer::Status(code, why)) => Err(server_status(code, why)),
        }
    }

    type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

    #[tonic::async_trait]
    impl proto::kv_server::Kv for FakeKv {
        async fn get(&self, req: tonic::Request<proto::GetRequest>) -> Reply<proto::GetResponse> {
            let req = req.into_inner();
            let mut s = self.state();
            if req.transaction != 0 {
                let next = s.gets.pop_front();
                answer(next)?;
            }
            let found = s.data.get(&req.key).cloned();
            Ok(tonic::Response::new(proto::GetResponse {
                header: header(),
                found: found.is_some(),
                version: found.as_ref().map(|(_, r)| proto::Version {
                    revision: *r,
                    context: Bytes::new(),
                }),
                value: found.map(|(v, _)| v).unwrap_or_default(),
                siblings: Vec::new(),
            }))
        }

        async fn put(&self, _: tonic::Request<proto::PutRequest>) -> Reply<proto::PutResponse> {
            Err(tonic::Status::unimplemented("fake"))
        }

        async fn delete(
            &self,
            _: tonic::Request<proto::DeleteRequest>,
        ) -> Reply<proto::DeleteResponse> {
            Err(tonic::Status::unimplemented("fake"))
        }

        async fn scan(
            &self,
            req: tonic::Request<proto::ScanRequest>,
        ) -> Reply<proto::ScanResponse> {
            let req = req.into_inner();
            let s = self.state();
            let items = s
                .data
                .iter()
                .filter(|(k, _)| {
                    **k >= req.start_key && (req.end_key.is_empty() || **k < req.end_key)
                })
                .map(|(k, (v, r))| proto::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                    version: Some(proto::Version {
                        revision: *r,
                        context: Bytes::new(),
                    }),
                })
                .collect();
            Ok(tonic::Response::new(proto::ScanResponse {
                header: header(),
                items,
                continuation: Bytes::new(),
            }))
        }

        async fn compare_and_set(
            &self,
            _: tonic::Request<proto::CompareAndSetRequest>,
        ) -> Reply<proto::CompareAndSetResponse> {
            Err(tonic::Status::unimplemented("fake"))
        }

        async fn txn(&self, req: tonic::Request<proto::TxnRequest>) -> Reply<proto::TxnResponse> {
            // Succeeds when there is no compare; answers each op with found = true.
            let req = req.into_inner();
            let succeeded = req.compares.is_empty();
            let ran = if succeeded { req.success } else { req.failure };
            Ok(tonic::Response::new(proto::TxnResponse {
                header: header(),
                succeeded,
                results: ran
                    .into_iter()
                    .map(|op| proto::TxnOpResult {
                        key: match op.op {
                            Some(proto::txn_op::Op::Put(p)) => p.key,
                            Some(proto::txn_op::Op::Delete(d)) => d.key,
                            Some(proto::txn_op::Op::Get(g)) => g.key,
                            None => Bytes::new(),
                        },
                        found: true,
                        value: Bytes::from_static(b"v"),
                        version: Some(proto::Version {
                            revision: 9,
                            context: Bytes::new(),
                        }),
                    })
                    .collect(),
                version: Some(proto::Version {
                    revision: 9,
                    context: Bytes::new(),
                }),
            }))
        }

        async fn begin(
            &self,
            _: tonic::Request<proto::BeginRequest>,
        ) -> Reply<proto::BeginResponse> {
            let mut s = self.state();
            s.begins += 1;
            Ok(tonic::Response::new(proto::BeginResponse {
                header: header(),
                transaction: 100 + s.begins,
                snapshot_revision: 10,
                max_age_ms: 60_000,
            }))
        }

        async fn commit(
            &self,
            req: tonic::Request<proto::CommitRequest>,
        ) -> Reply<proto::CommitResponse> {
            let mut s = self.state();
            s.received.push(req.into_inner());
            let next = s.commits.pop_front();
            answer(next)?;
            Ok(tonic::Response::new(proto::CommitResponse {
                header: header(),
                version: Some(proto::Version {
                    revision: 11,
                    context: Bytes::new(),
                }),
            }))
        }

        async fn abort(
            &self,
            req: tonic::Request<proto::AbortRequest>,
        ) -> Reply<proto::AbortResponse> {
            self.state().aborts.push(req.into_inner().transaction);
            Ok(tonic::Response::new(proto::AbortResponse {}))
        }
    }

    /// Starts a fake KV server holding `a` = 1 (revision 5) and `b` = 2 (revision 6); returns
    /// it and a client of it.
    async fn start(commits: &[Answer]) -> (FakeKv, Client) {
        let fake = FakeKv::default();
        {
            let mut s = fake.state();
            s.data.insert(b("a"), (b("1"), 5));
            s.data.insert(b("b"), (b("2"), 6));
            s.commits = commits.iter().cloned().collect();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let address = listener.local_addr().expect("bound").to_string();
        let incoming = futures::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(stream, _)| stream);
            Some((conn, l))
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(proto::kv_server::KvServer::new(fake.clone()))
                .serve_with_incoming(incoming),
        );
        let client = Client::builder()
            .endpoints([address])
            .timeout(Duration::from_secs(5))
            .build()
            .expect("valid");
        (fake, client)
    }

    /// Reads `a`, writes `b` = a + 1, counting the runs.
    async fn increment(txn: Transaction, runs: Arc<AtomicU32>) -> Result<u32, Error> {
        runs.fetch_add(1, Ordering::SeqCst);
        let a = txn.get("a").await?.unwrap_or_default();
        let a: u32 = std::str::from_utf8(&a)
            .ok()
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        txn.put("b", (a + 1).to_string());
        Ok(a + 1)
    }

    fn seqs(fake: &FakeKv) -> Vec<u64> {
        fake.state()
            .received
            .iter()
            .map(|c| c.request_id.map_or(0, |r| r.seq))
            .collect()
    }

    #[tokio::test]
    async fn an_aborted_commit_runs_the_closure_again() {
        let (fake, client) =
            start(&[Answer::Status(Code::Aborted, reason::TRANSACTION_CONFLICT)]).await;
        let runs = Arc::new(AtomicU32::new(0));
        let done = client
            .transaction_with(&TransactionOptions::new(), |txn| {
                increment(txn, runs.clone())
            })
            .await
            .expect("committed on the second attempt");
        assert_eq!(done.value, 2);
        assert_eq!(
            (done.revision, done.snapshot_revision, done.attempts),
            (Some(11), 10, 2)
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let s = fake.state();
        assert_eq!(s.begins, 2);
        assert_eq!(s.received.len(), 2);
        // Each attempt is its own transaction with its own request id, and sends what it read
        // (a at revision 5) and wrote.
        assert_eq!(
            s.received.iter().map(|c| c.transaction).collect::<Vec<_>>(),
            [101, 102]
        );
        drop(s);
        let ids = seqs(&fake);
        assert_ne!(ids[0], ids[1]);
        let s = fake.state();
        let last = &s.received[1];
        assert_eq!(
            last.reads
                .iter()
                .map(|r| (r.key.clone(), r.revision))
                .collect::<Vec<_>>(),
            [(b("a"), 5)]
        );
        assert_eq!(
            last.writes
                .iter()
                .map(|w| (w.key.clone(), w.value.clone(), w.delete))
                .collect::<Vec<_>>(),
            [(b("b"), b("2"), false)]
        );
    }

    #[tokio::test]
    async fn an_unknown_commit_is_resent_with_the_same_id_not_rerun() {
        let (fake, client) = start(&[Answer::Status(
            Code::DeadlineExceeded,
            reason::COMMIT_TIMEOUT,
        )])
        .await;
        let runs = Arc::new(AtomicU32::new(0));
        let done = client
            .transaction_with(&TransactionOptions::new(), |txn| {
                increment(txn, runs.clone())
            })
            .await
            .expect("the resend committed");
        assert_eq!((done.attempts, runs.load(Ordering::SeqCst)), (1, 1));
        let ids = seqs(&fake);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], ids[1], "a resend repeats the request id");
        assert_eq!(fake.state().begins, 1);
    }

    #[tokio::test]
    async fn transaction_unknown_after_an_unknown_commit_reruns() {
        let (fake, client) = start(&[
            Answer::Status(Code::DeadlineExceeded, reason::FORWARD_INTERRUPTED),
            Answer::Status(Code::Aborted, reason::TRANSACTION_UNKNOWN),
        ])
        .await;
        let runs = Arc::new(AtomicU32::new(0));
        let done = client
            .transaction_with(&TransactionOptions::new(), |txn| {
                increment(txn, runs.clone())
            })
            .await
            .expect("committed on the second attempt");
        assert_eq!((done.attempts, runs.load(Ordering::SeqCst)), (2, 2));
        let ids = seqs(&fake);
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
    }

    #[tokio::test]
    async fn a_commit_that_stays_unknown_is_indeterminate() {
        let late = Answer::Status(Code::DeadlineExceeded, reason::COMMIT_TIMEOUT);
        let (fake, client) = start(&[late.clone(), late.clone(), late.clone(), late]).await;
        let runs = Arc::new(AtomicU32::new(0));
        let err = client
            .transaction_with(&TransactionOptions::new().commit_resends(2), |txn| {
                increment(txn, runs.clone())
            })
            .await
            .expect_err("unknown");
        assert!(err.is_indeterminate(), "{err:?}");
        assert_eq!(err.reason(), Some(reason::COMMIT_TIMEOUT));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "never re-run");
        let ids = seqs(&fake);
        assert_eq!(ids.len(), 3, "the first send and two resends");
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert!(fake.state().aborts.is_empty());
    }

    #[tokio::test]
    async fn the_retry_limit_ends_with_the_last_reason() {
        let conflict = Answer::Status(Code::Aborted, reason::TRANSACTION_CONFLICT);
        let (fake, client) = start(&vec![conflict; 10]).await;
        let runs = Arc::new(AtomicU32::new(0));
        let err = client
            .transaction_with(&TransactionOptions::new().max_retries(2), |txn| {
                increment(txn, runs.clone())
            })
            .await
            .expect_err("aborted every time");
        match &err {
            Error::TransactionAborted { status, attempts } => {
                assert_eq!(*attempts, 3);
                assert_eq!(status.reason(), Some(reason::TRANSACTION_CONFLICT));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(fake.state().received.len(), 3);
    }

    #[tokio::test]
    async fn an_aborted_read_reruns_even_if_the_closure_swallows_it() {
        let (fake, client) = start(&[]).await;
        fake.state()
            .gets
            .push_back(Answer::Status(Code::Aborted, reason::SNAPSHOT_TOO_OLD));
        let runs = Arc::new(AtomicU32::new(0));
        let done = client
            .transaction(|txn| {
                let runs = runs.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let a = txn.get("a").await.ok().flatten();
                    txn.put("seen", a.unwrap_or_default());
                    Ok::<_, Error>(())
                }
            })
            .await;
        assert!(done.is_ok(), "{done:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let s = fake.state();
        assert_eq!(s.received.len(), 1, "the aborted attempt never commits");
        assert_eq!(s.received[0].writes[0].value, b("1"));
    }

    #[derive(Debug)]
    enum AppError {
        Client(Error),
        Overdrawn,
    }

    impl From<Error> for AppError {
        fn from(e: Error) -> Self {
            AppError::Client(e)
        }
    }

    #[tokio::test]
    async fn a_closure_error_aborts_and_is_returned() {
        let (fake, client) = start(&[]).await;
        let result: Result<(), AppError> = client
            .transaction(|txn| async move {
                txn.put("x", "1");
                txn.get("a").await?;
                Err(AppError::Overdrawn)
            })
            .await;
        assert!(matches!(result, Err(AppError::Overdrawn)), "{result:?}");
        {
            let s = fake.state();
            assert_eq!(s.aborts, [101]);
            assert!(s.received.is_empty());
        }
        // A client error inside converts into the caller's type.
        let down = Client::builder()
            .endpoints(["127.0.0.1:1"])
            .retry_attempts(1)
            .build()
            .expect("valid");
        let err = down
            .transaction(|_txn| async { Ok::<_, AppError>(()) })
            .await
            .expect_err("nothing listens");
        assert!(
            matches!(err, AppError::Client(Error::Unavailable(_))),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn reads_see_own_writes_and_are_recorded() {
        let (fake, client) = start(&[]).await;
        let done = client
            .transaction_with(&TransactionOptions::new(), |txn| async move {
                let before = txn.scan(&ScanRange::all()).await?;
                txn.delete("a");
                txn.put("c", "3");
                let a = txn.get("a").await?;
                let c = txn.get_entry("c").await?;
                let b_value = txn.get("b").await?;
                let after = txn.scan(&ScanRange::new("a", "z")).await?;
                let keys = |v: &[Entry]| v.iter().map(|e| e.key.clone()).collect::<Vec<_>>();
                let set = txn.read_write_set();
                Ok::<_, Error>((keys(&before), a, c, b_value, keys(&after), set))
            })
            .await
            .expect("committed");
        let (before, a, c, b_value, after, set) = done.value;
        assert_eq!(before, [b("a"), b("b")]);
        assert_eq!(a, None, "deleted by the transaction");
        let c = c.expect("written by the transaction");
        assert_eq!((c.value, c.version.revision), (b("3"), 0));
        assert_eq!(b_value, Some(b("2")));
        assert_eq!(after, [b("b"), b("c")]);
        // Only b was read from the snapshot (a and c were the transaction's own).
        assert_eq!(
            set.reads().map(|(k, r)| (k.clone(), r)).collect::<Vec<_>>(),
            [(b("b"), 6)]
        );
        assert_eq!(
            set.ranges(),
            [(Bytes::new(), Bytes::new()), (b("a"), b("z"))]
        );
        let s = fake.state();
        let sent = &s.received[0];
        assert_eq!(sent.ranges.len(), 2);
        assert_eq!(sent.writes.len(), 2);
    }

    #[tokio::test]
    async fn a_handle_kept_past_its_closure_does_nothing() {
        let (_fake, client) = start(&[]).await;
        let kept = Arc::new(Mutex::new(None));
        client
            .transaction(|txn| {
                let kept = kept.clone();
                async move {
                    *kept
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(txn);
                    Ok::<_, Error>(())
                }
            })
            .await
            .expect("committed");
        let txn = kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .expect("kept");
        txn.put("late", "1");
        assert!(txn.read_write_set().is_read_only());
        assert!(matches!(
            txn.get("a").await,
            Err(Error::FailedPrecondition(_))
        ));
    }

    #[tokio::test]
    async fn one_shot_results_carry_their_op() {
        let (_fake, client) = start(&[]).await;
        let out = client
            .txn()
            .then([TxnOp::put("k", "v"), TxnOp::delete("d"), TxnOp::get("g")])
            .otherwise([TxnOp::get("never")])
            .commit()
            .await
            .expect("ran");
        assert!(out.succeeded);
        let kinds: Vec<TxnOpKind> = out.results.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [TxnOpKind::Put, TxnOpKind::Delete, TxnOpKind::Get]);
        assert_eq!(out.results[2].key, b("g"));
        let out = client
            .txn()
            .when([Compare::absent("k")])
            .then([TxnOp::put("k", "v")])
            .otherwise([TxnOp::get("k")])
            .commit()
            .await
            .expect("ran");
        assert!(!out.succeeded);
        assert_eq!(out.results.len(), 1);
        assert_eq!(out.results[0].kind, TxnOpKind::Get);
    }
}

/// Against a real server: `DIALKV_TEST_ENDPOINT=127.0.0.1:7211 cargo test -p dialkv-client
/// -- --ignored real_server` (a fresh single replica started with `dialkv serve`).
#[cfg(test)]
mod real_server {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    #[ignore = "needs a running dialkv server at DIALKV_TEST_ENDPOINT"]
    async fn a_conflicting_write_reruns_the_closure_and_write_skew_is_prevented() {
        let Ok(endpoint) = std::env::var("DIALKV_TEST_ENDPOINT") else {
            return;
        };
        let client = Client::connect([endpoint]).expect("valid");
        client.put("rs-x", "0").await.expect("put");
        let runs = Arc::new(AtomicU32::new(0));
        let done = client
            .transaction_with(&TransactionOptions::new(), |txn| {
                let (runs, client) = (runs.clone(), client.clone());
                async move {
                    let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                    let x = txn.get("rs-x").await?.unwrap_or_default();
                    if run == 1 {
                        // Another writer changes what this attempt read.
                        client.put("rs-x", "interloper").await?;
                    }
                    txn.put("rs-y", x.clone());
                    Ok::<_, Error>(x)
                }
            })
            .await
            .expect("committed on the second attempt");
        assert_eq!((done.attempts, runs.load(Ordering::SeqCst)), (2, 2));
        assert_eq!(done.value, Bytes::from_static(b"interloper"));
        let y = client.get("rs-y").await.expect("get");
        assert_eq!(y.value(), Some(&Bytes::from_static(b"interloper")));
        assert_eq!(y.entry.map(|e| e.version.revision), done.revision);

        // Write skew: two transactions each read both keys and write one; one must abort.
        client.put("rs-a", "1").await.expect("put");
        client.put("rs-b", "1").await.expect("put");
        let t1 = client.begin(&CallOptions::default()).await.expect("begin");
        let t2 = client.begin(&CallOptions::default()).await.expect("begin");
        for t in [&t1, &t2] {
            t.get("rs-a").await.expect("read");
            t.get("rs-b").await.expect("read");
        }
        t1.put("rs-a", "0");
        t2.put("rs-b", "0");
        let opts = TransactionOptions::new();
        let (_, s1) = t1.end();
        let (_, s2) = t2.end();
        assert!(client.commit(&t1, &s1, &opts).await.is_ok());
        match client.commit(&t2, &s2, &opts).await {
            Err(CommitFailure::Aborted(status)) => {
                assert_eq!(
                    status.reason(),
                    Some(crate::error::reason::TRANSACTION_CONFLICT)
                );
                assert!(status.message().contains("rs-a"), "{}", status.message());
            }
            Err(CommitFailure::Error(e)) => panic!("{e}"),
            Ok(r) => panic!("write skew committed at {r:?}"),
        }
    }
}
