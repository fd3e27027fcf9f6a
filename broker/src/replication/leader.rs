//! What a partition's leader knows of its followers, and the rules it decides by: the high
//! watermark, who leaves the in-sync replicas (ISR) and who may rejoin them.
//!
//! Pure bookkeeping, no I/O: the replica fetch handler reports each follower fetch
//! ([`LeaderState::on_fetch`]), the replication task asks for laggards
//! ([`LeaderState::laggards`]), and the metadata's ISR is pushed in when it changes
//! ([`LeaderState::set_isr`]). Proposing ISR changes and publishing the watermark are
//! `replication/mod.rs`'s.
//!
//! The rules, Kafka's:
//! - A follower's fetch offset is its log end (it fetches from there), and it fetches only
//!   after truncating its log to agree with this leader's epoch, so an offset reported in the
//!   current epoch is a prefix of the leader's log.
//! - The high watermark (HW) is the least end over the ISR (the leader's own end included); it
//!   never goes back. A produce is acknowledged once the HW passes its batch: on every ISR
//!   member. An ISR member that has not fetched in this epoch holds the HW where it is.
//! - A follower is caught up at a fetch when its offset reaches the leader's end at that
//!   moment, or the leader's end at its previous fetch (then it was caught up as of that
//!   previous fetch). An ISR member not caught up for the lag time is a laggard: the leader
//!   proposes an ISR without it, and the HW stops waiting for it once that is applied.
//! - A follower outside the ISR rejoins when its offset reaches the HW and this epoch's first
//!   offset (so it holds everything acknowledged, in this leader's history).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use broker_meta::NodeId;

/// How long a proposed ISR change is left to apply before the same change is proposed again.
const ISR_CHANGE_RETRY: Duration = Duration::from_secs(2);

/// A follower as its fetches show it.
#[derive(Clone, Copy, Debug)]
struct Follower {
    /// Its log end at its last fetch in this epoch (`None`: no fetch yet).
    end: Option<u64>,
    last_fetch: Instant,
    /// The leader's end at its last fetch.
    leader_end_at_last_fetch: u64,
    /// When it was last caught up (see the module doc).
    caught_up: Instant,
}

/// One partition's leadership at one epoch.
#[derive(Debug)]
pub struct LeaderState {
    pub epoch: u32,
    me: NodeId,
    replicas: Vec<NodeId>,
    isr: Vec<NodeId>,
    followers: BTreeMap<NodeId, Follower>,
    hw: u64,
    /// The leader's log end when it took over: this epoch's first offset.
    epoch_start: u64,
    /// The last ISR change proposed, and when (not proposed again until it applied or
    /// [`ISR_CHANGE_RETRY`] passed).
    proposed: Option<(Vec<NodeId>, Instant)>,
}

impl LeaderState {
    /// `hw`: the watermark this broker knew when it took over (it never goes back);
    /// `epoch_start`: its log end then. Every follower gets the lag time from `now` to show
    /// up before it counts as a laggard.
    pub fn new(
        me: NodeId,
        epoch: u32,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        hw: u64,
        epoch_start: u64,
        now: Instant,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|&&n| n != me)
            .map(|&n| {
                let f = Follower {
                    end: None,
                    last_fetch: now,
                    leader_end_at_last_fetch: epoch_start,
                    caught_up: now,
                };
                (n, f)
            })
            .collect();
        LeaderState {
            epoch,
            me,
            replicas,
            isr,
            followers,
            hw: hw.min(epoch_start),
            epoch_start,
            proposed: None,
        }
    }

    pub fn high_watermark(&self) -> u64 {
        self.hw
    }

    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    pub fn isr(&self) -> &[NodeId] {
        &self.isr
    }

    /// The metadata's ISR (after a change this leader or the controller made).
    pub fn set_isr(&mut self, isr: Vec<NodeId>) {
        if self.proposed.as_ref().is_some_and(|(p, _)| *p == isr) {
            self.proposed = None;
        }
        self.isr = isr;
    }

    /// A fetch by `node` from `offset` when the leader's end is `leader_end`. Returns the
    /// ISR to propose when this fetch makes an outside follower eligible to rejoin.
    pub fn on_fetch(
        &mut self,
        node: NodeId,
        offset: u64,
        leader_end: u64,
        now: Instant,
    ) -> Option<Vec<NodeId>> {
        let f = self.followers.get_mut(&node)?;
        if offset >= leader_end {
            f.caught_up = now;
        } else if offset >= f.leader_end_at_last_fetch {
            f.caught_up = f.caught_up.max(f.last_fetch);
        }
        f.end = Some(offset);
        f.last_fetch = now;
        f.leader_end_at_last_fetch = leader_end;
        let rejoins = !self.isr.contains(&node) && offset >= self.hw && offset >= self.epoch_start;
        if !rejoins {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.push(node);
        isr.sort_unstable();
        self.propose(isr, now)
    }

    /// Recomputes the HW from the ISR's ends and the leader's own (`leader_end`); returns the
    /// new HW when it moved. A follower proposed back into the ISR counts from the proposal
    /// on (Kafka's KIP-497 "maximal ISR"): the metadata may list it as in sync — and so as a
    /// possible next leader — before this leader has applied the change, so nothing may be
    /// acknowledged without it meanwhile. A proposal that did not apply within
    /// [`ISR_CHANGE_RETRY`] stops counting.
    pub fn advance(&mut self, leader_end: u64) -> Option<u64> {
        let now = Instant::now();
        let pending: &[NodeId] = match &self.proposed {
            Some((isr, at)) if now.saturating_duration_since(*at) < ISR_CHANGE_RETRY => isr,
            _ => &[],
        };
        let mut least = leader_end;
        let mut counted: Vec<NodeId> = self.isr.clone();
        counted.extend(pending.iter().filter(|n| !self.isr.contains(n)));
        for node in counted.iter().filter(|&&n| n != self.me) {
            match self.followers.get(node).and_then(|f| f.end) {
                Some(end) => least = least.min(end),
                // An ISR member not heard from in this epoch holds the HW.
                None => return None,
            }
        }
        if least > self.hw {
            self.hw = least;
            return Some(least);
        }
        None
    }

    /// The ISR to propose without the members not caught up for `lag` (`None`: nobody lags,
    /// or the same change is already proposed).
    pub fn laggards(&mut self, now: Instant, lag: Duration) -> Option<Vec<NodeId>> {
        let keep: Vec<NodeId> = self
            .isr
            .iter()
            .copied()
            .filter(|n| {
                *n == self.me
                    || self
                        .followers
                        .get(n)
                        .is_some_and(|f| now.saturating_duration_since(f.caught_up) < lag)
            })
            .collect();
        if keep.len() == self.isr.len() {
            return None;
        }
        self.propose(keep, now)
    }

    /// Whether `node` is one of this partition's followers.
    pub fn is_follower(&self, node: NodeId) -> bool {
        self.followers.contains_key(&node) && self.replicas.contains(&node)
    }

    fn propose(&mut self, isr: Vec<NodeId>, now: Instant) -> Option<Vec<NodeId>> {
        if let Some((pending, at)) = &self.proposed {
            if *pending == isr && now.saturating_duration_since(*at) < ISR_CHANGE_RETRY {
                return None;
            }
        }
        self.proposed = Some((isr.clone(), now));
        Some(isr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_secs(5);

    fn leader(isr: Vec<NodeId>, end: u64, now: Instant) -> LeaderState {
        LeaderState::new(0, 3, vec![0, 1, 2], isr, 0, end, now)
    }

    #[test]
    fn the_high_watermark_is_the_least_end_over_the_isr_and_never_goes_back() {
        let t = Instant::now();
        let mut l = leader(vec![0, 1, 2], 0, t);
        // Nobody fetched yet: the HW waits even though the leader has 10.
        assert_eq!(l.advance(10), None);
        l.on_fetch(1, 10, 10, t);
        assert_eq!(l.advance(10), None, "node 2 has not fetched in this epoch");
        l.on_fetch(2, 4, 10, t);
        assert_eq!(l.advance(10), Some(4));
        l.on_fetch(2, 10, 12, t);
        assert_eq!(l.advance(12), Some(10));
        // The leader's own end bounds it too.
        l.on_fetch(1, 12, 12, t);
        l.on_fetch(2, 12, 12, t);
        assert_eq!(l.advance(11), Some(11), "never past the leader's own end");
        assert_eq!(l.advance(9), None, "never back");
        assert_eq!(l.high_watermark(), 11);
        assert_eq!(l.advance(12), Some(12));
    }

    #[test]
    fn an_isr_of_the_leader_alone_commits_at_its_end() {
        let t = Instant::now();
        let mut l = leader(vec![0], 5, t);
        assert_eq!(l.advance(7), Some(7));
        // Followers outside the ISR do not hold it.
        l.on_fetch(1, 0, 7, t);
        assert_eq!(l.advance(9), Some(9));
    }

    #[test]
    fn a_follower_not_caught_up_for_the_lag_time_is_proposed_out_once() {
        let t = Instant::now();
        let mut l = leader(vec![0, 1, 2], 100, t);
        l.on_fetch(1, 100, 100, t);
        l.on_fetch(2, 100, 100, t);
        assert_eq!(l.laggards(t + LAG / 2, LAG), None);
        // Node 1 keeps up; node 2 fetches but stays behind the moving end.
        let mut now = t;
        for end in [110, 120, 130, 140, 150, 160] {
            now += Duration::from_secs(1);
            l.on_fetch(1, end, end, now);
            l.on_fetch(2, 100, end, now);
        }
        assert_eq!(l.laggards(now, LAG), Some(vec![0, 1]));
        assert_eq!(l.laggards(now, LAG), None, "already proposed");
        assert_eq!(
            l.laggards(now + ISR_CHANGE_RETRY, LAG),
            Some(vec![0, 1]),
            "proposed again when it did not apply"
        );
        l.set_isr(vec![0, 1]);
        assert_eq!(l.laggards(now + ISR_CHANGE_RETRY, LAG), None);
        // The HW no longer waits for node 2.
        assert_eq!(l.advance(160), Some(160));
    }

    #[test]
    fn a_follower_reaching_the_end_of_the_previous_fetch_counts_as_caught_up_then() {
        let t = Instant::now();
        let mut l = leader(vec![0, 1], 0, t);
        let mut now = t;
        // Every fetch reaches what the leader had at the previous one: a steady stream.
        let mut end = 0;
        for _ in 0..20 {
            now += Duration::from_secs(1);
            let offset = end;
            end += 10;
            l.on_fetch(1, offset, end, now);
        }
        assert_eq!(l.laggards(now, LAG), None);
    }

    #[test]
    fn a_silent_follower_in_the_isr_lags_from_the_leaders_start() {
        let t = Instant::now();
        let mut l = leader(vec![0, 1, 2], 50, t);
        l.on_fetch(1, 50, 50, t + LAG);
        assert_eq!(l.laggards(t + LAG, LAG), Some(vec![0, 1]));
    }

    #[test]
    fn a_follower_proposed_back_holds_the_high_watermark_before_the_change_applies() {
        let t = Instant::now();
        let mut l = leader(vec![0, 1], 20, t);
        l.on_fetch(1, 20, 20, t);
        assert_eq!(l.advance(20), Some(20));
        // Node 2 reaches the HW: proposed back; from now on the HW waits for it too.
        assert_eq!(l.on_fetch(2, 20, 20, t), Some(vec![0, 1, 2]));
        l.on_fetch(1, 30, 30, t);
        assert_eq!(l.advance(30), None, "node 2 is at 20");
        l.on_fetch(2, 30, 30, t);
        assert_eq!(l.advance(30), Some(30));
    }

    #[test]
    fn an_outside_follower_rejoins_at_the_high_watermark_and_the_epoch_start() {
        let t = Instant::now();
        let mut l = leader(vec![0, 1], 20, t);
        l.on_fetch(1, 20, 20, t);
        assert_eq!(l.advance(30), Some(20));
        assert_eq!(l.on_fetch(2, 10, 30, t), None, "behind the HW");
        assert_eq!(l.on_fetch(2, 20, 30, t), Some(vec![0, 1, 2]));
        assert_eq!(l.on_fetch(2, 25, 30, t), None, "already proposed");
        l.set_isr(vec![0, 1, 2]);
        assert!(l.isr().contains(&2));
        // Unknown nodes are ignored.
        assert_eq!(l.on_fetch(7, 30, 30, t), None);
    }
}
