//! The topic registry: which topics exist, their partitions, and where they live on disk.
//!
//! Layout: `<data_dir>/topics/<topic>/topic.json` (`{"partitions": N}`, written atomically)
//! and one log directory per partition, `<data_dir>/topics/<topic>/<partition>/`. A topic
//! directory without a readable `topic.json` is ignored with a warning (a crash while
//! creating it), never guessed at.
//!
//! Limits: at most `--max-topics` topics (507 beyond); a partition's log is created on its
//! first append, so an idle topic costs a directory and `topic.json`, no segment and no
//! descriptor. Deletion renames the directory to `<topic>+deleted` (a name no topic can
//! have) before removing it, so a crash half-way leaves nothing that recovery would take for
//! a topic; recovery finishes such removals.
//!
//! Opening logs is blocking work; callers run [`Topics::recover`], [`Topics::create`] and
//! [`Topics::delete`] off the reactor. Partition internals live in `partition.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{BrokerError, Result};
use crate::naming::validate_name;
use crate::partition::Partition;
use crate::produce::ProducerLocks;
use crate::{fsutil, metrics as m};

/// Most partitions a topic may have: the cluster metadata's bound, one for both.
pub use broker_meta::state::MAX_PARTITIONS;

pub struct Topic {
    pub name: Arc<str>,
    pub partitions: Vec<Arc<Partition>>,
    pub counters: m::TopicCounters,
    /// Makes an idempotent produce's check-then-append atomic across its partitions.
    pub producer_locks: ProducerLocks,
}

impl Topic {
    pub fn partition(&self, id: u64) -> Result<&Arc<Partition>> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: self.name.to_string(),
                partition: id,
                count: self.partition_count(),
            })
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }
}

#[derive(Serialize, Deserialize)]
struct TopicMeta {
    partitions: u32,
}

pub struct Topics {
    root: PathBuf,
    config: Config,
    map: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation, so two first produces do not both create a topic.
    create_lock: Mutex<()>,
}

impl Topics {
    pub fn new(config: &Config) -> Topics {
        Topics {
            root: config.data_dir.join("topics"),
            config: config.clone(),
            map: RwLock::new(HashMap::new()),
            create_lock: Mutex::new(()),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The topic, or 404 (the name is validated first, so a bad name is a 400).
    pub fn require(&self, name: &str) -> Result<Arc<Topic>> {
        validate_name("topic", name)?;
        self.get(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut topics: Vec<_> = map.values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Opens every topic found on disk. Blocking; run before the broker reports ready.
    pub fn recover(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| BrokerError::io(format!("create {}", self.root.display()), e))?;
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| BrokerError::io(format!("list {}", self.root.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| BrokerError::io("list topics", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(DELETED_SUFFIX) {
                remove_dir(&entry.path())?;
                continue;
            }
            if validate_name("topic", &name).is_err() || !entry.path().is_dir() {
                continue;
            }
            let Some(meta) = read_meta(&entry.path()) else {
                tracing::warn!(topic = %name, "no readable topic.json: ignoring the directory");
                continue;
            };
            let topic = self.open_topic(&name, meta.partitions)?;
            tracing::info!(topic = %name, partitions = meta.partitions, "topic recovered");
            self.insert(topic);
        }
        Ok(())
    }

    /// Creates a topic, or finds it. `Ok((topic, created))`; 409 when it exists with another
    /// partition count. Blocking.
    pub fn create(&self, name: &str, partitions: u32) -> Result<(Arc<Topic>, bool)> {
        self.create_bounded(name, partitions, Some(self.config.max_topics))
    }

    /// [`Topics::create`] without the `--max-topics` bound: the local copy of a topic the
    /// cluster's metadata already holds (the bound was checked when it was proposed).
    pub fn create_unbounded(&self, name: &str, partitions: u32) -> Result<(Arc<Topic>, bool)> {
        self.create_bounded(name, partitions, None)
    }

    fn create_bounded(
        &self,
        name: &str,
        partitions: u32,
        max_topics: Option<u32>,
    ) -> Result<(Arc<Topic>, bool)> {
        validate_name("topic", name)?;
        check_partition_count(partitions)?;
        let _guard = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(topic) = self.get(name) {
            if topic.partition_count() != partitions {
                return Err(BrokerError::PartitionCountMismatch {
                    topic: name.to_string(),
                    existing: topic.partition_count(),
                    requested: partitions,
                });
            }
            return Ok((topic, false));
        }
        if let Some(max) = max_topics.filter(|&max| self.count() >= max as usize) {
            return Err(BrokerError::TooManyTopics { max });
        }
        let dir = self.root.join(name);
        let topic = self.open_topic(name, partitions)?;
        // The metadata file is written last: a topic without it is an unfinished creation.
        let meta = serde_json::to_vec(&TopicMeta { partitions })
            .map_err(|e| BrokerError::Internal(e.to_string()))?;
        fsutil::write_atomically(&dir.join("topic.json"), &meta)?;
        // The topic's own directory entry, so the topic survives a power loss.
        fsutil::sync_dir(&self.root)?;
        tracing::info!(topic = %name, partitions, "topic created");
        let topic = self.insert(topic);
        Ok((topic, true))
    }

    /// The topic, created with the default partition count when missing and
    /// `--auto-create-topics` allows it. Blocking only when it creates.
    pub fn get_or_create(&self, name: &str) -> Result<Arc<Topic>> {
        validate_name("topic", name)?;
        if let Some(topic) = self.get(name) {
            return Ok(topic);
        }
        if !self.config.auto_create_topics {
            return Err(BrokerError::NoAutoCreate(name.to_string()));
        }
        match self.create(name, self.config.partitions) {
            Ok((topic, _)) => Ok(topic),
            // Created meanwhile by an explicit PUT with another count: use that one.
            Err(BrokerError::PartitionCountMismatch { .. }) => self.require(name),
            Err(e) => Err(e),
        }
    }

    /// The partition count a produce to `name` would use: the topic's, or the default one it
    /// would be created with (so a body is validated before anything is created).
    pub fn partitions_for(&self, name: &str) -> u32 {
        self.get(name)
            .map_or(self.config.partitions, |t| t.partition_count())
    }

    pub fn count(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Deletes a topic and its files. Every partition is closed first, so requests still
    /// holding the topic answer 404 from then on. Blocking (file removal).
    pub fn delete(&self, name: &str) -> Result<()> {
        validate_name("topic", name)?;
        let _guard = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        for part in &topic.partitions {
            part.close();
        }
        let dir = self.root.join(name);
        let doomed = self.root.join(format!("{name}{DELETED_SUFFIX}"));
        std::fs::rename(&dir, &doomed)
            .map_err(|e| BrokerError::io(format!("rename {}", dir.display()), e))?;
        fsutil::sync_dir(&self.root)?;
        remove_dir(&doomed)?;
        tracing::info!(topic = %name, "topic deleted");
        Ok(())
    }

    fn insert(&self, topic: Topic) -> Arc<Topic> {
        let topic = Arc::new(topic);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.name.to_string(), Arc::clone(&topic));
        topic
    }

    fn open_topic(&self, name: &str, partitions: u32) -> Result<Topic> {
        let name: Arc<str> = Arc::from(name);
        let dir = self.root.join(&*name);
        let parts = (0..partitions)
            .map(|id| {
                let log_dir = dir.join(id.to_string());
                Partition::open(
                    Arc::clone(&name),
                    id,
                    &log_dir,
                    self.config.log_config(),
                    self.config.file_ops(),
                    self.config.producer_idle_ms,
                    self.config.is_clustered(),
                )
                .map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Topic {
            counters: m::TopicCounters::new(&name),
            name,
            partitions: parts,
            producer_locks: ProducerLocks::default(),
        })
    }
}

/// Appended to a topic directory's name while it is being deleted ('+' is not allowed in
/// topic names, so the directory can never be mistaken for a topic).
const DELETED_SUFFIX: &str = "+deleted";

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BrokerError::io(format!("remove {}", dir.display()), e)),
    }
}

fn read_meta(dir: &Path) -> Option<TopicMeta> {
    let bytes = std::fs::read(dir.join("topic.json")).ok()?;
    let meta: TopicMeta = serde_json::from_slice(&bytes).ok()?;
    (meta.partitions > 0 && meta.partitions <= MAX_PARTITIONS).then_some(meta)
}

/// A topic's partition count must be 1 to [`MAX_PARTITIONS`] (400 otherwise).
pub fn check_partition_count(partitions: u32) -> Result<()> {
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(BrokerError::BadRequest(format!(
            "partitions must be between 1 and {MAX_PARTITIONS}, not {partitions}"
        )));
    }
    Ok(())
}
