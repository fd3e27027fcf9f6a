//! Time partitions of `points`, `rollup_1m` and `rollup_1h`: naming them, creating them before
//! rows need them, listing them, and dropping whole ones at retention.
//!
//! A partition covers `span_days` UTC days aligned on 1970-01-01 and is called
//! `<table>_p<YYYYMMDD of its first day>`. It is created as a plain table and then attached:
//! `ATTACH PARTITION` takes only a `SHARE UPDATE EXCLUSIVE` lock on the parent, so ingest and
//! queries go on meanwhile (`CREATE TABLE … PARTITION OF` would take `ACCESS EXCLUSIVE`). Both
//! steps run in one transaction under an advisory lock, so several collectors never race and a
//! crash never leaves a detached table behind. Dropping detaches and drops in one transaction
//! with a short `lock_timeout`: if queries hold the parent, the drop waits for the next round
//! instead of stalling everyone queued behind it. Stock PostgreSQL 15+, no extension.
//!
//! What to drop (retention) is decided by [`crate::maintenance`]; this module only does it.

use chrono::{Duration, NaiveDate};
use postgres::{Client, Transaction};

use crate::error::Result;

/// A range-partitioned table of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Table {
    pub name: &'static str,
    /// Days one partition covers.
    pub span_days: i64,
    /// Page fill of each partition: below 100 for tables whose rows are updated in place, so
    /// an update finds room on its page and stays a HOT update (no index write).
    pub fillfactor: u8,
}

/// Raw points: a partition a day.
pub const POINTS: Table = Table {
    name: "points",
    span_days: 1,
    fillfactor: 100,
};
/// Compacted points: a partition a day, like the points they were.
pub const POINTS_COMPACT: Table = Table {
    name: "points_compact",
    span_days: 1,
    fillfactor: 100,
};
/// Per-minute rollups: a partition a day.
pub const ROLLUP_1M: Table = Table {
    name: "rollup_1m",
    span_days: 1,
    // Updated by the few batches of its minute only, and the largest rollup: packed.
    fillfactor: 100,
};
/// Per-hour rollups: a partition per 30 days (a year is 13 partitions).
pub const ROLLUP_1H: Table = Table {
    name: "rollup_1h",
    span_days: 30,
    // Updated by every batch of its hour: room for HOT updates.
    fillfactor: 70,
};
/// The partitioned tables a batch of points writes to.
pub const TABLES: [Table; 3] = [POINTS, ROLLUP_1M, ROLLUP_1H];

/// Serialises partition DDL between collectors ("partitio").
const PARTITION_LOCK_KEY: i64 = 0x7061_7274_6974_696f;

/// How long a drop waits for the parent's lock before giving up until the next round.
const DROP_LOCK_TIMEOUT: &str = "2s";

/// One existing partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    /// First day covered.
    pub start: NaiveDate,
    /// First day after it.
    pub end: NaiveDate,
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

impl Table {
    /// The first day of the partition holding `day`.
    pub fn start_of(&self, day: NaiveDate) -> NaiveDate {
        let days = (day - epoch()).num_days();
        epoch() + Duration::days(days.div_euclid(self.span_days) * self.span_days)
    }

    /// The partition that holds `day` (whether or not it exists).
    pub fn partition_of(&self, day: NaiveDate) -> Partition {
        let start = self.start_of(day);
        Partition {
            name: format!("{}_p{}", self.name, start.format("%Y%m%d")),
            start,
            end: start + Duration::days(self.span_days),
        }
    }

    /// The partitions attached to this table, oldest first.
    pub fn list(&self, client: &mut Client) -> Result<Vec<Partition>> {
        let rows = client.query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::text::regclass ORDER BY 1",
            &[&self.name],
        )?;
        let prefix = format!("{}_p", self.name);
        let mut out: Vec<Partition> = rows
            .iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                let day = NaiveDate::parse_from_str(name.strip_prefix(&prefix)?, "%Y%m%d").ok()?;
                Some(self.partition_of(day)).filter(|p| p.name == name)
            })
            .collect();
        out.sort_by_key(|p| p.start);
        Ok(out)
    }

    /// Creates the partition holding `day` unless it exists; true when it was created.
    pub fn ensure(&self, client: &mut Client, day: NaiveDate) -> Result<bool> {
        let p = self.partition_of(day);
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK_KEY])?;
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&p.name])?
            .get(0);
        if exists {
            return Ok(false);
        }
        // Names and bounds are ours (a table name and dates), never input text.
        tx.batch_execute(&format!(
            "CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
                 WITH (fillfactor = {fillfactor});
             ALTER TABLE {parent} ATTACH PARTITION {name}
                 FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00');",
            name = p.name,
            parent = self.name,
            start = p.start,
            end = p.end,
            fillfactor = self.fillfactor,
        ))?;
        tx.commit()?;
        tracing::info!(partition = %p.name, "created partition");
        Ok(true)
    }

    /// Detaches and drops `partition` in one transaction, running `also` in it before the
    /// commit. `Ok(false)` when the parent stayed locked by others past the lock timeout:
    /// try again later.
    pub fn drop_partition(
        &self,
        client: &mut Client,
        partition: &Partition,
        also: impl FnOnce(&mut Transaction<'_>) -> Result<()>,
    ) -> Result<bool> {
        drop_partitions(client, &[(*self, partition.clone())], also)
    }
}

/// Detaches and drops several partitions (of any tables) in one transaction, running `also`
/// in it before the commit; `Ok(false)` when a parent stayed locked past the lock timeout.
pub fn drop_partitions(
    client: &mut Client,
    partitions: &[(Table, Partition)],
    also: impl FnOnce(&mut Transaction<'_>) -> Result<()>,
) -> Result<bool> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))?;
    for (table, partition) in partitions {
        match detach_and_drop(&mut tx, table.name, &partition.name) {
            Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                tracing::info!(partition = %partition.name, "partition busy; dropping it next round");
                return Ok(false);
            }
            other => other?,
        }
    }
    also(&mut tx)?;
    tx.commit()?;
    for (_, partition) in partitions {
        tracing::info!(partition = %partition.name, "dropped partition");
    }
    Ok(true)
}

/// `ALTER TABLE parent DETACH PARTITION name; DROP TABLE name` (names are ours, never input).
pub(crate) fn detach_and_drop(
    tx: &mut Transaction<'_>,
    parent: &str,
    name: &str,
) -> std::result::Result<(), postgres::Error> {
    tx.batch_execute(&format!(
        "ALTER TABLE {parent} DETACH PARTITION {name}; DROP TABLE {name};"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn daily_partitions_are_named_by_their_day() {
        let p = POINTS.partition_of(day(2026, 12, 2));
        assert_eq!(p.name, "points_p20261202");
        assert_eq!((p.start, p.end), (day(2026, 12, 2), day(2026, 12, 3)));
    }

    #[test]
    fn longer_spans_align_on_the_epoch_and_cover_their_days() {
        for d in [
            day(1969, 12, 31),
            day(1970, 1, 1),
            day(2026, 12, 2),
            day(2027, 2, 28),
        ] {
            let p = ROLLUP_1H.partition_of(d);
            assert!(p.start <= d && d < p.end, "{d} in {p:?}");
            assert_eq!((p.end - p.start).num_days(), 30);
            assert_eq!((p.start - epoch()).num_days().rem_euclid(30), 0);
        }
    }
}
