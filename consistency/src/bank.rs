//! The bank checker (Jepsen's `bank`): transfers between accounts whose total never changes.
//!
//! History values: `init` → `{account: balance}`; `transfer` → invoked with
//! `{"from", "to", "amount"}`, ok with the balances read added (`"read"`); `read` and
//! `final-read` → ok with `{account: balance}` (a snapshot of every account).
//!
//! [`check`]: every ok `read` and `final-read` must hold exactly the accounts `init` wrote, sum
//! to the total `init` wrote, and have no negative balance. Serializability (indeed snapshot
//! isolation) guarantees all three; a commit that skips read-set validation breaks the sum as
//! soon as two transfers from one account race.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::history::{History, Op};
use crate::verdict::{Verdict, WitnessOp};

/// Decodes `{account: balance}`.
fn balances(v: &Value) -> Option<BTreeMap<String, i64>> {
    v.as_object()?
        .iter()
        .map(|(k, b)| b.as_i64().map(|b| (k.clone(), b)))
        .collect()
}

/// Checks a bank history; see the module docs.
pub fn check(history: &History) -> Verdict {
    let ops = history.ops();
    let Some(init) = ops.iter().find(|o| o.f == "init" && o.is_ok()) else {
        return Verdict::unknown("no init completed: the bank never opened");
    };
    let Some(start) = balances(&init.value) else {
        return Verdict::unknown(format!(
            "init value {} is not {{account: balance}}",
            init.value
        ));
    };
    let total: i64 = start.values().sum();
    let reads: Vec<&Op> = ops
        .iter()
        .filter(|o| o.is_ok() && matches!(o.f.as_str(), "read" | "final-read"))
        .collect();
    if reads.is_empty() {
        return Verdict::unknown("no read completed: nothing to check");
    }
    let witness = |read: &Op, role: &str| {
        vec![
            WitnessOp::from(init).with_role("init"),
            WitnessOp::from(read).with_role(role),
        ]
    };
    for read in reads {
        let Some(seen) = balances(&read.value) else {
            return Verdict::unknown(format!(
                "read at {} has value {}, not {{account: balance}}",
                read.index, read.value
            ));
        };
        if seen.keys().ne(start.keys()) {
            let missing: Vec<&String> = start.keys().filter(|k| !seen.contains_key(*k)).collect();
            let extra: Vec<&String> = seen.keys().filter(|k| !start.contains_key(*k)).collect();
            return Verdict::invalid(
                "wrong-accounts",
                witness(read, "read"),
                format!(
                    "a read saw accounts {:?}: missing {missing:?}, unexpected {extra:?}",
                    seen.keys().collect::<Vec<_>>()
                ),
            );
        }
        if let Some((k, b)) = seen.iter().find(|(_, b)| **b < 0) {
            return Verdict::invalid(
                "negative-balance",
                witness(read, "read"),
                format!("a read saw account {k} at {b}"),
            );
        }
        let sum: i64 = seen.values().sum();
        if sum != total {
            return Verdict::invalid(
                "wrong-total",
                witness(read, "read"),
                format!(
                    "a read of every account sums to {sum}, not the {total} init wrote: {seen:?}"
                ),
            );
        }
    }
    Verdict::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryBuilder;
    use serde_json::json;

    fn with_read(read: Value) -> History {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "init", "-", json!({"a": 10, "b": 10}), 1);
        b.ok(0, "init", "-", json!({"a": 10, "b": 10}), 2);
        b.invoke(
            1,
            "transfer",
            "-",
            json!({"from": "a", "to": "b", "amount": 3}),
            3,
        );
        b.ok(
            1,
            "transfer",
            "-",
            json!({"from": "a", "to": "b", "amount": 3}),
            4,
        );
        b.invoke(2, "read", "-", Value::Null, 5);
        b.ok(2, "read", "-", read, 6);
        b.build().expect("a well-formed history")
    }

    #[test]
    fn conserved_totals_pass() {
        assert_eq!(check(&with_read(json!({"a": 7, "b": 13}))), Verdict::Valid);
    }

    #[test]
    fn broken_totals_negative_and_missing_accounts_are_caught() {
        let v = check(&with_read(json!({"a": 7, "b": 10})));
        assert_eq!(v.anomaly(), Some("wrong-total"), "{v}");
        let v = check(&with_read(json!({"a": -1, "b": 21})));
        assert_eq!(v.anomaly(), Some("negative-balance"), "{v}");
        let v = check(&with_read(json!({"a": 20})));
        assert_eq!(v.anomaly(), Some("wrong-accounts"), "{v}");
    }

    #[test]
    fn no_init_or_no_read_is_unknown() {
        let mut b = HistoryBuilder::new();
        b.invoke(2, "read", "-", Value::Null, 5);
        b.ok(2, "read", "-", json!({"a": 1}), 6);
        assert!(check(&b.build().expect("ok")).is_unknown());
        let mut b = HistoryBuilder::new();
        b.invoke(0, "init", "-", json!({"a": 10}), 1);
        b.ok(0, "init", "-", json!({"a": 10}), 2);
        assert!(check(&b.build().expect("ok")).is_unknown());
    }
}
