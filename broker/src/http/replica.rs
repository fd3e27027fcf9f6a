//! The leader's side of replication's two requests (broker/PROTOCOL.md, "Replication"):
//!
//! - a follower's fetch: the binary fetch with `replica=<node id>&leader_epoch=<epoch>`. Its
//!   offset is the follower's log end, which the leader records (`replication`), and it reads
//!   past the high watermark to the log end — copying what is not yet committed is how it gets
//!   committed. The answer carries `Broker-High-Watermark`.
//! - `GET /v1/topics/{t}/partitions/{p}/epochs/{e}`: where the largest epoch `≤ e` ends in this
//!   leader's log, which a follower truncates to before it fetches.
//!
//! The rules (high watermark, ISR) are `replication`'s; this module only speaks HTTP.

use std::sync::Arc;
use std::time::Instant;

use broker_wire::header as wire_header;
use bytes::Bytes;
use http::{Request, Response, StatusCode};

use super::longpoll;
use super::request::{bytes_response, json_response, set_number, Body, Query, BATCH};
use super::topics::FETCH_MAX_BYTES;
use crate::broker::Broker;
use crate::buffers;
use crate::error::{BrokerError, Result};
use crate::naming::validate_name;
use crate::partition::Partition;
use crate::replication;

/// A follower's fetch (the caller checked this broker leads the partition in the metadata).
pub async fn fetch(
    broker: &Arc<Broker>,
    part: &Partition,
    node: u64,
    offset: u64,
    query: &Query,
    deadline: Instant,
) -> Result<Response<Body>> {
    let epoch = leader_epoch(query)?;
    if broker.cluster.is_none() {
        return Err(BrokerError::BadRequest(
            "?replica is for the brokers of a cluster; this one is not".into(),
        ));
    }
    replication::check_leading(part, epoch)?;
    // A reused buffer (see `buffers`), back in the pool once the answer is sent.
    let mut batches = buffers::take();
    // Checked before the offset is recorded: an offset past the log end is no end to count.
    part.read_for_replica(offset, FETCH_MAX_BYTES, batches.as_mut_vec())?;
    replication::on_follower_fetch(broker, part, node, epoch, offset)?;
    let mut local = part.subscribe_local();
    let mut shutdown = broker.shutdown.clone();
    while batches.is_empty() {
        local.borrow_and_update();
        part.read_for_replica(offset, FETCH_MAX_BYTES, batches.as_mut_vec())?;
        if !batches.is_empty() || !longpoll::wait(&mut local, deadline, &mut shutdown).await {
            break;
        }
    }
    let next = next_offset(&batches, offset);
    let hw = replication::high_watermark(part).unwrap_or(0);
    let mut response = bytes_response(StatusCode::OK, BATCH, batches.into_bytes());
    set_number(&mut response, wire_header::NEXT_OFFSET, next);
    set_number(&mut response, wire_header::HIGH_WATERMARK, hw);
    set_number(&mut response, wire_header::LOG_END_OFFSET, part.local_end());
    Ok(response)
}

/// The required `?leader_epoch=E` of a follower's request.
fn leader_epoch(query: &Query) -> Result<u32> {
    let epoch = query.u64("leader_epoch")?.ok_or_else(|| {
        BrokerError::BadRequest("a replica's request needs ?leader_epoch=E".into())
    })?;
    u32::try_from(epoch)
        .map_err(|_| BrokerError::BadRequest(format!("leader_epoch {epoch} is too large")))
}

/// The offset after the last whole batch of `batches` (`offset` when empty).
fn next_offset(batches: &[u8], offset: u64) -> u64 {
    let mut next = offset;
    let mut rest = batches;
    while let Some(header) = broker_log::record::peek_header(rest) {
        next = header.base_offset + u64::from(header.record_count);
        let len = header.batch_length as usize;
        if len == 0 || len > rest.len() {
            break;
        }
        rest = &rest[len..];
    }
    next
}

/// `GET /v1/topics/{t}/partitions/{p}/epochs/{e}`.
pub fn epoch_end(
    broker: &Broker,
    name: &str,
    partition: &str,
    epoch: &str,
    req: &Request<Bytes>,
) -> Result<Response<Body>> {
    validate_name("topic", name)?;
    let p: u64 = partition.parse().map_err(|_| {
        BrokerError::BadRequest(format!("partition must be a number, not {partition:?}"))
    })?;
    let epoch: u32 = epoch
        .parse()
        .map_err(|_| BrokerError::BadRequest(format!("epoch must be a number, not {epoch:?}")))?;
    let leader_epoch = leader_epoch(&Query::parse(req.uri().query()))?;
    if broker.cluster.is_none() {
        return Err(BrokerError::BadRequest(
            "this broker is not one of a cluster: it has no replicas".into(),
        ));
    }
    let topic = broker.topics.require(name)?;
    let part = topic.partition(p)?;
    let answer = replication::epoch_end(part, epoch, leader_epoch)?;
    json_response(StatusCode::OK, &answer)
}
