//! The requests one broker sends another for replication: a follower's fetch, the leader
//! epoch lookup a follower truncates by, and the controller's health probe. Plain HTTP/1 on
//! the metadata RPCs' pooled client, carrying the brokers' bearer token.
//!
//! The wire side (what the leader answers) is the fetch handler's and `PROTOCOL.md`'s
//! ("Replication"); this module only builds requests and reads answers.

use std::time::Duration;

use broker_meta::network::Rpc;
use broker_meta::NodeId;
use broker_wire::problem::Problem;
use broker_wire::{header as wire_header, media};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use serde::{Deserialize, Serialize};

use crate::buffers::{self, Pooled};

/// The most of an answer's announced length reserved up front (a fetch answer is at most
/// the fetch's byte limit plus one batch; anything longer grows as it arrives).
const RESERVE_MAX: usize = 16 << 20;

/// Why a request to a peer brought no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The leader's log does not hold the offset asked (a 416): the follower diverged or fell
    /// behind the leader's retention. `leader_start`: where the leader's log starts, as its
    /// answer says.
    #[error("{url}: offset out of the leader's log (it starts at {leader_start:?})")]
    OutOfRange {
        url: String,
        leader_start: Option<u64>,
    },
    #[error("{url}: {status}: {text}")]
    Status {
        url: String,
        status: StatusCode,
        text: String,
    },
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
}

/// A follower fetch's answer: the leader's batches from the offset asked, and its high
/// watermark.
pub struct Fetched {
    /// In a reused buffer (see `buffers`), back in the pool when dropped.
    pub batches: Pooled,
    pub high_watermark: u64,
}

/// `GET …/epochs/{e}`: where the largest epoch `≤ e` ends in the leader's log (`epoch`
/// `None`: its log holds no such epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEnd {
    pub epoch: Option<u32>,
    pub end_offset: u64,
}

/// A broker's client for its peers.
#[derive(Clone)]
pub struct Peers {
    rpc: Rpc,
    me: NodeId,
}

impl Peers {
    pub fn new(rpc: Rpc, me: NodeId) -> Peers {
        Peers { rpc, me }
    }

    /// Fetches `topic`/`partition` from `offset` as this broker's replica at `epoch`,
    /// long-polling up to `wait`.
    pub async fn fetch(
        &self,
        leader_url: &str,
        topic: &str,
        partition: u32,
        offset: u64,
        epoch: u32,
        wait: Duration,
    ) -> Result<Fetched, PeerError> {
        let url = format!(
            "{}/v1/topics/{topic}/partitions/{partition}/messages?offset={offset}&replica={}&leader_epoch={epoch}&wait_ms={}",
            leader_url.trim_end_matches('/'),
            self.me,
            wait.as_millis()
        );
        let (status, headers, body) = self.get(&url, wait + Duration::from_secs(5)).await?;
        match status {
            StatusCode::OK => {
                let high_watermark = headers
                    .get(wire_header::HIGH_WATERMARK)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| PeerError::Failed {
                        url: url.clone(),
                        reason: "the answer has no high watermark".into(),
                    })?;
                Ok(Fetched {
                    batches: body,
                    high_watermark,
                })
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let problem: Option<Problem> = serde_json::from_slice(&body).ok();
                Err(PeerError::OutOfRange {
                    url,
                    leader_start: problem.and_then(|p| p.log_start_offset),
                })
            }
            status => Err(status_error(url, status, &body)),
        }
    }

    /// Asks the leader of `leader_epoch` where `epoch` ends in its log.
    pub async fn epoch_end(
        &self,
        leader_url: &str,
        topic: &str,
        partition: u32,
        epoch: u32,
        leader_epoch: u32,
    ) -> Result<EpochEnd, PeerError> {
        let url = format!(
            "{}/v1/topics/{topic}/partitions/{partition}/epochs/{epoch}?leader_epoch={leader_epoch}",
            leader_url.trim_end_matches('/')
        );
        self.get_json(url).await
    }

    /// The metadata as the broker at `url` has applied it (the Raft leader's is current).
    pub async fn metadata(&self, url: &str) -> Result<broker_meta::Metadata, PeerError> {
        self.get_json(format!("{}/v1/raft/metadata", url.trim_end_matches('/')))
            .await
    }

    /// A `GET` whose `200` answer is decoded from JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: String) -> Result<T, PeerError> {
        let (status, _, body) = self.get(&url, Duration::from_secs(5)).await?;
        if status != StatusCode::OK {
            return Err(status_error(url, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| PeerError::Failed {
            url,
            reason: format!("decoding the answer: {e}"),
        })
    }

    /// Whether the broker at `url` answers its liveness probe within `timeout`.
    pub async fn is_alive(&self, url: &str, timeout: Duration) -> bool {
        let url = format!("{}/healthz", url.trim_end_matches('/'));
        matches!(self.get(&url, timeout).await, Ok((StatusCode::OK, _, _)))
    }

    /// A `GET` whose answer's body is read into a reused buffer: a fetch answer is hundreds
    /// of KiB, in many chunks, and collecting them into a fresh allocation each time cost
    /// about a tenth of a follower's CPU (see `buffers`).
    async fn get(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<(StatusCode, http::HeaderMap, Pooled), PeerError> {
        let failed = |reason: String| PeerError::Failed {
            url: url.to_string(),
            reason,
        };
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(url)
            .header(http::header::ACCEPT, media::BATCH);
        if let Some(auth) = &self.rpc.authorization {
            req = req.header(http::header::AUTHORIZATION, auth.clone());
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| failed(e.to_string()))?;
        let exchange = async {
            let resp = self
                .rpc
                .client
                .request(req)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let (parts, mut body) = resp.into_parts();
            let mut buf = buffers::take();
            let out = buf.as_mut_vec();
            // The exact length when the leader sent one (a fetch answer does): one allocation
            // at most, and none once the buffer has grown to the usual answer.
            // Capped: the length is the peer's word, not yet the bytes.
            if let Some(len) = body.size_hint().exact() {
                out.reserve(usize::try_from(len).unwrap_or(0).min(RESERVE_MAX));
            }
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| failed(format!("reading the answer: {e}")))?;
                if let Some(data) = frame.data_ref() {
                    out.extend_from_slice(data);
                }
            }
            Ok((parts.status, parts.headers, buf))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(failed(format!("no answer within {timeout:?}"))))
    }
}

fn status_error(url: String, status: StatusCode, body: &[u8]) -> PeerError {
    PeerError::Status {
        url,
        status,
        text: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}
