//! The operations endpoints: the Prometheus recorder every binary installs, the one
//! implementation of the `/healthz`, `/readyz` and `/metrics` answers, and the small server
//! that the blocking clients run on `--metrics-listen`.
//!
//! The broker and the API route these paths in their own routers (for their request metrics)
//! and answer with [`healthz`], [`readyz`] and [`metrics`]; the clients have no HTTP server of
//! their own, so [`OpsServer`] runs one ([`crate::serve`], fixed default limits) on a
//! background thread with a single-threaded tokio runtime. A binary may add read-only JSON
//! routes of its own to it ([`JsonRoute`]: the streamer's `GET /targets`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{problem, serve};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
///
/// Describe every metric (`metrics::describe_counter!` …) so each gets a HELP line:
/// `promtool check metrics` rejects metrics without one.
pub fn install_metrics_recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed already (a test harness); the
            // handle still renders what this recorder sees.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The current metrics in the Prometheus text format (version 0.0.4).
pub fn render_metrics() -> String {
    install_metrics_recorder().render()
}

/// The content type of [`render_metrics`]'s output.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of the probes' answers.
const PLAIN: &str = "text/plain; charset=utf-8";

/// Whether a process is ready to do its job; `/readyz` answers 200 only when it is.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether `path` is one of the three ops paths: answered without a token, and on the
/// connections the serving module keeps in reserve.
pub fn is_ops_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// `/healthz`: the process answers HTTP.
pub fn healthz() -> Response<Full<Bytes>> {
    text(StatusCode::OK, "ok\n", PLAIN)
}

/// `/readyz`: 200 when ready, else 503 saying why not.
pub fn readyz(ready: Result<(), &str>) -> Response<Full<Bytes>> {
    match ready {
        Ok(()) => text(StatusCode::OK, "ready\n", PLAIN),
        Err(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not ready: {why}\n"),
            PLAIN,
        ),
    }
}

/// `/metrics`: every metric of the process, in the Prometheus text format.
pub fn metrics() -> Response<Full<Bytes>> {
    text(StatusCode::OK, &render_metrics(), METRICS_CONTENT_TYPE)
}

/// A binary's own read-only route on the ops server: its path and the JSON it answers with.
pub type JsonRoute = (&'static str, Arc<dyn Fn() -> String + Send + Sync>);

/// A running ops server; it stops when the process exits.
pub struct OpsServer {
    /// Where it really listens (useful with port 0).
    pub local_addr: SocketAddr,
}

impl OpsServer {
    /// Binds `listen` and serves the ops routes on a background thread.
    pub fn start(listen: SocketAddr, readiness: Readiness) -> std::io::Result<OpsServer> {
        OpsServer::start_with(listen, readiness, Vec::new())
    }

    /// [`Self::start`] with the binary's own JSON routes besides the ops routes.
    pub fn start_with(
        listen: SocketAddr,
        readiness: Readiness,
        extra: Vec<JsonRoute>,
    ) -> std::io::Result<OpsServer> {
        let extra: Arc<[JsonRoute]> = extra.into();
        install_metrics_recorder();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Bound here, so the caller learns at once if the address is taken.
        let listener = {
            let _entered = runtime.enter();
            serve::bind(listen)?
        };
        let local_addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("ops-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let handler = move |req: Request<Incoming>| {
                        let response = route_with(&req, &readiness, &extra);
                        async move { response }
                    };
                    // Served until the process exits.
                    serve::serve(
                        listener,
                        serve::Settings::default(),
                        handler,
                        std::future::pending(),
                    )
                    .await;
                })
            })?;
        Ok(OpsServer { local_addr })
    }
}

/// Answers one of the three ops routes or of `extra`, or the shared 404/405.
fn route_with<B>(
    req: &Request<B>,
    readiness: &Readiness,
    extra: &[JsonRoute],
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let own = extra.iter().find(|(p, _)| *p == path);
    if own.is_none() && !is_ops_path(path) {
        return problem::not_found(path);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return problem::method_not_allowed(req.method(), &[Method::GET, Method::HEAD]);
    }
    if let Some((_, answer)) = own {
        return text(StatusCode::OK, &answer(), "application/json");
    }
    match path {
        "/healthz" => healthz(),
        "/readyz" => readyz(match readiness.is_ready() {
            true => Ok(()),
            false => Err("starting"),
        }),
        _ => metrics(),
    }
}

fn text(status: StatusCode, body: &str, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    }

    #[test]
    fn the_ops_server_answers_probes_metrics_and_its_own_routes() {
        let readiness = Readiness::default();
        let extra: Vec<JsonRoute> = vec![("/targets", Arc::new(|| "[]".to_string()))];
        let server = OpsServer::start_with(
            "127.0.0.1:0".parse().expect("address"),
            readiness.clone(),
            extra,
        )
        .expect("start");
        let addr = server.local_addr;
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        let not_ready = get(addr, "/readyz");
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        readiness.set(true);
        assert!(get(addr, "/readyz").starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/metrics").contains("text/plain; version=0.0.4"));
        assert!(get(addr, "/targets").ends_with("[]"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }
}
