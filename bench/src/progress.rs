//! The progress bar shown while a phase runs (indicatif, on stderr; hidden when stderr is
//! not a terminal).
//!
//! A [`PhaseBar`] reads the phase's [`Live`] counters from a ticker task every 200 ms, so the
//! clients never touch the terminal.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::runner::Live;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// What the bar's length counts.
#[derive(Clone, Copy, Debug)]
pub enum Measure {
    /// Time: the bar fills over this long.
    Time(Duration),
    /// Operations: the bar fills when this many are done.
    Ops(u64),
}

/// A progress bar for one phase; cleared when dropped.
#[derive(Debug)]
pub struct PhaseBar {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl PhaseBar {
    /// Shows a bar labelled `label` that fills by `measure`, reporting `live`'s counters.
    pub fn start(label: &str, measure: Measure, live: Arc<Live>) -> Self {
        let len = match measure {
            Measure::Time(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Measure::Ops(n) => n,
        };
        let bar = ProgressBar::new(len.max(1));
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:<28} [{bar:30.cyan/blue}] {percent:>3}% {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        let started = Instant::now();
        let ticker_bar = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            loop {
                interval.tick().await;
                let done = live.done.load(Ordering::Relaxed);
                let failed = live.failed.load(Ordering::Relaxed);
                let elapsed = started.elapsed();
                let position = match measure {
                    Measure::Time(_) => u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    Measure::Ops(_) => done,
                };
                ticker_bar.set_position(position);
                let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
                ticker_bar.set_message(format!("{done} ops ({rate:.0}/s), {failed} failed"));
            }
        });
        PhaseBar { bar, ticker }
    }
}

impl Drop for PhaseBar {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// A spinner for steps of unknown length (starting and stopping clusters).
pub fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
