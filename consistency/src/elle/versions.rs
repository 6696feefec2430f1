//! Version orders of list-append keys, the dependency edges they imply, and the anomalies
//! that need no cycle.
//!
//! Elle's key observation (Kingsbury & Alvaro, VLDB 2020, §4.1) is that a list-append key is
//! *traceable*: a read returns the whole history of the key, so the longest read of a key is
//! a prefix of its version order and every other read must be a prefix of it. From that
//! order follow the edges of Adya's direct serialization graph:
//!
//! - `ww`: consecutive elements appended by different transactions;
//! - `wr`: the appender of a read's last element → the reader;
//! - `rw`: a reader → the appender of the element right after what it read.
//!
//! We add one sound inference Elle leaves out: a committed append that no read observed lies
//! after every observed element, so the last observed appender `ww`-precedes it and every
//! reader of the longest list `rw`-precedes it (that is what catches a lost acknowledged
//! append under real-time order).
//!
//! Elements appended by failed transactions (`G1a` when read) and elements nobody appended
//! (`garbage-read`) are skipped when drawing edges; `info` transactions count as committed
//! once one of their appends is observed. Non-cycle anomalies found here: `garbage-read`,
//! `duplicate-append`, `incompatible-order`, `internal`, `G1a`, `G1b` and `lost-update`.

use std::collections::{HashMap, HashSet};

use super::anomaly::{Anomaly, AnomalyKind, Report};
use super::graph::{Edge, EdgeKind, Why};
use super::txn::{KeyId, MicroOp, TxnId, Txns};
use crate::history::OpKind;

/// Who appended an element, and whether it was that transaction's last append to the key.
#[derive(Clone, Copy, Debug)]
struct Appender {
    txn: TxnId,
    last: bool,
}

/// A known read: the reading transaction and the list it saw.
type Read<'a> = (TxnId, &'a [i64]);

/// Formats a list compactly for explanations: at most the last few elements.
pub(crate) fn show_list(l: &[i64]) -> String {
    const SHOWN: usize = 4;
    if l.len() <= SHOWN {
        format!("{l:?}")
    } else {
        let tail: Vec<String> = l[l.len() - SHOWN..].iter().map(i64::to_string).collect();
        format!("[… {} elements …, {}]", l.len() - SHOWN, tail.join(", "))
    }
}

/// Analyses every key: records non-cycle anomalies in `report` and pushes the `ww`, `wr`
/// and `rw` edges. Fails when an element is appended twice to one key, because then reads
/// cannot be traced to a single append.
pub(crate) fn analyse(t: &Txns, report: &mut Report, edges: &mut Vec<Edge>) -> Result<(), String> {
    let nkeys = t.keys.len();
    let mut appended: HashMap<(KeyId, i64), Appender> = HashMap::new();
    let mut appends_by_key: Vec<Vec<(i64, TxnId)>> = vec![Vec::new(); nkeys];
    let mut reads_by_key: Vec<Vec<Read<'_>>> = vec![Vec::new(); nkeys];
    for (id, txn) in t.txns.iter().enumerate() {
        let id = TxnId::try_from(id).expect("checked in Txns::from_history");
        let mut last_of_key: Vec<(KeyId, i64)> = Vec::new();
        for m in &txn.mops {
            match m {
                MicroOp::Append { key, value } => {
                    let k = (*key, *value);
                    if let Some(prev) = appended.get(&k) {
                        return Err(format!(
                            "{} appends {value} to key {:?}, which {} appended already; \
                             list-append checking needs unique elements per key",
                            t.name(id),
                            t.key(*key),
                            t.name(prev.txn)
                        ));
                    }
                    if let Some(slot) = last_of_key.iter_mut().find(|(k2, _)| k2 == key) {
                        if let Some(a) = appended.get_mut(&(*key, slot.1)) {
                            a.last = false;
                        }
                        slot.1 = *value;
                    } else {
                        last_of_key.push((*key, *value));
                    }
                    appended.insert(
                        k,
                        Appender {
                            txn: id,
                            last: true,
                        },
                    );
                    appends_by_key[*key as usize].push((*value, id));
                }
                MicroOp::Read {
                    key,
                    value: Some(l),
                } if txn.kind() == OpKind::Ok => {
                    reads_by_key[*key as usize].push((id, l.as_slice()));
                }
                MicroOp::Read { .. } => {}
            }
        }
    }
    for key in 0..nkeys {
        let key = KeyId::try_from(key).expect("checked in Txns::from_history");
        analyse_key(
            t,
            key,
            &reads_by_key[key as usize],
            &appends_by_key[key as usize],
            &appended,
            report,
            edges,
        );
    }
    internal(t, report);
    lost_updates(t, report);
    Ok(())
}

/// The per-key part of [`analyse`].
fn analyse_key(
    t: &Txns,
    key: KeyId,
    reads: &[Read<'_>],
    appends: &[(i64, TxnId)],
    appended: &HashMap<(KeyId, i64), Appender>,
    report: &mut Report,
    edges: &mut Vec<Edge>,
) {
    let kname = t.key(key);
    let Some(&(longest_reader, vo)) = reads.iter().max_by_key(|(_, l)| l.len()) else {
        return;
    };
    // Positions of the version order; a duplicate element means a broken store.
    let mut pos: HashMap<i64, usize> = HashMap::with_capacity(vo.len());
    for (i, v) in vo.iter().enumerate() {
        if let Some(&first) = pos.get(v) {
            report.add(Anomaly {
                kind: AnomalyKind::DuplicateAppend,
                txns: vec![(longest_reader, format!("read {kname} = {}", show_list(vo)))],
                explanation: format!(
                    "{} read key {kname:?} with element {v} at positions {first} and {i}",
                    t.name(longest_reader)
                ),
            });
        } else {
            pos.insert(*v, i);
        }
    }
    // Who appended each position; `None` for garbage and aborted elements.
    let mut who: Vec<Option<Appender>> = Vec::with_capacity(vo.len());
    for &v in vo {
        match appended.get(&(key, v)) {
            None => {
                let reader = shortest_containing(reads, vo, pos[&v]).unwrap_or(longest_reader);
                report.add(Anomaly {
                    kind: AnomalyKind::GarbageRead,
                    txns: vec![(reader, format!("read {v} from {kname}"))],
                    explanation: format!(
                        "{} read element {v} of key {kname:?}, which no operation appended",
                        t.name(reader)
                    ),
                });
                who.push(None);
            }
            Some(a) if t.txns[a.txn as usize].kind() == OpKind::Fail => {
                let reader = shortest_containing(reads, vo, pos[&v]).unwrap_or(longest_reader);
                report.add(Anomaly {
                    kind: AnomalyKind::G1a,
                    txns: vec![
                        (a.txn, format!("failed, but appended {v} to {kname}")),
                        (reader, format!("read {v} from {kname}")),
                    ],
                    explanation: format!(
                        "{} read element {v} of key {kname:?}, appended by {}, which failed (aborted read)",
                        t.name(reader),
                        t.name(a.txn)
                    ),
                });
                who.push(None);
            }
            Some(a) => who.push(Some(*a)),
        }
    }
    // next_valid[i]: the first position >= i with a committed appender.
    let mut next_valid = vec![usize::MAX; vo.len() + 1];
    for i in (0..vo.len()).rev() {
        next_valid[i] = if who[i].is_some() {
            i
        } else {
            next_valid[i + 1]
        };
    }
    // ww along the version order.
    let mut prev: Option<(TxnId, i64)> = None;
    for (i, a) in who.iter().enumerate() {
        let Some(a) = a else { continue };
        if let Some((p, pv)) = prev {
            if p != a.txn {
                edges.push(Edge {
                    from: p,
                    to: a.txn,
                    kind: EdgeKind::Ww,
                    why: Why {
                        key,
                        from_value: Some(pv),
                        to_value: Some(vo[i]),
                    },
                });
            }
        }
        prev = Some((a.txn, vo[i]));
    }
    // Committed appends nobody observed lie after the whole observed order.
    let unobserved: Vec<(i64, TxnId)> = appends
        .iter()
        .filter(|(v, a)| !pos.contains_key(v) && t.txns[*a as usize].kind() == OpKind::Ok)
        .copied()
        .collect();
    if let Some((z, zv)) = prev {
        for &(v, w) in &unobserved {
            edges.push(Edge {
                from: z,
                to: w,
                kind: EdgeKind::Ww,
                why: Why {
                    key,
                    from_value: Some(zv),
                    to_value: Some(v),
                },
            });
        }
    }
    let mut incompatible_reported = false;
    for &(r, l) in reads {
        if l.len() > vo.len() || l != &vo[..l.len()] {
            if !incompatible_reported {
                incompatible_reported = true;
                report.add(Anomaly {
                    kind: AnomalyKind::IncompatibleOrder,
                    txns: vec![
                        (longest_reader, format!("read {kname} = {}", show_list(vo))),
                        (r, format!("read {kname} = {}", show_list(l))),
                    ],
                    explanation: format!(
                        "{} read key {kname:?} = {vo:?} and {} read {l:?}: neither is a prefix of the other",
                        t.name(longest_reader),
                        t.name(r)
                    ),
                });
            }
            let mut seen = HashSet::new();
            if let Some(v) = l.iter().find(|v| !seen.insert(**v)) {
                report.add(Anomaly {
                    kind: AnomalyKind::DuplicateAppend,
                    txns: vec![(r, format!("read {kname} = {}", show_list(l)))],
                    explanation: format!("{} read key {kname:?} with element {v} twice", t.name(r)),
                });
            }
            continue;
        }
        let last = l.last().copied();
        // The state the reader read from: its own trailing appends (a read after appending in
        // the same transaction) are not part of it.
        let mut seen_len = l.len();
        while seen_len > 0 && who[seen_len - 1].is_some_and(|a| a.txn == r) {
            seen_len -= 1;
        }
        if let Some(a) = seen_len.checked_sub(1).and_then(|i| who[i]) {
            let lv = vo[seen_len - 1];
            edges.push(Edge {
                from: a.txn,
                to: r,
                kind: EdgeKind::Wr,
                why: Why {
                    key,
                    from_value: Some(lv),
                    to_value: None,
                },
            });
            if !a.last {
                report.add(Anomaly {
                    kind: AnomalyKind::G1b,
                    txns: vec![
                        (a.txn, format!("appended {lv} and more to {kname}")),
                        (r, format!("read {kname} ending in {lv}")),
                    ],
                    explanation: format!(
                        "{} read key {kname:?} ending in {lv}, but {} appended more to that key \
                         afterwards in the same transaction (intermediate read)",
                        t.name(r),
                        t.name(a.txn)
                    ),
                });
            }
        }
        let j = next_valid[l.len()];
        if j != usize::MAX {
            let a = who[j].expect("next_valid points at committed appenders");
            push_rw(edges, r, a.txn, key, last, vo[j]);
        }
        if l.len() == vo.len() {
            for &(v, w) in &unobserved {
                push_rw(edges, r, w, key, last, v);
            }
        }
    }
}

fn push_rw(
    edges: &mut Vec<Edge>,
    reader: TxnId,
    appender: TxnId,
    key: KeyId,
    last: Option<i64>,
    next: i64,
) {
    if reader != appender {
        edges.push(Edge {
            from: reader,
            to: appender,
            kind: EdgeKind::Rw,
            why: Why {
                key,
                from_value: last,
                to_value: Some(next),
            },
        });
    }
}

/// Returns the reader of the shortest prefix-compatible read that contains position `p`.
fn shortest_containing(reads: &[Read<'_>], vo: &[i64], p: usize) -> Option<TxnId> {
    reads
        .iter()
        .filter(|(_, l)| l.len() > p && l.len() <= vo.len() && l[..=p] == vo[..=p])
        .min_by_key(|(_, l)| l.len())
        .map(|(r, _)| *r)
}

/// Internal consistency (Elle §4.2, Adya's and Cerone et al.'s INT axiom): within an `ok`
/// transaction, a read of a key must show the state its own earlier reads and appends imply.
fn internal(t: &Txns, report: &mut Report) {
    /// What a transaction knows about a key so far.
    enum Known<'a> {
        /// Not read yet: the list must end with these own appends.
        Suffix(Vec<i64>),
        /// Read as `base`, then appended `extra`.
        Exact(&'a [i64], Vec<i64>),
    }
    for (id, txn) in t.txns.iter().enumerate() {
        if txn.kind() != OpKind::Ok || txn.mops.len() < 2 {
            continue;
        }
        let id = TxnId::try_from(id).expect("checked in Txns::from_history");
        let mut known: Vec<(KeyId, Known<'_>)> = Vec::new();
        for m in &txn.mops {
            match m {
                MicroOp::Append { key, value } => match known.iter_mut().find(|(k, _)| k == key) {
                    Some((_, Known::Suffix(s) | Known::Exact(_, s))) => s.push(*value),
                    None => known.push((*key, Known::Suffix(vec![*value]))),
                },
                MicroOp::Read {
                    key,
                    value: Some(l),
                } => {
                    let slot = known.iter_mut().find(|(k, _)| k == key);
                    if let Some((_, state)) = &slot {
                        let (ok, expected) = match state {
                            Known::Suffix(s) => (l.ends_with(s), format!("a list ending in {s:?}")),
                            Known::Exact(base, extra) => (
                                l.len() == base.len() + extra.len()
                                    && l.starts_with(base)
                                    && l.ends_with(extra),
                                format!("{:?}", [*base, extra.as_slice()].concat()),
                            ),
                        };
                        if !ok {
                            report.add(Anomaly {
                                kind: AnomalyKind::Internal,
                                txns: vec![(id, format!("read {} = {}", t.key(*key), show_list(l)))],
                                explanation: format!(
                                    "{} read key {:?} = {l:?}, but its own earlier micro-operations imply {expected}",
                                    t.name(id),
                                    t.key(*key)
                                ),
                            });
                        }
                    }
                    match slot {
                        Some((_, state)) => *state = Known::Exact(l, Vec::new()),
                        None => known.push((*key, Known::Exact(l, Vec::new()))),
                    }
                }
                MicroOp::Read { value: None, .. } => {}
            }
        }
    }
}

/// Lost update (Elle's `lost-update`, forbidden by snapshot isolation): two committed
/// transactions read the same version of a key and both appended to it afterwards.
fn lost_updates(t: &Txns, report: &mut Report) {
    // (key, last element read) -> transactions that read that version, then appended.
    let mut by_version: HashMap<(KeyId, Option<i64>), Vec<TxnId>> = HashMap::new();
    for (id, txn) in t.txns.iter().enumerate() {
        if txn.kind() != OpKind::Ok {
            continue;
        }
        let id = TxnId::try_from(id).expect("checked in Txns::from_history");
        let mut first_touch: Vec<KeyId> = Vec::new();
        for (i, m) in txn.mops.iter().enumerate() {
            let key = match m {
                MicroOp::Append { key, .. } | MicroOp::Read { key, .. } => *key,
            };
            if first_touch.contains(&key) {
                continue;
            }
            first_touch.push(key);
            let MicroOp::Read { value: Some(l), .. } = m else {
                continue;
            };
            let appends_later = txn.mops[i + 1..]
                .iter()
                .any(|m| matches!(m, MicroOp::Append { key: k, .. } if *k == key));
            if appends_later {
                by_version
                    .entry((key, l.last().copied()))
                    .or_default()
                    .push(id);
            }
        }
    }
    let mut groups: Vec<_> = by_version
        .into_iter()
        .filter(|(_, ts)| ts.len() > 1)
        .collect();
    groups.sort_by_key(|(_, ts)| ts[0]);
    for ((key, version), ts) in groups {
        let kname = t.key(key);
        let version = match version {
            Some(v) => format!("the version ending in {v}"),
            None => "the empty list".into(),
        };
        let names: Vec<String> = ts.iter().map(|id| t.name(*id)).collect();
        report.add(Anomaly {
            kind: AnomalyKind::LostUpdate,
            txns: ts
                .iter()
                .map(|id| (*id, format!("read {kname} then appended to it")))
                .collect(),
            explanation: format!(
                "{} read {version} of key {kname:?} and then each appended to it; all committed, \
                 so all but one of these updates is lost",
                names.join(" and ")
            ),
        });
    }
}
