//! Background tasks, each stopping when shutdown begins: the group session sweeper and
//! retention. (Syncing, `--fsync interval` included, belongs to each partition's log.)

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::broker::{blocking, Broker};
use crate::http::stopped;
use crate::http::topics::now_ms;
use crate::metrics as m;

/// How often expired group members are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(50);
/// How often retention runs (when configured).
const RETENTION_EVERY: Duration = Duration::from_secs(1);

pub fn spawn_all(broker: &Arc<Broker>) {
    spawn_every(broker, SWEEP_EVERY, |b| {
        let changed = b.groups.expire_all();
        if changed.is_empty() {
            return;
        }
        // Membership changes (leaves, expiries) go to disk off the reactor.
        let b = Arc::clone(b);
        tokio::spawn(async move {
            let this = Arc::clone(&b);
            let written = blocking(move || {
                changed
                    .into_iter()
                    .try_for_each(|commit| this.groups.persist(commit))
            })
            .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, "cannot write group membership");
            }
        });
    });
    if broker.config.retention_bytes.is_some() || broker.config.retention_ms.is_some() {
        spawn_every(broker, RETENTION_EVERY, |b| {
            let b = Arc::clone(b);
            tokio::spawn(async move {
                if let Err(e) = blocking(move || retention(&b)).await {
                    tracing::warn!(error = %e, "retention failed");
                }
            });
        });
    }
}

/// Runs `f` every `period` until shutdown.
fn spawn_every(broker: &Arc<Broker>, period: Duration, f: impl Fn(&Arc<Broker>) + Send + 'static) {
    let broker = Arc::clone(broker);
    let mut stop: watch::Receiver<bool> = broker.shutdown.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => f(&broker),
                _ = stopped(&mut stop) => return,
            }
        }
    });
}

fn retention(broker: &Broker) -> crate::error::Result<()> {
    let now = now_ms();
    for topic in broker.topics.all() {
        for part in &topic.partitions {
            let deleted = part.enforce_retention(now)?;
            if deleted > 0 {
                m::retention_deleted(deleted);
                tracing::info!(topic = %topic.name, partition = part.id, deleted, "retention deleted segments");
            }
        }
    }
    Ok(())
}
