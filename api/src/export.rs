//! Export: a whole window in one streamed answer, as CSV or NDJSON, chosen by `Accept`.
//!
//! The window is read page by page with the same cursor the JSON pages use (so each page
//! costs what the first does, and compacted days are merged in the same way); each page is
//! encoded on the blocking thread that read it and handed to the response body through a
//! small bounded channel. Memory stays at a few pages whatever the window's size, a slow
//! client slows the reads down instead of piling pages up, and a client that goes away stops
//! them. Each page takes a pooled connection only while it is read, so an export does not
//! hold one for its whole length. A failure half-way ends the body with an error: hyper then
//! cuts the connection, and a client never takes a truncated export for a whole one.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::db::{self, Cost};
use crate::error::ApiError;
use crate::handlers::{full, BodyError, HttpResponse};
use crate::model::{format_ts, StepSeries};
use crate::params::Window;
use crate::server::AppState;
use store::read::{Cursor, StoredPoint};

/// Points per page read for an export.
const EXPORT_PAGE: u32 = 10_000;
/// Pages encoded ahead of the client.
const PAGES_AHEAD: usize = 2;
/// The CSV header of a points export.
const POINTS_HEADER: &[&str] = &[
    "ts",
    "metric",
    "value",
    "source_ts",
    "hostname",
    "container",
    "pod",
    "namespace",
    "labels",
];

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Ndjson,
}

impl Format {
    /// The first of `Accept`'s media types this API serves (`*/*` and anything unknown mean
    /// JSON, so browsers and curl get JSON).
    pub fn negotiate(headers: &HeaderMap) -> Format {
        let accepted = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter(|item| !item.contains("q=0") || item.contains("q=0."))
            .map(|item| {
                item.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        for media in accepted {
            match media.as_str() {
                "text/csv" => return Format::Csv,
                "application/x-ndjson" | "application/ndjson" => return Format::Ndjson,
                "application/json" | "*/*" | "application/*" => return Format::Json,
                _ => {}
            }
        }
        Format::Json
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// Every point of `window` (its paging ignored), streamed. The first page is read before the
/// answer starts, so an unknown GPU is still a 404.
pub async fn window(
    state: &AppState,
    id: String,
    window: Window,
    format: Format,
) -> Result<HttpResponse, ApiError> {
    let mut window = window;
    window.limit = EXPORT_PAGE;
    window.offset = 0;
    let first = read_page(state, &id, &window, format, true).await?;
    let (tx, rx) = mpsc::channel(PAGES_AHEAD);
    let state = state.clone();
    tokio::spawn(async move {
        let (bytes, mut next) = first;
        if tx.send(Ok(bytes)).await.is_err() {
            return;
        }
        while let Some(cursor) = next {
            window.cursor = Some(cursor);
            match read_page(&state, &id, &window, format, false).await {
                Ok((bytes, after)) => {
                    if tx.send(Ok(bytes)).await.is_err() {
                        return; // the client went away
                    }
                    next = after;
                }
                Err(e) => {
                    tracing::warn!(error = %e, gpu = %id, "export cut short");
                    let _ = tx.send(Err(Box::new(e) as BodyError)).await;
                    return;
                }
            }
        }
    });
    Ok(streamed(format, rx))
}

/// One page of an export, encoded, and the cursor after it when more follow.
async fn read_page(
    state: &AppState,
    id: &str,
    window: &Window,
    format: Format,
    first: bool,
) -> Result<(Bytes, Option<Cursor>), ApiError> {
    let (id, window) = (id.to_string(), window.clone());
    state
        .db
        .run_costing(Cost::Expensive, move |conn| {
            let rows = db::known_window(conn, &id, &window)?;
            let (points, next) = rows.page(window.limit)?;
            Ok((encode_points(&points, format, first)?, next))
        })
        .await
}

fn encode_points(
    points: &[StoredPoint<'_>],
    format: Format,
    header: bool,
) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(points.len() * 320 + 128);
    match format {
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            if header {
                csv.write_record(POINTS_HEADER).map_err(csv_error)?;
            }
            for p in points {
                let source_ts = p.source_ts.map(|t| format_ts(&t)).unwrap_or_default();
                csv.write_record([
                    format_ts(&p.ts).as_str(),
                    p.metric,
                    &p.value.to_string(),
                    &source_ts,
                    p.hostname,
                    p.container.unwrap_or(""),
                    p.pod.unwrap_or(""),
                    p.namespace.unwrap_or(""),
                    p.labels.get(),
                ])
                .map_err(csv_error)?;
            }
            csv.flush().map_err(|e| csv_error(e.into()))?;
        }
        Format::Ndjson | Format::Json => {
            for p in points {
                serde_json::to_writer(&mut out, p).map_err(ApiError::Encode)?;
                out.push(b'\n');
            }
        }
    }
    Ok(Bytes::from(out))
}

/// A step answer's buckets as CSV (`ts,metric,value`) or NDJSON, whole (at most 11,000 per
/// metric).
pub fn buckets(series: &[StepSeries], format: Format) -> HttpResponse {
    let mut out = Vec::new();
    match format {
        Format::Csv => {
            out.extend_from_slice(b"ts,metric,value\n");
            let mut csv = csv::Writer::from_writer(&mut out);
            for s in series {
                for b in &s.points {
                    // Writing to a Vec does not fail.
                    let _ = csv.write_record([
                        format_ts(&b.ts).as_str(),
                        &s.metric,
                        &b.value.to_string(),
                    ]);
                }
            }
            let _ = csv.flush();
        }
        Format::Ndjson | Format::Json => {
            for s in series {
                for b in &s.points {
                    let line = serde_json::json!({"ts": format_ts(&b.ts), "metric": s.metric, "value": b.value});
                    out.extend_from_slice(line.to_string().as_bytes());
                    out.push(b'\n');
                }
            }
        }
    }
    let mut response = Response::new(full(Bytes::from(out)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

fn csv_error(e: csv::Error) -> ApiError {
    ApiError::Export(e.to_string())
}

/// A response whose body is the pages arriving on `rx`.
fn streamed(format: Format, rx: mpsc::Receiver<Result<Bytes, BodyError>>) -> HttpResponse {
    let mut response = Response::new(ChannelBody { rx }.boxed());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// A body fed by a channel: each message a chunk, an error ends the body with it.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BodyError>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        Format::negotiate(&headers)
    }

    #[test]
    fn the_first_served_type_of_accept_wins() {
        assert_eq!(accept("text/csv"), Format::Csv);
        assert_eq!(accept("application/x-ndjson"), Format::Ndjson);
        assert_eq!(
            accept("text/html,application/xhtml+xml,*/*;q=0.8"),
            Format::Json
        );
        assert_eq!(accept("text/csv;q=0, application/json"), Format::Json);
        assert_eq!(accept("image/png"), Format::Json);
        assert_eq!(Format::negotiate(&HeaderMap::new()), Format::Json);
    }
}
