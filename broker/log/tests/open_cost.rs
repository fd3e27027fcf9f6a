//! What opening a log costs in files: recovery of many partitions must not open every sealed
//! segment. Watched with inotify (`IN_OPEN` on the partition directory), so the test sees
//! every `open` the log really makes, transient ones included.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use broker_log::{FsyncPolicy, LogConfig, PartitionLog, Record};

/// Records the names of the files opened in one directory.
struct OpenWatch {
    fd: libc::c_int,
}

impl OpenWatch {
    fn new(dir: &Path) -> OpenWatch {
        // SAFETY: plain syscalls; the path is a valid NUL-terminated string.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let path = CString::new(dir.as_os_str().as_bytes()).expect("path without NUL");
        // SAFETY: as above; `fd` is the inotify descriptor just made.
        let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_OPEN) };
        assert!(
            wd >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        OpenWatch { fd }
    }

    /// The names of the files opened since the last call (the directory itself: "").
    fn opened(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: reads into a buffer of the length given.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[len]; }
            let mut pos = 0;
            while pos + 16 <= n {
                let len = u32::from_ne_bytes(buf[pos + 12..pos + 16].try_into().expect("4"));
                let name = &buf[pos + 16..pos + 16 + len as usize];
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                names.push(String::from_utf8_lossy(name).into_owned());
                pos += 16 + len as usize;
            }
        }
        names
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this value owns.
        unsafe { libc::close(self.fd) };
    }
}

#[test]
fn reopening_a_log_opens_the_active_segment_only_and_a_sealed_one_when_first_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1024,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone()).expect("open");
    let value = [b'7'; 200];
    for i in 0..100 {
        let records = [Record {
            timestamp_ms: i,
            key: None,
            value: &value,
        }];
        log.append(&records, None).expect("append");
    }
    let segments = log.segment_count();
    assert!(segments > 20, "{segments} segments");
    drop(log);

    let watch = OpenWatch::new(dir.path());
    let log = PartitionLog::open(dir.path(), config).expect("reopen");
    let opened: Vec<String> = watch
        .opened()
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect();
    let last = {
        let mut logs: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".log"))
            .collect();
        logs.sort();
        logs.pop().expect("a segment")
    };
    let stem = last.trim_end_matches(".log");
    assert!(
        opened.iter().all(|n| n.starts_with(stem)),
        "opened sealed segments at open ({segments} segments, active {stem}): {opened:?}"
    );
    assert!(
        opened.iter().any(|n| n.ends_with(".log")),
        "the active segment is opened"
    );

    // The first read of old data maps that one sealed segment (and checks its index).
    let got = log.read(0, 1, 0).expect("read");
    assert_eq!(got[0].offset, 0);
    let first = format!("{:020}", 0);
    let opened = watch.opened();
    assert!(
        opened.iter().any(|n| n == &format!("{first}.log")),
        "{opened:?}"
    );
    assert!(
        opened
            .iter()
            .filter(|n| !n.is_empty())
            .all(|n| n.starts_with(&first)),
        "only the segment read: {opened:?}"
    );
}
