//! The collector: a consumer-group member that moves its partitions' telemetry points from
//! the broker into PostgreSQL, exactly once.
//!
//! Threads: the fetcher ([`fetch`]) long-polls the assigned partitions and decodes
//! ([`chunk`]); `--writers` writers (here), each owning the partitions `p % writers == i`,
//! gather chunks into batches of `--batch-size` or whatever arrived within the flush interval
//! and write each in one transaction ([`sink`]). The
//! database's offsets are the truth: resume from them on assignment, and a batch that does not
//! start where the database says is never written. The broker's group offsets are committed
//! too, best effort, so `GET /v1/groups/{g}` shows lag.
//!
//! Failures: the broker down → the client retries, the writer keeps its batch; PostgreSQL down
//! → the writer retries the same batch with backoff while the fetcher waits on the bounded
//! channel; SIGTERM → the fetcher stops, the writer flushes, the member leaves.

pub mod chunk;
pub mod fetch;
pub mod sink;

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, histogram};
use pipeline_common::ops::Readiness;
use pipeline_common::shutdown::ShutdownFlag;

use crate::error::{Error, Result};
use broker_client::{BrokerClient, GroupMember, RetryPolicy};
use chunk::Chunk;
use fetch::Fetcher;
use sink::{Sink, Written};
use store::connect::Pool;

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub topic: String,
    pub group: String,
    /// Messages per transaction (at most; a flush interval cuts it short).
    pub batch_size: usize,
    /// A batch is written at the latest this long after its first message arrived.
    pub flush_interval: Duration,
    /// `postgres::Config` connection string.
    pub database: String,
    /// Writer threads, each with its own connection and transactions, so PostgreSQL can COPY
    /// on several cores; each partition belongs to one writer.
    pub writers: usize,
    /// Retention and partitions ahead (also decides which points are too old to store).
    pub policy: store::maintenance::Policy,
    /// How often the maintenance task runs (partitions ahead, retention, 0001 upgrade).
    pub maintenance_interval: Duration,
}

/// Registers the collector's metrics with their help texts.
pub fn describe_metrics() {
    describe_counter!(
        "collector_messages_fetched_total",
        "Messages fetched from the broker"
    );
    describe_counter!(
        "collector_rows_written_total",
        "Telemetry points committed to PostgreSQL"
    );
    describe_counter!(
        "collector_dead_letters_total",
        "Undecodable messages stored as dead letters"
    );
    describe_counter!(
        "collector_offset_conflicts_total",
        "Batches of a partition left out because the database's offset had moved (another writer)"
    );
    describe_counter!(
        "collector_db_errors_total",
        "Failed batch transactions (retried)"
    );
    describe_histogram!(
        "collector_batch_seconds",
        "Time to write one batch transaction"
    );
    describe_histogram!("collector_batch_rows", "Rows per committed batch");
    describe_gauge!(
        "collector_lag_messages",
        "Messages in the partition's log not yet fetched"
    );
    describe_counter!(
        "collector_partitions_dropped_total",
        "Time partitions dropped by retention (by this collector's maintenance rounds)"
    );
    describe_counter!(
        "collector_legacy_points_moved_total",
        "Points of a 0001 database moved into the compact store"
    );
    describe_counter!(
        "collector_maintenance_errors_total",
        "Failed maintenance rounds (partitions, retention, upgrade), retried next round"
    );
    describe_gauge!(
        "collector_partitions_owned",
        "Partitions assigned to this collector"
    );
}

/// A connection pool that does not connect until first used (so a database that is not up yet
/// is waited for, not fatal); TLS as the connection string's `sslmode` says.
pub fn pool(database: &str, size: u32) -> Result<Pool> {
    let manager = store::connect::manager(database)?;
    Ok(r2d2::Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(5))
        .build_unchecked(manager))
}

/// Applies the migrations, waiting for the database while it is unreachable (any failure is
/// retried: a database that is starting refuses in many ways).
pub fn migrate(pool: &Pool, shutdown: &ShutdownFlag) -> Result<()> {
    let applied = RetryPolicy::default()
        .retrying(shutdown, "migrating the database")
        .when(|_: &Error| true)
        .run(|| {
            let mut conn = pool.get()?;
            Ok(store::schema::migrate(&mut conn)?)
        })?;
    tracing::info!(applied, "database schema is current");
    Ok(())
}

/// The store's upkeep until shutdown: a round at start, then every `interval` (the rounds of
/// several collectors take turns through an advisory lock in the store).
fn maintain(
    pool: &Pool,
    policy: &store::maintenance::Policy,
    interval: Duration,
    shutdown: &ShutdownFlag,
) {
    loop {
        let round = pool
            .get()
            .map_err(Error::from)
            .and_then(|mut c| store::maintenance::run_once(&mut c, policy).map_err(Error::from));
        match round {
            Ok(report) if report.ran => {
                counter!("collector_partitions_dropped_total")
                    .increment(report.dropped.len() as u64);
                counter!("collector_legacy_points_moved_total").increment(report.legacy_moved);
                if !report.dropped.is_empty() {
                    tracing::info!(dropped = ?report.dropped, "retention dropped partitions");
                }
            }
            Ok(_) => {}
            Err(e) => {
                counter!("collector_maintenance_errors_total").increment(1);
                tracing::warn!(error = %e, "store maintenance failed; trying again next round");
            }
        }
        if shutdown.sleep(interval) {
            return;
        }
    }
}

/// Runs the collector until the client's shutdown flag is set; a shutdown while waiting for
/// the broker or the database is a clean stop.
pub fn run(config: &CollectorConfig, client: BrokerClient, readiness: &Readiness) -> Result<()> {
    match run_until_stopped(config, client, readiness) {
        Err(e) if e.is_interrupted() => Ok(()),
        other => other,
    }
}

fn run_until_stopped(
    config: &CollectorConfig,
    client: BrokerClient,
    readiness: &Readiness,
) -> Result<()> {
    let shutdown = client.shutdown_flag().clone();
    let pool = pool(&config.database, config.writers.max(1) as u32 + 2)?;
    match migrate(&pool, &shutdown) {
        Err(e) if e.is_interrupted() => return Ok(()),
        other => other?,
    }
    let member = match join(&client, config) {
        Err(e) if e.is_interrupted() => return Ok(()),
        other => other?,
    };
    let window = store::write::Window {
        retention: config.policy.points,
        ..store::write::Window::default()
    };
    let sink = Sink::new(pool.clone(), &config.group, &config.topic, window);
    // One channel per writer, bounded: while PostgreSQL is slow or down, the fetcher waits
    // instead of buffering. A partition always goes to the same writer (partition % writers).
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..config.writers.max(1))
        .map(|_| mpsc::sync_channel::<Chunk>(8))
        .unzip();
    let (resync_tx, resync_rx) = mpsc::channel::<u32>();
    readiness.set(true);
    let fetched = std::thread::scope(|scope| {
        let fetcher = Fetcher::new(
            client.clone(),
            &member,
            &sink,
            &config.topic,
            config.batch_size as u32,
            senders,
            resync_rx,
        );
        let handle = scope.spawn(move || fetcher.run());
        // Stopped once fetching and writing are over, whatever ended them.
        let stop_maintenance = ShutdownFlag::new();
        let maintenance_stop = stop_maintenance.clone();
        scope.spawn(move || {
            maintain(
                &pool,
                &config.policy,
                config.maintenance_interval,
                &maintenance_stop,
            )
        });
        let writers: Vec<_> = receivers
            .into_iter()
            .map(|chunks| {
                let mut writer =
                    Writer::new(config, &sink, &member, shutdown.clone(), resync_tx.clone());
                scope.spawn(move || writer.run(chunks))
            })
            .collect();
        let writers_done = writers.into_iter().all(|w| w.join().is_ok());
        let fetched = handle
            .join()
            .unwrap_or_else(|_| Err(Error::ThreadPanicked("fetch")));
        stop_maintenance.trigger();
        if !writers_done {
            return Err(Error::ThreadPanicked("writer"));
        }
        fetched
    });
    readiness.set(false);
    member.leave();
    fetched
}

/// Joins the group, waiting while the topic does not exist yet (no streamer has produced):
/// the broker answers 404 until then. Being unreachable is retried inside the client.
fn join(client: &BrokerClient, config: &CollectorConfig) -> Result<GroupMember> {
    let every_half_second = RetryPolicy {
        initial: Duration::from_millis(500),
        max: Duration::from_millis(500),
        give_up_after: None,
    };
    let what = format!(
        "joining group {} (waiting for topic {} to exist)",
        config.group, config.topic
    );
    every_half_second
        .retrying(client.shutdown_flag(), &what)
        .when(|e: &broker_client::Error| e.status() == Some(404))
        .run(|| GroupMember::join(client.clone(), &config.group, &config.topic, None))
        .map_err(Error::from)
}

/// Gathers chunks into batches and writes them.
struct Writer<'a> {
    sink: &'a Sink,
    member: &'a GroupMember,
    shutdown: ShutdownFlag,
    batch_size: usize,
    flush_interval: Duration,
    resync: Sender<u32>,
    pending: Vec<Chunk>,
    pending_messages: usize,
    oldest: Option<Instant>,
    /// Chunks of a partition older than this epoch belong to a cursor that was reset.
    min_epoch: HashMap<u32, u64>,
    /// Offsets committed to PostgreSQL, not yet to the broker.
    broker_due: BTreeMap<u32, u64>,
    broker_committed_at: Instant,
}

/// The broker's copy of the offsets is informative only; once a second is plenty.
const BROKER_COMMIT_EVERY: Duration = Duration::from_secs(1);

impl<'a> Writer<'a> {
    fn new(
        config: &CollectorConfig,
        sink: &'a Sink,
        member: &'a GroupMember,
        shutdown: ShutdownFlag,
        resync: Sender<u32>,
    ) -> Self {
        Writer {
            sink,
            member,
            shutdown,
            batch_size: config.batch_size.max(1),
            flush_interval: config.flush_interval,
            resync,
            pending: Vec::new(),
            pending_messages: 0,
            oldest: None,
            min_epoch: HashMap::new(),
            broker_due: BTreeMap::new(),
            broker_committed_at: Instant::now(),
        }
    }

    /// Until the fetcher hangs up: gather, flush on size or age; then a final flush.
    fn run(&mut self, chunks: Receiver<Chunk>) {
        loop {
            let wait = self.oldest.map_or(Duration::from_millis(250), |t| {
                self.flush_interval.saturating_sub(t.elapsed())
            });
            match chunks.recv_timeout(wait) {
                Ok(chunk) => self.add(chunk),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let due = self
                .oldest
                .is_some_and(|t| t.elapsed() >= self.flush_interval);
            if self.pending_messages >= self.batch_size || due {
                self.flush();
            }
        }
        self.flush();
        self.commit_to_broker(true);
    }

    fn add(&mut self, chunk: Chunk) {
        if self
            .min_epoch
            .get(&chunk.partition)
            .is_some_and(|min| chunk.epoch < *min)
        {
            return;
        }
        let breaks_chain = self
            .pending
            .iter()
            .rev()
            .find(|c| c.partition == chunk.partition)
            .is_some_and(|prev| prev.next != chunk.expect);
        let overfills = self.pending_messages + chunk.len() > self.batch_size;
        if breaks_chain || overfills {
            self.flush();
        }
        self.pending_messages += chunk.len();
        self.oldest.get_or_insert_with(Instant::now);
        self.pending.push(chunk);
    }

    /// Writes the pending chunks of partitions this member still owns (a revoked partition's
    /// new owner fetches them again from the database's offset).
    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.pending_messages = 0;
        self.oldest = None;
        let owned: Vec<Chunk> = pending
            .into_iter()
            .filter(|c| self.member.owns(c.partition))
            .collect();
        if owned.is_empty() {
            return;
        }
        let started = Instant::now();
        let Some(written) = self.write_retrying(&owned) else {
            return;
        };
        histogram!("collector_batch_seconds").record(started.elapsed().as_secs_f64());
        histogram!("collector_batch_rows").record(written.rows as f64);
        counter!("collector_rows_written_total").increment(written.rows);
        counter!("collector_dead_letters_total").increment(written.dead);
        for p in &written.mismatched {
            let newest = owned
                .iter()
                .filter(|c| c.partition == *p)
                .map(|c| c.epoch)
                .max()
                .unwrap_or(0);
            self.min_epoch.insert(*p, newest + 1);
            counter!("collector_offset_conflicts_total").increment(1);
            tracing::info!(
                partition = p,
                "database offset moved under this batch; re-reading it"
            );
            let _ = self.resync.send(*p);
        }
        for (p, next) in &written.offsets {
            self.broker_due.insert(*p, (*next).max(0) as u64);
        }
        self.commit_to_broker(false);
    }

    /// The batch transaction, retried with backoff while PostgreSQL fails. During shutdown
    /// it gets a few attempts; what is not written is fetched again by the next owner.
    fn write_retrying(&self, chunks: &[Chunk]) -> Option<Written> {
        let written = RetryPolicy::default()
            .retrying(&self.shutdown, "batch transaction")
            .when(|_: &Error| true)
            .attempts_during_shutdown(4)
            .run(|| {
                self.sink
                    .write(chunks)
                    .inspect_err(|_| counter!("collector_db_errors_total").increment(1))
            });
        match written {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "giving up on the batch at shutdown; it will be fetched again");
                None
            }
        }
    }

    fn commit_to_broker(&mut self, now: bool) {
        if self.broker_due.is_empty()
            || (!now && self.broker_committed_at.elapsed() < BROKER_COMMIT_EVERY)
        {
            return;
        }
        self.member.commit_best_effort(&self.broker_due);
        self.broker_due.clear();
        self.broker_committed_at = Instant::now();
    }
}
