//! Transactions in the state machine: interactive commits validated against their snapshot
//! (optimistic concurrency control), and one-shot compare/then/else transactions.
//!
//! Both are applied as one log entry, so they are atomic and every replica applies them the
//! same way. An interactive transaction read the namespace at its snapshot revision `S`; its
//! commit entry, applied at revision `C`, checks that every key it read still has the
//! revision it saw and that no key in a range it scanned changed after `S`. If so, its reads
//! equal the state just before `C`, so the transaction is equivalent to running alone at `C`:
//! the commit order is the log order, which respects real time, and the history is strict
//! serializable (Kung & Robinson's backward validation).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{keys, ApplyError, Group, Item, NamespaceMeta, Outcome, RequestKey, Revision};
use crate::storage::{Cf, ReadTier, StorageError};

/// An interactive transaction's commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The namespace.
    pub ns: String,
    /// The revision its reads saw; `None` for a retried commit whose transaction is no longer
    /// open, which is only answered from its first outcome.
    pub snapshot: Option<Revision>,
    /// Keys read, with the revision seen (0: absent).
    pub reads: Vec<(Bytes, Revision)>,
    /// Ranges scanned, `[start, end)` (empty end: to the end of the namespace).
    pub ranges: Vec<(Bytes, Bytes)>,
    /// Writes: a value, or `None` for a delete.
    pub writes: Vec<(Bytes, Option<Bytes>)>,
    /// Deduplication.
    pub request: Option<RequestKey>,
}

/// What a one-shot compare checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The key exists with this value.
    ValueEquals(Bytes),
    /// The key exists at this revision.
    RevisionEquals(Revision),
    /// The key exists (`true`) or not (`false`).
    Exists(bool),
}

/// One operation of a one-shot transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sets a key.
    Put(Bytes, Bytes),
    /// Deletes a key.
    Delete(Bytes),
    /// Reads a key.
    Get(Bytes),
}

/// A one-shot transaction (etcd's Txn).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneShot {
    /// The namespace.
    pub ns: String,
    /// The conditions, all of which must hold.
    pub compares: Vec<(Bytes, Target)>,
    /// Run when every compare holds.
    pub success: Vec<Op>,
    /// Run otherwise.
    pub failure: Vec<Op>,
    /// Deduplication.
    pub request: Option<RequestKey>,
}

/// What one operation of a one-shot transaction did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    /// The key.
    pub key: Bytes,
    /// For a get: whether it exists; for a delete: whether it existed; for a put: true.
    pub found: bool,
    /// For a get: the value.
    pub value: Bytes,
    /// For a get: the revision of the value; for a write: the write's revision.
    pub revision: Revision,
}

impl Group<'_> {
    /// The newest revision of any key in `[start, end)` of `ns` changed after `snapshot`,
    /// deletions included (as tombstones), with the key.
    fn changed_in_range(
        &self,
        ns: &NamespaceMeta,
        start: &[u8],
        end: &[u8],
        snapshot: Revision,
    ) -> Result<Option<Bytes>, StorageError> {
        let in_range = |k: &[u8]| k >= start && (end.is_empty() || k < end);
        for ((id, key), state) in &self.overlay {
            if *id == ns.id && in_range(key) {
                // Written earlier in this group, so after any snapshot taken before it.
                let _ = state;
                return Ok(Some(key.clone()));
            }
        }
        let from = keys::scan_start(ns.id, start);
        let to = if end.is_empty() {
            keys::namespace_range(ns.id).1
        } else {
            keys::scan_start(ns.id, end)
        };
        let mut last: Option<Vec<u8>> = None;
        let mut found = None;
        let mut failure = None;
        self.store
            .engine
            .scan(Cf::Data, &from, Some(&to), ReadTier::Any, &mut |k, _| {
                match keys::decode_data_key(k) {
                    Ok((_, key, revision)) => {
                        if last.as_deref() != Some(&key[..]) {
                            // The newest version of this key, value or tombstone.
                            if revision > snapshot {
                                found = Some(Bytes::from(key));
                                return false;
                            }
                            last = Some(key);
                        }
                        true
                    }
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// Applies an interactive transaction's commit: validate, then write every write at this
    /// entry's revision.
    pub(super) fn commit(
        &mut self,
        meta: &NamespaceMeta,
        c: Commit,
    ) -> Result<Outcome, ApplyError> {
        let Some(snapshot) = c.snapshot else {
            return Err(ApplyError::TransactionUnknown);
        };
        if !self.store.options.unsafe_skip_txn_validation {
            for (key, seen) in &c.reads {
                let now = self.current(meta.id, key)?.map_or(0, |i| i.revision);
                if now != *seen {
                    return Ok(Outcome::Committed {
                        revision: 0,
                        conflict: Some(key.clone()),
                    });
                }
            }
            for (start, end) in &c.ranges {
                if let Some(key) = self.changed_in_range(meta, start, end, snapshot)? {
                    return Ok(Outcome::Committed {
                        revision: 0,
                        conflict: Some(key),
                    });
                }
            }
        }
        let mut revision = 0;
        for (key, value) in c.writes {
            revision = self.write_key(meta, key, value)?;
        }
        Ok(Outcome::Committed {
            revision,
            conflict: None,
        })
    }

    /// Applies a one-shot transaction.
    pub(super) fn one_shot(
        &mut self,
        meta: &NamespaceMeta,
        t: OneShot,
    ) -> Result<Outcome, ApplyError> {
        let mut holds = true;
        for (key, target) in &t.compares {
            let current: Option<Item> = self.current(meta.id, key)?;
            holds &= match (target, &current) {
                (Target::ValueEquals(v), Some(c)) => c.value == *v,
                (Target::RevisionEquals(r), Some(c)) => c.revision == *r,
                (Target::Exists(e), c) => *e == c.is_some(),
                _ => false,
            };
        }
        let ops = if holds { t.success } else { t.failure };
        let mut results = Vec::with_capacity(ops.len());
        let mut revision = 0;
        for op in ops {
            results.push(match op {
                Op::Get(key) => match self.current(meta.id, &key)? {
                    Some(item) => OpResult {
                        key,
                        found: true,
                        value: item.value,
                        revision: item.revision,
                    },
                    None => OpResult {
                        key,
                        found: false,
                        value: Bytes::new(),
                        revision: 0,
                    },
                },
                Op::Put(key, value) => {
                    revision = self.write_key(meta, key.clone(), Some(value))?;
                    OpResult {
                        key,
                        found: true,
                        value: Bytes::new(),
                        revision,
                    }
                }
                Op::Delete(key) => {
                    let existed = self.current(meta.id, &key)?.is_some();
                    revision = self.write_key(meta, key.clone(), None)?;
                    OpResult {
                        key,
                        found: existed,
                        value: Bytes::new(),
                        revision,
                    }
                }
            });
        }
        Ok(Outcome::OneShotDone {
            succeeded: holds,
            revision,
            results,
        })
    }
}
