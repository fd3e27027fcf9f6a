//! What the streamer tells people while it runs: a progress bar with rows/s on a terminal,
//! a rate line every few seconds otherwise (a service's log). The pacing of `--rate` is
//! [`super::pacer`]'s.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts rows and shows the rate: a redrawn line on a terminal, a log line elsewhere.
pub struct Reporter {
    terminal: bool,
    started: Instant,
    last_shown: Instant,
    every: Duration,
    rows_at_last: u64,
    /// Rows the broker acknowledged (counted by the sender thread).
    pub produced: Arc<AtomicU64>,
    pub skipped: u64,
}

impl Reporter {
    pub fn new() -> Self {
        let terminal = std::io::stderr().is_terminal();
        Reporter {
            terminal,
            started: Instant::now(),
            last_shown: Instant::now(),
            every: if terminal {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            },
            rows_at_last: 0,
            produced: Arc::default(),
            skipped: 0,
        }
    }

    /// Shows progress if it is time; `fraction` is how far through the file the scan is.
    pub fn tick(&mut self, fraction: f64) {
        let now = Instant::now();
        let since = now.duration_since(self.last_shown);
        if since < self.every {
            return;
        }
        let produced = self.produced.load(Ordering::Relaxed);
        let rate = produced.saturating_sub(self.rows_at_last) as f64 / since.as_secs_f64();
        if self.terminal {
            let width = 30;
            let done = ((fraction.clamp(0.0, 1.0)) * width as f64) as usize;
            eprint!(
                "\r[{}{}] {:>3.0}%  {} rows  {:.0} rows/s  {} skipped ",
                "#".repeat(done),
                " ".repeat(width - done),
                fraction * 100.0,
                produced,
                rate,
                self.skipped
            );
            let _ = std::io::stderr().flush();
        } else {
            tracing::info!(
                rows_produced = produced,
                rows_skipped = self.skipped,
                rows_per_second = rate.round(),
                file_fraction = (fraction * 1000.0).round() / 1000.0,
                "streaming"
            );
        }
        self.last_shown = now;
        self.rows_at_last = produced;
    }

    /// Ends the bar's line and logs the totals.
    pub fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
        let secs = self.started.elapsed().as_secs_f64();
        let produced = self.produced.load(Ordering::Relaxed);
        tracing::info!(
            rows_produced = produced,
            rows_skipped = self.skipped,
            seconds = (secs * 10.0).round() / 10.0,
            rows_per_second = (produced as f64 / secs.max(1e-9)).round(),
            "streamer finished"
        );
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Self::new()
    }
}
