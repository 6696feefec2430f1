//! The read/write/cas register model shared by the [`crate::linearizable`] and
//! [`crate::sequential`] searches: decoding operations, pruning the ones that cannot matter,
//! the sequential specification, and shrinking a violation to a minimal witness.
//!
//! The sequential specification of a register (Herlihy, Wing 1990, §2): the state starts as
//! `None` (JSON `null`, never written); `write(v)` sets it to `v`; `delete` sets it back to
//! `None`; an ok `read` returning `r` is legal only when the state is `r`; an ok `cas [e, n]`
//! is legal only when the state is `e`, and sets it to `n` (a cas whose comparison failed
//! completes with `fail`). `final-read` counts as a read.
//!
//! Preparation of one key's operations:
//!
//! - `fail` operations are dropped: they certainly did not take effect.
//! - `info` reads are dropped: they have no effect and their result is unknown.
//! - an `info` write, cas or delete whose new value nobody observed (no ok read returned it,
//!   no cas expected it; for a delete, no read returned `null` and no cas expected it) is
//!   dropped. This is sound and complete: in any legal order, such a write can
//!   be removed, because nothing between it and the next write depends on its value, and an
//!   `info` operation is allowed never to take effect.
//! - the remaining `info` writes and cas may take effect at any time after their invocation,
//!   or never.

use std::collections::{HashMap, HashSet};

use crate::history::{Op, OpKind};
use crate::verdict::{Verdict, WitnessOp};

/// Limits on a search, so that a check always ends: a history the search cannot decide
/// within the limits is reported as [`Verdict::Unknown`], never a hang.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchConfig {
    /// Maximum search steps per key (one step tries one operation in one configuration).
    pub max_steps: u64,
    /// Whether to shrink a violation to a 1-minimal set of operations (re-runs the search on
    /// subsets; each re-run has `max_steps / 10` steps).
    pub shrink: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            max_steps: 2_000_000,
            shrink: true,
        }
    }
}

/// The effect of a register operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RegKind {
    /// An ok read that returned the value.
    Read(Option<i64>),
    /// A write of the value.
    Write(i64),
    /// A compare-and-set `[expected, new]`.
    Cas(Option<i64>, i64),
    /// A delete: the register is `None` again.
    Delete,
}

/// A register state: `None` until the first write.
pub(crate) type RegState = Option<i64>;

impl RegKind {
    /// Applies the operation to `state`: `Some(next)` when legal.
    pub(crate) fn step(self, state: RegState) -> Option<RegState> {
        match self {
            RegKind::Read(v) => (v == state).then_some(state),
            RegKind::Write(v) => Some(Some(v)),
            RegKind::Cas(e, n) => (e == state).then_some(Some(n)),
            RegKind::Delete => Some(None),
        }
    }

    /// Returns the value this operation writes, if it writes one (a delete writes none).
    pub(crate) fn written(self) -> Option<i64> {
        match self {
            RegKind::Read(_) | RegKind::Delete => None,
            RegKind::Write(v) | RegKind::Cas(_, v) => Some(v),
        }
    }

    /// Returns the state this operation leaves, if it changes the register: `Some(None)`
    /// for a delete.
    pub(crate) fn writes(self) -> Option<RegState> {
        match self {
            RegKind::Read(_) => None,
            RegKind::Delete => Some(None),
            RegKind::Write(v) | RegKind::Cas(_, v) => Some(Some(v)),
        }
    }

    /// Whether this operation needs the register to be `None` (a read of `null`, a cas
    /// expecting absence).
    fn observes_none(self) -> bool {
        self.needs() == Some(None)
    }

    /// The state this operation is legal in, if only one: the value a read returned, the
    /// value a cas expected.
    pub(crate) fn needs(self) -> Option<RegState> {
        match self {
            RegKind::Read(v) | RegKind::Cas(v, _) => Some(v),
            RegKind::Write(_) | RegKind::Delete => None,
        }
    }
}

/// One prepared register operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegOp<'h> {
    /// The original operation.
    pub(crate) op: &'h Op,
    /// Its effect.
    pub(crate) kind: RegKind,
    /// Invocation time.
    pub(crate) call: u64,
    /// Completion time; `u64::MAX` for `info`.
    pub(crate) ret: u64,
    /// True for `info` operations (may take effect or not).
    pub(crate) info: bool,
}

/// Decodes one key's operations and drops those that cannot matter (see the module docs).
/// Returns `Err(Unknown)` for operations the register model does not know.
pub(crate) fn prepare<'h>(key: &str, ops: &[&'h Op]) -> Result<Vec<RegOp<'h>>, Verdict> {
    let mut out = Vec::with_capacity(ops.len());
    for &op in ops {
        if op.kind == OpKind::Fail {
            continue;
        }
        let bad = |e: crate::history::HistoryError| {
            Verdict::unknown(format!("key {key}: cannot read a register operation: {e}"))
        };
        let kind = match op.f.as_str() {
            "read" | "final-read" => {
                if op.kind == OpKind::Info {
                    continue;
                }
                RegKind::Read(op.int_value().map_err(bad)?)
            }
            "write" => match op.int_value().map_err(bad)? {
                Some(v) => RegKind::Write(v),
                None => {
                    return Err(Verdict::unknown(format!(
                        "key {key}: write at event {} has no integer value",
                        op.index
                    )))
                }
            },
            "cas" => {
                let (e, n) = op.cas_value().map_err(bad)?;
                RegKind::Cas(e, n)
            }
            "delete" => RegKind::Delete,
            other => {
                return Err(Verdict::unknown(format!(
                    "key {key}: operation {other:?} at event {} is not a register operation \
                     (read, write, cas, delete, final-read)",
                    op.index
                )))
            }
        };
        out.push(RegOp {
            op,
            kind,
            call: op.invoke_ns,
            ret: op.end_ns(),
            info: op.kind == OpKind::Info,
        });
    }
    let observed = observed(&out);
    out.retain(|r| !r.info || r.kind.writes().is_some_and(|s| observed.contains(&s)));
    Ok(out)
}

/// The states some operation needs (a value a read returned, a value a cas expected).
pub(crate) fn observed(ops: &[RegOp<'_>]) -> HashSet<RegState> {
    ops.iter().filter_map(|r| r.kind.needs()).collect()
}

/// The outcome of one search.
pub(crate) enum SearchResult {
    /// A legal order exists.
    Ok,
    /// No legal order; `stuck` is the position (in the searched slice) of the operation the
    /// search could not place when it got furthest.
    Violation { stuck: usize },
    /// The step budget ran out.
    OutOfBudget,
}

/// Shrinks a violating set of operations to a 1-minimal one: removing any one operation left
/// makes the rest legal (or, for writes that produced a value some remaining read returned,
/// would leave that read without its writer, which would misname the anomaly). Operations far
/// in time from `focus` are tried first. `search` decides a subset.
pub(crate) fn shrink<'h>(
    ops: &[RegOp<'h>],
    focus: usize,
    mut search: impl FnMut(&[RegOp<'h>]) -> SearchResult,
) -> Vec<RegOp<'h>> {
    let focus_time = ops[focus].call;
    let mut current: Vec<RegOp<'h>> = ops.to_vec();
    for _pass in 0..3 {
        let mut order: Vec<usize> = (0..current.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(current[i].call.abs_diff(focus_time)));
        let mut removed: HashSet<u64> = HashSet::new();
        let mut changed = false;
        for i in order {
            let candidate = current[i];
            if is_needed_writer(&current, &removed, candidate) {
                continue;
            }
            let subset: Vec<RegOp<'h>> = current
                .iter()
                .filter(|r| r.op.index != candidate.op.index && !removed.contains(&r.op.index))
                .copied()
                .collect();
            if subset.is_empty() {
                continue;
            }
            if let SearchResult::Violation { .. } = search(&subset) {
                removed.insert(candidate.op.index);
                changed = true;
            }
        }
        current.retain(|r| !removed.contains(&r.op.index));
        if !changed {
            break;
        }
    }
    current
}

/// True when `candidate` is the only remaining writer of a value some remaining read returned.
fn is_needed_writer(current: &[RegOp<'_>], removed: &HashSet<u64>, candidate: RegOp<'_>) -> bool {
    let live = |r: &&RegOp<'_>| !removed.contains(&r.op.index) && r.op.index != candidate.op.index;
    if candidate.kind == RegKind::Delete {
        // A delete may be what lets a later read return `null` after a write: kept while
        // anything reads `null`, so a witness never shows a `null` read without its delete.
        return current.iter().filter(live).any(|r| r.kind.observes_none());
    }
    let Some(v) = candidate.kind.written() else {
        return false;
    };
    let read_by_someone = current.iter().filter(live).any(|r| match r.kind {
        RegKind::Read(x) => x == Some(v),
        RegKind::Cas(e, _) => e == Some(v),
        RegKind::Write(_) | RegKind::Delete => false,
    });
    let other_writer = current
        .iter()
        .filter(live)
        .any(|r| r.kind.written() == Some(v));
    read_by_someone && !other_writer
}

/// Names the anomaly a stuck operation shows and explains it in a sentence, from the whole
/// key's operations: a read of a value no write produced, a read of a value overwritten before
/// the read began, or a generic violation.
///
/// `real_time` says whether the model orders operations by real time (linearizability); a
/// stale read is only an anomaly there. `generic_name` names any other violation.
pub(crate) fn classify(
    key: &str,
    all: &[RegOp<'_>],
    stuck: &RegOp<'_>,
    real_time: bool,
    generic_name: &str,
) -> (String, String) {
    let read_value = match stuck.kind {
        RegKind::Read(v) => Some(v),
        _ => None,
    };
    let generic = (
        generic_name.to_string(),
        format!(
            "key {key}: {} at event {} could not take effect at any point the order allows",
            stuck.op.f, stuck.op.index
        ),
    );
    let Some(v) = read_value else {
        return generic;
    };
    let Some(value) = v else {
        // A write completed before the read began, and no delete could fall between them.
        let overwritten = all.iter().any(|w| {
            !w.info
                && w.kind.written().is_some()
                && w.ret < stuck.call
                && !all
                    .iter()
                    .any(|d| d.kind == RegKind::Delete && d.call < stuck.ret && d.ret > w.call)
        });
        return if overwritten && real_time {
            (
                "stale-read".to_string(),
                format!(
                    "key {key}: read at event {} returned the initial value (null), but a write \
                     had already completed before the read began",
                    stuck.op.index
                ),
            )
        } else {
            generic
        };
    };
    let writers: Vec<&RegOp<'_>> = all
        .iter()
        .filter(|r| r.kind.written() == Some(value))
        .collect();
    if writers.is_empty() {
        return (
            "read-of-unwritten-value".to_string(),
            format!(
                "key {key}: read at event {} returned {value}, which no write (ok or \
                 indeterminate) ever wrote",
                stuck.op.index
            ),
        );
    }
    // Every writer of the value completed, and then another (ok) write ran entirely between
    // that completion and the read's invocation.
    let overwritten = writers.iter().all(|w| {
        !w.info
            && all.iter().any(|o| {
                !o.info
                    && o.kind.writes().is_some_and(|x| x != Some(value))
                    && o.call > w.ret
                    && o.ret < stuck.call
            })
    });
    if overwritten && real_time {
        (
            "stale-read".to_string(),
            format!(
                "key {key}: read at event {} returned {value}, but another write had completed, \
                 after that value was written and before the read began",
                stuck.op.index
            ),
        )
    } else {
        generic
    }
}

/// Builds witness entries (in history order) for the given operations, marking the stuck one.
pub(crate) fn witness(ops: &[RegOp<'_>], stuck_index: u64) -> Vec<WitnessOp> {
    let mut sorted: Vec<&RegOp<'_>> = ops.iter().collect();
    sorted.sort_by_key(|r| r.op.index);
    sorted
        .into_iter()
        .map(|r| {
            let w = WitnessOp::from(r.op);
            if r.op.index == stuck_index {
                w.with_role("cannot be placed")
            } else {
                w
            }
        })
        .collect()
}

/// Reduces a large key history to a window around the stuck operation before shrinking: the
/// `limit` operations nearest in invocation time, plus the writers of the values they read.
pub(crate) fn window<'h>(ops: &[RegOp<'h>], focus: usize, limit: usize) -> (Vec<RegOp<'h>>, usize) {
    if ops.len() <= limit {
        return (ops.to_vec(), focus);
    }
    let t = ops[focus].call;
    let mut idx: Vec<usize> = (0..ops.len()).collect();
    idx.sort_by_key(|&i| ops[i].call.abs_diff(t));
    let mut keep: HashSet<usize> = idx.into_iter().take(limit).collect();
    let mut writer_of: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, r) in ops.iter().enumerate() {
        if let Some(v) = r.kind.written() {
            writer_of.entry(v).or_default().push(i);
        }
    }
    let reads: Vec<i64> = keep
        .iter()
        .filter_map(|&i| match ops[i].kind {
            RegKind::Read(Some(v)) | RegKind::Cas(Some(v), _) => Some(v),
            _ => None,
        })
        .collect();
    for v in reads {
        if let Some(ws) = writer_of.get(&v) {
            keep.extend(ws.iter().copied());
        }
    }
    // A `null` read or a cas expecting absence may need any delete of the key.
    if keep.iter().any(|&i| ops[i].kind.observes_none()) {
        keep.extend((0..ops.len()).filter(|&i| ops[i].kind == RegKind::Delete));
    }
    let mut kept: Vec<usize> = keep.into_iter().collect();
    kept.sort_unstable();
    let new_focus = kept
        .iter()
        .position(|&i| i == focus)
        .expect("the focus is the nearest operation to itself, so it is kept");
    (kept.into_iter().map(|i| ops[i]).collect(), new_focus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryBuilder;
    use serde_json::{json, Value};

    #[test]
    fn register_steps() {
        assert_eq!(RegKind::Read(None).step(None), Some(None));
        assert_eq!(RegKind::Read(Some(1)).step(None), None);
        assert_eq!(RegKind::Write(3).step(None), Some(Some(3)));
        assert_eq!(RegKind::Cas(Some(3), 4).step(Some(3)), Some(Some(4)));
        assert_eq!(RegKind::Cas(Some(3), 4).step(Some(2)), None);
        assert_eq!(RegKind::Cas(None, 4).step(None), Some(Some(4)));
    }

    #[test]
    fn prepare_drops_what_cannot_matter() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "write", "k", json!(1), 1);
        b.info(1, "write", "k", json!(1), 2); // unobserved info write: dropped
        b.invoke(2, "write", "k", json!(2), 3);
        b.info(2, "write", "k", json!(2), 4); // observed by the read below: kept
        b.invoke(3, "read", "k", Value::Null, 5);
        b.ok(3, "read", "k", json!(2), 6);
        b.invoke(4, "write", "k", json!(3), 7);
        b.fail(4, "write", "k", json!(3), 8); // fail: dropped
        b.invoke(5, "read", "k", Value::Null, 9); // never completes: info read, dropped
        let h = b.build().expect("well-formed");
        let ops: Vec<&Op> = h.ops().iter().collect();
        let prepared = prepare("k", &ops).expect("register ops");
        let kept: Vec<u64> = prepared.iter().map(|r| r.op.index).collect();
        assert_eq!(kept, vec![2, 4]);
        assert!(prepared[0].info && prepared[0].ret == u64::MAX);
    }

    #[test]
    fn prepare_rejects_unknown_operations() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "append", "k", json!(1), 1);
        b.ok(1, "append", "k", json!(1), 2);
        let h = b.build().expect("well-formed");
        let ops: Vec<&Op> = h.ops().iter().collect();
        assert!(prepare("k", &ops).expect_err("append").is_unknown());
    }
}
