//! Small durable-file helpers for the broker's own metadata (topic.json, group offsets).
//! Segment files are the storage engine's business, not this module's.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{BrokerError, Result};

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content:
/// write a temporary file, fsync it, rename it over `path`, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| BrokerError::Internal(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| BrokerError::io(format!("create {}", dir.display()), e))?;
    let tmp = path.with_extension("tmp");
    let io = |what: &str, e| BrokerError::io(format!("{what} {}", tmp.display()), e);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("fsync", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    sync_dir(dir)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BrokerError::io(format!("fsync directory {}", dir.display()), e))
}
