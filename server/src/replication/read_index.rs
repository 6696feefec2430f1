//! Coalescing of linearizable-read barriers.
//!
//! Every LINEARIZABLE read needs the primary to confirm its leadership with a quorum
//! (ReadIndex, Raft §6.4): one heartbeat round. Reads that arrive together can share one round,
//! as long as the round *starts after each of them arrived*: the confirmation must postdate the
//! read's start, or a read could be served by a primary deposed in between. [`Coalescer`] keeps
//! that rule: a caller joins the waiting list; one runner at a time takes the whole list, runs a
//! round for it, answers it, and goes on while callers keep arriving. A caller that arrives
//! while a round is in flight waits for the next one.
//!
//! This is a hand-written concurrency structure, so its protocol is checked with loom
//! (`scripts/loom.sh`, which builds only this crate's tests with `--cfg loom`): every waiter
//! is answered exactly once, and no waiter is left behind when the runner goes idle.

#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::Mutex;

/// Batches waiters into rounds; see the module docs.
#[derive(Debug)]
pub struct Coalescer<T> {
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    /// Whether a runner is taking rounds.
    running: bool,
    /// Waiters that arrived after the last round was taken.
    waiting: Vec<T>,
}

impl<T> Default for Coalescer<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                running: false,
                waiting: Vec::new(),
            }),
        }
    }
}

impl<T> Coalescer<T> {
    /// Adds a waiter. Returns true when no runner is active: the caller must then become the
    /// runner (call [`Coalescer::next_round`] until it returns `None`).
    pub fn join(&self, waiter: T) -> bool {
        let mut state = self.state.lock().expect("coalescer lock poisoned");
        state.waiting.push(waiter);
        let start = !state.running;
        state.running = true;
        start
    }

    /// For the runner: the waiters of the next round, or `None` when there are none, in which
    /// case the runner has stopped (the next [`Coalescer::join`] starts a new one).
    pub fn next_round(&self) -> Option<Vec<T>> {
        let mut state = self.state.lock().expect("coalescer lock poisoned");
        if state.waiting.is_empty() {
            state.running = false;
            return None;
        }
        Some(std::mem::take(&mut state.waiting))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn waiters_that_join_during_a_round_go_to_the_next_one() {
        let c = Coalescer::default();
        assert!(c.join(1), "the first waiter starts the runner");
        assert!(!c.join(2), "a runner is active");
        assert_eq!(c.next_round(), Some(vec![1, 2]));
        assert!(!c.join(3), "joined while round 1 runs");
        assert_eq!(c.next_round(), Some(vec![3]));
        assert_eq!(c.next_round(), None, "idle");
        assert!(c.join(4), "a new runner starts");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two callers join while a runner takes rounds: each waiter is answered exactly once, and
    /// whoever is told to run drains the list, so nobody is left waiting.
    #[test]
    fn every_waiter_is_answered_once_and_none_is_stranded() {
        loom::model(|| {
            let c = Arc::new(Coalescer::default());
            let answered = Arc::new(loom::sync::Mutex::new(Vec::new()));
            let run = |c: &Coalescer<u32>, answered: &loom::sync::Mutex<Vec<u32>>| {
                while let Some(round) = c.next_round() {
                    answered.lock().expect("lock").extend(round);
                }
            };
            let handles: Vec<_> = (0..2u32)
                .map(|i| {
                    let (c, answered) = (c.clone(), answered.clone());
                    loom::thread::spawn(move || {
                        if c.join(i) {
                            run(&c, &answered);
                        }
                    })
                })
                .collect();
            if c.join(2) {
                run(&c, &answered);
            }
            for h in handles {
                h.join().expect("thread");
            }
            let mut got = answered.lock().expect("lock").clone();
            got.sort_unstable();
            assert_eq!(got, vec![0, 1, 2]);
            assert_eq!(c.next_round(), None);
        });
    }
}
