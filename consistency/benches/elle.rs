//! Elle checker throughput: a 100 000-transaction list-append history (up to four
//! micro-operations each, keys rotating so lists stay around a hundred elements, 2% `fail`,
//! 2% `info`) checked at strict serializability, the most expensive level (real-time edges),
//! and at serializability, plus a snapshot-isolated history full of write skew checked at
//! serializability (the cycle search's worst realistic case). The goal is under 5 s per check (DESIGN.md §10).
//!
//! `cargo bench -p dialkv-consistency --bench elle -- --warm-up-time 1 --measurement-time 5`

#[path = "../tests/elle_gen/mod.rs"]
mod elle_gen;

use criterion::{criterion_group, criterion_main, Criterion};
use dialkv_consistency::elle::{check_txn, Isolation};
use elle_gen::{generate, Config, Mode};

fn bench(c: &mut Criterion) {
    let cfg = Config {
        txns: 100_000,
        keys: 8,
        key_rotation: true,
        max_mops: 4,
        overlap: 5,
        fail_pct: 2,
        info_pct: 2,
        ..Config::default()
    };
    let history = generate(&cfg, 42).build();
    assert!(check_txn(&history, Isolation::StrictSerializable).is_valid());
    let mut group = c.benchmark_group("elle-100k-txns");
    group.sample_size(10);
    for level in [Isolation::StrictSerializable, Isolation::Serializable] {
        group.bench_function(level.name(), |b| b.iter(|| check_txn(&history, level)));
    }
    // A snapshot-isolated run is full of write skew: big strongly connected components make
    // the cycle search (not just the graph) the cost.
    let skewed = generate(
        &Config {
            mode: Mode::Snapshot,
            ..cfg
        },
        42,
    )
    .build();
    assert_eq!(
        check_txn(&skewed, Isolation::Serializable).anomaly(),
        Some("G2")
    );
    group.bench_function("serializable-with-write-skew", |b| {
        b.iter(|| check_txn(&skewed, Isolation::Serializable))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
