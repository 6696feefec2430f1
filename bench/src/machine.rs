//! What the machine looks like during a run: CPUs, load average and a quick fsync probe.
//!
//! On shared machines a quiet fdatasync takes about 0.2 ms and a busy one several ms; every
//! durable target pays it per write (or per group of writes), so the probe is printed with
//! the results to tell a slow disk moment from a slow target.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::report::Machine;

/// How many write + fdatasync rounds the probe makes.
const FSYNC_ROUNDS: usize = 50;

/// The one-minute load average, or 0 when /proc/loadavg cannot be read.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| parse_load_average(&text))
        .unwrap_or(0.0)
}

/// The first field of a /proc/loadavg text.
pub fn parse_load_average(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Busy and total time of all CPUs since boot, in clock ticks (the `cpu` line of
/// `/proc/stat`), or `None` when it cannot be read.
pub fn cpu_times() -> Option<CpuTimes> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| parse_cpu_times(&text))
}

/// Busy and total CPU time, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time not idle and not waiting for I/O.
    pub busy: u64,
    /// All time, over all CPUs.
    pub total: u64,
}

impl CpuTimes {
    /// The share of the CPUs that was busy between `self` and a later reading, 0 to 1.
    pub fn busy_share_until(&self, later: &CpuTimes) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.busy.saturating_sub(self.busy) as f64 / total as f64
    }
}

/// The first (`cpu`, all CPUs) line of a `/proc/stat` text: user, nice, system, idle, iowait,
/// irq, softirq, steal; idle and iowait are not busy. (guest and guest_nice, when present,
/// are already counted in user and nice.)
pub fn parse_cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 5 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields[4];
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// The CPU model name, or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The median time of a 4 KiB write followed by fdatasync in `dir`, in milliseconds.
pub fn fsync_probe(dir: &Path) -> Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("creating the fsync probe {}", path.display()))?;
    let block = [0x5au8; 4096];
    let mut times = Vec::with_capacity(FSYNC_ROUNDS);
    for _ in 0..FSYNC_ROUNDS {
        let start = Instant::now();
        file.write_all(&block).context("fsync probe write")?;
        file.sync_data().context("fsync probe fdatasync")?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The machine description at the start of a run (the end load average is filled in later).
pub fn describe(dir: &Path) -> Result<Machine> {
    Ok(Machine {
        cpu: cpu_model(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_avg_start: load_average(),
        load_avg_end: 0.0,
        fsync_p50_ms: fsync_probe(dir)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_average_is_the_first_field() {
        assert_eq!(parse_load_average("1.69 2.66 2.14 3/456 789\n"), Some(1.69));
        assert_eq!(parse_load_average(""), None);
    }

    #[test]
    fn cpu_times_leave_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        let t = parse_cpu_times(stat).expect("a cpu line");
        assert_eq!(t.total, 1000);
        assert_eq!(t.busy, 160);
        let later = CpuTimes {
            busy: 160 + 30,
            total: 1000 + 120,
        };
        assert!((t.busy_share_until(&later) - 0.25).abs() < 1e-9);
        assert_eq!(t.busy_share_until(&t), 0.0);
        assert_eq!(parse_cpu_times("intr 1 2 3\n"), None);
    }

    #[test]
    fn fsync_probe_measures_something() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ms = fsync_probe(dir.path()).expect("probe runs");
        assert!(ms > 0.0);
        assert!(!dir.path().join("fsync-probe").exists());
    }
}
