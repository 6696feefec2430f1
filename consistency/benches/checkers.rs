//! Benchmarks of the checkers. `linearizable_100k`: a generated register history of 100,000
//! operations over 1,000 keys and 20 processes (the DESIGN.md §10 target: under 5 s).

use std::collections::HashMap;

use criterion::{criterion_group, criterion_main, Criterion};
use dialkv_consistency::history::{Event, EventType, History, HistoryBuilder};
use dialkv_consistency::linearizable;
use dialkv_consistency::sequential;
use serde_json::{json, Value};

/// A small xorshift generator, so the bench needs no extra dependency and is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Generates a linearizable register history: each process runs operations back to back;
/// each takes effect at a point inside its interval; reads return the state at that point.
fn generate(ops: usize, keys: u64, processes: u64, seed: u64) -> History {
    let mut rng = Rng(seed);
    let mut clock = vec![0u64; processes as usize];
    // (time, process, is_call, key, f, value) with effects computed in lin-point order.
    struct Planned {
        process: u64,
        key: u64,
        write: Option<i64>,
        call: u64,
        at: u64,
        ret: u64,
        read: Value,
    }
    let mut planned: Vec<Planned> = Vec::with_capacity(ops);
    for i in 0..ops {
        let p = rng.below(processes);
        let call = clock[p as usize] + 1 + rng.below(50);
        let at = call + 1 + rng.below(100);
        let ret = at + 1 + rng.below(100);
        clock[p as usize] = ret;
        let write = (rng.below(2) == 0).then_some(i as i64);
        planned.push(Planned {
            process: p,
            key: rng.below(keys),
            write,
            call: call * processes + p,
            at: at * processes + p,
            ret: ret * processes + p,
            read: Value::Null,
        });
    }
    let mut order: Vec<usize> = (0..ops).collect();
    order.sort_by_key(|&i| planned[i].at);
    let mut state: HashMap<u64, Option<i64>> = HashMap::new();
    for i in order {
        let p = &mut planned[i];
        let s = state.entry(p.key).or_insert(None);
        match p.write {
            Some(v) => *s = Some(v),
            None => p.read = json!(*s),
        }
    }
    let mut events: Vec<(u64, usize, bool)> = Vec::with_capacity(2 * ops);
    for (i, p) in planned.iter().enumerate() {
        events.push((p.call, i, true));
        events.push((p.ret, i, false));
    }
    events.sort_unstable();
    let mut b = HistoryBuilder::new();
    for (t, i, is_call) in events {
        let p = &planned[i];
        let (f, value) = match (p.write, is_call) {
            (Some(v), _) => ("write", json!(v)),
            (None, true) => ("read", Value::Null),
            (None, false) => ("read", p.read.clone()),
        };
        b.push(Event {
            index: 0,
            process: p.process,
            session: None,
            event_type: if is_call {
                EventType::Invoke
            } else {
                EventType::Ok
            },
            f: f.into(),
            key: Some(format!("k{}", p.key)),
            value,
            time_ns: t,
            node: None,
        });
    }
    b.build()
        .expect("the generator writes well-formed histories")
}

fn checkers(c: &mut Criterion) {
    let history = generate(100_000, 1_000, 20, 0x5eed);
    assert!(linearizable::check(&history).is_valid());
    let mut group = c.benchmark_group("checkers");
    group.sample_size(10);
    group.bench_function("linearizable_100k_ops_1000_keys_20_processes", |b| {
        b.iter(|| linearizable::check(&history))
    });
    group.bench_function("sequential_100k_ops_1000_keys_20_processes", |b| {
        b.iter(|| sequential::check(&history))
    });
    group.bench_function("parse_100k_ops_jsonl", |b| {
        let text = history.to_jsonl();
        b.iter(|| History::from_jsonl(&text).expect("parses"))
    });
    group.finish();
}

criterion_group!(benches, checkers);
criterion_main!(benches);
