//! The single writer: one OS thread per engine that performs every write.
//!
//! Callers hand a [`WriteBatch`] to [`Writer::write`] and wait for it to be written. The
//! writer thread takes the first queued batch, then (under [`SyncPolicy::Batch`]) every other
//! batch already queued, up to `max_batch`, concatenates them into one engine write in queue
//! order, syncs it once if any of them asked for a sync, and only then answers every caller.
//! This is group commit: under load, the Raft log appends, vote saves and state-machine
//! applies that arrive together share one fsync, and nothing is acknowledged before it is
//! durable. Running on its own thread, the writer never blocks the async runtime.
//!
//! The synchronisation is tokio's bounded `mpsc` and `oneshot` channels only; nothing here
//! is a hand-written concurrency structure.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::{Engine, StorageError, WriteBatch};
use crate::metrics::Metrics;

/// When writes are grouped.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Every write is written and synced on its own.
    Always,
    /// Writes that queue up while a sync runs are grouped into one write and one fsync (group
    /// commit); each is still durable before it is acknowledged.
    Batch,
}

/// Writer settings.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    /// The sync policy.
    pub sync: SyncPolicy,
    /// The most batches in one group under [`SyncPolicy::Batch`].
    pub max_batch: usize,
    /// The most batches waiting; past it, [`Writer::write`] waits for room (requests are
    /// admitted, or refused, before they reach the writer).
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

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The engine failed; nothing of the batch is visible.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The writer has stopped (the server is shutting down); nothing was written.
    #[error("the storage writer has stopped")]
    Stopped,
}

struct Job {
    batch: WriteBatch,
    sync: bool,
    reply: Reply,
}

/// How a job's caller learns its result.
enum Reply {
    /// A waiting caller.
    Channel(oneshot::Sender<Result<(), String>>),
    /// A function run on the writer thread, in queue order, once the job is written.
    Call(Box<dyn FnOnce(Result<(), String>) + Send>),
}

impl Reply {
    fn send(self, result: Result<(), String>) {
        match self {
            // A caller that gave up waiting has dropped its receiver; the result stands.
            Reply::Channel(tx) => {
                let _ = tx.send(result);
            }
            Reply::Call(f) => f(result),
        }
    }
}

/// The handle through which batches are written. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// The writer thread; [`WriterThread::join`] waits for it once every [`Writer`] is dropped.
#[derive(Debug)]
pub struct WriterThread(JoinHandle<()>);

impl WriterThread {
    /// Waits until the thread has written every queued batch and stopped.
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("the storage writer thread panicked");
        }
    }
}

impl Writer {
    /// Starts the writer thread for `engine`.
    pub fn start(
        engine: Arc<dyn Engine>,
        options: WriterOptions,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Writer, WriterThread)> {
        let capacity = options.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let handle = std::thread::Builder::new()
            .name("dialkv-writer".into())
            .spawn(move || run(engine, options, metrics, rx))?;
        Ok((Writer { tx }, WriterThread(handle)))
    }

    /// Queues `batch` and waits until it is written (and, with `sync`, durable). If the
    /// caller stops waiting, the batch may still be written.
    pub async fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                batch,
                sync,
                reply: Reply::Channel(reply),
            })
            .await
            .map_err(|_| WriteError::Stopped)?;
        rx.await
            .map_err(|_| WriteError::Stopped)?
            .map_err(|e| WriteError::Storage(StorageError::Engine(e)))
    }

    /// Queues `batch` and returns once it is queued (waiting for room in the queue), not
    /// written: `done` runs on the writer thread with the result once it is written (and,
    /// with `sync`, durable), after the results of every batch queued before it. A batch
    /// queued by a later call is written after this one.
    pub async fn submit(
        &self,
        batch: WriteBatch,
        sync: bool,
        done: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> Result<(), WriteError> {
        self.tx
            .send(Job {
                batch,
                sync,
                reply: Reply::Call(Box::new(done)),
            })
            .await
            .map_err(|_| WriteError::Stopped)
    }
}

fn run(
    engine: Arc<dyn Engine>,
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
        metrics.storage_batch_commands.observe(jobs.len() as f64);
        let mut combined = WriteBatch::new();
        let mut sync = false;
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            combined.extend(job.batch);
            sync |= job.sync;
            replies.push(job.reply);
        }
        let started = Instant::now();
        let written = engine.write(combined, sync);
        metrics
            .storage_sync_seconds
            .observe(started.elapsed().as_secs_f64());
        let result = written.map_err(|e| {
            tracing::error!(error = %e, "storage write failed; the group is not applied");
            e.to_string()
        });
        for reply in replies {
            reply.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryEngine;
    use crate::storage::Cf;

    #[tokio::test]
    async fn concurrent_writes_are_all_written() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let options = WriterOptions {
            sync: SyncPolicy::Batch,
            ..Default::default()
        };
        let (writer, thread) =
            Writer::start(engine.clone(), options, Arc::new(Metrics::new())).expect("start");
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let w = writer.clone();
            tasks.push(tokio::spawn(async move {
                let mut b = WriteBatch::new();
                b.put(Cf::Data, i.to_be_bytes().to_vec(), Vec::new());
                w.write(b, true).await
            }));
        }
        for t in tasks {
            t.await.expect("task").expect("written");
        }
        drop(writer);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join");
        for i in 0..200u32 {
            assert!(engine
                .get(Cf::Data, &i.to_be_bytes())
                .expect("get")
                .is_some());
        }
    }
}
