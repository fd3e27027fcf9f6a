//! The client side of the Raft RPCs: openraft's [`RaftNetworkFactory`] and [`RaftNetwork`]
//! over HTTP/1, and the POST helper that forwarding a proposal uses too.
//!
//! Owns the wire form of the metadata RPCs, which the `server` module answers:
//!
//! | path | request body | answer body |
//! | --- | --- | --- |
//! | `POST /v1/raft/append` | `AppendEntriesRequest` | `Result<AppendEntriesResponse, RaftError>` |
//! | `POST /v1/raft/vote` | `VoteRequest` | `Result<VoteResponse, RaftError>` |
//! | `POST /v1/raft/snapshot` | `InstallSnapshotRequest` (one chunk) | `Result<InstallSnapshotResponse, RaftError<InstallSnapshotError>>` |
//! | `POST /v1/raft/propose` | `Command` | `Result<ApplyResult, String>` |
//! | `GET /v1/raft/metadata` | — | `Metadata` (the answering node's applied copy) |
//!
//! All bodies are JSON (the types are openraft's own serde forms). A Raft-level refusal is a
//! `200` carrying `Err`; a non-`200` status means the request never reached Raft. Snapshots
//! go in chunks (openraft's default `full_snapshot`), each a bounded request.
//!
//! Plain `http://` only: the peers' URLs are the brokers' in-cluster addresses. When the
//! brokers require a bearer token, every RPC carries it (`Authorization`, see [`Rpc`]).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::state::NodeId;
use crate::TypeConfig;

pub(crate) const APPEND: &str = "/v1/raft/append";
pub(crate) const VOTE: &str = "/v1/raft/vote";
pub(crate) const SNAPSHOT: &str = "/v1/raft/snapshot";
pub(crate) const PROPOSE: &str = "/v1/raft/propose";
pub(crate) const METADATA: &str = "/v1/raft/metadata";

/// The pooled HTTP/1 client of the metadata RPCs.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new client; connections are kept alive between RPCs (heartbeats are frequent).
pub fn http_client(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        // The timer is what makes the idle timeout work.
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// The HTTP client of the metadata RPCs and the `Authorization` header every RPC carries
/// (the brokers' bearer token, when they require one).
#[derive(Clone)]
pub struct Rpc {
    pub client: HttpClient,
    pub authorization: Option<http::HeaderValue>,
}

impl Rpc {
    /// A client sending `token` (if any) as `Authorization: Bearer <token>`; a token that
    /// cannot be a header value is refused.
    pub fn new(client: HttpClient, token: Option<&str>) -> crate::Result<Rpc> {
        let authorization = token
            .map(|t| {
                let mut v = http::HeaderValue::try_from(format!("Bearer {t}")).map_err(|_| {
                    crate::MetaError::Raft("the token is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                Ok::<_, crate::MetaError>(v)
            })
            .transpose()?;
        Ok(Rpc {
            client,
            authorization,
        })
    }
}

/// Why a POST got no decodable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// No connection could be made: the peer is down (openraft backs off).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The request was sent but no usable answer came back.
    #[error("{0}")]
    Failed(String),
}

/// POSTs `body` as JSON to `base` + `path` and decodes the JSON answer, within `timeout`.
pub(crate) async fn post<Req: Serialize, Resp: DeserializeOwned>(
    rpc: &Rpc,
    base: &str,
    path: &str,
    body: &Req,
    timeout: Duration,
) -> Result<Resp, PostError> {
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let json = serde_json::to_vec(body).map_err(|e| PostError::Failed(format!("encoding: {e}")))?;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(auth) = &rpc.authorization {
        req = req.header(http::header::AUTHORIZATION, auth.clone());
    }
    let req = req
        .body(Full::new(Bytes::from(json)))
        .map_err(|e| PostError::Failed(format!("{url}: {e}")))?;
    let exchange = async {
        let resp = rpc.client.request(req).await.map_err(|e| {
            if e.is_connect() {
                PostError::Unreachable(format!("{url}: {e}"))
            } else {
                PostError::Failed(format!("{url}: {e}"))
            }
        })?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| PostError::Failed(format!("{url}: reading the answer: {e}")))?
            .to_bytes();
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            return Err(PostError::Failed(format!("{url}: {status}: {text}")));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| PostError::Failed(format!("{url}: decoding the answer: {e}")))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(PostError::Failed(format!(
            "{url}: no answer within {timeout:?}"
        ))),
    }
}

/// Makes a [`PeerClient`] per peer; openraft asks for one per replication stream.
#[derive(Clone)]
pub struct Network {
    rpc: Rpc,
}

impl Network {
    pub fn new(rpc: Rpc) -> Network {
        Network { rpc }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            rpc: self.rpc.clone(),
            target,
            url: node.addr.clone(),
        }
    }
}

/// The RPCs to one peer, at the URL its membership entry names.
pub struct PeerClient {
    rpc: Rpc,
    target: NodeId,
    url: String,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        body: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> =
            post(&self.rpc, &self.url, path, body, option.hard_ttl())
                .await
                .map_err(|e| match e {
                    PostError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                    PostError::Failed(_) => RPCError::Network(NetworkError::new(&e)),
                })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.call(APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call(VOTE, &rpc, &option).await
    }
}
