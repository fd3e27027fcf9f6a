//! [`BrokerClient`]: one method per call of the broker's HTTP protocol (v1), over one
//! keep-alive `ureq` agent, with the Bearer token, timeouts, and the retry policy applied to
//! the calls a repeat cannot harm.
//!
//! Which calls are retried: every read, topic creation (idempotent), joins and commits (the
//! same commit twice is harmless), and produces *with* a producer id and seq (the broker
//! answers a repeated seq with the original offsets). A produce without them is tried once,
//! since a retry after a lost answer could append twice; heartbeats and leaving are tried
//! once too (the heartbeat thread is their retry loop, and leaving is a courtesy).
//!
//! Where a request goes: a call for a partition (binary batch produce, fetch) goes to the
//! partition's leader as learned (`route`), else to the first bootstrap URL that accepts a
//! connection; a 421 (not the leader) is followed to the leader it names, at most
//! [`MAX_HOPS`] times per attempt. An NDJSON produce goes to the one leader of all its lines'
//! partitions when there is one. Topic and group calls go to any broker. A bootstrap URL that
//! refuses the connection is passed over at once; one that fails after the request may have
//! reached it is not, but a retried call's next attempt starts at the next URL.
//!
//! `https://` URLs verify the broker against [`ClientConfig::ca_file`] or the built-in roots;
//! a TLS refusal is [`Error::Tls`] and, like a 4xx, not retried.
//!
//! Topic, group, producer and member names are checked against the wire contract's rules
//! before anything is sent ([`Error::InvalidName`], never retried).
//!
//! A refusal (4xx) is returned at once as [`Error::Status`] with the problem's detail:
//! deciding what it means (a stale generation, an old seq) is the caller's job. The JSON
//! shapes are [`crate::wire`]'s, the retry mechanism [`crate::retry`]'s.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use broker_wire::{header, validate_member, validate_name, validate_producer, Problem};
use pipeline_common::shutdown::ShutdownFlag;

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::fetched::{Encoding, Fetched};
use crate::group::Membership;
use crate::route::{line_partitions, LeaderShare, Routes};
use crate::wire::{
    BatchAck, BatchWire, Idempotence, MembershipWire, OffsetsWire, PartitionOffset, ProduceAck,
    ProduceWire, TopicMetadata,
};
use crate::{BATCHES, NDJSON};

/// The broker client. Cheap to clone (the agent's connection pool and the leaders learned are
/// shared).
#[derive(Clone)]
pub struct BrokerClient {
    agent: ureq::Agent,
    config: ClientConfig,
    shutdown: ShutdownFlag,
    routes: Arc<Routes>,
}

/// A response that came back 2xx, reduced to what callers read.
struct Answer {
    status: u16,
    duplicate: bool,
    next_offset: Option<u64>,
    log_end_offset: Option<u64>,
    body: Vec<u8>,
}

/// One request, whichever broker it goes to.
struct Call<'a> {
    method: &'static str,
    /// The path and query, appended to a broker's URL.
    path: String,
    body: Option<(&'a str, &'a [u8])>,
    /// Added to the request timeout (a long poll's wait).
    extra_wait: Duration,
    accept: Option<&'a str>,
    /// Whether the request may be sent again after it may have reached a broker (a read, an
    /// idempotent write): then it runs under the retry policy.
    retrying: bool,
}

/// Which broker must serve a request.
enum Target<'a> {
    /// Any broker (topic calls).
    Any,
    /// The coordinator of this consumer group (a cluster names one per group; any broker
    /// of a cluster of one).
    Group(&'a str),
    /// The leader of this partition (binary batch produce, fetch).
    Partition { topic: &'a str, partition: u32 },
    /// The one leader of every partition an NDJSON produce's lines go to.
    Lines {
        topic: &'a str,
        body: &'a [u8],
        idempotence: Option<(&'a str, u64)>,
    },
}

/// What one broker made of a request.
enum Sent {
    Answer(Answer),
    /// 421: not the leader of the partition; `leader` is the one it names, if any.
    Misdirected {
        leader: Option<String>,
        error: Error,
    },
}

impl Sent {
    fn answer(self) -> Result<Answer> {
        match self {
            Sent::Answer(a) => Ok(a),
            Sent::Misdirected { error, .. } => Err(error),
        }
    }
}

/// How many times an NDJSON produce is split by leader anew when its lines turn out to span
/// leaders the client did not know of.
const MAX_SPLITS: u32 = 3;

/// How many 421 answers one attempt follows before giving up ([`Error::Misdirected`]): a
/// leader named by a 421 answers at once unless leadership moved meanwhile.
const MAX_HOPS: u32 = 3;

impl BrokerClient {
    pub fn new(config: ClientConfig) -> Self {
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(config.connect_timeout)
            .max_idle_connections_per_host(16);
        if let Some(ca) = &config.ca_file {
            agent = agent.tls_config(ca.client_config());
        }
        let agent = agent.build();
        let routes = Arc::new(Routes::new(config.bootstrap.clone()));
        BrokerClient {
            agent,
            config,
            shutdown: ShutdownFlag::new(),
            routes,
        }
    }

    /// Retry loops stop (with [`Error::Interrupted`]) once this flag is set.
    pub fn with_shutdown(mut self, shutdown: ShutdownFlag) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn shutdown_flag(&self) -> &ShutdownFlag {
        &self.shutdown
    }

    /// One HTTP exchange with the broker at `base`; error statuses become [`Error::Status`]
    /// with the problem's detail, a 421 [`Sent::Misdirected`].
    fn exchange_at(&self, base: &str, call: &Call<'_>) -> Result<Sent> {
        let url = format!("{base}{}", call.path);
        let method = call.method;
        let mut req = self
            .agent
            .request(method, &url)
            .timeout(self.config.request_timeout + call.extra_wait);
        if let Some(accept) = call.accept {
            req = req.set("Accept", accept);
        }
        if let Some(token) = &self.config.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match call.body {
            Some((content_type, bytes)) => req.set("Content-Type", content_type).send_bytes(bytes),
            None => req.call(),
        };
        match result {
            Ok(resp) => read_answer(&url, resp).map(Sent::Answer),
            Err(ureq::Error::Status(status, resp)) => {
                let (error, leader) = status_error(method, &url, status, resp);
                if status == 421 {
                    Ok(Sent::Misdirected { leader, error })
                } else {
                    Err(error)
                }
            }
            Err(ureq::Error::Transport(t)) => Err(match tls_refusal(&t) {
                Some(refusal) => Error::Tls {
                    method,
                    url,
                    reason: refusal.to_string(),
                },
                None => Error::Transport {
                    method,
                    url,
                    reason: t.to_string(),
                    // No connection (or no TLS session) was made: nothing reached a broker.
                    unsent: matches!(
                        t.kind(),
                        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns
                    ),
                },
            }),
        }
    }

    /// [`Self::exchange_at`] the first bootstrap URL that accepts a connection. A request
    /// that may have reached a broker is not sent to another here; when it is retried, the
    /// next attempt starts at the next URL.
    fn exchange_any(&self, call: &Call<'_>) -> Result<Sent> {
        let mut unreachable = None;
        for (at, base) in self.routes.bootstrap() {
            match self.exchange_at(base, call) {
                Err(e @ Error::Transport { unsent: true, .. }) => unreachable = Some(e),
                Err(e @ Error::Transport { .. }) => {
                    if call.retrying {
                        self.routes.avoid(at);
                    }
                    return Err(e);
                }
                other => {
                    self.routes.prefer(at);
                    return other;
                }
            }
        }
        Err(unreachable.unwrap_or_else(|| Error::Transport {
            method: call.method,
            url: call.path.clone(),
            reason: "no broker URL configured".into(),
            unsent: true,
        }))
    }

    /// `call` to `target`, under the retry policy when the call allows it, in one attempt
    /// otherwise (a request that a repeat could apply twice, or whose failure the caller
    /// tolerates).
    fn send(&self, call: &Call<'_>, target: Target<'_>) -> Result<Answer> {
        if call.retrying {
            let what = format!("{} {}", call.method, call.path);
            self.config
                .retry
                .run(&self.shutdown, &what, || self.attempt(call, &target))
        } else {
            self.attempt(call, &target)
        }
    }

    fn attempt(&self, call: &Call<'_>, target: &Target<'_>) -> Result<Answer> {
        match *target {
            // A view served by one broker of a cluster (a group's description, at its
            // coordinator): one 421 is followed.
            Target::Any => match self.exchange_any(call)? {
                Sent::Misdirected {
                    leader: Some(named),
                    ..
                } => self.exchange_at(&named, call)?.answer(),
                sent => sent.answer(),
            },
            Target::Group(group) => self.to_coordinator(call, group),
            Target::Partition { topic, partition } => self.to_partition(call, topic, partition),
            Target::Lines {
                topic,
                body,
                idempotence,
            } => self.to_lines(call, topic, body, idempotence),
        }
    }

    /// `call` to the leader of `topic`/`partition`: the one remembered, else any bootstrap
    /// URL, following a 421 to the leader it names (a 421 appended nothing, so a produce is
    /// safe to resend) up to [`MAX_HOPS`] times. A remembered leader that is unreachable or
    /// answers 421 is forgotten and the topic described again.
    fn to_partition(&self, call: &Call<'_>, topic: &str, partition: u32) -> Result<Answer> {
        let mut hops = 0;
        loop {
            let remembered = self.routes.leader(topic, partition);
            let sent = match &remembered {
                Some(leader) => match self.exchange_at(leader, call) {
                    Err(e @ Error::Transport { .. }) => {
                        self.routes.forget(topic, partition);
                        self.refresh(topic);
                        return Err(e);
                    }
                    other => other?,
                },
                None => self.exchange_any(call)?,
            };
            let (named, error) = match sent {
                Sent::Answer(a) => return Ok(a),
                Sent::Misdirected { leader, error } => (leader, error),
            };
            let Some(named) = named else {
                // The partition has no leader right now: nothing to follow.
                self.routes.forget(topic, partition);
                return Err(error);
            };
            hops += 1;
            if hops > MAX_HOPS {
                self.routes.forget(topic, partition);
                return Err(Error::Misdirected {
                    topic: topic.to_string(),
                    partition,
                    leader: named,
                    hops,
                });
            }
            if remembered.is_some() {
                // What this client knew is stale: ask the cluster.
                self.routes.forget(topic, partition);
                self.refresh(topic);
            }
            if self.routes.leader(topic, partition).is_none() {
                self.routes.remember(topic, partition, &named);
            }
            tracing::debug!(topic, partition, leader = %named, "421: sending to the leader");
        }
    }

    /// An NDJSON produce to the one leader of every partition its lines go to, when the
    /// client knows it; else to any bootstrap URL. After a 421 the topic is described once
    /// and the produce sent to the leader of all its lines, if there is one; otherwise (lines
    /// spanning leaders) it fails with [`Error::SpansLeaders`].
    fn to_lines(
        &self,
        call: &Call<'_>,
        topic: &str,
        body: &[u8],
        idempotence: Option<(&str, u64)>,
    ) -> Result<Answer> {
        let leader_of_lines = || {
            let count = self.routes.partition_count(topic)?;
            let partitions = line_partitions(body, count, idempotence)?;
            self.routes.leader_of_all(topic, &partitions)
        };
        let mut leader = leader_of_lines();
        let mut refreshed = false;
        loop {
            let sent = match &leader {
                Some(url) => match self.exchange_at(url, call) {
                    Err(e @ Error::Transport { .. }) => {
                        self.refresh(topic);
                        return Err(e);
                    }
                    other => other?,
                },
                None => self.exchange_any(call)?,
            };
            let error = match sent {
                Sent::Answer(a) => return Ok(a),
                Sent::Misdirected { error, .. } => error,
            };
            if !refreshed {
                refreshed = true;
                self.refresh(topic);
                leader = leader_of_lines();
                if leader.is_some() {
                    continue;
                }
            }
            // No one leader of all the lines, or the one found refused them too.
            return Err(Error::SpansLeaders {
                topic: topic.to_string(),
                detail: error.to_string(),
            });
        }
    }

    /// `call` to `group`'s coordinator: the one remembered, else any bootstrap URL, following
    /// a 421 to the coordinator it names (a 421 changed nothing) up to [`MAX_HOPS`] times. A
    /// remembered coordinator that is unreachable or answers 421 is forgotten.
    fn to_coordinator(&self, call: &Call<'_>, group: &str) -> Result<Answer> {
        let mut target = self.routes.coordinator(group);
        for _ in 0..=MAX_HOPS {
            let sent = match &target {
                Some(url) => match self.exchange_at(url, call) {
                    Err(e @ Error::Transport { .. }) => {
                        self.routes.forget_coordinator(group);
                        return Err(e);
                    }
                    other => other?,
                },
                None => self.exchange_any(call)?,
            };
            match sent {
                Sent::Answer(a) => return Ok(a),
                Sent::Misdirected {
                    leader: Some(named),
                    ..
                } => {
                    tracing::debug!(group, coordinator = %named, "421: sending to the coordinator");
                    self.routes.remember_coordinator(group, &named);
                    target = Some(named);
                }
                Sent::Misdirected {
                    leader: None,
                    error,
                } => {
                    self.routes.forget_coordinator(group);
                    return Err(error);
                }
            }
        }
        self.routes.forget_coordinator(group);
        Err(Error::Status {
            status: 421,
            method: call.method,
            url: call.path.clone(),
            detail: format!(
                "group {group}: more than {MAX_HOPS} brokers named another coordinator"
            ),
            log_bounds: None,
        })
    }

    /// Describes `topic` (`GET /v1/topics/{t}`, one pass over the bootstrap URLs) and takes
    /// the answer's leaders as the truth. Best effort: a failure leaves what was known.
    fn refresh(&self, topic: &str) {
        let call = Call {
            method: "GET",
            path: format!("/v1/topics/{}", enc(topic)),
            body: None,
            extra_wait: Duration::ZERO,
            accept: None,
            retrying: true,
        };
        match self
            .exchange_any(&call)
            .and_then(Sent::answer)
            .and_then(|a| decode::<TopicMetadata>(&call.path, &a.body))
        {
            Ok(meta) => self.routes.learn(&meta),
            Err(e) => tracing::debug!(topic, error = %e, "cannot describe the topic to route"),
        }
    }

    /// A call to any broker, under the retry policy.
    fn exchange_retrying(
        &self,
        method: &'static str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Answer> {
        self.send(&call(method, path, body, true), Target::Any)
    }

    /// `PUT /v1/topics/{t}`: creates the topic or finds it; `Ok(true)` when created. A topic
    /// that exists with another partition count is a 409 error.
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<bool> {
        validate_name("topic", topic)?;
        let body = serde_json::json!({ "partitions": partitions }).to_string();
        let path = format!("/v1/topics/{}", enc(topic));
        let answer =
            self.exchange_retrying("PUT", &path, Some(("application/json", body.as_bytes())))?;
        Ok(answer.status == 201)
    }

    /// `GET /v1/topics/{t}`.
    pub fn topic(&self, topic: &str) -> Result<TopicMetadata> {
        validate_name("topic", topic)?;
        let path = format!("/v1/topics/{}", enc(topic));
        let answer = self.exchange_retrying("GET", &path, None)?;
        decode(&path, &answer.body)
    }

    /// `POST /v1/topics/{t}/messages` with an NDJSON body (see [`push_record`]). With
    /// `idempotence` the request is retried until acknowledged; without, it is tried once.
    pub fn produce(
        &self,
        topic: &str,
        ndjson: &[u8],
        idempotence: Option<Idempotence<'_>>,
    ) -> Result<ProduceAck> {
        validate_name("topic", topic)?;
        let idem = idempotence.map(|i| (i.producer, i.seq));
        // Leaders move (a failover): a share that no longer has one leader is split again,
        // from the description its refusal made the client read.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = match self.routes.split_by_leader(topic, ndjson, idem) {
                // Shares before a failed one are stored: only an idempotent produce may be
                // sent again whole.
                Some(shares) if idempotence.is_none() => {
                    return self.produce_shares(topic, ndjson, shares, idempotence)
                }
                Some(shares) => self.produce_shares(topic, ndjson, shares, idempotence),
                None => self.produce_to_one(topic, ndjson, idempotence),
            };
            match sent {
                Err(Error::SpansLeaders { .. }) if attempts < MAX_SPLITS => continue,
                other => return other,
            }
        }
    }

    /// An NDJSON produce sent whole to one broker (the leader of all its lines, when known).
    fn produce_to_one(
        &self,
        topic: &str,
        ndjson: &[u8],
        idempotence: Option<Idempotence<'_>>,
    ) -> Result<ProduceAck> {
        let path = format!("/v1/topics/{}/messages", enc(topic));
        let target = Target::Lines {
            topic,
            body: ndjson,
            idempotence: idempotence.map(|i| (i.producer, i.seq)),
        };
        let (path, answer) = self.send_produce(path, (NDJSON, ndjson), idempotence, target)?;
        let wire: ProduceWire = decode(&path, &answer.body)?;
        Ok(ProduceAck {
            results: wire.results,
            duplicate: answer.duplicate,
        })
    }

    /// An NDJSON produce whose lines span partition leaders: each leader's share sent to it
    /// (with the same producer and seq), the answers put back in the body's line order. Not
    /// all-or-nothing across leaders: when a share fails, those before it are stored; an
    /// idempotent produce retried with the same seq completes it without storing them twice.
    fn produce_shares(
        &self,
        topic: &str,
        ndjson: &[u8],
        shares: Vec<LeaderShare>,
        idempotence: Option<Idempotence<'_>>,
    ) -> Result<ProduceAck> {
        let total: usize = shares.iter().map(|s| s.lines.len()).sum();
        let mut results: Vec<Option<PartitionOffset>> = vec![None; total];
        let mut duplicate = true;
        for share in shares {
            let ack = self.produce_to_one(topic, &share.body, idempotence)?;
            if ack.results.len() != share.lines.len() {
                return Err(Error::Decode {
                    url: format!("/v1/topics/{topic}/messages"),
                    reason: format!(
                        "{} lines sent to one leader, {} results back",
                        share.lines.len(),
                        ack.results.len()
                    ),
                });
            }
            duplicate &= ack.duplicate;
            for (i, r) in share.lines.into_iter().zip(ack.results) {
                results[i] = Some(r);
            }
        }
        let results = results
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Decode {
                url: format!("/v1/topics/{topic}/messages"),
                reason: format!("a line of the {}-byte body got no result", ndjson.len()),
            })?;
        Ok(ProduceAck { results, duplicate })
    }

    /// `POST /v1/topics/{t}/messages?partition=P` with one record batch in the
    /// `segments-format.md` layout (build it with [`encode_batch`]): the cheapest produce for
    /// the broker, which checks the framing, the CRC and that each value is one line of JSON
    /// (no routing of lines). Retried like [`Self::produce`].
    pub fn produce_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: &[u8],
        idempotence: Option<Idempotence<'_>>,
    ) -> Result<BatchAck> {
        validate_name("topic", topic)?;
        let path = format!("/v1/topics/{}/messages?partition={partition}", enc(topic));
        let target = Target::Partition { topic, partition };
        let (path, answer) = self.send_produce(path, (BATCHES, batch), idempotence, target)?;
        let wire: BatchWire = decode(&path, &answer.body)?;
        Ok(BatchAck {
            base_offset: wire.base_offset,
            record_count: wire.record_count,
            duplicate: answer.duplicate,
        })
    }

    /// POSTs a produce body to `path` plus the `idempotence` query parameters: retried until
    /// acknowledged when idempotent (the broker drops a repeat), tried once otherwise (a
    /// repeat would be appended twice), sent to `target`'s leader (a 421 appended nothing, so
    /// following one resends either kind). Returns the path as sent, for decoding errors.
    fn send_produce(
        &self,
        mut path: String,
        body: (&str, &[u8]),
        idempotence: Option<Idempotence<'_>>,
        target: Target<'_>,
    ) -> Result<(String, Answer)> {
        if let Some(id) = idempotence {
            validate_producer(id.producer)?;
            let joiner = if path.contains('?') { '&' } else { '?' };
            path.push_str(&format!(
                "{joiner}producer={}&seq={}",
                enc(id.producer),
                id.seq
            ));
        }
        let answer = self.send(
            &call("POST", &path, Some(body), idempotence.is_some()),
            target,
        )?;
        Ok((path, answer))
    }

    /// `GET /v1/topics/{t}/partitions/{p}/messages`: up to `max` messages from `offset`
    /// (NDJSON; with [`Encoding::Batches`] whole record batches, `max` not applying), waiting
    /// up to `wait` for the first when there is none (long poll).
    pub fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max: u32,
        wait: Duration,
        encoding: Encoding,
    ) -> Result<Fetched> {
        validate_name("topic", topic)?;
        let path = format!(
            "/v1/topics/{}/partitions/{partition}/messages?offset={offset}&max={max}&wait_ms={}",
            enc(topic),
            wait.as_millis()
        );
        let accept = match encoding {
            Encoding::Ndjson => NDJSON,
            Encoding::Batches => BATCHES,
        };
        let call = Call {
            extra_wait: wait,
            accept: Some(accept),
            ..call("GET", &path, None, true)
        };
        let answer = self
            .send(&call, Target::Partition { topic, partition })
            .map_err(|e| out_of_range(e, topic, partition, offset))?;
        Ok(Fetched {
            partition,
            offset,
            next_offset: answer.next_offset.unwrap_or(offset),
            log_end_offset: answer.log_end_offset.unwrap_or(offset),
            encoding,
            body: answer.body,
        })
    }

    /// `POST /v1/groups/{g}/members`: join; `session_timeout` is the broker's default if `None`.
    pub fn join(
        &self,
        group: &str,
        topic: &str,
        session_timeout: Option<Duration>,
    ) -> Result<Membership> {
        validate_name("group", group)?;
        validate_name("topic", topic)?;
        let mut body = serde_json::json!({ "topic": topic });
        if let Some(t) = session_timeout {
            body["session_timeout_ms"] = (t.as_millis() as u64).into();
        }
        let path = format!("/v1/groups/{}/members", enc(group));
        let body = body.to_string();
        let answer = self.send(
            &call(
                "POST",
                &path,
                Some(("application/json", body.as_bytes())),
                true,
            ),
            Target::Group(group),
        )?;
        membership(&path, &answer.body)
    }

    /// `POST /v1/groups/{g}/members/{m}/heartbeat`, one attempt (the heartbeat thread is the
    /// retry loop). A 404 means the member is gone and must rejoin.
    pub fn heartbeat(&self, group: &str, member_id: &str) -> Result<Membership> {
        validate_name("group", group)?;
        validate_member(member_id)?;
        let path = format!(
            "/v1/groups/{}/members/{}/heartbeat",
            enc(group),
            enc(member_id)
        );
        let answer = self.send(
            &call("POST", &path, Some(("application/json", b"{}")), false),
            Target::Group(group),
        )?;
        membership(&path, &answer.body)
    }

    /// `POST /v1/groups/{g}/offsets`, retried while the broker is unreachable. A stale
    /// generation or a partition not assigned to this member is refused with 409.
    pub fn commit(
        &self,
        group: &str,
        member: &Membership,
        topic: &str,
        offsets: &BTreeMap<u32, u64>,
    ) -> Result<()> {
        self.commit_with(group, member, topic, offsets, true)
    }

    /// [`Self::commit`] in one attempt, for commits that are only informative (the collector's
    /// offsets live in PostgreSQL; the broker's copy shows lag).
    pub fn commit_once(
        &self,
        group: &str,
        member: &Membership,
        topic: &str,
        offsets: &BTreeMap<u32, u64>,
    ) -> Result<()> {
        self.commit_with(group, member, topic, offsets, false)
    }

    fn commit_with(
        &self,
        group: &str,
        member: &Membership,
        topic: &str,
        offsets: &BTreeMap<u32, u64>,
        retrying: bool,
    ) -> Result<()> {
        validate_name("group", group)?;
        validate_name("topic", topic)?;
        let offsets: BTreeMap<String, u64> =
            offsets.iter().map(|(p, o)| (p.to_string(), *o)).collect();
        let body = serde_json::json!({
            "member_id": member.member_id,
            "generation": member.generation,
            "topic": topic,
            "offsets": offsets,
        })
        .to_string();
        let path = format!("/v1/groups/{}/offsets", enc(group));
        self.send(
            &call(
                "POST",
                &path,
                Some(("application/json", body.as_bytes())),
                retrying,
            ),
            Target::Group(group),
        )?;
        Ok(())
    }

    /// `GET /v1/groups/{g}/offsets?topic=t`: the committed offsets by partition.
    pub fn committed(&self, group: &str, topic: &str) -> Result<BTreeMap<u32, u64>> {
        validate_name("group", group)?;
        validate_name("topic", topic)?;
        let path = format!("/v1/groups/{}/offsets?topic={}", enc(group), enc(topic));
        let answer = self.send(&call("GET", &path, None, true), Target::Group(group))?;
        let wire: OffsetsWire = decode(&path, &answer.body)?;
        Ok(wire
            .offsets
            .into_iter()
            .filter_map(|(p, o)| p.parse().ok().map(|p| (p, o)))
            .collect())
    }

    /// `DELETE /v1/groups/{g}/members/{m}`, one attempt: leaving is a courtesy that makes the
    /// rebalance immediate; the session timeout does it otherwise.
    pub fn leave(&self, group: &str, member_id: &str) -> Result<()> {
        validate_name("group", group)?;
        validate_member(member_id)?;
        let path = format!("/v1/groups/{}/members/{}", enc(group), enc(member_id));
        self.send(&call("DELETE", &path, None, false), Target::Group(group))?;
        Ok(())
    }

    /// `GET` any path, decoded as JSON (`/v1/groups/{g}` and other views).
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let answer = self.exchange_retrying("GET", path, None)?;
        decode(path, &answer.body)
    }
}

/// The TLS error behind a transport failure, if the handshake refused the server (its
/// certificate not signed by a trusted CA, not for this host, expired; no common protocol; not
/// TLS at all): trying again cannot help, unlike a broker that is down. `ureq` wraps the rustls
/// error in an `io::Error`, whose `source()` skips it, hence the look inside.
fn tls_refusal(t: &ureq::Transport) -> Option<&rustls::Error> {
    let mut next = std::error::Error::source(t);
    while let Some(e) = next {
        let found = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if found.is_some() {
            return found;
        }
        next = e.source();
    }
    None
}

fn read_answer(url: &str, resp: ureq::Response) -> Result<Answer> {
    let header_u64 = |name: &str| resp.header(name).and_then(|v| v.trim().parse().ok());
    let status = resp.status();
    let duplicate = resp
        .header(header::DUPLICATE)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let next_offset = header_u64(header::NEXT_OFFSET);
    let log_end_offset = header_u64(header::LOG_END_OFFSET);
    let mut body = Vec::new();
    resp.into_reader()
        .read_to_end(&mut body)
        .map_err(|e| Error::Transport {
            method: "read",
            url: url.to_string(),
            reason: e.to_string(),
            unsent: false,
        })?;
    Ok(Answer {
        status,
        duplicate,
        next_offset,
        log_end_offset,
        body,
    })
}

/// The error of an error status, and the leader a 421 names.
fn status_error(
    method: &'static str,
    url: &str,
    status: u16,
    resp: ureq::Response,
) -> (Error, Option<String>) {
    let text = resp.into_string().unwrap_or_default();
    // Not every error answer is the broker's (a proxy's HTML page): then the text is the detail.
    let problem: Problem = serde_json::from_str(&text).unwrap_or_default();
    let log_bounds = problem.log_bounds();
    let leader = problem.leader_url.filter(|u| !u.is_empty());
    let detail = if problem.detail.is_empty() {
        text
    } else {
        problem.detail
    };
    let error = Error::Status {
        method,
        url: url.to_string(),
        status,
        detail,
        log_bounds,
    };
    (error, leader.map(|u| u.trim_end_matches('/').to_string()))
}

fn call<'a>(
    method: &'static str,
    path: &str,
    body: Option<(&'a str, &'a [u8])>,
    retrying: bool,
) -> Call<'a> {
    Call {
        method,
        path: path.to_string(),
        body,
        extra_wait: Duration::ZERO,
        accept: None,
        retrying,
    }
}

/// Turns a 416 into [`Error::OffsetOutOfRange`] with the partition's bounds, read from the
/// problem's `log_start_offset`/`log_end_offset` fields.
fn out_of_range(e: Error, topic: &str, partition: u32, offset: u64) -> Error {
    match e {
        Error::Status {
            status: 416,
            log_bounds: Some((log_start, log_end)),
            ..
        } => Error::OffsetOutOfRange {
            topic: topic.to_string(),
            partition,
            offset,
            log_start,
            log_end,
        },
        e => e,
    }
}

fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        url: path.to_string(),
        reason: e.to_string(),
    })
}

fn membership(path: &str, body: &[u8]) -> Result<Membership> {
    let wire: MembershipWire = decode(path, body)?;
    Ok(wire.into())
}

/// Percent-encodes a path segment or query value (names are usually plain already).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_encoded_in_paths() {
        assert_eq!(enc("telemetry.shards"), "telemetry.shards");
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn a_416_becomes_out_of_range_with_the_log_bounds() {
        let e = Error::Status {
            method: "GET",
            url: "u".into(),
            status: 416,
            detail: "gone".into(),
            log_bounds: Some((100, 250)),
        };
        match out_of_range(e, "t", 3, 5) {
            Error::OffsetOutOfRange {
                log_start, log_end, ..
            } => assert_eq!((log_start, log_end), (100, 250)),
            other => panic!("{other:?}"),
        }
    }
}
