//! The streamer's rate limiter (`--rate`): holds rows back to a steady rate, measured from
//! the first row.
//!
//! Owns only the schedule: row `n` (counting from 0) is due `n / rate` seconds after the first.
//! Measuring from the first row rather than row to row means a late row (a slow broker, a
//! rebalance) is followed by rows sent at once until the schedule is met again, so the average
//! holds over the run. What the streamer reports about its rate is [`super::report`]'s.

use std::time::{Duration, Instant};

use pipeline_common::shutdown::ShutdownFlag;

/// Holds rows back to `--rate` rows/s (0: no limit), measured from the first row.
pub struct Pacer {
    rate: f64,
    started: Option<Instant>,
    rows: u64,
}

impl Pacer {
    pub fn new(rate: f64) -> Self {
        Pacer {
            rate,
            started: None,
            rows: 0,
        }
    }

    pub fn is_paced(&self) -> bool {
        self.rate > 0.0
    }

    /// When the next row is due, counting it (the first row starts the clock); `None` when
    /// unpaced.
    fn next_due(&mut self, now: Instant) -> Option<Instant> {
        if !self.is_paced() {
            return None;
        }
        let started = *self.started.get_or_insert(now);
        let due = started + Duration::from_secs_f64(self.rows as f64 / self.rate);
        self.rows += 1;
        Some(due)
    }

    /// Waits until one more row is due; returns `true` when shutdown interrupted the wait.
    pub fn wait_for_row(&mut self, shutdown: &ShutdownFlag) -> bool {
        let now = Instant::now();
        match self.next_due(now) {
            Some(due) if due > now => shutdown.sleep(due - now),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_due_at_the_rate_from_the_first_row() {
        let mut p = Pacer::new(200.0);
        let t0 = Instant::now();
        assert_eq!(p.next_due(t0), Some(t0));
        // Asked late, the schedule still counts from the first row: no drift.
        let late = t0 + Duration::from_secs(1);
        assert_eq!(p.next_due(late), Some(t0 + Duration::from_millis(5)));
        assert_eq!(p.next_due(late), Some(t0 + Duration::from_millis(10)));
    }

    #[test]
    fn pacing_holds_rows_to_the_rate() {
        let mut p = Pacer::new(200.0);
        let t = Instant::now();
        for _ in 0..21 {
            assert!(!p.wait_for_row(&ShutdownFlag::new()));
        }
        // 20 intervals of 5 ms after the first row (a lower bound: never faster than asked).
        assert!(
            t.elapsed() >= Duration::from_millis(95),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn without_a_rate_rows_never_wait() {
        let mut unpaced = Pacer::new(0.0);
        assert!(!unpaced.is_paced());
        assert_eq!(unpaced.next_due(Instant::now()), None);
        assert!(!unpaced.wait_for_row(&ShutdownFlag::new()));
    }

    #[test]
    fn shutdown_interrupts_the_wait_for_a_row() {
        // One row an hour: the second row's wait would be an hour without the flag.
        let mut p = Pacer::new(1.0 / 3600.0);
        let flag = ShutdownFlag::new();
        assert!(!p.wait_for_row(&flag));
        flag.trigger();
        assert!(p.wait_for_row(&flag));
    }
}
