//! The primary's own log appends that are not durable yet.
//!
//! Raft lets a leader write an entry to its own disk while it sends it to its followers
//! (Raft thesis §10.2.1), provided it counts itself toward the entry's commit only once its
//! copy is durable. openraft 0.9 counts the primary as soon as its append returns and
//! replicates only after that, so a synced append puts the primary's fsync before the
//! backups' instead of beside them: a lone write would wait for two fsyncs in a row.
//!
//! So the log store returns from an append the primary makes as leader once the entries are
//! queued to the writer (and readable from the log's in-memory tail), and this module keeps
//! openraft's early count from showing anywhere before the primary's copy is durable:
//! - the state machine applies an entry only once it is durable here
//!   ([`Flushes::wait_durable`]), so no client is answered and no read sees it before it is on
//!   a majority of disks (the primary's and those of the backups that acknowledged it, which
//!   sync before they answer);
//! - the commit index sent to the backups is held back to the last entry durable here
//!   ([`Flushes::clamp_commit`]), so no backup applies it before then either;
//! - a commit index held back is sent as soon as the entries are durable
//!   ([`Flushes::released`]: the replica sends a heartbeat; openraft sends it only to backups
//!   with no message in flight, and the others learn it with their next message, at the
//!   latest the next periodic heartbeat);
//! - an append that fails (or that the writer drops unwritten) stays pending for good: the
//!   commit index stays held before it, nothing more applies and no further append is written,
//!   so the replica stops (its state machine fails) with a log that has no gap.
//!
//! An entry openraft counted as committed and that the primary loses in a crash before its
//! sync was seen by nobody, as if it had not been committed: a later leader may keep it or
//! drop it, as for any entry that is not. Entries that change the membership are appended
//! synced, as before: openraft acts on a committed membership itself (a removed primary steps
//! down), which the two holds above would not cover.
//!
//! Appends of the primary are queued in order to the single writer, which writes them in
//! order; the writer thread reports each one here ([`Flushes::end`]) after writing it.

use std::collections::VecDeque;
use std::sync::Arc;

use openraft::LogId;
use tokio::sync::watch;

use super::types::NodeId;

/// The appends queued and not yet durable, and the holds they put on what is visible.
#[derive(Debug)]
pub struct Flushes {
    state: watch::Sender<State>,
    /// Counts the commit indexes held back and then released (see [`Flushes::released`]).
    released: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// Appends queued to the writer and not yet written, in queue order.
    pending: VecDeque<Pending>,
    next_seq: u64,
    /// Entries and encoded bytes of the pending appends.
    entries: usize,
    bytes: usize,
    /// A commit index was held back since the last append became durable.
    held: bool,
    /// Why a pending append failed; the log can no longer be trusted, nothing more applies.
    failed: Option<String>,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    /// The index of the append's first entry.
    first: u64,
    /// The log id of the entry before it, if known.
    prev: Option<LogId<NodeId>>,
    entries: usize,
    bytes: usize,
}

/// Limits on what may be pending at once: the entries must stay in the log's in-memory tail
/// until they are written, since reads of the engine would not find them.
#[derive(Clone, Copy, Debug)]
pub struct Room {
    /// Entries pending, at most.
    pub entries: usize,
    /// Encoded bytes pending, at most.
    pub bytes: usize,
}

impl Default for Flushes {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(State::default()),
            released: watch::Sender::new(0),
        }
    }
}

impl Flushes {
    /// Records an append of `entries` entries (`bytes` encoded) from index `first`, about to be
    /// queued to the writer; `prev` is the log id of the entry before it, if known. Returns the
    /// append's number for [`Flushes::end`], or `None` when it must be written synced instead:
    /// past `room`, or after a failed append.
    pub fn begin(
        &self,
        first: u64,
        prev: Option<LogId<NodeId>>,
        entries: usize,
        bytes: usize,
        room: Room,
    ) -> Option<u64> {
        let mut seq = None;
        self.state.send_if_modified(|s| {
            if s.failed.is_some()
                || s.entries + entries > room.entries
                || s.bytes + bytes > room.bytes
            {
                return false;
            }
            let n = s.next_seq;
            s.next_seq += 1;
            s.entries += entries;
            s.bytes += bytes;
            s.pending.push_back(Pending {
                seq: n,
                first,
                prev,
                entries,
                bytes,
            });
            seq = Some(n);
            // Nobody waits for an append to begin.
            false
        });
        seq
    }

    /// Records that append `seq` was written and synced (`Ok`) or failed. A failed append
    /// stays pending for good: the commit index stays held back before it, and nothing more
    /// applies (the replica stops; after a restart the log is what the disk holds).
    pub fn end(&self, seq: u64, result: Result<(), String>) {
        let mut release = false;
        self.state.send_modify(|s| {
            match result {
                Ok(()) => {
                    if let Some(at) = s.pending.iter().position(|p| p.seq == seq) {
                        if let Some(p) = s.pending.remove(at) {
                            s.entries -= p.entries;
                            s.bytes -= p.bytes;
                        }
                    }
                }
                Err(e) => {
                    s.failed.get_or_insert(e);
                }
            }
            if s.held && s.pending.is_empty() {
                s.held = false;
                release = true;
            }
        });
        if release {
            self.released.send_modify(|n| *n += 1);
        }
    }

    /// Why an append failed, if one did: no further append may be written (the log would
    /// have a gap).
    pub fn failure(&self) -> Option<String> {
        self.state.borrow().failed.clone()
    }

    /// A guard that reports append `seq`'s result ([`Completion::report`]), or a failure if it
    /// is dropped unreported (the writer dropped the append without writing it).
    pub fn completion(self: &Arc<Self>, seq: u64) -> Completion {
        Completion {
            flushes: self.clone(),
            seq,
            reported: false,
        }
    }

    /// Waits until the entries up to `index` are durable here: no pending append writes any
    /// of them. Fails once an append failed.
    pub async fn wait_durable(&self, index: u64) -> Result<(), String> {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| s.failed.is_some() || s.pending.iter().all(|p| p.first > index))
            .await
            .map_err(|_| "the log store has stopped".to_string())?;
        match &state.failed {
            Some(e) => Err(format!("a log append failed: {e}")),
            None => Ok(()),
        }
    }

    /// The commit index the backups may be told: `commit`, or less when a pending append
    /// holds entries up to it (then the log id before the earliest pending entry, or `None`
    /// when that is unknown).
    pub fn clamp_commit(&self, commit: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
        let mut clamped = commit;
        self.state.send_if_modified(|s| {
            let Some(earliest) = s.pending.iter().min_by_key(|p| p.first) else {
                return false;
            };
            if commit.is_some_and(|c| c.index >= earliest.first) {
                clamped = earliest
                    .prev
                    .filter(|p| p.index < earliest.first)
                    .min(commit);
                s.held = true;
            }
            false
        });
        clamped
    }

    /// How many callers wait in [`Flushes::wait_durable`].
    #[cfg(test)]
    pub fn waiters(&self) -> usize {
        self.state.receiver_count()
    }

    /// A receiver that sees a change whenever a commit index held back by
    /// [`Flushes::clamp_commit`] can be sent: every append pending when it was held is durable.
    pub fn released(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }
}

/// Reports a queued append's result to [`Flushes`] exactly once; see [`Flushes::completion`].
#[derive(Debug)]
pub struct Completion {
    flushes: Arc<Flushes>,
    seq: u64,
    reported: bool,
}

impl Completion {
    /// Reports the append's result.
    pub fn report(mut self, result: Result<(), String>) {
        self.reported = true;
        self.flushes.end(self.seq, result);
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.reported {
            let dropped = "the writer dropped the append without writing it".to_string();
            self.flushes.end(self.seq, Err(dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    const ROOM: Room = Room {
        entries: 8,
        bytes: 1000,
    };

    fn id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    #[tokio::test]
    async fn entries_are_durable_once_no_pending_append_holds_them() {
        let f = Flushes::default();
        f.wait_durable(10).await.expect("nothing pending");
        let a = f.begin(5, Some(id(1, 4)), 2, 10, ROOM).expect("room");
        let b = f.begin(7, Some(id(1, 6)), 1, 10, ROOM).expect("room");
        f.wait_durable(4).await.expect("before the pending appends");
        let waiter = f.wait_durable(7);
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        f.end(a, Ok(()));
        assert!(
            futures::poll!(waiter.as_mut()).is_pending(),
            "7 is still pending"
        );
        f.wait_durable(6).await.expect("5..=6 written");
        f.end(b, Ok(()));
        waiter.await.expect("7 written");
    }

    #[tokio::test]
    async fn a_failed_append_fails_every_wait_and_holds_the_commit_index_for_good() {
        let f = Arc::new(Flushes::default());
        let released = f.released();
        let a = f.begin(5, Some(id(1, 4)), 1, 10, ROOM).expect("room");
        assert_eq!(f.clamp_commit(Some(id(1, 5))), Some(id(1, 4)), "held");
        f.end(a, Err("disk full".into()));
        let e = f.wait_durable(5).await.expect_err("failed");
        assert!(e.contains("disk full"), "{e}");
        assert!(
            f.wait_durable(1).await.is_err(),
            "nothing applies after a failure"
        );
        assert!(f.failure().is_some_and(|e| e.contains("disk full")));
        assert_eq!(f.begin(6, None, 1, 10, ROOM), None, "no more early appends");
        assert_eq!(f.clamp_commit(Some(id(1, 5))), Some(id(1, 4)), "still held");
        assert!(!released.has_changed().expect("open"), "never released");
    }

    #[tokio::test]
    async fn an_append_dropped_unreported_fails_and_a_reported_one_counts_once() {
        let f = Arc::new(Flushes::default());
        let a = f.begin(5, None, 1, 10, ROOM).expect("room");
        drop(f.completion(a));
        assert!(
            f.wait_durable(5).await.is_err(),
            "dropped unreported: failed"
        );
        let g = Arc::new(Flushes::default());
        let b = g.begin(5, None, 1, 10, ROOM).expect("room");
        g.completion(b).report(Ok(()));
        g.wait_durable(5).await.expect("reported once, written");
        assert_eq!(g.failure(), None, "the drop after a report reports nothing");
    }

    #[test]
    fn appends_past_the_room_go_synced() {
        let f = Flushes::default();
        let a = f.begin(1, None, 6, 100, ROOM).expect("room");
        assert_eq!(f.begin(7, None, 3, 100, ROOM), None, "9 entries > 8");
        assert_eq!(f.begin(7, None, 1, 901, ROOM), None, "1001 bytes > 1000");
        f.end(a, Ok(()));
        assert!(f.begin(7, None, 8, 1000, ROOM).is_some());
    }

    #[tokio::test]
    async fn the_commit_index_is_held_back_to_the_last_durable_entry_then_released() {
        let f = Flushes::default();
        let mut released = f.released();
        assert_eq!(f.clamp_commit(Some(id(1, 9))), Some(id(1, 9)));
        let a = f.begin(10, Some(id(1, 9)), 1, 10, ROOM).expect("room");
        let b = f.begin(11, Some(id(1, 10)), 1, 10, ROOM).expect("room");
        assert_eq!(f.clamp_commit(Some(id(1, 9))), Some(id(1, 9)), "not held");
        assert_eq!(f.clamp_commit(None), None);
        assert!(!released.has_changed().expect("open"));
        assert_eq!(f.clamp_commit(Some(id(1, 11))), Some(id(1, 9)), "held");
        f.end(a, Ok(()));
        assert!(!released.has_changed().expect("open"), "11 still pending");
        assert_eq!(f.clamp_commit(Some(id(1, 11))), Some(id(1, 10)));
        f.end(b, Ok(()));
        assert!(released.has_changed().expect("open"), "released");
        released.mark_unchanged();
        assert_eq!(f.clamp_commit(Some(id(1, 11))), Some(id(1, 11)));
        let c = f.begin(12, None, 1, 10, ROOM).expect("room");
        assert_eq!(
            f.clamp_commit(Some(id(1, 12))),
            None,
            "the entry before is unknown"
        );
        f.end(c, Ok(()));
        assert!(released.has_changed().expect("open"));
    }
}
