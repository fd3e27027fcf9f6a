//! The broker's Prometheus metrics: their names, labels and HELP texts in one place.
//! Rendering is `pipeline_common::ops::render_metrics`; this module only records.

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
        let t = topic.to_string();
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
    gauge!("broker_log_end_offset", "topic" => topic.to_string(), "partition" => partition.to_string())
}

pub fn record_recovery(topic: &str, partition: u32, bytes: u64, batches: u64) {
    let labels = [
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ];
    counter!("broker_recovery_bytes_truncated_total", &labels).increment(bytes);
    counter!("broker_recovery_batches_truncated_total", &labels).increment(batches);
}

pub fn fsync_seconds(elapsed: Duration) {
    histogram!("broker_fsync_duration_seconds").record(elapsed.as_secs_f64());
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
    let labels = [
        ("group", group.to_string()),
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ];
    gauge!("broker_group_committed_offset", &labels).set(committed as f64);
    gauge!("broker_group_lag", &labels).set(lag as f64);
}

pub fn group_members(group: &str, members: usize) {
    gauge!("broker_group_members", "group" => group.to_string()).set(members as f64);
}

pub fn retention_deleted(segments: usize) {
    counter!("broker_retention_segments_deleted_total").increment(segments as u64);
}
