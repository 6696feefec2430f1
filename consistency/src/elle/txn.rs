//! Transactions as the Elle checker sees them: the operations of a [`History`] with their
//! micro-operations decoded and keys interned to dense ids.
//!
//! Every operation becomes one transaction: a `txn` with its micro-operations, or a
//! single-key `append`/`read` as a transaction of one micro-operation (Elle treats
//! list-append histories the same way). Reads are known only for `ok` operations
//! ([`crate::history::Op::mops`] leaves the others `None`).

use std::collections::HashMap;

use crate::history::{History, Op, OpKind};

/// A transaction's position in [`Txns::txns`].
pub(crate) type TxnId = u32;

/// An interned key.
pub(crate) type KeyId = u32;

/// A micro-operation over an interned key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MicroOp {
    /// Append `value` to `key`.
    Append { key: KeyId, value: i64 },
    /// Read `key`; `None` when the result is unknown.
    Read { key: KeyId, value: Option<Vec<i64>> },
}

/// One transaction.
#[derive(Debug)]
pub(crate) struct Txn<'h> {
    /// The operation it came from.
    pub op: &'h Op,
    /// Its micro-operations in order.
    pub mops: Vec<MicroOp>,
}

impl Txn<'_> {
    /// Returns how the transaction ended.
    pub(crate) fn kind(&self) -> OpKind {
        self.op.kind
    }
}

/// The transactions of a history.
#[derive(Debug)]
pub(crate) struct Txns<'h> {
    /// All operations that decoded, in invocation order.
    pub txns: Vec<Txn<'h>>,
    /// Key names by [`KeyId`].
    pub keys: Vec<String>,
}

impl<'h> Txns<'h> {
    /// Decodes every operation of `history`. Fails with a reason when an operation is not
    /// part of a list-append workload (a register write, a malformed micro-op, ...).
    pub(crate) fn from_history(history: &'h History) -> Result<Txns<'h>, String> {
        let mut ids: HashMap<String, KeyId> = HashMap::new();
        let mut keys: Vec<String> = Vec::new();
        let mut txns = Vec::with_capacity(history.ops().len());
        for op in history.ops() {
            let mops = op
                .mops()
                .map_err(|e| format!("not a list-append history: {e}"))?;
            let mops = mops
                .into_iter()
                .map(|m| {
                    let key = m.key();
                    let id = match ids.get(key) {
                        Some(&id) => id,
                        None => {
                            let id = KeyId::try_from(keys.len()).expect("fewer than 2^32 keys");
                            ids.insert(key.to_string(), id);
                            keys.push(key.to_string());
                            id
                        }
                    };
                    match m {
                        crate::history::Mop::Append { value, .. } => {
                            MicroOp::Append { key: id, value }
                        }
                        crate::history::Mop::Read { value, .. } => MicroOp::Read { key: id, value },
                    }
                })
                .collect();
            txns.push(Txn { op, mops });
        }
        if txns.len() >= TxnId::MAX as usize / 3 {
            return Err(format!(
                "{} operations are more than the checker indexes",
                txns.len()
            ));
        }
        Ok(Txns { txns, keys })
    }

    /// Returns the name of a key.
    pub(crate) fn key(&self, key: KeyId) -> &str {
        &self.keys[key as usize]
    }

    /// Returns the short name of a transaction in explanations: `T` and its invoke index.
    pub(crate) fn name(&self, t: TxnId) -> String {
        format!("T{}", self.txns[t as usize].op.index)
    }
}
