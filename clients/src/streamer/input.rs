//! What is being streamed: the input's identity, and the ledger of finished inputs.
//!
//! Progress belongs to an input, not to a group: the shard progress of [`super::shards`] is
//! kept in a broker group of its own per input, `<group>.input-<id>`, so a second file given
//! to the same `--group` starts from its beginning instead of being taken for done, and the
//! same file given again resumes where it stopped (or, finished, is a no-op with a warning).
//! The shards' producer ids carry the id too (`<prefix>-<id>-shard-<n>`): a new input's seqs
//! start at 0 again, and under the old input's producer ids the broker would drop its cells as
//! repeats of the old ones.
//!
//! The identity of a file is derived from its content, not its name or times: a SHA-256 of
//! its size, its header line and its first [`IDENTITY_PREFIX_BYTES`], cut to 16 hex digits.
//! So a copy of the file elsewhere is the same input (and resumes), a file rewritten or grown
//! in place is a new one (a change only after the first 64 KiB that keeps the size is not
//! seen: reading the whole file to name it would cost a second pass over it).
//!
//! The *ledger* `<topic>.inputs` (one partition) records each finished run of an input, keyed
//! by its progress group, so that a run that finds nothing to do can say when the input was
//! finished. Every member that sees the run complete writes the record under one idempotent
//! producer per input with the run's pass count as seq: the broker keeps one copy.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use broker_client::{BrokerClient, Encoding, Error as ClientError, Idempotence};

/// How much of the file's beginning goes into its identity.
pub const IDENTITY_PREFIX_BYTES: usize = 64 * 1024;

/// Broker group names are at most this long (PROTOCOL.md).
const MAX_GROUP_NAME: usize = 200;

/// A CSV file to stream, with its content identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    /// 16 lowercase hex digits.
    pub id: String,
    pub size: u64,
}

impl Input {
    /// Reads the file's size, header line and first [`IDENTITY_PREFIX_BYTES`] to name it.
    pub fn identify(path: &Path) -> Result<Input> {
        let csv_error = |e: std::io::Error| Error::Csv {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let file = File::open(path).map_err(csv_error)?;
        let size = file.metadata().map_err(csv_error)?.len();
        let mut reader = BufReader::new(file);
        let mut header = Vec::new();
        reader.read_until(b'\n', &mut header).map_err(csv_error)?;
        // The prefix is the file's first bytes, header included.
        let mut prefix = header.clone();
        if prefix.len() < IDENTITY_PREFIX_BYTES {
            let wanted = (IDENTITY_PREFIX_BYTES - prefix.len()) as u64;
            reader
                .by_ref()
                .take(wanted)
                .read_to_end(&mut prefix)
                .map_err(csv_error)?;
        }
        prefix.truncate(IDENTITY_PREFIX_BYTES);
        let mut digest = Sha256::new();
        digest.update(b"streamer input v1\0");
        digest.update(size.to_le_bytes());
        digest.update((header.len() as u64).to_le_bytes());
        digest.update(&header);
        digest.update(&prefix);
        let id: String = digest.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Input {
            path: path.to_path_buf(),
            id,
            size,
        })
    }

    /// The broker group holding this input's shard progress for streamer group `group`.
    pub fn progress_group(&self, group: &str) -> Result<String> {
        let name = format!("{group}.input-{}", self.id);
        if name.len() > MAX_GROUP_NAME {
            return Err(Error::GroupName {
                group: group.to_string(),
                reason: format!(
                    "at most {} characters (the input's progress group {name} must fit in {MAX_GROUP_NAME})",
                    MAX_GROUP_NAME - (name.len() - group.len())
                ),
            });
        }
        Ok(name)
    }
}

/// The ledger topic of finished inputs next to data topic `topic`.
pub fn ledger_topic(topic: &str) -> String {
    format!("{topic}.inputs")
}

/// One finished run of an input, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// The streamer group (`--group`).
    pub group: String,
    pub input: String,
    /// The file as the streamer that wrote the record was given it.
    pub csv: String,
    pub size: u64,
    /// Passes over the input completed (1 after the first run, 2 after a `--restart`, …).
    pub passes: u32,
    pub finished_at: DateTime<Utc>,
}

/// Writes a finished run to the ledger (idempotent: one record per run whoever writes it).
pub fn record_finished(
    client: &BrokerClient,
    topic: &str,
    progress_group: &str,
    producer: &str,
    finished: &Finished,
) -> Result<()> {
    let ledger = ledger_topic(topic);
    ensure_ledger(client, &ledger)?;
    let mut body = Vec::new();
    broker_client::push_record(&mut body, progress_group, finished)?;
    let id = Idempotence {
        producer,
        seq: u64::from(finished.passes),
    };
    match client.produce(&ledger, &body, Some(id)) {
        Ok(_) => Ok(()),
        // A later run is recorded already: this one was too.
        Err(e) if e.status() == Some(409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The ledger's last record of the input whose progress lives in `progress_group`, if any
/// (none when the ledger is missing, or retention dropped the record).
pub fn last_finished(
    client: &BrokerClient,
    topic: &str,
    progress_group: &str,
) -> Result<Option<Finished>> {
    let ledger = ledger_topic(topic);
    let meta = match client.topic(&ledger) {
        Ok(meta) => meta,
        Err(e) if e.status() == Some(404) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut last: Option<Finished> = None;
    // One partition when a streamer created the topic; every one when someone else did.
    for partition in &meta.partitions {
        let found = last_in_partition(
            client,
            &ledger,
            partition.partition,
            (partition.log_start_offset, partition.log_end_offset),
            progress_group,
        )?;
        if let Some(found) = found {
            let newer = match &last {
                Some(l) => found.passes >= l.passes,
                None => true,
            };
            if newer {
                last = Some(found);
            }
        }
    }
    Ok(last)
}

/// [`last_finished`] in one partition of the ledger, between its log start and end.
fn last_in_partition(
    client: &BrokerClient,
    ledger: &str,
    partition: u32,
    (mut offset, end): (u64, u64),
    progress_group: &str,
) -> Result<Option<Finished>> {
    let mut last = None;
    while offset < end {
        let fetched = match client.fetch(
            ledger,
            partition,
            offset,
            1000,
            Duration::ZERO,
            Encoding::Ndjson,
        ) {
            Ok(fetched) => fetched,
            // Retention moved the start meanwhile: what is left is read on the next turn.
            Err(ClientError::OffsetOutOfRange { log_start, .. }) if log_start > offset => {
                offset = log_start;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if fetched.next_offset <= offset {
            break;
        }
        for message in fetched.messages().items.into_iter().flatten() {
            if message.key.as_deref() == Some(progress_group) {
                if let Ok(mut record) = serde_json::from_str::<Finished>(message.value) {
                    // The broker's append time, rather than the writer's clock.
                    if let Some(at) = Utc.timestamp_millis_opt(message.timestamp).single() {
                        record.finished_at = at;
                    }
                    last = Some(record);
                }
            }
        }
        offset = fetched.next_offset;
    }
    Ok(last)
}

fn ensure_ledger(client: &BrokerClient, ledger: &str) -> Result<()> {
    match client.create_topic(ledger, 1) {
        Ok(_) => Ok(()),
        // Created by someone else with another partition count: records go by key hash, and
        // `last_finished` reads every partition.
        Err(e) if e.status() == Some(409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, content: &[u8]) {
        let mut file = File::create(path).unwrap();
        file.write_all(content).unwrap();
    }

    #[test]
    fn the_identity_follows_the_content_not_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a.csv"),
            dir.path().join("b.csv"),
            dir.path().join("c.csv"),
        );
        write(&a, b"h1,h2\n1,2\n");
        write(&b, b"h1,h2\n1,2\n");
        write(&c, b"h1,h2\n1,3\n");
        let id = |p: &Path| Input::identify(p).unwrap().id;
        assert_eq!(id(&a), id(&b), "a copy is the same input");
        assert_ne!(id(&a), id(&c), "other rows, another input");
        assert_eq!(id(&a).len(), 16);
        write(&a, b"h1,h2\n1,2\n3,4\n");
        assert_ne!(id(&a), id(&b), "grown in place: another input");
        write(&a, b"h1,h3\n1,2\n");
        assert_ne!(id(&a), id(&b), "another header: another input");
    }

    #[test]
    fn the_identity_reads_only_the_prefix_but_counts_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        let mut content = b"h\n".to_vec();
        content.resize(IDENTITY_PREFIX_BYTES * 2, b'x');
        write(&a, &content);
        let last = content.len() - 1;
        content[last] = b'y';
        write(&b, &content);
        // Documented limit: a same-size change past the prefix is the same input.
        assert_eq!(
            Input::identify(&a).unwrap().id,
            Input::identify(&b).unwrap().id
        );
        content.push(b'z');
        write(&b, &content);
        assert_ne!(
            Input::identify(&a).unwrap().id,
            Input::identify(&b).unwrap().id
        );
    }

    #[test]
    fn the_progress_group_names_the_input_and_fits_the_broker() {
        let input = Input {
            path: PathBuf::from("a.csv"),
            id: "0123456789abcdef".into(),
            size: 1,
        };
        assert_eq!(
            input.progress_group("streamers").unwrap(),
            "streamers.input-0123456789abcdef"
        );
        assert!(input.progress_group(&"g".repeat(177)).is_ok());
        assert!(matches!(
            input.progress_group(&"g".repeat(178)),
            Err(Error::GroupName { .. })
        ));
    }

    #[test]
    fn a_missing_file_is_a_csv_error() {
        assert!(matches!(
            Input::identify(Path::new("/nonexistent/x.csv")),
            Err(Error::Csv { .. })
        ));
    }
}
