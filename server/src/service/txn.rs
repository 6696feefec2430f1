//! Transactions at the primary: the table of open interactive transactions, and the Begin,
//! Commit, Abort and one-shot Txn handlers.
//!
//! An interactive transaction lives at the primary that began it: `Begin` confirms leadership
//! (a ReadIndex barrier) and takes the applied revision as the snapshot, so the snapshot holds
//! every write committed before `Begin`; reads inside it see that revision; `Commit` turns the
//! read set and write set into one log entry, validated when it is applied (see
//! `storage::store::txn`). Reads at the snapshot need the versions since it: the store keeps
//! `--retain-revisions` of history, and a transaction whose snapshot falls behind that window,
//! or that stays open longer than its maximum age, is aborted with a reason saying so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ServiceError;
use crate::storage::keys::Revision;

/// An open interactive transaction.
#[derive(Clone, Debug)]
pub struct OpenTxn {
    /// Its namespace.
    pub namespace: String,
    /// The revision its reads see.
    pub snapshot: Revision,
    started: Instant,
}

/// The open transactions of this replica.
#[derive(Debug)]
pub struct Transactions {
    next: AtomicU64,
    open: Mutex<HashMap<u64, OpenTxn>>,
    /// The most transactions open at once.
    pub max_open: usize,
    /// The longest a transaction may stay open.
    pub max_age: Duration,
}

/// The most keys and ranges one commit may have read, and the most writes.
pub const MAX_TXN_KEYS: usize = 10_000;
/// The most bytes of keys and values in one commit or one-shot transaction.
pub const MAX_TXN_BYTES: usize = 4 << 20;
/// The most compares, and ops per branch, in one one-shot transaction.
pub const MAX_ONESHOT_OPS: usize = 128;

impl Transactions {
    /// An empty table.
    pub fn new(max_open: usize, max_age: Duration) -> Self {
        // Ids start at a random point so a transaction id from before a restart (or from
        // another primary) is very unlikely to name a new one.
        let seed = rand::random::<u64>() >> 16;
        Self {
            next: AtomicU64::new(seed.max(1)),
            open: Mutex::new(HashMap::new()),
            max_open,
            max_age,
        }
    }

    /// Opens a transaction on `namespace` at `snapshot`.
    pub fn begin(&self, namespace: &str, snapshot: Revision) -> Result<u64, ServiceError> {
        let mut open = self.open.lock().expect("transaction table lock poisoned");
        let max_age = self.max_age;
        open.retain(|_, t| t.started.elapsed() < max_age);
        if open.len() >= self.max_open {
            return Err(ServiceError::ResourceExhausted {
                reason: "TOO_MANY_TRANSACTIONS",
                message: format!(
                    "{} transactions are open on this replica, the maximum; commit or abort some, or retry shortly",
                    self.max_open
                ),
                retry_after: Some(Duration::from_millis(100)),
            });
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        open.insert(
            id,
            OpenTxn {
                namespace: namespace.to_string(),
                snapshot,
                started: Instant::now(),
            },
        );
        Ok(id)
    }

    /// The open transaction `id` of `namespace`; with `end`, it is also closed.
    pub fn get(&self, id: u64, namespace: &str, end: bool) -> Result<OpenTxn, ServiceError> {
        let mut open = self.open.lock().expect("transaction table lock poisoned");
        let Some(txn) = open.get(&id).cloned() else {
            return Err(unknown(id));
        };
        if txn.namespace != namespace {
            return Err(ServiceError::invalid(
                "namespace",
                "TRANSACTION_NAMESPACE",
                format!(
                    "transaction {id} belongs to namespace {:?}; a transaction cannot span namespaces",
                    txn.namespace
                ),
            ));
        }
        if txn.started.elapsed() >= self.max_age {
            open.remove(&id);
            return Err(ServiceError::Aborted {
                reason: "TRANSACTION_EXPIRED",
                message: format!(
                    "transaction {id} was open longer than the maximum of {} ms and is aborted; retry it",
                    self.max_age.as_millis()
                ),
            });
        }
        if end {
            open.remove(&id);
        }
        Ok(txn)
    }

    /// Closes transaction `id` if it is open.
    pub fn abort(&self, id: u64) {
        self.open
            .lock()
            .expect("transaction table lock poisoned")
            .remove(&id);
    }
}

/// The error for a transaction this replica does not have open.
pub fn unknown(id: u64) -> ServiceError {
    ServiceError::Aborted {
        reason: "TRANSACTION_UNKNOWN",
        message: format!(
            "transaction {id} is not open here: it expired, was aborted or committed, or began at a primary that has since changed; retry it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_open_expire_and_fill_up() {
        let t = Transactions::new(2, Duration::from_secs(3600));
        let a = t.begin("ns", 7).expect("begin");
        let b = t.begin("ns", 8).expect("begin");
        assert!(matches!(
            t.begin("ns", 9),
            Err(ServiceError::ResourceExhausted { .. })
        ));
        assert_eq!(t.get(a, "ns", false).expect("open").snapshot, 7);
        assert!(matches!(
            t.get(a, "other", false),
            Err(ServiceError::InvalidArgument { .. })
        ));
        t.abort(b);
        assert!(matches!(
            t.get(b, "ns", false),
            Err(ServiceError::Aborted { .. })
        ));
        assert!(t.get(a, "ns", true).is_ok());
        assert!(matches!(
            t.get(a, "ns", false),
            Err(ServiceError::Aborted { .. })
        ));
        // With a maximum age of zero every transaction has outlived it.
        let zero = Transactions::new(2, Duration::ZERO);
        let c = zero.begin("ns", 1).expect("begin");
        let expired = zero.get(c, "ns", false).expect_err("expired");
        assert_eq!(expired.reason(), "TRANSACTION_EXPIRED");
    }
}
