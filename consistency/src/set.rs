//! The set checker (Jepsen's `set-full`, reduced): grow-only sets of unique elements.
//!
//! A history of `add` (value: the element) and `read` / `final-read` (value: the sorted
//! elements) operations per set key. Checked:
//!
//! - **unexpected**: an ok read returned an element no `add` of that set was invoked with, or
//!   only failed adds carried;
//! - **lost**: an ok add whose element is missing from an ok final read (issued after every
//!   fault healed and the system quiesced);
//! - **stale** (linearizable only): an ok read invoked after an ok add of `e` completed, that
//!   does not contain `e` — the read missed a write that finished before it began.
//!
//! A set with ok adds but no ok final read cannot show loss: `Unknown`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::history::{History, Op};
use crate::verdict::{Verdict, WitnessOp};

/// Checks every set in the history; `linearizable` adds the stale-read check.
pub fn check(history: &History, linearizable: bool) -> Verdict {
    let mut verdicts = Vec::new();
    for (key, ops) in history.ops_by_key() {
        verdicts.push(check_set(key, &ops, linearizable));
    }
    Verdict::merge(verdicts)
}

fn elements(op: &Op) -> Result<Vec<i64>, Verdict> {
    op.list_value()
        .map(Option::unwrap_or_default)
        .map_err(|e| Verdict::unknown(e.to_string()))
}

fn check_set(key: &str, ops: &[&Op], linearizable: bool) -> Verdict {
    // Every add by element: the element is unique per set, so one add per element.
    let mut adds: HashMap<i64, &Op> = HashMap::new();
    for op in ops.iter().filter(|o| o.f == "add") {
        match op.int_value() {
            Ok(Some(e)) => {
                adds.insert(e, op);
            }
            Ok(None) => return Verdict::unknown(format!("add without element at {}", op.index)),
            Err(e) => return Verdict::unknown(e.to_string()),
        }
    }
    let reads: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|o| o.is_ok() && matches!(o.f.as_str(), "read" | "final-read"))
        .collect();

    for read in &reads {
        let elems = match elements(read) {
            Ok(v) => v,
            Err(v) => return v,
        };
        for e in elems {
            match adds.get(&e) {
                None => {
                    return Verdict::invalid(
                        "unexpected-element",
                        vec![WitnessOp::from(*read).with_role("read")],
                        format!("set {key}: read returned {e}, which no add was invoked with"),
                    )
                }
                Some(add) if add.is_fail() => {
                    return Verdict::invalid(
                        "unexpected-element",
                        vec![
                            WitnessOp::from(*add).with_role("failed add"),
                            WitnessOp::from(*read).with_role("read"),
                        ],
                        format!("set {key}: read returned {e}, whose add certainly failed"),
                    )
                }
                Some(_) => {}
            }
        }
    }

    let finals: Vec<&Op> = reads
        .iter()
        .copied()
        .filter(|o| o.f == "final-read")
        .collect();
    let ok_adds: BTreeMap<i64, &Op> = adds
        .iter()
        .filter(|(_, o)| o.is_ok())
        .map(|(e, o)| (*e, *o))
        .collect();
    if !ok_adds.is_empty() && finals.is_empty() {
        return Verdict::unknown(format!(
            "set {key}: no ok final read, so lost elements cannot be told"
        ));
    }
    for fin in &finals {
        let seen: BTreeSet<i64> = match elements(fin) {
            Ok(v) => v.into_iter().collect(),
            Err(v) => return v,
        };
        if let Some((e, add)) = ok_adds.iter().find(|(e, _)| !seen.contains(e)) {
            return Verdict::invalid(
                "lost-add",
                vec![
                    WitnessOp::from(*add).with_role("acknowledged add"),
                    WitnessOp::from(*fin).with_role("final read without it"),
                ],
                format!("set {key}: the add of {e} was acknowledged, but a final read after quiescence lacks it"),
            );
        }
    }

    if linearizable {
        for read in &reads {
            let seen: BTreeSet<i64> = match elements(read) {
                Ok(v) => v.into_iter().collect(),
                Err(v) => return v,
            };
            let missed = ok_adds.iter().find(|(e, add)| {
                add.complete_ns.is_some_and(|t| t < read.invoke_ns) && !seen.contains(e)
            });
            if let Some((e, add)) = missed {
                return Verdict::invalid(
                    "stale-read",
                    vec![
                        WitnessOp::from(*add).with_role("add completed first"),
                        WitnessOp::from(*read).with_role("later read without it"),
                    ],
                    format!(
                        "set {key}: the add of {e} completed before the read began, and the read lacks it"
                    ),
                );
            }
        }
    }
    Verdict::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryBuilder;
    use serde_json::{json, Value};

    fn base() -> HistoryBuilder {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "add", "s", json!(1), 1);
        b.ok(1, "add", "s", json!(1), 2);
        b.invoke(2, "add", "s", json!(2), 3);
        b.fail(2, "add", "s", json!(2), 4);
        b
    }

    #[test]
    fn a_correct_history_passes() {
        let mut b = base();
        b.invoke(3, "read", "s", Value::Null, 5);
        b.ok(3, "read", "s", json!([1]), 6);
        b.invoke(4, "final-read", "s", Value::Null, 7);
        b.ok(4, "final-read", "s", json!([1]), 8);
        assert_eq!(check(&b.build().expect("ok"), true), Verdict::Valid);
    }

    #[test]
    fn lost_unexpected_and_stale_are_caught() {
        let mut b = base();
        b.invoke(4, "final-read", "s", Value::Null, 7);
        b.ok(4, "final-read", "s", json!([]), 8);
        let v = check(&b.build().expect("ok"), false);
        assert_eq!(v.anomaly(), Some("lost-add"), "{v}");

        let mut b = base();
        b.invoke(3, "read", "s", Value::Null, 5);
        b.ok(3, "read", "s", json!([1, 2]), 6);
        let v = check(&b.build().expect("ok"), false);
        assert_eq!(v.anomaly(), Some("unexpected-element"), "{v}");

        let mut b = base();
        b.invoke(3, "read", "s", Value::Null, 5);
        b.ok(3, "read", "s", json!([]), 6);
        b.invoke(4, "final-read", "s", Value::Null, 7);
        b.ok(4, "final-read", "s", json!([1]), 8);
        let h = b.build().expect("ok");
        assert_eq!(check(&h, true).anomaly(), Some("stale-read"));
        assert_eq!(check(&h, false), Verdict::Valid, "eventual allows it");
    }

    #[test]
    fn no_final_read_is_unknown() {
        assert!(check(&base().build().expect("ok"), false).is_unknown());
    }
}
