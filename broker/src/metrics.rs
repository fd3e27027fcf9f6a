//! The broker's Prometheus metrics: their names, labels and HELP texts in one place.
//! Rendering is `pipeline_common::ops::render_metrics`; this module only records.
//!
//! Cardinality is bounded: topic and group names come from clients, and a series once
//! registered is never dropped by the recorder. So the first [`MAX_NAMED_TOPICS`] topic
//! names and [`MAX_NAMED_GROUPS`] group names get series of their own; later names are
//! counted under `topic="_other"` (counters) and get no per-partition or per-group gauges.
//! Per-partition series (log end, recovery, group offset and lag) stop at
//! [`MAX_PARTITION_SERIES`] label sets per family.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Unit};

/// Gives every metric its HELP line (promtool requires one). Call once at startup.
pub fn describe() {
    describe_counter!("broker_messages_in_total", "Messages appended, per topic.");
    describe_counter!(
        "broker_bytes_in_total",
        Unit::Bytes,
        "Produce request body bytes accepted, per topic."
    );
    describe_counter!("broker_messages_out_total", "Messages fetched, per topic.");
    describe_counter!(
        "broker_bytes_out_total",
        Unit::Bytes,
        "Fetch response body bytes sent, per topic."
    );
    describe_counter!(
        "broker_duplicate_produces_total",
        "Idempotent produce retries answered from the producer window, per topic."
    );
    describe_histogram!(
        "broker_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency per route (long-polls include their wait)."
    );
    describe_counter!(
        "broker_requests_total",
        "HTTP requests answered, per route and status class."
    );
    describe_histogram!(
        "broker_fsync_duration_seconds",
        Unit::Seconds,
        "Duration of one partition log sync."
    );
    describe_gauge!(
        "broker_log_end_offset",
        "Next offset to be written, per topic and partition."
    );
    describe_gauge!(
        "broker_group_committed_offset",
        "Committed offset per group, topic and partition."
    );
    describe_gauge!(
        "broker_group_lag",
        "Log end offset minus committed offset (at least 0) per group, topic and partition."
    );
    describe_gauge!("broker_group_members", "Live members per group.");
    describe_gauge!(
        "broker_long_polls_parked",
        "Fetches parked waiting for data right now."
    );
    describe_counter!(
        "broker_recovery_bytes_truncated_total",
        Unit::Bytes,
        "Bytes of torn or corrupt log tail cut at recovery, per topic and partition."
    );
    describe_counter!(
        "broker_recovery_batches_truncated_total",
        "Batches cut at recovery (best effort), per topic and partition."
    );
    describe_counter!(
        "broker_retention_segments_deleted_total",
        "Segments deleted by retention."
    );
}

/// Topic names that get series of their own.
pub const MAX_NAMED_TOPICS: usize = 1_000;
/// Group names that get series of their own.
pub const MAX_NAMED_GROUPS: usize = 1_000;
/// Label sets per per-partition metric family.
pub const MAX_PARTITION_SERIES: usize = 20_000;
/// The label of the names past the budget.
pub const OTHER: &str = "_other";

/// The label sets handed out so far, per budget.
#[derive(Default)]
struct Budgets {
    topics: HashSet<String>,
    groups: HashSet<String>,
    /// family → its `(group, topic, partition)` label sets.
    partitions: HashMap<&'static str, HashSet<(String, String, u32)>>,
}

fn budgets() -> std::sync::MutexGuard<'static, Budgets> {
    static BUDGETS: OnceLock<Mutex<Budgets>> = OnceLock::new();
    BUDGETS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Whether `name` has (or now gets) a series of its own in `set`, holding at most `max`.
fn admit(set: &mut HashSet<String>, name: &str, max: usize) -> bool {
    if set.contains(name) {
        return true;
    }
    if set.len() >= max {
        return false;
    }
    set.insert(name.to_string());
    true
}

/// The `topic` label for `topic`: its name, or [`OTHER`] past the budget.
fn topic_label(topic: &str) -> String {
    if admit(&mut budgets().topics, topic, MAX_NAMED_TOPICS) {
        topic.to_string()
    } else {
        OTHER.to_string()
    }
}

/// Whether a per-partition series of `family` for `(group, topic, partition)` may exist
/// (`group` is empty for the topic families).
fn partition_series(family: &'static str, group: &str, topic: &str, partition: u32) -> bool {
    let mut b = budgets();
    if !admit(&mut b.topics, topic, MAX_NAMED_TOPICS)
        || (!group.is_empty() && !admit(&mut b.groups, group, MAX_NAMED_GROUPS))
    {
        return false;
    }
    let series = b.partitions.entry(family).or_default();
    let key = (group.to_string(), topic.to_string(), partition);
    if series.contains(&key) {
        return true;
    }
    if series.len() >= MAX_PARTITION_SERIES {
        return false;
    }
    series.insert(key);
    true
}

/// Per-topic counters, registered once per topic so the hot path never formats labels.
pub struct TopicCounters {
    pub messages_in: Counter,
    pub bytes_in: Counter,
    pub messages_out: Counter,
    pub bytes_out: Counter,
    pub duplicates: Counter,
}

impl TopicCounters {
    pub fn new(topic: &str) -> TopicCounters {
        let t = topic_label(topic);
        TopicCounters {
            messages_in: counter!("broker_messages_in_total", "topic" => t.clone()),
            bytes_in: counter!("broker_bytes_in_total", "topic" => t.clone()),
            messages_out: counter!("broker_messages_out_total", "topic" => t.clone()),
            bytes_out: counter!("broker_bytes_out_total", "topic" => t.clone()),
            duplicates: counter!("broker_duplicate_produces_total", "topic" => t),
        }
    }
}

pub fn log_end_gauge(topic: &str, partition: u32) -> Gauge {
    if !partition_series("log_end", "", topic, partition) {
        return Gauge::noop();
    }
    gauge!("broker_log_end_offset", "topic" => topic.to_string(), "partition" => partition.to_string())
}

pub fn record_recovery(topic: &str, partition: u32, bytes: u64, batches: u64) {
    if !partition_series("recovery", "", topic, partition) {
        return;
    }
    let labels = [
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ];
    counter!("broker_recovery_bytes_truncated_total", &labels).increment(bytes);
    counter!("broker_recovery_batches_truncated_total", &labels).increment(batches);
}

/// The storage's file operations with each data sync timed into
/// `broker_fsync_duration_seconds` (whoever syncs: group commit, flusher, roll, shutdown).
#[derive(Debug)]
pub struct TimedSync(pub std::sync::Arc<dyn broker_log::io::FileOps>);

impl broker_log::io::FileOps for TimedSync {
    fn preallocate(&self, file: &std::fs::File, len: u64) -> std::io::Result<()> {
        self.0.preallocate(file, len)
    }

    fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        let result = self.0.sync_data(file);
        histogram!("broker_fsync_duration_seconds").record(started.elapsed().as_secs_f64());
        result
    }
}

pub fn request(route: &'static str, status: u16, elapsed: Duration) {
    histogram!("broker_request_duration_seconds", "route" => route).record(elapsed.as_secs_f64());
    let class = match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    counter!("broker_requests_total", "route" => route, "status" => class).increment(1);
}

pub fn group_offset(group: &str, topic: &str, partition: u32, committed: u64, lag: u64) {
    if !partition_series("group_offset", group, topic, partition) {
        return;
    }
    let labels = [
        ("group", group.to_string()),
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ];
    gauge!("broker_group_committed_offset", &labels).set(committed as f64);
    gauge!("broker_group_lag", &labels).set(lag as f64);
}

pub fn group_members(group: &str, members: usize) {
    if !admit(&mut budgets().groups, group, MAX_NAMED_GROUPS) {
        return;
    }
    gauge!("broker_group_members", "group" => group.to_string()).set(members as f64);
}

pub fn retention_deleted(segments: usize) {
    counter!("broker_retention_segments_deleted_total").increment(segments as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_admits_known_names_and_refuses_new_ones_once_full() {
        let mut set = HashSet::new();
        assert!(admit(&mut set, "a", 2));
        assert!(admit(&mut set, "b", 2));
        assert!(!admit(&mut set, "c", 2), "full");
        assert!(admit(&mut set, "a", 2), "a known name keeps its series");
        assert_eq!(set.len(), 2);
    }
}
