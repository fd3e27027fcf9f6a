//! The server side of the metadata RPCs: [`handle`] answers `/v1/raft/*` for a [`MetaNode`].
//!
//! The broker's HTTP server reads a request's body and hands requests under `/v1/raft/` to
//! [`handle`]; [`serve`] is a minimal standalone server doing just that, for tests and tools.
//! The wire forms are the `network` module's.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::MetaError;
use crate::network::{APPEND, METADATA, PROPOSE, SNAPSHOT, VOTE};
use crate::node::{ForwardRefusal, MetaNode};
use crate::state::Command;

/// The largest request body [`serve`] reads (a snapshot chunk is at most openraft's 3 MiB
/// default chunk plus JSON overhead).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Whether `path` is one [`handle`] answers.
pub fn is_raft_path(path: &str) -> bool {
    path.starts_with("/v1/raft/")
}

/// Answers one metadata RPC. Never fails: a bad request is a `400`, an unknown path a `404`.
pub async fn handle(node: &MetaNode, req: Request<Bytes>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let method = req.method();
    let body = req.body();
    let raft = node.raft();
    match (path, method) {
        (APPEND, &Method::POST) => match decode(body) {
            Ok(rpc) => json(&raft.append_entries(rpc).await),
            Err(e) => bad_request(e),
        },
        (VOTE, &Method::POST) => match decode(body) {
            Ok(rpc) => json(&raft.vote(rpc).await),
            Err(e) => bad_request(e),
        },
        (SNAPSHOT, &Method::POST) => match decode(body) {
            Ok(rpc) => json(&raft.install_snapshot(rpc).await),
            Err(e) => bad_request(e),
        },
        (PROPOSE, &Method::POST) => match decode::<Command>(body) {
            Ok(command) => {
                let answer = match node.propose_here(command).await {
                    Ok(r) => Ok(r),
                    Err(MetaError::NotLeader { .. }) => Err(ForwardRefusal::NotLeader),
                    Err(e) => Err(ForwardRefusal::Failed(e.to_string())),
                };
                json(&answer)
            }
            Err(e) => bad_request(e),
        },
        (METADATA, &Method::GET) => json(&node.metadata()),
        (APPEND | VOTE | SNAPSHOT | PROPOSE | METADATA, _) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "no such metadata RPC"),
    }
}

fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, serde_json::Error> {
    serde_json::from_slice(body)
}

fn bad_request(e: serde_json::Error) -> Response<Full<Bytes>> {
    text(StatusCode::BAD_REQUEST, &format!("bad request body: {e}"))
}

fn json<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(b) => respond(StatusCode::OK, "application/json", b),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding the answer: {e}"),
        ),
    }
}

fn text(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", msg.as_bytes().to_vec())
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// A running [`serve`]; stopping it (or dropping it) closes the listener and every
/// connection.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves only the metadata RPCs of `node` on `listener` (HTTP/1).
pub fn serve(listener: TcpListener, node: MetaNode) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // The connections live in the accept loop's set: aborting the loop drops them all.
        let mut connections = JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metadata server accept");
                        continue;
                    }
                },
                Some(_) = connections.join_next() => continue,
            };
            let node = node.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let node = node.clone();
                async move { Ok::<_, Infallible>(read_and_handle(&node, req).await) }
            });
            connections.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Server { addr, task })
}

async fn read_and_handle(node: &MetaNode, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(body) => handle(node, Request::from_parts(parts, body.to_bytes())).await,
        Err(e) => text(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")),
    }
}
