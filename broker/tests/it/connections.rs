//! Hostile and odd connections against the real broker: floods of idle and slow sockets, the
//! header-read and idle timeouts, half-closed clients, running out of file descriptors.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use testkit::wait_until;

use crate::harness::{pinned, tempdir, Broker};
use crate::raw;

/// Raises this test process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit.
fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed by pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// How many descriptors the process `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One `GET /healthz` on a fresh connection: the status and how long it took, connect included.
fn timed_healthz(url: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut s = raw::connect(url);
    let answer = raw::exchange(&mut s, "GET", "/healthz", "", b"");
    (
        raw::status(&String::from_utf8_lossy(&answer)),
        started.elapsed(),
    )
}

/// Produces and fetches one message per round on fresh connections until `stop`; counts
/// the rounds in `rounds`. Any failure panics the thread.
fn traffic(
    url: String,
    topic: &'static str,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let agent = ureq::AgentBuilder::new()
            .max_idle_connections(0)
            .timeout(Duration::from_secs(10))
            .build();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let r = agent
                .post(&format!("{url}/v1/topics/{topic}/messages"))
                .set("Content-Type", "application/x-ndjson")
                .send_string(&pinned(0, n))
                .unwrap_or_else(|e| panic!("produce {n} failed under the flood: {e}"));
            assert_eq!(r.status(), 200);
            let r = agent
                .get(&format!(
                    "{url}/v1/topics/{topic}/partitions/0/messages?offset={n}&max=1"
                ))
                .call()
                .unwrap_or_else(|e| panic!("fetch {n} failed under the flood: {e}"));
            let text = r.into_string().expect("fetch body");
            assert!(text.contains(&format!("\"n\":{n}")), "fetch {n}: {text}");
            n += 1;
            rounds.store(n, Ordering::Relaxed);
        }
    })
}

#[test]
fn idle_and_slow_connections_leave_produce_fetch_and_healthz_served() {
    let limit = raise_nofile();
    // The test holds every socket's client end: 5,500 plus its own needs.
    let (idle_n, slow_n) = if limit >= 6_000 {
        (5_000, 500)
    } else {
        let budget = limit.saturating_sub(200) as usize;
        eprintln!(
            "RLIMIT_NOFILE hard limit {limit}: scaled down to {} idle + {} slow",
            budget * 10 / 11,
            budget / 11
        );
        (budget * 10 / 11, budget / 11)
    };
    let dir = tempdir();
    // Room for the whole flood: this test is about what idle and slow sockets cost the others
    // (the cap is the next test's).
    let b = Broker::start(
        dir.path(),
        &["--partitions", "1", "--max-connections", "10000"],
    );
    assert_eq!(b.put_topic("flood", 1).status, 201);
    let url = b.url.clone();

    let idle: Vec<TcpStream> = (0..idle_n).map(|_| raw::connect(&url)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let slow = {
        let (stop, url) = (Arc::clone(&stop), url.clone());
        thread::spawn(move || {
            let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
            let mut socks: Vec<TcpStream> = (0..slow_n).map(|_| raw::connect(&url)).collect();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                for s in socks.iter_mut() {
                    // Never the last byte: the head stays incomplete.
                    let _ = s.write_all(&head[(i % (head.len() - 1))..][..1]);
                }
                i += 1;
                // Slowloris sends far less often; this is more pressure, not less.
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    wait_until(
        Duration::from_secs(60),
        "the broker to hold the whole flood",
        || open_fds(b.child.pid()) >= idle_n + slow_n,
    );

    let rounds = Arc::new(AtomicU64::new(0));
    let traffic = traffic(url.clone(), "flood", Arc::clone(&stop), Arc::clone(&rounds));
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let (status, took) = timed_healthz(&url);
        assert_eq!(status, 200, "/healthz under the flood");
        latencies.push(took);
        thread::sleep(Duration::from_millis(100));
    }
    let before = rounds.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(10), "produce/fetch to go on", || {
        rounds.load(Ordering::Relaxed) >= before + 10
    });
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("produce/fetch thread");
    slow.join().expect("slow thread");
    drop(idle);

    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{idle_n} idle + {slow_n} slow: /healthz worst {worst:?} (all: {latencies:?}), {} produce+fetch rounds",
        rounds.load(Ordering::Relaxed)
    );
    // Measured 2-16 ms on an idle 2-core machine; a machine shared with other builds showed
    // single probes at 110-165 ms. Without the limits the flood takes /healthz away entirely
    // (no descriptor to accept it), so the median holds the 100 ms and the worst a
    // bound far from "never".
    let mut sorted = latencies.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median < Duration::from_millis(100) && worst < Duration::from_millis(500),
        "/healthz took {latencies:?}"
    );
    assert_eq!(b.stop(), Some(0));
}

#[test]
fn at_the_connection_cap_idle_sockets_are_shed_so_new_clients_get_in() {
    raise_nofile();
    let dir = tempdir();
    let cap = 100;
    let b = Broker::start(
        dir.path(),
        &["--partitions", "1", "--max-connections", &cap.to_string()],
    );
    assert_eq!(b.put_topic("capped", 1).status, 201);
    // Ten times the cap, none of which ever sends a byte.
    let idle: Vec<TcpStream> = (0..cap * 10).map(|_| raw::connect(&b.url)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let traffic = traffic(
        b.url.clone(),
        "capped",
        Arc::clone(&stop),
        Arc::clone(&rounds),
    );
    let mut max_fds = 0;
    wait_until(Duration::from_secs(30), "100 produce/fetch rounds", || {
        max_fds = max_fds.max(open_fds(b.child.pid()));
        rounds.load(Ordering::Relaxed) >= 100
    });
    assert_eq!(timed_healthz(&b.url).0, 200);
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("produce/fetch thread");
    drop(idle);
    eprintln!(
        "cap {cap}, {} idle sockets: broker descriptors at most {max_fds}",
        cap * 10
    );
    // Connections, the reserve (32), sheds under way (64) and the process's own files.
    assert!(
        max_fds < cap + 32 + 64 + 60,
        "the broker held {max_fds} descriptors"
    );
    assert_eq!(b.stop(), Some(0));
}

#[test]
fn when_every_connection_is_busy_the_reserve_answers_health_and_metrics_only() {
    let dir = tempdir();
    let cap = 8;
    let b = Broker::start(
        dir.path(),
        &["--partitions", "1", "--max-connections", &cap.to_string()],
    );
    assert_eq!(b.put_topic("parked", 1).status, 201);
    // Fill the cap with long-polls that park for 15 s: busy, never shed. One at a time: a
    // connection whose head is not read yet is idle, and the next one may shed it. 15 s, not
    // less: on a loaded machine the first ones must still be parked when the last parks.
    let park = || {
        let mut s = raw::connect(&b.url);
        s.write_all(b"GET /v1/topics/parked/partitions/0/messages?offset=0&wait_ms=15000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("long-poll");
        s
    };
    let mut parked = Vec::new();
    for i in 0..cap {
        parked.push(park());
        wait_until(Duration::from_secs(10), "the long-poll to park", || {
            // The parked ones and this scrape of /metrics.
            if b.metric("http_requests_in_flight") >= Some(i as f64 + 2.0) {
                return true;
            }
            // With the cap reached, this scrape's connection may have shed the last long-poll
            // before the broker read its head (such a connection counts as idle): send it again.
            if answered_or_closed(&parked[i]) {
                parked[i] = park();
            }
            false
        });
    }
    let reserve_answer = |path: &str| {
        let mut s = raw::connect(&b.url);
        let answer =
            String::from_utf8_lossy(&raw::exchange(&mut s, "GET", path, "", b"")).into_owned();
        (raw::status(&answer), answer)
    };
    wait_until(
        Duration::from_secs(10),
        "a reserve connection to refuse the API",
        || reserve_answer("/v1/topics").0 == 503,
    );
    let (status, answer) = reserve_answer("/v1/topics");
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(reserve_answer("/healthz").0, 200);
    assert_eq!(reserve_answer("/metrics").0, 200);
    // With half-close allowed, a client's FIN does not cancel its request: the slots free
    // when the long-polls answer.
    drop(parked);
    wait_until(
        Duration::from_secs(30),
        "the API once the long-polls answered",
        || reserve_answer("/v1/topics").0 == 200,
    );
    assert_eq!(b.stop(), Some(0));
}

#[test]
fn silent_and_slow_clients_are_cut_at_the_header_read_timeout_and_idle_ones_at_the_idle_timeout() {
    let dir = tempdir();
    let b = Broker::start(
        dir.path(),
        &[
            "--header-read-timeout-ms",
            "300",
            "--idle-timeout-ms",
            "1500",
        ],
    );
    // Never sends a byte.
    let mut silent = raw::connect(&b.url);
    let took = raw::time_until_closed(&mut silent);
    assert!(
        took < Duration::from_secs(3),
        "a silent socket stayed {took:?}"
    );

    // Sends its head a byte every 50 ms: 4 s for the whole, far beyond the timeout.
    let mut slow = raw::connect(&b.url);
    let writer = {
        let mut slow = slow.try_clone().expect("clone");
        thread::spawn(move || {
            let head = format!(
                "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
                "a".repeat(40)
            );
            for byte in head.as_bytes() {
                if slow.write_all(&[*byte]).is_err() {
                    return false;
                }
                thread::sleep(Duration::from_millis(50));
            }
            true
        })
    };
    let took = raw::time_until_closed(&mut slow);
    assert!(
        took < Duration::from_secs(3),
        "a slow head was read for {took:?}"
    );
    assert!(
        !writer.join().expect("writer"),
        "the whole slow head was accepted"
    );

    // Keep-alive: idle longer than the header-read timeout is fine, the idle timeout is not.
    let mut kept = raw::connect(&b.url);
    let get = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    kept.write_all(get).expect("first request");
    assert_eq!(raw::status(&raw::read_response(&mut kept).0), 200);
    thread::sleep(Duration::from_millis(700));
    kept.write_all(get).expect("second request");
    assert_eq!(
        raw::status(&raw::read_response(&mut kept).0),
        200,
        "a keep-alive connection idle for less than the idle timeout is served"
    );
    let took = raw::time_until_closed(&mut kept);
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(5),
        "an idle keep-alive connection was closed after {took:?}, not about 1.5 s"
    );
    assert_eq!(b.stop(), Some(0));
}

#[test]
fn a_client_that_half_closes_after_its_request_gets_the_reply() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &["--partitions", "1"]);
    let mut s = raw::connect(&b.url);
    let body = pinned(0, 7);
    let head = format!(
        "POST /v1/topics/half/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body.as_bytes()).expect("body");
    s.shutdown(Shutdown::Write).expect("half-close");
    let answer = String::from_utf8_lossy(&raw::read_until_closed(&mut s)).into_owned();
    assert_eq!(raw::status(&answer), 200, "answer: {answer:?}");
    let stored = b.fetch_all("half", 0, 0);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["value"]["n"], 7);
    b.stop();
}

#[test]
fn out_of_descriptors_the_broker_backs_off_logs_once_and_serves_again_once_sockets_close() {
    raise_nofile();
    let dir = tempdir();
    let nofile = 96;
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    let b = Broker::start_configured(dir.path(), &["--partitions", "1"], |cmd| unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    });
    assert_eq!(b.put_topic("fds", 1).status, 201);
    b.produce("fds", "", &[pinned(0, 1)]);

    let started = Instant::now();
    let flood: Vec<TcpStream> = (0..400).map(|_| raw::connect(&b.url)).collect();
    wait_until(
        Duration::from_secs(10),
        "the broker to run out of descriptors",
        || b.child.log().contains("accept failed"),
    );
    // Shedding idle sockets gives new clients descriptors even while the flood lasts.
    wait_until(Duration::from_secs(20), "/healthz during the flood", || {
        timed_healthz(&b.url).0 == 200
    });
    let burnt = cpu_seconds(b.child.pid());
    thread::sleep(Duration::from_secs(1));
    let burnt = cpu_seconds(b.child.pid()) - burnt;
    drop(flood);
    wait_until(
        Duration::from_secs(10),
        "produce once the sockets closed",
        || b.produce_raw("fds", "", &[pinned(0, 2)]).status == 200,
    );
    assert_eq!(b.fetch_all("fds", 0, 0).len(), 2);
    let log = b.child.log();
    let warnings = log.matches("accept failed").count();
    eprintln!(
        "{warnings} accept warning(s) in {:?}; {burnt:.2} s of CPU in 1 s of exhaustion",
        started.elapsed()
    );
    assert!(warnings <= 2, "the accept loop flooded the log:\n{log}");
    assert!(burnt < 0.5, "the broker burnt {burnt} s of CPU in 1 s");
    assert_eq!(b.stop(), Some(0));
}

/// User plus system CPU time of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf with a valid name.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Whether the peer has answered or closed `s` (without consuming anything).
fn answered_or_closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let done = !matches!(s.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).expect("blocking");
    done
}
