//! The replicated state machine: the versioned keyspace ([`Store`]) driven by committed Raft
//! entries.
//!
//! Each `apply` turns its entries into one write batch with [`Store::apply_group`] (every
//! command at the next revision, stamped with the primary's clock), adds the last applied log
//! id, the last revision taken and the membership to the same batch, and writes it: data,
//! dedup table, applied position and membership change together or not at all, so a restart
//! never applies an entry twice.
//!
//! Revisions are counted by the state machine, not taken from log indexes, because one entry
//! may carry a batch of commands (the primary's group commit, see [`super::Replica::write`]):
//! every command takes the next revision, and an entry without commands takes one as well. A
//! log without batches therefore gives each entry its log index as revision, so a state
//! machine written before batches existed counts on from its applied index. (A replica of
//! that older version cannot read a batch entry: every replica must run this version before
//! the primary does; a replica whose older version installed a newer replica's snapshot and
//! applied entries after it refuses to start once upgraded.) The batch is not synced on its own: the entries are already durable in the
//! log, and whatever a crash loses of the state machine is applied again from it.
//!
//! A snapshot is every entry of the state machine's column families read at one point in time
//! (which includes the applied log id and membership, so they agree with the data).

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::flush::Flushes;
use super::log_store::{decode, encode};
use super::types::{NodeId, Refusal, Response, TypeConfig};
use crate::storage::store::{ApplyError, Command, Outcome, Stamped, Store};
use crate::storage::writer::Writer;
use crate::storage::{Cf, WriteBatch};

/// Meta key of the last applied log id.
const APPLIED: &[u8] = b"raft/applied";
/// Meta key of the last revision taken by an applied command, with the log index it was
/// taken at: `(index, revision)`.
const REVISION: &[u8] = b"raft/revision";
/// Meta key of the last applied membership.
const MEMBERSHIP: &[u8] = b"raft/membership";
/// Raft-state key of the current snapshot.
const SNAPSHOT: &[u8] = b"snapshot";

type Membership = StoredMembership<NodeId, openraft::BasicNode>;

/// A snapshot as stored and sent: its meta and the state machine's entries.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: Vec<u8>,
}

/// The state machine of the replica's Raft group. Clones share the store.
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    writer: Writer,
    /// The log's appends as primary not durable yet: an entry applies once it is durable.
    flushes: Arc<Flushes>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

impl StateMachine {
    /// The state machine over `store`, writing through `writer`, applying entries once
    /// `flushes` has them durable in the log.
    pub fn new(store: Arc<Store>, writer: Writer, flushes: Arc<Flushes>) -> Self {
        Self {
            store,
            writer,
            flushes,
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<NodeId>> {
        match self.store.engine().get(Cf::Meta, key) {
            Ok(Some(b)) => decode(&b)
                .map(Some)
                .map_err(|e| StorageIOError::read_state_machine(&e).into()),
            Ok(None) => Ok(None),
            Err(e) => Err(StorageIOError::read_state_machine(&e).into()),
        }
    }
}

impl StateMachine {
    /// Publishes the applied position as stored: the log index of the last applied entry and
    /// the last revision taken. A state machine written before revisions were counted apart
    /// from log indexes has no revision record; its revisions were log indexes, so counting
    /// goes on from the applied index. A record taken at another index than the applied one
    /// means a version of dialkv that does not keep it applied entries after it (a snapshot
    /// taken by a newer replica, installed by an older one): the revisions it gave are not
    /// the cluster's, and the replica refuses to start rather than serve them.
    fn load_revision(&self, applied: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        let index = applied.map_or(0, |l| l.index);
        let revision = match self.read_meta::<(u64, u64)>(REVISION)? {
            None => index,
            Some((at, revision)) if at == index => revision,
            Some((at, _)) => {
                return Err(
                    StorageIOError::read_state_machine(&std::io::Error::other(format!(
                        "the revision record was taken at log index {at} but entries were applied \
                     through {index} without it (by an older version of dialkv?); the revisions \
                     of this replica's data cannot be trusted: wipe its data directory so that \
                     it catches up from its peers"
                    )))
                    .into(),
                )
            }
        };
        self.store.set_applied(revision);
        self.store.set_applied_index(index);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // Reading and encoding the whole state machine takes a CPU for a good part of a second
        // with a few hundred thousand records: all of it on a blocking thread, none on the
        // async runtime (where it held up the tasks sharing that worker), and each record
        // encoded from where the dump holds it rather than copied first.
        let engine = self.store.engine().clone();
        let (meta, data, stored) = tokio::task::spawn_blocking(move || {
            let dump = engine
                .dump(&Cf::STATE_MACHINE)
                .map_err(|e| StorageIOError::read_state_machine(&e))?;
            let mut applied: Option<LogId<NodeId>> = None;
            let mut membership = Membership::default();
            for (cf, k, v) in &dump {
                if *cf == Cf::Meta && k == APPLIED {
                    applied = decode(v).map_err(|e| StorageIOError::read_state_machine(&e))?;
                } else if *cf == Cf::Meta && k == MEMBERSHIP {
                    membership = decode(v).map_err(|e| StorageIOError::read_state_machine(&e))?;
                }
            }
            // Encoded as the `(u8, Vec<u8>, Vec<u8>)` records `install_snapshot` decodes.
            let entries: Vec<(u8, &[u8], &[u8])> = dump
                .iter()
                .map(|(cf, k, v)| (cf_tag(*cf), &k[..], &v[..]))
                .collect();
            let data = encode(&entries).map_err(|e| StorageIOError::read_state_machine(&e))?;
            let unique = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0);
            let snapshot_id = match applied {
                Some(l) => format!("{}-{}-{unique}", l.leader_id, l.index),
                None => format!("none-{unique}"),
            };
            let meta = SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
                snapshot_id,
            };
            // Encoded as the `StoredSnapshot` it is read back as, without a copy of the data.
            let stored = encode(&(&meta, &data[..]))
                .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
            Ok::<_, StorageError<NodeId>>((meta, data, stored))
        })
        .await
        .map_err(sm_err)??;
        let mut b = WriteBatch::new();
        b.put(Cf::RaftState, SNAPSHOT.to_vec(), stored);
        self.writer.write(b, true).await.map_err(|e| {
            StorageIOError::write_snapshot(Some(meta.signature()), &std::io::Error::other(e))
        })?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

fn cf_tag(cf: Cf) -> u8 {
    match cf {
        Cf::Data => 0,
        Cf::Meta => 1,
        Cf::Dedup => 2,
        Cf::RaftLog => 3,
        Cf::RaftState => 4,
        Cf::Quorum => 5,
        Cf::QuorumLog => 6,
    }
}

fn cf_of(tag: u8) -> Option<Cf> {
    Cf::ALL.into_iter().find(|cf| cf_tag(*cf) == tag)
}

/// Runs `f`, which reads and writes storage, without stalling other tasks: in place on a
/// multi-threaded runtime (`block_in_place` hands this worker's other tasks to another
/// thread), sparing the hop to a blocking-pool thread and back on every commit; on the
/// blocking pool elsewhere.
///
/// A panic in `f` is an error either way (as a panicked blocking task's would be), so that
/// Raft learns the state machine failed and stops the replica, rather than losing its
/// state-machine worker silently.
async fn in_place<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|_| "applying entries panicked".to_string())
        }),
        _ => tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| e.to_string()),
    }
}

/// What an applied entry answers.
enum Shape {
    /// A blank or membership entry.
    None,
    /// A command entry: `count` commands, sent as a batch or alone.
    Commands { batch: bool, count: usize },
}

/// The replicated response to one command's result; storage failures stop the replica.
fn response(result: Result<Outcome, ApplyError>) -> Result<Response, StorageError<NodeId>> {
    Ok(match result {
        Ok(outcome) => Response::Applied(outcome),
        Err(ApplyError::Storage(e)) => return Err(sm_err(e)),
        Err(ApplyError::NamespaceNotFound(n)) => Response::Refused(Refusal::NamespaceNotFound(n)),
        Err(ApplyError::NamespaceExists(n)) => Response::Refused(Refusal::NamespaceExists(n)),
        Err(ApplyError::DefaultNamespace) => Response::Refused(Refusal::DefaultNamespace),
        Err(ApplyError::TransactionUnknown) => Response::Refused(Refusal::TransactionUnknown),
        Err(ApplyError::NamespaceIdsExhausted) => Response::Refused(Refusal::NamespaceIdsExhausted),
        Err(ApplyError::RequestIdReused { client_id, seq }) => {
            Response::Refused(Refusal::RequestIdReused { client_id, seq })
        }
    })
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let applied: Option<LogId<NodeId>> =
            self.read_meta::<Option<LogId<NodeId>>>(APPLIED)?.flatten();
        let membership = self.read_meta(MEMBERSHIP)?.unwrap_or_default();
        self.load_revision(applied)?;
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // What each entry answers: blank and membership entries None, a command entry the
        // results of its commands (several for a batch). Each command takes the next
        // revision; an entry without commands takes one too, so that a log without batches
        // gives every entry its log index as revision (as before batches existed).
        let mut shapes = Vec::new();
        let mut commands = Vec::new();
        let mut revision = self.store.applied();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            last = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {
                    revision += 1;
                    shapes.push(Shape::None);
                }
                EntryPayload::Normal(req) => {
                    let batch = matches!(req.command, Command::Batch(_));
                    let mut unpacked = Vec::new();
                    req.command.flatten_into(&mut unpacked);
                    if unpacked.is_empty() {
                        revision += 1;
                    }
                    shapes.push(Shape::Commands {
                        batch,
                        count: unpacked.len(),
                    });
                    for command in unpacked {
                        revision += 1;
                        commands.push(Stamped {
                            command,
                            revision,
                            at_ms: req.at_ms,
                        });
                    }
                }
                EntryPayload::Membership(m) => {
                    membership = Some(Membership::new(Some(entry.log_id), m));
                    revision += 1;
                    shapes.push(Shape::None);
                }
            }
        }
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        // The position and membership go in the same batch as the data. The batch is built
        // and written in place, not through the writer: it is not synced (the entries are
        // durable in the log), so it gains nothing from group commit and would only pay a hop
        // to the writer thread and back.
        let mut meta = vec![
            (APPLIED.to_vec(), encode(&Some(last)).map_err(sm_err)?),
            (
                REVISION.to_vec(),
                encode(&(last.index, revision)).map_err(sm_err)?,
            ),
        ];
        if let Some(m) = &membership {
            meta.push((MEMBERSHIP.to_vec(), encode(m).map_err(sm_err)?));
        }
        // An entry the primary appended is applied (answered, readable) only once its own
        // copy is durable; see `flush`.
        self.flushes
            .wait_durable(last.index)
            .await
            .map_err(sm_err)?;
        let store = self.store.clone();
        let (group, written) = in_place(move || {
            let mut group = store.apply_group(commands);
            // A command that failed to read storage has no trustworthy outcome: nothing of
            // the group is written (not even the applied position), and the replica stops;
            // after a restart the entries are applied again from the log.
            if let Some(e) = group.results.iter().find_map(|r| match r {
                Err(ApplyError::Storage(e)) => Some(e.to_string()),
                _ => None,
            }) {
                return (group, Err(e));
            }
            let mut batch = std::mem::take(&mut group.batch);
            for (k, v) in meta {
                batch.put(Cf::Meta, k, v);
            }
            let written = store
                .engine()
                .write(batch, false)
                .map_err(|e| e.to_string());
            (group, written)
        })
        .await
        .map_err(sm_err)?;
        written.map_err(sm_err)?;
        self.store.install(group.delta);
        self.store.set_applied(revision);
        self.store.set_applied_index(last.index);
        let mut results = group.results.into_iter();
        let mut responses = Vec::with_capacity(shapes.len());
        for shape in shapes {
            responses.push(match shape {
                Shape::None => Response::None,
                Shape::Commands { batch, count } => {
                    let mut each = results
                        .by_ref()
                        .take(count)
                        .map(response)
                        .collect::<Result<Vec<_>, _>>()?;
                    if batch || each.len() != 1 {
                        Response::Batch(each)
                    } else {
                        each.pop().unwrap_or(Response::None)
                    }
                }
            });
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let sig = || Some(meta.signature());
        let entries: Vec<(u8, Vec<u8>, Vec<u8>)> =
            decode(&data).map_err(|e| StorageIOError::read_snapshot(sig(), &e))?;
        let mut b = WriteBatch::new();
        for cf in Cf::STATE_MACHINE {
            b.delete_range(cf, Vec::new(), vec![0xFF; 64]);
        }
        for (tag, k, v) in entries {
            let cf = cf_of(tag).ok_or_else(|| {
                StorageIOError::read_snapshot(
                    sig(),
                    &std::io::Error::other(format!("unknown column family {tag}")),
                )
            })?;
            b.put(cf, k, v);
        }
        b.put(
            Cf::Meta,
            APPLIED.to_vec(),
            encode(&meta.last_log_id).map_err(sm_err)?,
        );
        b.put(
            Cf::Meta,
            MEMBERSHIP.to_vec(),
            encode(&meta.last_membership).map_err(sm_err)?,
        );
        let stored = encode(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .map_err(sm_err)?;
        b.put(Cf::RaftState, SNAPSHOT.to_vec(), stored);
        self.store.forget_versions();
        self.writer
            .write(b, true)
            .await
            .map_err(|e| StorageIOError::write_snapshot(sig(), &std::io::Error::other(e)))?;
        self.store
            .reload()
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        tracing::info!(snapshot = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "installed snapshot");
        self.load_revision(meta.last_log_id)?;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let stored = self
            .store
            .engine()
            .get(Cf::RaftState, SNAPSHOT)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        match stored {
            None => Ok(None),
            Some(b) => {
                let s: StoredSnapshot =
                    decode(&b).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
                Ok(Some(Snapshot {
                    meta: s.meta,
                    snapshot: Box::new(Cursor::new(s.data)),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::metrics::Metrics;
    use crate::replication::flush::Room;
    use crate::replication::types::Request;
    use crate::storage::memory::{Instrumented, MemoryEngine};
    use crate::storage::store::{Outcome, StoreOptions, DEFAULT_NAMESPACE};
    use crate::storage::writer::WriterOptions;
    use crate::storage::Engine;

    fn put(ns: &str, key: &str) -> Command {
        Command::Put {
            ns: ns.into(),
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            request: None,
        }
    }

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload,
        }
    }

    fn normal(index: u64, command: Command) -> Entry<TypeConfig> {
        entry(
            index,
            EntryPayload::Normal(Request {
                command,
                at_ms: 1_000,
            }),
        )
    }

    fn machine(engine: &Arc<dyn Engine>) -> StateMachine {
        machine_with(engine, Arc::default())
    }

    fn machine_with(engine: &Arc<dyn Engine>, flushes: Arc<Flushes>) -> StateMachine {
        let store = Store::open(engine.clone(), StoreOptions::default()).expect("open");
        let (writer, _thread) = Writer::start(
            engine.clone(),
            WriterOptions::default(),
            Arc::new(Metrics::new()),
        )
        .expect("writer");
        StateMachine::new(Arc::new(store), writer, flushes)
    }

    /// An entry applies only once the log has it durable: not while an append of the primary
    /// that holds it is pending, and not at all after such an append failed.
    #[tokio::test]
    async fn entries_apply_only_once_durable_in_the_log() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let flushes = Arc::new(Flushes::default());
        let mut sm = machine_with(&engine, flushes.clone());
        sm.applied_state().await.expect("applied state");
        let room = Room {
            entries: 8,
            bytes: 1 << 20,
        };
        // Entry 1 is durable, entry 2 pending: neither applies before 2 is written.
        let pending = flushes.begin(2, None, 1, 10, room).expect("room");
        {
            let apply = sm.apply(vec![
                normal(1, put(DEFAULT_NAMESPACE, "a")),
                normal(2, put(DEFAULT_NAMESPACE, "b")),
            ]);
            tokio::pin!(apply);
            assert!(futures::poll!(apply.as_mut()).is_pending());
            assert_eq!(
                engine.get(Cf::Meta, APPLIED).expect("get"),
                None,
                "not applied"
            );
            flushes.end(pending, Ok(()));
            apply.await.expect("applied once durable");
        }
        assert!(engine.get(Cf::Meta, APPLIED).expect("get").is_some());
        let failed = flushes.begin(3, None, 1, 10, room).expect("room");
        flushes.end(failed, Err("disk full".into()));
        let e = sm
            .apply(vec![normal(3, put(DEFAULT_NAMESPACE, "c"))])
            .await
            .expect_err("a failed append stops applying");
        assert!(e.to_string().contains("disk full"), "{e}");
    }

    /// A state machine over a fresh engine that applied puts of `a` and `b` at entries 1 and 2.
    async fn machine_with_two_puts() -> (Arc<dyn Engine>, StateMachine) {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let mut sm = machine(&engine);
        sm.applied_state().await.expect("applied state");
        sm.apply(vec![
            normal(1, put(DEFAULT_NAMESPACE, "a")),
            normal(2, put(DEFAULT_NAMESPACE, "b")),
        ])
        .await
        .expect("apply");
        (engine, sm)
    }

    fn put_revision(r: &Response) -> u64 {
        match r {
            Response::Applied(Outcome::Put { revision }) => *revision,
            other => panic!("not an applied put: {other:?}"),
        }
    }

    /// Each command of a batch gets its own revision and outcome (a refusal touches only its
    /// own command), entries without commands take one revision each, and the count goes on
    /// after a restart.
    #[tokio::test]
    async fn a_batch_gives_each_command_its_own_revision_and_outcome() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let mut sm = machine(&engine);
        sm.applied_state().await.expect("applied state");
        let batch = Command::Batch(vec![
            put(DEFAULT_NAMESPACE, "a"),
            put("missing", "b"),
            put(DEFAULT_NAMESPACE, "c"),
        ]);
        let responses = sm
            .apply(vec![
                entry(1, EntryPayload::Blank),
                normal(2, put(DEFAULT_NAMESPACE, "x")),
                normal(3, batch),
                normal(4, put(DEFAULT_NAMESPACE, "y")),
            ])
            .await
            .expect("apply");
        assert_eq!(responses.len(), 4);
        assert_eq!(responses[0], Response::None);
        // A log without batches gives every entry its index as revision.
        assert_eq!(put_revision(&responses[1]), 2);
        let Response::Batch(each) = &responses[2] else {
            panic!("a batch entry answers a batch: {:?}", responses[2]);
        };
        assert_eq!(each.len(), 3);
        assert_eq!(put_revision(&each[0]), 3);
        assert_eq!(
            each[1],
            Response::Refused(Refusal::NamespaceNotFound("missing".into()))
        );
        assert_eq!(put_revision(&each[2]), 5);
        assert_eq!(put_revision(&responses[3]), 6);
        assert_eq!(sm.store.applied(), 6);
        assert_eq!(sm.store.applied_index(), 4);
        let ns = sm.store.namespace(DEFAULT_NAMESPACE).expect("default").id;
        let c = sm
            .store
            .get(ns, b"c", None, crate::storage::ReadTier::Any)
            .expect("get")
            .expect("c was written");
        assert_eq!(c.revision, 5);

        // A restart reads the position back and counts on from it.
        let mut again = machine(&engine);
        let (applied, _) = again.applied_state().await.expect("applied state");
        assert_eq!(applied.map(|l| l.index), Some(4));
        assert_eq!(again.store.applied(), 6);
        let responses = again
            .apply(vec![normal(5, put(DEFAULT_NAMESPACE, "z"))])
            .await
            .expect("apply");
        assert_eq!(put_revision(&responses[0]), 7);
    }

    /// A command whose storage read fails stops the apply before anything of its group is
    /// written, the applied position included, so that a restart applies the entries again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_read_writes_nothing_of_the_group() {
        let failing = Arc::new(Instrumented::default());
        let engine: Arc<dyn Engine> = failing.clone();
        let mut sm = machine(&engine);
        sm.applied_state().await.expect("applied state");
        sm.apply(vec![normal(1, put(DEFAULT_NAMESPACE, "a"))])
            .await
            .expect("apply");
        failing
            .fail_data_reads
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let failed = sm
            .apply(vec![
                normal(2, put(DEFAULT_NAMESPACE, "b")),
                normal(3, put(DEFAULT_NAMESPACE, "c")),
            ])
            .await;
        assert!(failed.is_err());
        let applied: Option<LogId<NodeId>> = decode(
            &engine
                .get(Cf::Meta, APPLIED)
                .expect("get")
                .expect("an applied position"),
        )
        .expect("decode");
        assert_eq!(applied.map(|l| l.index), Some(1));
        assert_eq!(sm.store.applied_index(), 1);
    }

    /// A state machine written before revisions were counted apart from log indexes (no
    /// revision record) counts on from its applied index.
    #[tokio::test]
    async fn a_state_machine_without_a_revision_record_counts_on_from_its_index() {
        let (engine, _) = machine_with_two_puts().await;
        let mut b = WriteBatch::new();
        b.delete(Cf::Meta, REVISION.to_vec());
        engine.write(b, true).expect("drop the revision record");
        let mut again = machine(&engine);
        again.applied_state().await.expect("applied state");
        assert_eq!(again.store.applied(), 2);
        let responses = again
            .apply(vec![normal(3, put(DEFAULT_NAMESPACE, "c"))])
            .await
            .expect("apply");
        assert_eq!(put_revision(&responses[0]), 3);

        // A record taken at another index than the applied one: entries were applied past it
        // by a version that does not keep it, so the revisions are not the cluster's.
        let mut b = WriteBatch::new();
        b.put(
            Cf::Meta,
            REVISION.to_vec(),
            encode(&(1u64, 9u64)).expect("encode"),
        );
        engine.write(b, true).expect("a stale revision record");
        let mut stale = machine(&engine);
        assert!(stale.applied_state().await.is_err());
    }

    /// A snapshot built on one replica installs on another (its records and its stored form
    /// are encoded as they are decoded), and both then hand out the same snapshot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_built_snapshot_installs_elsewhere() {
        use openraft::storage::RaftSnapshotBuilder;
        let (_, mut sm) = machine_with_two_puts().await;
        let built = sm.build_snapshot().await.expect("build");
        assert_eq!(built.meta.last_log_id.map(|l| l.index), Some(2));

        let other: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let mut replica = machine(&other);
        replica.applied_state().await.expect("applied state");
        replica
            .install_snapshot(&built.meta, built.snapshot)
            .await
            .expect("install");
        let ns = replica
            .store
            .namespace(DEFAULT_NAMESPACE)
            .expect("default namespace")
            .id;
        for key in [&b"a"[..], b"b"] {
            let got = replica
                .store
                .get(ns, key, None, crate::storage::ReadTier::Any)
                .expect("get");
            assert_eq!(got.map(|i| i.value), Some(Bytes::from_static(b"v")));
        }
        assert_eq!(replica.store.applied(), 2);
        let here = sm
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("stored");
        let there = replica
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(here.meta, there.meta);
        assert_eq!(here.snapshot.into_inner(), there.snapshot.into_inner());
    }
}
