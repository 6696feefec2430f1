//! Server processes the benchmark starts, and the guarantee that it stops them.
//!
//! [`ServerProcess`] owns one child process with its output in a log file. Dropping it stops
//! the process (SIGTERM, then SIGKILL after a grace period), so a target's cluster is stopped
//! on every path out of a run: normal end, error, Ctrl-C (the run's future is dropped) and
//! panic (unwinding drops it). Every live child is also listed in a process-wide registry that
//! [`install_panic_hook`] kills, for panics that do not unwind through the owner.
//!
//! Also here: [`peak_rss_kib`] (VmHWM from `/proc/PID/status`), [`cpu_seconds`] (user and
//! system time from `/proc/PID/stat`), and [`wait_for_log`] for servers that announce
//! readiness in their log.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a stopped server may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Every child process started and not yet reaped, by pid.
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    // A panic while the lock was held leaves the set itself intact: keep using it.
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `signal` to `pid`.
fn signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; pid is a child we have not reaped,
    // so it cannot have been reused by an unrelated process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Kills (SIGKILL) every child process still running. Idempotent.
pub fn kill_all() {
    for pid in live().iter() {
        signal(*pid, libc::SIGKILL);
    }
}

/// Chains a panic hook that kills every child before the default hook runs.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all();
        previous(info);
    }));
}

/// One running server process, stopped when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// A short name for messages, e.g. `etcd-2`.
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `program` with `args` and extra environment `env`, stdout and stderr written
    /// to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        live().insert(child.id());
        Ok(ServerProcess {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Fails, quoting the end of the log, when the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was stopped", self.name);
        };
        if let Some(status) = child.try_wait().context("polling a server process")? {
            live().remove(&child.id());
            self.child = None;
            bail!(
                "{} exited ({status}); end of its log {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 15)
            );
        }
        Ok(())
    }

    /// Stops the process: SIGTERM, then SIGKILL if it has not exited within a grace period.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    // Either the grace period passed or the child cannot be polled: kill and
                    // reap it (errors mean it is already gone).
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        live().remove(&pid);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a log file (empty when it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until `process`'s log contains `needle`, failing if it exits or `timeout` passes.
pub async fn wait_for_log(
    process: &mut ServerProcess,
    needle: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(process.log()).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        process.check_running()?;
        if Instant::now() > deadline {
            bail!(
                "{} did not log {needle:?} within {timeout:?}; end of its log:\n{}",
                process.name(),
                log_tail(process.log(), 15)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The peak resident set size of `pid` in KiB (`VmHWM` in `/proc/PID/status`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&status)
}

/// Reads the `VmHWM:` line of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The CPU time `pid` has used so far, user and system, over all its threads, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_cpu_ticks(&stat)?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// The kernel's clock ticks per second, the unit of `/proc` CPU times.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` text, in clock ticks. The command
/// name (field 2) is in parentheses and may itself hold spaces and parentheses, so the fields
/// are counted from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (the state): utime is field 14, 11 places further.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_user_plus_system_time() {
        // A real line's shape, with a command name that holds a space and a parenthesis.
        let stat = "4242 (tokio rt) w) S 1 4242 4242 0 -1 4194560 1200 0 3 0 \
                    731 219 0 0 20 0 9 0 123456 1048576 2500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(731 + 219));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = cpu_seconds(std::process::id()).expect("own /proc/PID/stat");
        // Spin until the kernel has charged at least two ticks more to this process.
        let tick = 1.0 / clock_ticks_per_second();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 1u64;
        let after = loop {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            std::hint::black_box(x);
            let now = cpu_seconds(std::process::id()).expect("own /proc/PID/stat");
            if now >= before + 2.0 * tick || Instant::now() > deadline {
                break now;
            }
        };
        assert!(after >= before + 2.0 * tick, "{before} s -> {after} s");
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tetcd\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(12345));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }

    #[test]
    fn own_peak_rss_is_readable() {
        assert!(peak_rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn a_dropped_process_is_stopped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("sleep.log");
        let process =
            ServerProcess::spawn("sleep", Path::new("sleep"), &["30".to_string()], &[], &log)
                .expect("sleep starts");
        let pid = process.pid().expect("running");
        assert!(live().contains(&pid));
        drop(process);
        assert!(!live().contains(&pid));
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
