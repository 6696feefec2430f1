//! The applier: the one thread that changes a replica's quorum data.
//!
//! Coordinated writes, updates from other origins, merges (quorum writes, write-backs,
//! repairs) and tombstone collection all arrive as [`Job`]s. The thread takes every job
//! queued (up to a bound), works them out in memory in arrival order — reading each key once
//! and keeping it in an overlay, so jobs of one group see each other — then writes the group
//! as one synced RocksDB batch (data, the outgoing log, the applied vector), and only then
//! answers the jobs and publishes the new state. So a read never sees a change that could be
//! lost, every change to a key is a read-modify-write without races, and concurrent writes
//! share an fsync.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use dialkv_consistency::clock::{Dot, Hlc, ReplicaId, VectorClock};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use super::delivery::CausalBuffer;
use super::digest::{self, Digests};
use super::object::{self, Context, Object, Policy, Stamp, Val};
use crate::storage::keys::NamespaceId;
use crate::storage::{Cf, Engine, ReadTier, StorageError, WriteBatch};

/// One change in an origin's stream: the state of a key after a write coordinated there.
/// Updates are state-based (the whole object), so applying one twice, or after a repair
/// brought something newer, changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Position in the origin's stream (from 1, increasing).
    pub seq: u64,
    /// The position of the origin's update before this one (`seq - 1` unless the origin
    /// skipped positions it found already used).
    pub prev: u64,
    /// What must be applied first (empty for writes with no causal promise).
    pub deps: VectorClock,
    /// The namespace.
    pub ns: NamespaceId,
    /// The key.
    pub key: Vec<u8>,
    /// The key's versions at the origin right after the write.
    pub object: Object,
    /// The namespace's conflict policy.
    pub policy: Policy,
}

/// A write coordinated here.
#[derive(Clone, Debug)]
pub struct LocalWrite {
    /// The namespace.
    pub ns: NamespaceId,
    /// The key.
    pub key: Vec<u8>,
    /// The value; `None` deletes.
    pub value: Option<Vec<u8>>,
    /// The client's causal context: the versions this write supersedes. `None`: under
    /// last-writer-wins, or with `base`, everything known here; under siblings, nothing
    /// (a blind write is concurrent with what is there).
    pub context: Option<Context>,
    /// Versions learned from a quorum first (ABD's first phase), merged before writing and
    /// superseded by the write.
    pub base: Option<Object>,
    /// The conflict policy.
    pub policy: Policy,
    /// Whether the write depends on everything applied here (causal writes, and sessions with
    /// monotonic writes or writes-follow-reads).
    pub causal: bool,
}

/// What a coordinated write produced.
#[derive(Clone, Debug)]
pub struct Written {
    /// The key's versions after the write.
    pub object: Object,
    /// The new version's stamp.
    pub stamp: Stamp,
    /// Its position in this replica's stream.
    pub seq: u64,
    /// Whether the key had a visible value before.
    pub existed: bool,
}

/// A request to the applier.
#[derive(Debug)]
pub enum Job {
    /// Coordinate a write.
    Write(LocalWrite, oneshot::Sender<Result<Written, String>>),
    /// Updates of another origin's stream; answered with the applied vector.
    Push {
        origin: ReplicaId,
        updates: Vec<Update>,
        reply: oneshot::Sender<Result<VectorClock, String>>,
    },
    /// Merge versions into a key's; answered with the result.
    Merge {
        items: Vec<(NamespaceId, Vec<u8>, Object, Policy)>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Raise the applied vector after a full anti-entropy pass with a peer whose applied
    /// vector was `vv` before the pass.
    Raise {
        vv: VectorClock,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A peer holds this replica's own stream through `to`, past this replica's position
    /// (its data was restored from an older copy): continue after it, never reusing a
    /// position, and count the positions in between as not held until a repair brings them.
    SkipAhead {
        to: u64,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Every current member has been through a complete anti-entropy pass since this
    /// replica skipped ahead: what it lost is nowhere to be had, so it counts its own stream
    /// as applied again.
    ClearGap,
    /// Drop this replica's outgoing log through `upto` (every peer has it).
    Trim { upto: u64 },
    /// Forget a dropped namespace (its data went with the drop; its digests and tombstones
    /// go now, and updates still arriving for it are ignored).
    Forget { ns: NamespaceId },
    /// Collect tombstones every replica has applied (`replicas` holds every other replica's
    /// applied vector) and older than `before_ns` (wall clock).
    Collect {
        replicas: Vec<VectorClock>,
        before_ns: u64,
    },
}

/// The durable state of the protocol at a replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Persisted {
    seq: u64,
    vv: VectorClock,
    trimmed: u64,
    /// Own positions through here were skipped (used before a restore from an older copy)
    /// and are not held here: until a repair brings them, this replica's applied vector does
    /// not claim its own later writes. 0: no gap.
    gap_until: u64,
}

/// The persisted state before `gap_until` existed.
#[derive(Deserialize)]
struct PersistedV1 {
    seq: u64,
    vv: VectorClock,
    trimmed: u64,
}

/// The state the applier publishes after each group.
#[derive(Debug, Default)]
pub struct Published {
    /// This replica's last stream position.
    pub seq: u64,
    /// Applied per origin (this replica's own entry is `seq`).
    pub vv: VectorClock,
    /// The outgoing log is dropped through here.
    pub trimmed: u64,
    /// Range digests of every quorum namespace, kept current by the applier in place (one
    /// copy, changed under the lock once per group).
    pub digests: Digests,
    /// Updates received and not yet deliverable.
    pub pending: usize,
    /// Deleted keys whose tombstones are not yet collected.
    pub tombstones: usize,
    /// Whether this replica skipped ahead in its own stream and lacks what it skipped.
    pub gap: bool,
}

/// Storage key of the persisted state.
const STATE_KEY: &[u8] = &[0x00];
/// Prefix of the outgoing log's entries.
const LOG_PREFIX: u8 = 0x01;

/// The storage key of log entry `seq`.
pub fn log_key(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(LOG_PREFIX);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The storage key of `key` of namespace `ns`.
pub fn data_key(ns: NamespaceId, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&ns.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Reads the stored versions of a key.
pub fn read(
    engine: &dyn Engine,
    ns: NamespaceId,
    key: &[u8],
    tier: ReadTier,
) -> Result<Option<Object>, StorageError> {
    let k = data_key(ns, key);
    let mut found = None;
    // A point read through `scan`, so that it can honour the memory-only tier.
    let mut end = k.clone();
    end.push(0);
    engine.scan(Cf::Quorum, &k, Some(&end), tier, &mut |_, v| {
        found = Some(v.to_vec());
        false
    })?;
    found
        .map(|b| {
            object::decode(&b).ok_or_else(|| StorageError::Corrupt {
                cf: Cf::Quorum,
                reason: "undecodable object".into(),
            })
        })
        .transpose()
}

/// Reads the outgoing log from `from` on: at most `max` entries or about `max_bytes`.
pub fn read_log(
    engine: &dyn Engine,
    from: u64,
    max: usize,
    max_bytes: usize,
) -> Result<Vec<Update>, StorageError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut bad = false;
    engine.scan(
        Cf::QuorumLog,
        &log_key(from),
        Some(&[LOG_PREFIX + 1]),
        ReadTier::Any,
        &mut |_, v| match bincode::deserialize::<Update>(v) {
            Ok(u) => {
                bytes += v.len();
                out.push(u);
                out.len() < max && bytes < max_bytes
            }
            Err(_) => {
                bad = true;
                false
            }
        },
    )?;
    if bad {
        return Err(StorageError::Corrupt {
            cf: Cf::QuorumLog,
            reason: "undecodable log entry".into(),
        });
    }
    Ok(out)
}

/// The wall clock in nanoseconds since the Unix epoch (0 before it).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct Slot {
    /// The item digest of what is stored (before this group).
    stored: Option<u64>,
    /// The current state: `None` when absent (or collected).
    object: Option<Object>,
    dirty: bool,
    /// The length of the stored bytes (before this group).
    size: usize,
}

/// What the applier wrote last for recently written keys: the item digest and the decoded
/// versions, exactly as stored. The applier writes all quorum data but one change — a
/// namespace drop applied through Raft deletes the namespace's range — so while a key's
/// namespace exists, what the applier wrote is what a read of the engine would return, and
/// a key written again (a hot key at its coordinator, every update of it pushed to the
/// others) is loaded without a memtable lookup, a decode and a digest of the stored bytes.
/// An entry is used only while the catalog still holds its namespace (asked once per
/// namespace per group); a dropped namespace's entries are forgotten. An entry is taken out
/// when its key is loaded and put back only once its group is written: a group that fails
/// leaves nothing behind. Bounded by entries and bytes; past either bound it is emptied and
/// fills again.
#[derive(Default)]
struct Recent {
    map: HashMap<Key, (Option<u64>, Option<Object>, usize)>,
    bytes: usize,
}

impl Recent {
    /// The most keys remembered.
    const MAX_KEYS: usize = 65_536;
    /// The most bytes (keys and encoded versions) remembered. Decoded versions take more
    /// room than encoded ones (a map per version, an allocation per value): a few times this
    /// at worst, for many small siblings.
    const MAX_BYTES: usize = 16 << 20;

    fn take(&mut self, key: &Key) -> Option<(Option<u64>, Option<Object>, usize)> {
        let (stored, object, size) = self.map.remove(key)?;
        self.bytes -= size;
        Some((stored, object, size - key.1.len()))
    }

    /// Remembers what was just written for `key`; `encoded` is the stored bytes' length.
    fn put(&mut self, key: Key, stored: Option<u64>, object: Option<Object>, encoded: usize) {
        let size = key.1.len() + encoded;
        if self.map.len() >= Self::MAX_KEYS || self.bytes + size > Self::MAX_BYTES {
            self.map.clear();
            self.bytes = 0;
        }
        if size > Self::MAX_BYTES {
            return;
        }
        if let Some((_, _, old)) = self.map.insert(key, (stored, object, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
    }

    fn forget(&mut self, ns: NamespaceId) {
        self.map.retain(|(n, _), _| *n != ns);
        self.bytes = self.map.values().map(|(_, _, size)| size).sum();
    }
}

/// The applier thread's state.
pub struct Applier {
    me: ReplicaId,
    engine: Arc<dyn Engine>,
    state: Persisted,
    hlc: Hlc,
    buffer: CausalBuffer<Update>,
    /// Keys whose versions are all deletions, with the newest deletion's wall time.
    tombstones: BTreeMap<(NamespaceId, Vec<u8>), u64>,
    /// Namespaces dropped since the start: what still arrives for them is ignored.
    dropped: std::collections::BTreeSet<NamespaceId>,
    /// Where the next collection pass starts.
    collect_from: Option<(NamespaceId, Vec<u8>)>,
    /// What was written last for recently written keys.
    recent: Recent,
    /// Whether a namespace was dropped (through Raft, outside the applier).
    dropped_elsewhere: Box<dyn Fn(NamespaceId) -> bool + Send>,
    /// The answers of `dropped_elsewhere` in the current group.
    checked: HashMap<NamespaceId, bool>,
    published: Arc<Mutex<Published>>,
    applied: watch::Sender<VectorClock>,
}

/// The largest counter (stream position, dot) accepted from a peer or a client: far from
/// overflow.
pub const MAX_COUNTER: u64 = 1 << 62;
/// How far ahead of this replica's clock a version's stamp may be.
pub const MAX_AHEAD_NS: u64 = 3_600_000_000_000;

/// A key of a namespace.
type Key = (NamespaceId, Vec<u8>);

/// Answers a job once its group is written (or failed).
type Reply = Box<dyn FnOnce(Result<(), String>)>;

/// The most jobs worked out in one group.
const MAX_GROUP: usize = 256;

impl Applier {
    /// Recovers the state from storage (the persisted vector and log position, and the
    /// digests and tombstones from a scan of the data).
    pub fn recover(
        me: ReplicaId,
        engine: Arc<dyn Engine>,
        published: Arc<Mutex<Published>>,
        applied: watch::Sender<VectorClock>,
    ) -> Result<Self, StorageError> {
        let state = match engine.get(Cf::QuorumLog, STATE_KEY)? {
            Some(b) => match bincode::deserialize::<Persisted>(&b) {
                Ok(s) => s,
                Err(_) => bincode::deserialize::<PersistedV1>(&b)
                    .map(|old| Persisted {
                        seq: old.seq,
                        vv: old.vv,
                        trimmed: old.trimmed,
                        gap_until: 0,
                    })
                    .map_err(|_| StorageError::Corrupt {
                        cf: Cf::QuorumLog,
                        reason: "undecodable quorum state".into(),
                    })?,
            },
            None => Persisted::default(),
        };
        let mut digests = Digests::new();
        let mut tombstones = BTreeMap::new();
        let mut corrupt = false;
        engine.scan(Cf::Quorum, &[], None, ReadTier::Any, &mut |k, v| {
            let Some(ns) = k
                .get(..4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
            else {
                corrupt = true;
                return false;
            };
            let key = &k[4..];
            digests.change(ns, key, None, Some(digest::item(key, v)));
            match object::decode(v) {
                Some(o) if object::is_tombstone(&o) => {
                    tombstones.insert((ns, key.to_vec()), object::max_stamp(&o).ts.wall_ns);
                }
                Some(_) => {}
                None => corrupt = true,
            }
            !corrupt
        })?;
        if corrupt {
            return Err(StorageError::Corrupt {
                cf: Cf::Quorum,
                reason: "undecodable object".into(),
            });
        }
        published.lock().expect("published lock poisoned").digests = digests;
        let mut applier = Applier {
            me,
            engine,
            state,
            hlc: Hlc::new(),
            buffer: CausalBuffer::new(),
            tombstones,
            dropped: Default::default(),
            collect_from: None,
            recent: Recent::default(),
            dropped_elsewhere: Box::new(|_| false),
            checked: HashMap::new(),
            published,
            applied,
        };
        applier.publish();
        Ok(applier)
    }

    /// Tells the applier how to learn that a namespace was dropped through Raft, which
    /// deletes its data outside the applier: what it remembers of such a namespace is not
    /// used again.
    pub fn with_drop_check(
        mut self,
        dropped: impl Fn(NamespaceId) -> bool + Send + 'static,
    ) -> Self {
        self.dropped_elsewhere = Box::new(dropped);
        self
    }

    /// Runs until every sender of `jobs` is gone.
    pub fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(j) => group.push(j),
                    Err(_) => break,
                }
            }
            self.apply(group);
        }
    }

    fn publish(&mut self) {
        let mut p = self.published.lock().expect("published lock poisoned");
        p.seq = self.state.seq;
        p.vv = self.state.vv.clone();
        p.trimmed = self.state.trimmed;
        p.pending = self.buffer.len();
        p.tombstones = self.tombstones.len();
        p.gap = self.state.gap_until > 0;
        drop(p);
        self.applied.send_if_modified(|v| {
            let changed = *v != self.state.vv;
            if changed {
                *v = self.state.vv.clone();
            }
            changed
        });
    }

    fn load<'a>(
        &mut self,
        overlay: &'a mut HashMap<(NamespaceId, Vec<u8>), Slot>,
        ns: NamespaceId,
        key: &[u8],
    ) -> Result<&'a mut Slot, StorageError> {
        let k = (ns, key.to_vec());
        if !overlay.contains_key(&k) {
            if let Some((stored, object, size)) = self.recent.take(&k) {
                let dropped = *self
                    .checked
                    .entry(ns)
                    .or_insert_with(|| (self.dropped_elsewhere)(ns));
                if dropped {
                    self.recent.forget(ns);
                } else {
                    let slot = Slot {
                        stored,
                        object,
                        dirty: false,
                        size,
                    };
                    return Ok(overlay.entry(k).or_insert(slot));
                }
            }
            let stored = self.engine.get(Cf::Quorum, &data_key(ns, key))?;
            let object = match &stored {
                Some(b) => Some(object::decode(b).ok_or_else(|| StorageError::Corrupt {
                    cf: Cf::Quorum,
                    reason: "undecodable object".into(),
                })?),
                None => None,
            };
            overlay.insert(
                k.clone(),
                Slot {
                    size: stored.as_ref().map_or(0, Vec::len),
                    stored: stored.map(|b| digest::item(key, &b)),
                    object,
                    dirty: false,
                },
            );
        }
        Ok(overlay.get_mut(&k).expect("inserted"))
    }

    fn write(
        &mut self,
        overlay: &mut HashMap<(NamespaceId, Vec<u8>), Slot>,
        batch: &mut WriteBatch,
        w: LocalWrite,
    ) -> Result<Written, StorageError> {
        let me = self.me;
        let slot = self.load(overlay, w.ns, &w.key)?;
        let mut obj = slot.object.clone().unwrap_or_default();
        if let Some(base) = &w.base {
            obj.sync(base);
            object::settle(&mut obj, w.policy);
        }
        let existed = object::visible(&obj).is_some();
        // Under last-writer-wins, and for a LINEARIZABLE write (which read `base` from a
        // quorum), the write supersedes everything known here, whatever context the client
        // sent: it must be stamped above every version seen, or it would lose at once.
        let context = match w.context {
            Some(mut c) if w.policy == Policy::LastWriterWins || w.base.is_some() => {
                let here = Context::of(&obj);
                c.clock.merge(&here.clock);
                c.floor = c.floor.max(here.floor);
                c
            }
            Some(c) => c,
            None if w.policy == Policy::LastWriterWins || w.base.is_some() => Context::of(&obj),
            None => Context::default(),
        };
        // Stamped above everything the write supersedes, so that causal order and stamp
        // order agree.
        let floor = obj
            .versions()
            .iter()
            .filter(|v| v.clock.covered_by(&context.clock))
            .map(|v| v.value.stamp)
            .max()
            .unwrap_or_default()
            .max(context.floor);
        let ts = self.hlc.update(floor.ts, wall_ns());
        // The write's dot is its stream position, unique across keys. A position this replica
        // sees already used (its data was restored from an older copy, and the key or the
        // client's context carries its later writes) is skipped, never reused.
        let known = obj.known(me).max(context.clock.get(me));
        self.skip_to(known, batch);
        let prev = self.state.seq;
        let seq = prev + 1;
        let stamp = Stamp { ts, origin: me };
        obj.update_at(
            Dot {
                replica: me,
                counter: seq,
            },
            &context.clock,
            Val {
                stamp,
                seq,
                value: w.value,
            },
        );
        object::settle(&mut obj, w.policy);
        let deps = if w.causal {
            self.state.vv.clone()
        } else {
            VectorClock::new()
        };
        let update = Update {
            seq,
            prev,
            deps,
            ns: w.ns,
            key: w.key,
            object: obj.clone(),
            policy: w.policy,
        };
        batch.put(
            Cf::QuorumLog,
            log_key(seq),
            bincode::serialize(&update).expect("an update serializes"),
        );
        self.state.seq = seq;
        if self.state.gap_until == 0 {
            self.state.vv.raise(me, seq);
        }
        slot.object = Some(obj.clone());
        slot.dirty = true;
        Ok(Written {
            object: obj,
            stamp,
            seq,
            existed,
        })
    }

    fn merge(
        &mut self,
        overlay: &mut HashMap<(NamespaceId, Vec<u8>), Slot>,
        ns: NamespaceId,
        key: &[u8],
        incoming: &Object,
        policy: Policy,
    ) -> Result<(), StorageError> {
        if self.dropped.contains(&ns) {
            return Ok(());
        }
        if !object::sane(incoming, wall_ns().saturating_add(MAX_AHEAD_NS)) {
            tracing::warn!(
                ns,
                "dropping versions stamped far in the future or with counters out of range"
            );
            return Ok(());
        }
        let newest = object::max_stamp(incoming);
        self.hlc.update(newest.ts, wall_ns());
        let slot = self.load(overlay, ns, key)?;
        let mut obj = slot.object.clone().unwrap_or_default();
        let before = obj.clone();
        obj.sync(incoming);
        object::settle(&mut obj, policy);
        if obj != before || slot.object.is_none() {
            slot.object = Some(obj);
            slot.dirty = true;
        }
        Ok(())
    }

    fn apply(&mut self, group: Vec<Job>) {
        self.checked.clear();
        let saved = (self.state.clone(), self.hlc);
        let mut overlay = HashMap::new();
        let mut batch = WriteBatch::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut failed: Option<String> = None;
        let mut trim_to = None;
        for job in group {
            match job {
                Job::Write(w, reply) => match self.write(&mut overlay, &mut batch, w) {
                    Ok(written) => replies.push(Box::new(move |r| {
                        let _ = reply.send(r.map(|()| written));
                    })),
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                },
                Job::Push {
                    origin,
                    updates,
                    reply,
                } => {
                    for u in updates {
                        let deps = u.deps.clone();
                        self.buffer
                            .offer(&self.state.vv, origin, u.seq, u.prev, deps, u);
                    }
                    let mut vv = self.state.vv.clone();
                    let ready = self.buffer.take_ready(&mut vv);
                    let mut result = Ok(());
                    for (_, _, u) in ready {
                        if let Err(e) = self.merge(&mut overlay, u.ns, &u.key, &u.object, u.policy)
                        {
                            result = Err(e.to_string());
                            break;
                        }
                    }
                    match result {
                        Ok(()) => {
                            self.state.vv = vv;
                            let published = self.published.clone();
                            replies.push(Box::new(move |r| {
                                let vv = published
                                    .lock()
                                    .expect("published lock poisoned")
                                    .vv
                                    .clone();
                                let _ = reply.send(r.map(|()| vv));
                            }));
                        }
                        Err(e) => {
                            failed = Some(e.clone());
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Job::Merge { items, reply } => {
                    let mut result = Ok(());
                    for (ns, key, obj, policy) in &items {
                        if let Err(e) = self.merge(&mut overlay, *ns, key, obj, *policy) {
                            result = Err(e.to_string());
                            break;
                        }
                    }
                    match result {
                        Ok(()) => replies.push(Box::new(move |r| {
                            let _ = reply.send(r);
                        })),
                        Err(e) => {
                            failed = Some(e.clone());
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Job::Raise { vv, reply } => {
                    // Everything the peer had applied is here now, this replica's own
                    // writes included (a restored replica gets its lost ones back this way).
                    let me = self.me;
                    if vv.iter().all(|(_, c)| c <= MAX_COUNTER) {
                        // A peer holding more of this replica's stream than it knows of means
                        // those positions were used: skip them first.
                        self.skip_to(vv.get(me), &mut batch);
                        for (r, c) in vv.iter() {
                            self.state.vv.raise(r, c);
                        }
                        if self.state.gap_until > 0 && vv.get(me) >= self.state.gap_until {
                            self.clear_gap();
                        }
                    }
                    replies.push(Box::new(move |r| {
                        let _ = reply.send(r);
                    }));
                }
                Job::SkipAhead { to, reply } => {
                    if to <= MAX_COUNTER {
                        self.skip_to(to, &mut batch);
                    }
                    replies.push(Box::new(move |r| {
                        let _ = reply.send(r);
                    }));
                }
                Job::ClearGap => self.clear_gap(),
                Job::Trim { upto } => {
                    trim_to = trim_to.max(Some(upto));
                }
                Job::Forget { ns } => {
                    self.dropped.insert(ns);
                    self.published
                        .lock()
                        .expect("published lock poisoned")
                        .digests
                        .remove(ns);
                    self.tombstones.retain(|(n, _), _| *n != ns);
                    overlay.retain(|(n, _), _| *n != ns);
                    self.recent.forget(ns);
                    let (lo, hi) = (
                        ns.to_be_bytes().to_vec(),
                        ns.saturating_add(1).to_be_bytes().to_vec(),
                    );
                    batch.delete_range(Cf::Quorum, lo, hi);
                }
                Job::Collect {
                    replicas,
                    before_ns,
                } => {
                    if let Err(e) = self.collect(&mut overlay, &replicas, before_ns) {
                        failed = Some(e.to_string());
                    }
                }
            }
        }
        if let Some(upto) = trim_to.map(|u| u.min(self.state.seq)) {
            if upto > self.state.trimmed {
                batch.delete_range(
                    Cf::QuorumLog,
                    log_key(self.state.trimmed + 1),
                    log_key(upto + 1),
                );
                self.state.trimmed = upto;
            }
        }
        // Dirty keys: data and digest changes.
        let mut changes = Vec::new();
        let mut unchanged_keys = Vec::new();
        for ((ns, key), slot) in overlay {
            if !slot.dirty {
                unchanged_keys.push(((ns, key), slot));
                continue;
            }
            let k = data_key(ns, &key);
            let mut encoded = 0;
            let new = match &slot.object {
                Some(o) => {
                    let bytes = object::encode(o);
                    encoded = bytes.len();
                    let item = digest::item(&key, &bytes);
                    batch.put(Cf::Quorum, k, bytes);
                    let tombstone =
                        object::is_tombstone(o).then(|| object::max_stamp(o).ts.wall_ns);
                    Some((item, tombstone))
                }
                None => {
                    batch.delete(Cf::Quorum, k);
                    None
                }
            };
            changes.push((ns, key, slot.stored, new, slot.object, encoded));
        }
        // A group that changed nothing (peers' heartbeats announcing what this replica has
        // already applied, every 100 ms from each) is not written: an fsync for nothing would
        // load the disk every replica shares with its other work.
        let unchanged = batch.is_empty() && self.state == saved.0;
        if !unchanged {
            batch.put(
                Cf::QuorumLog,
                STATE_KEY.to_vec(),
                bincode::serialize(&self.state).expect("the state serializes"),
            );
        }
        let outcome = match failed {
            Some(e) => Err(e),
            None if unchanged => Ok(()),
            None => self.engine.write(batch, true).map_err(|e| e.to_string()),
        };
        match &outcome {
            Ok(()) => {
                let mut published = self.published.lock().expect("published lock poisoned");
                for (ns, key, old, new, object, encoded) in changes {
                    published.digests.change(ns, &key, old, new.map(|(i, _)| i));
                    match new {
                        Some((_, Some(wall))) => {
                            self.tombstones.insert((ns, key.clone()), wall);
                        }
                        _ => {
                            self.tombstones.remove(&(ns, key.clone()));
                        }
                    }
                    self.recent
                        .put((ns, key), new.map(|(i, _)| i), object, encoded);
                }
                for (key, slot) in unchanged_keys {
                    self.recent.put(key, slot.stored, slot.object, slot.size);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "quorum applier: writing a group failed; nothing of it is applied");
                (self.state, self.hlc) = saved;
            }
        }
        self.publish();
        for reply in replies {
            reply(outcome.clone());
        }
    }

    /// Continues this replica's stream after `to` if that is past it: positions through
    /// `to` were used before (by this replica before its data was restored from an older
    /// copy) and are never reused, and they are not counted as applied here until a repair
    /// brings them (or every member turns out not to have them either).
    fn skip_to(&mut self, to: u64, batch: &mut WriteBatch) {
        if to <= self.state.seq {
            return;
        }
        tracing::warn!(
            to,
            seq = self.state.seq,
            "this replica's own stream was used past where its data ends (restored from an older copy?); skipping ahead"
        );
        // Entries of the old log below the new position are never sent again.
        batch.delete_range(
            Cf::QuorumLog,
            log_key(self.state.trimmed + 1),
            log_key(to + 1),
        );
        self.state.trimmed = self.state.trimmed.max(to);
        self.state.seq = to;
        self.state.gap_until = self.state.gap_until.max(to);
    }

    fn clear_gap(&mut self) {
        if self.state.gap_until > 0 {
            self.state.gap_until = 0;
            self.state.vv.raise(self.me, self.state.seq);
        }
    }

    fn collect(
        &mut self,
        overlay: &mut HashMap<(NamespaceId, Vec<u8>), Slot>,
        replicas: &[VectorClock],
        before_ns: u64,
    ) -> Result<(), StorageError> {
        // Only deletions older than the grace period are looked at, at most this many a pass,
        // so a delete-heavy load does not stall the applier.
        const MAX_PER_PASS: usize = 4096;
        // A pass goes on from where the last one stopped, so that deletions held back (a
        // lagging replica) do not keep the collector from the others.
        let from = self.collect_from.take();
        let ordered: Box<dyn Iterator<Item = (&Key, &u64)>> = match &from {
            Some(k) => Box::new(
                self.tombstones
                    .range(k.clone()..)
                    .chain(self.tombstones.range(..k.clone())),
            ),
            None => Box::new(self.tombstones.iter()),
        };
        let mut candidates: Vec<(NamespaceId, Vec<u8>)> = Vec::new();
        for (k, wall) in ordered {
            if *wall < before_ns {
                candidates.push(k.clone());
                if candidates.len() >= MAX_PER_PASS {
                    break;
                }
            }
        }
        if candidates.len() >= MAX_PER_PASS {
            self.collect_from = candidates.last().cloned();
        }
        for (ns, key) in candidates {
            let slot = self.load(overlay, ns, &key)?;
            let Some(obj) = &slot.object else {
                // Gone already (its namespace was dropped): forget it.
                self.tombstones.remove(&(ns, key));
                continue;
            };
            let collectable = object::is_tombstone(obj)
                && obj.values().all(|v| {
                    v.stamp.ts.wall_ns < before_ns
                        && replicas.iter().all(|vv| vv.get(v.stamp.origin) >= v.seq)
                });
            if collectable {
                slot.object = None;
                slot.dirty = true;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::storage::memory::Instrumented;

    /// Heartbeats (pushes with nothing new) are answered without a write: every peer sends
    /// one every 100 ms, and an fsync each would load the disk for nothing. A write is still
    /// written, and so is a push that brings something.
    #[tokio::test]
    async fn a_group_that_changes_nothing_is_not_written() {
        let engine = Arc::new(Instrumented::default());
        let (applied, _) = watch::channel(VectorClock::new());
        let applier =
            Applier::recover(1, engine.clone(), Arc::default(), applied).expect("recover");
        let (jobs, rx) = mpsc::channel(16);
        let thread = std::thread::spawn(move || applier.run(rx));
        let push = |updates: Vec<Update>| {
            let jobs = jobs.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                jobs.send(Job::Push {
                    origin: 2,
                    updates,
                    reply,
                })
                .await
                .expect("send");
                answer.await.expect("answer").expect("applied")
            }
        };
        for _ in 0..3 {
            push(Vec::new()).await;
        }
        assert_eq!(engine.writes.load(Ordering::SeqCst), 0, "heartbeats wrote");

        let (reply, answer) = oneshot::channel();
        jobs.send(Job::Write(
            LocalWrite {
                ns: 7,
                key: b"k".to_vec(),
                value: Some(b"v".to_vec()),
                context: None,
                base: None,
                policy: Policy::LastWriterWins,
                causal: false,
            },
            reply,
        ))
        .await
        .expect("send");
        let written = answer.await.expect("answer").expect("written");
        assert_eq!(engine.writes.load(Ordering::SeqCst), 1);

        // The same update arriving as another origin's push changes this replica's state.
        let (applied_by_two, _) = watch::channel(VectorClock::new());
        let other = Arc::new(Instrumented::default());
        let applier =
            Applier::recover(2, other.clone(), Arc::default(), applied_by_two).expect("recover");
        let (jobs_two, rx_two) = mpsc::channel(16);
        let thread_two = std::thread::spawn(move || applier.run(rx_two));
        let (reply, answer) = oneshot::channel();
        jobs_two
            .send(Job::Push {
                origin: 1,
                updates: vec![Update {
                    seq: written.seq,
                    prev: 0,
                    deps: VectorClock::new(),
                    ns: 7,
                    key: b"k".to_vec(),
                    object: written.object,
                    policy: Policy::LastWriterWins,
                }],
                reply,
            })
            .await
            .expect("send");
        let vv = answer.await.expect("answer").expect("applied");
        assert_eq!(vv.get(1), written.seq);
        assert_eq!(other.writes.load(Ordering::SeqCst), 1);
        drop((jobs, jobs_two));
        thread.join().expect("applier");
        thread_two.join().expect("applier");
    }

    /// One step of [`the_recent_writes_always_match_the_engine`].
    #[derive(Clone, Debug)]
    enum Step {
        /// A write (or delete) coordinated at replica 1 or 2.
        Write {
            at_two: bool,
            ns: NamespaceId,
            key: u8,
            delete: bool,
        },
        /// Replica 1 applies what replica 2 coordinated since it last did.
        Pull,
        /// Replica 1 collects tombstones both replicas have applied.
        Collect,
        /// Replica 1 forgets a dropped namespace.
        Forget(NamespaceId),
        /// A namespace drop applied through Raft at replica 1: its range is deleted outside
        /// the applier, and the catalog no longer holds it.
        DropThroughRaft(NamespaceId),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (any::<bool>(), 1u32..3, 0u8..6, proptest::bool::weighted(0.3)).prop_map(
                |(at_two, ns, key, delete)| Step::Write { at_two, ns, key, delete }
            ),
            3 => Just(Step::Pull),
            1 => Just(Step::Collect),
            1 => (1u32..3).prop_map(Step::Forget),
            1 => (1u32..3).prop_map(Step::DropThroughRaft),
        ]
    }

    /// Builds one step's job for replica 1 (`None`: the step ran elsewhere).
    fn job_of(
        step: &Step,
        one: &Applier,
        two: &mut Applier,
        two_engine: &dyn Engine,
        raft: &(
            Arc<Instrumented>,
            Arc<Mutex<std::collections::BTreeSet<NamespaceId>>>,
        ),
    ) -> Option<Job> {
        let write = |ns: NamespaceId, key: u8, delete: bool| LocalWrite {
            ns,
            key: vec![key],
            value: (!delete).then(|| vec![key; 3]),
            context: None,
            base: None,
            policy: Policy::LastWriterWins,
            causal: false,
        };
        match *step {
            Step::Write {
                at_two: true,
                ns,
                key,
                delete,
            } => {
                let (reply, _) = oneshot::channel();
                two.apply(vec![Job::Write(write(ns, key, delete), reply)]);
                None
            }
            Step::Write {
                ns, key, delete, ..
            } => {
                let (reply, _) = oneshot::channel();
                Some(Job::Write(write(ns, key, delete), reply))
            }
            Step::Pull => {
                let from = one.state.vv.get(2) + 1;
                let updates = read_log(two_engine, from, 512, 1 << 20).expect("log");
                let (reply, _) = oneshot::channel();
                Some(Job::Push {
                    origin: 2,
                    updates,
                    reply,
                })
            }
            Step::Collect => Some(Job::Collect {
                replicas: vec![two.state.vv.clone()],
                before_ns: u64::MAX,
            }),
            Step::Forget(ns) => Some(Job::Forget { ns }),
            Step::DropThroughRaft(ns) => {
                let mut batch = WriteBatch::new();
                batch.delete_range(
                    Cf::Quorum,
                    ns.to_be_bytes().to_vec(),
                    (ns + 1).to_be_bytes().to_vec(),
                );
                raft.0.write(batch, true).expect("drop");
                raft.1.lock().expect("dropped").insert(ns);
                None
            }
        }
    }

    proptest::proptest! {
        /// What the applier remembers of recently written keys is what the engine holds, byte
        /// for byte, after every group: groups of writes, deletes, pushed updates, tombstone
        /// collection and dropped namespaces, some of whose writes fail.
        #[test]
        fn the_recent_writes_always_match_the_engine(
            groups in proptest::collection::vec(
                (proptest::collection::vec(step(), 1..6), proptest::bool::weighted(0.15)),
                1..30,
            ),
        ) {
            let engine = Arc::new(Instrumented::default());
            let two_engine = Arc::new(Instrumented::default());
            let dropped = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
            let catalog = dropped.clone();
            let mut one = Applier::recover(1, engine.clone(), Arc::default(), watch::channel(VectorClock::new()).0)
                .expect("recover")
                .with_drop_check(move |ns| catalog.lock().expect("dropped").contains(&ns));
            let raft = (engine.clone(), dropped.clone());
            let mut two = Applier::recover(2, two_engine.clone(), Arc::default(), watch::channel(VectorClock::new()).0)
                .expect("recover");
            for (steps, fail) in groups {
                let jobs: Vec<Job> = steps
                    .iter()
                    .filter_map(|s| job_of(s, &one, &mut two, &*two_engine, &raft))
                    .collect();
                if jobs.is_empty() {
                    continue;
                }
                engine.fail_writes.store(fail, Ordering::SeqCst);
                one.apply(jobs);
                engine.fail_writes.store(false, Ordering::SeqCst);
                let mut bytes = 0;
                for ((ns, key), (stored, object, size)) in &one.recent.map {
                    bytes += size;
                    if dropped.lock().expect("dropped").contains(ns) {
                        // Deleted outside the applier; never used again (see the next test).
                        continue;
                    }
                    let held = engine.get(Cf::Quorum, &data_key(*ns, key)).expect("read");
                    match (&held, object) {
                        (Some(b), Some(o)) => {
                            proptest::prop_assert_eq!(object::decode(b), Some(o.clone()));
                            proptest::prop_assert_eq!(*stored, Some(digest::item(key, b)));
                            proptest::prop_assert_eq!(*size, key.len() + b.len());
                        }
                        (None, None) => proptest::prop_assert_eq!(*stored, None),
                        _ => proptest::prop_assert!(false, "{ns}/{key:?}: remembered {object:?}, stored {held:?}"),
                    }
                }
                proptest::prop_assert_eq!(bytes, one.recent.bytes);
            }
        }
    }

    /// A namespace dropped through Raft loses its data outside the applier; what the applier
    /// remembers of it is not used: a write to one of its keys (one already on its way when
    /// the namespace was dropped) finds nothing there, as the engine says.
    #[test]
    fn a_namespace_dropped_through_raft_is_not_served_from_memory() {
        let engine = Arc::new(Instrumented::default());
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = dropped.clone();
        let mut applier = Applier::recover(
            1,
            engine.clone(),
            Arc::default(),
            watch::channel(VectorClock::new()).0,
        )
        .expect("recover")
        .with_drop_check(move |ns| ns == 7 && flag.load(Ordering::SeqCst));
        let write = |applier: &mut Applier, value: &[u8]| {
            let (reply, mut answer) = oneshot::channel();
            applier.apply(vec![Job::Write(
                LocalWrite {
                    ns: 7,
                    key: b"k".to_vec(),
                    value: Some(value.to_vec()),
                    context: None,
                    base: None,
                    policy: Policy::Siblings,
                    causal: false,
                },
                reply,
            )]);
            answer.try_recv().expect("answered").expect("written")
        };
        assert!(!write(&mut applier, b"a").existed);
        assert!(write(&mut applier, b"b").existed, "the key is there");

        let mut batch = WriteBatch::new();
        batch.delete_range(
            Cf::Quorum,
            7u32.to_be_bytes().to_vec(),
            8u32.to_be_bytes().to_vec(),
        );
        engine.write(batch, true).expect("drop");
        dropped.store(true, Ordering::SeqCst);

        let after = write(&mut applier, b"c");
        assert!(
            !after.existed,
            "served the dropped namespace's key from memory"
        );
        assert_eq!(
            after.object.versions().len(),
            1,
            "kept versions from before the drop"
        );
    }
}
