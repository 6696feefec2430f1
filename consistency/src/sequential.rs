//! Sequential consistency checking of read/write/cas register histories, **per key**.
//!
//! A history is sequentially consistent (Lamport, "How to Make a Multiprocessor Computer That
//! Correctly Executes Multiprocess Programs", 1979) when its operations can be put in one total
//! order that respects each client's program order and is legal for the register (see
//! [`crate::register`]). Unlike linearizability it ignores real time between clients.
//!
//! **What is checked, honestly.** Sequential consistency is *not* local (Herlihy, Wing 1990,
//! §3.3): a history can be sequentially consistent on every key and not as a whole. This
//! checker checks each key on its own, so a `Valid` verdict means "sequentially consistent per
//! key" (what dialkv's per-key ABD path promises, DESIGN.md §4), and an `Invalid` verdict is
//! a real violation (a key that is not sequentially consistent makes the whole history not
//! sequentially consistent).
//!
//! **Program order.** Operation `a` must precede `b` when both belong to the same session and
//! `a` completed before `b` was invoked; within a process that is simply the process's order.
//! An `info` operation precedes nothing (it may take effect at any later time) and may never
//! take effect; `fail` operations are dropped.
//!
//! **Search.** Deciding sequential consistency is NP-complete even for registers (Gibbons,
//! Korach, "Testing Shared Memories", SIAM J. Comput. 1997). The search is a depth-first
//! search over the processes' queues of operations: a configuration is the position reached in
//! each queue plus the register state, and a memo of explored configurations keeps it from
//! exploring one twice. A configuration where an operation still to place needs a value that
//! is neither the current one nor written by anything still to place is abandoned at once:
//! without that, a CI run's key of 33 operations (a write placed before the stale read of the
//! value it replaced) went unknown after 2 million steps, and is decided in under 2,000 with
//! it. A step budget ([`SearchConfig::max_steps`]) turns a search that would run too long into
//! [`Verdict::Unknown`].
//!
//! A key that passes the linearizability search is accepted at once (linearizable implies
//! sequentially consistent); only the others go through the search above.
//!
//! **Witness.** As for linearizability: the operation that could not be placed when the search
//! got furthest, and a 1-minimal set of the key's operations that is not sequentially
//! consistent on its own.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{History, Op, ProcessId};
use crate::register::{self, RegOp, RegState, SearchResult};
use crate::verdict::Verdict;

pub use crate::register::SearchConfig;

/// Checks that a register history is sequentially consistent on every key, with the default
/// budget.
pub fn check(history: &History) -> Verdict {
    check_with(history, &SearchConfig::default())
}

/// Checks that a register history is sequentially consistent on every key.
pub fn check_with(history: &History, config: &SearchConfig) -> Verdict {
    if let Some(op) = history.ops().iter().find(|op| op.key.is_none()) {
        return Verdict::unknown(format!(
            "the register checkers handle single-key operations; {} at event {} has no key",
            op.f, op.index
        ));
    }
    Verdict::merge(
        history
            .ops_by_key()
            .into_iter()
            .map(|(key, ops)| check_key(key, &ops, config)),
    )
}

/// Checks one key's operations (all on `key`, in invocation order).
pub fn check_key(key: &str, ops: &[&Op], config: &SearchConfig) -> Verdict {
    let prepared = match register::prepare(key, ops) {
        Ok(p) => p,
        Err(v) => return v,
    };
    // Fast path: a linearizable key is sequentially consistent (a real-time order respects
    // every session's order), and the real-time search is far more constrained.
    if let SearchResult::Ok = crate::linearizable::search(&prepared, config.max_steps) {
        return Verdict::Valid;
    }
    match search(&prepared, config.max_steps) {
        SearchResult::Ok => Verdict::Valid,
        SearchResult::OutOfBudget => Verdict::unknown(format!(
            "key {key}: sequential-consistency search budget of {} steps exhausted ({} \
             operations)",
            config.max_steps,
            prepared.len()
        )),
        SearchResult::Violation { stuck } => {
            let sub_budget = (config.max_steps / 10).max(10_000);
            let minimal = if config.shrink {
                let (win, focus) = register::window(&prepared, stuck, 300);
                match search(&win, sub_budget) {
                    SearchResult::Violation { .. } => {
                        Some(register::shrink(&win, focus, |s| search(s, sub_budget)))
                    }
                    _ => None,
                }
            } else {
                None
            };
            let shown = minimal.unwrap_or_else(|| prepared.clone());
            let stuck_op = match search(&shown, sub_budget) {
                SearchResult::Violation { stuck } => shown[stuck],
                _ => prepared[stuck],
            };
            let (anomaly, what) =
                register::classify(key, &prepared, &stuck_op, false, "nonsequential");
            let explanation = format!(
                "{what}. These {} operations on key {key} admit no total order that respects \
                 each session's order and register semantics.",
                shown.len()
            );
            Verdict::invalid(
                anomaly,
                register::witness(&shown, stuck_op.op.index),
                explanation,
            )
        }
    }
}

/// The search over per-process queues. See the module docs.
pub(crate) fn search(ops: &[RegOp<'_>], max_steps: u64) -> SearchResult {
    if ops.is_empty() {
        return SearchResult::Ok;
    }
    // Queues: one per process, in invocation order (a process runs one operation at a time,
    // and the prepared operations come in invocation order).
    let mut chain_of_process: BTreeMap<ProcessId, usize> = BTreeMap::new();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for (i, r) in ops.iter().enumerate() {
        let next = chains.len();
        let c = *chain_of_process.entry(r.op.process).or_insert(next);
        if c == chains.len() {
            chains.push(Vec::new());
        }
        chains[c].push(i);
    }
    // Cross-process session order: op `b` needs, for each other queue of its session, every
    // non-info operation that completed before `b` was invoked.
    let mut needs: Vec<Vec<(usize, u32)>> = vec![Vec::new(); ops.len()];
    let mut chains_of_session: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (c, q) in chains.iter().enumerate() {
        chains_of_session
            .entry(ops[q[0]].op.session)
            .or_default()
            .push(c);
    }
    for same in chains_of_session.values().filter(|cs| cs.len() > 1) {
        for &cb in same {
            for &b in &chains[cb] {
                for &ca in same.iter().filter(|&&ca| ca != cb) {
                    let last_before = chains[ca]
                        .iter()
                        .rposition(|&a| !ops[a].info && ops[a].ret < ops[b].call);
                    if let Some(k) = last_before {
                        needs[b].push((ca, (k + 1) as u32));
                    }
                }
            }
        }
    }
    let finished = |pos: &[u32]| {
        chains.iter().zip(pos).all(|(q, &p)| {
            let p = p as usize;
            p == q.len() || (p + 1 == q.len() && ops[q[p]].info)
        })
    };

    // Queues to try from a configuration, the one whose next operation was invoked first
    // first: a history that is linearizable is then decided with little backtracking.
    let order = |pos: &[u32]| -> Vec<usize> {
        let mut cs: Vec<usize> = (0..chains.len())
            .filter(|&c| (pos[c] as usize) < chains[c].len())
            .collect();
        cs.sort_by_key(|&c| ops[chains[c][pos[c] as usize]].call);
        cs
    };
    // A configuration is hopeless when an operation still to place (not `info`: those may
    // never take effect) needs a state that is not the current one and that no operation
    // still to place can produce: it can never be placed. Without this, one wrong early
    // choice (a write placed before a stale read of the value it replaced) is found only
    // after every interleaving of the other processes' operations has been tried. The
    // counts behind it follow the search as it places and takes back operations.
    let mut starving = Starving::new(ops);
    // The operation a hopeless configuration can never place (for the report).
    let never_placed = |starving: &Starving<'_, '_>, pos: &[u32], state: RegState| {
        chains
            .iter()
            .zip(pos)
            .flat_map(|(q, &p)| q[p as usize..].iter().copied())
            .filter(|&i| !ops[i].info)
            .find(|&i| {
                ops[i]
                    .kind
                    .needs()
                    .is_some_and(|need| need != state && starving.starved.contains(&need))
            })
    };
    let start: Vec<u32> = vec![0; chains.len()];
    let mut seen: HashSet<(Vec<u32>, RegState)> = HashSet::new();
    seen.insert((start.clone(), None));
    // Depth-first: each frame is a configuration, its queues in trial order, how many of them
    // were tried, and the operation placed to reach it.
    let first = order(&start);
    type Frame = (Vec<u32>, RegState, Vec<usize>, usize, Option<usize>);
    let mut stack: Vec<Frame> = vec![(start, None, first, 0, None)];
    let mut steps: u64 = 0;
    let mut best: Option<(u32, usize)> = None; // (placed operations, stuck op)

    // The start can be hopeless too: an operation needs a value nothing writes.
    if starving.hopeless(None) {
        let start = &stack[0].0;
        best = never_placed(&starving, start, None).map(|i| (0, i));
    }
    while let Some(frame) = stack.last_mut() {
        if finished(&frame.0) {
            return SearchResult::Ok;
        }
        if frame.3 == frame.2.len() {
            let placed: u32 = frame.0.iter().sum();
            if best.is_none_or(|(depth, _)| placed > depth) {
                let stuck = (0..chains.len())
                    .filter_map(|c| chains[c].get(frame.0[c] as usize).copied())
                    .min_by_key(|&i| (ops[i].info, ops[i].call))
                    .expect("not finished, so some queue has an operation left");
                best = Some((placed, stuck));
            }
            if let Some(i) = frame.4 {
                starving.take_back(i);
            }
            stack.pop();
            continue;
        }
        let c = frame.2[frame.3];
        frame.3 += 1;
        steps += 1;
        if steps > max_steps {
            return SearchResult::OutOfBudget;
        }
        let pos = &frame.0;
        let Some(&i) = chains[c].get(pos[c] as usize) else {
            continue;
        };
        if !needs[i].iter().all(|&(ca, k)| pos[ca] >= k) {
            continue;
        }
        let Some(new_state) = ops[i].kind.step(frame.1) else {
            continue;
        };
        let mut new_pos = pos.clone();
        new_pos[c] += 1;
        if !seen.insert((new_pos.clone(), new_state)) {
            continue;
        }
        starving.place(i);
        if starving.hopeless(new_state) {
            let placed: u32 = new_pos.iter().sum();
            if best.is_none_or(|(depth, _)| placed > depth) {
                if let Some(stuck) = never_placed(&starving, &new_pos, new_state) {
                    best = Some((placed, stuck));
                }
            }
            starving.take_back(i);
            continue;
        }
        let next = order(&new_pos);
        stack.push((new_pos, new_state, next, 0, Some(i)));
    }
    let (_, stuck) = best.expect("the search visited a dead end before giving up");
    SearchResult::Violation { stuck }
}

/// Which states operations still to place need and can produce, kept as counts that follow
/// the search: a state is *starved* when some operation still to place (not `info`) needs it
/// and none still to place produces it.
struct Starving<'a, 'h> {
    ops: &'a [RegOp<'h>],
    producers: HashMap<RegState, u32>,
    needers: HashMap<RegState, u32>,
    starved: HashSet<RegState>,
    /// Which operations are placed, to check the counts against a recount in unit tests.
    #[cfg(test)]
    placed: Vec<bool>,
}

impl<'a, 'h> Starving<'a, 'h> {
    /// Every operation still to place.
    fn new(ops: &'a [RegOp<'h>]) -> Self {
        let mut s = Starving {
            ops,
            producers: HashMap::new(),
            needers: HashMap::new(),
            starved: HashSet::new(),
            #[cfg(test)]
            placed: vec![false; ops.len()],
        };
        for i in 0..ops.len() {
            s.count(i, 1);
        }
        s
    }

    fn count(&mut self, i: usize, add: i32) {
        let r = &self.ops[i];
        let produces = r.kind.writes();
        let needs = r.kind.needs().filter(|_| !r.info);
        if let Some(s) = produces {
            let n = self.producers.entry(s).or_default();
            *n = n.checked_add_signed(add).expect("counts follow the search");
        }
        if let Some(s) = needs {
            let n = self.needers.entry(s).or_default();
            *n = n.checked_add_signed(add).expect("counts follow the search");
        }
        // Without a list per call: this runs at every step of the search.
        for s in [produces, needs].into_iter().flatten() {
            let needed = self.needers.get(&s).is_some_and(|&n| n > 0);
            let produced = self.producers.get(&s).is_some_and(|&n| n > 0);
            if needed && !produced {
                self.starved.insert(s);
            } else {
                self.starved.remove(&s);
            }
        }
    }

    /// Operation `i` is placed.
    fn place(&mut self, i: usize) {
        self.count(i, -1);
        #[cfg(test)]
        self.recount(i, true);
    }

    /// Operation `i` is taken back.
    fn take_back(&mut self, i: usize) {
        self.count(i, 1);
        #[cfg(test)]
        self.recount(i, false);
    }

    /// Checks the starved states against a count from scratch.
    #[cfg(test)]
    fn recount(&mut self, i: usize, placed: bool) {
        assert_ne!(self.placed[i], placed, "placed or taken back twice");
        self.placed[i] = placed;
        let left = || {
            (0..self.ops.len())
                .filter(|&j| !self.placed[j])
                .map(|j| &self.ops[j])
        };
        let produced: HashSet<RegState> = left().filter_map(|r| r.kind.writes()).collect();
        let starved: HashSet<RegState> = left()
            .filter(|r| !r.info)
            .filter_map(|r| r.kind.needs())
            .filter(|s| !produced.contains(s))
            .collect();
        assert_eq!(starved, self.starved);
    }

    /// Whether some operation still to place can never be placed from `state`.
    fn hopeless(&self, state: RegState) -> bool {
        self.starved.iter().any(|&s| s != state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryBuilder;
    use serde_json::{json, Value};

    fn op(b: &mut HistoryBuilder, p: u64, f: &str, v: Value, call: u64, ret: u64) {
        let inv = if f == "read" { Value::Null } else { v.clone() };
        b.invoke(p, f, "k", inv, call);
        b.ok(p, f, "k", v, ret);
    }

    #[test]
    fn a_process_that_deleted_never_reads_the_old_value_again() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0, 1);
        op(&mut b, 1, "delete", Value::Null, 2, 3);
        op(&mut b, 1, "read", Value::Null, 4, 5);
        assert_eq!(check(&b.build().expect("well-formed")), Verdict::Valid);
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0, 1);
        op(&mut b, 1, "delete", Value::Null, 2, 3);
        op(&mut b, 1, "read", json!(1), 4, 5);
        assert!(check(&b.build().expect("well-formed")).is_invalid());
    }

    /// A stale read invoked after the write that replaced its value: the search, trying
    /// the earliest invoked operation first, places the write first, and the read can then
    /// never be placed. That is seen at once, not after every interleaving of ten other
    /// processes' thirty writes (which would not fit the budget). (Proving such a history
    /// invalid still means trying those interleavings: the rule only cuts branches that
    /// cannot succeed.)
    #[test]
    fn a_read_that_can_never_be_placed_ends_the_branch_at_once() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0, 1);
        op(&mut b, 2, "write", json!(2), 2, 3);
        op(&mut b, 3, "read", json!(1), 4, 5);
        let mut t = 6;
        for k in 0..30u64 {
            op(&mut b, 10 + k % 10, "write", json!(100 + k), t, t + 1);
            t += 2;
        }
        let h = b.build().expect("well-formed");
        let budget = SearchConfig {
            max_steps: 50_000,
            shrink: false,
        };
        assert!(crate::linearizable::check(&h).is_invalid());
        assert_eq!(check_with(&h, &budget), Verdict::Valid);
    }

    #[test]
    fn stale_reads_across_processes_are_sequential() {
        // p2 reads the old value after p1's write completed: not linearizable, but a
        // sequential order exists (p2's read first).
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0, 1);
        op(&mut b, 2, "read", Value::Null, 2, 3);
        let h = b.build().expect("well-formed");
        assert!(crate::linearizable::check(&h).is_invalid());
        assert_eq!(check(&h), Verdict::Valid);
    }

    #[test]
    fn read_your_writes_violation_is_not_sequential() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0, 1);
        op(&mut b, 1, "read", Value::Null, 2, 3);
        let v = check(&b.build().expect("well-formed"));
        assert_eq!(v.anomaly(), Some("nonsequential"), "{v}");
        assert_eq!(v.witness().len(), 2);
    }

    /// The operation reported as the one that cannot be placed is the read that never can,
    /// not the write after which the search gave up on it.
    #[test]
    fn the_read_that_can_never_be_placed_is_the_one_reported() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0, 1);
        op(&mut b, 1, "write", json!(2), 2, 3);
        op(&mut b, 1, "read", json!(1), 4, 5);
        let v = check(&b.build().expect("well-formed"));
        assert!(v.is_invalid(), "{v}");
        let stuck: Vec<&str> = v
            .witness()
            .iter()
            .filter(|w| w.role.as_deref() == Some("cannot be placed"))
            .map(|w| w.f.as_str())
            .collect();
        assert_eq!(stuck, ["read"], "{v}");
    }

    #[test]
    fn reads_going_back_are_not_sequential() {
        let mut b = HistoryBuilder::new();
        op(&mut b, 1, "write", json!(1), 0, 1);
        op(&mut b, 1, "write", json!(2), 2, 3);
        op(&mut b, 2, "read", json!(2), 4, 5);
        op(&mut b, 2, "read", json!(1), 6, 7);
        op(&mut b, 3, "read", json!(1), 0, 9);
        let v = check(&b.build().expect("well-formed"));
        assert!(v.is_invalid(), "{v}");
        let idx: Vec<u64> = v.witness().iter().map(|w| w.index).collect();
        assert_eq!(idx.len(), 4, "{v}");
    }

    #[test]
    fn session_order_spans_processes() {
        // Process 1 writes 1 (ok), then writes 2 (info) and is retired; process 3 continues
        // session 1 and reads null: the ok write precedes it in session order.
        let mut b = HistoryBuilder::new();
        b.session(3, 1);
        op(&mut b, 1, "write", json!(1), 0, 1);
        b.invoke(1, "write", "k", json!(2), 2);
        b.info(1, "write", "k", json!(2), 3);
        op(&mut b, 3, "read", Value::Null, 4, 5);
        assert!(check(&b.build().expect("well-formed")).is_invalid());

        // Reading the info write's value later is fine, and so is reading 1 after it.
        let mut b = HistoryBuilder::new();
        b.session(3, 1);
        op(&mut b, 1, "write", json!(1), 0, 1);
        b.invoke(1, "write", "k", json!(2), 2);
        b.info(1, "write", "k", json!(2), 3);
        op(&mut b, 3, "read", json!(1), 4, 5);
        op(&mut b, 3, "read", json!(2), 6, 7);
        assert_eq!(check(&b.build().expect("well-formed")), Verdict::Valid);
    }

    #[test]
    fn budget_gives_unknown() {
        let mut b = HistoryBuilder::new();
        // 12 processes each write then read a value only another process wrote; the last
        // read makes it impossible, which the search needs about 150 steps to prove.
        for p in 0..12u64 {
            op(&mut b, p, "write", json!(p), 10 * p, 10 * p + 1);
            op(
                &mut b,
                p,
                "read",
                json!((p + 1) % 12),
                10 * p + 2,
                10 * p + 3,
            );
            op(&mut b, p, "read", json!(p), 10 * p + 4, 10 * p + 5);
        }
        let h = b.build().expect("well-formed");
        let config = SearchConfig {
            max_steps: 20,
            shrink: true,
        };
        let v = check_with(&h, &config);
        assert!(v.is_unknown(), "{v}");
        let v = check_with(&h, &SearchConfig::default());
        assert!(v.is_invalid(), "{v}");
    }
}
