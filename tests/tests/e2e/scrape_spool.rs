//! The scrape spool (`--spool-dir`): scraping goes on while the broker is down, the scrapes
//! wait on disk and are produced once it is back — across a broker `kill -9` and a streamer
//! `kill -9` — each stored once; a full spool drops its oldest scrapes, counts them and keeps
//! running. Real broker, streamer, collector and PostgreSQL.

use std::time::Duration;

use testkit::{free_port, wait_until, Postgres};

use crate::pipeline::{collector, tail, Broker};
use crate::scrape::{all_points, POINTS_PER_SCRAPE};
use crate::scrape_fleet::{
    assert_each_scrape_once, metric, now_ms, scraper, stop, stored_scrapes, wait_stored, Fleet,
};

const INTERVAL_MS: i64 = 250;

/// Every scrape served by the fleet in `window` has its stored scrape (timed just before the
/// request).
fn assert_served_are_stored(
    fleet: &Fleet,
    targets: usize,
    window: std::ops::Range<i64>,
    scrapes: &std::collections::BTreeMap<String, Vec<(i64, i64)>>,
) -> usize {
    let mut checked = 0;
    for i in 0..targets {
        let stored = scrapes
            .get(&format!("node-{i}"))
            .cloned()
            .unwrap_or_default();
        for served in fleet.served(i).into_iter().filter(|t| window.contains(t)) {
            assert!(
                stored
                    .iter()
                    .any(|(ts, _)| (*ts..=ts + 500).contains(&served)),
                "node-{i}: the scrape served at {served} is not stored"
            );
            checked += 1;
        }
    }
    checked
}

fn spool_entries(port: u16) -> f64 {
    metric(port, "streamer_scrape_spool_entries").unwrap_or(-1.0)
}

#[test]
fn scrapes_taken_while_the_broker_is_down_wait_in_the_spool_and_are_stored_once() {
    let fleet = Fleet::serve();
    let pg = Postgres::start();
    let mut broker = Broker::start();
    let mut collector = collector(&broker, &pg, &[]);
    let spool = tempfile::tempdir().unwrap();
    let targets = format!("{},{}", fleet.url(0), fleet.url(1));
    let spool_dir = spool.path().display().to_string();
    let port = free_port();
    let mut streamer = scraper(
        &broker,
        &[
            "--scrape",
            &targets,
            "--scrape-interval",
            "250ms",
            "--spool-dir",
            &spool_dir,
        ],
        port,
    );
    wait_until(Duration::from_secs(30), "scrapes in the broker", || {
        broker.log_end_total() >= 4 * POINTS_PER_SCRAPE as i64
    });

    broker.kill9();
    let down_at = now_ms();
    wait_until(
        Duration::from_secs(30),
        "scrapes waiting in the spool",
        || spool_entries(port) >= 12.0,
    );
    let up_at = now_ms();
    broker.restart();
    wait_until(Duration::from_secs(60), "the spool drained", || {
        spool_entries(port) == 0.0
    });
    stop("streamer", &mut streamer);

    wait_stored(&pg, &broker);
    let scrapes = stored_scrapes(&pg);
    assert_each_scrape_once(&scrapes, INTERVAL_MS);
    let during = assert_served_are_stored(&fleet, 2, down_at..up_at, &scrapes);
    assert!(during >= 12, "{during} scrapes during the outage");
    collector.terminate(Duration::from_secs(15));
}

#[test]
fn a_streamer_killed_with_scrapes_in_its_spool_sends_them_after_a_restart() {
    let fleet = Fleet::serve();
    let pg = Postgres::start();
    let mut broker = Broker::start();
    let mut collector = collector(&broker, &pg, &[]);
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().display().to_string();
    let target = fleet.url(0);
    let flags = [
        "--scrape",
        target.as_str(),
        "--scrape-interval",
        "250ms",
        "--spool-dir",
        spool_dir.as_str(),
    ];
    let port = free_port();
    let mut first = scraper(&broker, &flags, port);
    wait_until(Duration::from_secs(30), "scrapes in the broker", || {
        broker.log_end_total() >= 2 * POINTS_PER_SCRAPE as i64
    });
    broker.kill9();
    let down_at = now_ms();
    wait_until(
        Duration::from_secs(30),
        "scrapes waiting in the spool",
        || spool_entries(port) >= 8.0,
    );
    first.kill9();
    let killed_at = now_ms();

    broker.restart();
    let port = free_port();
    let mut second = scraper(&broker, &flags, port);
    wait_until(Duration::from_secs(60), "the spool drained", || {
        spool_entries(port) == 0.0 && fleet.served(0).iter().any(|&t| t > killed_at + 1000)
    });
    stop("second", &mut second);

    wait_stored(&pg, &broker);
    let scrapes = stored_scrapes(&pg);
    assert_each_scrape_once(&scrapes, INTERVAL_MS);
    // A scrape served in the last moment before the kill may not have reached the spool.
    let spooled = assert_served_are_stored(&fleet, 1, down_at..killed_at - 300, &scrapes);
    assert!(
        spooled >= 6,
        "{spooled} scrapes spooled by the killed streamer"
    );
    collector.terminate(Duration::from_secs(15));
}

#[test]
fn a_full_spool_drops_its_oldest_scrapes_counts_them_and_keeps_scraping() {
    let fleet = Fleet::serve();
    let mut broker = Broker::start();
    broker.kill9();
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().display().to_string();
    let port = free_port();
    let target = fleet.url(0);
    // The smallest spool there is (128 KiB a lane: about 18 scrapes of this target).
    let mut streamer = scraper(
        &broker,
        &[
            "--scrape",
            &target,
            "--scrape-share",
            "false",
            "--scrape-interval",
            "50ms",
            "--spool-dir",
            &spool_dir,
            "--spool-max-bytes",
            "1",
        ],
        port,
    );
    wait_until(Duration::from_secs(60), "scrapes dropped", || {
        metric(port, "streamer_scrape_spool_dropped_total").is_some_and(|n| n >= 20.0)
    });
    assert!(streamer.is_running(), "{}", tail(&streamer.log()));
    let bytes = metric(port, "streamer_scrape_spool_bytes").unwrap_or(f64::MAX);
    assert!(bytes <= (160 << 10) as f64, "the spool holds {bytes} bytes");
    let first_served = fleet.served(0)[0];

    broker.restart();
    wait_until(Duration::from_secs(60), "the spool drained", || {
        spool_entries(port) == 0.0
    });
    stop("streamer", &mut streamer);
    // The oldest scrapes went, the newest stayed.
    let points = all_points(&broker);
    let oldest = points
        .iter()
        .map(|p| p.ts.timestamp_millis())
        .min()
        .expect("points stored");
    assert!(
        oldest > first_served + 500,
        "the first scrape ({first_served}) was dropped, not the later ones ({oldest})"
    );
}
