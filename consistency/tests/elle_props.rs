//! Soundness and completeness of the Elle checker (DESIGN.md §10): histories from a correct
//! model (serial, or snapshot isolated) pass every level the model guarantees; the same
//! histories with one injected anomaly fail, naming it.

mod elle_gen;

use dialkv_consistency::elle::{check_list_append, check_txn, Isolation, ListAppendLevel};
use dialkv_consistency::verdict::Verdict;
use elle_gen::{generate, Config, Inject, Mode};
use proptest::prelude::*;

fn config() -> impl Strategy<Value = (Config, u64)> {
    (
        1usize..60,
        1usize..5,
        1usize..5,
        0u64..5,
        0u64..15,
        0u64..15,
        any::<u64>(),
    )
        .prop_map(
            |(txns, keys, max_mops, overlap, fail_pct, info_pct, seed)| {
                let cfg = Config {
                    txns,
                    keys,
                    max_mops,
                    overlap,
                    fail_pct,
                    info_pct,
                    ..Config::default()
                };
                (cfg, seed)
            },
        )
}

fn show(v: &Verdict) -> String {
    v.to_string()
}

/// The level at which an injected anomaly must be caught, the names it may be reported
/// under, and a weaker level that allows it (if any).
fn expectation(a: Inject) -> (Isolation, &'static [&'static str], Option<Isolation>) {
    use Isolation::*;
    match a {
        Inject::G0 => (ReadCommitted, &["G0"], None),
        Inject::G1a => (ReadCommitted, &["G1a"], None),
        Inject::G1b => (ReadCommitted, &["G1b"], None),
        Inject::G1c => (ReadCommitted, &["G1c"], None),
        Inject::LostUpdate => (
            SnapshotIsolation,
            &["G-single", "lost-update"],
            Some(ReadCommitted),
        ),
        Inject::WriteSkew => (Serializable, &["G2"], Some(SnapshotIsolation)),
        Inject::FracturedRead => (SnapshotIsolation, &["G-single"], Some(ReadCommitted)),
        Inject::DuplicateAppend => (ReadCommitted, &["duplicate-append"], None),
        Inject::Internal => (ReadCommitted, &["internal"], None),
        Inject::Garbage => (ReadCommitted, &["garbage-read"], None),
        Inject::StaleRead => (
            StrictSerializable,
            &["G-single-realtime"],
            Some(Serializable),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn serial_histories_are_strict_serializable((cfg, seed) in config()) {
        let h = generate(&cfg, seed).build();
        for level in Isolation::ALL {
            let v = check_txn(&h, level);
            prop_assert!(v.is_valid(), "{level}: {}\n{}", show(&v), h.to_jsonl());
        }
    }

    #[test]
    fn snapshot_histories_are_snapshot_isolated((cfg, seed) in config()) {
        let cfg = Config { mode: Mode::Snapshot, ..cfg };
        let h = generate(&cfg, seed).build();
        for level in [Isolation::ReadCommitted, Isolation::SnapshotIsolation] {
            let v = check_txn(&h, level);
            prop_assert!(v.is_valid(), "{level}: {}\n{}", show(&v), h.to_jsonl());
        }
    }

    #[test]
    fn serial_list_append_is_linearizable((cfg, seed) in config()) {
        let cfg = Config { single_ops: true, ..cfg };
        let h = generate(&cfg, seed).build();
        for level in [ListAppendLevel::Linearizable, ListAppendLevel::Sequential] {
            let v = check_list_append(&h, level);
            prop_assert!(v.is_valid(), "{level}: {}\n{}", show(&v), h.to_jsonl());
        }
    }

    #[test]
    fn injected_anomalies_are_caught(
        (cfg, seed) in config(),
        which in 0..Inject::ALL.len(),
        snapshot in any::<bool>(),
    ) {
        let anomaly = Inject::ALL[which];
        let (level, names, allowed_at) = expectation(anomaly);
        // A snapshot-isolated base is only clean up to snapshot isolation.
        let snapshot = snapshot && level <= Isolation::SnapshotIsolation;
        let cfg = Config { mode: if snapshot { Mode::Snapshot } else { Mode::Serial }, ..cfg };
        let mut plan = generate(&cfg, seed);
        plan.inject(anomaly, seed);
        let h = plan.build();
        let v = check_txn(&h, level);
        prop_assert!(
            v.anomaly().is_some_and(|a| names.contains(&a)),
            "{anomaly:?} at {level}: {}\n{}", show(&v), h.to_jsonl()
        );
        prop_assert!(!v.witness().is_empty());
        for stronger in Isolation::ALL.into_iter().filter(|l| *l > level) {
            if snapshot && stronger > Isolation::SnapshotIsolation {
                break;
            }
            prop_assert!(check_txn(&h, stronger).is_invalid(), "{anomaly:?} at {stronger}");
        }
        if let Some(weaker) = allowed_at {
            let v = check_txn(&h, weaker);
            prop_assert!(v.is_valid(), "{anomaly:?} at {weaker}: {}\n{}", show(&v), h.to_jsonl());
        }
    }
}

#[test]
fn stale_list_append_read_is_not_linearizable() {
    let cfg = Config {
        single_ops: true,
        ..Config::default()
    };
    let mut plan = generate(&cfg, 7);
    plan.inject(Inject::StaleRead, 7);
    let h = plan.build();
    assert!(check_list_append(&h, ListAppendLevel::Linearizable).is_invalid());
    assert!(check_list_append(&h, ListAppendLevel::Sequential).is_valid());
}

/// The snapshot model really is weaker than serializability: over many seeds it produces
/// write skew, which the checker reports as G2 (and nothing worse).
#[test]
fn snapshot_model_produces_write_skew() {
    let mut g2 = 0;
    for seed in 0..300 {
        let cfg = Config {
            mode: Mode::Snapshot,
            txns: 30,
            keys: 2,
            overlap: 4,
            fail_pct: 0,
            info_pct: 0,
            ..Config::default()
        };
        let h = generate(&cfg, seed).build();
        if let Some(a) = check_txn(&h, Isolation::Serializable).anomaly() {
            assert_eq!(a, "G2", "seed {seed}");
            g2 += 1;
        }
    }
    assert!(
        g2 > 10,
        "only {g2} of 300 snapshot histories showed write skew"
    );
}

/// Generated histories are not trivial: reads see long lists, operations overlap.
#[test]
fn generated_histories_have_structure() {
    let h = generate(
        &Config {
            txns: 200,
            ..Config::default()
        },
        1,
    )
    .build();
    let longest = h
        .ops()
        .iter()
        .flat_map(|op| op.mops().expect("txns"))
        .filter_map(|m| match m {
            dialkv_consistency::history::Mop::Read { value: Some(l), .. } => Some(l.len()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(longest > 10, "longest read {longest}");
    let processes: std::collections::HashSet<_> = h.ops().iter().map(|o| o.process).collect();
    assert!(processes.len() > 3, "{} processes", processes.len());
}
