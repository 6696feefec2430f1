//! The replicated state machine: the versioned keyspace ([`Store`]) driven by committed Raft
//! entries.
//!
//! Each `apply` turns its entries into one write batch with [`Store::apply_group`] (every
//! command at its entry's log index as revision, stamped with the primary's clock), adds the
//! last applied log id and the membership to the same batch, and writes it: data, dedup table,
//! applied index and membership change together or not at all, so a restart never applies an
//! entry twice. The batch is not synced on its own: the entries are already durable in the
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

use super::log_store::{decode, encode};
use super::types::{NodeId, Refusal, Response, TypeConfig};
use crate::storage::store::{ApplyError, Stamped, Store};
use crate::storage::writer::Writer;
use crate::storage::{Cf, WriteBatch};

/// Meta key of the last applied log id.
const APPLIED: &[u8] = b"raft/applied";
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
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

impl StateMachine {
    /// The state machine over `store`, writing through `writer`.
    pub fn new(store: Arc<Store>, writer: Writer) -> Self {
        Self { store, writer }
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

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let engine = self.store.engine().clone();
        let dump = tokio::task::spawn_blocking(move || engine.dump(&Cf::STATE_MACHINE))
            .await
            .map_err(sm_err)?
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
        let entries: Vec<(u8, Vec<u8>, Vec<u8>)> = dump
            .into_iter()
            .map(|(cf, k, v)| (cf_tag(cf), k, v))
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
        let stored = encode(&StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        })
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
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

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let applied: Option<LogId<NodeId>> =
            self.read_meta::<Option<LogId<NodeId>>>(APPLIED)?.flatten();
        let membership = self.read_meta(MEMBERSHIP)?.unwrap_or_default();
        if let Some(l) = applied {
            self.store.set_applied(l.index);
        }
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Which response slot each command fills; blank and membership entries answer None.
        let mut responses: Vec<Option<Response>> = Vec::new();
        let mut commands = Vec::new();
        let mut slots = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            last = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(Some(Response::None)),
                EntryPayload::Normal(req) => {
                    slots.push(responses.len());
                    responses.push(None);
                    commands.push(Stamped {
                        command: req.command,
                        revision: entry.log_id.index,
                        at_ms: req.at_ms,
                    });
                }
                EntryPayload::Membership(m) => {
                    membership = Some(Membership::new(Some(entry.log_id), m));
                    responses.push(Some(Response::None));
                }
            }
        }
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        let store = self.store.clone();
        let group = tokio::task::spawn_blocking(move || store.apply_group(commands))
            .await
            .map_err(sm_err)?;
        let mut batch = group.batch;
        batch.put(
            Cf::Meta,
            APPLIED.to_vec(),
            encode(&Some(last)).map_err(sm_err)?,
        );
        if let Some(m) = &membership {
            batch.put(Cf::Meta, MEMBERSHIP.to_vec(), encode(m).map_err(sm_err)?);
        }
        self.writer.write(batch, false).await.map_err(sm_err)?;
        self.store.install(group.delta);
        self.store.set_applied(last.index);
        for (slot, result) in slots.into_iter().zip(group.results) {
            responses[slot] = Some(match result {
                Ok(outcome) => Response::Applied(outcome),
                Err(ApplyError::Storage(e)) => return Err(sm_err(e)),
                Err(ApplyError::NamespaceNotFound(n)) => {
                    Response::Refused(Refusal::NamespaceNotFound(n))
                }
                Err(ApplyError::NamespaceExists(n)) => {
                    Response::Refused(Refusal::NamespaceExists(n))
                }
                Err(ApplyError::DefaultNamespace) => Response::Refused(Refusal::DefaultNamespace),
                Err(ApplyError::TransactionUnknown) => {
                    Response::Refused(Refusal::TransactionUnknown)
                }
                Err(ApplyError::NamespaceIdsExhausted) => {
                    Response::Refused(Refusal::NamespaceIdsExhausted)
                }
                Err(ApplyError::RequestIdReused { client_id, seq }) => {
                    Response::Refused(Refusal::RequestIdReused { client_id, seq })
                }
            });
        }
        Ok(responses
            .into_iter()
            .map(|r| r.unwrap_or(Response::None))
            .collect())
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
        self.writer
            .write(b, true)
            .await
            .map_err(|e| StorageIOError::write_snapshot(sig(), &std::io::Error::other(e)))?;
        self.store
            .reload()
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        tracing::info!(snapshot = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "installed snapshot");
        if let Some(l) = meta.last_log_id {
            self.store.set_applied(l.index);
        }
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
