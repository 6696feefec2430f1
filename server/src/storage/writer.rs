//! The single writer: one OS thread per store that applies every change.
//!
//! Requests hand a [`Command`] to [`Writer::submit`], which queues it on a bounded channel and
//! waits for the outcome. The writer thread takes the first queued command, then everything
//! else already queued (up to `max_batch`), turns the group into one write batch with
//! [`Store::apply_group`], writes it with one fsync, installs the catalog changes and only
//! then answers every request of the group. This is group commit: under load, many writes
//! share one fsync, and every acknowledged write is durable. Running on its own thread, the
//! writer never blocks the async runtime.
//!
//! The synchronisation is tokio's bounded `mpsc` and `oneshot` channels only; nothing here
//! is a hand-written concurrency structure.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use super::store::{ApplyError, Command, Outcome, Store};
use super::StorageError;
use crate::metrics::Metrics;

/// When a write is made durable.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Every write is fsynced on its own before it is acknowledged.
    Always,
    /// Writes that queue up while a sync runs are grouped into one batch and one fsync (group
    /// commit); each is still durable before it is acknowledged.
    Batch,
}

/// Writer settings.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    /// The sync policy.
    pub sync: SyncPolicy,
    /// The most commands in one group under [`SyncPolicy::Batch`].
    pub max_batch: usize,
    /// The most commands waiting; past it, [`Writer::submit`] fails fast with
    /// [`WriteError::QueueFull`].
    pub queue_capacity: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            sync: SyncPolicy::Always,
            max_batch: 256,
            queue_capacity: 4096,
        }
    }
}

/// Why a submitted command has no outcome.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The command was refused; nothing was written.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The queue is full; nothing was written. Retry after a short wait.
    #[error("the write queue is full ({0} commands waiting)")]
    QueueFull(usize),
    /// The writer has stopped (the server is shutting down); nothing was written.
    #[error("the writer has stopped")]
    Stopped,
}

struct Job {
    command: Command,
    reply: oneshot::Sender<Result<Outcome, ApplyError>>,
}

/// The handle through which requests submit changes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    capacity: usize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

/// The writer thread; [`WriterThread::join`] waits for it once every [`Writer`] is dropped.
#[derive(Debug)]
pub struct WriterThread(JoinHandle<()>);

impl WriterThread {
    /// Waits until the thread has written every queued command and stopped.
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("the storage writer thread panicked");
        }
    }
}

impl Writer {
    /// Starts the writer thread for `store`.
    pub fn start(
        store: Arc<Store>,
        options: WriterOptions,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Writer, WriterThread)> {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let handle = std::thread::Builder::new()
            .name("dialkv-writer".into())
            .spawn(move || run(store, options, metrics, rx))?;
        Ok((
            Writer {
                tx,
                capacity: options.queue_capacity.max(1),
            },
            WriterThread(handle),
        ))
    }

    /// Queues `command` and waits for its outcome, which is durable when it arrives. If the
    /// caller stops waiting, the command may still be applied.
    pub async fn submit(&self, command: Command) -> Result<Outcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job { command, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriteError::QueueFull(self.capacity),
                mpsc::error::TrySendError::Closed(_) => WriteError::Stopped,
            })?;
        Ok(rx.await.map_err(|_| WriteError::Stopped)??)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn run(
    store: Arc<Store>,
    options: WriterOptions,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
) {
    let max_batch = match options.sync {
        SyncPolicy::Always => 1,
        SyncPolicy::Batch => options.max_batch.max(1),
    };
    let mut jobs = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<_>, Vec<_>) =
            jobs.drain(..).map(|j| (j.command, j.reply)).unzip();
        metrics
            .storage_batch_commands
            .observe(commands.len() as f64);
        let group = store.apply_group(commands, now_ms());
        let results = if group.batch.is_empty() {
            store.install(group.delta);
            group.results
        } else {
            let started = Instant::now();
            let written = store.engine().write(group.batch, true);
            metrics
                .storage_sync_seconds
                .observe(started.elapsed().as_secs_f64());
            match written {
                Ok(()) => {
                    store.install(group.delta);
                    group.results
                }
                Err(e) => {
                    tracing::error!(error = %e, "storage write failed; the group is not applied");
                    let msg = e.to_string();
                    group
                        .results
                        .into_iter()
                        .map(|_| Err(ApplyError::Storage(StorageError::Engine(msg.clone()))))
                        .collect()
                }
            }
        };
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that gave up waiting has dropped its receiver; the result stands.
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryEngine;
    use crate::storage::store::{StoreOptions, DEFAULT_NAMESPACE};
    use bytes::Bytes;

    #[tokio::test]
    async fn concurrent_writes_all_get_distinct_revisions() {
        let store = Arc::new(
            Store::open(Arc::new(MemoryEngine::new()), StoreOptions::default()).expect("open"),
        );
        let options = WriterOptions {
            sync: SyncPolicy::Batch,
            ..Default::default()
        };
        let (writer, thread) =
            Writer::start(store.clone(), options, Arc::new(Metrics::new())).expect("start");
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let w = writer.clone();
            tasks.push(tokio::spawn(async move {
                w.submit(Command::Put {
                    ns: DEFAULT_NAMESPACE.into(),
                    key: Bytes::from(i.to_be_bytes().to_vec()),
                    value: Bytes::new(),
                    request: None,
                })
                .await
            }));
        }
        let mut revisions = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                Ok(Outcome::Put { revision }) => revisions.push(revision),
                other => panic!("unexpected {other:?}"),
            }
        }
        revisions.sort_unstable();
        assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join");
        assert_eq!(
            store.namespace(DEFAULT_NAMESPACE).expect("ns").revision,
            200
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let store = Arc::new(
            Store::open(Arc::new(MemoryEngine::new()), StoreOptions::default()).expect("open"),
        );
        // A writer whose thread is never started: the queue of one fills after one command.
        let (tx, _rx) = mpsc::channel(1);
        let writer = Writer { tx, capacity: 1 };
        let cmd = Command::SweepDedup { before_ms: 0 };
        let pending = writer.tx.try_send(Job {
            command: cmd.clone(),
            reply: oneshot::channel().0,
        });
        assert!(pending.is_ok());
        assert!(matches!(
            writer.submit(cmd).await,
            Err(WriteError::QueueFull(1))
        ));
        drop(store);
    }
}
