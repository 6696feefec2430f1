//! The load generator's own cost: drawing one operation (key choice, read/update coin,
//! key formatting) for each workload and distribution, and recording one latency. Both must
//! stay far below a target's microseconds per operation, or the generator, which shares the
//! CPUs with the servers, would skew the comparison.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use dialkv_bench::runner::new_histogram;
use dialkv_bench::workload::{Distribution, KeyChooser, OpGenerator, Workload};

fn next_op(c: &mut Criterion) {
    for distribution in [Distribution::Uniform, Distribution::Zipfian] {
        let keys = KeyChooser::new(distribution, 1_000_000).expect("a valid key space");
        for workload in [Workload::A, Workload::T] {
            let mut generator = OpGenerator::new(workload, keys.clone(), 100, 1);
            c.bench_function(&format!("next_op/{workload}/{distribution}"), |b| {
                b.iter(|| black_box(generator.next_op()))
            });
        }
    }
}

fn record_latency(c: &mut Criterion) {
    let mut histogram = new_histogram();
    let mut nanos = 100_000u64;
    c.bench_function("histogram/record", |b| {
        b.iter(|| {
            nanos = nanos.wrapping_mul(6364136223846793005).wrapping_add(1) % 10_000_000;
            histogram.saturating_record(black_box(nanos.max(1_000)));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = next_op, record_latency
}
criterion_main!(benches);
