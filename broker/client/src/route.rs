//! Where a request goes when the broker is a cluster: the bootstrap URLs (`BROKER_URL` is
//! `url[,url…]`) and which broker leads each partition, as the client has learned it.
//!
//! Owns the client's memory of partition leaders — learned from a 421's `leader_url` or from
//! `GET /v1/topics/{t}` — and the partitions an NDJSON produce's lines go to. The HTTP exchange,
//! the following of 421 answers and their bound are [`crate::broker`]'s.
//!
//! A cluster of one never answers 421, so nothing is learned and every request goes to the
//! first bootstrap URL that accepts a connection, as with a single URL.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Deserialize;

use crate::wire::TopicMetadata;

/// The bootstrap URLs and the leaders learned, shared by the clones of a client.
#[derive(Debug)]
pub(crate) struct Routes {
    bootstrap: Vec<String>,
    /// The bootstrap URL tried first: the last one that accepted a connection.
    preferred: AtomicUsize,
    learned: Mutex<Learned>,
}

#[derive(Debug, Default)]
struct Learned {
    /// (topic, partition) → the leader's URL.
    leaders: HashMap<(String, u32), String>,
    /// topic → partition count, from the last description read.
    partitions: HashMap<String, u32>,
    /// consumer group → its coordinator's URL, from the last 421 that named it.
    coordinators: HashMap<String, String>,
}

impl Routes {
    pub(crate) fn new(bootstrap: Vec<String>) -> Self {
        Routes {
            bootstrap,
            preferred: AtomicUsize::new(0),
            learned: Mutex::new(Learned::default()),
        }
    }

    /// The bootstrap URLs in the order to try them, the preferred one first, with their index.
    pub(crate) fn bootstrap(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.bootstrap.len();
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        (0..n).map(move |i| {
            let at = (first + i) % n;
            (at, self.bootstrap[at].as_str())
        })
    }

    /// Bootstrap URL `at` accepted a connection: try it first from now on.
    pub(crate) fn prefer(&self, at: usize) {
        self.preferred.store(at, Ordering::Relaxed);
    }

    /// Bootstrap URL `at` failed a request that may have reached it: the next attempt starts
    /// at the one after it (a hung broker is not asked again and again).
    pub(crate) fn avoid(&self, at: usize) {
        let n = self.bootstrap.len().max(1);
        let _ =
            self.preferred
                .compare_exchange(at, (at + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        // The map holds plain data: a panic elsewhere cannot leave it half-changed.
        self.learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn leader(&self, topic: &str, partition: u32) -> Option<String> {
        self.learned()
            .leaders
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub(crate) fn remember(&self, topic: &str, partition: u32, leader: &str) {
        self.learned()
            .leaders
            .insert((topic.to_string(), partition), leader.to_string());
    }

    pub(crate) fn forget(&self, topic: &str, partition: u32) {
        self.learned()
            .leaders
            .remove(&(topic.to_string(), partition));
    }

    /// Takes a topic's description as the truth: its partition count and the leaders it
    /// names. Only a cluster's description counts (one with `leader_id`): a single broker's
    /// `leader` is the URL it was reached by, which the bootstrap list already says.
    pub(crate) fn learn(&self, meta: &TopicMetadata) {
        let mut learned = self.learned();
        learned.leaders.retain(|(topic, _), _| topic != &meta.topic);
        learned
            .partitions
            .insert(meta.topic.clone(), meta.partitions.len() as u32);
        for p in &meta.partitions {
            if let (Some(url), Some(_)) = (&p.leader, p.leader_id) {
                learned
                    .leaders
                    .insert((meta.topic.clone(), p.partition), url.clone());
            }
        }
    }

    /// The one leader of all `partitions` of `topic`, when the client knows it.
    pub(crate) fn leader_of_all(&self, topic: &str, partitions: &BTreeSet<u32>) -> Option<String> {
        let learned = self.learned();
        let mut leaders = partitions
            .iter()
            .map(|&p| learned.leaders.get(&(topic.to_string(), p)));
        let first = leaders.next()??;
        leaders.all(|l| l == Some(first)).then(|| first.clone())
    }

    pub(crate) fn coordinator(&self, group: &str) -> Option<String> {
        self.learned().coordinators.get(group).cloned()
    }

    pub(crate) fn remember_coordinator(&self, group: &str, url: &str) {
        self.learned()
            .coordinators
            .insert(group.to_string(), url.to_string());
    }

    pub(crate) fn forget_coordinator(&self, group: &str) {
        self.learned().coordinators.remove(group);
    }

    pub(crate) fn partition_count(&self, topic: &str) -> Option<u32> {
        self.learned().partitions.get(topic).copied()
    }

    /// Splits an NDJSON produce by partition leader, when the client knows every line's
    /// partition and leader and they are more than one. The same (producer, seq) goes with
    /// every share: a broker checks a seq per partition, and a keyless line's partition is
    /// derived from (producer, seq) and the partition count, not from the lines around it.
    pub(crate) fn split_by_leader(
        &self,
        topic: &str,
        body: &[u8],
        idempotence: Option<(&str, u64)>,
    ) -> Option<Vec<LeaderShare>> {
        let count = self.partition_count(topic)?;
        let lines = routed_lines(body, count, idempotence)?;
        let learned = self.learned();
        let mut shares: Vec<(&String, LeaderShare)> = Vec::new();
        for (i, (p, raw)) in lines.enumerate() {
            let leader = learned.leaders.get(&(topic.to_string(), p))?;
            let at = match shares.iter().position(|(l, _)| *l == leader) {
                Some(at) => at,
                None => {
                    let share = LeaderShare {
                        body: Vec::new(),
                        lines: Vec::new(),
                    };
                    shares.push((leader, share));
                    shares.len() - 1
                }
            };
            let share = &mut shares[at].1;
            share.body.extend_from_slice(raw);
            share.body.push(b'\n');
            share.lines.push(i);
        }
        (shares.len() > 1).then(|| shares.into_iter().map(|(_, s)| s).collect())
    }
}

/// What routes a produce line: the rest of it (the value) is the broker's business.
#[derive(Deserialize)]
struct LineRoute<'a> {
    #[serde(default)]
    partition: Option<u64>,
    #[serde(default, borrow)]
    key: Option<std::borrow::Cow<'a, str>>,
}

/// The partitions an NDJSON produce body's lines go to, by the broker's rules (`partition`,
/// else the key's hash, else the request's keyless partition: `(fnv1a64(producer) + seq) %
/// partitions` when idempotent, a hash of 0 counting as 1). `None` when the client cannot
/// tell: a line that does not parse, a partition out of range, or keyless lines of a request
/// without producer and seq (the broker picks their partition round-robin).
pub(crate) fn line_partitions(
    body: &[u8],
    partitions: u32,
    idempotence: Option<(&str, u64)>,
) -> Option<BTreeSet<u32>> {
    routed_lines(body, partitions, idempotence).map(|lines| lines.map(|(p, _)| p).collect())
}

/// Each message line of an NDJSON body (blank lines skipped, as the broker skips them) with
/// its partition by the broker's rules ([`line_partitions`]); `None` when one cannot be told.
pub(crate) fn routed_lines<'b>(
    body: &'b [u8],
    partitions: u32,
    idempotence: Option<(&str, u64)>,
) -> Option<impl Iterator<Item = (u32, &'b [u8])>> {
    let partitions = partitions.max(1);
    let keyless = idempotence.map(|(producer, seq)| {
        broker_wire::keyless_partition(broker_wire::numeric_producer_id(producer), seq, partitions)
    });
    let mut out = Vec::new();
    for raw in body.split(|&b| b == b'\n') {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line: LineRoute<'_> = serde_json::from_slice(raw).ok()?;
        let p = match (line.partition, line.key) {
            (Some(p), _) if p < u64::from(partitions) => p as u32,
            (Some(_), _) => return None,
            (None, Some(key)) => broker_wire::partition_for_key(key.as_bytes(), partitions),
            (None, None) => keyless?,
        };
        out.push((p, raw));
    }
    Some(out.into_iter())
}

/// One leader's share of an NDJSON produce whose lines span leaders: its lines (in the
/// body's order) and their indices among the body's messages.
pub(crate) struct LeaderShare {
    pub body: Vec<u8>,
    pub lines: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PartitionInfo;

    fn info(partition: u32, leader: &str) -> PartitionInfo {
        PartitionInfo {
            partition,
            log_start_offset: 0,
            log_end_offset: 0,
            leader: Some(leader.to_string()),
            leader_id: Some(u64::from(partition)),
        }
    }

    #[test]
    fn lines_route_like_the_broker_routes_them() {
        let key_part = broker_wire::partition_for_key(b"gpu-1", 4);
        let body = b"{\"key\":\"gpu-1\",\"value\":1}\n{\"partition\":3,\"value\":2}\n\n";
        assert_eq!(
            line_partitions(body, 4, None),
            Some([key_part, 3].into_iter().collect())
        );
        // Keyless lines: known only for an idempotent request.
        let keyless = b"{\"value\":1}\n";
        assert_eq!(line_partitions(keyless, 4, None), None);
        let h = broker_wire::fnv1a64(b"p1");
        let expect = (h.wrapping_add(7) % 4) as u32;
        assert_eq!(
            line_partitions(keyless, 4, Some(("p1", 7))),
            Some([expect].into_iter().collect())
        );
        assert_eq!(
            line_partitions(b"{\"partition\":4,\"value\":1}", 4, None),
            None
        );
    }

    #[test]
    fn a_description_replaces_what_was_learned_and_one_leader_of_all_is_found() {
        let routes = Routes::new(vec!["http://a".into()]);
        routes.remember("t", 5, "http://old");
        routes.learn(&TopicMetadata {
            topic: "t".into(),
            partitions: vec![
                info(0, "http://x"),
                info(1, "http://x"),
                info(2, "http://y"),
            ],
        });
        assert_eq!(routes.leader("t", 5), None);
        assert_eq!(routes.partition_count("t"), Some(3));
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(
            routes.leader_of_all("t", &set(&[0, 1])).as_deref(),
            Some("http://x")
        );
        assert_eq!(routes.leader_of_all("t", &set(&[0, 2])), None);
        assert_eq!(routes.leader_of_all("t", &set(&[])), None);
    }

    #[test]
    fn bootstrap_order_starts_at_the_preferred_url() {
        let routes = Routes::new(vec!["a".into(), "b".into(), "c".into()]);
        let order = |r: &Routes| {
            r.bootstrap()
                .map(|(_, u)| u.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&routes), ["a", "b", "c"]);
        routes.prefer(1);
        assert_eq!(order(&routes), ["b", "c", "a"]);
        routes.avoid(1);
        assert_eq!(order(&routes), ["c", "a", "b"]);
        // Avoiding a URL that is no longer the first changes nothing.
        routes.avoid(0);
        assert_eq!(order(&routes), ["c", "a", "b"]);
    }
}
