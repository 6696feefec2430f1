//! The Raft log and Raft's durable state (vote and last purged log id) in the storage engine,
//! written through the single writer.
//!
//! Entries live in the `raft_log` column family under their index (u64 big-endian), encoded
//! with bincode; the vote and log ids live in `raft_state`. A vote, and an append a backup
//! makes, are synced before openraft is told they are durable (Raft §5: a server must not
//! forget a vote or an acknowledged entry). An append the primary makes as leader returns
//! once queued, so that it is written while the entry is replicated; `flush` keeps anything
//! from counting on it before it is durable. The commit index is not stored (openraft's
//! option): a restarted replica learns it again from the primary, or as primary by
//! committing an entry of its term, and storing it cost every commit a round trip to the
//! writer thread on the primary's write path.
//!
//! The newest entries are also kept in memory, encoded (the `Tail`): replication to each
//! backup and the state machine read every entry just after it is appended, and serving those
//! reads from memory spares each of them an engine iterator and a hop to a blocking thread (on
//! the path of every write). Older entries, read by a backup that fell behind, come from the
//! engine. The tail keeps entries encoded, not decoded: a decoded entry's keys and values may
//! share the larger buffers of the requests they came in, which the tail would keep alive.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::flush::{Flushes, Room};
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

/// The most entries the [`Tail`] keeps.
const TAIL_ENTRIES: usize = 1024;
/// The most encoded bytes of entries the [`Tail`] keeps.
const TAIL_BYTES: usize = 16 << 20;

/// Recent entries of the log, encoded, in memory: a contiguous run of indexes, each entry the
/// one the log holds at its index. Appends add to it, truncation and purging remove from it as from
/// the log, and the oldest entries are dropped past `max_entries` or `max_bytes` (of encoded
/// entries).
#[derive(Debug)]
struct Tail {
    /// Encoded entries in index order, with their log ids.
    entries: VecDeque<(LogId<NodeId>, Vec<u8>)>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Tail {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(id, _)| id.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(id, _)| id.index)
    }

    /// The log id of the entry at `index`, if it is here.
    fn log_id(&self, index: u64) -> Option<LogId<NodeId>> {
        let at = usize::try_from(index.checked_sub(self.first_index()?)?).ok()?;
        self.entries.get(at).map(|(id, _)| *id)
    }

    /// Records entries just written to the log, starting at index `first`.
    fn append(&mut self, first: u64, entries: Vec<(LogId<NodeId>, Vec<u8>)>) {
        // Entries at `first` and after are rewritten (the log keeps any after the new ones,
        // which the tail no longer holds). Entries that leave a gap (the log was emptied
        // around a snapshot) start the tail again.
        self.truncate(first);
        if self.last_index().is_some_and(|last| last + 1 != first) {
            self.clear();
        }
        for (id, bytes) in entries {
            self.bytes += bytes.len();
            self.entries.push_back((id, bytes));
        }
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            self.pop_front();
        }
    }

    /// Drops entries at `index` and after.
    fn truncate(&mut self, index: u64) {
        while self.last_index().is_some_and(|last| last >= index) {
            if let Some((_, bytes)) = self.entries.pop_back() {
                self.bytes -= bytes.len();
            }
        }
    }

    /// Drops entries at `index` and before.
    fn purge(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, bytes)) = self.entries.pop_front() {
            self.bytes -= bytes.len();
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries in `[start, end)`, if all of them are here.
    fn read(&self, start: u64, end: u64) -> Option<Result<Vec<Entry<TypeConfig>>, std::io::Error>> {
        let (first, last) = (self.first_index()?, self.last_index()?);
        if start < first || end > last + 1 {
            return None;
        }
        if start >= end {
            return Some(Ok(Vec::new()));
        }
        let from = usize::try_from(start - first).ok()?;
        let to = usize::try_from(end - first).ok()?;
        Some(
            self.entries
                .range(from..to)
                .map(|(_, b)| decode(b))
                .collect(),
        )
    }
}

/// The log store of the replica's Raft group. Clones share the engine, the `Tail` and the
/// record of pending appends.
#[derive(Clone)]
pub struct LogStore {
    /// This replica's id.
    id: NodeId,
    engine: Arc<dyn Engine>,
    writer: Writer,
    tail: Arc<Mutex<Tail>>,
    /// The last vote saved.
    vote: Arc<Mutex<Option<Vote<NodeId>>>>,
    flushes: Arc<Flushes>,
}

impl LogStore {
    /// The log store of replica `id` over `engine`, writing through `writer`.
    pub fn new(id: NodeId, engine: Arc<dyn Engine>, writer: Writer) -> Self {
        Self::with_tail(id, engine, writer, TAIL_ENTRIES, TAIL_BYTES)
    }

    fn with_tail(
        id: NodeId,
        engine: Arc<dyn Engine>,
        writer: Writer,
        max_entries: usize,
        max_bytes: usize,
    ) -> Self {
        Self {
            id,
            engine,
            writer,
            tail: Arc::new(Mutex::new(Tail::new(max_entries, max_bytes))),
            vote: Arc::default(),
            flushes: Arc::default(),
        }
    }

    /// The record of this replica's appends as primary that are not durable yet.
    pub fn flushes(&self) -> &Arc<Flushes> {
        &self.flushes
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().expect("log tail lock poisoned")
    }

    /// Whether `entries` are this replica's own as the leader it is: their leader is this
    /// replica in the term of the last vote it saved, which was for itself. Only the leader of
    /// a term makes entries of that term, and a replica that follows a later leader has saved
    /// that leader's vote first, so entries that come back from another leader never pass.
    fn own(&self, entries: &[Entry<TypeConfig>]) -> bool {
        let vote = *self.vote.lock().expect("vote lock poisoned");
        let Some(vote) = vote else {
            return false;
        };
        let leader = vote.leader_id();
        leader.voted_for() == Some(self.id)
            && entries.iter().all(|e| {
                e.log_id.leader_id.term == leader.term && e.log_id.leader_id.node_id == self.id
            })
    }

    /// Writes `entries`, adds them to the tail and returns once they are durable; or, with
    /// `early` (entries of this replica as primary), returns once they are queued to the
    /// writer, and records them in [`Flushes`] until they are durable (see `flush`). Entries
    /// that change the membership are always written before returning.
    async fn append_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
        early: bool,
    ) -> Result<(), std::io::Error> {
        let mut b = WriteBatch::new();
        let mut appended = Vec::new();
        let mut bytes = 0;
        let mut membership = false;
        for e in entries {
            let encoded = encode(&e)?;
            bytes += encoded.len();
            membership |= matches!(e.payload, EntryPayload::Membership(_));
            b.put(Cf::RaftLog, index_key(e.log_id.index), encoded.clone());
            appended.push((e.log_id, encoded));
        }
        let Some(first) = appended.first().map(|(id, _)| id.index) else {
            return Ok(());
        };
        if let Some(e) = self.flushes.failure() {
            return Err(std::io::Error::other(format!(
                "an earlier log append failed: {e}"
            )));
        }
        let pending = match early && !membership {
            true => {
                let mut tail = self.tail();
                // Pending entries must stay in the tail until written: at most half of it.
                let room = Room {
                    entries: tail.max_entries / 2,
                    bytes: tail.max_bytes / 2,
                };
                let prev = first.checked_sub(1).and_then(|i| tail.log_id(i));
                let seq = self.flushes.begin(first, prev, appended.len(), bytes, room);
                if seq.is_some() {
                    tail.append(first, std::mem::take(&mut appended));
                }
                seq
            }
            false => None,
        };
        if let Some(seq) = pending {
            // Not queued, the completion is dropped and reports the failure.
            let completion = self.flushes.completion(seq);
            self.writer
                .submit(b, true, move |result| completion.report(result))
                .await
                .map_err(std::io::Error::other)?;
            return Ok(());
        }
        // Synced: once this returns the entries are durable, and readable by any reader.
        self.write(b, true).await?;
        self.tail().append(first, appended);
        Ok(())
    }

    /// Appends `entries` as openraft asks: early when they are this replica's own as primary
    /// ([`LogStore::own`]), else written before returning.
    async fn append_logged(&self, entries: Vec<Entry<TypeConfig>>) -> Result<(), std::io::Error> {
        let early = self.own(&entries);
        self.append_entries(entries, early).await
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
            Bound::Included(x) => Some(x.saturating_add(1)),
            Bound::Excluded(x) => Some(*x),
            Bound::Unbounded => None,
        };
        // A read to the end of the log goes to the engine: the log may hold entries past the
        // tail's last (rewritten entries leave the old ones after them in place). A read that
        // starts before the tail takes the tail's part from the tail: the newest entries may
        // not be written yet (see `flush`).
        let mut newer = None;
        let mut end = end;
        if let Some(stop) = end {
            let tail = self.tail();
            if let Some(read) = tail.read(start, stop) {
                return read.map_err(|e| StorageIOError::read_logs(&e).into());
            }
            if let Some(first) = tail.first_index().filter(|&f| start < f && f < stop) {
                if let Some(read) = tail.read(first, stop) {
                    newer = Some(read.map_err(|e| StorageIOError::read_logs(&e))?);
                    end = Some(first);
                }
            }
        }
        // The engine has an entry only once its append is written: wait for any queued append
        // of an entry in the range (for a read to the end, for all of them).
        let last = end.map_or(u64::MAX, |end| end.saturating_sub(1));
        self.flushes
            .wait_durable(last)
            .await
            .map_err(|e| StorageIOError::read_logs(&std::io::Error::other(e)))?;
        let end = end.map(index_key);
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
        let mut entries = tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| StorageIOError::read_logs(&std::io::Error::other(e)))?
            .map_err(|e| StorageIOError::read_logs(&e))?;
        entries.extend(newer.unwrap_or_default());
        Ok(entries)
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
        *self.vote.lock().expect("vote lock poisoned") = Some(*vote);
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
        match self.append_logged(entries.into_iter().collect()).await {
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
        self.tail().truncate(log_id.index);
        let mut b = WriteBatch::new();
        b.delete_range(Cf::RaftLog, index_key(log_id.index), vec![0xFF; 9]);
        self.write(b, true)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.tail().purge(log_id.index);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use bytes::Bytes;
    use openraft::{CommittedLeaderId, EntryPayload};
    use proptest::prelude::*;

    use super::*;
    use crate::metrics::Metrics;
    use crate::replication::types::Request;
    use crate::storage::memory::{Instrumented, MemoryEngine};
    use crate::storage::store::Command;
    use crate::storage::writer::WriterOptions;

    #[derive(Clone, Debug)]
    enum Op {
        /// Appends `n` entries, replacing the last `back` ones (as after a conflict), having
        /// truncated them first or not.
        Append {
            back: u64,
            n: u64,
            truncate: bool,
            early: bool,
        },
        /// Purges all but the last `keep` entries.
        Purge { keep: u64 },
        /// Truncates the last `back` entries.
        Truncate { back: u64 },
        /// Appends `n` entries `ahead` indexes past the last one, leaving a gap (as after a
        /// snapshot whose purge has not happened yet).
        Skip { ahead: u64, n: u64 },
        /// Purges everything up to `ahead` indexes past the last entry (as a snapshot does).
        PurgePast { ahead: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..3, 1u64..6, any::<bool>(), any::<bool>()).prop_map(|(back, n, truncate, early)| Op::Append { back, n, truncate, early }),
            1 => (0u64..8).prop_map(|keep| Op::Purge { keep }),
            1 => (0u64..3).prop_map(|back| Op::Truncate { back }),
            1 => (1u64..3, 1u64..4).prop_map(|(ahead, n)| Op::Skip { ahead, n }),
            1 => (0u64..3).prop_map(|ahead| Op::PurgePast { ahead }),
        ]
    }

    fn entry(index: u64, generation: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(generation, 0), index),
            payload: EntryPayload::Normal(Request {
                command: Command::Put {
                    ns: "default".into(),
                    key: Bytes::from(index.to_string()),
                    value: Bytes::from(vec![b'v'; (index % 7) as usize * 40]),
                    request: None,
                },
                at_ms: generation,
            }),
        }
    }

    fn entry_of(term: u64, leader: NodeId, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, leader), index),
            payload: EntryPayload::Blank,
        }
    }

    /// The log store of replica 1 over an engine whose writes can be held.
    fn store_of_replica_1() -> (Arc<Instrumented>, LogStore) {
        let engine = Arc::new(Instrumented::default());
        let (writer, _thread) = Writer::start(
            engine.clone(),
            WriterOptions::default(),
            Arc::new(Metrics::new()),
        )
        .expect("writer");
        let store = LogStore::new(1, engine.clone(), writer);
        (engine, store)
    }

    /// The primary's own appends return once queued and are readable at once, but count as
    /// durable (for the state machine and the commit index the backups hear) only once
    /// written; other appends, and any that change the membership, return once written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_primary_does_not_wait_for_its_own_appends_but_nothing_counts_them_before() {
        let (engine, mut store) = store_of_replica_1();
        let before = entry_of(2, 2, 1);
        store
            .append_entries(vec![before.clone()], false)
            .await
            .expect("append");
        store
            .save_vote(&Vote::new_committed(3, 1))
            .await
            .expect("vote");
        let own: Vec<_> = (2..=3).map(|i| entry_of(3, 1, i)).collect();
        assert!(store.own(&own));
        assert!(!store.own(&[entry_of(3, 2, 2)]), "another leader's entries");
        assert!(
            !store.own(&[entry_of(2, 1, 2)]),
            "this replica's of an earlier term"
        );

        engine.hold_writes(true);
        let queued =
            tokio::time::timeout(Duration::from_secs(10), store.append_logged(own.clone()))
                .await
                .expect("an own append returns before it is written");
        queued.expect("queued");
        assert_eq!(
            store.try_get_log_entries(2..4).await.expect("read"),
            own,
            "from the tail"
        );
        assert_eq!(
            store.try_get_log_entries(1..4).await.expect("read"),
            [vec![before.clone()], own.clone()].concat(),
            "older entries from the engine, newer from the tail"
        );
        assert_eq!(engine.get(Cf::RaftLog, &index_key(2)).expect("get"), None);
        let flushes = store.flushes().clone();
        assert_eq!(
            flushes.clamp_commit(Some(own[1].log_id)),
            Some(before.log_id)
        );
        let durable = flushes.wait_durable(3);
        tokio::pin!(durable);
        assert!(futures::poll!(durable.as_mut()).is_pending());

        let mut membership = entry_of(3, 1, 4);
        membership.payload = EntryPayload::Membership(openraft::Membership::new(
            vec![std::collections::BTreeSet::from([1])],
            None,
        ));
        let synced = store.append_logged(vec![membership.clone()]);
        tokio::pin!(synced);
        assert!(
            futures::poll!(synced.as_mut()).is_pending(),
            "a membership change waits"
        );
        let replicated = store.append_logged(vec![entry_of(3, 2, 5)]);
        tokio::pin!(replicated);
        assert!(
            futures::poll!(replicated.as_mut()).is_pending(),
            "another leader's entries wait"
        );
        let mut reader = store.clone();
        let to_the_end = reader.try_get_log_entries(2..);
        tokio::pin!(to_the_end);
        assert!(
            futures::poll!(to_the_end.as_mut()).is_pending(),
            "a read to the log's end waits"
        );

        engine.hold_writes(false);
        durable.await.expect("durable once written");
        synced.await.expect("written");
        replicated.await.expect("written");
        assert_eq!(to_the_end.await.expect("read").len(), 4);
        for i in 2..=5 {
            assert!(engine
                .get(Cf::RaftLog, &index_key(i))
                .expect("get")
                .is_some());
        }
        assert_eq!(
            flushes.clamp_commit(Some(membership.log_id)),
            Some(membership.log_id)
        );
    }

    /// A read the tail cannot serve whole reads the engine, which has an entry only once its
    /// append is written: it first waits for the queued appends of entries in its range (here
    /// an own append rewrote entry 2 and left entries 3 and 4 after it, past the tail).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_past_the_tail_waits_for_the_queued_appends_in_its_range() {
        let (engine, store) = store_of_replica_1();
        let old: Vec<_> = (1..=4).map(|i| entry_of(2, 1, i)).collect();
        store
            .append_entries(old.clone(), false)
            .await
            .expect("append");
        engine.hold_writes(true);
        let rewritten = entry_of(3, 1, 2);
        tokio::time::timeout(
            Duration::from_secs(10),
            store.append_entries(vec![rewritten.clone()], true),
        )
        .await
        .expect("an own append returns before it is written")
        .expect("queued");
        let mut reader = store.clone();
        let read = reader.try_get_log_entries(1..5);
        tokio::pin!(read);
        assert!(futures::poll!(read.as_mut()).is_pending());
        assert_eq!(
            store.flushes().waiters(),
            1,
            "the read waits for the queued append"
        );
        engine.hold_writes(false);
        let want = vec![old[0].clone(), rewritten, old[2].clone(), old[3].clone()];
        assert_eq!(read.await.expect("read"), want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Reads served from the in-memory tail equal reads of the engine and of a model log,
        /// whatever appends, conflicting rewrites, gaps, truncations and purges came before, with a
        /// tail small enough to drop entries.
        #[test]
        fn reads_from_the_tail_match_the_log(ops in proptest::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
                let (writer, _thread) = Writer::start(engine.clone(), WriterOptions::default(), Arc::new(Metrics::new())).expect("writer");
                let mut store = LogStore::with_tail(1, engine.clone(), writer.clone(), 6, 600);
                let mut model: BTreeMap<u64, Entry<TypeConfig>> = BTreeMap::new();
                let mut purged = 0u64;
                for (generation, op) in ops.into_iter().enumerate() {
                    let generation = generation as u64 + 1;
                    let next = model.keys().next_back().map_or(purged + 1, |l| l + 1);
                    match op {
                        Op::Append { back, n, truncate, early } => {
                            let first = next.saturating_sub(back).max(purged + 1);
                            if first < next && truncate {
                                store.truncate(LogId::new(CommittedLeaderId::new(generation, 0), first)).await.expect("truncate");
                                model.retain(|i, _| *i < first);
                            }
                            let entries: Vec<_> = (first..first + n).map(|i| entry(i, generation)).collect();
                            for e in &entries {
                                model.insert(e.log_id.index, e.clone());
                            }
                            store.append_entries(entries, early).await.expect("append");
                        }
                        Op::Skip { ahead, n } => {
                            let first = next + ahead;
                            let entries: Vec<_> = (first..first + n).map(|i| entry(i, generation)).collect();
                            for e in &entries {
                                model.insert(e.log_id.index, e.clone());
                            }
                            store.append_entries(entries, false).await.expect("append");
                        }
                        Op::PurgePast { ahead } => {
                            let upto = next - 1 + ahead;
                            if upto > purged {
                                store.purge(LogId::new(CommittedLeaderId::new(0, 0), upto)).await.expect("purge");
                                model.clear();
                                purged = upto;
                            }
                        }
                        Op::Purge { keep } => {
                            let upto = next.saturating_sub(keep + 1);
                            if upto > purged {
                                store.purge(LogId::new(CommittedLeaderId::new(0, 0), upto)).await.expect("purge");
                                model.retain(|i, _| *i > upto);
                                purged = upto;
                            }
                        }
                        Op::Truncate { back } => {
                            let at = next.saturating_sub(back).max(purged + 1);
                            if at < next {
                                store.truncate(LogId::new(CommittedLeaderId::new(0, 0), at)).await.expect("truncate");
                                model.retain(|i, _| *i < at);
                            }
                        }
                    }
                    let last = model.keys().next_back().copied().unwrap_or(purged);
                    let mut from_engine = LogStore::with_tail(1, engine.clone(), writer.clone(), 0, 0);
                    // Early appends may not be written yet: bounded reads must find them.
                    for start in purged + 1..=last + 1 {
                        for end in start..=last + 1 {
                            let want: Vec<_> = model.range(start..end).map(|(_, e)| e.clone()).collect();
                            let got = store.try_get_log_entries(start..end).await.expect("read");
                            assert_eq!(got, want, "tail read {start}..{end}");
                        }
                    }
                    store.flushes().wait_durable(u64::MAX).await.expect("written");
                    for start in purged + 1..=last + 1 {
                        for end in start..=last + 1 {
                            let want: Vec<_> = model.range(start..end).map(|(_, e)| e.clone()).collect();
                            let disk = from_engine.try_get_log_entries(start..end).await.expect("read");
                            assert_eq!(disk, want, "engine read {start}..{end}");
                        }
                        let want: Vec<_> = model.range(start..).map(|(_, e)| e.clone()).collect();
                        assert_eq!(store.try_get_log_entries(start..).await.expect("read"), want);
                    }
                }
            });
        }
    }
}
