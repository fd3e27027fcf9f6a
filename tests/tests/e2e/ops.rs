//! The operational contracts every binary shares (the README's "Configuration"),
//! checked against the real `broker`, `streamer`, `collector` and `api` running together:
//!
//! - `GET /healthz` 200, `GET /readyz` 200 once ready, `GET /metrics` in the classic
//!   Prometheus text format, clean under `promtool check metrics`, HELP and TYPE for every
//!   family;
//! - an unknown path → 404, a method a route does not declare → 405 with `Allow`, both
//!   `application/problem+json`;
//! - SIGTERM → exit status 0 (within 30 s), no panic in the log; SIGINT the same; the broker
//!   also with a long poll parked (answered, and within its shutdown grace);
//! - `LOG_FORMAT=json` → every line a process writes is a JSON object;
//! - every setting the stack needs works from its environment variable alone;
//! - `--help` answers with exit 0 and names every environment variable the README gives.
//!
//! What each endpoint *means* (what readiness waits for, which metrics exist, the data path)
//! is tested by each binary's own tests and by `pipeline`; this module only holds the
//! binaries to the shared contracts. `promtool` (Debian package `prometheus`) checks the
//! metrics format; where it is not installed that one check is skipped with a message (the
//! HELP/TYPE check still runs), except under `REQUIRE_TOOLS` (CI), where its absence fails.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::{bin_path, free_port, http_get, sample_csv, wait_until, Child, Postgres};

/// How long a binary may take to become ready (PostgreSQL migrations, a first join).
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long a binary may take to stop after SIGTERM/SIGINT (DESIGN: finish in-flight work).
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// How the binaries get their settings: by flags, or by environment variables only (which
/// also proves the "every flag has an env var" half of the contract for the settings used).
#[derive(Clone, Copy, PartialEq)]
enum Config {
    Flags,
    Env,
}

/// One setting of a binary: its flag, its environment variable, its value (`None`: a switch).
struct Setting {
    flag: &'static str,
    env: &'static str,
    value: Option<String>,
}

fn set(flag: &'static str, env: &'static str, value: impl Into<String>) -> Setting {
    Setting {
        flag,
        env,
        value: Some(value.into()),
    }
}

/// One running binary and the base URL of its HTTP server with the ops endpoints.
struct Service {
    name: &'static str,
    child: Child,
    base: String,
}

impl Service {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The four binaries running together on one PostgreSQL, in the order they are stopped
/// (producers first, the broker last, so nobody stops while still depending on another).
struct Stack {
    services: Vec<Service>,
    // Kept alive as long as the processes that use them.
    _pg: Postgres,
    _data: tempfile::TempDir,
}

impl Stack {
    /// Starts broker, api, collector and a looping streamer (200 rows/s on the sample CSV),
    /// each on its own free port, configured as `config` says, with `envs` added to every
    /// process's environment.
    fn start(config: Config, envs: &[(&str, &str)]) -> Stack {
        let pg = Postgres::start();
        let data = tempfile::tempdir().expect("tempdir");
        let broker_addr = format!("127.0.0.1:{}", free_port());
        let broker_url = format!("http://{broker_addr}");
        let broker = [
            set("--listen", "BROKER_LISTEN", &broker_addr),
            set(
                "--data-dir",
                "BROKER_DATA_DIR",
                data.path().display().to_string(),
            ),
            set("--segment-bytes", "BROKER_SEGMENT_BYTES", "4194304"),
        ];
        let broker = Service {
            name: "broker",
            child: spawn("broker", &broker, config, envs),
            base: broker_url.clone(),
        };
        wait_ready(&broker);
        let api_port = free_port();
        // PORT alone means 0.0.0.0:$PORT (the README); the flag takes a full address.
        let listen = match config {
            Config::Flags => set("--listen", "PORT", format!("127.0.0.1:{api_port}")),
            Config::Env => set("--listen", "PORT", api_port.to_string()),
        };
        let api = [listen, set("--database-url", "DATABASE_URL", pg.url())];
        let api = Service {
            name: "api",
            child: spawn("api", &api, config, envs),
            base: format!("http://127.0.0.1:{api_port}"),
        };
        let collector = [
            set("--broker", "BROKER_URL", &broker_url),
            set("--database-url", "DATABASE_URL", pg.url()),
        ];
        let collector = client("collector", collector, config, envs);
        let streamer = [
            set("--broker", "BROKER_URL", &broker_url),
            set("--csv", "CSV_PATH", sample_csv().display().to_string()),
            set("--rate", "STREAMER_RATE", "200"),
            Setting {
                flag: "--loop",
                env: "STREAMER_LOOP",
                value: None,
            },
        ];
        let streamer = client("streamer", streamer, config, envs);
        Stack {
            services: vec![streamer, collector, api, broker],
            _pg: pg,
            _data: data,
        }
    }

    fn get(&self, name: &str) -> &Service {
        self.services
            .iter()
            .find(|s| s.name == name)
            .expect("service in the stack")
    }

    /// Waits until every service answers `/readyz` 200 and the clients logged their start
    /// (their signal handlers are installed by then).
    fn wait_all_ready(&self) {
        for s in &self.services {
            wait_ready(s);
        }
        for name in ["streamer", "collector"] {
            let s = self.get(name);
            let line = format!("{name} starting");
            wait_until(READY_WITHIN, &format!("{name} logs {line:?}"), || {
                s.child.log().contains(&line)
            });
        }
    }
}

/// Spawns binary `name` with `settings` given as `config` says, plus environment `envs`.
fn spawn(name: &str, settings: &[Setting], config: Config, envs: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(bin_path(name));
    for s in settings {
        match (config, &s.value) {
            (Config::Flags, Some(v)) => cmd.arg(s.flag).arg(v),
            (Config::Flags, None) => cmd.arg(s.flag),
            (Config::Env, Some(v)) => cmd.env(s.env, v),
            (Config::Env, None) => cmd.env(s.env, "true"),
        };
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Child::spawn(name, cmd)
}

/// Spawns a client (streamer or collector) with its ops endpoints on a port of its own.
fn client<const N: usize>(
    name: &'static str,
    settings: [Setting; N],
    config: Config,
    envs: &[(&str, &str)],
) -> Service {
    let addr = format!("127.0.0.1:{}", free_port());
    let env = match name {
        "streamer" => "STREAMER_METRICS_LISTEN",
        _ => "COLLECTOR_METRICS_LISTEN",
    };
    let mut all = vec![set("--metrics-listen", env, &addr)];
    all.extend(settings);
    Service {
        name,
        child: spawn(name, &all, config, envs),
        base: format!("http://{addr}"),
    }
}

fn wait_ready(s: &Service) {
    let url = s.url("/readyz");
    wait_until(READY_WITHIN, &format!("{} /readyz 200", s.name), || {
        matches!(http_get(&url), Some((200, _)))
    });
}

/// What an HTTP exchange answered: status, `Content-Type`, `Allow`, body.
struct Answer {
    status: u16,
    content_type: String,
    allow: Option<String>,
    body: String,
}

/// Sends `method url` with an empty body; `None` when nothing answers.
fn request(method: &str, url: &str) -> Option<Answer> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let response = match agent.request(method, url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = response.status();
    let content_type = response.header("content-type").unwrap_or("").to_string();
    let allow = response.header("allow").map(str::to_string);
    let body = response.into_string().unwrap_or_default();
    Some(Answer {
        status,
        content_type,
        allow,
        body,
    })
}

/// The failures of one service's checks, gathered so one run reports every broken contract
/// instead of stopping at the first.
type Failures = Vec<String>;

fn check_health(s: &Service, failures: &mut Failures) {
    match http_get(&s.url("/healthz")) {
        Some((200, _)) => {}
        other => failures.push(format!("{}: GET /healthz answered {other:?}", s.name)),
    }
    match http_get(&s.url("/readyz")) {
        Some((200, _)) => {}
        other => failures.push(format!("{}: GET /readyz answered {other:?}", s.name)),
    }
}

/// Checks that `answer` is a problem document with `status`.
fn check_problem(what: &str, answer: Option<Answer>, status: u16, failures: &mut Failures) {
    let Some(a) = answer else {
        failures.push(format!("{what}: no answer"));
        return;
    };
    if a.status != status {
        failures.push(format!(
            "{what}: status {} (want {status}): {}",
            a.status, a.body
        ));
    }
    if !a.content_type.starts_with("application/problem+json") {
        failures.push(format!(
            "{what}: Content-Type {:?} (want application/problem+json)",
            a.content_type
        ));
    }
    match serde_json::from_str::<Value>(&a.body) {
        Ok(Value::Object(_)) => {}
        _ => failures.push(format!("{what}: body is not a JSON object: {:?}", a.body)),
    }
    if a.status == 405 && a.allow.as_deref().is_none_or(|v| v.trim().is_empty()) {
        failures.push(format!("{what}: 405 without an Allow header"));
    }
}

/// 404 for an unknown path, 405 + Allow for wrong methods on routes each binary declares.
fn check_errors(s: &Service, failures: &mut Failures) {
    let unknown = s.url("/no/such/path");
    check_problem(
        &format!("{}: GET /no/such/path", s.name),
        request("GET", &unknown),
        404,
        failures,
    );
    let mut wrong = vec![("DELETE", "/healthz"), ("POST", "/metrics")];
    match s.name {
        "api" => wrong.push(("POST", "/api/v1/gpus")),
        "broker" => wrong.push(("DELETE", "/v1/topics/x/messages")),
        _ => {}
    }
    for (method, path) in wrong {
        check_problem(
            &format!("{}: {method} {path}", s.name),
            request(method, &s.url(path)),
            405,
            failures,
        );
    }
}

/// Metric family names of a text exposition: `# TYPE` lines give name → type.
fn families(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

/// The family a sample line belongs to: its own name, or for the `_bucket`/`_sum`/`_count`
/// series of a histogram or summary, the base name.
fn family_of(sample: &str, types: &BTreeMap<String, String>) -> String {
    let name = sample
        .split(|c: char| c == '{' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_string();
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return base.to_string();
            }
        }
    }
    name
}

/// Every sampled family has a `# HELP` and a `# TYPE` line, and there is at least one family.
fn check_help_and_type(name: &str, body: &str, failures: &mut Failures) {
    let types = families(body);
    if types.is_empty() {
        failures.push(format!("{name}: /metrics has no metric family:\n{body}"));
    }
    let helps: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let samples = body
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let mut seen = std::collections::BTreeSet::new();
    for sample in samples {
        let family = family_of(sample, &types);
        if !seen.insert(family.clone()) {
            continue;
        }
        if !types.contains_key(&family) {
            failures.push(format!("{name}: metric family {family} has no TYPE line"));
        }
        if !helps.contains(&family.as_str()) {
            failures.push(format!("{name}: metric family {family} has no HELP line"));
        }
    }
}

/// Runs `promtool check metrics` on `body`; `Err` with its output when it complains, `None`
/// when promtool is not installed (a failure instead under `REQUIRE_TOOLS`, which CI sets).
fn promtool_check(body: &str) -> Option<Result<(), String>> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = spawned else {
        assert!(
            std::env::var_os("REQUIRE_TOOLS").is_none(),
            "promtool not installed (apt-get install -y prometheus)"
        );
        eprintln!("SKIPPED promtool check: promtool not installed (apt-get install -y prometheus)");
        return None;
    };
    // Dropping stdin closes it, so promtool sees the end of its input.
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool exit {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

fn check_metrics(s: &Service, failures: &mut Failures) {
    let Some(a) = request("GET", &s.url("/metrics")) else {
        failures.push(format!("{}: GET /metrics: no answer", s.name));
        return;
    };
    if a.status != 200 {
        failures.push(format!("{}: GET /metrics status {}", s.name, a.status));
        return;
    }
    if !a.content_type.starts_with("text/plain") {
        failures.push(format!(
            "{}: /metrics Content-Type {:?} (want the classic text/plain format)",
            s.name, a.content_type
        ));
    }
    if let Some(Err(e)) = promtool_check(&a.body) {
        failures.push(format!("{}: promtool check metrics: {e}", s.name));
    }
    check_help_and_type(s.name, &a.body, failures);
}

/// Waits until `s` exposes at least one metric family: a recorder renders a metric only once
/// it has been touched, and the stack needs a moment of traffic for that.
fn wait_metrics(s: &Service) {
    let url = s.url("/metrics");
    wait_until(
        READY_WITHIN,
        &format!("{} exposes metrics", s.name),
        || matches!(http_get(&url), Some((200, body)) if body.contains("# TYPE ")),
    );
}

#[test]
fn every_binary_serves_health_ready_metrics_and_problem_errors() {
    let stack = Stack::start(Config::Flags, &[]);
    stack.wait_all_ready();
    // One API request, so the api's request metrics exist too.
    let _ = http_get(&stack.get("api").url("/api/v1/gpus"));
    let mut failures = Failures::new();
    for s in &stack.services {
        wait_metrics(s);
        check_health(s, &mut failures);
        check_metrics(s, &mut failures);
        check_errors(s, &mut failures);
    }
    for s in &stack.services {
        s.child.scan_for_panics();
    }
    assert!(
        failures.is_empty(),
        "ops contract violations:\n{}",
        failures.join("\n")
    );
}

/// What a stop answered, as a failure message when it is not a clean exit 0.
fn clean_exit(name: &str, signal: &str, status: Option<ExitStatus>) -> Option<String> {
    match status {
        Some(s) if s.code() == Some(0) => None,
        Some(s) => Some(format!("{name}: {signal} → {s} (want exit status 0)")),
        None => Some(format!(
            "{name}: still running {STOP_WITHIN:?} after {signal}"
        )),
    }
}

/// Sends `signal` to `child` and waits for its exit status.
fn stop(child: &mut Child, signal: libc::c_int) -> Option<ExitStatus> {
    // SAFETY: kill(2) with the pid of a child we spawned and a valid signal number.
    unsafe {
        libc::kill(child.pid() as libc::pid_t, signal);
    }
    child.wait_timeout(STOP_WITHIN)
}

#[test]
fn sigterm_stops_every_binary_with_exit_zero() {
    let mut stack = Stack::start(Config::Flags, &[]);
    stack.wait_all_ready();
    let mut failures = Failures::new();
    for s in &mut stack.services {
        let status = stop(&mut s.child, libc::SIGTERM);
        failures.extend(clean_exit(s.name, "SIGTERM", status));
        s.child.scan_for_panics();
    }
    assert!(
        failures.is_empty(),
        "shutdown contract violations:\n{}",
        failures.join("\n")
    );
}

/// The broker's `--shutdown-grace-ms` default: how long its shutdown may wait for in-flight
/// requests (its `--help` says so), plus slack for a loaded machine.
const BROKER_GRACE: Duration = Duration::from_secs(10 + 5);

/// The broker's `broker_long_polls_parked` gauge, summed over its series (0 when absent).
fn parked_polls(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix("broker_long_polls_parked")
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A long poll is the request a broker always has in flight (every collector keeps one open
/// for up to 30 s); SIGTERM must not wait for it to run out, and the poller must get an
/// answer rather than a cut connection.
#[test]
fn sigterm_stops_the_broker_during_a_long_poll() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let settings = [
        set("--listen", "BROKER_LISTEN", &addr),
        set(
            "--data-dir",
            "BROKER_DATA_DIR",
            data.path().display().to_string(),
        ),
        set("--segment-bytes", "BROKER_SEGMENT_BYTES", "4194304"),
    ];
    let mut broker = Service {
        name: "broker",
        child: spawn("broker", &settings, Config::Flags, &[]),
        base: format!("http://{addr}"),
    };
    wait_ready(&broker);
    let topic = broker.url("/v1/topics/ops-longpoll");
    let created = ureq::put(&topic).send_json(serde_json::json!({"partitions": 1}));
    assert!(created.is_ok(), "create topic: {created:?}");
    let poll_url = format!("{topic}/partitions/0/messages?offset=0&wait_ms=30000");
    let poll = std::thread::spawn(move || request("GET", &poll_url).map(|a| a.status));
    let metrics = broker.url("/metrics");
    wait_until(READY_WITHIN, "broker_long_polls_parked >= 1", || {
        http_get(&metrics).is_some_and(|(_, body)| parked_polls(&body) >= 1.0)
    });
    let started = std::time::Instant::now();
    let status = stop(&mut broker.child, libc::SIGTERM);
    let took = started.elapsed();
    assert_eq!(clean_exit("broker", "SIGTERM", status), None);
    assert!(
        took < BROKER_GRACE,
        "broker took {took:?} to stop with a long poll in flight"
    );
    let answered = poll.join().expect("poll thread");
    assert_eq!(
        answered,
        Some(200),
        "the long poll was not answered at shutdown"
    );
    broker.child.scan_for_panics();
}

/// Every non-empty line of `log` must be a JSON object; the offending lines otherwise.
fn non_json_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !matches!(serde_json::from_str::<Value>(l), Ok(Value::Object(_))))
        .map(str::to_string)
        .collect()
}

/// The stack configured by environment variables alone (no flag given), with
/// `LOG_FORMAT=json`: every binary must come up ready that way, log only JSON objects, and
/// stop on SIGINT with exit 0.
#[test]
fn env_only_config_json_logs_and_sigint() {
    let mut stack = Stack::start(Config::Env, &[("LOG_FORMAT", "json")]);
    stack.wait_all_ready();
    // Some requests, errors among them, so the logs hold more than the start-up lines.
    for name in ["api", "broker"] {
        let s = stack.get(name);
        let _ = http_get(&s.url("/no/such/path"));
        let _ = request("DELETE", &s.url("/healthz"));
    }
    let _ = http_get(&stack.get("api").url("/api/v1/stats"));
    // Stopped with SIGINT here (SIGTERM is the other test), so the shutdown lines are in the
    // logs too and the SIGINT half of the shutdown contract is held as well.
    let mut failures = Failures::new();
    for s in &mut stack.services {
        let status = stop(&mut s.child, libc::SIGINT);
        failures.extend(clean_exit(s.name, "SIGINT", status));
    }
    for name in ["broker", "api", "streamer", "collector"] {
        let log = stack.get(name).child.log();
        assert!(!log.trim().is_empty(), "{name} logged nothing");
        let bad = non_json_lines(&log);
        if !bad.is_empty() {
            failures.push(format!(
                "{name}: {} of its log lines are not JSON objects, e.g. {:?}",
                bad.len(),
                &bad[..bad.len().min(3)]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "env-only config / LOG_FORMAT=json / SIGINT violations:\n{}",
        failures.join("\n")
    );
}

/// Whether `text` contains `word` standing alone (not inside a longer identifier), so that
/// `TOPIC` is not found in `STREAMER_TOPIC_PARTITIONS`.
fn mentions_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Each binary's environment variables as the README names them (plus the clients' metrics
/// port, whose variable the design leaves to the binaries and the binaries document).
const ENV_VARS: [(&str, &[&str]); 4] = [
    (
        "broker",
        &[
            "BROKER_LISTEN",
            "BROKER_DATA_DIR",
            "BROKER_PARTITIONS",
            "BROKER_SEGMENT_BYTES",
            "BROKER_FSYNC",
            "BROKER_TOKEN",
        ],
    ),
    (
        "streamer",
        &[
            "BROKER_URL",
            "TOPIC",
            "CSV_PATH",
            "STREAMER_BATCH_SIZE",
            "STREAMER_GROUP",
            "STREAMER_METRICS_LISTEN",
        ],
    ),
    (
        "collector",
        &[
            "BROKER_URL",
            "TOPIC",
            "COLLECTOR_GROUP",
            "COLLECTOR_BATCH_SIZE",
            "COLLECTOR_METRICS_LISTEN",
            "DATABASE_URL",
            "DB_HOST",
            "DB_PORT",
            "DB_USER",
            "DB_PASSWORD",
            "DB_NAME",
        ],
    ),
    (
        "api",
        &[
            "PORT",
            "DATABASE_URL",
            "DB_HOST",
            "DB_PORT",
            "DB_USER",
            "DB_PASSWORD",
            "DB_NAME",
        ],
    ),
];

#[test]
fn help_answers_and_names_every_env_var() {
    let mut failures = Failures::new();
    for (name, vars) in ENV_VARS {
        let out = Command::new(bin_path(name))
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name} --help: {e}"));
        if out.status.code() != Some(0) {
            failures.push(format!("{name} --help: {} (want exit 0)", out.status));
        }
        let help = String::from_utf8_lossy(&out.stdout);
        for var in vars {
            if !mentions_word(&help, var) {
                failures.push(format!("{name} --help does not mention {var}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "--help contract violations:\n{}",
        failures.join("\n")
    );
}

#[test]
fn mentions_word_needs_a_whole_identifier() {
    assert!(mentions_word("[env: TOPIC=]", "TOPIC"));
    assert!(!mentions_word("[env: STREAMER_TOPIC_PARTITIONS=]", "TOPIC"));
    assert!(!mentions_word(
        "[env: BROKER_FSYNC_INTERVAL_MS=]",
        "BROKER_FSYNC"
    ));
}

#[test]
fn help_and_type_check_sees_a_family_without_help() {
    let body = "# TYPE a_total counter\na_total 1\n\
                # HELP h_seconds x\n# TYPE h_seconds histogram\n\
                h_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 1\nh_seconds_count 1\n";
    let mut failures = Failures::new();
    check_help_and_type("t", body, &mut failures);
    assert_eq!(failures, vec!["t: metric family a_total has no HELP line"]);
}

#[test]
fn promtool_check_rejects_a_counter_without_help() {
    let good = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n";
    let Some(verdict) = promtool_check(good) else {
        return;
    };
    assert_eq!(verdict, Ok(()));
    let bad = promtool_check("# TYPE a_total counter\na_total 1\n");
    let err = bad.expect("promtool ran").expect_err("no HELP line");
    assert!(err.contains("no help text"), "{err}");
}

#[test]
fn non_json_lines_finds_text_lines() {
    let log = "{\"level\":\"INFO\"}\n\n  INFO broker: listening\n[1]\n";
    assert_eq!(non_json_lines(log), vec!["  INFO broker: listening", "[1]"]);
}
