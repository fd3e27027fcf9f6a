//! The test harness shared by every integration and end-to-end test: real parts, no mocks.
//!
//! - [`Postgres`]: a throwaway PostgreSQL cluster in a temporary directory, on a free port,
//!   run as the `postgres` user when the tests run as root (PostgreSQL refuses root);
//! - [`Child`]: one of our binaries as a real process, its output captured to a log file,
//!   killed on drop, with SIGTERM/SIGKILL helpers and a panic scan of its log;
//! - [`wait_until`]: waiting on a condition with a deadline, never a bare sleep;
//! - [`bin_path`], [`free_port`]: finding the workspace binaries and a port to give them;
//! - [`tls`]: throwaway certificate authorities for the TLS tests;
//! - [`https`]: the real broker over HTTPS for the tests of TLS clients, and HTTPS clients
//!   trusting one CA for the tests of TLS listeners.
//!
//! The end-to-end scenarios themselves live in `tests/e2e/`, one test binary built from modules.

pub mod https;
pub mod tls;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Polls `condition` until it is true, panicking with `what` once `timeout` has passed.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port")
}

/// A free port on 127.0.0.1 below the kernel's ephemeral range, other than `taken`: brokers of
/// a cluster need fixed ports (their peers are told them), and a port there is never picked
/// for another test's listener on port 0 or for an outgoing connection — so none can take it
/// between the check and the broker's bind, or while the broker is down between a kill and
/// its restart, nor receive the RPCs meant for a killed peer.
pub fn fixed_port(taken: &[u16]) -> u16 {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(32768);
    let span = low.saturating_sub(10_000).max(1);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    (0..u32::from(span))
        .map(|i| 10_000 + ((seed.wrapping_add(i.wrapping_mul(7919))) % u32::from(span)) as u16)
        .find(|&p| !taken.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// The path of a binary built from this workspace (`broker`, `streamer`, `collector`, `api`).
///
/// Test executables live in `target/<profile>/deps/`; the binaries one level up. They must be
/// built first (`cargo build --bins`; `make test` does it).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("test exe has a parent").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "binary {} not found: run `cargo build --bins` first (make test does)",
        path.display()
    );
    path
}

/// The bundled sample CSV (2,470 rows, 247 GPUs).
pub fn sample_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-sample/dcgm_metrics_20250718_134233.csv")
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root.
fn pg_command(tool: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(tool);
        cmd
    } else {
        Command::new(tool)
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().expect(
        "PostgreSQL not found under /usr/lib/postgresql (install postgresql, or set PG_BIN_DIR)",
    )
}

/// A temporary directory for a PostgreSQL server, owned by `postgres` when we are root.
fn server_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success(), "chown of the PostgreSQL directory failed");
    }
    dir
}

/// A throwaway PostgreSQL cluster. Dropping it stops the server and deletes its files.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    /// Initialises and starts a cluster with a `telemetry` database, user `postgres`,
    /// password `postgres`. Durability settings are relaxed (fsync off): these tests crash our
    /// processes, never PostgreSQL's host.
    pub fn start() -> Postgres {
        let bin = postgres_bin_dir();
        let dir = server_dir("testkit-pg-");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, "postgres\n").expect("write pwfile");
        if running_as_root() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pwfile)
                .status();
        }
        let out = pg_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--no-sync", "--auth=md5"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Postgres {
            dir,
            bin,
            port: free_port(),
        };
        pg.start_again();
        pg.create_database("telemetry");
        pg
    }

    /// Starts the server again after [`Postgres::stop`] (same data, same port).
    pub fn start_again(&self) {
        let data = self.dir.path().join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let out = pg_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server quickly (connections are cut, as in an outage).
    pub fn stop(&self) {
        let _ = pg_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `key=value` connection string for database `telemetry`.
    pub fn connection_string(&self) -> String {
        self.connection_string_for("telemetry")
    }

    pub fn connection_string_for(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres password=postgres dbname={dbname}",
            self.port
        )
    }

    /// URL form for database `telemetry` (what `DATABASE_URL` takes).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}/telemetry",
            self.port
        )
    }

    /// A fresh database, so tests sharing one cluster stay apart.
    pub fn create_database(&self, name: &str) {
        let mut client = self.connect_to("postgres");
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create database");
    }

    /// A client connected to database `telemetry`.
    pub fn connect(&self) -> postgres::Client {
        self.connect_to("telemetry")
    }

    pub fn connect_to(&self, dbname: &str) -> postgres::Client {
        postgres::Client::connect(&self.connection_string_for(dbname), postgres::NoTls)
            .expect("connect to the test PostgreSQL")
    }

    /// A hot standby streaming from `self` (`pg_basebackup -R`): read-only, a replication
    /// lag behind, same user and password. Dropping it stops it.
    pub fn start_replica(&self) -> Postgres {
        let dir = server_dir("testkit-pg-replica-");
        let data = dir.path().join("data");
        let out = pg_command(&self.bin.join("pg_basebackup"))
            .arg("-D")
            .arg(&data)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-R", "-X", "stream", "--no-sync"])
            .env("PGPASSWORD", "postgres")
            .output()
            .expect("run pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let replica = Postgres {
            dir,
            bin: self.bin.clone(),
            port: free_port(),
        };
        replica.start_again();
        replica
    }

    /// The one database a [`Postgres::start_with_tls`] cluster serves without TLS over TCP.
    pub const PLAINTEXT_DATABASE: &'static str = "plaintext";

    /// Like [`Postgres::start`], with `ssl=on` serving `cert_pem` (the server certificate,
    /// followed by any intermediates) and `key_pem` (its private key).
    ///
    /// TCP connections must use TLS (`hostssl` in `pg_hba.conf`), except to the database
    /// [`Postgres::PLAINTEXT_DATABASE`] (`hostnossl`, created here), so one cluster shows both
    /// a refused plaintext connection and a plaintext session. [`Postgres::connect`] and the
    /// other `NoTls` helpers therefore work only against that database.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Postgres {
        let pg = Postgres::start();
        pg.create_database(Self::PLAINTEXT_DATABASE);
        // SSL settings and pg_hba.conf are read at start; a restart, unlike a reload, leaves no
        // moment where the old rules still apply.
        pg.stop();

        let cert_file = pg.dir.path().join("server.crt");
        let key_file = pg.dir.path().join("server.key");
        std::fs::write(&cert_file, cert_pem).expect("write server.crt");
        std::fs::write(&key_file, key_pem).expect("write server.key");
        // PostgreSQL refuses a key file that others can read, or that another user owns.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod server.key");
        if running_as_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&cert_file)
                .arg(&key_file)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the certificate files failed");
        }

        let data = pg.dir.path().join("data");
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        writeln!(
            conf,
            "\n# testkit: Postgres::start_with_tls\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'",
            cert_file.display(),
            key_file.display()
        )
        .expect("append to postgresql.conf");
        // Truncating keeps the file's owner (the server user) when we are root.
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "# testkit: Postgres::start_with_tls. TCP needs TLS, except to database {plain}.\n\
                 local     all      all                md5\n\
                 hostssl   all      all  127.0.0.1/32  md5\n\
                 hostssl   all      all  ::1/128       md5\n\
                 hostnossl {plain}  all  127.0.0.1/32  md5\n",
                plain = Self::PLAINTEXT_DATABASE
            ),
        )
        .expect("write pg_hba.conf");

        pg.start_again();
        pg
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// One of our binaries running as a real process. Killed (SIGKILL) when dropped.
pub struct Child {
    name: String,
    child: std::process::Child,
    log_path: PathBuf,
    // Keeps the log directory alive as long as the child.
    _log_dir: tempfile::TempDir,
}

impl Child {
    /// Spawns `command` with stdout and stderr appended to a log file.
    pub fn spawn(name: &str, mut command: Command) -> Child {
        let log_dir = tempfile::Builder::new()
            .prefix(&format!("testkit-{name}-"))
            .tempdir()
            .expect("tempdir");
        let log_path = log_dir.path().join(format!("{name}.log"));
        let log = File::create(&log_path).expect("create log file");
        let log2 = log.try_clone().expect("clone log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Child {
            name: name.to_string(),
            child,
            log_path,
            _log_dir: log_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        self.wait_timeout(timeout)
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the process has written so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Panics (with the log from the first panic on: its message and where, then the top of
    /// its backtrace) if the process's output shows a Rust panic.
    pub fn scan_for_panics(&self) {
        let log = self.log();
        if let Some(at) = log.find("panicked at") {
            let from = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let panic: String = log[from..].chars().take(6000).collect();
            panic!("{} panicked:\n{panic}", self.name);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // SIGTERM first, so a process still running at the end of a test exits through its
        // normal path (and writes its coverage profile); SIGKILL if it takes too long.
        if self.is_running() && self.terminate(Duration::from_secs(3)).is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = log
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!("----- {} log tail -----\n{tail}\n-----", self.name);
        }
    }
}

/// GET `url`, returning the status and body (also for 4xx/5xx), or `None` when nothing answers.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    match agent.get(url).call() {
        Ok(r) => {
            let status = r.status();
            Some((status, r.into_string().unwrap_or_default()))
        }
        Err(ureq::Error::Status(status, r)) => Some((status, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_starts_stops_and_starts_again() {
        let pg = Postgres::start();
        let mut c = pg.connect();
        let row = c.query_one("SELECT 1 + 1", &[]).expect("query");
        assert_eq!(row.get::<_, i32>(0), 2);
        drop(c);
        pg.stop();
        assert!(postgres::Client::connect(&pg.connection_string(), postgres::NoTls).is_err());
        pg.start_again();
        let mut c = pg.connect();
        assert_eq!(
            c.query_one("SELECT 3", &[])
                .expect("query")
                .get::<_, i32>(0),
            3
        );
    }
}
