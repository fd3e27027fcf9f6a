//! The target set: the `--scrape` flags' URLs, then `--scrape-targets-file`'s (re-read every
//! [`targets_file::POLL`]), then every address of each `--scrape-dns NAME:PORT` as
//! `http://ADDR:PORT/metrics` (IPv6 in brackets), each URL once.
//!
//! Each DNS name is resolved by a thread of its own (a lookup may block for seconds) every
//! [`dns_refresh`] of the scrape interval; a lookup that fails, or finds no address, keeps the
//! last good addresses, is logged (once per failure streak) and counted in
//! `streamer_scrape_dns_failures_total{name}`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::counter;
use pipeline_common::shutdown::ShutdownFlag;

use crate::streamer::targets_file::{self, TargetsFile, Watcher};

/// How often a `--scrape-dns` name is resolved again: the scrape interval, but at least every
/// 30 s and at most every second.
pub fn dns_refresh(interval: Duration) -> Duration {
    interval.clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Checks a `--scrape-dns` value: `NAME:PORT` with a port number.
pub fn parse_dns_arg(raw: &str) -> Result<String, String> {
    let (name, port) = raw
        .rsplit_once(':')
        .ok_or_else(|| format!("{raw:?}: expected NAME:PORT"))?;
    if name.is_empty() {
        return Err(format!("{raw:?}: no name before the port"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{raw:?}: {port:?} is not a port number"))?;
    Ok(raw.to_string())
}

/// The scrape URL of one resolved address.
pub fn url_of(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("http://{}:{}/metrics", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("http://[{}]:{}/metrics", a.ip(), a.port()),
    }
}

/// Resolves `name_port` once: its scrape URLs, sorted, or why not.
pub fn resolve(name_port: &str) -> Result<Vec<String>, String> {
    let mut urls: Vec<String> = name_port
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .map(url_of)
        .collect();
    if urls.is_empty() {
        return Err("no address".into());
    }
    urls.sort();
    urls.dedup();
    Ok(urls)
}

/// Keeps the target set current.
pub struct Discovery {
    flags: Vec<String>,
    watcher: Option<Watcher>,
    next_file_poll: Instant,
    /// Per `--scrape-dns` name: its last good URLs, kept by its resolver thread.
    dns: Vec<Arc<Mutex<Vec<String>>>>,
}

impl Discovery {
    /// Starts the resolver threads (they end with `shutdown`). The first lookup of each name
    /// is done here, so the first target set has its addresses when they resolve.
    pub fn start(
        flags: &[String],
        file: Option<&TargetsFile>,
        dns: &[String],
        interval: Duration,
        shutdown: &ShutdownFlag,
    ) -> std::io::Result<Discovery> {
        let mut sets = Vec::new();
        for name in dns {
            let set = Arc::new(Mutex::new(Vec::new()));
            resolve_into(name, &set, &mut false);
            let (name, mine, shutdown) = (name.clone(), Arc::clone(&set), shutdown.clone());
            std::thread::Builder::new()
                .name("scrape-dns".into())
                .spawn(move || resolver(&name, &mine, dns_refresh(interval), &shutdown))?;
            sets.push(set);
        }
        Ok(Discovery {
            flags: flags.to_vec(),
            watcher: file.map(Watcher::new),
            next_file_poll: Instant::now() + targets_file::POLL,
            dns: sets,
        })
    }

    /// The target set now (reading the file again when it is time).
    pub fn targets(&mut self) -> Vec<String> {
        if let Some(watcher) = self.watcher.as_mut() {
            if Instant::now() >= self.next_file_poll {
                watcher.poll();
                self.next_file_poll = Instant::now() + targets_file::POLL;
            }
        }
        let mut all = self.flags.clone();
        let file = self.watcher.as_ref().map_or(&[][..], |w| w.urls());
        let dns: Vec<String> = self
            .dns
            .iter()
            .flat_map(|set| set.lock().map(|s| s.clone()).unwrap_or_default())
            .collect();
        for url in file.iter().chain(&dns) {
            if !all.contains(url) {
                all.push(url.clone());
            }
        }
        all
    }
}

fn resolver(name: &str, set: &Mutex<Vec<String>>, every: Duration, shutdown: &ShutdownFlag) {
    let mut failing = false;
    loop {
        let until = Instant::now() + every;
        while Instant::now() < until {
            if shutdown.is_set() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        resolve_into(name, set, &mut failing);
    }
}

/// One lookup of `name`: its URLs replace the set, or a failure keeps it.
fn resolve_into(name: &str, set: &Mutex<Vec<String>>, failing: &mut bool) {
    match resolve(name) {
        Ok(urls) => {
            if let Ok(mut set) = set.lock() {
                if *set != urls {
                    tracing::info!(name, targets = ?urls, "scrape DNS name resolved");
                    *set = urls;
                }
            }
            if *failing {
                tracing::info!(name, "scrape DNS name resolves again");
            }
            *failing = false;
        }
        Err(error) => {
            counter!("streamer_scrape_dns_failures_total", "name" => name.to_string()).increment(1);
            if !*failing {
                tracing::warn!(name, %error, "cannot resolve a scrape DNS name: keeping its last addresses");
            }
            *failing = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::{parse_dns_arg, resolve, url_of};

    #[test]
    fn addresses_become_urls_with_ipv6_in_brackets() {
        let v4: SocketAddr = "10.0.0.7:9400".parse().unwrap();
        let v6: SocketAddr = "[fd00::7]:9400".parse().unwrap();
        assert_eq!(url_of(v4), "http://10.0.0.7:9400/metrics");
        assert_eq!(url_of(v6), "http://[fd00::7]:9400/metrics");
    }

    #[test]
    fn dns_args_need_a_name_and_a_port() {
        assert!(parse_dns_arg("dcgm-exporter.gpu.svc:9400").is_ok());
        for bad in ["dcgm", ":9400", "dcgm:http", "dcgm:70000"] {
            assert!(parse_dns_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn localhost_resolves_to_loopback_urls() {
        let urls = resolve("localhost:9400").unwrap();
        assert!(
            urls.iter()
                .any(|u| u == "http://127.0.0.1:9400/metrics" || u == "http://[::1]:9400/metrics"),
            "{urls:?}"
        );
        assert!(resolve("no-such-name.invalid:9400").is_err());
    }
}
