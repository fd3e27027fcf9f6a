//! Storage throughput next to a plain sequential file write of the same bytes, measured in
//! the same run: `cargo bench -p broker-log --bench storage`.
//!
//! Workload: 400-byte records (no key) in batches of 1,000, `BENCH_MIB` (default 256) MiB of
//! batch bytes per case. References: the same encoded batches written with `write(2)` to a
//! fresh file, plus one `fdatasync` at the end (the page-cache figure, compared with the
//! `interval` and `never` policies, which also end with one `sync()`), or with an
//! `fdatasync` after every batch (the durable figure, compared with `always`). Reads go
//! through `read` (owned records) and `read_encoded` (whole batches) on a hot page cache.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use broker_log::{record, FsyncPolicy, LogConfig, PartitionLog, Record};

const RECORD_BYTES: usize = 400;
const BATCH_RECORDS: usize = 1000;

struct Workload {
    values: Vec<Vec<u8>>,
    batches: usize,
    batch_bytes: usize,
}

impl Workload {
    fn new(mib: usize) -> Workload {
        let mut rng = fastrand::Rng::with_seed(7);
        let values: Vec<Vec<u8>> = (0..BATCH_RECORDS)
            .map(|_| {
                (0..RECORD_BYTES)
                    .map(|_| rng.alphanumeric() as u8)
                    .collect()
            })
            .collect();
        let batch_bytes = record::encoded_len(&records(&values));
        Workload {
            batches: (mib << 20) / batch_bytes,
            values,
            batch_bytes,
        }
    }

    fn total_bytes(&self) -> f64 {
        (self.batches * self.batch_bytes) as f64
    }

    fn total_records(&self) -> f64 {
        (self.batches * BATCH_RECORDS) as f64
    }
}

fn records(values: &[Vec<u8>]) -> Vec<Record<'_>> {
    values
        .iter()
        .map(|v| Record {
            timestamp_ms: 1_700_000_000_000,
            key: None,
            value: v,
        })
        .collect()
}

struct Figure {
    mb_s: f64,
    rec_s: f64,
}

fn figure(w: &Workload, took: Duration) -> Figure {
    let s = took.as_secs_f64();
    Figure {
        mb_s: w.total_bytes() / s / 1e6,
        rec_s: w.total_records() / s,
    }
}

fn plain_write(w: &Workload, dir: &Path, sync_each: bool) -> Duration {
    let batch = record::encode(0, &records(&w.values), None);
    let path = dir.join("plain.bin");
    let start = Instant::now();
    let mut f = File::create(&path).expect("create");
    for _ in 0..w.batches {
        f.write_all(&batch).expect("write");
        if sync_each {
            f.sync_data().expect("fdatasync");
        }
    }
    f.sync_data().expect("fdatasync");
    let took = start.elapsed();
    drop(f);
    std::fs::remove_file(&path).expect("remove");
    took
}

fn log_append(w: &Workload, dir: &Path, fsync: FsyncPolicy) -> (Duration, PartitionLog) {
    let config = LogConfig {
        fsync,
        ..LogConfig::default()
    };
    let recs = records(&w.values);
    let start = Instant::now();
    let mut log = PartitionLog::open(dir, config).expect("open");
    for _ in 0..w.batches {
        log.append(&recs, None).expect("append");
    }
    log.sync().expect("sync");
    (start.elapsed(), log)
}

/// The binary produce path: already-encoded batches appended with `append_encoded`.
fn log_append_encoded(w: &Workload, dir: &Path, fsync: FsyncPolicy) -> Duration {
    let config = LogConfig {
        fsync,
        ..LogConfig::default()
    };
    let batch = record::encode(0, &records(&w.values), None);
    let start = Instant::now();
    let mut log = PartitionLog::open(dir, config).expect("open");
    for _ in 0..w.batches {
        log.append_encoded(&batch, None).expect("append_encoded");
    }
    log.sync().expect("sync");
    start.elapsed()
}

fn log_read(w: &Workload, log: &PartitionLog) -> (Duration, Duration) {
    let start = Instant::now();
    let (mut next, mut n) = (0, 0usize);
    while next < log.end_offset() {
        let got = log.read(next, BATCH_RECORDS, usize::MAX).expect("read");
        n += got.len();
        next = got.last().map_or(next, |r| r.offset + 1);
    }
    let owned = start.elapsed();
    assert_eq!(n as f64, w.total_records());
    let start = Instant::now();
    let (mut next, mut bytes) = (0, 0usize);
    while next < log.end_offset() {
        let got = log.read_encoded(next, 4 << 20).expect("read_encoded");
        bytes += got.len();
        next += last_end(&got);
    }
    let encoded = start.elapsed();
    assert_eq!(bytes as f64, w.total_bytes());
    (owned, encoded)
}

/// Records in a run of encoded batches.
fn last_end(batches: &[u8]) -> u64 {
    let mut pos = 0;
    let mut n = 0;
    while let record::Decoded::Intact(b) = record::decode(&batches[pos..]) {
        n += u64::from(b.header.record_count);
        pos += b.bytes.len();
    }
    n
}

fn row(name: &str, f: &Figure, reference: &Figure) {
    println!(
        "{name:<38} {:>9.0} MB/s {:>11.0} rec/s   {:>5.2}x",
        f.mb_s,
        f.rec_s,
        f.mb_s / reference.mb_s
    );
}

/// Best (shortest) of `REPS` runs per case, the cases interleaved: the development machine
/// is shared, so the minimum is the least disturbed figure for every case alike.
const REPS: usize = 3;

struct Timings {
    cache_ref: Duration,
    durable_ref: Duration,
    interval: Duration,
    interval_encoded: Duration,
    never: Duration,
    always: Duration,
    read_owned: Duration,
    read_encoded: Duration,
    reopen: Duration,
}

fn run_once(w: &Workload, base: &Path, rep: usize) -> Timings {
    let fresh = |name: &str| {
        let d = base.join(format!("{name}-{rep}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    };
    let cache_ref = plain_write(w, base, false);
    let durable_ref = plain_write(w, base, true);
    let dir = fresh("interval");
    let (interval, log) = log_append(w, &dir, FsyncPolicy::Interval(Duration::from_millis(20)));
    let (read_owned, read_encoded) = log_read(w, &log);
    drop(log);
    let start = Instant::now();
    let log = PartitionLog::open(&dir, LogConfig::default()).expect("reopen");
    let reopen = start.elapsed();
    assert_eq!(log.end_offset() as f64, w.total_records());
    drop(log);
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let timed = |name: &str, fsync| {
        let dir = fresh(name);
        let (t, log) = log_append(w, &dir, fsync);
        drop(log);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        t
    };
    let dir = fresh("encoded");
    let interval_encoded =
        log_append_encoded(w, &dir, FsyncPolicy::Interval(Duration::from_millis(20)));
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let never = timed("never", FsyncPolicy::Never);
    let always = timed("always", FsyncPolicy::Always);
    Timings {
        cache_ref,
        durable_ref,
        interval,
        interval_encoded,
        never,
        always,
        read_owned,
        read_encoded,
        reopen,
    }
}

fn main() {
    let mib = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let w = Workload::new(mib);
    println!(
        "broker-log storage bench: {} batches x {} records x {} B values ({} B/batch), {} MiB per case, best of {REPS}",
        w.batches, BATCH_RECORDS, RECORD_BYTES, w.batch_bytes, mib
    );
    let base = tempfile::tempdir().expect("tempdir");
    let runs: Vec<Timings> = (0..REPS)
        .map(|rep| run_once(&w, base.path(), rep))
        .collect();
    let best = |f: fn(&Timings) -> Duration| runs.iter().map(f).min().unwrap_or_default();
    let cache_ref = figure(&w, best(|t| t.cache_ref));
    let durable_ref = figure(&w, best(|t| t.durable_ref));
    println!(
        "{:<38} {:>14} {:>17}   ratio",
        "case", "throughput", "records"
    );
    row("plain write + 1 fdatasync (ref)", &cache_ref, &cache_ref);
    row(
        "plain write + fdatasync/batch (ref)",
        &durable_ref,
        &durable_ref,
    );
    row(
        "append fsync=interval(20ms) vs page",
        &figure(&w, best(|t| t.interval)),
        &cache_ref,
    );
    row(
        "append_encoded fsync=interval vs page",
        &figure(&w, best(|t| t.interval_encoded)),
        &cache_ref,
    );
    row(
        "append fsync=never vs page",
        &figure(&w, best(|t| t.never)),
        &cache_ref,
    );
    row(
        "append fsync=always vs durable",
        &figure(&w, best(|t| t.always)),
        &durable_ref,
    );
    row(
        "read (owned records) vs page",
        &figure(&w, best(|t| t.read_owned)),
        &cache_ref,
    );
    row(
        "read_encoded (batches) vs page",
        &figure(&w, best(|t| t.read_encoded)),
        &cache_ref,
    );
    println!(
        "reopen of the {mib} MiB log: {:.1} ms",
        best(|t| t.reopen).as_secs_f64() * 1e3
    );
}
