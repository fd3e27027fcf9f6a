//! The shared state every request handler and background task sees: configuration, topics,
//! groups, readiness and the shutdown signal. What each piece does lives in its own module;
//! this one only ties them together and runs the blocking start-up and shutdown steps.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use pipeline_common::ops::Readiness;
use tokio::sync::watch;

use crate::cluster::{self, Cluster};
use crate::config::Config;
use crate::error::{BrokerError, Result};
use crate::groups::Groups;
use crate::naming::validate_name;
use crate::topics::{Topic, Topics};

pub struct Broker {
    pub config: Config,
    pub topics: Topics,
    pub groups: Groups,
    /// Set once every log is recovered; `/readyz` and the v1 routes wait for it.
    pub readiness: Readiness,
    /// `true` once shutdown began: long-polls answer, connections drain.
    pub shutdown: watch::Receiver<bool>,
    /// Where the broker really listens (port 0 resolved).
    pub local_addr: SocketAddr,
    /// Round-robin for messages with neither key nor partition.
    keyless: AtomicU32,
    /// The cluster this broker belongs to (`--peers`); `None`: a cluster of one.
    pub cluster: Option<Cluster>,
}

impl Broker {
    pub fn new(
        config: Config,
        local_addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
        cluster: Option<Cluster>,
    ) -> Broker {
        Broker {
            topics: Topics::new(&config),
            groups: Groups::new(
                &config.data_dir,
                config.session_timeout(),
                config.group_ttl(),
            ),
            config,
            readiness: Readiness::default(),
            shutdown,
            local_addr,
            keyless: AtomicU32::new(0),
            cluster,
        }
    }

    /// Opens every log and loads group offsets. Blocking.
    pub fn recover(&self) -> Result<()> {
        self.topics.recover()?;
        self.groups.recover()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The partition for the next message without key or partition.
    pub fn next_keyless(&self, partitions: u32) -> u32 {
        self.keyless.fetch_add(1, Ordering::Relaxed) % partitions.max(1)
    }

    /// The topic, created with the default partition count when missing (creation runs on
    /// a blocking thread). In a cluster the metadata decides: a missing topic is proposed
    /// there, and the local copy made if this broker replicates it (404 if it does not).
    pub async fn topic_or_create(self: &Arc<Self>, name: &str) -> Result<Arc<Topic>> {
        validate_name("topic", name)?;
        if let Some(cluster) = &self.cluster {
            if cluster.partition_count(name).is_none() {
                if !self.config.auto_create_topics {
                    return Err(BrokerError::NoAutoCreate(name.to_string()));
                }
                cluster
                    .create_topic(name, self.config.partitions, self.config.max_topics)
                    .await
                    .or_else(|e| match e {
                        // Created meanwhile with another count: use that one.
                        BrokerError::PartitionCountMismatch { .. } => Ok(false),
                        e => Err(e),
                    })?;
            }
            return self.local_copy(name).await;
        }
        if let Some(topic) = self.topics.get(name) {
            return Ok(topic);
        }
        let this = Arc::clone(self);
        let name = name.to_string();
        blocking(move || this.topics.get_or_create(&name)).await
    }

    /// In a cluster: the local copy of a topic of the metadata, made now if the metadata's
    /// follower has not made it yet; 421 naming partition 0's leader when this broker
    /// replicates none of its partitions.
    pub async fn local_copy(self: &Arc<Self>, name: &str) -> Result<Arc<Topic>> {
        if let Some(cluster) = &self.cluster {
            let count = cluster.partition_count(name);
            if let Some(local) = self.topics.get(name) {
                // The usual case: the copy exists already (no blocking thread per request).
                if count == Some(local.partition_count()) {
                    return Ok(local);
                }
            }
            let topic = cluster.topic(name)?;
            if !cluster.replicates(&topic) {
                cluster.check_leads(name, [0])?;
            }
            let this = Arc::clone(self);
            let owned = name.to_string();
            blocking(move || cluster::sync_topic(&this, &owned, &topic)).await?;
        }
        self.topics.require(name)
    }

    /// The partition count a produce to `name` would use: the topic's (the metadata's, in a
    /// cluster), or the default one it would be created with.
    pub fn partitions_for(&self, name: &str) -> u32 {
        match &self.cluster {
            Some(cluster) => cluster
                .partition_count(name)
                .unwrap_or(self.config.partitions),
            None => self.topics.partitions_for(name),
        }
    }

    /// Syncs every partition (shutdown). Blocking.
    pub fn sync_all(&self) -> Result<()> {
        let mut first_error = None;
        for topic in self.topics.all() {
            for part in &topic.partitions {
                if let Err(e) = part.sync_blocking() {
                    tracing::error!(topic = %topic.name, partition = part.id, error = %e, "final sync failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs blocking work off the reactor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BrokerError::Internal(format!("blocking task failed: {e}")))?
}
