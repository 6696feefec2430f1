//! The state machine's cost per applied write: every replica spends it on every write, and in
//! 64-client runs it is the largest share of a backup's CPU (RocksDB memtable seeks and
//! inserts). One iteration applies a group of 64 puts with `Store::apply_group` and writes the
//! group's batch unsynced, as the state machine does, over a RocksDB store already holding
//! 200,000 writes of a skewed key space (so memtables are as deep as in a benchmark run).
//!
//! The variants isolate the parts of a put's apply: the server's defaults (a request id from
//! one of 64 clients, so a dedup lookup and records, and 10,000 revisions of history, so
//! versions to collect); no request id; no history. Compare them with each other within one
//! run.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dialkv_server::storage::rocksdb::RocksEngine;
use dialkv_server::storage::store::{
    Command, RequestKey, Stamped, Store, StoreOptions, DEFAULT_NAMESPACE,
};
use dialkv_server::storage::Engine;

const KEYS: u64 = 10_000;
const PRELOAD: u64 = 200_000;
const GROUP: u64 = 64;
/// Clients whose requests (each with its own request ids) make up the groups.
const CLIENTS: u64 = 64;

/// A store with `retain` revisions of history, and the state to keep writing to it.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    revision: u64,
    seq: u64,
    rng: u64,
    request_ids: bool,
}

impl Fixture {
    fn new(retain: u64, request_ids: bool) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let engine: Arc<dyn Engine> = Arc::new(RocksEngine::open(dir.path()).expect("open"));
        let store = Store::open(
            engine,
            StoreOptions {
                retain_revisions: retain,
                unsafe_skip_txn_validation: false,
            },
        )
        .expect("store");
        let mut f = Self {
            _dir: dir,
            store,
            revision: 0,
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            request_ids,
        };
        for _ in 0..PRELOAD / GROUP {
            f.apply_group();
        }
        f
    }

    /// A skewed key: the cube of a uniform draw puts most writes on a few keys, as YCSB's
    /// zipfian does.
    fn next_key(&mut self) -> Bytes {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let u = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let k = ((u * u * u) * KEYS as f64) as u64;
        Bytes::from(format!("user{k:08}"))
    }

    fn apply_group(&mut self) {
        let mut commands = Vec::with_capacity(GROUP as usize);
        // A group every few milliseconds, as at ten thousand puts a second.
        let at_ms = 1_000 + self.revision / 10;
        for _ in 0..GROUP {
            self.revision += 1;
            self.seq += 1;
            // Requests of CLIENTS clients in turn, each numbering its own from 1.
            let request = self.request_ids.then_some(RequestKey {
                client_id: 1 + self.seq % CLIENTS,
                seq: 1 + self.seq / CLIENTS,
            });
            commands.push(Stamped {
                command: Command::Put {
                    ns: DEFAULT_NAMESPACE.into(),
                    key: self.next_key(),
                    value: Bytes::from(vec![b'v'; 100]),
                    request,
                },
                revision: self.revision,
                at_ms,
            });
        }
        let group = self.store.apply_group(commands);
        assert!(group.results.iter().all(|r| r.is_ok()), "a put failed");
        self.store
            .engine()
            .write(group.batch, false)
            .expect("write");
        self.store.install(group.delta);
        self.store.set_applied(self.revision);
    }
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply_64_puts");
    g.throughput(Throughput::Elements(GROUP));
    for (name, retain, request_ids) in [
        ("defaults", 10_000, true),
        ("no_request_id", 10_000, false),
        ("no_history", 0, true),
    ] {
        let mut fixture = Fixture::new(retain, request_ids);
        g.bench_function(name, |b| b.iter(|| fixture.apply_group()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = apply
}
criterion_main!(benches);
