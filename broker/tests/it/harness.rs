//! The shared harness of the broker's integration tests: a real `broker` process on port 0
//! over a temporary data directory, and a small blocking HTTP client (ureq) that returns
//! status, headers and body for every answer, errors included.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::{wait_until, Child};

/// A running broker.
pub struct Broker {
    pub child: Child,
    pub url: String,
    agent: ureq::Agent,
    token: Option<String>,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", self.text()))
    }

    /// NDJSON lines as values.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_u64(&self, name: &str) -> u64 {
        self.header(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric header {name}: {:?}", self.headers))
    }
}

impl Broker {
    /// Starts `broker` on `data` with `extra` flags and waits until it is ready.
    pub fn start(data: &Path, extra: &[&str]) -> Broker {
        Self::start_with_env(data, extra, &[])
    }

    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Broker {
        Self::start_configured(data, extra, |cmd| {
            for (k, v) in env {
                cmd.env(k, v);
            }
        })
    }

    /// Starts `broker` with its command adjusted by `configure` and waits until it is ready.
    pub fn start_configured(
        data: &Path,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Broker {
        let broker = Self::start_unready(data, extra, configure);
        broker.wait_ready();
        broker
    }

    /// Starts `broker` and waits until it listens, not until it is ready (a clustered broker
    /// is ready only once a majority of its peers runs).
    pub fn start_unready(
        data: &Path,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Broker {
        let (child, url) = spawn(data, extra, configure);
        let token = extra
            .windows(2)
            .find(|w| w[0] == "--token")
            .map(|w| w[1].to_string());
        Broker {
            child,
            url,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
            token,
        }
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self) {
        wait_until(Duration::from_secs(20), "the broker to be ready", || {
            self.get("/readyz").status == 200
        });
    }

    /// SIGTERM, and the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let status = self.child.terminate(Duration::from_secs(20));
        self.child.scan_for_panics();
        status.and_then(|s| s.code())
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to the broker process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with the pid of a child we own and a valid signal number.
        let rc = unsafe { libc::kill(self.child.pid() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.child.pid());
    }

    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        let req = self.agent.request(method, &format!("{}{}", self.url, path));
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        call(self.request("GET", path), None)
    }

    pub fn send(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Resp {
        call(
            self.request(method, path).set("Content-Type", content_type),
            Some(body),
        )
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Resp {
        self.send(
            "POST",
            path,
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn put_topic(&self, topic: &str, partitions: u32) -> Resp {
        let body = serde_json::json!({ "partitions": partitions }).to_string();
        self.send(
            "PUT",
            &format!("/v1/topics/{topic}"),
            "application/json",
            body.as_bytes(),
        )
    }

    /// Joins `group` for `topic`; panics unless 200. Answers the assignment.
    pub fn join(&self, group: &str, topic: &str, session_ms: u64) -> serde_json::Value {
        let r = self.post_json(
            &format!("/v1/groups/{group}/members"),
            &serde_json::json!({"topic": topic, "session_timeout_ms": session_ms}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// A member's heartbeat (answers whatever the broker says).
    pub fn heartbeat(&self, group: &str, member: &str) -> Resp {
        self.send(
            "POST",
            &format!("/v1/groups/{group}/members/{member}/heartbeat"),
            "application/json",
            b"",
        )
    }

    /// Sends a raw produce body with its content type (answers whatever the broker says).
    pub fn produce_body(&self, topic: &str, query: &str, content_type: &str, body: &[u8]) -> Resp {
        self.send(
            "POST",
            &format!("/v1/topics/{topic}/messages{query}"),
            content_type,
            body,
        )
    }

    /// Produces NDJSON lines; panics unless 200.
    pub fn produce(&self, topic: &str, query: &str, lines: &[String]) -> Resp {
        let r = self.produce_raw(topic, query, lines);
        assert_eq!(r.status, 200, "produce failed: {}", r.text());
        r
    }

    pub fn produce_raw(&self, topic: &str, query: &str, lines: &[String]) -> Resp {
        let body = lines.join("\n");
        self.send(
            "POST",
            &format!("/v1/topics/{topic}/messages{query}"),
            "application/x-ndjson",
            body.as_bytes(),
        )
    }

    /// Fetches every message of a partition from `offset` to the current end.
    pub fn fetch_all(
        &self,
        topic: &str,
        partition: u32,
        mut offset: u64,
    ) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        loop {
            let r = self.get(&format!(
                "/v1/topics/{topic}/partitions/{partition}/messages?offset={offset}&max=10000"
            ));
            assert_eq!(r.status, 200, "fetch failed: {}", r.text());
            let lines = r.lines();
            if lines.is_empty() {
                return out;
            }
            offset = r.header_u64("broker-next-offset");
            out.extend(lines);
        }
    }

    /// The value of a Prometheus sample (first line starting with `prefix`).
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let text = self.get("/metrics").text();
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

/// Starts `broker` on `data` with `extra` flags (its command adjusted by `configure`) and
/// waits until it logs where it listens: the process and its base URL (`http://` or
/// `https://`), not yet ready.
pub fn spawn(data: &Path, extra: &[&str], configure: impl FnOnce(&mut Command)) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_broker"));
    // Port 0 unless the test needs a known address (a cluster's peers).
    if !extra.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    // Small segments unless a test picks its own: every active segment is preallocated
    // whole, and tests start many brokers at once.
    if !extra.contains(&"--segment-bytes") {
        cmd.args(["--segment-bytes", "1048576"]);
    }
    configure(&mut cmd);
    let mut child = Child::spawn("broker", cmd);
    let mut url = String::new();
    wait_until(Duration::from_secs(20), "the broker to listen", || {
        assert!(child.is_running(), "the broker exited:\n{}", child.log());
        match listening_url(&child.log()) {
            Some(u) => {
                url = u;
                true
            }
            None => false,
        }
    });
    (child, url)
}

fn listening_url(log: &str) -> Option<String> {
    let start = log.find("listening on http")? + "listening on ".len();
    let rest = &log[start..];
    let scheme_end = rest.find("://")? + "://".len();
    let end = rest[scheme_end..].find('/')? + scheme_end;
    Some(rest[..end].to_string())
}

/// Sends a request and returns the answer whatever its status (`status` 0: no answer).
pub fn call(req: ureq::Request, body: Option<&[u8]>) -> Resp {
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => {
            return Resp {
                status: 0,
                headers: Vec::new(),
                body: e.to_string().into_bytes(),
            }
        }
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let mut body = Vec::new();
    let _ = response.into_reader().read_to_end(&mut body);
    Resp {
        status,
        headers,
        body,
    }
}

/// A telemetry-like NDJSON line for `gpu` with a distinguishing number.
pub fn line(gpu: &str, n: u64) -> String {
    serde_json::json!({
        "key": gpu,
        "value": {"metric": "DCGM_FI_DEV_GPU_TEMP", "gpu_uuid": gpu, "n": n, "value": 41.5}
    })
    .to_string()
}

/// A message pinned to a partition.
pub fn pinned(partition: u32, n: u64) -> String {
    serde_json::json!({ "partition": partition, "value": { "n": n } }).to_string()
}

/// One binary batch (`application/vnd.broker.batch`) of `values`, each keyed `GPU-bin`.
pub fn batch(values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<broker_log::Record<'_>> = values
        .iter()
        .map(|v| broker_log::Record {
            timestamp_ms: 0,
            key: Some(b"GPU-bin"),
            value: v,
        })
        .collect();
    broker_log::record::encode(0, &records, None)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("broker-it-")
        .tempdir()
        .expect("tempdir")
}
