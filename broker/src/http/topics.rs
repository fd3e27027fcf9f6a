//! Topic handlers: create, delete, describe, list, produce (NDJSON and binary batches,
//! idempotent when `producer` and `seq` are given) and fetch by offset with long-poll.
//!
//! A produce is checked whole (query, body, every value) before its topic is created, so a
//! refused produce never leaves a topic behind.
//!
//! In a cluster (`--peers`) topics are the metadata's: create and delete are proposals,
//! describe and list read it, and produce and fetch are served only for the partitions this
//! broker leads (421 naming the leader otherwise; `crate::cluster` decides).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_log::{ProducerStamp, Record};
use broker_wire::header as wire_header;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::longpoll;
use super::request::{
    accepts_batch, bytes_response, empty_response, json_body, json_response, media_type,
    set_number, Body, Query, BATCH, NDJSON,
};
use crate::broker::{blocking, Broker};
use crate::error::{BrokerError, Result};
use crate::naming::{validate_name, validate_producer};
use crate::ndjson;
use crate::partition::{Idempotence, Partition, Payload, Writer};
use crate::produce::{self, Batch, Placed};
use crate::replication;
use crate::topics::Topic;

/// Default and largest `max` of a fetch.
pub const DEFAULT_MAX: u64 = 1000;
pub const MAX_MAX: u64 = 10_000;
/// Largest `wait_ms` of a fetch.
pub const MAX_WAIT_MS: u64 = 30_000;
/// About how many bytes one fetch answer carries at most (at least one record).
pub const FETCH_MAX_BYTES: usize = 8 * 1024 * 1024;

#[derive(Deserialize)]
struct CreateBody {
    partitions: u32,
}

#[derive(Serialize)]
struct PartitionInfo {
    partition: u32,
    log_start_offset: u64,
    log_end_offset: u64,
    /// The URL to produce to and fetch from (`null` in a cluster while it has no leader).
    leader: Option<String>,
    /// In a cluster only: the metadata's leader id, epoch, replicas and in-sync replicas.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    placement: Option<Placement>,
}

#[derive(Serialize)]
struct Placement {
    leader_id: Option<u64>,
    leader_epoch: u32,
    replicas: Vec<u64>,
    isr: Vec<u64>,
    /// Everything this broker's copy holds, committed or not (`log_end_offset` is what a
    /// consumer may read: the high watermark, at the leader).
    replica_end_offset: u64,
    /// The high watermark as this broker knows it (exact at the leader; a follower learns
    /// it with each fetch).
    high_watermark: u64,
}

#[derive(Serialize)]
struct TopicInfo {
    topic: String,
    partitions: Vec<PartitionInfo>,
}

pub fn list(broker: &Broker) -> Result<Response<Body>> {
    if let Some(cluster) = &broker.cluster {
        let topics: Vec<_> = cluster.read(|m| {
            m.topics
                .iter()
                .map(|(name, t)| serde_json::json!({"topic": name, "partitions": t.partitions.len()}))
                .collect()
        });
        return json_response(StatusCode::OK, &serde_json::json!({ "topics": topics }));
    }
    let topics: Vec<_> = broker
        .topics
        .all()
        .iter()
        .map(|t| serde_json::json!({"topic": &*t.name, "partitions": t.partition_count()}))
        .collect();
    json_response(StatusCode::OK, &serde_json::json!({ "topics": topics }))
}

pub async fn create(
    broker: &Arc<Broker>,
    name: &str,
    req: &Request<Bytes>,
) -> Result<Response<Body>> {
    validate_name("topic", name)?;
    let body = req.body();
    let CreateBody { partitions } = json_body(body)?;
    if let Some(cluster) = &broker.cluster {
        crate::topics::check_partition_count(partitions)?;
        let created = cluster
            .create_topic(name, partitions, broker.config.max_topics)
            .await?;
        let meta = cluster.topic(name)?;
        if cluster.replicates(&meta) {
            broker.local_copy(name).await?;
        }
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return json_response(status, &cluster_topic_info(broker, name, &meta));
    }
    let this = Arc::clone(broker);
    let owned = name.to_string();
    let (topic, created) = blocking(move || this.topics.create(&owned, partitions)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_response(status, &topic_info(broker, &topic, req.headers()))
}

/// `DELETE /v1/topics/{t}`: removes the topic's files and every group's offsets for it.
pub async fn delete(broker: &Arc<Broker>, name: &str) -> Result<Response<Body>> {
    validate_name("topic", name)?;
    let this = Arc::clone(broker);
    let owned = name.to_string();
    if let Some(cluster) = &broker.cluster {
        // Every broker removes its copy when it sees the deletion; this one before answering.
        cluster.delete_topic(name).await?;
        blocking(move || crate::cluster::drop_topic(&this, &owned)).await?;
        return Ok(empty_response(StatusCode::NO_CONTENT));
    }
    blocking(move || {
        this.topics.delete(&owned)?;
        this.groups.forget_topic(&owned)
    })
    .await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub fn describe(broker: &Broker, name: &str, headers: &HeaderMap) -> Result<Response<Body>> {
    if let Some(cluster) = &broker.cluster {
        validate_name("topic", name)?;
        let meta = cluster.topic(name)?;
        return json_response(StatusCode::OK, &cluster_topic_info(broker, name, &meta));
    }
    let topic = broker.topics.require(name)?;
    json_response(StatusCode::OK, &topic_info(broker, &topic, headers))
}

fn topic_info(broker: &Broker, topic: &Topic, headers: &HeaderMap) -> TopicInfo {
    // The URL the client reached us by is the one that routes back to us.
    let leader = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(
            || format!("http://{}", broker.local_addr),
            |h| format!("http://{h}"),
        );
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let (start, end) = p.offsets();
            PartitionInfo {
                partition: p.id,
                log_start_offset: start,
                log_end_offset: end,
                leader: Some(leader.clone()),
                placement: None,
            }
        })
        .collect();
    TopicInfo {
        topic: topic.name.to_string(),
        partitions,
    }
}

/// A topic as the cluster's metadata places it. The offsets are this broker's copy's: at the
/// leader `log_end_offset` is the high watermark; a follower's trails its leader's.
fn cluster_topic_info(broker: &Broker, name: &str, meta: &broker_meta::Topic) -> TopicInfo {
    let leader_url = |leader: Option<u64>| {
        let (cluster, id) = (broker.cluster.as_ref()?, leader?);
        cluster.read(|m| m.members.get(&id).map(|member| member.url.clone()))
    };
    let local = broker.topics.get(name);
    let partitions = meta
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let part = local.as_ref().and_then(|t| t.partitions.get(i));
            let (log_start_offset, log_end_offset) = part.map_or((0, 0), |part| part.offsets());
            let replica_end_offset = part
                .and_then(|part| part.log_bounds().ok())
                .map_or(0, |(_, end)| end);
            let high_watermark = part.map_or(0, |part| {
                replication::high_watermark(part).unwrap_or_else(|| part.visible_end())
            });
            PartitionInfo {
                partition: i as u32,
                log_start_offset,
                log_end_offset,
                leader: leader_url(p.leader),
                placement: Some(Placement {
                    leader_id: p.leader,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    replica_end_offset,
                    high_watermark,
                }),
            }
        })
        .collect();
    TopicInfo {
        topic: name.to_string(),
        partitions,
    }
}

/// `GET /v1/cluster`: this broker, the Raft leader and the members (a cluster of one: this
/// broker alone, with no Raft).
pub fn cluster(broker: &Broker) -> Result<Response<Body>> {
    match &broker.cluster {
        Some(c) => json_response(StatusCode::OK, &c.info()),
        None => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "node_id": broker.config.node_id,
                "url": format!("http://{}", broker.local_addr),
                "raft_leader": null,
                "raft_leader_url": null,
                "members": [],
            }),
        ),
    }
}

/// The idempotence parameters: both `producer` and `seq`, or neither.
fn idempotence(query: &Query) -> Result<Option<(String, u64)>> {
    match (query.get("producer"), query.u64("seq")?) {
        (None, None) => Ok(None),
        (Some(producer), Some(seq)) => {
            validate_producer(producer)?;
            Ok(Some((producer.to_string(), seq)))
        }
        _ => Err(BrokerError::BadRequest(
            "producer and seq go together: give both for an idempotent produce, or neither".into(),
        )),
    }
}

fn stamp_of(producer: &str, seq: u64) -> ProducerStamp {
    ProducerStamp {
        producer_id: broker_wire::numeric_producer_id(producer),
        seq,
    }
}

enum Kind {
    Ndjson,
    Batch,
}

fn content_kind(headers: &HeaderMap) -> Result<Kind> {
    match media_type(headers, header::CONTENT_TYPE).as_deref() {
        Some(NDJSON) | Some("application/json") | None => Ok(Kind::Ndjson),
        Some(BATCH) => Ok(Kind::Batch),
        Some(other) => Err(BrokerError::UnsupportedMediaType(other.to_string())),
    }
}

pub async fn produce(
    broker: &Arc<Broker>,
    name: &str,
    req: &Request<Bytes>,
) -> Result<Response<Body>> {
    validate_name("topic", name)?;
    let query = Query::parse(req.uri().query());
    let kind = content_kind(req.headers())?;
    let idem = idempotence(&query)?;
    let partition = query.u64("partition")?;
    let body = req.body();
    let idem = idem.as_ref().map(|(producer, seq)| Idempotence {
        stamp: stamp_of(producer, *seq),
        producer,
    });
    // Everything is checked against the partition count the topic has (or would be created
    // with) before the topic is looked up or created.
    let count = broker.partitions_for(name);
    match kind {
        Kind::Ndjson => {
            // A retry must land where the original did, so idempotent requests pick their
            // keyless partition from (producer, seq) instead of the round-robin.
            let keyless = match idem {
                Some(i) => broker_wire::keyless_partition(i.stamp.producer_id, i.stamp.seq, count),
                None => broker.next_keyless(count),
            };
            let messages = ndjson::parse(body, count, keyless)?;
            let topic = produce_target(broker, name, count).await?;
            if let Some(cluster) = &broker.cluster {
                // All or nothing: one partition led elsewhere refuses the whole request.
                cluster.check_leads(name, messages.iter().map(|m| m.partition))?;
            }
            produce_ndjson(broker, &topic, &messages, body.len(), idem).await
        }
        Kind::Batch => {
            let p = partition.ok_or_else(|| {
                BrokerError::BadRequest(format!("the {BATCH} content type needs ?partition=P"))
            })?;
            if p >= u64::from(count) {
                return Err(BrokerError::UnknownPartition {
                    topic: name.to_string(),
                    partition: p,
                    count,
                });
            }
            ndjson::check_batch(body)?;
            let topic = produce_target(broker, name, count).await?;
            if let Some(cluster) = &broker.cluster {
                // p < count, which is at most MAX_PARTITIONS.
                cluster.check_leads(name, [p as u32])?;
            }
            topic.counters.bytes_in.increment(body.len() as u64);
            produce_batch(broker, &topic, p, body, idem).await
        }
    }
}

/// The topic a checked produce goes to, created when missing (and allowed). When it was
/// created meanwhile with another partition count than the body was checked against, the
/// client is told to retry rather than have its messages routed by the wrong count.
async fn produce_target(broker: &Arc<Broker>, name: &str, checked: u32) -> Result<Arc<Topic>> {
    let topic = broker.topic_or_create(name).await?;
    if topic.partition_count() != checked {
        return Err(BrokerError::PartitionCountMismatch {
            topic: name.to_string(),
            existing: topic.partition_count(),
            requested: checked,
        });
    }
    Ok(topic)
}

async fn produce_ndjson(
    broker: &Broker,
    topic: &Topic,
    messages: &[ndjson::Message<'_>],
    body_len: usize,
    idem: Option<Idempotence<'_>>,
) -> Result<Response<Body>> {
    topic.counters.bytes_in.increment(body_len as u64);
    let now = now_ms();
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, msg) in messages.iter().enumerate() {
        by_partition.entry(msg.partition).or_default().push(i);
    }
    let records: Vec<Vec<Record<'_>>> = by_partition
        .values()
        .map(|lines| {
            lines
                .iter()
                .map(|&i| Record {
                    timestamp_ms: now,
                    key: messages[i].key.as_deref().map(str::as_bytes),
                    value: messages[i].value,
                })
                .collect()
        })
        .collect();
    let writers = leader_epochs(broker, topic, by_partition.keys().copied())?;
    let batches = by_partition
        .keys()
        .zip(&records)
        .zip(&writers)
        .map(|((&partition, records), &writer)| Batch {
            partition,
            payload: Payload::Records(records),
            writer,
        })
        .collect();
    // Decided whole for an idempotent request; no lock is held past this call.
    let placed = produce::append(topic, batches, idem)?;
    let mut offsets = vec![0u64; messages.len()];
    let mut all_duplicates = true;
    for (lines, placed) in by_partition.values().zip(&placed) {
        for (k, &i) in lines.iter().enumerate() {
            offsets[i] = placed.appended.base_offset + k as u64;
        }
        count_append(
            topic,
            placed.appended.duplicate,
            placed.appended.record_count,
        );
        all_duplicates &= placed.appended.duplicate;
    }
    settle_all(&placed).await?;
    replicate_all(broker, &placed, &writers).await?;
    let mut out = String::with_capacity(32 + offsets.len() * 32);
    let _ = write!(out, "{{\"topic\":\"{}\",\"results\":[", topic.name);
    for (i, (msg, offset)) in messages.iter().zip(&offsets).enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            out,
            "{sep}{{\"partition\":{},\"offset\":{offset}}}",
            msg.partition
        );
    }
    out.push_str("]}");
    let mut response = bytes_response(StatusCode::OK, "application/json", out.into_bytes());
    mark_duplicate(&mut response, all_duplicates);
    Ok(response)
}

/// Who each partition a produce touches is written as: in a cluster the leader epoch, each
/// checked ready to take it (led here, enough in-sync replicas) before anything is appended;
/// otherwise anyone.
fn leader_epochs(
    broker: &Broker,
    topic: &Topic,
    partitions: impl Iterator<Item = u32>,
) -> Result<Vec<Writer>> {
    partitions
        .map(|p| match &broker.cluster {
            None => Ok(Writer::Anyone),
            Some(_) => replication::check_produce(broker, topic.partition(u64::from(p))?)
                .map(Writer::Leader),
        })
        .collect()
}

/// In a cluster: waits until every placed batch is on every in-sync replica (`acks=all`).
async fn replicate_all(broker: &Broker, placed: &[Placed<'_>], writers: &[Writer]) -> Result<()> {
    let Some(cluster) = &broker.cluster else {
        return Ok(());
    };
    let wait = cluster.replica_lag * 2;
    for (p, writer) in placed.iter().zip(writers) {
        if let Writer::Leader(epoch) = *writer {
            replication::await_replicated(broker, p.partition, p.end, epoch, wait).await?;
        }
    }
    Ok(())
}

/// Waits for every partition a produce touched; all syncs are started before the first wait.
async fn settle_all(placed: &[Placed<'_>]) -> Result<()> {
    for p in placed {
        p.partition.start_sync_for(p.end);
    }
    for p in placed {
        p.partition.settle(p.end).await?;
    }
    Ok(())
}

fn count_append(topic: &Topic, duplicate: bool, records: u32) {
    if duplicate {
        topic.counters.duplicates.increment(1);
    } else {
        topic.counters.messages_in.increment(u64::from(records));
    }
}

fn mark_duplicate(response: &mut Response<Body>, duplicate: bool) {
    if duplicate {
        response
            .headers_mut()
            .insert(wire_header::DUPLICATE, HeaderValue::from_static("true"));
    }
}

async fn produce_batch(
    broker: &Broker,
    topic: &Topic,
    partition: u64,
    body: &[u8],
    idem: Option<Idempotence<'_>>,
) -> Result<Response<Body>> {
    let partition = u32::try_from(partition).map_err(|_| BrokerError::UnknownPartition {
        topic: topic.name.to_string(),
        partition,
        count: topic.partition_count(),
    })?;
    let writers = leader_epochs(broker, topic, std::iter::once(partition))?;
    let batch = Batch {
        partition,
        payload: Payload::Encoded(body),
        writer: writers[0],
    };
    // Through the same path as NDJSON so an idempotent batch takes its producer's stripe:
    // appended between another request's check and appends, it could cut that request.
    let placed = produce::append(topic, vec![batch], idem)?;
    settle_all(&placed).await?;
    replicate_all(broker, &placed, &writers).await?;
    let Some(Placed { appended, .. }) = placed.first() else {
        return Err(BrokerError::Internal(
            "a one-batch produce placed no batch".into(),
        ));
    };
    count_append(topic, appended.duplicate, appended.record_count);
    let answer = serde_json::json!({
        "topic": &*topic.name,
        "partition": partition,
        "base_offset": appended.base_offset,
        "record_count": appended.record_count,
    });
    let mut response = json_response(StatusCode::OK, &answer)?;
    mark_duplicate(&mut response, appended.duplicate);
    Ok(response)
}

/// `max` and `wait_ms` of a fetch, clamped to their limits.
pub fn fetch_limits(query: &Query) -> Result<(usize, Instant)> {
    let max = query.u64("max")?.unwrap_or(DEFAULT_MAX).clamp(1, MAX_MAX) as usize;
    let wait = query.u64("wait_ms")?.unwrap_or(0).min(MAX_WAIT_MS);
    Ok((max, Instant::now() + Duration::from_millis(wait)))
}

pub async fn fetch(
    broker: &Arc<Broker>,
    name: &str,
    partition: &str,
    req: &Request<Bytes>,
) -> Result<Response<Body>> {
    let p: u64 = partition.parse().map_err(|_| {
        BrokerError::BadRequest(format!("partition must be a number, not {partition:?}"))
    })?;
    let topic = match &broker.cluster {
        Some(cluster) => {
            validate_name("topic", name)?;
            let leads = u32::try_from(p).map_err(|_| BrokerError::UnknownPartition {
                topic: name.to_string(),
                partition: p,
                count: broker.partitions_for(name),
            });
            cluster.check_leads(name, [leads?])?;
            broker.local_copy(name).await?
        }
        None => broker.topics.require(name)?,
    };
    let part = topic.partition(p)?;
    let query = Query::parse(req.uri().query());
    let offset = query
        .u64("offset")?
        .ok_or_else(|| BrokerError::BadRequest("the offset query parameter is required".into()))?;
    let (max, deadline) = fetch_limits(&query)?;
    if let Some(node) = query.u64("replica")? {
        return super::replica::fetch(broker, part, node, offset, &query, deadline).await;
    }
    let binary = accepts_batch(req.headers());
    let mut visible = part.subscribe();
    let mut shutdown = broker.shutdown.clone();
    loop {
        visible.borrow_and_update();
        let (body, next, count) = read_partition(part, offset, max, binary)?;
        if count > 0 || !longpoll::wait(&mut visible, deadline, &mut shutdown).await {
            topic.counters.messages_out.increment(count as u64);
            topic.counters.bytes_out.increment(body.len() as u64);
            let content_type = if binary { BATCH } else { NDJSON };
            let mut response = bytes_response(StatusCode::OK, content_type, body);
            set_number(&mut response, wire_header::NEXT_OFFSET, next);
            set_number(&mut response, wire_header::LOG_END_OFFSET, part.offsets().1);
            return Ok(response);
        }
    }
}

/// One read: the body, the next offset to ask, and how many records (or batches) it holds.
fn read_partition(
    part: &Partition,
    offset: u64,
    max: usize,
    binary: bool,
) -> Result<(Vec<u8>, u64, usize)> {
    if binary {
        let (bytes, next) = part.read_encoded(offset, FETCH_MAX_BYTES)?;
        let count = usize::try_from(next.saturating_sub(offset)).unwrap_or(usize::MAX);
        return Ok((bytes, next, count));
    }
    let (batches, _) = part.read_encoded(offset, read_budget(max, FETCH_MAX_BYTES))?;
    let mut body = Vec::with_capacity(batches.len() + batches.len() / 4);
    let (next, count) = ndjson::encode_batches(&mut body, part.id, &batches, offset, max)?;
    Ok((body, next, count))
}

/// How many stored bytes to read for `max` records: enough for records of a few hundred
/// bytes (telemetry), never more than `limit`; bigger records just mean fewer per answer.
pub fn read_budget(max: usize, limit: usize) -> usize {
    max.saturating_mul(640).max(64 * 1024).min(limit.max(1))
}

pub use crate::partition::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_budget_never_exceeds_its_limit() {
        assert_eq!(read_budget(1000, FETCH_MAX_BYTES), 640_000);
        assert_eq!(read_budget(1, FETCH_MAX_BYTES), 64 * 1024);
        assert_eq!(read_budget(10_000, 100), 100);
        assert_eq!(read_budget(10_000, 0), 1);
    }
}
