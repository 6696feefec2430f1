//! Loopback ports for the server processes the harnesses start (this one, the integration
//! tests and the benchmarks).
//!
//! A port found by binding port 0 comes from the kernel's ephemeral range, the range every
//! outgoing connection takes its local port from. A cluster must know its ports before its
//! processes bind them (each replica is started with every peer's address), and a killed node
//! binds its port again when it restarts: in either gap any connection of any process may take
//! the port, and the server fails with "Address already in use". Test clusters open many
//! short connections, so this happens. [`listen_ports`] therefore chooses ports outside the
//! ephemeral range (read from `/proc/sys/net/ipv4/ip_local_port_range`), where only explicit
//! binds land; it checks each one free by binding it, and one process never hands out the same
//! port twice (until it has used the whole range). Different processes start at different
//! places in the range.

use std::net::TcpListener;
use std::ops::Range;
use std::sync::Mutex;

use anyhow::{bail, Context};

/// The lowest port handed out: below it are well-known and registered services' ports.
const LOWEST: u16 = 10_000;

/// The kernel's ephemeral port range on Linux when it cannot be read.
const DEFAULT_EPHEMERAL: (u16, u16) = (32_768, 60_999);

/// The next port to try, once the range is known.
static CURSOR: Mutex<Option<Cursor>> = Mutex::new(None);

struct Cursor {
    range: Range<u16>,
    next: u16,
}

/// `n` distinct loopback ports that are free now and outside the kernel's ephemeral range.
pub fn listen_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let mut guard = CURSOR.lock().unwrap_or_else(|e| e.into_inner());
    let cursor = guard.get_or_insert_with(|| {
        let range = outside(ephemeral_range());
        let len = u32::from(range.end - range.start);
        let offset = std::process::id().wrapping_mul(7_919) % len;
        Cursor {
            next: range.start + offset as u16,
            range,
        }
    });
    cursor.take(n, |port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

impl Cursor {
    /// The next `n` ports for which `free` holds, going round the range at most once.
    fn take(&mut self, n: usize, free: impl Fn(u16) -> bool) -> anyhow::Result<Vec<u16>> {
        let mut ports = Vec::with_capacity(n);
        for _ in 0..self.range.len() {
            if ports.len() == n {
                break;
            }
            let port = self.next;
            self.next = if port + 1 == self.range.end {
                self.range.start
            } else {
                port + 1
            };
            if free(port) {
                ports.push(port);
            }
        }
        if ports.len() < n {
            bail!(
                "no free loopback port in {}..{} (found {} of {n})",
                self.range.start,
                self.range.end,
                ports.len()
            );
        }
        Ok(ports)
    }
}

/// The kernel's ephemeral port range, inclusive.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .context("reading the ephemeral port range")
        .ok()
        .and_then(|text| parse_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// Parses `ip_local_port_range` ("32768\t60999\n").
fn parse_range(text: &str) -> Option<(u16, u16)> {
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    let lo = parts.next()?.ok()?;
    let hi = parts.next()?.ok()?;
    (lo <= hi).then_some((lo, hi))
}

/// The wider of the two stretches outside the ephemeral range `lo..=hi`: `LOWEST..lo` or
/// `hi + 1..65535`. If neither holds a thousand ports (a kernel told to use nearly every port
/// for outgoing connections), the range above [`LOWEST`] is used as it is.
fn outside((lo, hi): (u16, u16)) -> Range<u16> {
    let below = LOWEST..lo.max(LOWEST);
    let above = hi.saturating_add(1).max(LOWEST)..u16::MAX;
    let wider = if below.len() >= above.len() {
        below
    } else {
        above
    };
    if wider.len() >= 1_000 {
        wider
    } else {
        LOWEST..u16::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let (lo, hi) = ephemeral_range();
        let mut ports = listen_ports(50).expect("ports");
        ports.extend(listen_ports(50).expect("more ports"));
        for &p in &ports {
            assert!(!(lo..=hi).contains(&p), "{p} is in the ephemeral range");
            assert!(p >= LOWEST);
        }
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
    }

    #[test]
    fn taken_ports_are_skipped_and_the_cursor_wraps_once() {
        let mut cursor = Cursor {
            range: 100..110,
            next: 107,
        };
        let odd = |p: u16| p % 2 == 1;
        assert_eq!(
            cursor.take(3, odd).expect("three odd ports"),
            vec![107, 109, 101]
        );
        assert_eq!(cursor.next, 102);
        assert_eq!(cursor.take(2, odd).expect("two more"), vec![103, 105]);
        // Five odd ports in the range: asking for six goes round once and fails.
        let err = cursor.take(6, odd).expect_err("only five odd ports exist");
        assert!(err.to_string().contains("found 5 of 6"), "{err}");
    }

    #[test]
    fn the_range_avoids_the_ephemeral_ports() {
        assert_eq!(outside((32_768, 60_999)), 10_000..32_768);
        assert_eq!(outside((1_024, 60_999)), 61_000..65_535);
        assert_eq!(outside((1_024, 65_000)), 10_000..65_535);
        assert_eq!(outside((40_000, 50_000)), 10_000..40_000);
        assert_eq!(parse_range("32768\t60999\n"), Some((32_768, 60_999)));
        assert_eq!(parse_range("9 x"), None);
        assert_eq!(parse_range("70000 80000"), None);
    }
}
