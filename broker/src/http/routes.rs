//! Routing by `(method, path)`: which handler answers, the 404 and 405 (broker errors like any
//! other, answered by [`super::error`]), readiness gating, the ops endpoints and per-route
//! request metrics. In a cluster, `/v1/raft/*` goes to the metadata node (`broker-meta`'s
//! handler, with its own body limit) before anything else. Handlers live in [`super::topics`] and [`super::groups`]; the bearer token
//! is checked before any of this, on the request head, by the serving module
//! (`pipeline_common::serve`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use pipeline_common::ops as answers;

use super::request::{read_body, Body};
use super::{error, groups, replica, topics};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::metrics as m;

/// A matched path, borrowing its parameters from the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Healthz,
    Readyz,
    Metrics,
    Topics,
    Topic(&'a str),
    Produce(&'a str),
    Fetch(&'a str, &'a str),
    /// A follower asking where a leader epoch ends (topic, partition, epoch).
    EpochEnd(&'a str, &'a str, &'a str),
    Group(&'a str),
    Join(&'a str),
    Member(&'a str, &'a str),
    Heartbeat(&'a str, &'a str),
    MemberFetch(&'a str, &'a str),
    Offsets(&'a str),
    Cluster,
    /// `/v1/raft/*`: the metadata RPCs between clustered brokers.
    Raft,
    NotFound,
}

impl<'a> Route<'a> {
    pub fn parse(path: &'a str) -> Route<'a> {
        if broker_meta::server::is_raft_path(path) {
            return Route::Raft;
        }
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        match segments.as_slice() {
            ["healthz"] => Route::Healthz,
            ["readyz"] => Route::Readyz,
            ["metrics"] => Route::Metrics,
            ["v1", "topics"] => Route::Topics,
            ["v1", "topics", t] => Route::Topic(t),
            ["v1", "topics", t, "messages"] => Route::Produce(t),
            ["v1", "topics", t, "partitions", p, "messages"] => Route::Fetch(t, p),
            ["v1", "topics", t, "partitions", p, "epochs", e] => Route::EpochEnd(t, p, e),
            ["v1", "groups", g] => Route::Group(g),
            ["v1", "groups", g, "members"] => Route::Join(g),
            ["v1", "groups", g, "members", mem] => Route::Member(g, mem),
            ["v1", "groups", g, "members", mem, "heartbeat"] => Route::Heartbeat(g, mem),
            ["v1", "groups", g, "members", mem, "messages"] => Route::MemberFetch(g, mem),
            ["v1", "groups", g, "offsets"] => Route::Offsets(g),
            ["v1", "cluster"] => Route::Cluster,
            _ => Route::NotFound,
        }
    }

    /// The methods the route declares.
    pub fn methods(&self) -> &'static [Method] {
        const GET: &[Method] = &[Method::GET, Method::HEAD];
        const POST: &[Method] = &[Method::POST];
        match self {
            Route::Healthz | Route::Readyz | Route::Metrics => GET,
            Route::Topics | Route::Fetch(..) | Route::Group(_) | Route::MemberFetch(..) => GET,
            Route::Cluster | Route::EpochEnd(..) => GET,
            // broker-meta's handler answers each RPC's method itself.
            Route::Raft => &[Method::GET, Method::POST],
            Route::Topic(_) => &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
            Route::Produce(_) | Route::Join(_) | Route::Heartbeat(..) => POST,
            Route::Member(..) => &[Method::DELETE],
            Route::Offsets(_) => &[Method::GET, Method::HEAD, Method::POST],
            Route::NotFound => &[],
        }
    }

    /// The `route` label of the request metrics (bounded: never a topic name).
    pub fn label(&self) -> &'static str {
        match self {
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::Topics => "topics",
            Route::Topic(_) => "topic",
            Route::Produce(_) => "produce",
            Route::Fetch(..) => "fetch",
            Route::EpochEnd(..) => "epoch_end",
            Route::Group(_) => "group",
            Route::Join(_) => "join",
            Route::Member(..) => "leave",
            Route::Heartbeat(..) => "heartbeat",
            Route::MemberFetch(..) => "group_fetch",
            Route::Offsets(_) => "offsets",
            Route::Cluster => "cluster",
            Route::Raft => "raft",
            Route::NotFound => "not_found",
        }
    }

    /// The consumer group a route is about.
    fn group(&self) -> Option<&'a str> {
        match *self {
            Route::Group(g)
            | Route::Join(g)
            | Route::Member(g, _)
            | Route::Heartbeat(g, _)
            | Route::MemberFetch(g, _)
            | Route::Offsets(g) => Some(g),
            _ => None,
        }
    }

    fn is_ops(&self) -> bool {
        matches!(self, Route::Healthz | Route::Readyz | Route::Metrics)
    }
}

/// Answers one request; never fails (errors become problem+json).
pub async fn handle(broker: Arc<Broker>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let route = Route::parse(&path);
    // Every body is read before anything can refuse the request: answering while the client
    // is still sending would make the kernel reset the connection under the answer.
    let (parts, body) = req.into_parts();
    let max_body = match route {
        // Raft's own bound: a snapshot chunk is about 4 MiB of JSON, whatever clients may send.
        Route::Raft => broker_meta::server::MAX_BODY_BYTES,
        _ => broker.config.max_body_bytes,
    };
    let response = match read_body(body, &parts.headers, max_body).await {
        Ok(body) => respond(&broker, route, &path, Request::from_parts(parts, body)).await,
        Err(e) => Err(e),
    };
    let response = response.unwrap_or_else(|e| error::into_response(&e));
    m::request(route.label(), response.status().as_u16(), started.elapsed());
    response
}

async fn respond(
    broker: &Arc<Broker>,
    route: Route<'_>,
    path: &str,
    req: Request<Bytes>,
) -> Result<Response<Body>> {
    if route == Route::Raft {
        // Without --peers there is no metadata node: the path is unknown like any other.
        return match &broker.cluster {
            Some(cluster) => Ok(broker_meta::server::handle(&cluster.node, req).await),
            None => Err(BrokerError::NoRoute(path.to_string())),
        };
    }
    if route == Route::NotFound {
        return Err(BrokerError::NoRoute(path.to_string()));
    }
    if !route.methods().contains(req.method()) {
        return Err(BrokerError::MethodNotAllowed {
            method: req.method().to_string(),
            allowed: allow_header(route.methods()),
        });
    }
    if route.is_ops() {
        return Ok(ops(broker, route));
    }
    if !broker.readiness.is_ready() {
        return Err(BrokerError::NotReady);
    }
    let method = req.method().clone();
    if let (Some(cluster), Some(group)) = (&broker.cluster, route.group()) {
        // A group lives at its coordinator; a join names one for a new group.
        cluster
            .check_coordinates(group, matches!(route, Route::Join(_)))
            .await?;
    }
    match route {
        Route::Topics => topics::list(broker),
        Route::Topic(t) if method == Method::PUT => topics::create(broker, t, &req).await,
        Route::Topic(t) if method == Method::DELETE => topics::delete(broker, t).await,
        Route::Topic(t) => topics::describe(broker, t, req.headers()),
        Route::Produce(t) => topics::produce(broker, t, &req).await,
        Route::Fetch(t, p) => topics::fetch(broker, t, p, &req).await,
        Route::EpochEnd(t, p, e) => replica::epoch_end(broker, t, p, e, &req),
        Route::Group(g) => groups::describe(broker, g),
        Route::Join(g) => groups::join(broker, g, &req).await,
        Route::Member(g, mem) => groups::leave(broker, g, mem),
        Route::Heartbeat(g, mem) => groups::heartbeat(broker, g, mem),
        Route::MemberFetch(g, mem) => groups::fetch(broker, g, mem, &req).await,
        Route::Offsets(g) if method == Method::POST => groups::commit(broker, g, &req).await,
        Route::Offsets(g) => groups::offsets(broker, g, req.uri().query()),
        Route::Cluster => topics::cluster(broker),
        Route::Healthz | Route::Readyz | Route::Metrics | Route::Raft | Route::NotFound => {
            Err(BrokerError::NoRoute(path.to_string()))
        }
    }
}

/// The `Allow` header's value for a route's methods.
fn allow_header(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn ops(broker: &Broker, route: Route<'_>) -> Response<Body> {
    match route {
        Route::Readyz => answers::readyz(match broker.readiness.is_ready() {
            // In a cluster, also a known Raft leader and this broker's membership applied.
            true => broker.cluster.as_ref().map_or(Ok(()), |c| c.ready()),
            false => Err("recovering logs"),
        }),
        Route::Metrics => {
            groups::refresh_metrics(broker);
            answers::metrics()
        }
        _ => answers::healthz(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_and_parameters_are_borrowed() {
        assert_eq!(
            Route::parse("/v1/topics/t/partitions/3/messages"),
            Route::Fetch("t", "3")
        );
        assert_eq!(
            Route::parse("/v1/groups/g/members/m/heartbeat"),
            Route::Heartbeat("g", "m")
        );
        assert_eq!(Route::parse("/v1/topics/t/"), Route::NotFound);
        assert_eq!(Route::parse("/nope"), Route::NotFound);
    }
}
