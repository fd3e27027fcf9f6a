//! `streamer --scrape` across a fleet: many fake exporters behind one listener (`/metrics/N`
//! serves the dcgm-exporter fixture as host `node-N`), several streamers of one group sharing
//! them through the broker, and `--scrape-dns`. Real broker, streamers, collector and
//! PostgreSQL; what is stored is checked per target and scrape time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::{bin_path, free_port, http_get, wait_until, Child, Postgres};

use crate::pipeline::{collector, count, tail, Broker};
use crate::scrape::{all_points, fixture, usage_error, POINTS_PER_SCRAPE};

pub(crate) const TOPIC: &str = "telemetry";

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Fake exporters: one listener, one target per path. Records when each target was served.
pub(crate) struct Fleet {
    pub(crate) port: u16,
    /// Per target index, the times (ms since the epoch) it was served.
    served: Arc<Mutex<BTreeMap<usize, Vec<i64>>>>,
}

impl Fleet {
    /// `/metrics/N` answers as host `node-N`; `/metrics` as `node-0`.
    pub(crate) fn serve() -> Fleet {
        let text = fixture();
        Fleet::serve_with(move |index| text.replace("dgx-a100-01", &format!("node-{index}")))
    }

    /// `/metrics/N` answers `body(N)`; `/metrics` `body(0)`.
    pub(crate) fn serve_with(body: impl Fn(usize) -> String + Send + Sync + 'static) -> Fleet {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(Mutex::new(BTreeMap::<usize, Vec<i64>>::new()));
        let log = Arc::clone(&served);
        let body = Arc::new(body);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (log, body) = (Arc::clone(&log), Arc::clone(&body));
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&request);
                    let path = line.split_whitespace().nth(1).unwrap_or("/");
                    let index = match path.strip_prefix("/metrics") {
                        Some("") => Some(0),
                        Some(rest) => rest.strip_prefix('/').and_then(|n| n.parse().ok()),
                        None => None,
                    };
                    let Some(index) = index else {
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    };
                    log.lock().unwrap().entry(index).or_default().push(now_ms());
                    let body = body(index);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Fleet { port, served }
    }

    pub(crate) fn url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}/metrics/{index}", self.port)
    }

    /// Times target `index` was served.
    pub(crate) fn served(&self, index: usize) -> Vec<i64> {
        self.served
            .lock()
            .unwrap()
            .get(&index)
            .cloned()
            .unwrap_or_default()
    }
}

/// A scraping streamer with the fleet test's settings and `extra` flags.
pub(crate) fn scraper(broker: &Broker, extra: &[&str], metrics_port: u16) -> Child {
    let mut cmd = Command::new(bin_path("streamer"));
    cmd.args(["--broker", &broker.url(), "--topic", TOPIC])
        .args(extra)
        .args(["--scrape-timeout", "2s"])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .env_remove("CSV_PATH")
        .env_remove("STREAMER_SCRAPE")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json");
    Child::spawn("streamer", cmd)
}

/// The target URLs a streamer lists in `GET /targets` (empty when it does not answer).
pub(crate) fn listed(metrics_port: u16) -> BTreeSet<String> {
    let Some((200, body)) = http_get(&format!("http://127.0.0.1:{metrics_port}/targets")) else {
        return BTreeSet::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["targets"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["url"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A metric's value in a streamer's `/metrics` (the first line starting with `series `).
pub(crate) fn metric(metrics_port: u16, series: &str) -> Option<f64> {
    let (_, body) = http_get(&format!("http://127.0.0.1:{metrics_port}/metrics"))?;
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Per host, the scrapes stored in PostgreSQL: (time in ms, points), by time.
pub(crate) fn stored_scrapes(pg: &Postgres) -> BTreeMap<String, Vec<(i64, i64)>> {
    let mut client = pg.connect();
    let rows = client
        .query(
            "SELECT hostname, (extract(epoch FROM ts) * 1000)::bigint AS ms, count(*) \
             FROM telemetry GROUP BY hostname, ts ORDER BY hostname, ts",
            &[],
        )
        .expect("query scrapes");
    let mut out: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for row in rows {
        out.entry(row.get(0))
            .or_default()
            .push((row.get(1), row.get(2)));
    }
    out
}

/// Waits until the collector has stored every message in the broker's log.
pub(crate) fn wait_stored(pg: &Postgres, broker: &Broker) {
    wait_until(Duration::from_secs(90), "the collector caught up", || {
        let end = broker.log_end_total();
        end > 0
            && count(
                pg,
                "SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets",
            ) == end
    });
    assert_eq!(
        count(pg, "SELECT count(*) FROM telemetry"),
        broker.log_end_total(),
        "every message of the log stored once"
    );
}

/// Every stored scrape is whole (all its points, once) and no target has two scrapes closer
/// than half an interval (one slot stored twice).
pub(crate) fn assert_each_scrape_once(
    scrapes: &BTreeMap<String, Vec<(i64, i64)>>,
    interval_ms: i64,
) {
    for (host, list) in scrapes {
        for (ts, points) in list {
            assert_eq!(
                *points, POINTS_PER_SCRAPE as i64,
                "{host}: the scrape at {ts} has {points} points"
            );
        }
        for pair in list.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 >= interval_ms / 2,
                "{host}: scrapes at {} and {}: one slot stored twice",
                pair[0].0,
                pair[1].0
            );
        }
    }
}

/// SIGTERM, and the process must stop cleanly (exit 0, no panic in its log).
pub(crate) fn stop(name: &str, child: &mut Child) {
    let status = child.terminate(Duration::from_secs(15));
    child.scan_for_panics();
    assert!(
        status.is_some_and(|s| s.success()),
        "{name}: SIGTERM is a clean stop: {status:?}\n{}",
        tail(&child.log())
    );
}

const TARGETS: usize = 30;
const INTERVAL_MS: i64 = 1000;
/// The group's session timeout in this test.
const SESSION_MS: i64 = 1000;

#[test]
fn three_streamers_share_thirty_targets_and_store_every_scrape_once_as_members_die_and_join() {
    let fleet = Fleet::serve();
    let urls: Vec<String> = (0..TARGETS).map(|i| fleet.url(i)).collect();
    let all: BTreeSet<String> = urls.iter().cloned().collect();
    let targets = urls.join(",");
    let pg = Postgres::start();
    let broker = Broker::start();
    let mut collector = collector(&broker, &pg, &[]);
    let flags = [
        "--scrape",
        targets.as_str(),
        "--group",
        "fleet",
        "--scrape-interval",
        "1s",
        "--scrape-session-timeout",
        "1s",
    ];
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut members: Vec<Child> = ports[..3]
        .iter()
        .map(|&port| scraper(&broker, &flags, port))
        .collect();

    // Each target is scraped by exactly one of the three.
    let shared_by = |ports: &[u16]| {
        let lists: Vec<BTreeSet<String>> = ports.iter().map(|&p| listed(p)).collect();
        let union: BTreeSet<String> = lists.iter().flatten().cloned().collect();
        let total: usize = lists.iter().map(BTreeSet::len).sum();
        union == all && total == TARGETS && lists.iter().all(|l| !l.is_empty())
    };
    wait_until(Duration::from_secs(30), "30 targets shared by 3", || {
        shared_by(&ports[..3])
    });
    wait_until(Duration::from_secs(30), "3 scrapes of every target", || {
        (0..TARGETS).all(|i| fleet.served(i).len() >= 3)
    });

    // One dies without leaving: its targets move to the two others after the session timeout.
    let dead = listed(ports[0]);
    members[0].kill9();
    let killed_at = now_ms();
    wait_until(
        Duration::from_secs(30),
        "the dead member's targets taken over",
        || shared_by(&ports[1..3]),
    );
    let index_of = |url: &String| urls.iter().position(|u| u == url).unwrap();
    wait_until(
        Duration::from_secs(30),
        "the dead member's targets scraped again",
        || {
            dead.iter().all(|u| {
                fleet
                    .served(index_of(u))
                    .iter()
                    .any(|&t| t > killed_at + 3000)
            })
        },
    );

    // One joins: it takes a share, and every target is again scraped by exactly one.
    members.push(scraper(&broker, &flags, ports[3]));
    wait_until(
        Duration::from_secs(30),
        "30 targets shared by the new 3",
        || shared_by(&ports[1..4]),
    );
    let joined_at = now_ms();
    wait_until(
        Duration::from_secs(30),
        "3 scrapes of every target since",
        || (0..TARGETS).all(|i| fleet.served(i).iter().filter(|&&t| t > joined_at).count() >= 3),
    );
    for (n, member) in members.iter_mut().enumerate().skip(1) {
        stop(&format!("streamer {n}"), member);
    }

    wait_stored(&pg, &broker);
    let scrapes = stored_scrapes(&pg);
    assert_eq!(scrapes.len(), TARGETS, "{:?}", scrapes.keys());
    assert_each_scrape_once(&scrapes, INTERVAL_MS);
    // Gaps: a target of the dead member misses at most the session timeout, the heartbeat and
    // a slot or two; any other move at most a slot. The bound is generous for a busy machine.
    let gap_bound = SESSION_MS + 500 + 2 * INTERVAL_MS + 2500;
    for (host, list) in &scrapes {
        let widest = list.windows(2).map(|p| p[1].0 - p[0].0).max().unwrap_or(0);
        assert!(widest <= gap_bound, "{host}: a gap of {widest} ms");
        assert!(
            list.iter().filter(|(ts, _)| *ts > joined_at).count() >= 2,
            "{host}: scraped after the join"
        );
    }
    // Every scrape the exporters served before the streamers stopped is stored, except those
    // of the dead member's last moments (scraped, not yet produced when it died).
    for (i, url) in urls.iter().enumerate() {
        let stored = &scrapes[&format!("node-{i}")];
        for served in fleet.served(i) {
            if dead.contains(url) && (killed_at - 1500..killed_at + 100).contains(&served) {
                continue;
            }
            // The stored scrape of the same slot: timed just before its request (or, when two
            // streamers scraped the slot during a handover, the other one's).
            let found = stored
                .iter()
                .any(|(ts, _)| (ts - INTERVAL_MS / 2..ts + INTERVAL_MS / 2).contains(&served));
            let last = stored.last().map_or(0, |s| s.0);
            let near: Vec<i64> = stored
                .iter()
                .map(|s| s.0 - served)
                .filter(|d| d.abs() < 3000)
                .collect();
            assert!(
                found || served > last,
                "node-{i}: the scrape served at {served} is not stored (stored at {near:?} from it; \
                 killed at {}, joined at {}, the dead member's: {})",
                killed_at - served,
                joined_at - served,
                dead.contains(url)
            );
        }
    }
    collector.terminate(Duration::from_secs(15));
}

#[test]
fn scrape_dns_scrapes_every_address_of_the_name_and_survives_a_name_that_does_not_resolve() {
    let fleet = Fleet::serve();
    let broker = Broker::start();
    let port = free_port();
    let name = format!("localhost:{}", fleet.port);
    let mut streamer = scraper(
        &broker,
        &[
            "--scrape-dns",
            &name,
            "--scrape-dns",
            "no-such-host.invalid:9400",
            "--scrape-share",
            "false",
            "--scrape-interval",
            "500ms",
        ],
        port,
    );
    let v4 = format!("http://127.0.0.1:{}/metrics", fleet.port);
    wait_until(
        Duration::from_secs(30),
        "localhost's address scraped",
        || listed(port).contains(&v4) && fleet.served(0).len() >= 2,
    );
    // localhost may also resolve to ::1, in brackets; the unresolvable name adds nothing.
    for url in listed(port) {
        assert!(
            url == v4 || url == format!("http://[::1]:{}/metrics", fleet.port),
            "{url}"
        );
    }
    wait_until(Duration::from_secs(30), "the points in the broker", || {
        all_points(&broker).iter().any(|p| p.hostname == "node-0")
    });
    let failures = "streamer_scrape_dns_failures_total{name=\"no-such-host.invalid:9400\"}";
    wait_until(
        Duration::from_secs(30),
        "the failed lookups counted",
        || metric(port, failures).is_some_and(|n| n >= 1.0),
    );
    assert!(streamer.is_running(), "{}", tail(&streamer.log()));
    stop("streamer", &mut streamer);
}

#[test]
fn scrape_dns_needs_name_and_port() {
    let stderr = usage_error(&["--scrape-dns", "dcgm-exporter"]);
    assert!(stderr.contains("NAME:PORT"), "{stderr}");
}
