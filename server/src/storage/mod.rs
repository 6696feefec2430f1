//! Storage: the byte-level engine seam and the versioned keyspace built on it.
//!
//! Layers, bottom up:
//! - [`Engine`]: an ordered byte store with column families and atomic, optionally synced
//!   write batches. [`rocksdb::RocksEngine`] is the production engine and the only code that
//!   names RocksDB (as TiKV keeps its engine trait free of RocksDB);
//!   [`memory::MemoryEngine`] serves unit tests and simulation only.
//! - [`keys`]: the order-preserving encodings of versioned data keys and metadata keys.
//! - [`store::Store`]: namespaces, multi-version values, the dedup table and revisions, all
//!   changed through [`store::Store::apply_group`], which turns a group of commands (the
//!   state machine's committed entries) into one write batch.
//! - [`writer::Writer`]: the single writer thread that groups batches (group commit) and
//!   syncs, so the async runtime never blocks on a write or an fsync.

pub mod keys;
pub mod memory;
pub mod rocksdb;
pub mod store;
pub mod writer;

use std::fmt;

/// A column family: one keyspace per purpose, so that each can be scanned, compacted and
/// tuned on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Versioned user data: `(namespace id, key, revision)` → value or tombstone.
    Data,
    /// The Raft log: entry index → entry.
    RaftLog,
    /// Raft's own durable state: the vote, the last purged log id, the committed log id.
    RaftState,
    /// Metadata: the namespace catalog and each namespace's latest revision.
    Meta,
    /// The dedup table: `(client id, seq)` → the first outcome of that request.
    Dedup,
    /// Quorum namespaces' data: `(namespace id, key)` → the key's current versions. Not part
    /// of the Raft state machine (a Raft snapshot never replaces it).
    Quorum,
    /// The quorum protocol's own state: this replica's outgoing update log and its applied
    /// vector.
    QuorumLog,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 7] = [
        Cf::Data,
        Cf::Meta,
        Cf::Dedup,
        Cf::RaftLog,
        Cf::RaftState,
        Cf::Quorum,
        Cf::QuorumLog,
    ];

    /// The column families of the replicated state machine: what a snapshot holds.
    pub const STATE_MACHINE: [Cf; 3] = [Cf::Data, Cf::Meta, Cf::Dedup];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Data => "data",
            Cf::Meta => "meta",
            Cf::Dedup => "dedup",
            Cf::RaftLog => "raft_log",
            Cf::RaftState => "raft_state",
            Cf::Quorum => "quorum",
            Cf::QuorumLog => "quorum_log",
        }
    }
}

impl fmt::Display for Cf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One change inside a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Sets a key.
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Removes a key.
    Delete { cf: Cf, key: Vec<u8> },
    /// Removes every key in `[start, end)`.
    DeleteRange {
        cf: Cf,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// A set of changes applied atomically: after a crash either all of them are visible or none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// Creates an empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::Put { cf, key, value });
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push(BatchOp::Delete { cf, key });
    }

    /// Adds a range delete of `[start, end)`.
    pub fn delete_range(&mut self, cf: Cf, start: Vec<u8>, end: Vec<u8>) {
        self.ops.push(BatchOp::DeleteRange { cf, start, end });
    }

    /// Appends every change of `other` after this batch's own.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
    }

    /// The changes, in the order they were added (later ones win).
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// The number of changes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no changes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Where a read may look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadTier {
    /// Memory only (memtables and block cache): never waits for the disk, so it may run on
    /// the async runtime.
    Memory,
    /// Anywhere, disk included: run it off the async runtime.
    Any,
}

/// A failure of the storage engine. Every such failure is fatal to the request that met it
/// and is reported to clients as `UNAVAILABLE` (the disk may be full or failing).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The engine reported an error.
    #[error("storage engine: {0}")]
    Engine(String),
    /// A [`ReadTier::Memory`] read needed the disk; nothing is wrong, read again with
    /// [`ReadTier::Any`] off the async runtime.
    #[error("the read needs disk I/O")]
    WouldBlock,
    /// Stored bytes could not be decoded: the data directory is damaged or from an
    /// incompatible version.
    #[error("corrupt stored record in {cf}: {reason}")]
    Corrupt { cf: Cf, reason: String },
}

/// The result type of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A key and value read from an engine.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An entry of a column family, as [`Engine::dump`] returns it.
pub type CfEntry = (Cf, Vec<u8>, Vec<u8>);

/// An ordered byte store with column families.
///
/// Laws every engine keeps (checked by the shared conformance suite in this module's tests):
/// a `get` after a successful `write` sees the write; `scan` yields keys in ascending byte
/// order, within `[start, end)`; a batch is atomic; and, for durable engines, a batch written
/// with `sync = true` survives a crash of the process or the machine once `write` returns.
pub trait Engine: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the entries of `[start, end)` in ascending key order (`end = None`: to the end
    /// of the column family) until `visit` returns false. With [`ReadTier::Memory`], fails
    /// with [`StorageError::WouldBlock`] instead of reading from disk.
    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        tier: ReadTier,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;

    /// Applies a batch atomically; with `sync`, returns only once it is durable.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()>;

    /// Reads every entry of `cfs` as of one point in time (later writes are not seen), in
    /// column family then key order.
    fn dump(&self, cfs: &[Cf]) -> Result<Vec<CfEntry>>;
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The suite every [`Engine`] must pass.
    use super::*;

    fn collect(engine: &dyn Engine, cf: Cf, start: &[u8], end: Option<&[u8]>) -> Vec<Entry> {
        let mut out = Vec::new();
        engine
            .scan(cf, start, end, ReadTier::Any, &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                true
            })
            .expect("scan");
        out
    }

    /// Runs every law on a fresh, empty engine.
    pub fn run(engine: &dyn Engine) {
        // Writes are visible and later ops in a batch win.
        let mut b = WriteBatch::new();
        b.put(Cf::Data, b"a".to_vec(), b"1".to_vec());
        b.put(Cf::Data, b"b".to_vec(), b"2".to_vec());
        b.put(Cf::Data, b"c".to_vec(), b"3".to_vec());
        b.put(Cf::Meta, b"a".to_vec(), b"meta".to_vec());
        b.put(Cf::Data, b"a".to_vec(), b"1bis".to_vec());
        engine.write(b, true).expect("write");
        assert_eq!(
            engine.get(Cf::Data, b"a").expect("get"),
            Some(b"1bis".to_vec())
        );
        assert_eq!(
            engine.get(Cf::Meta, b"a").expect("get"),
            Some(b"meta".to_vec())
        );
        assert_eq!(engine.get(Cf::Dedup, b"a").expect("get"), None);
        // A memory-only read either finds the answer or says it would block.
        let mut cached = Vec::new();
        match engine.scan(Cf::Data, b"b", Some(b"c"), ReadTier::Memory, &mut |k, v| {
            cached.push((k.to_vec(), v.to_vec()));
            true
        }) {
            Ok(()) => assert_eq!(cached, vec![(b"b".to_vec(), b"2".to_vec())]),
            Err(StorageError::WouldBlock) => {}
            Err(e) => panic!("memory-only scan failed: {e}"),
        }
        // Scans are ordered and bounded.
        let all = collect(engine, Cf::Data, b"", None);
        let keys: Vec<_> = all.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let mid = collect(engine, Cf::Data, b"b", Some(b"c"));
        assert_eq!(mid, vec![(b"b".to_vec(), b"2".to_vec())]);
        // A scan stops when told to.
        let mut seen = 0;
        engine
            .scan(Cf::Data, b"", None, ReadTier::Any, &mut |_, _| {
                seen += 1;
                false
            })
            .expect("scan");
        assert_eq!(seen, 1);
        // Deletes and range deletes.
        let mut b = WriteBatch::new();
        b.delete(Cf::Data, b"a".to_vec());
        b.delete_range(Cf::Data, b"b".to_vec(), b"c".to_vec());
        engine.write(b, false).expect("write");
        let all = collect(engine, Cf::Data, b"", None);
        assert_eq!(all, vec![(b"c".to_vec(), b"3".to_vec())]);
        // A dump holds every column family asked for.
        let dump = engine.dump(&[Cf::Data, Cf::Meta]).expect("dump");
        assert_eq!(
            dump,
            vec![
                (Cf::Data, b"c".to_vec(), b"3".to_vec()),
                (Cf::Meta, b"a".to_vec(), b"meta".to_vec())
            ]
        );
    }

    #[test]
    fn memory_engine_conforms() {
        run(&memory::MemoryEngine::new());
    }

    #[test]
    fn rocks_engine_conforms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = rocksdb::RocksEngine::open(dir.path()).expect("open");
        run(&engine);
    }
}
