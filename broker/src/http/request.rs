//! Request and response plumbing shared by the handlers: query parameters, bodies with a
//! size limit, content types, JSON answers.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::buffers;
use crate::error::{BrokerError, Result};

pub type Body = Full<Bytes>;

pub use broker_wire::media::{BATCH, NDJSON};

/// Decoded query parameters, in order.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Query(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A non-negative integer parameter, `None` when absent.
    pub fn u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    BrokerError::BadRequest(format!(
                        "query parameter {key} must be a non-negative integer, not {v:?}"
                    ))
                })
            })
            .transpose()
    }
}

/// `%XX` and `+` decoding; malformed escapes are kept as they are (names are validated later).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the whole body, refusing (413) more than `max` bytes.
pub async fn read_body(body: Incoming, headers: &HeaderMap, max: usize) -> Result<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|&len| len > max as u64) {
        // A modest overrun is read and dropped so the 413 reaches the client on a healthy
        // connection; closing on unread data makes the kernel reset it under the answer.
        if len <= DRAIN_LIMIT {
            drain(body).await;
        }
        return Err(BrokerError::BodyTooLarge { max });
    }
    if let Some(len) = declared.filter(|&len| len >= POOLED_BODY_BYTES) {
        // len <= max, a usize.
        return read_pooled(body, len as usize, max).await;
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BrokerError::BodyTooLarge { max })
        }
        Err(e) => Err(BrokerError::BadRequest(format!(
            "cannot read the body: {e}"
        ))),
    }
}

/// Bodies of at least this many bytes (by their `Content-Length`: a produce's batch) are
/// read into a reused buffer (see `buffers`): collecting their chunks into a fresh
/// allocation page-faulted each page of it.
const POOLED_BODY_BYTES: u64 = 64 * 1024;

/// The most of a body's announced length reserved before its bytes arrive.
const RESERVE_MAX: usize = 8 << 20;

/// Reads a body whose `Content-Length` is `len` (at most `max`, checked by the caller) into
/// a pooled buffer, handed on as `Bytes` that give it back to the pool once the request is
/// done with. Still refuses more than `max` bytes: the header is the client's word, not the
/// framing (a chunked body is not bounded by it).
async fn read_pooled(mut body: Incoming, len: usize, max: usize) -> Result<Bytes> {
    let mut buf = buffers::take();
    let out = buf.as_mut_vec();
    // Capped: a client announcing the limit and sending little gets no more reserved.
    out.reserve(len.min(RESERVE_MAX));
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| BrokerError::BadRequest(format!("cannot read the body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > max {
                return Err(BrokerError::BodyTooLarge { max });
            }
            out.extend_from_slice(data);
        }
    }
    Ok(buf.into_bytes())
}

/// Largest oversized body still read (and dropped) before answering 413.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

async fn drain(mut body: Incoming) {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return;
        }
    }
}

/// Parses a JSON request body.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| BrokerError::BadRequest(format!("invalid JSON body: {e}")))
}

/// The media type of a header without its parameters, lower-cased.
pub fn media_type(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// Whether the client asked for binary batches.
pub fn accepts_batch(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(BATCH)
        })
}

pub fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn json_response(status: StatusCode, value: &impl Serialize) -> Result<Response<Body>> {
    let body = serde_json::to_vec(value).map_err(|e| BrokerError::Internal(e.to_string()))?;
    Ok(bytes_response(status, "application/json", body))
}

pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Adds a numeric header.
pub fn set_number(response: &mut Response<Body>, name: &'static str, value: u64) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded_and_numbers_checked() {
        let q = Query::parse(Some("producer=a%3Ab&seq=12&x&bad=1x"));
        assert_eq!(q.get("producer"), Some("a:b"));
        assert_eq!(q.u64("seq").ok().flatten(), Some(12));
        assert_eq!(q.get("x"), Some(""));
        assert!(q.u64("bad").is_err());
        assert_eq!(q.u64("missing").ok().flatten(), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
