//! The store's upkeep, run by the collectors on a timer: partitions created ahead of time,
//! retention (whole partitions dropped, never `DELETE`), and the move of a `0001` database's
//! points ([`crate::legacy`]).
//!
//! Every collector runs [`run_once`] periodically; a session advisory lock makes one of them
//! do the work at a time and the others skip the round. Each step is idempotent, so a crash
//! in the middle is finished by the next round, on any collector.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use postgres::Client;

use crate::compact;
use crate::error::{Error, Result};
use crate::legacy;
use crate::partitions::{
    drop_partitions, Partition, Table, POINTS, POINTS_COMPACT, ROLLUP_1H, ROLLUP_1M,
};

/// Only one session does maintenance at a time ("maintain").
pub const MAINTENANCE_LOCK_KEY: i64 = 0x6d61_696e_7461_696e;

/// Legacy rows moved per transaction.
const LEGACY_BATCH_ROWS: i64 = 50_000;

/// How long one round may spend moving legacy rows before it yields (the next round goes on).
const LEGACY_ROUND_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// What to keep, and how far ahead to prepare.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Raw points; `None` keeps them forever.
    pub points: Option<Duration>,
    /// Per-minute rollups.
    pub rollup_1m: Option<Duration>,
    /// Per-hour rollups.
    pub rollup_1h: Option<Duration>,
    /// Days after today whose partitions exist before the first point needs them.
    pub days_ahead: i64,
    /// Compact a day of points once it is over and this much older; `None` never compacts.
    pub compact_after: Option<Duration>,
}

impl Default for Policy {
    /// 30 days of points, 90 of minutes, two years of hours; two days ahead; days of points
    /// compacted a day after they end.
    fn default() -> Self {
        Policy {
            points: Some(Duration::days(30)),
            rollup_1m: Some(Duration::days(90)),
            rollup_1h: Some(Duration::days(730)),
            days_ahead: 2,
            compact_after: Some(Duration::days(1)),
        }
    }
}

impl Policy {
    /// The oldest point time the store keeps now.
    pub fn oldest_point(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.points.map(|r| now - r)
    }

    fn retention_of(&self, table: Table) -> Option<Duration> {
        match table {
            t if t == ROLLUP_1M => self.rollup_1m,
            t if t == ROLLUP_1H => self.rollup_1h,
            _ => self.points,
        }
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// False when another session held the maintenance lock (this round did nothing).
    pub ran: bool,
    pub created: usize,
    pub dropped: Vec<String>,
    pub legacy_moved: u64,
    /// True once no legacy table is left.
    pub legacy_done: bool,
    /// Points partitions compacted this round.
    pub compacted: Vec<String>,
}

/// One round: partitions ahead, retention, and a slice of the legacy move.
pub fn run_once(client: &mut Client, policy: &Policy) -> Result<Report> {
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&MAINTENANCE_LOCK_KEY])?
        .get(0);
    if !locked {
        return Ok(Report::default());
    }
    let result = run_locked(client, policy);
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MAINTENANCE_LOCK_KEY]);
    let report = result?;
    unlocked?;
    Ok(report)
}

fn run_locked(client: &mut Client, policy: &Policy) -> Result<Report> {
    let now = Utc::now();
    let mut report = Report {
        ran: true,
        ..Report::default()
    };
    for table in [POINTS, ROLLUP_1M, ROLLUP_1H] {
        for ahead in 0..=policy.days_ahead {
            let day = (now + Duration::days(ahead)).date_naive();
            report.created += usize::from(table.ensure(client, day)?);
        }
        if let Some(retention) = policy.retention_of(table) {
            report
                .dropped
                .extend(drop_expired(client, table, now - retention)?);
        }
    }
    if let Some(after) = policy.compact_after {
        report.compacted = compact::compact_older_than(client, now - after)?;
    }
    if legacy::pending(client)? {
        let oldest = policy.oldest_point(now);
        legacy::prepare_partitions(client, oldest)?;
        let started = std::time::Instant::now();
        loop {
            let moved = legacy::move_batch(client, LEGACY_BATCH_ROWS, oldest)?;
            report.legacy_moved += moved;
            if moved == 0 {
                legacy::finish(client)?;
                break;
            }
            if started.elapsed() > LEGACY_ROUND_BUDGET {
                break;
            }
        }
        if report.legacy_moved > 0 {
            tracing::info!(
                rows = report.legacy_moved,
                "moved 0001 points into the compact store"
            );
        }
    }
    report.legacy_done = !legacy::pending(client)?;
    Ok(report)
}

/// Drops the partitions of `table` whose every row is older than `cutoff`; returns their
/// names. A day of points goes with its compacted chunks and its day totals, in one
/// transaction, so the stats never count what is gone (nor miss what is there).
fn drop_expired(client: &mut Client, table: Table, cutoff: DateTime<Utc>) -> Result<Vec<String>> {
    let cutoff_day = cutoff.date_naive();
    let tables: &[Table] = if table == POINTS {
        &[POINTS, POINTS_COMPACT]
    } else {
        std::slice::from_ref(&table)
    };
    let mut by_start: BTreeMap<NaiveDate, Vec<(Table, Partition)>> = BTreeMap::new();
    for t in tables {
        for p in t.list(client)?.into_iter().filter(|p| p.end <= cutoff_day) {
            by_start.entry(p.start).or_default().push((*t, p));
        }
    }
    let mut dropped = Vec::new();
    for (start, parts) in by_start {
        let end = parts.iter().map(|(_, p)| p.end).max().unwrap_or(start);
        let is_points = table == POINTS;
        let done = drop_partitions(client, &parts, |tx| {
            if is_points {
                tx.execute(
                    "DELETE FROM metric_day_totals WHERE day >= $1 AND day < $2",
                    &[&start, &end],
                )?;
            }
            Ok(())
        })?;
        if done {
            dropped.extend(parts.into_iter().map(|(_, p)| p.name));
        }
    }
    Ok(dropped)
}

/// Parses a retention such as `30d`, `12h`, `90m`, `2w`, `1y` (365 days); `off` (or `0`)
/// keeps everything.
pub fn parse_retention(text: &str) -> Result<Option<Duration>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") || text == "0" {
        return Ok(None);
    }
    let bad = || {
        Error::Setting(format!(
            "retention {text:?}: expected a number and a unit (s, m, h, d, w, y), such as 30d, or off"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    let total = n.checked_mul(seconds).filter(|s| *s > 0).ok_or_else(bad)?;
    // Beyond ~1000 years chrono's arithmetic on "now" would overflow.
    if total > 1000 * 365 * 86_400 {
        return Err(bad());
    }
    Ok(Some(Duration::seconds(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_parse_with_units_or_off() {
        assert_eq!(parse_retention("30d").unwrap(), Some(Duration::days(30)));
        assert_eq!(parse_retention("12h").unwrap(), Some(Duration::hours(12)));
        assert_eq!(parse_retention("2w").unwrap(), Some(Duration::days(14)));
        assert_eq!(parse_retention("1y").unwrap(), Some(Duration::days(365)));
        assert_eq!(parse_retention("off").unwrap(), None);
        assert_eq!(parse_retention("0").unwrap(), None);
        for bad in ["", "d", "30", "30x", "-1d", "99999999999999999d", "1.5d"] {
            let e = parse_retention(bad).unwrap_err().to_string();
            assert!(e.contains("retention"), "{bad}: {e}");
        }
    }
}
