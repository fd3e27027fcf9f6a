//! `streamer --scrape`: live ingest from dcgm-exporter. The targets are discovered
//! ([`discovery`]: flags ∪ `--scrape-targets-file` ∪ `--scrape-dns`), shared with the other
//! streamers of the group ([`sharing`]), scraped on a grid of slots by a bounded worker pool
//! ([`pool`]), mapped onto points ([`crate::scrape`]), written to a bounded spool ([`spool`])
//! and produced from there, oldest first ([`send`]). Scraping never waits for the broker: while
//! it is unreachable the scrapes wait in the spool.
//!
//! Exactly once per scrape: each target produces under its own producer id
//! ([`crate::scrape::producer_id`], from its URL — the same in every streamer of a group) and
//! each scrape under the seq of its slot (its time on the target's grid, in milliseconds since
//! the epoch). A spooled scrape is produced until acknowledged, with the same body and seq, so
//! a broker that dies and comes back answers the retry as a duplicate when it had stored the
//! scrape and stores it once when it had not; a restarted streamer resends its spool the same
//! way, then goes on from the clock, past every seq it used before.
//!
//! Handovers, exactly (see docs/scraping.md): a target that moves from streamer A to streamer
//! B is scraped by B from B's first slot after it sees the new assignment, and by A until A
//! sees it (both look every 0.5 s). A slot scraped by both is stored once — same producer
//! id, same seq: the broker keeps the first and answers the second as a duplicate (or, when the
//! two scrapes differ in sample count, refuses it with 409: counted as refused). Nothing is
//! stored twice; the gap is the slots no one scrapes: at most the one slot that falls between
//! A's stop and B's start when A leaves on SIGTERM or B joins, and up to
//! `--scrape-session-timeout` plus about a second of slots when A dies without leaving. A
//! scrape A still holds in its spool after B produced a later slot of the same target is
//! refused (409, `streamer_scrape_refused_total`): the broker never accepts a seq below the
//! newest of a producer, which is what keeps a late copy from being stored twice.
//!
//! Every streamer of a group must use the same `--scrape-interval` (the grid) and have a clock
//! within well under an interval of the others' (NTP); a clock stepped back costs the slots
//! until it has caught up (refused, counted).

pub mod discovery;
pub mod pool;
pub mod send;
pub mod sharing;
pub mod spool;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use metrics::{counter, gauge};
use pipeline_common::ops::Readiness;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::scrape::{target_host, ShapeCache};
use crate::streamer::targets_file::TargetsFile;
use broker_client::BrokerClient;
use discovery::Discovery;
use pool::{now_ms, slot_at_or_after, Job, Workers};
use send::Sent;
use sharing::Sharing;
use spool::Spool;

/// The scrape mode's settings (its documented flags).
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    pub topic: String,
    /// The targets' URLs (dcgm-exporter's `http://node:9400/metrics`) of the `--scrape` flags.
    pub targets: Vec<String>,
    /// `--scrape-targets-file`: more targets, from a file re-read while running.
    pub targets_file: Option<TargetsFile>,
    /// `--scrape-dns NAME:PORT`: every address of each name.
    pub dns: Vec<String>,
    pub interval: Duration,
    /// For each scrape's HTTP request as a whole.
    pub timeout: Duration,
    /// Partitions to create the topic with when it does not exist yet.
    pub partitions: u32,
    /// Share the targets with the group's other streamers (`--scrape-share`).
    pub share: bool,
    pub group: String,
    /// Slots to create the slots topic with.
    pub slots: u32,
    pub session_timeout: Duration,
    /// Worker threads scraping.
    pub concurrency: usize,
    /// The spool's directory; in memory when `None`.
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: u64,
}

impl ScrapeConfig {
    /// The targets at the start: the flags' then the file's, each once (DNS names are resolved
    /// once running).
    pub fn initial_targets(&self) -> Vec<String> {
        union(
            &self.targets,
            self.targets_file.as_ref().map_or(&[], |f| &f.urls),
        )
    }
}

/// `a` then the URLs of `b` not in `a`.
fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut all = a.to_vec();
    for url in b {
        if !all.contains(url) {
            all.push(url.clone());
        }
    }
    all
}

/// What a target looks like now, as `GET /targets` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetState {
    pub url: String,
    /// `up` after a scrape that succeeded, `down` after one that failed, `unknown` before the
    /// first.
    pub health: &'static str,
    /// When the last scrape started.
    pub last_scrape: Option<DateTime<Utc>>,
    /// How long the last scrape's request and mapping took, in seconds.
    pub last_scrape_duration_seconds: f64,
    /// Points of the last scrape acknowledged by the broker.
    pub last_samples_stored: u64,
    /// Samples of the last scrape that became no point.
    pub last_samples_skipped: u64,
    /// Why the last scrape or its produce failed; null after a success.
    pub last_error: Option<String>,
}

/// The state of every target, shared between the scraping threads and the ops server.
#[derive(Debug, Default)]
pub struct Targets(Mutex<Vec<TargetState>>);

impl Targets {
    pub fn new(urls: &[String]) -> Targets {
        let targets = Targets::default();
        for url in urls {
            targets.add(url);
        }
        targets
    }

    /// A target not scraped yet, unless it is there.
    fn add(&self, url: &str) {
        if let Ok(mut targets) = self.0.lock() {
            if !targets.iter().any(|t| t.url == url) {
                targets.push(TargetState {
                    url: url.to_string(),
                    health: "unknown",
                    last_scrape: None,
                    last_scrape_duration_seconds: 0.0,
                    last_samples_stored: 0,
                    last_samples_skipped: 0,
                    last_error: None,
                });
            }
        }
    }

    fn remove(&self, url: &str) {
        if let Ok(mut targets) = self.0.lock() {
            targets.retain(|t| t.url != url);
        }
    }

    /// Every target's state, in the order they became this streamer's.
    pub fn snapshot(&self) -> Vec<TargetState> {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// `{"targets":[…]}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "targets": self.snapshot() }).to_string()
    }

    /// Changes a target's state; `false` when it is not (or no longer) a target.
    fn update(&self, url: &str, f: impl FnOnce(&mut TargetState)) -> bool {
        let Ok(mut targets) = self.0.lock() else {
            return false;
        };
        match targets.iter_mut().find(|t| t.url == url) {
            Some(t) => {
                f(t);
                true
            }
            None => false,
        }
    }

    /// What the broker said to a scrape of the target.
    fn sent(&self, url: &str, sent: Sent) {
        self.update(url, |t| match sent {
            Sent::Stored(points) => t.last_samples_stored = points as u64,
            Sent::Duplicate => t.last_samples_stored = 0,
            Sent::Refused => {
                t.last_error =
                    Some("the broker refused a scrape: a later one of the target is in".into())
            }
            Sent::Failed => t.last_error = Some("the broker refused a scrape's points".into()),
        });
    }
}

/// Checks the targets' URLs: each needs a host (for samples without `Hostname`) and the
/// `http://` or `https://` scheme; no URL may be given twice (one producer id each). None at
/// all is an error unless `discovered` (a targets file or a DNS name, which may name none for
/// now).
pub fn check_targets(urls: &[String], discovered: bool) -> std::result::Result<(), String> {
    for (i, url) in urls.iter().enumerate() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--scrape {url:?}: not an http:// or https:// URL"));
        }
        if target_host(url).is_none() {
            return Err(format!("--scrape {url:?}: no host in the URL"));
        }
        if urls[..i].contains(url) {
            return Err(format!("--scrape {url:?} is given twice"));
        }
    }
    if urls.is_empty() && !discovered {
        return Err("no --scrape target".into());
    }
    Ok(())
}

/// How often the scheduler looks at the target set and the assignment.
const RESCAN: Duration = Duration::from_millis(200);

/// A target this streamer scrapes.
struct Scheduled {
    next_ms: u64,
    busy: Arc<AtomicBool>,
    /// Its last scrape's shape (dropped with the target).
    shape: Arc<Mutex<ShapeCache>>,
}

/// Scrapes this streamer's share of the targets until `client`'s shutdown flag is set
/// (SIGTERM, SIGINT), following the target set and the group's assignment.
pub fn run(
    config: &ScrapeConfig,
    client: BrokerClient,
    readiness: &Readiness,
    targets: &Arc<Targets>,
) -> Result<()> {
    let discovered = config.targets_file.is_some() || !config.dns.is_empty();
    check_targets(&config.targets, discovered).map_err(|reason| Error::Decode {
        url: String::new(),
        reason,
    })?;
    let spool = Spool::open(config.spool_dir.as_deref(), config.spool_max_bytes)?;
    let shutdown = client.shutdown_flag().clone();
    let mut discovery = Discovery::start(
        &config.targets,
        config.targets_file.as_ref(),
        &config.dns,
        config.interval,
        &shutdown,
    )?;
    let workers = Workers {
        agent: ureq::AgentBuilder::new()
            .timeout(config.timeout)
            .max_idle_connections_per_host(1)
            .user_agent(concat!("streamer/", env!("CARGO_PKG_VERSION")))
            .build(),
        spool: &spool,
        targets,
    };
    let (jobs, rx) = mpsc::channel::<Job>();
    let rx = Mutex::new(rx);
    let result = std::thread::scope(|scope| -> Result<()> {
        // The senders drain what a previous run left at once, joined or not.
        let mut started = send::start(
            scope,
            &spool,
            &client,
            &config.topic,
            config.partitions,
            targets,
        );
        let mut pool = Vec::new();
        for n in 0..config.concurrency.max(1) {
            let (workers, rx) = (&workers, &rx);
            started = started.and_then(|()| {
                std::thread::Builder::new()
                    .name(format!("scrape-{n}"))
                    .spawn_scoped(scope, move || workers.run(rx))
                    .map(|handle| pool.push(handle))
            });
        }
        if let Err(e) = started {
            // The threads started end with the shutdown flag and the closed spool.
            shutdown.trigger();
            spool.close();
            return Err(e.into());
        }
        let sharing = if config.share {
            match Sharing::join(
                &client,
                &config.group,
                &config.topic,
                config.slots,
                config.session_timeout,
            ) {
                Ok(sharing) => sharing,
                Err(e) if e.is_interrupted() => {
                    spool.close();
                    return Ok(());
                }
                Err(e) => {
                    // The senders and workers end with the shutdown flag and the closed spool.
                    shutdown.trigger();
                    spool.close();
                    return Err(e);
                }
            }
        } else {
            Sharing::All
        };
        readiness.set(true);
        schedule(
            config,
            &mut discovery,
            sharing,
            &spool,
            targets,
            &jobs,
            &shutdown,
        );
        readiness.set(false);
        // Closing the channel ends the workers after their scrape; then the senders send what
        // the broker takes at once and end (see `send`), leaving the rest in the spool.
        drop(jobs);
        for handle in pool {
            let _ = handle.join();
        }
        spool.close();
        Ok(())
    });
    spool.flush();
    let left = spool.entries();
    if left > 0 {
        if spool.is_disk() {
            tracing::info!(
                scrapes = left,
                "unsent scrapes stay in the spool for the next start"
            );
        } else {
            tracing::warn!(
                scrapes = left,
                "unsent scrapes lost: the spool is in memory (--spool-dir)"
            );
        }
    }
    result
}

/// The scheduler loop: follows the targets and the assignment, hands due slots to the pool.
fn schedule(
    config: &ScrapeConfig,
    discovery: &mut Discovery,
    mut sharing: Sharing,
    spool: &Spool,
    targets: &Targets,
    jobs: &mpsc::Sender<Job>,
    shutdown: &pipeline_common::shutdown::ShutdownFlag,
) {
    let interval_ms = (config.interval.as_millis() as u64).max(1);
    let mut scheduled: HashMap<String, Scheduled> = HashMap::new();
    let mut next_rescan = Instant::now();
    while !shutdown.is_set() {
        if Instant::now() >= next_rescan {
            next_rescan = Instant::now() + RESCAN;
            sharing.refresh();
            if let Some(slots) = sharing.owned_slots() {
                gauge!("streamer_scrape_slots_owned").set(slots as f64);
            }
            let wanted: Vec<String> = discovery
                .targets()
                .into_iter()
                .filter(|url| sharing.owns(url))
                .collect();
            scheduled.retain(|url, _| {
                let keep = wanted.contains(url);
                if !keep {
                    tracing::info!(target = %url, "no longer this streamer's target: stopping its scrapes");
                    targets.remove(url);
                    gauge!("streamer_scrape_up", "target" => url.clone()).set(0.0);
                }
                keep
            });
            for url in wanted {
                if scheduled.contains_key(&url) {
                    continue;
                }
                tracing::info!(target = %url, producer = %crate::scrape::producer_id(&url), "scraping");
                targets.add(&url);
                gauge!("streamer_scrape_up", "target" => url.clone()).set(0.0);
                let next_ms = slot_at_or_after(&url, interval_ms, now_ms());
                scheduled.insert(
                    url,
                    Scheduled {
                        next_ms,
                        busy: Arc::new(AtomicBool::new(false)),
                        shape: Arc::default(),
                    },
                );
            }
            gauge!("streamer_scrape_targets").set(scheduled.len() as f64);
            send::spool_gauges(spool);
        }
        let now = now_ms();
        let mut soonest = now + RESCAN.as_millis() as u64;
        for (url, s) in scheduled.iter_mut() {
            if s.next_ms <= now {
                if s.busy.swap(true, Ordering::SeqCst) {
                    counter!("streamer_scrape_missed_total", "target" => url.clone()).increment(1);
                } else {
                    let job = Job {
                        url: url.clone(),
                        slot_ms: s.next_ms,
                        busy: Arc::clone(&s.busy),
                        shape: Arc::clone(&s.shape),
                    };
                    if jobs.send(job).is_err() {
                        return;
                    }
                }
                // The next slot after now: slots missed while behind are skipped.
                s.next_ms = slot_at_or_after(url, interval_ms, now + 1);
            }
            soonest = soonest.min(s.next_ms);
        }
        let wait = soonest.saturating_sub(now_ms()).min(50);
        std::thread::sleep(Duration::from_millis(wait.max(1)));
    }
    for url in scheduled.keys() {
        gauge!("streamer_scrape_up", "target" => url.clone()).set(0.0);
    }
    sharing.leave();
}
#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::{check_targets, ScrapeConfig, Targets};
    use crate::streamer::targets_file::TargetsFile;

    #[test]
    fn the_flags_and_the_file_are_a_union() {
        let flags = vec![
            "http://a:1/metrics".to_string(),
            "http://b:1/metrics".into(),
        ];
        let config = ScrapeConfig {
            topic: "t".into(),
            targets: flags.clone(),
            targets_file: Some(TargetsFile {
                path: PathBuf::from("t.json"),
                text: Vec::new(),
                urls: vec!["http://b:1/metrics".into(), "http://c:1/metrics".into()],
            }),
            dns: Vec::new(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            partitions: 1,
            share: true,
            group: "g".into(),
            slots: 64,
            session_timeout: Duration::from_secs(3),
            concurrency: 1,
            spool_dir: None,
            spool_max_bytes: 1 << 20,
        };
        assert_eq!(
            config.initial_targets(),
            [
                "http://a:1/metrics",
                "http://b:1/metrics",
                "http://c:1/metrics"
            ]
        );
        // No target at all: an error without a file, waiting for the file's with one.
        assert!(check_targets(&[], false).is_err());
        assert!(check_targets(&[], true).is_ok());
        assert!(check_targets(&flags, false).is_ok());
    }

    #[test]
    fn targets_come_and_go_by_url() {
        let targets = Targets::new(&["http://a:1/metrics".to_string()]);
        targets.add("http://b:1/metrics");
        targets.add("http://a:1/metrics");
        targets.update("http://b:1/metrics", |t| t.health = "up");
        targets.remove("http://a:1/metrics");
        let now = targets.snapshot();
        assert_eq!(now.len(), 1);
        assert_eq!(
            (now[0].url.as_str(), now[0].health),
            ("http://b:1/metrics", "up")
        );
    }
}
