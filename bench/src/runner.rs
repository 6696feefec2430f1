//! Driving load: the load phase, then a warm-up and a measured window, closed or open loop.
//!
//! Each client is a tokio task with its own [`Store`] handle and [`OpGenerator`]; it records
//! latencies in its own HdrHistogram (nanoseconds, 3 significant digits), and the histograms
//! are added up at the end, so clients never contend on a shared recorder.
//!
//! Only operations that *start* (closed loop) or are *scheduled* (open loop) inside the
//! measured window count; the warm-up before it fills caches, connections and the servers'
//! JIT-free but allocation-hungry paths, and is excluded. Throughput is the count of
//! successful operations in the window divided by its length.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::schedule::{Pacer, Pacing};
use crate::target::Store;
use crate::workload::{record_key, OpGenerator, Operation};

/// The largest latency a histogram holds: longer ones are recorded as this.
const MAX_LATENCY: Duration = Duration::from_secs(60);

/// A fresh latency histogram in nanoseconds, 1 µs to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, MAX_LATENCY.as_nanos() as u64, 3)
        .expect("the bounds are valid constants: low >= 1, high >= 2 * low, 3 digits")
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(nanos.max(1_000));
}

/// How long a measured run lasts and how it is paced.
#[derive(Clone, Copy, Debug)]
pub struct RunPlan {
    /// Closed or open loop.
    pub pacing: Pacing,
    /// Time before the measured window; operations in it are not counted.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// Counters a progress display reads while a phase runs.
#[derive(Debug, Default)]
pub struct Live {
    /// Operations completed so far (successful or not).
    pub done: AtomicU64,
    /// Operations failed so far.
    pub failed: AtomicU64,
}

/// What one measured run found.
#[derive(Clone, Debug)]
pub struct RunStats {
    /// Successful operations in the measured window.
    pub ops: u64,
    /// Failed operations in the measured window.
    pub errors: u64,
    /// Reads that found no value (every key is loaded first, so any is suspicious).
    pub misses: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// The length of the measured window.
    pub window: Duration,
    /// Latency of successful operations: from the intended start in an open loop, from the
    /// actual start in a closed loop.
    pub latency: Histogram<u64>,
    /// Open loop only: latency from the moment the request was actually sent (the target's
    /// service time plus the client's own overhead, without queueing behind the schedule).
    pub service: Option<Histogram<u64>>,
}

impl RunStats {
    /// Successful operations per second in the measured window.
    pub fn ops_per_sec(&self) -> f64 {
        if self.window.is_zero() {
            return 0.0;
        }
        self.ops as f64 / self.window.as_secs_f64()
    }

    /// The latency at `quantile` (0..=1) in milliseconds; 0 when nothing was recorded.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        quantile_ms(&self.latency, quantile)
    }
}

/// The value at `quantile` of a nanosecond histogram, in milliseconds.
pub fn quantile_ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(quantile) as f64 / 1e6
}

/// Sends one operation; `Ok(false)` is a read that found nothing.
async fn execute(store: &mut dyn Store, op: &Operation) -> Result<bool> {
    match op {
        Operation::Read(key) => store.read(key).await,
        Operation::Update(key, value) => store.update(key, value).await.map(|()| true),
        Operation::Txn { reads, writes } => store.txn(reads, writes).await.map(|()| true),
    }
}

/// One client's share of a run.
struct ClientStats {
    ops: u64,
    errors: u64,
    misses: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
    service: Histogram<u64>,
}

/// Writes every record `0..records` with `value` from `concurrency` tasks spread over the
/// stores. Returns how long it took.
pub async fn load(
    stores: &[Box<dyn Store>],
    records: u64,
    value: Bytes,
    concurrency: usize,
    live: Arc<Live>,
) -> Result<Duration> {
    if stores.is_empty() {
        bail!("loading needs at least one connection");
    }
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency.max(1) {
        let mut store = stores[i % stores.len()].duplicate();
        let next = next.clone();
        let value = value.clone();
        let live = live.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let record = next.fetch_add(1, Ordering::Relaxed);
                if record >= records {
                    return Ok::<(), anyhow::Error>(());
                }
                let key = record_key(record);
                store
                    .update(&key, &value)
                    .await
                    .with_context(|| format!("loading record {record}"))?;
                live.done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| anyhow!("a load client failed: {e}"))??;
    }
    Ok(start.elapsed())
}

/// Runs `plan` with one client per generator, client `i` on `stores[i % stores.len()]`.
pub async fn run(
    stores: &[Box<dyn Store>],
    generators: Vec<OpGenerator>,
    plan: RunPlan,
    live: Arc<Live>,
) -> Result<RunStats> {
    if stores.is_empty() || generators.is_empty() {
        bail!("a run needs at least one client and one connection");
    }
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let pacer = match plan.pacing {
        Pacing::Closed => None,
        Pacing::Open(schedule) => Some(Pacer::start(
            schedule,
            start,
            plan.warmup + plan.duration,
            generators.len(),
        )),
    };
    let mut tasks = Vec::with_capacity(generators.len());
    for (i, mut generator) in generators.into_iter().enumerate() {
        let mut store = stores[i % stores.len()].duplicate();
        let pacer = pacer.clone();
        let live = live.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = ClientStats {
                ops: 0,
                errors: 0,
                misses: 0,
                first_error: None,
                latency: new_histogram(),
                service: new_histogram(),
            };
            loop {
                let (intended, sent) = match &pacer {
                    None => {
                        let now = Instant::now();
                        (now, now)
                    }
                    Some(pacer) => match pacer.next().await {
                        Some(intended) => (intended, Instant::now()),
                        None => break,
                    },
                };
                if intended >= end {
                    break;
                }
                let op = generator.next_op();
                let outcome = execute(store.as_mut(), &op).await;
                let finished = Instant::now();
                live.done.fetch_add(1, Ordering::Relaxed);
                let measured = intended >= measure_from;
                match outcome {
                    Ok(found) => {
                        if measured {
                            stats.ops += 1;
                            stats.misses += u64::from(!found);
                            record(&mut stats.latency, finished - intended);
                            record(&mut stats.service, finished - sent);
                        }
                    }
                    Err(e) => {
                        live.failed.fetch_add(1, Ordering::Relaxed);
                        if measured {
                            stats.errors += 1;
                        }
                        if stats.first_error.is_none() {
                            stats.first_error = Some(format!("{}: {e:#}", op.kind()));
                        }
                    }
                }
            }
            stats
        }));
    }
    let mut total = RunStats {
        ops: 0,
        errors: 0,
        misses: 0,
        first_error: None,
        window: plan.duration,
        latency: new_histogram(),
        service: matches!(plan.pacing, Pacing::Open(_)).then(new_histogram),
    };
    for task in tasks {
        let stats = task
            .await
            .map_err(|e| anyhow!("a benchmark client failed: {e}"))?;
        total.ops += stats.ops;
        total.errors += stats.errors;
        total.misses += stats.misses;
        total
            .latency
            .add(&stats.latency)
            .context("adding histograms")?;
        if let Some(service) = total.service.as_mut() {
            service.add(&stats.service).context("adding histograms")?;
        }
        if total.first_error.is_none() {
            total.first_error = stats.first_error;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::OpenLoop;
    use crate::workload::{Distribution, KeyChooser, Workload};
    use futures::future::BoxFuture;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// An in-memory store that takes a fixed time per operation.
    #[derive(Clone)]
    struct SlowMap {
        map: Arc<Mutex<HashMap<Bytes, Bytes>>>,
        delay: Duration,
    }

    impl Store for SlowMap {
        fn read<'a>(&'a mut self, key: &'a Bytes) -> BoxFuture<'a, Result<bool>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(self.map.lock().expect("unpoisoned").contains_key(key))
            })
        }

        fn update<'a>(&'a mut self, key: &'a Bytes, value: &'a Bytes) -> BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                self.map
                    .lock()
                    .expect("unpoisoned")
                    .insert(key.clone(), value.clone());
                Ok(())
            })
        }

        fn txn<'a>(
            &'a mut self,
            _reads: &'a [Bytes],
            _writes: &'a [(Bytes, Bytes)],
        ) -> BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Err(anyhow!("no transactions"))
            })
        }

        fn duplicate(&self) -> Box<dyn Store> {
            Box::new(self.clone())
        }
    }

    fn slow_map(delay: Duration) -> Vec<Box<dyn Store>> {
        vec![Box::new(SlowMap {
            map: Arc::default(),
            delay,
        })]
    }

    fn generators(n: usize, workload: Workload) -> Vec<OpGenerator> {
        let keys = KeyChooser::new(Distribution::Uniform, 100).expect("valid chooser");
        (0..n)
            .map(|i| OpGenerator::new(workload, keys.clone(), 10, i as u64))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_throughput_is_clients_over_latency() {
        let stores = slow_map(Duration::from_millis(10));
        load(&stores, 100, Bytes::from_static(b"v"), 3, Arc::default())
            .await
            .expect("load");
        let plan = RunPlan {
            pacing: Pacing::Closed,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
        };
        let stats = run(&stores, generators(4, Workload::A), plan, Arc::default())
            .await
            .expect("run");
        // 4 clients, 10 ms each: 400 ops/s, every latency 10 ms, every read found.
        assert!(
            (stats.ops_per_sec() - 400.0).abs() < 5.0,
            "{}",
            stats.ops_per_sec()
        );
        assert!((stats.latency_ms(0.5) - 10.0).abs() < 0.1);
        assert_eq!(stats.misses, 0);
        assert_eq!(stats.errors, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_counts_queueing_behind_the_schedule() {
        // 1 client, 10 ms per op, asked for 200 ops/s: it can do only 100, so the schedule
        // falls further behind every op and latency from the intended time grows, while the
        // service time stays 10 ms. A closed loop would have reported 10 ms throughout.
        let stores = slow_map(Duration::from_millis(10));
        let plan = RunPlan {
            pacing: Pacing::Open(OpenLoop::new(200)),
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
        };
        let stats = run(&stores, generators(1, Workload::W), plan, Arc::default())
            .await
            .expect("run");
        let service = stats
            .service
            .as_ref()
            .expect("open loop keeps service times");
        // Real time here (the pacer is an OS thread): tokio's sleep takes 10-12 ms.
        assert!(
            quantile_ms(service, 0.5) < 20.0,
            "{}",
            quantile_ms(service, 0.5)
        );
        // 200 ops scheduled in 1 s, served at under 100/s: the last waits about a second.
        assert_eq!(stats.ops, 200);
        assert!(stats.latency_ms(0.99) > 800.0, "{}", stats.latency_ms(0.99));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_below_capacity_keeps_its_rate() {
        let stores = slow_map(Duration::from_millis(1));
        let plan = RunPlan {
            pacing: Pacing::Open(OpenLoop::new(500)),
            warmup: Duration::from_millis(200),
            duration: Duration::from_secs(1),
        };
        let stats = run(&stores, generators(8, Workload::W), plan, Arc::default())
            .await
            .expect("run");
        // Exactly the tickets scheduled in the window, whatever the machine's speed.
        assert_eq!(stats.ops, 500);
        assert!(stats.latency_ms(0.5) < 10.0, "{}", stats.latency_ms(0.5));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_and_the_first_is_kept() {
        let stores = slow_map(Duration::from_millis(1));
        let plan = RunPlan {
            pacing: Pacing::Closed,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(100),
        };
        let stats = run(&stores, generators(1, Workload::T), plan, Arc::default())
            .await
            .expect("run");
        assert_eq!(stats.ops, 0);
        assert!(stats.errors > 0);
        assert_eq!(stats.first_error.as_deref(), Some("txn: no transactions"));
    }
}
