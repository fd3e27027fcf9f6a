//! A test failpoint for the full-disk path, armed only through the hidden
//! `--failpoint-enospc-file` flag (env `BROKER_FAILPOINT_ENOSPC_FILE`): while that file
//! exists, preallocating a new segment fails with `ENOSPC`, exactly where a real full disk
//! fails. It rides on the storage crate's injectable [`FileOps`]; syncs are never touched.
//! Production runs never set it and use the storage crate's real operations directly.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use broker_log::io::{FileOps, RealFileOps};

#[derive(Debug)]
pub struct NoSpaceWhileFileExists {
    pub trigger: PathBuf,
}

impl FileOps for NoSpaceWhileFileExists {
    fn preallocate(&self, file: &File, len: u64) -> io::Result<()> {
        if self.trigger.exists() {
            return Err(io::Error::from_raw_os_error(libc_enospc()));
        }
        RealFileOps.preallocate(file, len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        RealFileOps.sync_data(file)
    }
}

/// ENOSPC on Linux (the only platform the broker targets); spelled out to avoid a libc
/// dependency for one constant.
const fn libc_enospc() -> i32 {
    28
}
