//! The versioned keyspace: namespaces, multi-version values, revisions and the dedup table.
//!
//! Reads go straight to the engine from any thread. Every change goes through
//! [`Store::apply_group`], called only by the replicated state machine (one caller at a time,
//! in log order): it turns a group of [`Stamped`] commands into one [`WriteBatch`] (so a
//! group is atomic), computing each command's [`Outcome`] against the state left by the
//! commands before it in the group. The in-memory catalog (namespaces and their latest
//! revisions) changes only after the batch is written, through [`Store::install`].
//!
//! Versions: every mutation takes the revision its command is stamped with (counted by the
//! state machine, one per command), so revisions increase across the whole cluster log. Older
//! versions of a key are kept while they are within `retain_revisions` of the newest revision
//! (a read at a revision inside that window sees the key as it was then), with the newest
//! version below that window, and collected by the next write of the key after that.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use dialkv_proto::v1::NamespaceSpec;
use prost::Message;

use super::keys::{self, NamespaceId, Revision, StoredValue, MAX_NAMESPACE_ID};
use super::{Cf, Engine, ReadTier, StorageError, WriteBatch};

pub mod txn;

/// The name of the namespace every fresh cluster has.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Identifies a request for deduplication: `(client_id, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RequestKey {
    /// The client's random id.
    pub client_id: u64,
    /// The request's number within the client.
    pub seq: u64,
}

/// What a compare-and-set checks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// The key exists at exactly this revision.
    RevisionEquals(Revision),
    /// The key exists with exactly this value.
    ValueEquals(Bytes),
    /// The key does not exist.
    Absent,
}

/// A change to the store, carried by a log entry and applied by the state machine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Sets `key` to `value`.
    Put {
        ns: String,
        key: Bytes,
        value: Bytes,
        request: Option<RequestKey>,
    },
    /// Deletes `key`.
    Delete {
        ns: String,
        key: Bytes,
        request: Option<RequestKey>,
    },
    /// Sets (`value = Some`) or deletes (`None`) `key` if `condition` holds.
    Cas {
        ns: String,
        key: Bytes,
        condition: Condition,
        value: Option<Bytes>,
        request: Option<RequestKey>,
    },
    /// Creates a namespace with a validated, defaults-filled spec.
    CreateNamespace {
        #[serde(with = "spec_codec")]
        spec: NamespaceSpec,
    },
    /// Drops a namespace and every key in it.
    DropNamespace { name: String },
    /// Removes dedup records applied before `before_ms` (Unix milliseconds).
    SweepDedup { before_ms: u64 },
    /// Commits an interactive transaction if nothing it read changed after its snapshot.
    Commit(txn::Commit),
    /// Runs a one-shot compare/then/else transaction.
    OneShot(txn::OneShot),
    /// Commands proposed together as one log entry (the primary's group commit). The state
    /// machine unpacks it: each command takes its own revision and has its own outcome, as if
    /// proposed alone. [`Store::apply_group`] never receives one.
    Batch(Vec<Command>),
}

impl Command {
    /// Appends the commands of `self` to `out` in order, unpacking batches.
    pub fn flatten_into(self, out: &mut Vec<Command>) {
        match self {
            Command::Batch(commands) => {
                for c in commands {
                    c.flatten_into(out);
                }
            }
            c => out.push(c),
        }
    }
}

/// A command with the position and time it was ordered at: with replication, the log index
/// of its entry and the primary's clock when it proposed it, so that every replica applies it
/// identically.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamped {
    /// The change.
    pub command: Command,
    /// The revision it takes; greater than every revision applied before it.
    pub revision: Revision,
    /// Unix milliseconds at which it was ordered (stamps dedup records).
    pub at_ms: u64,
}

/// The current state of a key as a compare-and-set saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Current {
    /// The value.
    pub value: Bytes,
    /// The revision that wrote it.
    pub revision: Revision,
}

/// The result of applying a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// A put took revision `revision`.
    Put { revision: Revision },
    /// A delete took `revision`; `existed` says whether the key was there.
    Delete { existed: bool, revision: Revision },
    /// A compare-and-set: on success the revision it took, else the key's current state.
    Cas {
        succeeded: bool,
        revision: Revision,
        current: Option<Current>,
    },
    /// A namespace was created.
    Created(NamespaceMeta),
    /// A namespace was dropped.
    Dropped,
    /// A dedup sweep removed this many records.
    Swept(u64),
    /// An interactive transaction committed at `revision`, or was aborted because `conflict`
    /// changed after its snapshot.
    Committed {
        revision: Revision,
        conflict: Option<Bytes>,
    },
    /// A one-shot transaction: whether its compares held, and what its ops did.
    OneShotDone {
        succeeded: bool,
        revision: Revision,
        results: Vec<txn::OpResult>,
    },
}

/// Why a command was refused. Nothing of a refused command is written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The namespace does not exist.
    #[error("namespace {0:?} does not exist")]
    NamespaceNotFound(String),
    /// A namespace of that name exists.
    #[error("namespace {0:?} already exists")]
    NamespaceExists(String),
    /// The default namespace is permanent.
    #[error("the {DEFAULT_NAMESPACE:?} namespace cannot be dropped")]
    DefaultNamespace,
    /// Every namespace id has been used.
    #[error("no namespace ids are left ({MAX_NAMESPACE_ID} namespaces have been created)")]
    NamespaceIdsExhausted,
    /// A commit retried with its request id has no first outcome: the transaction never
    /// committed here (it expired, was aborted, or the primary changed).
    #[error("transaction unknown: it expired, was aborted, or began at another primary")]
    TransactionUnknown,
    /// A request id was sent again with a different request.
    #[error(
        "request_id (client_id {client_id}, seq {seq}) was already used for a different request"
    )]
    RequestIdReused { client_id: u64, seq: u64 },
    /// The engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A namespace as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NamespaceMeta {
    /// Its numeric id, the prefix of its stored keys.
    pub id: NamespaceId,
    /// Its spec with every default filled in.
    #[serde(with = "spec_codec")]
    pub spec: NamespaceSpec,
    /// Its latest durable revision.
    pub revision: Revision,
}

/// Serde for the protobuf `NamespaceSpec`: its protobuf encoding as bytes.
mod spec_codec {
    use dialkv_proto::v1::NamespaceSpec;
    use prost::Message;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(spec: &NamespaceSpec, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&spec.encode_to_vec())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NamespaceSpec, D::Error> {
        let bytes = serde_bytes_vec(d)?;
        NamespaceSpec::decode(&bytes[..]).map_err(serde::de::Error::custom)
    }

    fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(d)
    }
}

/// A stored catalog entry (prost-encoded in the meta column family).
#[derive(Clone, PartialEq, Message)]
struct CatalogRecord {
    #[prost(uint32, tag = "1")]
    id: u32,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
}

/// A stored dedup record: what the request was, when, and its first outcome.
#[derive(Clone, PartialEq, Message)]
struct DedupRecord {
    /// 1 put, 2 delete, 3 cas.
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(string, tag = "2")]
    namespace: String,
    #[prost(bytes = "vec", tag = "3")]
    key: Vec<u8>,
    #[prost(uint64, tag = "4")]
    applied_at_ms: u64,
    #[prost(uint64, tag = "5")]
    revision: u64,
    #[prost(bool, tag = "6")]
    flag: bool,
    #[prost(bool, tag = "7")]
    has_current: bool,
    #[prost(bytes = "vec", tag = "8")]
    current_value: Vec<u8>,
    #[prost(uint64, tag = "9")]
    current_revision: u64,
    /// For transactions: the whole outcome, bincode-encoded.
    #[prost(bytes = "vec", tag = "10")]
    outcome: Vec<u8>,
}

const DEDUP_RECORD_PREFIX: u8 = b'r';
const DEDUP_TIME_PREFIX: u8 = b't';

fn dedup_record_key(r: RequestKey) -> Vec<u8> {
    let mut k = vec![DEDUP_RECORD_PREFIX];
    k.extend_from_slice(&keys::dedup_key(r.client_id, r.seq));
    k
}

fn dedup_time_key(at_ms: u64, r: RequestKey) -> Vec<u8> {
    let mut k = vec![DEDUP_TIME_PREFIX];
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(&keys::dedup_key(r.client_id, r.seq));
    k
}

/// Store settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreOptions {
    /// How many revisions of history to keep readable behind the newest (0: only the newest).
    pub retain_revisions: u64,
    /// TEST ONLY, UNSAFE: commit transactions without checking their reads, so that the
    /// fault-injection harness can prove it catches the anomalies that follow.
    pub unsafe_skip_txn_validation: bool,
}

/// The namespaces, by name.
type Catalog = BTreeMap<String, NamespaceMeta>;

/// The versioned keyspace over an [`Engine`].
pub struct Store {
    engine: Arc<dyn Engine>,
    catalog: RwLock<Catalog>,
    next_ns_id: RwLock<NamespaceId>,
    options: StoreOptions,
    /// The newest applied revision, so that a reader waiting for a revision wakes when it
    /// lands.
    applied: tokio::sync::watch::Sender<Revision>,
    /// The Raft log index of the last applied entry (entries and revisions are counted apart:
    /// a batch entry holds several commands, blank and membership entries none).
    applied_index: std::sync::atomic::AtomicU64,
    /// The widest history under which any stored version may have been written (see
    /// [`keys::WIDEST_RETAIN`]); 0 means every key holds at most one version.
    widest_retain: std::sync::atomic::AtomicU64,
    /// The live versions of recently written keys: what a write needs to know which versions
    /// it collects, answered without reading the engine for a key written before.
    versions: std::sync::Mutex<Remembered>,
}

/// A version as the store lists it: (revision, is tombstone).
type Version = (Revision, bool);

/// A key's live versions are every stored version from its newest down to the newest one
/// below the newest's window (`newest - retain_revisions`); with no history retained, every
/// stored version, or only the newest if no history was ever kept (see
/// [`Store::load_widest_retain`]). Older stored versions are either deletion markers or were
/// kept under a wider `--retain-revisions` and are never collected.
///
/// What the store knows of one key's live versions: all of them, oldest first, except those
/// whose revision lies in `gap` (a key with a long history, see [`Known::bound`]). A write
/// reads the part of the gap below its horizon from the engine, and the gap closes as the
/// horizon passes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Known {
    versions: VecDeque<Version>,
    /// `[from, to)`: live versions with a revision in it are not in `versions`.
    gap: Option<(Revision, Revision)>,
}

/// Versions a key's list holds at most when the store takes it back after a group (within a
/// group, versions its writes added are not in the engine yet, so none may go into the gap); a
/// longer one loses its middle to the gap, keeping its oldest half (the next to collect) and
/// its newest version. More than a window of the default `--retain-revisions`, so that with
/// the defaults a hot key never reads the engine.
const MAX_LISTED: usize = if cfg!(test) { 3 } else { 1 << 14 };

/// Versions read from the newest down when a key is not remembered; if its live versions go
/// on below them, only the ones at or below the write's horizon are read besides.
const FILL_NEWEST: usize = if cfg!(test) { 2 } else { 256 };

impl Known {
    /// Keeps at most [`MAX_LISTED`] versions: the oldest half and the newest, with a gap
    /// between (merged with the gap it had, which lies above the oldest ones kept).
    fn bound(&mut self) {
        if self.versions.len() <= MAX_LISTED {
            return;
        }
        let below_gap = match self.gap {
            Some((from, _)) => self.versions.partition_point(|(r, _)| *r < from),
            None => self.versions.len(),
        };
        let keep = below_gap.min(MAX_LISTED / 2);
        let from = match (keep < below_gap, self.gap) {
            (false, Some((from, _))) => from,
            _ => self.versions[keep.saturating_sub(1)].0 + 1,
        };
        let Some(newest) = self.versions.pop_back() else {
            return;
        };
        self.versions.truncate(keep);
        self.versions.push_back(newest);
        self.versions.shrink_to_fit();
        self.gap = (from < newest.0).then_some((from, newest.0));
    }
}

/// The store's knowledge of keys' live versions, by key.
type KnownVersions = HashMap<(NamespaceId, Bytes), Known>;

/// The most keys whose live versions the store remembers.
const REMEMBERED_KEYS: usize = 1 << 16;

/// The most versions the store remembers across all keys, 16 bytes each (plus the maps'
/// own): 64 lists of the longest.
const REMEMBERED_VERSIONS: usize = 64 * MAX_LISTED;

/// The live versions of recently written keys (see [`Known`]). Groups take the lists of the
/// keys they write and give them back once their batch is written; past [`REMEMBERED_KEYS`]
/// keys or [`REMEMBERED_VERSIONS`] versions, it starts again empty.
#[derive(Debug, Default)]
struct Remembered {
    keys: KnownVersions,
    /// The versions in `keys`' lists.
    versions: usize,
}

impl Remembered {
    fn take(&mut self, slot: &(NamespaceId, Bytes)) -> Option<Known> {
        let known = self.keys.remove(slot)?;
        self.versions -= known.versions.len();
        Some(known)
    }

    fn give(&mut self, lists: KnownVersions, max_versions: usize) {
        let added: usize = lists.values().map(|k| k.versions.len()).sum();
        if self.keys.len() + lists.len() > REMEMBERED_KEYS
            || self.versions.saturating_add(added) > max_versions
        {
            self.clear();
        }
        for (slot, known) in lists {
            self.versions += known.versions.len();
            if let Some(old) = self.keys.insert(slot, known) {
                self.versions -= old.versions.len();
            }
        }
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.versions = 0;
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The catalog changes a group makes, installed once its batch is durable.
#[derive(Debug, Default)]
pub struct CatalogDelta {
    catalog: Option<Catalog>,
    next_ns_id: Option<NamespaceId>,
    /// The live versions of each key the group wrote.
    versions: KnownVersions,
}

/// A group of commands turned into one batch, with each command's result.
#[derive(Debug)]
pub struct AppliedGroup {
    /// The changes of every command of the group.
    pub batch: WriteBatch,
    /// One result per command, in order.
    pub results: Vec<Result<Outcome, ApplyError>>,
    /// The catalog to install once the batch is durable.
    pub delta: CatalogDelta,
}

/// A key with its value and revision, as reads return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The user key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// The revision that wrote the value.
    pub revision: Revision,
}

/// How much one scan page may hold: at most `limit` keys and, past the first key, at most
/// `max_bytes` of keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimits {
    /// The most keys.
    pub limit: usize,
    /// The most bytes of keys and values past the first key.
    pub max_bytes: usize,
}

/// One page of a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanPage {
    /// The keys found, ascending.
    pub items: Vec<Item>,
    /// Whether the range has more keys after the last item.
    pub more: bool,
}

impl Store {
    /// Opens the store over `engine`, recovering the catalog from it alone; creates the
    /// `default` namespace on a fresh engine.
    pub fn open(engine: Arc<dyn Engine>, options: StoreOptions) -> Result<Self, StorageError> {
        let (catalog, next_ns_id) = load_catalog(&*engine)?;
        let store = Self {
            engine,
            catalog: RwLock::new(catalog),
            next_ns_id: RwLock::new(next_ns_id),
            options,
            applied: tokio::sync::watch::Sender::new(0),
            applied_index: std::sync::atomic::AtomicU64::new(0),
            widest_retain: std::sync::atomic::AtomicU64::new(u64::MAX),
            versions: std::sync::Mutex::new(Remembered::default()),
        };
        store.load_widest_retain()?;
        if store.namespace(DEFAULT_NAMESPACE).is_none() {
            let spec = NamespaceSpec {
                name: DEFAULT_NAMESPACE.to_string(),
                protocol: dialkv_proto::v1::Protocol::PrimaryBackup as i32,
                // Every replica of the cluster, whatever its size: the same on every replica.
                replicas: 0,
                ..Default::default()
            };
            let create = Stamped {
                command: Command::CreateNamespace { spec },
                revision: 0,
                at_ms: 0,
            };
            let group = store.apply_group(vec![create]);
            store.engine.write(group.batch, true)?;
            store.install(group.delta);
        }
        Ok(store)
    }

    /// The engine under the store.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Looks a namespace up by name.
    pub fn namespace(&self, name: &str) -> Option<NamespaceMeta> {
        self.catalog
            .read()
            .expect("catalog lock poisoned")
            .get(name)
            .cloned()
    }

    /// Every namespace, in name order.
    pub fn namespaces(&self) -> Vec<NamespaceMeta> {
        self.catalog
            .read()
            .expect("catalog lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Whether namespace id `id` was created here and has been dropped since (ids are never
    /// reused, so an id below the next one that is not in the catalog is gone for good).
    pub fn namespace_dropped(&self, id: NamespaceId) -> bool {
        id < *self.next_ns_id.read().expect("next id lock poisoned")
            && !self
                .catalog
                .read()
                .expect("catalog lock poisoned")
                .values()
                .any(|m| m.id == id)
    }

    /// Reads the newest version of `key` in namespace `ns` at or below revision `at` (`None`:
    /// the newest of all). `Ok(None)` when absent or deleted.
    pub fn get(
        &self,
        ns: NamespaceId,
        key: &[u8],
        at: Option<Revision>,
        tier: ReadTier,
    ) -> Result<Option<Item>, StorageError> {
        latest(&*self.engine, ns, key, at, tier)
    }

    /// Reads one page of `[start, end)` (`end` empty: to the end of the namespace) as of
    /// revision `at` (`None`: the newest), within the page's limits.
    pub fn scan(
        &self,
        ns: NamespaceId,
        (start, end): (&[u8], &[u8]),
        page: PageLimits,
        at: Option<Revision>,
        tier: ReadTier,
    ) -> Result<ScanPage, StorageError> {
        let PageLimits { limit, max_bytes } = page;
        let at = at.unwrap_or(Revision::MAX);
        let from = keys::scan_start(ns, start);
        let to = if end.is_empty() {
            keys::namespace_range(ns).1
        } else {
            keys::scan_start(ns, end)
        };
        let mut items: Vec<Item> = Vec::new();
        let mut last_key: Option<Vec<u8>> = None;
        let mut bytes = 0usize;
        let mut more = false;
        let mut failure = None;
        self.engine
            .scan(Cf::Data, &from, Some(&to), tier, &mut |k, v| {
                let (_, key, revision) = match keys::decode_data_key(k) {
                    Ok(d) => d,
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                };
                if last_key.as_deref() == Some(&key[..]) || revision > at {
                    // An older version of a key already seen, or a version after `at`.
                    return true;
                }
                let value = match StoredValue::decode(v) {
                    Ok(StoredValue::Value(value)) => value,
                    Ok(StoredValue::Tombstone) => {
                        last_key = Some(key);
                        return true;
                    }
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                };
                if items.len() >= limit
                    || (!items.is_empty() && bytes + key.len() + value.len() > max_bytes)
                {
                    more = true;
                    return false;
                }
                bytes += key.len() + value.len();
                last_key = Some(key.clone());
                items.push(Item {
                    key: key.into(),
                    value: value.into(),
                    revision,
                });
                true
            })?;
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(ScanPage { items, more })
    }

    /// Turns `commands` into one batch. Called by the state machine only, one call at a time:
    /// the outcomes assume no other change lands between this call and the write of the
    /// batch.
    pub fn apply_group(&self, commands: Vec<Stamped>) -> AppliedGroup {
        let mut g = Group {
            store: self,
            batch: WriteBatch::new(),
            overlay: HashMap::new(),
            dedup: HashMap::new(),
            catalog: None,
            next_ns_id: None,
            now_ms: 0,
            revision: 0,
            revisions: BTreeMap::new(),
            versions: HashMap::new(),
        };
        let results = commands
            .into_iter()
            .map(|c| {
                g.now_ms = c.at_ms;
                g.revision = c.revision;
                g.apply(c.command)
            })
            .collect();
        let revisions = std::mem::take(&mut g.revisions);
        if let Some(newest) = revisions.values().max() {
            // Restamped with the group's newest revision: see `load_widest_retain`.
            let widest = self
                .widest_retain
                .load(std::sync::atomic::Ordering::Acquire);
            g.batch.put(
                Cf::Meta,
                keys::WIDEST_RETAIN.to_vec(),
                keys::encode_widest_retain(widest, *newest),
            );
        }
        for (ns, revision) in revisions {
            g.batch.put(
                Cf::Meta,
                keys::revision_key(ns),
                revision.to_be_bytes().to_vec(),
            );
        }
        AppliedGroup {
            batch: g.batch,
            results,
            delta: CatalogDelta {
                catalog: g.catalog,
                next_ns_id: g.next_ns_id,
                versions: g.versions,
            },
        }
    }

    /// Installs the catalog changes of a group whose batch is now durable.
    pub fn install(&self, delta: CatalogDelta) {
        if let Some(catalog) = delta.catalog {
            *self.catalog.write().expect("catalog lock poisoned") = catalog;
        }
        if let Some(id) = delta.next_ns_id {
            *self.next_ns_id.write().expect("next id lock poisoned") = id;
        }
        if !delta.versions.is_empty() {
            let mut lists = delta.versions;
            // Only now that the batch is written: a gap stands for versions in the engine.
            for known in lists.values_mut() {
                known.bound();
            }
            self.remembered().give(lists, REMEMBERED_VERSIONS);
        }
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.versions.lock().expect("live versions lock poisoned")
    }

    /// Records that every revision up to `revision` is applied and visible.
    pub fn set_applied(&self, revision: Revision) {
        self.applied.send_if_modified(|r| {
            let newer = revision > *r;
            *r = (*r).max(revision);
            newer
        });
    }

    /// The newest applied revision.
    pub fn applied(&self) -> Revision {
        *self.applied.borrow()
    }

    /// Records that the log is applied up to entry `index`.
    pub fn set_applied_index(&self, index: u64) {
        self.applied_index
            .fetch_max(index, std::sync::atomic::Ordering::Release);
    }

    /// The log index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// A receiver of the newest applied revision, to wait for one.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision> {
        self.applied.subscribe()
    }

    /// Forgets the versions remembered of recently written keys: called before the state
    /// machine's data is replaced wholesale, so that nothing remembered of the old state
    /// outlives a replacement that fails part way.
    pub fn forget_versions(&self) {
        self.remembered().clear();
    }

    /// Reloads the catalog from the engine, after the state machine was replaced wholesale
    /// (a snapshot was installed).
    pub fn reload(&self) -> Result<(), StorageError> {
        self.forget_versions();
        let (catalog, next) = load_catalog(&*self.engine)?;
        *self.catalog.write().expect("catalog lock poisoned") = catalog;
        *self.next_ns_id.write().expect("next id lock poisoned") = next;
        self.load_widest_retain()
    }

    /// Reads the widest history the stored versions may come from and widens it to this
    /// server's `--retain-revisions`, storing it if it changed.
    ///
    /// Without history retained, each write collects the versions below it: if every version
    /// was written without history, that is the one version the key holds, and the write reads
    /// just it. Otherwise older versions may remain (written under a wider history, here or on
    /// the replica that sent a snapshot) and every version must be read, or a delete would
    /// bring one back. The record is stamped with the newest revision applied when it was
    /// written, and every group that takes revisions rewrites it: a store whose namespaces
    /// went past the stamp was written by a binary that does not keep the record (an older
    /// one, after a downgrade or from a snapshot it received), and a store without the record
    /// holds versions of unknown origin unless it holds none at all. Either counts as the
    /// widest history. A snapshot carries its sender's record.
    fn load_widest_retain(&self) -> Result<(), StorageError> {
        let newest = self.newest_revision();
        let stored = match self.engine.get(Cf::Meta, keys::WIDEST_RETAIN)? {
            Some(b) => {
                Some(
                    keys::decode_widest_retain(&b).ok_or_else(|| StorageError::Corrupt {
                        cf: Cf::Meta,
                        reason: "the widest retained history is not 16 bytes".into(),
                    })?,
                )
            }
            None => None,
        };
        let known = match stored {
            Some((widest, stamp)) if stamp >= newest => widest,
            Some(_) => u64::MAX,
            None => {
                let mut any = false;
                self.engine
                    .scan(Cf::Data, &[], None, ReadTier::Any, &mut |_, _| {
                        any = true;
                        false
                    })?;
                if any {
                    u64::MAX
                } else {
                    0
                }
            }
        };
        let widest = known.max(self.options.retain_revisions);
        if stored != Some((widest, newest)) {
            let mut b = WriteBatch::new();
            b.put(
                Cf::Meta,
                keys::WIDEST_RETAIN.to_vec(),
                keys::encode_widest_retain(widest, newest),
            );
            self.engine.write(b, true)?;
        }
        self.widest_retain
            .store(widest, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The newest revision any namespace took.
    fn newest_revision(&self) -> Revision {
        self.namespaces()
            .iter()
            .map(|m| m.revision)
            .max()
            .unwrap_or(0)
    }

    /// Visits `key`'s stored versions, newest first, from revision `start` down (from the
    /// newest with `None`), until `visit` returns false.
    fn scan_versions(
        &self,
        ns: NamespaceId,
        key: &Bytes,
        start: Option<Revision>,
        visit: &mut dyn FnMut(Version) -> bool,
    ) -> Result<(), StorageError> {
        let from = match start {
            Some(r) => keys::data_key(ns, key, r),
            None => keys::key_prefix(ns, key),
        };
        let mut failure = None;
        self.engine.scan(
            Cf::Data,
            &from,
            Some(&keys::after_key(ns, key)),
            ReadTier::Any,
            &mut |k, v| match keys::decode_data_key(k) {
                Ok((_, _, r)) => visit((r, StoredValue::is_tombstone(v))),
                Err(e) => {
                    failure = Some(e);
                    false
                }
            },
        )?;
        failure.map_or(Ok(()), Err)
    }

    /// The newest `limit` of `key`'s live versions (see [`Known`]), oldest first; whether
    /// they are all of them; and the key's floor (its newest revision less
    /// `retain_revisions`, below which only one live version remains), `None` for a key
    /// without versions.
    ///
    /// Collected versions leave deletion markers in the engine until compaction, after the
    /// key's live versions; a scan that walked into them would cost the write time in
    /// proportion to the key's whole history (a hot key's every write). So the scan stops
    /// where the live versions end: the key's last write, at its newest stored revision `p`,
    /// kept every version from its horizon `p - retain` up and the newest one below it, and
    /// collected everything older. (Versions kept under a larger `--retain-revisions` than
    /// the current one are therefore never collected: lowering it leaves at most one old
    /// window of versions per key behind.)
    fn newest_live(
        &self,
        ns: NamespaceId,
        key: &Bytes,
        limit: usize,
    ) -> Result<(VecDeque<Version>, bool, Option<Revision>), StorageError> {
        let retain = self.options.retain_revisions;
        // No history was ever kept: the newest stored version is the key's only one, and the
        // versions collected before it are deletion markers not to walk into.
        let single = self.single_version();
        let mut versions = VecDeque::new();
        let mut floor = None;
        let mut all = true;
        self.scan_versions(ns, key, None, &mut |version| {
            if versions.len() == limit {
                all = false;
                return false;
            }
            versions.push_front(version);
            // Without history retained, a store that ever kept some (or a snapshot from a
            // replica that did) may hold older versions besides the newest, and a delete that
            // left one would bring it back: every version is live.
            let floor = *floor.get_or_insert(match retain {
                0 => 0,
                _ => version.0.saturating_sub(retain),
            });
            !single && version.0 >= floor
        })?;
        Ok((versions, all, floor))
    }

    /// What a write at `horizon` needs to know of `key`'s live versions, read from the
    /// engine: the newest [`FILL_NEWEST`] and, if the live versions go on below them, all
    /// those at or below the horizon, leaving the ones between in the gap. (Bounded, like
    /// every list, when the store takes it back after the group.)
    fn stored_versions(
        &self,
        ns: NamespaceId,
        key: &Bytes,
        horizon: Revision,
    ) -> Result<Known, StorageError> {
        let (newest, all, floor) = self.newest_live(ns, key, FILL_NEWEST)?;
        let oldest_read = newest.front().map(|(r, _)| *r);
        let (Some(floor), Some(oldest_read), false) = (floor, oldest_read, all) else {
            return Ok(Known {
                versions: newest,
                gap: None,
            });
        };
        // The horizon is at or above the floor (a write's horizon is above the horizon of the
        // key's previous write, or both are 0), so everything read here is live: the versions from the floor up
        // and the newest one below it.
        let top = horizon.min(oldest_read - 1);
        let mut versions = VecDeque::new();
        self.scan_versions(ns, key, Some(top), &mut |version| {
            versions.push_front(version);
            version.0 >= floor
        })?;
        versions.extend(newest);
        Ok(Known {
            versions,
            gap: (top + 1 < oldest_read).then_some((top + 1, oldest_read)),
        })
    }

    /// Reads into `known` the live versions of its gap below `horizon`, so that it lists every
    /// version a write at `horizon` may collect or keep as the newest below the horizon.
    fn fill_gap(
        &self,
        ns: NamespaceId,
        key: &Bytes,
        known: &mut Known,
        horizon: Revision,
    ) -> Result<(), StorageError> {
        let Some((from, to)) = known.gap else {
            return Ok(());
        };
        if from >= horizon {
            return Ok(());
        }
        let upto = horizon.min(to);
        let mut found = Vec::new();
        self.scan_versions(ns, key, Some(upto - 1), &mut |version| {
            let inside = version.0 >= from;
            if inside {
                found.push(version);
            }
            inside
        })?;
        let at = known.versions.partition_point(|(r, _)| *r < from);
        let above = known.versions.split_off(at);
        // Found newest first.
        known.versions.extend(found.into_iter().rev());
        known.versions.extend(above);
        known.gap = (upto < to).then_some((upto, to));
        Ok(())
    }

    /// Whether every key holds at most one stored version (see [`Store::load_widest_retain`]).
    fn single_version(&self) -> bool {
        self.widest_retain
            .load(std::sync::atomic::Ordering::Acquire)
            == 0
    }
}

/// Reads the namespace catalog and the next namespace id from the meta column family.
fn load_catalog(engine: &dyn Engine) -> Result<(Catalog, NamespaceId), StorageError> {
    let mut catalog = Catalog::new();
    let (lo, hi) = keys::catalog_range();
    let mut records = Vec::new();
    engine.scan(Cf::Meta, &lo, Some(&hi), ReadTier::Any, &mut |k, v| {
        records.push((k.to_vec(), v.to_vec()));
        true
    })?;
    for (k, v) in records {
        let corrupt = |reason: String| StorageError::Corrupt {
            cf: Cf::Meta,
            reason,
        };
        let rec = CatalogRecord::decode(&v[..]).map_err(|e| corrupt(e.to_string()))?;
        let spec = rec
            .spec
            .ok_or_else(|| corrupt(format!("catalog entry {k:?} has no spec")))?;
        let revision = match engine.get(Cf::Meta, &keys::revision_key(rec.id))? {
            Some(b) => u64::from_be_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("bad revision".into()))?,
            ),
            None => 0,
        };
        catalog.insert(
            spec.name.clone(),
            NamespaceMeta {
                id: rec.id,
                spec,
                revision,
            },
        );
    }
    let next_ns_id = match engine.get(Cf::Meta, keys::NEXT_NAMESPACE_ID)? {
        Some(b) => {
            u32::from_be_bytes(b.as_slice().try_into().map_err(|_| StorageError::Corrupt {
                cf: Cf::Meta,
                reason: "bad next namespace id".into(),
            })?)
        }
        None => 1,
    };
    Ok((catalog, next_ns_id))
}

fn latest(
    engine: &dyn Engine,
    ns: NamespaceId,
    key: &[u8],
    at: Option<Revision>,
    tier: ReadTier,
) -> Result<Option<Item>, StorageError> {
    let prefix = keys::key_prefix(ns, key);
    let start = keys::data_key(ns, key, at.unwrap_or(Revision::MAX));
    let end = keys::after_key(ns, key);
    let mut found = None;
    engine.scan(Cf::Data, &start, Some(&end), tier, &mut |k, v| {
        if k.starts_with(&prefix) {
            found = Some((k.to_vec(), v.to_vec()));
        }
        false
    })?;
    let Some((k, v)) = found else { return Ok(None) };
    let (_, _, revision) = keys::decode_data_key(&k)?;
    match StoredValue::decode(&v)? {
        StoredValue::Value(value) => Ok(Some(Item {
            key: Bytes::copy_from_slice(key),
            value: value.into(),
            revision,
        })),
        StoredValue::Tombstone => Ok(None),
    }
}

/// Whether a write stored a version: `Some(false)` a value, `Some(true)` a tombstone, `None`
/// nothing (a delete with no history retained).
fn value_is_some_or_retained(state: &Option<Item>, retain: u64) -> Option<bool> {
    match state {
        Some(_) => Some(false),
        None if retain > 0 => Some(true),
        None => None,
    }
}

/// The state of one group being built.
struct Group<'a> {
    store: &'a Store,
    batch: WriteBatch,
    /// The latest state of keys written earlier in this group: `None` = deleted.
    overlay: HashMap<(NamespaceId, Bytes), Option<Item>>,
    /// Dedup records written earlier in this group.
    dedup: HashMap<RequestKey, DedupRecord>,
    /// The catalog as changed by this group, if it changed it.
    catalog: Option<Catalog>,
    next_ns_id: Option<NamespaceId>,
    /// The time and revision of the command being applied.
    now_ms: u64,
    revision: Revision,
    /// The newest revision each namespace took in this group, stored once at its end rather
    /// than at every write.
    revisions: BTreeMap<NamespaceId, Revision>,
    /// The live versions of each key written in this group, with its writes: taken from the
    /// store's memory (or read) at the key's first write, given back by [`Store::install`].
    versions: KnownVersions,
}

const KIND_PUT: u32 = 1;
const KIND_DELETE: u32 = 2;
const KIND_CAS: u32 = 3;
const KIND_COMMIT: u32 = 4;
const KIND_ONESHOT: u32 = 5;

impl Group<'_> {
    fn catalog(&mut self) -> &mut Catalog {
        let store = self.store;
        self.catalog
            .get_or_insert_with(|| store.catalog.read().expect("catalog lock poisoned").clone())
    }

    fn namespace(&mut self, name: &str) -> Result<NamespaceMeta, ApplyError> {
        let found = match &self.catalog {
            Some(c) => c.get(name).cloned(),
            None => self.store.namespace(name),
        };
        found.ok_or_else(|| ApplyError::NamespaceNotFound(name.to_string()))
    }

    fn current(&self, ns: NamespaceId, key: &Bytes) -> Result<Option<Item>, StorageError> {
        match self.overlay.get(&(ns, key.clone())) {
            Some(state) => Ok(state.clone()),
            None => latest(&*self.store.engine, ns, key, None, ReadTier::Any),
        }
    }

    fn apply(&mut self, command: Command) -> Result<Outcome, ApplyError> {
        match command {
            Command::Put {
                ns,
                key,
                value,
                request,
            } => self.keyed(KIND_PUT, ns, key, request, |g, meta, key| {
                let revision = g.write_key(meta, key, Some(value))?;
                Ok(Outcome::Put { revision })
            }),
            Command::Delete { ns, key, request } => {
                self.keyed(KIND_DELETE, ns, key, request, |g, meta, key| {
                    let existed = g.current(meta.id, &key)?.is_some();
                    let revision = g.write_key(meta, key, None)?;
                    Ok(Outcome::Delete { existed, revision })
                })
            }
            Command::Cas {
                ns,
                key,
                condition,
                value,
                request,
            } => self.keyed(KIND_CAS, ns, key, request, |g, meta, key| {
                let current = g.current(meta.id, &key)?;
                let holds = match (&condition, &current) {
                    (Condition::Absent, None) => true,
                    (Condition::RevisionEquals(r), Some(c)) => c.revision == *r,
                    (Condition::ValueEquals(v), Some(c)) => c.value == *v,
                    _ => false,
                };
                if !holds {
                    let current = current.map(|c| Current {
                        value: c.value,
                        revision: c.revision,
                    });
                    return Ok(Outcome::Cas {
                        succeeded: false,
                        revision: 0,
                        current,
                    });
                }
                let revision = g.write_key(meta, key, value)?;
                Ok(Outcome::Cas {
                    succeeded: true,
                    revision,
                    current: None,
                })
            }),
            Command::CreateNamespace { spec } => self.create_namespace(spec),
            Command::DropNamespace { name } => self.drop_namespace(name),
            Command::SweepDedup { before_ms } => self.sweep_dedup(before_ms),
            Command::Commit(c) => {
                let (ns, request) = (c.ns.clone(), c.request);
                self.keyed(KIND_COMMIT, ns, Bytes::new(), request, |g, meta, _| {
                    g.commit(meta, c)
                })
            }
            Command::OneShot(t) => {
                let (ns, request) = (t.ns.clone(), t.request);
                self.keyed(KIND_ONESHOT, ns, Bytes::new(), request, |g, meta, _| {
                    g.one_shot(meta, t)
                })
            }
            // The state machine unpacks batches before it applies them: one reaching here
            // would give several commands a single revision, so the replica stops instead.
            Command::Batch(_) => Err(ApplyError::Storage(StorageError::Corrupt {
                cf: Cf::RaftLog,
                reason: "a batch of commands reached the store unpacked".into(),
            })),
        }
    }

    /// Applies a keyed mutation once per request id: a request seen before returns its first
    /// outcome and writes nothing.
    fn keyed(
        &mut self,
        kind: u32,
        ns: String,
        key: Bytes,
        request: Option<RequestKey>,
        mutate: impl FnOnce(&mut Self, &NamespaceMeta, Bytes) -> Result<Outcome, ApplyError>,
    ) -> Result<Outcome, ApplyError> {
        if let Some(r) = request {
            let seen =
                match self.dedup.get(&r) {
                    Some(rec) => Some(rec.clone()),
                    None => match self.store.engine.get(Cf::Dedup, &dedup_record_key(r))? {
                        Some(b) => Some(DedupRecord::decode(&b[..]).map_err(|e| {
                            StorageError::Corrupt {
                                cf: Cf::Dedup,
                                reason: e.to_string(),
                            }
                        })?),
                        None => None,
                    },
                };
            if let Some(rec) = seen {
                if rec.kind != kind || rec.namespace != ns || rec.key != key[..] {
                    return Err(ApplyError::RequestIdReused {
                        client_id: r.client_id,
                        seq: r.seq,
                    });
                }
                return Ok(outcome_of(&rec));
            }
        }
        let meta = self.namespace(&ns)?;
        let outcome = mutate(self, &meta, key.clone())?;
        if let Some(r) = request {
            let rec = record_of(kind, ns, key.to_vec(), self.now_ms, &outcome);
            self.batch
                .put(Cf::Dedup, dedup_record_key(r), rec.encode_to_vec());
            self.batch
                .put(Cf::Dedup, dedup_time_key(self.now_ms, r), Vec::new());
            self.dedup.insert(r, rec);
        }
        Ok(outcome)
    }

    /// Writes `value` (or deletes, for `None`) at the namespace's next revision, collecting
    /// versions that fell out of the retention window.
    fn write_key(
        &mut self,
        meta: &NamespaceMeta,
        key: Bytes,
        value: Option<Bytes>,
    ) -> Result<Revision, ApplyError> {
        let retain = self.store.options.retain_revisions;
        let revision = self.revision;
        let ns_meta = self
            .catalog()
            .get_mut(&meta.spec.name)
            .expect("namespace was looked up in this group");
        ns_meta.revision = revision;
        let ns = ns_meta.id;
        self.revisions.insert(ns, revision);
        // Versions a read at a revision in [horizon, revision) may still need.
        let horizon = revision.saturating_sub(retain);
        let slot = (ns, key.clone());
        let taken = match self.versions.remove(&slot) {
            Some(known) => Some(known),
            None => self.store.remembered().take(&slot),
        };
        let mut known = match taken {
            Some(known) => known,
            None => self.store.stored_versions(ns, &key, horizon)?,
        };
        self.store.fill_gap(ns, &key, &mut known, horizon)?;
        let versions = &mut known.versions;
        // A command that writes the key twice (a one-shot transaction with two operations on
        // it) writes the same version twice: the second replaces the first, which is not an
        // older version to keep or collect.
        if versions.back().is_some_and(|(r, _)| *r == revision) {
            versions.pop_back();
        }
        // A read at s in [horizon, revision) sees the newest version at or below s, so
        // everything from the horizon up stays, and so does the newest version below it (with
        // history retained): always, even when a version sits at the horizon or it is a
        // tombstone, because the reads of live versions rely on it (`Store::newest_live`).
        // Everything older is collected.
        let below = versions.partition_point(|(r, _)| *r < horizon);
        let collected = match retain {
            0 => below,
            _ => below.saturating_sub(1),
        };
        let state = match value {
            Some(value) => {
                self.batch.put(
                    Cf::Data,
                    keys::data_key(ns, &key, revision),
                    StoredValue::Value(value.to_vec()).encode(),
                );
                Some(Item {
                    key: key.clone(),
                    value,
                    revision,
                })
            }
            None => {
                // With no history retained nothing can read below the delete: no tombstone
                // (and no version at this revision, should the same command have written one).
                if retain > 0 {
                    self.batch.put(
                        Cf::Data,
                        keys::data_key(ns, &key, revision),
                        StoredValue::Tombstone.encode(),
                    );
                } else {
                    self.batch
                        .delete(Cf::Data, keys::data_key(ns, &key, revision));
                }
                None
            }
        };
        // After the new version, in the engine's order (newest first): each delete lands just
        // after the entry written before it, where the memtable's insert finds it at once.
        for (r, _) in versions.drain(..collected).rev() {
            self.batch.delete(Cf::Data, keys::data_key(ns, &key, r));
        }
        if let Some(is_tombstone) = value_is_some_or_retained(&state, retain) {
            known.versions.push_back((revision, is_tombstone));
        }
        if known.versions.capacity() > 2 * known.versions.len() + 16 {
            // A long list collected at once (a write without history after a store that kept
            // some) would otherwise keep its room.
            known.versions.shrink_to_fit();
        }
        self.versions.insert(slot, known);
        self.overlay.insert((ns, key), state);
        Ok(revision)
    }

    fn create_namespace(&mut self, spec: NamespaceSpec) -> Result<Outcome, ApplyError> {
        if self.namespace(&spec.name).is_ok() {
            return Err(ApplyError::NamespaceExists(spec.name));
        }
        let id = self
            .next_ns_id
            .unwrap_or_else(|| *self.store.next_ns_id.read().expect("next id lock poisoned"));
        if id > MAX_NAMESPACE_ID {
            return Err(ApplyError::NamespaceIdsExhausted);
        }
        self.next_ns_id = Some(id + 1);
        self.batch.put(
            Cf::Meta,
            keys::NEXT_NAMESPACE_ID.to_vec(),
            (id + 1).to_be_bytes().to_vec(),
        );
        let rec = CatalogRecord {
            id,
            spec: Some(spec.clone()),
        };
        self.batch
            .put(Cf::Meta, keys::catalog_key(&spec.name), rec.encode_to_vec());
        self.batch.put(
            Cf::Meta,
            keys::revision_key(id),
            self.revision.to_be_bytes().to_vec(),
        );
        let meta = NamespaceMeta {
            id,
            spec,
            revision: self.revision,
        };
        self.catalog().insert(meta.spec.name.clone(), meta.clone());
        Ok(Outcome::Created(meta))
    }

    fn drop_namespace(&mut self, name: String) -> Result<Outcome, ApplyError> {
        if name == DEFAULT_NAMESPACE {
            return Err(ApplyError::DefaultNamespace);
        }
        let meta = self.namespace(&name)?;
        let (lo, hi) = keys::namespace_range(meta.id);
        self.batch.delete_range(Cf::Data, lo.clone(), hi.clone());
        // A quorum namespace's data is keyed by the same namespace prefix.
        self.batch.delete_range(Cf::Quorum, lo, hi);
        self.batch.delete(Cf::Meta, keys::catalog_key(&name));
        self.batch.delete(Cf::Meta, keys::revision_key(meta.id));
        self.revisions.remove(&meta.id);
        self.overlay.retain(|(ns, _), _| *ns != meta.id);
        self.versions.retain(|(ns, _), _| *ns != meta.id);
        self.catalog().remove(&name);
        Ok(Outcome::Dropped)
    }

    fn sweep_dedup(&mut self, before_ms: u64) -> Result<Outcome, ApplyError> {
        let start = vec![DEDUP_TIME_PREFIX];
        let mut end = vec![DEDUP_TIME_PREFIX];
        end.extend_from_slice(&before_ms.to_be_bytes());
        let mut doomed = Vec::new();
        self.store
            .engine
            .scan(Cf::Dedup, &start, Some(&end), ReadTier::Any, &mut |k, _| {
                doomed.push(k.to_vec());
                true
            })?;
        for k in &doomed {
            if let Some(ids) = k.get(9..25) {
                let mut rk = vec![DEDUP_RECORD_PREFIX];
                rk.extend_from_slice(ids);
                self.batch.delete(Cf::Dedup, rk);
            }
            self.batch.delete(Cf::Dedup, k.clone());
        }
        Ok(Outcome::Swept(doomed.len() as u64))
    }
}

fn record_of(kind: u32, namespace: String, key: Vec<u8>, now_ms: u64, o: &Outcome) -> DedupRecord {
    let mut rec = DedupRecord {
        kind,
        namespace,
        key,
        applied_at_ms: now_ms,
        ..Default::default()
    };
    match o {
        Outcome::Put { revision } => rec.revision = *revision,
        Outcome::Delete { existed, revision } => {
            rec.revision = *revision;
            rec.flag = *existed;
        }
        Outcome::Cas {
            succeeded,
            revision,
            current,
        } => {
            rec.revision = *revision;
            rec.flag = *succeeded;
            if let Some(c) = current {
                rec.has_current = true;
                rec.current_value = c.value.to_vec();
                rec.current_revision = c.revision;
            }
        }
        Outcome::Committed { .. } | Outcome::OneShotDone { .. } => {
            // Transaction outcomes are stored whole.
            rec.outcome = bincode::serialize(o).unwrap_or_default();
        }
        Outcome::Created(_) | Outcome::Dropped | Outcome::Swept(_) => {}
    }
    rec
}

fn outcome_of(rec: &DedupRecord) -> Outcome {
    match rec.kind {
        KIND_PUT => Outcome::Put {
            revision: rec.revision,
        },
        KIND_DELETE => Outcome::Delete {
            existed: rec.flag,
            revision: rec.revision,
        },
        KIND_COMMIT | KIND_ONESHOT => bincode::deserialize(&rec.outcome)
            .expect("a transaction's dedup record holds the outcome this build encoded"),
        _ => Outcome::Cas {
            succeeded: rec.flag,
            revision: rec.revision,
            current: rec.has_current.then(|| Current {
                value: Bytes::from(rec.current_value.clone()),
                revision: rec.current_revision,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryEngine;
    use crate::storage::rocksdb::RocksEngine;
    use proptest::prelude::*;

    /// Applies `commands` at the revisions after the newest one, at time 1000 ms.
    fn apply(store: &Store, commands: Vec<Command>) -> Vec<Result<Outcome, ApplyError>> {
        let base = store.newest_revision();
        apply_at(store, (base + 1..).zip(commands).collect())
    }

    /// Applies `commands` as one group, each at the revision given.
    fn apply_at(
        store: &Store,
        commands: Vec<(Revision, Command)>,
    ) -> Vec<Result<Outcome, ApplyError>> {
        let stamped = commands
            .into_iter()
            .map(|(revision, command)| Stamped {
                command,
                revision,
                at_ms: 1_000,
            })
            .collect();
        let group = store.apply_group(stamped);
        store.engine.write(group.batch, true).expect("write");
        store.install(group.delta);
        group.results
    }

    fn put(key: &str, value: &str) -> Command {
        Command::Put {
            ns: DEFAULT_NAMESPACE.into(),
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            request: None,
        }
    }

    /// Key `k` of the default namespace, read at each revision of `revisions`, has the value
    /// written at that revision (its number).
    fn reads_what_each_revision_wrote(store: &Store, revisions: std::ops::RangeInclusive<u64>) {
        let ns = ns_id(store);
        for at in revisions {
            let got = store.get(ns, b"k", Some(at), ReadTier::Any).expect("get");
            assert_eq!(
                got.map(|i| i.value),
                Some(Bytes::from(at.to_string())),
                "at {at}"
            );
        }
    }

    /// A store on a memory engine keeping `retain` revisions of history.
    fn with_history(retain: u64) -> Store {
        let options = StoreOptions {
            retain_revisions: retain,
            ..Default::default()
        };
        Store::open(Arc::new(MemoryEngine::new()), options).expect("open")
    }

    fn ns_id(store: &Store) -> NamespaceId {
        store
            .namespace(DEFAULT_NAMESPACE)
            .expect("default exists")
            .id
    }

    /// Every remembered list is what the engine holds outside its gap, within the length
    /// limit, and the count of remembered versions is right.
    fn remembered_matches_engine(store: &Store) -> Result<(), String> {
        let remembered = store.remembered().keys.clone();
        let counted: usize = remembered.values().map(|k| k.versions.len()).sum();
        if counted != store.remembered().versions {
            return Err(format!(
                "{counted} versions remembered, counted as {}",
                store.remembered().versions
            ));
        }
        for ((ns, k), known) in remembered {
            let (live, all, _) = store
                .newest_live(ns, &k, usize::MAX)
                .map_err(|e| e.to_string())?;
            let listed: VecDeque<Version> = live
                .into_iter()
                .filter(|(r, _)| known.gap.is_none_or(|(from, to)| *r < from || *r >= to))
                .collect();
            if !all || known.versions != listed || known.versions.len() > MAX_LISTED {
                return Err(format!(
                    "key {k:?}: remembered {known:?}, the engine has {listed:?} outside the gap"
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn commands_in_one_group_see_each_other() {
        let store =
            Store::open(Arc::new(MemoryEngine::new()), StoreOptions::default()).expect("open");
        let results = apply(
            &store,
            vec![
                put("k", "1"),
                Command::Cas {
                    ns: DEFAULT_NAMESPACE.into(),
                    key: Bytes::from_static(b"k"),
                    condition: Condition::ValueEquals(Bytes::from_static(b"1")),
                    value: Some(Bytes::from_static(b"2")),
                    request: None,
                },
                Command::Delete {
                    ns: DEFAULT_NAMESPACE.into(),
                    key: Bytes::from_static(b"k"),
                    request: None,
                },
            ],
        );
        assert!(matches!(results[0], Ok(Outcome::Put { revision: 1 })));
        assert!(matches!(
            results[1],
            Ok(Outcome::Cas {
                succeeded: true,
                revision: 2,
                ..
            })
        ));
        assert!(matches!(
            results[2],
            Ok(Outcome::Delete {
                existed: true,
                revision: 3
            })
        ));
        assert_eq!(
            store
                .get(ns_id(&store), b"k", None, ReadTier::Any)
                .expect("get"),
            None
        );
        assert_eq!(store.namespace(DEFAULT_NAMESPACE).expect("ns").revision, 3);
    }

    #[test]
    fn a_retried_request_applies_once_and_returns_the_first_outcome() {
        let store =
            Store::open(Arc::new(MemoryEngine::new()), StoreOptions::default()).expect("open");
        let r = Some(RequestKey {
            client_id: 9,
            seq: 1,
        });
        let cmd = Command::Put {
            ns: DEFAULT_NAMESPACE.into(),
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
            request: r,
        };
        let first = apply(&store, vec![cmd.clone(), cmd.clone()]);
        let again = apply(&store, vec![cmd]);
        assert!(matches!(first[0], Ok(Outcome::Put { revision: 1 })));
        assert!(matches!(first[1], Ok(Outcome::Put { revision: 1 })));
        assert!(matches!(again[0], Ok(Outcome::Put { revision: 1 })));
        assert_eq!(store.namespace(DEFAULT_NAMESPACE).expect("ns").revision, 1);
        let other = apply(&store, vec![put("other", "v")]);
        assert!(matches!(other[0], Ok(Outcome::Put { revision: 2 })));
        let reused = apply(
            &store,
            vec![Command::Delete {
                ns: DEFAULT_NAMESPACE.into(),
                key: Bytes::from_static(b"k"),
                request: r,
            }],
        );
        assert!(matches!(
            reused[0],
            Err(ApplyError::RequestIdReused {
                client_id: 9,
                seq: 1
            })
        ));
        // The sweep forgets records applied before the cut-off.
        let swept = apply(&store, vec![Command::SweepDedup { before_ms: 1_001 }]);
        assert!(matches!(swept[0], Ok(Outcome::Swept(1))));
    }

    #[test]
    fn retained_history_is_readable_and_collected_behind_the_window() {
        let store = with_history(2);
        let ns = ns_id(&store);
        let at = |r| {
            store
                .get(ns, b"k", Some(r), ReadTier::Any)
                .expect("get")
                .map(|i| i.value)
        };
        for v in ["a", "b", "c", "d"] {
            apply(&store, vec![put("k", v)]);
        }
        // The window of revision 4 is [2, 4]; revision 1, the newest version below it, stays.
        assert_eq!(at(1), Some(Bytes::from_static(b"a")));
        apply(&store, vec![put("k", "e")]);
        assert_eq!(at(5), Some(Bytes::from_static(b"e")));
        assert_eq!(at(4), Some(Bytes::from_static(b"d")));
        assert_eq!(at(3), Some(Bytes::from_static(b"c")));
        assert_eq!(at(2), Some(Bytes::from_static(b"b")));
        // Revision 1 is behind the newest version below the window of revision 5: collected.
        assert_eq!(at(1), None);
    }

    /// Without history, a store that once kept some reads every version of a key, so that a
    /// delete leaves none behind to come back: whether the record of it is there, missing
    /// (versions from before it was kept) or stale (versions written by a binary that does not
    /// keep it, past its stamp). A store that never kept any reads only the newest.
    #[test]
    fn without_history_a_delete_removes_versions_written_under_a_wider_one() {
        let delete = Command::Delete {
            ns: DEFAULT_NAMESPACE.into(),
            key: Bytes::from_static(b"k"),
            request: None,
        };
        let wide = StoreOptions {
            retain_revisions: 10,
            ..Default::default()
        };
        for record in ["kept", "missing", "stale"] {
            let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
            let store = Store::open(engine.clone(), StoreOptions::default()).expect("open");
            assert!(store.single_version());
            apply(&store, vec![put("k", "a")]);
            let narrow_record = engine.get(Cf::Meta, keys::WIDEST_RETAIN).expect("get");
            drop(store);
            let store = Store::open(engine.clone(), wide).expect("open");
            for v in ["b", "c"] {
                apply(&store, vec![put("k", v)]);
            }
            drop(store);
            let mut b = WriteBatch::new();
            match record {
                "missing" => b.delete(Cf::Meta, keys::WIDEST_RETAIN.to_vec()),
                "stale" => b.put(
                    Cf::Meta,
                    keys::WIDEST_RETAIN.to_vec(),
                    narrow_record.clone().expect("recorded"),
                ),
                _ => {}
            }
            engine.write(b, true).expect("write");
            let store = Store::open(engine, StoreOptions::default()).expect("reopen");
            assert!(!store.single_version(), "record {record}");
            apply(&store, vec![delete.clone()]);
            let ns = ns_id(&store);
            for at in [None, Some(2), Some(3)] {
                let found = store.get(ns, b"k", at, ReadTier::Any).expect("get");
                assert_eq!(found, None, "record {record}, at {at:?}");
            }
        }
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let store = Store::open(engine.clone(), StoreOptions::default()).expect("open");
        apply(&store, vec![put("k", "a"), put("k", "b")]);
        drop(store);
        let store = Store::open(engine, StoreOptions::default()).expect("reopen");
        assert!(store.single_version(), "a store that never kept history");
    }

    /// A store whose state is replaced wholesale (a snapshot installed) forgets the live
    /// versions it remembered: a write then reads the key's versions from the new state, and a
    /// delete without history leaves none of them behind.
    #[test]
    fn replaced_state_forgets_the_versions_it_remembered() {
        let other =
            Store::open(Arc::new(MemoryEngine::new()), StoreOptions::default()).expect("open");
        for v in ["x", "y", "z"] {
            apply(&other, vec![put("k", v)]);
        }
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let store = Store::open(engine.clone(), StoreOptions::default()).expect("open");
        apply(&store, vec![put("k", "a")]);
        // Installed as the state machine installs a snapshot.
        let mut b = WriteBatch::new();
        for cf in Cf::STATE_MACHINE {
            b.delete_range(cf, Vec::new(), vec![0xFF; 64]);
        }
        for (cf, k, v) in other.engine().dump(&Cf::STATE_MACHINE).expect("dump") {
            b.put(cf, k, v);
        }
        engine.write(b, true).expect("install");
        store.reload().expect("reload");
        let ns = ns_id(&store);
        assert_eq!(
            store
                .get(ns, b"k", None, ReadTier::Any)
                .expect("get")
                .map(|i| i.value),
            Some(Bytes::from_static(b"z"))
        );
        let delete = Command::Delete {
            ns: DEFAULT_NAMESPACE.into(),
            key: Bytes::from_static(b"k"),
            request: None,
        };
        apply(&store, vec![delete]);
        assert_eq!(store.get(ns, b"k", None, ReadTier::Any).expect("get"), None);
    }

    /// The memory of live versions counts what it holds and starts again empty past its
    /// limit, rather than growing with every key's old window.
    #[test]
    fn remembered_versions_stay_within_the_limit() {
        let list = |n: u64| Known {
            versions: (1..=n).map(|r| (r, false)).collect(),
            gap: None,
        };
        let slot = |k: &'static str| (0, Bytes::from_static(k.as_bytes()));
        let mut m = Remembered::default();
        m.give(
            HashMap::from([(slot("a"), list(3)), (slot("b"), list(4))]),
            10,
        );
        assert_eq!((m.keys.len(), m.versions), (2, 7));
        assert_eq!(m.take(&slot("a")), Some(list(3)));
        assert_eq!(m.versions, 4);
        // 4 + 5 fits; 9 + 2 does not: it starts again with just the new list.
        m.give(HashMap::from([(slot("a"), list(5))]), 10);
        assert_eq!(m.versions, 9);
        m.give(HashMap::from([(slot("c"), list(2))]), 10);
        assert_eq!((m.keys.len(), m.versions), (1, 2));
        assert_eq!(m.take(&slot("b")), None);
    }

    /// A key whose list lost its middle to the gap reads the gap's versions below each write's
    /// horizon, collects as if it had remembered them, and keeps reading history right.
    #[test]
    fn a_gap_is_read_as_the_horizon_reaches_it() {
        let store = with_history(5);
        let ns = ns_id(&store);
        let slot = (ns, Bytes::from_static(b"k"));
        let known = |store: &Store| store.remembered().keys.get(&slot).cloned();
        let listed = |rs: &[u64]| rs.iter().map(|r| (*r, false)).collect::<VecDeque<_>>();
        for v in 1..=6 {
            apply(&store, vec![put("k", &v.to_string())]);
            remembered_matches_engine(&store).expect("remembered");
        }
        // Six versions, within the window: the oldest and the newest stay listed.
        assert_eq!(
            known(&store),
            Some(Known {
                versions: listed(&[1, 6]),
                gap: Some((2, 6))
            })
        );
        // Horizon 2: the gap starts there, nothing below it to read.
        apply(&store, vec![put("k", "7")]);
        assert_eq!(
            known(&store),
            Some(Known {
                versions: listed(&[1, 6, 7]),
                gap: Some((2, 6))
            })
        );
        // One group: at horizon 3, version 2 is read from the gap (1 is collected, 2 is the
        // newest below the horizon); at horizon 4, version 3 (2 is collected). The group
        // leaves [3, 6, 7, 8, 9] with the gap [4, 6): too many, so [3, 9].
        apply(&store, vec![put("k", "8"), put("k", "9")]);
        assert_eq!(
            known(&store),
            Some(Known {
                versions: listed(&[3, 9]),
                gap: Some((4, 9))
            })
        );
        remembered_matches_engine(&store).expect("remembered");
        reads_what_each_revision_wrote(&store, 3..=9);
        for at in 1..=2 {
            let got = store.get(ns, b"k", Some(at), ReadTier::Any).expect("get");
            assert_eq!(got, None, "version {at} was collected");
        }
    }

    /// Lowering the history across a restart leaves the versions kept under the wider one
    /// alone (below the live ones), and what the store remembers and collects stays true to
    /// the engine, for a key read afresh with a gap.
    #[test]
    fn a_narrower_history_after_a_restart_collects_only_live_versions() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let with = |retain| StoreOptions {
            retain_revisions: retain,
            ..Default::default()
        };
        let store = Store::open(engine.clone(), with(10)).expect("open");
        for v in 1..=10 {
            apply(&store, vec![put("k", &v.to_string())]);
        }
        drop(store);
        let store = Store::open(engine.clone(), with(2)).expect("reopen");
        let ns = ns_id(&store);
        let stored = |store: &Store| {
            let mut n = 0;
            store
                .scan_versions(ns, &Bytes::from_static(b"k"), None, &mut |_| {
                    n += 1;
                    true
                })
                .expect("scan");
            n
        };
        // Revision 11, horizon 9: the live versions are 10 down to 7 (the newest below 10's
        // floor of 8), read afresh as the 2 newest and then 8 down; 7 is collected, 8 stays as
        // the newest below the horizon. 1..=6, kept under the wider history, stay. The lists
        // of at most 3 versions gap from here on.
        for v in 11..=14 {
            apply(&store, vec![put("k", &v.to_string())]);
            remembered_matches_engine(&store).expect("remembered");
        }
        // 14's window is [12, 14], plus 11 below it; 1..=6 stay.
        assert_eq!(stored(&store), 6 + 4);
        reads_what_each_revision_wrote(&store, 11..=14);
        drop(store);
        // Read afresh again with a write far ahead: every live version is read and all but
        // the newest below the horizon collected.
        let store = Store::open(engine, with(2)).expect("reopen");
        apply_at(&store, vec![(30, put("k", "30"))]);
        remembered_matches_engine(&store).expect("remembered");
        assert_eq!(stored(&store), 6 + 2);
        let got = store.get(ns, b"k", Some(29), ReadTier::Any).expect("get");
        assert_eq!(got.map(|i| i.value), Some(Bytes::from_static(b"14")));
    }

    /// A list longer than [`MAX_LISTED`] keeps its oldest half and its newest version, and
    /// the versions between join the gap, merged with the one it had.
    #[test]
    fn a_long_list_keeps_its_ends_and_gaps_the_middle() {
        let known = |rs: &[u64], gap| Known {
            versions: rs.iter().map(|r| (*r, false)).collect(),
            gap,
        };
        // MAX_LISTED is 3 in tests: the oldest one (3 / 2) and the newest stay.
        let mut k = known(&[1, 4, 6, 9], None);
        k.bound();
        assert_eq!(k, known(&[1, 9], Some((2, 9))));
        let mut k = known(&[1, 4, 20, 21], Some((5, 20)));
        k.bound();
        assert_eq!(k, known(&[1, 21], Some((2, 21))));
        // A gap below every listed version stays where it starts.
        let mut k = known(&[10, 11, 12, 13], Some((2, 10)));
        k.bound();
        assert_eq!(k, known(&[13], Some((2, 13))));
        let mut k = known(&[1, 2, 3], None);
        k.bound();
        assert_eq!(k, known(&[1, 2, 3], None));
    }

    /// A command that writes a key twice (a one-shot transaction with two operations on it)
    /// writes one version: the second replaces the first, with or without history.
    #[test]
    fn writing_a_key_twice_at_one_revision_leaves_the_second_write() {
        let key = |k: &str| Bytes::copy_from_slice(k.as_bytes());
        let delete = |k: &str| Command::Delete {
            ns: DEFAULT_NAMESPACE.into(),
            key: key(k),
            request: None,
        };
        // No history: a put then a delete of the key leaves it absent.
        let store = Store::open(
            Arc::new(MemoryEngine::new()),
            StoreOptions {
                retain_revisions: 0,
                ..Default::default()
            },
        )
        .expect("open");
        let ns = ns_id(&store);
        apply_at(&store, vec![(1, put("k", "v")), (1, delete("k"))]);
        assert_eq!(store.get(ns, b"k", None, ReadTier::Any).expect("get"), None);

        // History of 2: two puts at revision 1, then a put far past the window in the same
        // group keep revision 1's second value as the newest version below the window.
        let store = Store::open(
            Arc::new(MemoryEngine::new()),
            StoreOptions {
                retain_revisions: 2,
                ..Default::default()
            },
        )
        .expect("open");
        let ns = ns_id(&store);
        apply_at(
            &store,
            vec![(1, put("k", "a")), (1, put("k", "b")), (10, put("k", "c"))],
        );
        let at = |r| {
            store
                .get(ns, b"k", Some(r), ReadTier::Any)
                .expect("get")
                .map(|i| i.value)
        };
        assert_eq!(at(9), Some(Bytes::from_static(b"b")));
        assert_eq!(at(10), Some(Bytes::from_static(b"c")));
    }

    #[test]
    fn dropping_a_namespace_removes_its_keys_and_ids_are_not_reused() {
        let store =
            Store::open(Arc::new(MemoryEngine::new()), StoreOptions::default()).expect("open");
        let spec = NamespaceSpec {
            name: "t".into(),
            replicas: 1,
            ..Default::default()
        };
        let created = apply(
            &store,
            vec![Command::CreateNamespace { spec: spec.clone() }],
        );
        let Ok(Outcome::Created(meta)) = &created[0] else {
            panic!("created: {created:?}")
        };
        let ns = meta.id;
        apply(
            &store,
            vec![Command::Put {
                ns: "t".into(),
                key: Bytes::from_static(b"k"),
                value: Bytes::new(),
                request: None,
            }],
        );
        apply(&store, vec![Command::DropNamespace { name: "t".into() }]);
        assert!(store.namespace("t").is_none());
        assert_eq!(store.get(ns, b"k", None, ReadTier::Any).expect("get"), None);
        let again = apply(&store, vec![Command::CreateNamespace { spec }]);
        let Ok(Outcome::Created(meta2)) = &again[0] else {
            panic!("created: {again:?}")
        };
        assert!(meta2.id > ns);
        let refused = apply(
            &store,
            vec![Command::DropNamespace {
                name: DEFAULT_NAMESPACE.into(),
            }],
        );
        assert!(matches!(refused[0], Err(ApplyError::DefaultNamespace)));
    }

    /// A step of the model test.
    #[derive(Clone, Debug)]
    enum Step {
        Put(u8, Vec<u8>),
        Delete(u8),
        Scan(u8, u8, usize),
        Reopen,
        /// Puts (`Some`) and deletes (`None`) applied as one group.
        Group(Vec<(u8, Option<Vec<u8>>)>),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..16, proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(k, v)| Step::Put(k, v)),
            2 => (0u8..16).prop_map(Step::Delete),
            2 => (0u8..16, 0u8..17, 1usize..6).prop_map(|(a, b, l)| Step::Scan(a, b, l)),
            1 => Just(Step::Reopen),
            2 => proptest::collection::vec((0u8..16, proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4))), 1..6).prop_map(Step::Group),
        ]
    }

    fn key_of(k: u8) -> Vec<u8> {
        // Keys with zero bytes and shared prefixes exercise the escaping.
        match k % 4 {
            0 => vec![k],
            1 => vec![k, 0],
            2 => vec![k / 4, 0, k],
            _ => vec![k / 4],
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// The store on RocksDB, reopened at random points, behaves as a `BTreeMap`.
        #[test]
        fn store_matches_a_btreemap_model(steps in proptest::collection::vec(step(), 1..60), retain in 0u64..4) {
            let dir = tempfile::tempdir().expect("tempdir");
            let options = StoreOptions { retain_revisions: retain, ..Default::default() };
            let open = || {
                let engine = RocksEngine::open(dir.path()).expect("open engine");
                Store::open(Arc::new(engine), options).expect("open store")
            };
            // The model's state after each revision, to check reads at retained revisions.
            let mut history: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new()];
            let mut store = open();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let ns = ns_id(&store);
            for s in steps {
                match s {
                    Step::Put(k, v) => {
                        let key = key_of(k);
                        apply(&store, vec![Command::Put {
                            ns: DEFAULT_NAMESPACE.into(), key: key.clone().into(), value: v.clone().into(), request: None,
                        }]);
                        model.insert(key, v);
                        history.push(model.clone());
                    }
                    Step::Delete(k) => {
                        let key = key_of(k);
                        let r = apply(&store, vec![Command::Delete { ns: DEFAULT_NAMESPACE.into(), key: key.clone().into(), request: None }]);
                        let existed = model.remove(&key).is_some();
                        history.push(model.clone());
                        let got = matches!(r[0], Ok(Outcome::Delete { existed: e, .. }) if e == existed);
                        prop_assert!(got, "delete reported the wrong existence: {:?}", r[0]);
                    }
                    Step::Scan(a, b, limit) => {
                        let (start, end) = (key_of(a), if b == 16 { Vec::new() } else { key_of(b) });
                        let page = store.scan(ns, (&start, &end), PageLimits { limit, max_bytes: usize::MAX }, None, ReadTier::Any).expect("scan");
                        let expected: Vec<(Vec<u8>, Vec<u8>)> = model
                            .iter()
                            .filter(|(k, _)| **k >= start && (end.is_empty() || **k < end))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        let got: Vec<(Vec<u8>, Vec<u8>)> = page.items.iter().map(|i| (i.key.to_vec(), i.value.to_vec())).collect();
                        prop_assert_eq!(&got[..], &expected[..expected.len().min(limit)]);
                        prop_assert_eq!(page.more, expected.len() > limit);
                    }
                    Step::Reopen => {
                        drop(store);
                        store = open();
                    }
                    Step::Group(writes) => {
                        let commands = writes.iter().map(|(k, v)| match v {
                            Some(v) => Command::Put { ns: DEFAULT_NAMESPACE.into(), key: key_of(*k).into(), value: v.clone().into(), request: None },
                            None => Command::Delete { ns: DEFAULT_NAMESPACE.into(), key: key_of(*k).into(), request: None },
                        }).collect();
                        let results = apply(&store, commands);
                        for ((k, v), r) in writes.into_iter().zip(results) {
                            let key = key_of(k);
                            match v {
                                Some(v) => { model.insert(key, v); }
                                None => {
                                    let existed = model.remove(&key).is_some();
                                    let got = matches!(r, Ok(Outcome::Delete { existed: e, .. }) if e == existed);
                                    prop_assert!(got, "delete in a group reported the wrong existence: {:?}", r);
                                }
                            }
                            history.push(model.clone());
                        }
                    }
                }
                for (k, v) in &model {
                    let got = store.get(ns, k, None, ReadTier::Any).expect("get").map(|i| i.value.to_vec());
                    prop_assert_eq!(got.as_ref(), Some(v));
                }
                // The live versions the store remembers are the ones the engine holds.
                if let Err(e) = remembered_matches_engine(&store) {
                    prop_assert!(false, "{}", e);
                }
                // Collection keeps up: a key holds at most the versions of one window and the
                // newest one below it.
                for k in (0u8..16).map(key_of) {
                    let mut stored = 0u64;
                    store.engine.scan(Cf::Data, &keys::key_prefix(ns, &k), Some(&keys::after_key(ns, &k)), ReadTier::Any, &mut |_, _| {
                        stored += 1;
                        true
                    }).expect("scan");
                    prop_assert!(stored <= retain + 2, "key {:?} holds {} versions with {} retained", k, stored, retain);
                }
                // Every revision inside the retention window reads as it was.
                let newest = history.len() as u64 - 1;
                for at in newest.saturating_sub(retain)..=newest {
                    for k in (0u8..16).map(key_of) {
                        let got = store.get(ns, &k, Some(at), ReadTier::Any).expect("get").map(|i| i.value.to_vec());
                        prop_assert_eq!(got.as_ref(), history[at as usize].get(&k), "key {:?} at revision {}", k, at);
                    }
                }
            }
        }
    }
}
