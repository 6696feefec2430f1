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

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
