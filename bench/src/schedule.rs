//! Pacing: when each operation is meant to start.
//!
//! A closed loop ([`Pacing::Closed`]) starts an operation as soon as a client's previous one
//! finished: it finds the most a target can do, but a slow reply delays every later request,
//! so latencies measured that way hide stalls (Gil Tene's "coordinated omission").
//!
//! A fixed-rate open loop ([`Pacing::Open`], [`OpenLoop`]) gives operation `i` an intended
//! start time `start + i / rate` fixed in advance. The clients share one ticket counter
//! ([`Tickets`]): any free client takes the next ticket, waits for its intended time and
//! sends it. When every client is busy, tickets fall behind schedule, and their latency is
//! measured from the *intended* time, so the wait in the queue counts as it would for a user.
//!
//! Tickets are released by a [`Pacer`]: one OS thread that sleeps with `nanosleep` precision
//! until the next intended time and then hands out every ticket that has come due as a
//! semaphore permit. tokio's own timers round up to whole milliseconds, which would add up to
//! two milliseconds of the load generator's lateness to targets that answer in a tenth of one.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// How clients pace their operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Each client sends its next operation as soon as the previous one returns.
    Closed,
    /// All clients together start operations at a fixed rate.
    Open(OpenLoop),
}

impl fmt::Display for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pacing::Closed => f.write_str("closed loop"),
            Pacing::Open(open) => write!(f, "open loop at {} ops/s", open.rate()),
        }
    }
}

/// A fixed-rate schedule: operation `i` is meant to start `i / rate` seconds after the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenLoop {
    /// Operations per second, at least 1.
    rate: u64,
}

impl OpenLoop {
    /// A schedule of `rate` operations per second (a rate of 0 is taken as 1).
    pub fn new(rate: u64) -> Self {
        OpenLoop { rate: rate.max(1) }
    }

    /// Operations per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The intended start of operation `i`, as an offset from the schedule's start:
    /// `floor(i * 1e9 / rate)` nanoseconds, exact in integers so that no drift accumulates
    /// over long runs.
    pub fn offset(&self, i: u64) -> Duration {
        let nanos = u128::from(i) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How many operations are meant to start before `elapsed` has passed.
    pub fn due_before(&self, elapsed: Duration) -> u64 {
        // The smallest i with offset(i) >= elapsed, i.e. ceil(elapsed * rate / 1e9).
        let scaled = elapsed.as_nanos() * u128::from(self.rate);
        u64::try_from(scaled.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
    }
}

/// The shared ticket counter of an open loop: each ticket is one scheduled operation.
#[derive(Debug, Default)]
pub struct Tickets {
    next: AtomicU64,
}

impl Tickets {
    /// A counter starting at ticket 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next ticket; every ticket is handed out once.
    pub fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// Releases an open loop's tickets on time, from a thread of its own.
///
/// Each due ticket becomes one semaphore permit; a client first acquires a permit, then takes
/// the next ticket number, so it never holds a ticket before that ticket's time. After the
/// last ticket the pacer adds one extra permit per client, whose ticket numbers lie past the
/// end and tell each client to stop.
#[derive(Debug)]
pub struct Pacer {
    schedule: OpenLoop,
    start: Instant,
    /// Tickets in the run: those whose intended start lies before its end.
    total: u64,
    permits: Arc<Semaphore>,
    tickets: Tickets,
}

impl Pacer {
    /// Starts pacing `schedule` from `start` for `length`, for `clients` clients. The thread
    /// ends after the last ticket, or as soon as every handle to the pacer is dropped.
    pub fn start(
        schedule: OpenLoop,
        start: Instant,
        length: Duration,
        clients: usize,
    ) -> Arc<Self> {
        let pacer = Arc::new(Pacer {
            schedule,
            start,
            total: schedule.due_before(length),
            permits: Arc::new(Semaphore::new(0)),
            tickets: Tickets::new(),
        });
        let weak = Arc::downgrade(&pacer);
        let spawned = std::thread::Builder::new()
            .name("dialkv-bench-pacer".into())
            .spawn(move || release_on_time(weak, clients));
        if spawned.is_err() {
            // No thread to be had: release everything at once rather than hang. The clients
            // then wait for each intended time on tokio's (coarser) timer.
            pacer.release(
                usize::try_from(pacer.total)
                    .unwrap_or(usize::MAX)
                    .saturating_add(clients),
            );
        }
        pacer
    }

    fn release(&self, n: usize) {
        // tokio's limit is usize::MAX >> 3 permits in total: far beyond any run.
        self.permits.add_permits(n.min(Semaphore::MAX_PERMITS / 2));
    }

    /// Waits for the next due ticket and returns its intended start time, or `None` when the
    /// run's tickets are all handed out.
    pub async fn next(&self) -> Option<Instant> {
        let permit = self.permits.acquire().await.ok()?;
        permit.forget();
        let ticket = self.tickets.take();
        if ticket >= self.total {
            return None;
        }
        let intended = self.start + self.schedule.offset(ticket);
        // Only reached when the pacer could not start its thread.
        if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
        }
        Some(intended)
    }
}

/// The pacer thread: sleeps until each ticket's time and releases every due ticket.
fn release_on_time(pacer: Weak<Pacer>, clients: usize) {
    let mut released = 0u64;
    loop {
        let Some(p) = pacer.upgrade() else {
            return;
        };
        let start = p.start.into_std();
        let now = std::time::Instant::now();
        let due = p
            .schedule
            .due_before(now.saturating_duration_since(start) + Duration::from_nanos(1))
            .min(p.total);
        if due > released {
            p.release(usize::try_from(due - released).unwrap_or(usize::MAX));
            released = due;
        }
        if released >= p.total {
            p.release(clients);
            return;
        }
        let next = start + p.schedule.offset(released);
        drop(p);
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced() {
        let schedule = OpenLoop::new(1000);
        assert_eq!(schedule.offset(0), Duration::ZERO);
        assert_eq!(schedule.offset(1), Duration::from_millis(1));
        assert_eq!(schedule.offset(2500), Duration::from_millis(2500));
    }

    #[test]
    fn intended_times_do_not_drift_at_rates_that_do_not_divide_a_second() {
        let schedule = OpenLoop::new(3);
        assert_eq!(schedule.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(schedule.offset(2), Duration::from_nanos(666_666_666));
        // After a day the schedule is still exactly on the second.
        let day = 3 * 86_400;
        assert_eq!(schedule.offset(day), Duration::from_secs(86_400));
    }

    #[test]
    fn due_before_counts_operations_whose_time_has_come() {
        let schedule = OpenLoop::new(1000);
        assert_eq!(schedule.due_before(Duration::ZERO), 0);
        assert_eq!(schedule.due_before(Duration::from_micros(1)), 1);
        assert_eq!(schedule.due_before(Duration::from_millis(1)), 1);
        assert_eq!(schedule.due_before(Duration::from_secs(10)), 10_000);
        for i in [0u64, 1, 7, 999, 123_456] {
            assert_eq!(schedule.due_before(schedule.offset(i)), i);
        }
    }

    #[test]
    fn zero_rate_is_one_per_second() {
        assert_eq!(OpenLoop::new(0).offset(2), Duration::from_secs(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pacer_releases_each_ticket_at_its_time_then_stops_every_client() {
        let start = Instant::now();
        let pacer = Pacer::start(OpenLoop::new(200), start, Duration::from_millis(250), 3);
        let mut handles = Vec::new();
        for _ in 0..3 {
            let pacer = pacer.clone();
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(intended) = pacer.next().await {
                    // Never early: a ticket is handed out only once its time has come.
                    assert!(Instant::now() >= intended);
                    got.push(intended - start);
                }
                got
            }));
        }
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.expect("client task"));
        }
        all.sort();
        // 250 ms at 200/s: tickets 0..50, 5 ms apart, each once.
        let expected: Vec<Duration> = (0..50).map(|i| Duration::from_millis(5 * i)).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn tickets_are_handed_out_once_each() {
        let tickets = std::sync::Arc::new(Tickets::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let tickets = tickets.clone();
                std::thread::spawn(move || (0..1000).map(|_| tickets.take()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("ticket thread panicked"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..4000).collect::<Vec<_>>());
    }
}
