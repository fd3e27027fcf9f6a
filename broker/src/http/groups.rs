//! Consumer-group handlers: join, heartbeat, leave, commit, committed offsets, describe,
//! and the member fetch that long-polls all of a member's partitions at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::longpoll;
use super::request::{
    bytes_response, empty_response, json_body, json_response, set_number, Body, Query, NDJSON,
};
use super::topics::{fetch_limits, read_budget, FETCH_MAX_BYTES};
use crate::broker::{blocking, Broker};
use crate::error::{BrokerError, Result};
use crate::groups::{FetchPlan, GroupSnapshot};
use crate::naming::validate_name;
use crate::topics::Topic;
use crate::{metrics as m, ndjson};

#[derive(Deserialize)]
struct JoinBody {
    topic: String,
    #[serde(default)]
    session_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct CommitBody {
    member_id: String,
    generation: u64,
    topic: String,
    offsets: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Offsets {
    topic: String,
    offsets: BTreeMap<String, u64>,
}

/// The JSON body of a request to `group`, the group's name checked first so that a bad name
/// is the error reported even when the body is bad too.
fn group_body<T: DeserializeOwned>(group: &str, req: &Request<Bytes>) -> Result<T> {
    validate_name("group", group)?;
    json_body(req.body())
}

pub async fn join(
    broker: &Arc<Broker>,
    group: &str,
    req: &Request<Bytes>,
) -> Result<Response<Body>> {
    let JoinBody {
        topic,
        session_timeout_ms,
    } = group_body(group, req)?;
    let topic = broker.topic_or_create(&topic).await?;
    let (assignment, pending) = broker.groups.join(
        group,
        &topic.name,
        topic.partition_count(),
        session_timeout_ms.map(Duration::from_millis),
    )?;
    // On disk before answered: the member id must outlive a broker restart.
    let this = Arc::clone(broker);
    blocking(move || this.groups.persist(pending)).await?;
    json_response(StatusCode::OK, &assignment)
}

pub fn heartbeat(broker: &Broker, group: &str, member: &str) -> Result<Response<Body>> {
    let assignment = broker.groups.heartbeat(group, member)?;
    json_response(StatusCode::OK, &assignment)
}

pub fn leave(broker: &Broker, group: &str, member: &str) -> Result<Response<Body>> {
    broker.groups.leave(group, member)?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

pub async fn commit(
    broker: &Arc<Broker>,
    group: &str,
    req: &Request<Bytes>,
) -> Result<Response<Body>> {
    let commit: CommitBody = group_body(group, req)?;
    let offsets = commit
        .offsets
        .iter()
        .map(|(p, o)| {
            p.parse::<u32>().map(|p| (p, *o)).map_err(|_| {
                BrokerError::BadRequest(format!(
                    "offsets keys are partition numbers, not {:?}",
                    crate::naming::shown(p)
                ))
            })
        })
        .collect::<Result<BTreeMap<u32, u64>>>()?;
    let pending = broker.groups.commit(
        group,
        &commit.member_id,
        commit.generation,
        &commit.topic,
        &offsets,
    )?;
    if let Some(pending) = pending {
        let this = Arc::clone(broker);
        blocking(move || this.groups.persist(pending)).await?;
    }
    if let Some(cluster) = &broker.cluster {
        // Acknowledged once a majority of the brokers hold it: the group may move.
        cluster
            .commit_offsets(group, &commit.topic, &offsets)
            .await?;
    }
    let committed = committed(broker, group, &commit.topic)?;
    json_response(StatusCode::OK, &offsets_body(commit.topic, &committed))
}

/// A group's committed offsets for `topic`: in a cluster the replicated ones (a commit here
/// waits until it is applied here, and a coordinator the group moved to, or back to, may hold
/// none or older ones of its own).
fn committed(broker: &Broker, group: &str, topic: &str) -> Result<BTreeMap<u32, u64>> {
    match &broker.cluster {
        Some(cluster) => Ok(cluster.committed(group, topic)),
        None => broker.groups.committed(group, topic),
    }
}

fn offsets_body(topic: String, committed: &BTreeMap<u32, u64>) -> Offsets {
    Offsets {
        topic,
        offsets: committed.iter().map(|(p, o)| (p.to_string(), *o)).collect(),
    }
}

pub fn offsets(broker: &Broker, group: &str, query: Option<&str>) -> Result<Response<Body>> {
    let query = Query::parse(query);
    let topic = query
        .get("topic")
        .ok_or_else(|| BrokerError::BadRequest("the topic query parameter is required".into()))?;
    validate_name("topic", topic)?;
    let committed = committed(broker, group, topic)?;
    json_response(StatusCode::OK, &offsets_body(topic.to_string(), &committed))
}

pub async fn fetch(
    broker: &Broker,
    group: &str,
    member: &str,
    req: &Request<Bytes>,
) -> Result<Response<Body>> {
    let (max, deadline) = fetch_limits(&Query::parse(req.uri().query()))?;
    let plan = broker.groups.fetch_plan(group, member)?;
    let topic = broker.topics.require(&plan.topic)?;
    let mut shutdown = broker.shutdown.clone();
    loop {
        let plan = broker.groups.fetch_plan(group, member)?;
        // Subscribed before reading, so an append landing in between still wakes the wait.
        let mut signals: Vec<_> = plan
            .positions
            .iter()
            .filter_map(|&(p, _)| topic.partition(u64::from(p)).ok().map(|x| x.subscribe()))
            .collect();
        let PlanRead {
            body,
            delivered,
            count,
        } = read_plan(&topic, &plan, max)?;
        if count > 0 || !longpoll::wait_any(&mut signals, deadline, &mut shutdown).await {
            broker.groups.advance(group, member, &delivered);
            topic.counters.messages_out.increment(count as u64);
            topic.counters.bytes_out.increment(body.len() as u64);
            let mut response = bytes_response(StatusCode::OK, NDJSON, body);
            set_number(
                &mut response,
                broker_wire::header::GENERATION,
                plan.generation,
            );
            return Ok(response);
        }
    }
}

/// What one pass over a member's partitions read.
struct PlanRead {
    /// The NDJSON answer.
    body: Vec<u8>,
    /// The next position of each partition read.
    delivered: Vec<(u32, u64)>,
    count: usize,
}

/// Reads a member's partitions in the plan's (rotating) order until `max` records.
fn read_plan(topic: &Topic, plan: &FetchPlan, max: usize) -> Result<PlanRead> {
    let mut body = Vec::new();
    let mut delivered = Vec::new();
    let mut count = 0;
    for &(p, position) in &plan.positions {
        if count >= max || body.len() >= FETCH_MAX_BYTES {
            break;
        }
        let part = topic.partition(u64::from(p))?;
        let (start, end) = part.offsets();
        // Nothing committed → from the start; below the start (retention) → the start;
        // past the end (a group committing its own progress numbers) → nothing yet.
        let from = position.unwrap_or(start).max(start);
        if from >= end {
            continue;
        }
        let budget = read_budget(max - count, FETCH_MAX_BYTES - body.len());
        let batches = match part.read_encoded(from, budget) {
            Ok((batches, _)) => batches,
            Err(BrokerError::OffsetOutOfRange { .. }) => continue,
            Err(e) => return Err(e),
        };
        let (next, n) = ndjson::encode_batches(&mut body, p, &batches, from, max - count)?;
        if n > 0 {
            delivered.push((p, next));
            count += n;
        }
    }
    Ok(PlanRead {
        body,
        delivered,
        count,
    })
}

#[derive(Serialize)]
struct PartitionState {
    topic: String,
    partition: u32,
    member: Option<String>,
    committed_offset: Option<u64>,
    log_start_offset: u64,
    log_end_offset: u64,
    lag: u64,
}

pub fn describe(broker: &Broker, group: &str) -> Result<Response<Body>> {
    let snapshot = broker.groups.snapshot(group)?;
    let partitions = partition_states(broker, &snapshot);
    let body = serde_json::json!({
        "group": group,
        "generation": snapshot.generation,
        "members": snapshot.members,
        "partitions": partitions,
    });
    json_response(StatusCode::OK, &body)
}

fn partition_states(broker: &Broker, snapshot: &GroupSnapshot) -> Vec<PartitionState> {
    let mut topics: Vec<&String> = snapshot.topics.keys().collect();
    topics.extend(snapshot.committed.keys());
    topics.sort();
    topics.dedup();
    let mut out = Vec::new();
    for name in topics {
        let Some(topic) = broker.topics.get(name) else {
            continue;
        };
        let committed = snapshot.committed.get(name);
        for part in &topic.partitions {
            let (start, end) = part.offsets();
            let offset = committed.and_then(|c| c.get(&part.id).copied());
            let member = snapshot
                .members
                .iter()
                .find(|mem| &mem.topic == name && mem.partitions.contains(&part.id))
                .map(|mem| mem.member_id.clone());
            out.push(PartitionState {
                topic: name.clone(),
                partition: part.id,
                member,
                committed_offset: offset,
                log_start_offset: start,
                log_end_offset: end,
                lag: end.saturating_sub(offset.unwrap_or(start)),
            });
        }
    }
    out
}

/// Updates the committed-offset and lag gauges (called when /metrics is scraped).
pub fn refresh_metrics(broker: &Broker) {
    for (group, topic, partition, committed) in broker.groups.all_committed() {
        let end = broker
            .topics
            .get(&topic)
            .and_then(|t| {
                t.partition(u64::from(partition))
                    .ok()
                    .map(|p| p.offsets().1)
            })
            .unwrap_or(0);
        m::group_offset(
            &group,
            &topic,
            partition,
            committed,
            end.saturating_sub(committed),
        );
    }
}
