//! The database side: a connection pool used off the async reactor, and every SQL statement.
//!
//! Statements are parameterised and prepared once per connection (a small cache beside each
//! pooled `postgres::Client`), so a request costs one round trip. Each blocking call runs in
//! `tokio::task::spawn_blocking`. Connections are not pinged on checkout (that would double the
//! round trips); instead a query that fails because its connection died — the database was
//! restarted — marks the connection broken, and the read is retried on another one. Reads
//! are idempotent, so the retry is safe, and the API recovers by itself once the database is
//! back. A checkout that waits past the pool timeout is [`ApiError::PoolTimeout`] (a 503).
//!
//! Abuse is bounded here, once for every route: each connection carries PostgreSQL's
//! `statement_timeout` (`--statement-timeout-ms`; a cancelled statement is
//! [`ApiError::StatementTimeout`]); expensive queries ([`Cost::Expensive`]: telemetry pages,
//! step aggregations, exports, PromQL) need a permit of their own besides the connection's,
//! and fewer of those exist than connections, so cheap reads (health, latest, gpus, stats)
//! still find one while clients hammer the expensive routes; and a request has one deadline,
//! `--db-timeout-ms`, for the whole wait — its permits, then the pool — so with the database
//! down it answers 503 within that time, not a multiple of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use postgres::{Row, Statement};
use r2d2::ManageConnection;
use r2d2_postgres::PostgresConnectionManager;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::error::{is_connection_error, ApiError};
use crate::model::{ConsumerProgress, Gpu, Host, LatestPoint, Stats};
use crate::params::{StepQuery, Window};

// The statements come from the store, which owns every SQL statement about telemetry.
use store::aggregate::{BucketMap, Source, BUCKETS_CHUNKS_SQL};
use store::read::{
    Cursor, StoredPoint, CONSUMER_OFFSETS_SQL, DEAD_LETTERS_SQL, GPUS_SQL, GPU_COUNTS_SQL,
    HOSTS_SQL, HOST_KNOWN_SQL, KNOWN_SQL, LATEST_SQL, METRIC_TOTALS_SQL, WINDOW_CHUNKS_SQL,
    WINDOW_METRIC_SQL, WINDOW_SQL,
};

/// A pooled connection: the client, the statements prepared on it, and whether it is known
/// to be dead.
pub struct Conn {
    /// Always `Some` until the connection is dropped (see the `Drop` impl).
    client: Option<postgres::Client>,
    statements: HashMap<&'static str, Statement>,
    broken: bool,
}

impl Conn {
    fn client(&mut self) -> &mut postgres::Client {
        match self.client.as_mut() {
            Some(client) => client,
            None => unreachable!("the client is taken only when the connection is dropped"),
        }
    }

    /// Runs `sql` (prepared on first use on this connection) with `params`.
    pub fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = match self.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = self.client().prepare(sql)?;
                self.statements.insert(sql, s.clone());
                s
            }
        };
        self.client().query(&statement, params)
    }

    /// Runs `sql` built at run time (not cached: its text varies with the request, like a
    /// PromQL selector's matchers). Values still go as parameters, never into the text.
    pub fn query_dynamic(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.client().query(sql, params)
    }
}

impl Drop for Conn {
    /// `postgres::Client`'s own drop drives a small runtime to say goodbye to the server, and
    /// that panics on a thread that is running tokio tasks — where the last handle to the pool
    /// can go away at shutdown. Inside a runtime, the client is closed on a plain thread.
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if let Some(client) = self.client.take() {
            let closing = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || drop(client));
            if let Err(e) = closing {
                tracing::warn!(error = %e, "cannot close a database connection cleanly");
            }
        }
    }
}

/// r2d2_postgres's manager (TLS as `sslmode` says), with a statement cache and a "broken"
/// mark on each connection, and the statement timeout set on each new connection.
pub struct Manager {
    inner: PostgresConnectionManager<store::connect::Tls>,
    statement_timeout: Option<Duration>,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let mut client = self.inner.connect()?;
        if let Some(timeout) = self.statement_timeout {
            store::session::set_statement_timeout(&mut client, timeout)?;
        }
        Ok(Conn {
            client: Some(client),
            statements: HashMap::new(),
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        self.inner.is_valid(conn.client())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
            || conn
                .client
                .as_mut()
                .is_none_or(|c| self.inner.has_broken(c))
    }
}

/// What a query costs, which decides the permits it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Reads of small tables or of one row per series: health, GPUs, hosts, latest, stats.
    Cheap,
    /// Reads that scale with a window or an expression: telemetry pages, step aggregations,
    /// exports (per page), the Prometheus API.
    Expensive,
}

/// Logs the pool's background connection failures (a database outage) through `tracing`.
#[derive(Debug)]
struct LogPoolErrors;

impl r2d2::HandleError<postgres::Error> for LogPoolErrors {
    fn handle_error(&self, error: postgres::Error) {
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        tracing::warn!(error = %error, cause = cause.as_deref().unwrap_or(""), "cannot open a database connection");
    }
}

/// The pool, cheap to clone.
///
/// A FIFO semaphore with one permit per connection sits in front of it: a request waits for
/// its turn asynchronously (holding no thread), in arrival order, and only then takes a
/// blocking thread and a connection. Without it, every waiting request would hold a blocking
/// thread parked in the pool, and the pool's wake-ups do not keep arrival order (seen as a
/// long latency tail in the bench). Expensive queries first wait for one of the fewer
/// permits of `expensive`.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    permits: Arc<Semaphore>,
    expensive: Arc<Semaphore>,
    timeout: Duration,
    statement_timeout: Option<Duration>,
}

impl Db {
    /// Builds the pool without waiting for the database: the API starts (and answers 503)
    /// while the database is still down.
    pub fn new(config: &Config) -> Result<Db, ApiError> {
        let (mut pg, tls) =
            store::connect::parse(&config.database).map_err(ApiError::DatabaseConfig)?;
        pg.connect_timeout(config.db_timeout);
        pg.application_name("api");
        let manager = Manager {
            inner: PostgresConnectionManager::new(pg, tls),
            statement_timeout: config.statement_timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(config.pool_size.min(2)))
            .connection_timeout(config.db_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(LogPoolErrors))
            .build_unchecked(manager);
        Ok(Db {
            pool,
            permits: Arc::new(Semaphore::new(config.pool_size as usize)),
            expensive: Arc::new(Semaphore::new(config.expensive_concurrency as usize)),
            timeout: config.db_timeout,
            statement_timeout: config.statement_timeout,
        })
    }

    /// Runs `work`, a [`Cost::Cheap`] read, with a connection on a blocking thread.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: Fn(&mut Conn) -> Result<T, ApiError> + Send + 'static,
    {
        self.run_costing(Cost::Cheap, work).await
    }

    /// Runs `work` with a connection on a blocking thread, after waiting for the permits its
    /// `cost` needs; the waits and the checkout share one deadline, `--db-timeout-ms` away.
    pub async fn run_costing<T, F>(&self, cost: Cost, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: Fn(&mut Conn) -> Result<T, ApiError> + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let expensive = match cost {
            Cost::Cheap => None,
            Cost::Expensive => Some(
                tokio::time::timeout_at(deadline, self.expensive.clone().acquire_owned())
                    .await
                    .map_err(|_| ApiError::ExpensiveBusy)?
                    // The semaphores are never closed.
                    .map_err(|_| ApiError::ExpensiveBusy)?,
            ),
        };
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::Busy)?
            .map_err(|_| ApiError::Busy)?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = db.run_blocking(&work, deadline.into_std());
            drop((permit, expensive));
            result
        })
        .await
        .map_err(ApiError::Task)?
    }

    /// Runs `work`; when its connection turns out dead, marks it broken and tries another,
    /// as often as the pool has connections that may be stale (then once more, fresh). Every
    /// checkout waits at most until `deadline`.
    fn run_blocking<T>(
        &self,
        work: &dyn Fn(&mut Conn) -> Result<T, ApiError>,
        deadline: Instant,
    ) -> Result<T, ApiError> {
        let attempts = self.pool.max_size() + 1;
        let mut attempt = 1;
        loop {
            // A zero wait still takes an idle connection if there is one.
            let wait = deadline.saturating_duration_since(Instant::now());
            let mut conn = self.pool.get_timeout(wait).map_err(ApiError::PoolTimeout)?;
            match work(&mut conn) {
                Err(ApiError::Query(e)) if is_connection_error(&e) => {
                    conn.broken = true;
                    if attempt >= attempts {
                        return Err(ApiError::Query(e));
                    }
                    tracing::debug!(error = %e, attempt, "database connection lost; retrying");
                    attempt += 1;
                }
                Err(ApiError::Query(e)) if store::session::is_statement_timeout(&e) => {
                    return Err(match self.statement_timeout {
                        Some(limit) => ApiError::StatementTimeout(limit.as_millis()),
                        // Cancelled by someone else (`pg_cancel_backend`): not ours to name.
                        None => ApiError::Query(e),
                    });
                }
                other => return other,
            }
        }
    }

    /// `(open connections, idle connections)`.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }
}

/// `SELECT 1`: whether the database answers.
pub fn ping(conn: &mut Conn) -> Result<(), ApiError> {
    conn.query("SELECT 1", &[])?;
    Ok(())
}

/// PostgreSQL's `text` cannot hold NUL, so a value with one matches nothing stored (and
/// sending it would only make the server refuse the statement).
fn storable(value: &str) -> bool {
    !value.contains('\0')
}

/// A list filter as the statements take it: `Some(None)` for "any" (an empty list),
/// `Some(Some(values))` for those values, `None` when nothing can match (every value given
/// holds a NUL).
fn list_filter(values: &[String]) -> Option<Option<Vec<&str>>> {
    if values.is_empty() {
        return Some(None);
    }
    let kept: Vec<&str> = values
        .iter()
        .map(String::as_str)
        .filter(|v| storable(v))
        .collect();
    (!kept.is_empty()).then_some(Some(kept))
}

/// Which GPUs a list shows: each filter `None` for any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuFilter {
    pub hostname: Option<String>,
    pub model: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
}

/// The GPUs that pass `filter`, from the `gpus` table.
pub fn gpus(conn: &mut Conn, filter: &GpuFilter) -> Result<Vec<Gpu>, ApiError> {
    let given = [
        &filter.hostname,
        &filter.model,
        &filter.namespace,
        &filter.pod,
    ];
    if given.into_iter().flatten().any(|v| !storable(v)) {
        return Ok(Vec::new());
    }
    let rows = conn.query(
        GPUS_SQL,
        &[
            &filter.hostname,
            &filter.model,
            &filter.namespace,
            &filter.pod,
        ],
    )?;
    rows.iter().map(gpu_from_row).collect()
}

/// Whether any GPU has `hostname`.
pub fn host_known(conn: &mut Conn, hostname: &str) -> Result<bool, ApiError> {
    if !storable(hostname) {
        return Ok(false);
    }
    exists(conn, HOST_KNOWN_SQL, hostname)
}

/// The one boolean an `EXISTS` statement about `key` answers.
fn exists(conn: &mut Conn, sql: &'static str, key: &str) -> Result<bool, ApiError> {
    let rows = conn.query(sql, &[&key])?;
    Ok(match rows.first() {
        Some(row) => row.try_get(0)?,
        None => false,
    })
}

/// Every host, from the `gpus` table.
pub fn hosts(conn: &mut Conn) -> Result<Vec<Host>, ApiError> {
    let rows = conn.query(HOSTS_SQL, &[])?;
    rows.iter()
        .map(|row| {
            Ok(Host {
                hostname: row.try_get(0)?,
                gpus: row.try_get(1)?,
                first_seen: row.try_get(2)?,
                last_seen: row.try_get(3)?,
            })
        })
        .collect()
}

/// The latest value of each metric of each GPU, of `metrics` on `hosts` (empty for all).
pub fn latest(
    conn: &mut Conn,
    metrics: &[String],
    hosts: &[String],
) -> Result<Vec<LatestPoint>, ApiError> {
    let (Some(metrics), Some(hosts)) = (list_filter(metrics), list_filter(hosts)) else {
        return Ok(Vec::new());
    };
    let rows = conn.query(LATEST_SQL, &[&metrics, &hosts])?;
    rows.iter()
        .map(|row| {
            Ok(LatestPoint {
                gpu_uuid: row.try_get(0)?,
                hostname: row.try_get(1)?,
                gpu_index: row.try_get(2)?,
                metric: row.try_get(3)?,
                ts: row.try_get(4)?,
                value: row.try_get(5)?,
            })
        })
        .collect()
}

/// The step aggregation of one GPU's window: partial aggregates by (metric, bucket), from
/// the rollup the step fits or from the points and their compacted chunks.
pub fn buckets(conn: &mut Conn, gpu: &str, query: &StepQuery) -> Result<BucketMap, ApiError> {
    let (true, Some(metrics)) = (storable(gpu), list_filter(&query.metrics)) else {
        return Ok(BucketMap::new());
    };
    let b = &query.buckets;
    let source = Source::for_step(b.step_seconds);
    let step = b.step_seconds as f64;
    let rows = conn.query(source.sql(), &[&gpu, &metrics, &b.start, &b.end, &step])?;
    let mut map = BucketMap::new();
    store::aggregate::add_rows(&mut map, &rows)?;
    if source == Source::Points {
        let chunks = conn.query(BUCKETS_CHUNKS_SQL, &[&gpu, &metrics, &b.start, &b.end])?;
        store::aggregate::add_chunks(&mut map, &chunks, b)?;
    }
    Ok(map)
}

/// What the database knows of the pipeline's progress.
pub struct Progress {
    pub consumers: Vec<ConsumerProgress>,
    pub dead_letters: i64,
    pub last_dead_letter_at: Option<DateTime<Utc>>,
}

/// The collectors' committed offsets, the dead letters' count and the last one's time.
pub fn pipeline(conn: &mut Conn) -> Result<Progress, ApiError> {
    let consumers = conn
        .query(CONSUMER_OFFSETS_SQL, &[])?
        .iter()
        .map(|row| {
            Ok(ConsumerProgress {
                group: row.try_get(0)?,
                topic: row.try_get(1)?,
                partition: row.try_get(2)?,
                next_offset: row.try_get(3)?,
                updated_at: row.try_get(4)?,
                end_offset: None,
                lag: None,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let dead = conn.query(DEAD_LETTERS_SQL, &[])?;
    let (count, last) = match dead.first() {
        Some(row) => (row.try_get(0)?, row.try_get(1)?),
        None => (0, None),
    };
    Ok(Progress {
        consumers,
        dead_letters: count,
        last_dead_letter_at: last,
    })
}

fn gpu_from_row(row: &Row) -> Result<Gpu, ApiError> {
    Ok(Gpu {
        uuid: row.try_get(0)?,
        hostname: row.try_get(1)?,
        gpu_index: row.try_get(2)?,
        device: row.try_get(3)?,
        model: row.try_get(4)?,
        first_seen: row.try_get(5)?,
        last_seen: row.try_get(6)?,
    })
}

/// The rows one page of a window is built from: its row-form points and, when the window
/// reaches days already compacted, those days' chunks of the GPU's series, decoded.
pub struct WindowRows {
    narrow: Vec<Row>,
    chunks: Vec<Row>,
    decoded: Vec<Vec<store::codec::ChunkPoint>>,
    /// Points to skip when merging (the SQL skips them itself when there are no chunks).
    skip: usize,
    after: Option<Cursor>,
    bounds: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

impl WindowRows {
    pub fn is_empty(&self) -> bool {
        self.narrow.is_empty() && self.decoded.iter().all(Vec::is_empty)
    }

    /// Up to `take` points of the page, in (time, arrival) order, borrowing the rows' text.
    pub fn points(&self, take: usize) -> Result<Vec<StoredPoint<'_>>, ApiError> {
        if self.chunks.is_empty() {
            return self
                .narrow
                .iter()
                .take(take)
                .map(|row| StoredPoint::from_row(row).map_err(ApiError::from))
                .collect();
        }
        Ok(store::read::merge_window(
            &self.narrow,
            &self.chunks,
            &self.decoded,
            self.bounds,
            self.after,
            self.skip,
            take,
        )?)
    }

    /// The page: at most `limit` points and, when more follow, the cursor after the last.
    pub fn page(&self, limit: u32) -> Result<(Vec<StoredPoint<'_>>, Option<Cursor>), ApiError> {
        let limit = limit as usize;
        let mut points = self.points(limit + 1)?;
        let more = points.len() > limit;
        points.truncate(limit);
        let next = points.last().filter(|_| more).map(|p| (p.ts, p.src_offset));
        Ok((points, next))
    }
}

/// [`window`], and when it comes back empty, a 404 if the GPU is unknown.
pub fn known_window(conn: &mut Conn, gpu: &str, window: &Window) -> Result<WindowRows, ApiError> {
    let rows = self::window(conn, gpu, window)?;
    if rows.is_empty() {
        check_known(conn, gpu)?;
    }
    Ok(rows)
}

/// Up to `window.limit + 1` points of one GPU's window (the extra one only tells whether
/// another page follows, which is cheaper than counting the whole window). Days already
/// compacted are read from their chunks and merged in; without any, one query does it all.
/// A cursor moves the window's start to its time, so only what follows it is read.
pub fn window(conn: &mut Conn, gpu: &str, window: &Window) -> Result<WindowRows, ApiError> {
    let page = i64::from(window.limit) + 1;
    // `Window` caps the offset (at `params::MAX_OFFSET`).
    let offset = i64::try_from(window.offset).unwrap_or(i64::MAX);
    let start = match (window.start, window.cursor) {
        (Some(s), Some((c, _))) => Some(s.max(c)),
        (s, c) => s.or(c.map(|c| c.0)),
    };
    let (after_ts, after_offset) = (window.cursor.map(|c| c.0), window.cursor.map(|c| c.1));
    let (true, Some(metrics)) = (storable(gpu), list_filter(&window.metrics)) else {
        return Ok(WindowRows {
            narrow: Vec::new(),
            chunks: Vec::new(),
            decoded: Vec::new(),
            skip: 0,
            after: None,
            bounds: (start, window.end),
        });
    };
    let narrow_from = |conn: &mut Conn, limit: i64, sql_offset: i64| match metrics.as_ref() {
        None => conn.query(
            WINDOW_SQL,
            &[
                &gpu,
                &start,
                &window.end,
                &limit,
                &sql_offset,
                &after_ts,
                &after_offset,
            ],
        ),
        Some(metrics) => conn.query(
            WINDOW_METRIC_SQL,
            &[
                &gpu,
                &start,
                &window.end,
                &limit,
                &sql_offset,
                &after_ts,
                &after_offset,
                metrics,
            ],
        ),
    };
    // Most windows reach no compacted day, and each row says so: one round trip.
    let narrow = narrow_from(conn, page, offset)?;
    let reaches_chunks = match narrow.first() {
        Some(row) => row.try_get::<_, bool>(10)?,
        // Nothing in row form: the window may lie wholly in compacted days.
        None => true,
    };
    if !reaches_chunks {
        return Ok(WindowRows {
            narrow,
            chunks: Vec::new(),
            decoded: Vec::new(),
            skip: 0,
            after: window.cursor,
            bounds: (start, window.end),
        });
    }
    let chunks = conn.query(WINDOW_CHUNKS_SQL, &[&gpu, &start, &window.end, &metrics])?;
    // With chunks to merge, the row-form points are read from the first (the merge skips).
    let (narrow, sql_offset) = match chunks.is_empty() {
        true => (narrow, offset),
        false => (narrow_from(conn, offset.saturating_add(page), 0)?, 0),
    };
    let decoded = store::read::decode_chunks(&chunks)?;
    Ok(WindowRows {
        narrow,
        chunks,
        decoded,
        skip: usize::try_from(offset - sql_offset).unwrap_or(usize::MAX),
        after: window.cursor,
        bounds: (start, window.end),
    })
}

/// Why a window came back empty: `Err` when the GPU is unknown. A metric the GPU has no
/// points of is not an error: the answer is empty, as a filter that matches nothing is.
pub fn check_known(conn: &mut Conn, gpu: &str) -> Result<(), ApiError> {
    if !storable(gpu) {
        return Err(ApiError::UnknownGpu(gpu.to_string()));
    }
    match exists(conn, KNOWN_SQL, gpu)? {
        true => Ok(()),
        false => Err(ApiError::UnknownGpu(gpu.to_string())),
    }
}

/// Totals from the day totals and `gpus`; no scan of the points.
pub fn stats(conn: &mut Conn) -> Result<Stats, ApiError> {
    let totals = store::read::Totals::from_rows(&conn.query(METRIC_TOTALS_SQL, &[])?)?;
    let counts = conn.query(GPU_COUNTS_SQL, &[])?;
    let (gpus, hosts) = match counts.first() {
        Some(row) => (row.try_get(0)?, row.try_get(1)?),
        None => (0, 0),
    };
    Ok(Stats {
        points: totals.points,
        gpus,
        hosts,
        metrics: totals.points_per_metric.len() as i64,
        first_ts: totals.first_ts,
        last_ts: totals.last_ts,
        points_per_metric: totals.points_per_metric,
    })
}
