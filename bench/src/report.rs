//! Results: one row per target, the table `compare` prints and the JSON it writes.
//!
//! The JSON keeps the fields other tools read (`targets[].name`, `ops_per_sec`, `p50_ms`,
//! `p99_ms`, `p999_ms`, `peak_rss_mb`) flat and numeric; everything else (the run's
//! settings, the machine, skipped targets, the latency curve) sits beside them. The table
//! adds each target's ratio to etcd, the reference both runs share: a ratio measured in the
//! same run on the same machine is the figure that survives a noisy neighbour.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One measured target.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TargetReport {
    /// The target's name (`etcd`, `dialkv-pb`, ...).
    pub name: String,
    /// Successful operations per second in the measured window.
    pub ops_per_sec: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile latency in milliseconds.
    pub p999_ms: f64,
    /// Peak resident memory of all the target's server processes together (VmHWM summed), MiB.
    pub peak_rss_mb: f64,
    /// Peak resident memory of its largest server process, MiB.
    pub peak_rss_mb_max_process: f64,
    /// Server processes in the cluster.
    pub processes: usize,
    /// CPU time (user and system) the target's server processes used in the measured window,
    /// summed over them, per successful operation, in microseconds.
    #[serde(default)]
    pub server_cpu_us_per_op: f64,
    /// CPU time the load generator (this process: clients, client library, histograms) used
    /// in the measured window per successful operation, in microseconds.
    #[serde(default)]
    pub client_cpu_us_per_op: f64,
    /// The share of all the machine's CPUs that was busy in the measured window, 0 to 1. Near
    /// 1, throughput is the CPUs divided by the CPU time per operation (server plus client).
    #[serde(default)]
    pub machine_busy: f64,
    /// Operations that failed in the measured window.
    pub errors: u64,
    /// Reads that found no value (should be 0: every key is loaded first).
    pub misses: u64,
    /// The first error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// The target's settings, e.g. members and durability.
    pub settings: String,
    /// Points of the latency-versus-throughput curve (open loop at fixed rates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<CurvePoint>,
}

/// One open-loop run at a fixed rate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// The rate asked for, operations per second.
    pub target_ops_per_sec: f64,
    /// The rate reached.
    pub ops_per_sec: f64,
    /// Median latency from the intended start, ms.
    pub p50_ms: f64,
    /// 99th percentile latency from the intended start, ms.
    pub p99_ms: f64,
}

/// A target that was not measured, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Skipped {
    /// The target's name.
    pub name: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The machine a run happened on, so numbers are read in context.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// CPUs available to this process.
    pub cpus: usize,
    /// One-minute load average when the run started.
    pub load_avg_start: f64,
    /// One-minute load average when it ended.
    pub load_avg_end: f64,
    /// Median of a quick fsync probe (4 KiB write + fdatasync) in the run's directory, ms.
    pub fsync_p50_ms: f64,
}

/// A whole `compare` run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The workload and its description.
    pub workload: String,
    /// The key distribution.
    pub distribution: String,
    /// Records loaded.
    pub records: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Closed loop or the open-loop rate.
    pub pacing: String,
    /// Seconds measured per target.
    pub duration_s: f64,
    /// Seconds of warm-up excluded before.
    pub warmup_s: f64,
    /// The machine.
    pub machine: Machine,
    /// Every measured target, in the order run.
    pub targets: Vec<TargetReport>,
    /// Targets not measured.
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// Reads a report written by [`Report::to_json`].
    pub fn from_json(text: &str) -> serde_json::Result<Report> {
        serde_json::from_str(text)
    }

    /// The title of the report's plot.
    pub fn plot_title(&self) -> String {
        format!(
            "workload {} ({}), {} B values, up to {} clients",
            self.workload, self.distribution, self.value_size, self.clients
        )
    }

    /// Each target's latency curve, for the plot.
    pub fn curves(&self) -> Vec<(String, Vec<CurvePoint>)> {
        self.targets
            .iter()
            .map(|t| (t.name.clone(), t.curve.clone()))
            .collect()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// The etcd row, the reference of the ratios.
    pub fn reference(&self) -> Option<&TargetReport> {
        self.targets.iter().find(|t| t.name == "etcd")
    }

    /// The human-readable table: one row per target, then the ratios to etcd, then skips.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "workload {} ({}), {} keys, {} B values, {} clients, {}, {:.0} s measured after {:.0} s warm-up",
            self.workload,
            self.distribution,
            self.records,
            self.value_size,
            self.clients,
            self.pacing,
            self.duration_s,
            self.warmup_s
        );
        let _ = writeln!(
            out,
            "machine: {} CPUs ({}), load {:.2} -> {:.2}, fsync p50 {:.2} ms",
            self.machine.cpus,
            self.machine.cpu,
            self.machine.load_avg_start,
            self.machine.load_avg_end,
            self.machine.fsync_p50_ms
        );
        let reference = self.reference();
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>7} | {:>9} {:>8} {:>8}",
            "target",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "RSS MiB",
            "srv µs/op",
            "gen µs/op",
            "busy",
            "errors",
            "ops÷etcd",
            "p50÷etcd",
            "p99÷etcd"
        );
        for t in &self.targets {
            let ratio = |mine: f64, theirs: Option<f64>| match theirs {
                Some(theirs) if theirs > 0.0 => format!("{:.2}", mine / theirs),
                _ => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "{:<14} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.0} {:>9.1} {:>9.1} {:>5.0}% {:>7} | {:>9} {:>8} {:>8}",
                t.name,
                t.ops_per_sec,
                t.p50_ms,
                t.p99_ms,
                t.p999_ms,
                t.peak_rss_mb,
                t.server_cpu_us_per_op,
                t.client_cpu_us_per_op,
                t.machine_busy * 100.0,
                t.errors,
                ratio(t.ops_per_sec, reference.map(|r| r.ops_per_sec)),
                ratio(t.p50_ms, reference.map(|r| r.p50_ms)),
                ratio(t.p99_ms, reference.map(|r| r.p99_ms)),
            );
        }
        for t in &self.targets {
            let _ = writeln!(out, "  {}: {}", t.name, t.settings);
            if let Some(e) = &t.first_error {
                let _ = writeln!(out, "    first error: {e}");
            }
            if t.misses > 0 {
                let _ = writeln!(out, "    {} reads found no value", t.misses);
            }
        }
        for s in &self.skipped {
            let _ = writeln!(out, "  {} skipped: {}", s.name, s.reason);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, ops: f64, p50: f64) -> TargetReport {
        TargetReport {
            name: name.into(),
            ops_per_sec: ops,
            p50_ms: p50,
            p99_ms: p50 * 4.0,
            p999_ms: p50 * 8.0,
            peak_rss_mb: 100.0,
            peak_rss_mb_max_process: 40.0,
            processes: 3,
            server_cpu_us_per_op: ops / 100.0,
            client_cpu_us_per_op: 30.0,
            machine_busy: 0.875,
            errors: 0,
            misses: 0,
            first_error: None,
            settings: "3 members".into(),
            curve: Vec::new(),
        }
    }

    fn report() -> Report {
        Report {
            workload: "A".into(),
            distribution: "zipfian".into(),
            records: 1000,
            value_size: 100,
            clients: 64,
            pacing: "closed loop".into(),
            duration_s: 10.0,
            warmup_s: 2.0,
            machine: Machine::default(),
            targets: vec![row("dialkv-pb", 9000.0, 1.0), row("etcd", 3000.0, 4.0)],
            skipped: vec![Skipped {
                name: "dialkv-quorum".into(),
                reason: "not available".into(),
            }],
        }
    }

    #[test]
    fn json_has_the_documented_target_fields() {
        let json: serde_json::Value =
            serde_json::from_str(&report().to_json().expect("serializes")).expect("parses");
        let first = &json["targets"][0];
        assert_eq!(first["name"], "dialkv-pb");
        assert_eq!(first["ops_per_sec"], 9000.0);
        assert_eq!(first["p50_ms"], 1.0);
        assert_eq!(first["p99_ms"], 4.0);
        assert_eq!(first["p999_ms"], 8.0);
        assert_eq!(first["peak_rss_mb"], 100.0);
        assert_eq!(first["server_cpu_us_per_op"], 90.0);
        assert_eq!(first["client_cpu_us_per_op"], 30.0);
        assert_eq!(first["machine_busy"], 0.875);
        assert!(first.get("first_error").is_none());
        assert!(first.get("curve").is_none());
        assert_eq!(json["skipped"][0]["name"], "dialkv-quorum");
    }

    #[test]
    fn json_round_trips() {
        let mut report = report();
        report.targets[0].curve.push(CurvePoint {
            target_ops_per_sec: 100.0,
            ops_per_sec: 99.5,
            p50_ms: 1.5,
            p99_ms: 3.0,
        });
        let text = report.to_json().expect("serializes");
        assert_eq!(Report::from_json(&text).expect("parses"), report);
    }

    #[test]
    fn json_of_runs_before_cpu_accounting_still_parses() {
        let mut json: serde_json::Value =
            serde_json::from_str(&report().to_json().expect("serializes")).expect("parses");
        for t in json["targets"].as_array_mut().expect("targets") {
            let t = t.as_object_mut().expect("a target object");
            for field in [
                "server_cpu_us_per_op",
                "client_cpu_us_per_op",
                "machine_busy",
            ] {
                assert!(t.remove(field).is_some(), "{field} is written");
            }
        }
        let old = Report::from_json(&json.to_string()).expect("parses without the CPU fields");
        assert_eq!(old.targets[0].server_cpu_us_per_op, 0.0);
        assert_eq!(old.targets[0].machine_busy, 0.0);
    }

    #[test]
    fn table_shows_ratios_to_etcd() {
        let table = report().table();
        let dialkv = table
            .lines()
            .find(|l| l.starts_with("dialkv-pb "))
            .expect("a dialkv row");
        let cells: Vec<&str> = dialkv.split_whitespace().collect();
        // name, ops, p50, p99, p99.9, rss, server cpu, client cpu, busy, errors, |, ops ratio,
        // p50 ratio, p99 ratio
        assert_eq!(cells[1], "9000");
        assert_eq!(cells[2], "1.000");
        assert_eq!(&cells[6..9], ["90.0", "30.0", "88%"]);
        assert_eq!(&cells[11..], ["3.00", "0.25", "0.25"]);
        let etcd = table.lines().find(|l| l.starts_with("etcd ")).expect("row");
        assert!(etcd.ends_with("1.00     1.00     1.00"), "{etcd}");
        assert!(table.contains("dialkv-quorum skipped: not available"));
    }

    #[test]
    fn table_without_etcd_has_no_ratios() {
        let mut report = report();
        report.targets.retain(|t| t.name != "etcd");
        let table = report.table();
        let dialkv = table
            .lines()
            .find(|l| l.starts_with("dialkv-pb "))
            .expect("a dialkv row");
        assert!(dialkv.ends_with("-        -        -"), "{dialkv}");
    }
}
