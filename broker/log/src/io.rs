//! The file operations where the disk can refuse us: preallocation and data sync.
//!
//! They go through the [`FileOps`] trait so that tests can inject `ENOSPC` at the
//! preallocation site or `EIO` at the sync site (see `tests/full_disk.rs`) without root, a
//! tiny filesystem or a feature flag. Production code uses [`RealFileOps`]. Everything else
//! (open, map, truncate) uses `std` directly.

use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Injectable file operations used by the log.
pub trait FileOps: Send + Sync + Debug {
    /// Allocates real blocks for `[0, len)` (never a sparse file), extending the file.
    fn preallocate(&self, file: &File, len: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&self, file: &File) -> io::Result<()>;
}

/// The real operations: `posix_fallocate` and `fdatasync`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFileOps;

impl FileOps for RealFileOps {
    fn preallocate(&self, file: &File, len: u64) -> io::Result<()> {
        let len = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length over off_t"))?;
        // SAFETY: plain syscall wrapper on a valid, open descriptor.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        // posix_fallocate returns the error number instead of setting errno.
        match rc {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}

/// True when the error means the disk (or quota) is full.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}
