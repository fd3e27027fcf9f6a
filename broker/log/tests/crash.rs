//! SIGKILL during appends: a child process (this test binary re-executed to run the ignored
//! `crash_writer_child`, which is not a test of its own and so never counts as a pass)
//! appends with `FsyncPolicy::Always` and prints each acknowledged batch; the parent kills
//! it at a random moment, reopens the log, and checks that every acknowledged record reads
//! back with the same bytes and that offsets continue without a gap. Many rounds on the
//! same directory, with tiny segments so kills also land around rolls.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_log::{FsyncPolicy, LogConfig, PartitionLog, Record};

const WRITER_ENV: &str = "BROKER_LOG_CRASH_WRITER_DIR";
const ROUNDS: usize = 24;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
        fsync: FsyncPolicy::Always,
        ..LogConfig::default()
    }
}

/// The bytes every record at `offset` carries, so the parent can check them.
fn value(offset: u64) -> Vec<u8> {
    let n = (offset % 13) as usize * 17 + 5;
    format!("{offset:x}-").repeat(n).into_bytes()
}

/// Writer mode: append forever, printing `ack <base> <end> ok` after each synced append.
/// Ignored, so `cargo test` reports it as such rather than as a pass; the parent runs it with
/// `--ignored`. Run by hand without the parent's directory, it fails rather than pass vacuously.
#[test]
#[ignore = "the writer child of acknowledged_appends_survive_sigkill, which runs it"]
fn crash_writer_child() {
    let dir = std::env::var_os(WRITER_ENV).unwrap_or_else(|| {
        panic!("not a test by itself: acknowledged_appends_survive_sigkill runs it with {WRITER_ENV} set")
    });
    let mut log = PartitionLog::open(Path::new(&dir), config()).expect("child open");
    let mut rng = fastrand::Rng::new();
    loop {
        let base = log.end_offset();
        let count = rng.u64(1..12);
        let vals: Vec<Vec<u8>> = (base..base + count).map(value).collect();
        let recs: Vec<Record<'_>> = vals
            .iter()
            .map(|v| Record {
                timestamp_ms: base as i64,
                key: None,
                value: v,
            })
            .collect();
        let out = log.append(&recs, None).expect("child append");
        println!("ack {} {} ok", out.base_offset, out.end_offset);
    }
}

/// Starts the writer, waits for some acks, kills it after a random delay; returns the acks.
fn run_and_kill(dir: &Path, rng: &mut fastrand::Rng) -> Vec<(u64, u64)> {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("stdout");
    let reader = {
        let acks = acks.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest prints "test crash_writer_child ... " before the first ack.
                let Some(at) = line.find("ack ") else {
                    continue;
                };
                let f: Vec<&str> = line[at..].split(' ').collect();
                if let ["ack", base, end, "ok"] = f[..] {
                    let pair = (base.parse().expect("base"), end.parse().expect("end"));
                    acks.lock().expect("acks").push(pair);
                }
            }
        })
    };
    let want = rng.usize(1..40);
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.lock().expect("acks").len() < want {
        assert!(Instant::now() < deadline, "writer produced no acks in time");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "writer exited early"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_micros(rng.u64(0..3000)));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().expect("reader");
    let acks = acks.lock().expect("acks").clone();
    acks
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if std::env::var_os(WRITER_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut acked_end = 0;
    let mut segments = 0;
    for round in 0..ROUNDS {
        let acks = run_and_kill(dir.path(), &mut rng);
        assert_eq!(
            acks.first().map(|a| a.0),
            Some(acked_end),
            "round {round}: resumes at the end"
        );
        acked_end = acks.last().expect("acks").1;
        let log = PartitionLog::open(dir.path(), config()).expect("reopen");
        assert!(
            log.end_offset() >= acked_end,
            "round {round}: lost acknowledged records"
        );
        let mut next = 0;
        while next < log.end_offset() {
            for r in log.read(next, 1000, 1 << 20).expect("read") {
                assert_eq!(
                    r.offset, next,
                    "round {round}: offsets continue without a gap"
                );
                assert_eq!(
                    r.value,
                    value(next),
                    "round {round}: bytes of offset {next}"
                );
                next += 1;
            }
        }
        // The next round's writer starts from whatever survived (acked or not).
        acked_end = log.end_offset();
        segments = log.segment_count();
    }
    assert!(
        segments > 3,
        "kills should have landed across several rolls"
    );
}
