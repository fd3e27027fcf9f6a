//! Test failpoints for the disk-failure paths, armed only through hidden flags:
//!
//! - `--failpoint-enospc-file` (env `BROKER_FAILPOINT_ENOSPC_FILE`): while that file exists,
//!   preallocating a new segment fails with `ENOSPC`, exactly where a real full disk fails;
//! - `--failpoint-eio-sync-file` (env `BROKER_FAILPOINT_EIO_SYNC_FILE`): while that file
//!   exists, `fdatasync` of a segment fails with `EIO`;
//! - `--failpoint-sync-delay-ms` (env `BROKER_FAILPOINT_SYNC_DELAY_MS`): every `fdatasync`
//!   takes at least this long (a slow disk), so tests can count how requests share syncs.
//!
//! They ride on the storage crate's injectable [`FileOps`]. Production runs never set them and
//! use the storage crate's real operations directly.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use broker_log::io::{FileOps, RealFileOps};

/// ENOSPC and EIO on Linux (the only platform the broker targets); spelled out to avoid a
/// libc dependency for two constants.
const ENOSPC: i32 = 28;
const EIO: i32 = 5;

#[derive(Debug)]
pub struct Failpoints {
    pub no_space_while: Option<PathBuf>,
    pub sync_fails_while: Option<PathBuf>,
    pub sync_delay: Option<std::time::Duration>,
}

fn armed(trigger: &Option<PathBuf>) -> bool {
    trigger.as_ref().is_some_and(|t| t.exists())
}

impl FileOps for Failpoints {
    fn preallocate(&self, file: &File, len: u64) -> io::Result<()> {
        if armed(&self.no_space_while) {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        RealFileOps.preallocate(file, len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        if armed(&self.sync_fails_while) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        if let Some(delay) = self.sync_delay {
            std::thread::sleep(delay);
        }
        RealFileOps.sync_data(file)
    }
}
