//! The Raft log and Raft's durable state (vote and last purged log id) in the storage engine,
//! written through the single writer.
//!
//! Entries live in the `raft_log` column family under their index (u64 big-endian), encoded
//! with bincode; the vote and log ids live in `raft_state`. An append and a vote are synced
//! before openraft is told they are durable (Raft §5: a server must not forget a vote or an
//! acknowledged entry). The commit index is not stored (openraft's option): a restarted
//! replica learns it again from the primary, or as primary by committing an entry of its
//! term, and storing it cost every commit a round trip to the writer thread on the primary's
//! write path.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{NodeId, TypeConfig};
use crate::storage::writer::Writer;
use crate::storage::{Cf, Engine, ReadTier, WriteBatch};

const VOTE: &[u8] = b"vote";
const LAST_PURGED: &[u8] = b"last_purged";

fn index_key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, std::io::Error> {
    bincode::serialize(v).map_err(std::io::Error::other)
}

pub(crate) fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, std::io::Error> {
    bincode::deserialize(b).map_err(std::io::Error::other)
}

/// The log store of the replica's Raft group. Clones share the engine.
#[derive(Clone)]
pub struct LogStore {
    engine: Arc<dyn Engine>,
    writer: Writer,
}

impl LogStore {
    /// A log store over `engine`, writing through `writer`.
    pub fn new(engine: Arc<dyn Engine>, writer: Writer) -> Self {
        Self { engine, writer }
    }

    fn get_state<T: DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<NodeId>> {
        match self.engine.get(Cf::RaftState, key) {
            Ok(Some(b)) => decode(&b)
                .map(Some)
                .map_err(|e| StorageIOError::read(&e).into()),
            Ok(None) => Ok(None),
            Err(e) => Err(StorageIOError::read(&e).into()),
        }
    }

    async fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), std::io::Error> {
        self.writer
            .write(batch, sync)
            .await
            .map_err(std::io::Error::other)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => Some(index_key(x.saturating_add(1))),
            Bound::Excluded(x) => Some(index_key(*x)),
            Bound::Unbounded => None,
        };
        let engine = self.engine.clone();
        let read = move || {
            let mut out = Vec::new();
            let mut failure = None;
            engine
                .scan(
                    Cf::RaftLog,
                    &index_key(start),
                    end.as_deref(),
                    ReadTier::Any,
                    &mut |_, v| match decode::<Entry<TypeConfig>>(v) {
                        Ok(e) => {
                            out.push(e);
                            true
                        }
                        Err(e) => {
                            failure = Some(e);
                            false
                        }
                    },
                )
                .map_err(std::io::Error::other)?;
            match failure {
                Some(e) => Err(e),
                None => Ok(out),
            }
        };
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| StorageIOError::read_logs(&std::io::Error::other(e)))?
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId<NodeId>> = self.get_state(LAST_PURGED)?;
        // The last entry is the last key: the engine seam scans forward, so this walks the
        // live log once (it is called when the replica starts).
        let from = last_purged.map_or(0, |l| l.index);
        let mut last_bytes = None;
        self.engine
            .scan(
                Cf::RaftLog,
                &index_key(from),
                None,
                ReadTier::Any,
                &mut |_, v| {
                    last_bytes = Some(v.to_vec());
                    true
                },
            )
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let last = match last_bytes {
            Some(b) => Some(
                decode::<Entry<TypeConfig>>(&b)
                    .map_err(|e| StorageIOError::read_logs(&e))?
                    .log_id,
            ),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut b = WriteBatch::new();
        b.put(
            Cf::RaftState,
            VOTE.to_vec(),
            encode(vote).map_err(|e| StorageIOError::write_vote(&e))?,
        );
        self.write(b, true)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.get_state(VOTE)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::new();
        for e in entries {
            b.put(
                Cf::RaftLog,
                index_key(e.log_id.index),
                encode(&e).map_err(|x| StorageIOError::write_logs(&x))?,
            );
        }
        // Synced: once this returns the entries are durable, and readable by any reader.
        match self.write(b, true).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut b = WriteBatch::new();
        b.delete_range(Cf::RaftLog, index_key(log_id.index), vec![0xFF; 9]);
        self.write(b, true)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut b = WriteBatch::new();
        b.put(
            Cf::RaftState,
            LAST_PURGED.to_vec(),
            encode(&log_id).map_err(|e| StorageIOError::write(&e))?,
        );
        b.delete_range(
            Cf::RaftLog,
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        self.write(b, false)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
