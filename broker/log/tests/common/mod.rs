//! What several of this crate's integration tests share: a `FileOps` that injects a full disk
//! and failing syncs, and a log configuration with small segments (many rolls from few
//! appends). Each test binary compiles its own copy and uses part of it.
#![allow(dead_code)]

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use broker_log::io::{FileOps, RealFileOps};
use broker_log::{FsyncPolicy, LogConfig};

/// Real operations, except: preallocation fails (ENOSPC) while `disk_full` is set; every sync
/// fails (EIO) while `sync_fails` is set, and the `fail_at`-th sync since the last
/// [`Faulty::arm`] fails (0: none). Counts syncs.
#[derive(Debug, Default)]
pub struct Faulty {
    pub disk_full: AtomicBool,
    pub sync_fails: AtomicBool,
    pub syncs: AtomicUsize,
    pub fail_at: AtomicUsize,
}

impl Faulty {
    /// Fails the `fail_at`-th sync from now.
    pub fn arm(&self, fail_at: usize) {
        self.syncs.store(0, Ordering::SeqCst);
        self.fail_at.store(fail_at, Ordering::SeqCst);
    }
}

impl FileOps for Faulty {
    fn preallocate(&self, file: &File, len: u64) -> io::Result<()> {
        if self.disk_full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        RealFileOps.preallocate(file, len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        let n = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if self.sync_fails.load(Ordering::SeqCst) || n == self.fail_at.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        RealFileOps.sync_data(file)
    }
}

/// 2 KiB segments (1 KiB preallocated first), an index entry every 256 bytes, no syncs.
pub fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        initial_segment_bytes: 1024,
        index_interval_bytes: 256,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}
