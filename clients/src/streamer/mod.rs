//! The streamer: CSV rows → telemetry points → the broker, shared by the members of a
//! streamer group, exactly once (the scheme is in [`shards`]), with progress kept per input
//! (its identity and the ledger of finished inputs are [`input`]'s). Its other source, live
//! scrapes of dcgm-exporters, is [`scrape`]'s; [`source`] is the one type the binary
//! dispatches on. This module itself is the CSV source.
//!
//! Owns the scan of the file (once, or again and again with `--loop`), batching per shard,
//! pacing (`--rate`), the produce-then-commit step, reacting to rebalances, and the bad-row
//! accounting. The wire protocol is [`broker_client`]'s, the row mapping [`crate::telemetry`]'s.
//!
//! A one-shot run is done when every shard's committed progress has reached the end of the
//! run's pass — not merely its own shards — so a streamer whose peer dies keeps running until
//! it has been handed the dead peer's shards and finished them; the last streamer standing
//! exits 0 once the whole file is in the broker. Before joining, a one-shot streamer reads the
//! input's progress: a new input starts from its beginning, an unfinished one resumes, a
//! finished one is a no-op (a warning naming the input and when it was finished) unless
//! `--restart` asks for another pass ([`shards::plan_one_shot`]).
//!
//! Progress committed by streamers from before inputs had identities (in the broker group
//! `--group` itself) belongs to no known input: it is left alone, and a streamer that finds it
//! while starting a new input says so and streams the file from its beginning — adopting it
//! could drop a file that is not the one it was for, which is the bug this design removes.
//!
//! SIGTERM: the cell being sent is finished and the acknowledged progress committed, then the
//! member leaves; rows of incomplete cells are not sent (a cell only ever goes whole, so that
//! whoever streams the shard next sends exactly the same batch under the same seq) — the next
//! owner reads them again, with fresh processing times. With `--rate`, a cell is sent once it
//! is complete, so a shard's rows reach the broker in bursts of `--batch-size`; a slow rate
//! wants a small batch size.

pub mod input;
pub mod pacer;
pub mod report;
pub mod scrape;
pub mod sender;
pub mod shards;
pub mod source;
pub mod targets_file;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use pipeline_common::ops::Readiness;

use crate::error::{Error, Result};
use crate::telemetry::{CsvRows, Point};
use broker_client::{encode_batch, partition_for_key, push_record, BrokerClient, GroupMember};
use input::{Finished, Input};
use pacer::Pacer;
use report::Reporter;
use sender::{Outgoing, Payload, SendEnd, Sender};
use shards::{
    all_reached, clean_producer_prefix, plan_one_shot, producer_id, shard_of, Plan, Progress,
};

/// Everything the streamer needs to know (its documented flags plus the sharding knobs).
#[derive(Debug, Clone)]
pub struct StreamerConfig {
    pub topic: String,
    pub csv: PathBuf,
    pub batch_size: usize,
    /// Stream the file again and again.
    pub looping: bool,
    /// One-shot: stream an input that was streamed to the end before once more.
    pub restart: bool,
    /// Rows per second; 0 = as fast as possible.
    pub rate: f64,
    pub group: String,
    /// Shards to create the shard topic with (an existing topic keeps its count).
    pub shards: u32,
    /// Prefix of the shards' producer ids; the group name when `None`.
    pub producer_prefix: Option<String>,
    /// How cells go on the wire.
    pub format: ProduceFormat,
    /// Partitions to create the topic with when it does not exist yet (batch format only:
    /// the streamer must know the count to route keys itself).
    pub partitions: u32,
}

/// A cell encoded as spans, rewritten as NDJSON lines.
fn ndjson_of(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.body.len() + batch.spans.len() * 24);
    for (_, k, v, end) in &batch.spans {
        out.extend_from_slice(b"{\"key\":");
        // Keys are GPU UUIDs from a `&str`: valid UTF-8, but quotes and backslashes must be escaped.
        let key = String::from_utf8_lossy(&batch.body[*k..*v]);
        let _ = serde_json::to_writer(&mut out, &key);
        out.extend_from_slice(b",\"value\":");
        out.extend_from_slice(&batch.body[*v..*end]);
        out.extend_from_slice(b"}\n");
    }
    out
}

/// A record's key and value bytes.
type KeyValue<'a> = (&'a [u8], &'a [u8]);

/// The produce content type.
///
/// Either way the broker stores one batch per partition under the cell's seq, with the same
/// messages, so the choice may differ from cell to cell and between streamers: a resent cell
/// is recognised as a duplicate whichever way it travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceFormat {
    /// Per cell: record batches when the cell has at least [`BATCH_ROWS_PER_PARTITION`] rows
    /// per partition on average, else NDJSON (one request rather than many tiny ones).
    Auto,
    /// One record batch per partition (`application/vnd.broker.batch`): the broker checks
    /// framing, CRC and that each value is one line of JSON, but parses no lines to route
    /// them: the cheapest path for big cells.
    Batch,
    /// One NDJSON request per cell; the broker parses and routes each line.
    Ndjson,
}

/// See [`ProduceFormat::Auto`].
pub const BATCH_ROWS_PER_PARTITION: usize = 32;

/// Registers the streamer's metrics with their help texts.
pub fn describe_metrics() {
    describe_counter!(
        "streamer_rows_read_total",
        "CSV rows read for the shards this streamer owns"
    );
    describe_counter!(
        "streamer_rows_skipped_total",
        "CSV rows skipped because they do not parse"
    );
    describe_counter!(
        "streamer_rows_produced_total",
        "Rows acknowledged by the broker"
    );
    describe_counter!(
        "streamer_rows_deduplicated_total",
        "Rows resent after a takeover or restart that the broker already had (not appended again)"
    );
    describe_counter!(
        "streamer_passes_total",
        "Shard passes over the file completed"
    );
    describe_histogram!(
        "streamer_batch_seconds",
        "Time to produce one batch cell (until acknowledged)"
    );
    describe_gauge!(
        "streamer_shards_owned",
        "Shards currently assigned to this streamer"
    );
    describe_gauge!(
        "streamer_scrape_up",
        "--scrape: 1 when the target's last scrape succeeded, 0 when it failed"
    );
    describe_gauge!(
        "streamer_scrape_duration_seconds",
        "--scrape: how long the target's last scrape took (request and mapping)"
    );
    describe_counter!(
        "streamer_scrape_samples_stored_total",
        "--scrape: points of the target's scrapes acknowledged by the broker"
    );
    describe_counter!(
        "streamer_scrape_samples_skipped_total",
        "--scrape: samples of the target's scrapes that became no point, by reason"
    );
    describe_counter!(
        "streamer_scrape_failures_total",
        "--scrape: failed scrapes (stage=scrape) and scrapes the broker refused (stage=produce)"
    );
    describe_counter!(
        "streamer_scrape_duplicates_total",
        "--scrape: scrapes the broker had already (a resend, or a slot another streamer produced first)"
    );
    describe_counter!(
        "streamer_scrape_refused_total",
        "--scrape: spooled scrapes refused because a later scrape of the target is in (409)"
    );
    describe_counter!(
        "streamer_scrape_missed_total",
        "--scrape: slots skipped because the target's previous scrape was still running"
    );
    describe_counter!(
        "streamer_scrape_parsed_total",
        "--scrape: scrapes the text-format parser read (the others were served by their target's shape cache)"
    );
    describe_counter!(
        "streamer_scrape_spool_dropped_total",
        "--scrape: scrapes dropped unsent because the spool was full (oldest first)"
    );
    describe_gauge!(
        "streamer_scrape_spool_entries",
        "--scrape: scrapes in the spool waiting for the broker"
    );
    describe_gauge!(
        "streamer_scrape_spool_bytes",
        "--scrape: bytes the spool takes (on disk: acknowledged scrapes not yet deleted included)"
    );
    describe_gauge!(
        "streamer_scrape_targets",
        "--scrape: targets this streamer scrapes (its share of the group's)"
    );
    describe_gauge!(
        "streamer_scrape_slots_owned",
        "--scrape: slots of the group assigned to this streamer"
    );
    describe_counter!(
        "streamer_scrape_dns_failures_total",
        "--scrape-dns: lookups of the name that failed (its last addresses are kept)"
    );
}

/// Runs until a one-shot run is complete or `client`'s shutdown flag is set.
/// A shutdown while waiting for the broker (at start-up or later) is a clean stop.
pub fn run(config: &StreamerConfig, client: BrokerClient, readiness: &Readiness) -> Result<()> {
    match run_until_done(config, client, readiness) {
        Err(e) if e.is_interrupted() => Ok(()),
        other => other,
    }
}

fn run_until_done(
    config: &StreamerConfig,
    client: BrokerClient,
    readiness: &Readiness,
) -> Result<()> {
    let input = Input::identify(&config.csv)?;
    let progress_group = input.progress_group(&config.group)?;
    let shard_topic = format!("{}.shards", config.topic);
    let shards = ensure_shard_topic(&client, &shard_topic, config.shards)?;
    let target = if config.looping {
        u32::MAX
    } else {
        let committed = committed_or_none(&client, &progress_group, &shard_topic)?;
        match plan_one_shot(&committed, shards, config.restart) {
            Plan::Finished { passes } => {
                warn_finished_before(&client, config, &input, &progress_group, passes)?;
                return Ok(());
            }
            Plan::Stream { target, resumed } => {
                if !resumed && target == 1 {
                    warn_of_legacy_progress(&client, config, &input, &shard_topic)?;
                }
                tracing::info!(input = %input.path.display(), input_id = %input.id,
                    progress_group = %progress_group, pass = target - 1, resumed,
                    "streaming the input");
                target
            }
        }
    };
    let member = GroupMember::join(client.clone(), &progress_group, &shard_topic, None)?;
    let data_partitions = match config.format {
        ProduceFormat::Batch | ProduceFormat::Auto => {
            data_partitions(&client, &config.topic, config.partitions)?
        }
        ProduceFormat::Ndjson => 0,
    };
    readiness.set(true);
    let ledger_client = client.clone();
    let mut streamer = Streamer {
        config,
        client,
        member: &member,
        input: &input,
        target,
        shards,
        data_partitions,
        reporter: Reporter::new(),
        pacer: Pacer::new(config.rate),
    };
    let result = streamer.run_loop();
    streamer.reporter.finish();
    readiness.set(false);
    member.leave();
    if result? == RunEnd::Complete {
        record_finished(&ledger_client, config, &input, &progress_group, target);
    }
    Ok(())
}

/// The group's committed offsets for `topic`, none for a group the broker does not know.
fn committed_or_none(
    client: &BrokerClient,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<u32, u64>> {
    match client.committed(group, topic) {
        Err(e) if e.status() == Some(404) => Ok(BTreeMap::new()),
        other => Ok(other?),
    }
}

/// The no-op of a one-shot run of a finished input: a warning naming it and when it finished.
fn warn_finished_before(
    client: &BrokerClient,
    config: &StreamerConfig,
    input: &Input,
    progress_group: &str,
    passes: u32,
) -> Result<()> {
    let finished = input::last_finished(client, &config.topic, progress_group)?;
    let finished_at = finished.filter(|f| f.passes == passes).map_or_else(
        || "an unknown time".to_string(),
        |f| f.finished_at.to_rfc3339(),
    );
    tracing::warn!(input = %input.path.display(), input_id = %input.id, %progress_group,
        passes, %finished_at,
        "nothing to do: this input was streamed to the end before (--restart streams it again)");
    Ok(())
}

/// Tells about shard progress an older streamer committed under the group's own name (see the
/// module docs: it is not adopted).
fn warn_of_legacy_progress(
    client: &BrokerClient,
    config: &StreamerConfig,
    input: &Input,
    shard_topic: &str,
) -> Result<()> {
    if !committed_or_none(client, &config.group, shard_topic)?.is_empty() {
        tracing::warn!(group = %config.group, input = %input.path.display(), input_id = %input.id,
            "the group has shard progress from a streamer version without input identities; \
             it belongs to no known input and is ignored: streaming this input from its beginning");
    }
    Ok(())
}

/// Writes the finished run to the ledger; a failure only costs the date in a later warning.
fn record_finished(
    client: &BrokerClient,
    config: &StreamerConfig,
    input: &Input,
    progress_group: &str,
    passes: u32,
) {
    let prefix = config.producer_prefix.as_deref().unwrap_or(&config.group);
    let producer = format!("{}-{}-ledger", clean_producer_prefix(prefix), input.id);
    let finished = Finished {
        group: config.group.clone(),
        input: input.id.clone(),
        csv: input.path.display().to_string(),
        size: input.size,
        passes,
        finished_at: Utc::now(),
    };
    if let Err(e) =
        input::record_finished(client, &config.topic, progress_group, &producer, &finished)
    {
        tracing::warn!(error = %e, "could not record the finished input in the ledger");
    }
}

/// Creates `<topic>.shards` (or finds it) and returns its partition count.
fn ensure_shard_topic(client: &BrokerClient, topic: &str, shards: u32) -> Result<u32> {
    match client.create_topic(topic, shards.max(1)) {
        Ok(_) => Ok(shards.max(1)),
        // It exists with another count: the group's streamers must agree, so use it.
        Err(e) if e.status() == Some(409) => {
            Ok(client.topic(topic)?.partitions.len().max(1) as u32)
        }
        Err(e) => Err(e.into()),
    }
}

/// The data topic's partition count (creating the topic when missing), for routing keys.
pub(crate) fn data_partitions(client: &BrokerClient, topic: &str, create_with: u32) -> Result<u32> {
    match client.topic(topic) {
        Ok(meta) => Ok(meta.partitions.len().max(1) as u32),
        Err(e) if e.status() == Some(404) => {
            match client.create_topic(topic, create_with.max(1)) {
                Ok(_) => Ok(create_with.max(1)),
                // Created meanwhile by someone else, maybe with another count.
                Err(e) if e.status() == Some(409) => {
                    Ok(client.topic(topic)?.partitions.len().max(1) as u32)
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

struct Streamer<'a> {
    config: &'a StreamerConfig,
    client: BrokerClient,
    member: &'a GroupMember,
    input: &'a Input,
    /// One-shot: the pass every shard must reach (looping: never reached).
    target: u32,
    shards: u32,
    data_partitions: u32,
    reporter: Reporter,
    pacer: Pacer,
}

/// How [`Streamer::run_loop`] ended.
#[derive(Debug, PartialEq, Eq)]
enum RunEnd {
    /// One-shot: every shard reached the target pass.
    Complete,
    Shutdown,
}

/// How a scan of the file ended.
enum ScanEnd {
    /// End of file: every owned shard finished its pass.
    Finished,
    /// The assignment changed or a commit was refused: start over from committed progress.
    Rebalanced,
    Shutdown,
}

/// One owned shard during a scan.
struct Cursor {
    shard: u32,
    producer: String,
    /// Where the shard is: everything before `progress.position` in this pass is in the broker.
    progress: Progress,
    /// Records of this shard met so far in this scan (the position of the next one).
    seen: u32,
    /// The good rows of the current batch cell, encoded.
    batch: Batch,
}

/// The encoded messages of one batch cell: the good rows among the shard positions
/// `[start, start + batch_size)`. Cells are fixed by the file and the batch size, so a cell
/// resent by a successor has the same seq and the same messages as the first time.
#[derive(Default)]
struct Batch {
    start: u32,
    /// NDJSON lines, or (batch format) each record's key then value, back to back.
    body: Vec<u8>,
    /// Batch format: (partition, key start, value start, value end) per record.
    spans: Vec<(u32, usize, usize, usize)>,
    rows: usize,
}

impl Streamer<'_> {
    fn shutdown(&self) -> bool {
        self.client.shutdown_flag().is_set()
    }

    fn run_loop(&mut self) -> Result<RunEnd> {
        loop {
            if self.shutdown() {
                return Ok(RunEnd::Shutdown);
            }
            let epoch = self.member.epoch();
            let view = self.member.membership();
            let committed = self.member.committed()?;
            let mut cursors = self.cursors(&view.partitions, &committed);
            gauge!("streamer_shards_owned").set(view.partitions.len() as f64);
            if cursors.is_empty() {
                if !self.config.looping && all_reached(&committed, self.shards, self.target) {
                    tracing::info!("every shard has finished the file: one-shot run complete");
                    return Ok(RunEnd::Complete);
                }
                self.wait_for_change(epoch, Duration::from_millis(300));
                continue;
            }
            match self.scan(epoch, &mut cursors)? {
                ScanEnd::Finished | ScanEnd::Rebalanced => {}
                ScanEnd::Shutdown => return Ok(RunEnd::Shutdown),
            }
        }
    }

    /// Cursors for the owned shards that still have work (a one-shot run skips the shards that
    /// reached its target pass).
    fn cursors(&self, owned: &[u32], committed: &BTreeMap<u32, u64>) -> BTreeMap<u32, Cursor> {
        let prefix = self
            .config
            .producer_prefix
            .as_deref()
            .unwrap_or(&self.config.group);
        owned
            .iter()
            .map(|&shard| {
                (
                    shard,
                    Progress::decode(committed.get(&shard).copied().unwrap_or(0)),
                )
            })
            .filter(|(_, progress)| self.config.looping || progress.pass < self.target)
            .map(|(shard, progress)| {
                let cursor = Cursor {
                    shard,
                    producer: producer_id(prefix, &self.input.id, shard),
                    progress,
                    seen: 0,
                    batch: Batch {
                        start: progress.position,
                        ..Batch::default()
                    },
                };
                (shard, cursor)
            })
            .collect()
    }

    fn wait_for_change(&self, epoch: u64, at_most: Duration) {
        let until = Instant::now() + at_most;
        while Instant::now() < until && self.member.epoch() == epoch && !self.shutdown() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rows per batch cell; every streamer of a group must use the same (see [`shards`]).
    fn cell_size(&self) -> u32 {
        self.config.batch_size.clamp(1, u32::MAX as usize) as u32
    }

    /// One pass of the file for the owned shards, from each shard's progress. A sender thread
    /// produces the completed cells while this thread reads and encodes the next ones.
    fn scan(&mut self, epoch: u64, cursors: &mut BTreeMap<u32, Cursor>) -> Result<ScanEnd> {
        let cancel = AtomicBool::new(false);
        let (work_tx, work_rx) = mpsc::sync_channel::<Outgoing>(4);
        let sender = Sender::new(
            self.client.clone(),
            self.member,
            &self.config.topic,
            &self.config.group,
            Arc::clone(&self.reporter.produced),
        );
        std::thread::scope(|scope| {
            let cancel = &cancel;
            let handle = scope.spawn(move || sender.run(work_rx, cancel));
            let scanned = self.scan_rows(epoch, cursors, &work_tx);
            if !matches!(scanned, Ok(ScanEnd::Finished)) {
                cancel.store(true, Ordering::SeqCst);
            }
            drop(work_tx);
            let sent = handle
                .join()
                .unwrap_or_else(|_| SendEnd::Failed(Error::ThreadPanicked("sender")));
            match (scanned, sent) {
                (Err(e), _) | (_, SendEnd::Failed(e)) => Err(e),
                (_, SendEnd::Shutdown) => Ok(ScanEnd::Shutdown),
                (_, SendEnd::Rebalanced) => Ok(ScanEnd::Rebalanced),
                (Ok(end), SendEnd::Done) => Ok(end),
            }
        })
    }

    /// Reads the file, encoding each owned shard's rows into its current cell and handing
    /// complete cells to the sender.
    fn scan_rows(
        &mut self,
        epoch: u64,
        cursors: &mut BTreeMap<u32, Cursor>,
        work: &SyncSender<Outgoing>,
    ) -> Result<ScanEnd> {
        let mut rows = CsvRows::open(&self.config.csv)?;
        let owned: Vec<u32> = cursors.keys().copied().collect();
        let mut read: u64 = 0;
        let end = self.read_rows(&mut rows, cursors, work, epoch, &owned, &mut read);
        self.reporter.tick(1.0);
        counter!("streamer_rows_read_total").increment(read & 1023);
        match end? {
            Some(end) => Ok(end),
            None => self.finish_pass(cursors, work),
        }
    }

    /// The loop of [`Self::scan_rows`]; `None` at the end of the file.
    fn read_rows(
        &mut self,
        rows: &mut CsvRows,
        cursors: &mut BTreeMap<u32, Cursor>,
        work: &SyncSender<Outgoing>,
        mut epoch: u64,
        owned: &[u32],
        read: &mut u64,
    ) -> Result<Option<ScanEnd>> {
        let file_len = std::fs::metadata(&self.config.csv).map_or(1, |m| m.len().max(1));
        let cell_size = self.cell_size();
        loop {
            if self.shutdown() {
                return Ok(Some(ScanEnd::Shutdown));
            }
            let Some(row) = rows.next_record()? else {
                return Ok(None);
            };
            let shard = shard_of(row.hostname_bytes(), self.shards);
            let Some(cursor) = cursors.get_mut(&shard) else {
                continue;
            };
            let position = cursor.seen;
            cursor.seen += 1;
            if position < cursor.progress.position {
                continue;
            }
            let cell = position - position % cell_size;
            if cell != cursor.batch.start {
                // The previous cell is complete: hand it over (a fixed seq, fixed messages).
                if !self.hand_over(cursor, cell, work) {
                    return Ok(Some(ScanEnd::Rebalanced));
                }
                cursor.batch.start = cell;
                if self.rebalanced(&mut epoch, owned) {
                    return Ok(Some(ScanEnd::Rebalanced));
                }
            }
            *read += 1;
            if self.pacer.wait_for_row(self.client.shutdown_flag()) {
                return Ok(Some(ScanEnd::Shutdown));
            }
            match row.point(Utc::now()) {
                Ok(point) => {
                    self.encode(&mut cursor.batch, &point)?;
                    cursor.batch.rows += 1;
                }
                Err(problem) => {
                    self.reporter.skipped += 1;
                    counter!("streamer_rows_skipped_total").increment(1);
                    tracing::warn!(line = row.line, reason = %problem, "skipping bad row");
                }
            }
            if *read & 1023 == 0 {
                // Metrics and the progress line per 1024 rows: per row they show in profiles.
                counter!("streamer_rows_read_total").increment(1024);
                self.reporter
                    .tick(rows.byte_position() as f64 / file_len as f64);
            }
        }
    }

    /// Whether the assignment moved under the scan (a new generation that keeps the same
    /// shards is no reason to start over: commits simply carry the new generation).
    fn rebalanced(&self, epoch: &mut u64, owned: &[u32]) -> bool {
        let now = self.member.epoch();
        if now == *epoch {
            return false;
        }
        *epoch = now;
        let changed = self.member.membership().partitions != owned;
        if changed {
            tracing::info!("shard assignment changed, restarting from the committed progress");
        }
        changed
    }

    /// End of file: hand over each shard's last cell, then its pass's end.
    fn finish_pass(
        &mut self,
        cursors: &mut BTreeMap<u32, Cursor>,
        work: &SyncSender<Outgoing>,
    ) -> Result<ScanEnd> {
        for cursor in cursors.values_mut() {
            let end_of_file = cursor.seen;
            if !self.hand_over(cursor, end_of_file, work) {
                return Ok(ScanEnd::Rebalanced);
            }
            cursor.progress = cursor.progress.next_pass();
            let item = Outgoing::Progress {
                shard: cursor.shard,
                after: cursor.progress,
                now: true,
            };
            if work.send(item).is_err() {
                return Ok(ScanEnd::Rebalanced);
            }
            counter!("streamer_passes_total").increment(1);
        }
        Ok(ScanEnd::Finished)
    }

    /// Appends one point to a cell in the configured format.
    fn encode(&self, batch: &mut Batch, point: &Point<'_>) -> Result<()> {
        if batch.body.capacity() == 0 {
            // A sample row encodes to ~600 bytes; growing by doubling shows up in profiles.
            batch
                .body
                .reserve((self.cell_size() as usize * 640).min(8 << 20));
        }
        match self.config.format {
            ProduceFormat::Ndjson => Ok(push_record(&mut batch.body, &point.gpu_uuid, point)?),
            ProduceFormat::Batch | ProduceFormat::Auto => {
                let key = point.gpu_uuid.as_bytes();
                let key_start = batch.body.len();
                batch.body.extend_from_slice(key);
                let value_start = batch.body.len();
                serde_json::to_writer(&mut batch.body, point).map_err(|e| Error::Decode {
                    url: String::new(),
                    reason: format!("cannot encode a point: {e}"),
                })?;
                let partition = partition_for_key(key, self.data_partitions);
                batch
                    .spans
                    .push((partition, key_start, value_start, batch.body.len()));
                Ok(())
            }
        }
    }

    /// The cell as requests: one NDJSON body, or one record batch per partition.
    fn payload(&self, batch: Batch) -> Payload {
        if self.config.format == ProduceFormat::Ndjson {
            return Payload::Ndjson(batch.body);
        }
        if self.config.format == ProduceFormat::Auto {
            let mut partitions: Vec<u32> = batch.spans.iter().map(|s| s.0).collect();
            partitions.sort_unstable();
            partitions.dedup();
            if batch.rows < BATCH_ROWS_PER_PARTITION * partitions.len() {
                return Payload::Ndjson(ndjson_of(&batch));
            }
        }
        let mut by_partition: BTreeMap<u32, Vec<KeyValue<'_>>> = BTreeMap::new();
        for (p, k, v, end) in &batch.spans {
            by_partition
                .entry(*p)
                .or_default()
                .push((&batch.body[*k..*v], &batch.body[*v..*end]));
        }
        Payload::Batches(
            by_partition
                .into_iter()
                .map(|(p, records)| (p, encode_batch(records)))
                .collect(),
        )
    }

    /// Gives the cursor's current cell, which ends where `until` (the next cell, or the end of
    /// the file) starts, to the sender. `false` when the sender has stopped.
    fn hand_over(&self, cursor: &mut Cursor, until: u32, work: &SyncSender<Outgoing>) -> bool {
        let batch = std::mem::take(&mut cursor.batch);
        cursor.progress = Progress {
            pass: cursor.progress.pass,
            position: until.min(batch.start.saturating_add(self.cell_size())),
        };
        let item = if batch.rows == 0 {
            // Nothing but bad rows: record the progress with the next commit.
            Outgoing::Progress {
                shard: cursor.shard,
                after: cursor.progress,
                now: false,
            }
        } else {
            Outgoing::Cell {
                shard: cursor.shard,
                producer: cursor.producer.clone(),
                seq: Progress {
                    pass: cursor.progress.pass,
                    position: batch.start,
                }
                .encode(),
                payload: self.payload(batch),
                after: cursor.progress,
            }
        };
        work.send(item).is_ok()
    }
}
