//! Progress belongs to an input (issue 12): one broker, one-shot streamers run one after the
//! other or side by side with different files, counted in the broker's log (no collector
//! needed: a one-shot streamer exits once its input is entirely acknowledged).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use broker_client::{BrokerClient, ClientConfig};
use testkit::Child;

use crate::pipeline::{
    events, generate_csv, produced_in_log, streamer, tail, wait_exit_ok, Broker,
};

const NOTHING_TO_DO: &str =
    "nothing to do: this input was streamed to the end before (--restart streams it again)";
const ONE_SHOT: Duration = Duration::from_secs(60);

/// Runs a one-shot streamer to its end (exit 0) and returns its log.
fn run_once(broker: &Broker, csv: &Path, group: &str, extra: &[&str]) -> String {
    let mut s = streamer(broker, csv, group, extra);
    wait_exit_ok(&mut s, ONE_SHOT);
    s.log()
}

/// The warnings of a run that found nothing to do.
fn no_ops(log: &str) -> Vec<serde_json::Value> {
    events(log, NOTHING_TO_DO)
}

#[test]
fn a_second_file_in_the_same_group_is_streamed_from_its_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    generate_csv(&a, 400, 5, &[]);
    generate_csv(&b, 240, 3, &[]);
    let broker = Broker::start();

    // Issue 12's sequence: the default group, one file after the other.
    let mut first = Child::spawn("streamer", default_group_command(&broker, &a));
    wait_exit_ok(&mut first, ONE_SHOT);
    assert_eq!(broker.log_end_total(), 400);
    let mut second = Child::spawn("streamer", default_group_command(&broker, &b));
    wait_exit_ok(&mut second, ONE_SHOT);
    let log = second.log();
    assert!(no_ops(&log).is_empty(), "{}", tail(&log));
    assert_eq!(produced_in_log(&log), 240, "{}", tail(&log));
    assert_eq!(broker.log_end_total(), 640, "both files are in the broker");
}

/// A streamer command without `--group`: the group a new user gets.
fn default_group_command(broker: &Broker, csv: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(testkit::bin_path("streamer"));
    cmd.args(["--broker", &broker.url(), "--topic", "telemetry", "--csv"])
        .arg(csv)
        .env_remove("STREAMER_GROUP")
        .env("STREAMER_METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json");
    cmd
}

#[test]
fn the_same_file_twice_is_a_no_op_that_says_when_it_was_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (a, copy) = (dir.path().join("a.csv"), dir.path().join("copy-of-a.csv"));
    generate_csv(&a, 400, 5, &[]);
    std::fs::copy(&a, &copy).unwrap();
    let broker = Broker::start();

    run_once(&broker, &a, "twice", &[]);
    assert_eq!(broker.log_end_total(), 400);
    let before_second = chrono::Utc::now();
    let log = run_once(&broker, &a, "twice", &[]);
    let warned = no_ops(&log);
    assert_eq!(warned.len(), 1, "{}", tail(&log));
    let warning = &warned[0];
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["input"], a.display().to_string());
    let finished_at = warning["finished_at"].as_str().unwrap_or_default();
    let finished_at = chrono::DateTime::parse_from_rfc3339(finished_at)
        .unwrap_or_else(|e| panic!("finished_at {finished_at:?}: {e}\n{}", tail(&log)));
    assert!(finished_at <= before_second, "finished by the first run");
    assert_eq!(produced_in_log(&log), 0);
    assert_eq!(broker.log_end_total(), 400, "nothing sent again");

    // The identity is the content's: a copy under another name is the same input.
    let log = run_once(&broker, &copy, "twice", &[]);
    assert_eq!(no_ops(&log).len(), 1, "{}", tail(&log));
    assert_eq!(broker.log_end_total(), 400);
}

#[test]
fn a_file_changed_in_place_is_a_new_input_streamed_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    generate_csv(&a, 400, 5, &[]);
    let broker = Broker::start();

    run_once(&broker, &a, "in-place", &[]);
    assert_eq!(broker.log_end_total(), 400);
    // Rewritten under the same name (another export: more rows, other hosts).
    generate_csv(&a, 320, 4, &[]);
    let log = run_once(&broker, &a, "in-place", &[]);
    assert!(no_ops(&log).is_empty(), "{}", tail(&log));
    assert_eq!(produced_in_log(&log), 320, "{}", tail(&log));
    assert_eq!(broker.log_end_total(), 720);
}

#[test]
fn two_groups_stream_two_files_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    generate_csv(&a, 4_000, 16, &[]);
    generate_csv(&b, 3_000, 12, &[]);
    let broker = Broker::start();

    let paced = ["--rate", "2000", "--batch-size", "50"];
    let mut first = streamer(&broker, &a, "left", &paced);
    let mut second = streamer(&broker, &b, "right", &paced);
    wait_exit_ok(&mut first, ONE_SHOT);
    wait_exit_ok(&mut second, ONE_SHOT);
    assert_eq!(produced_in_log(&first.log()), 4_000);
    assert_eq!(produced_in_log(&second.log()), 3_000);
    assert_eq!(broker.log_end_total(), 7_000);
}

#[test]
fn restart_streams_a_finished_input_again_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    generate_csv(&a, 400, 5, &[]);
    let broker = Broker::start();

    run_once(&broker, &a, "again", &[]);
    let log = run_once(&broker, &a, "again", &["--restart"]);
    assert!(no_ops(&log).is_empty(), "{}", tail(&log));
    assert_eq!(produced_in_log(&log), 400, "{}", tail(&log));
    assert_eq!(broker.log_end_total(), 800, "a second copy, on purpose");

    // Without the flag, the restarted run is the one now finished.
    let log = run_once(&broker, &a, "again", &[]);
    let warned = no_ops(&log);
    assert_eq!(warned.len(), 1, "{}", tail(&log));
    assert_eq!(warned[0]["passes"], 2);
    assert_eq!(broker.log_end_total(), 800);

    // The environment variable works like the flag.
    let mut cmd = std::process::Command::new(testkit::bin_path("streamer"));
    cmd.args([
        "--broker",
        &broker.url(),
        "--topic",
        "telemetry",
        "--group",
        "again",
    ])
    .arg("--csv")
    .arg(&a)
    .env("STREAMER_RESTART", "true")
    .env("STREAMER_METRICS_LISTEN", "127.0.0.1:0")
    .env("RUST_LOG", "info")
    .env("LOG_FORMAT", "json");
    let mut s = Child::spawn("streamer", cmd);
    wait_exit_ok(&mut s, ONE_SHOT);
    assert_eq!(produced_in_log(&s.log()), 400, "{}", tail(&s.log()));
    assert_eq!(broker.log_end_total(), 1_200);
}

#[test]
fn progress_from_before_input_identities_is_not_taken_for_this_input() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    generate_csv(&a, 400, 5, &[]);
    let broker = Broker::start();

    // What an older streamer left: every shard of group "legacy" done, keyed by no input.
    let client = BrokerClient::new(ClientConfig::new(broker.url()));
    client.create_topic("telemetry.shards", 16).unwrap();
    let member = client.join("legacy", "telemetry.shards", None).unwrap();
    let done: BTreeMap<u32, u64> = member.partitions.iter().map(|&p| (p, 1 << 32)).collect();
    assert_eq!(done.len(), 16);
    client
        .commit("legacy", &member, "telemetry.shards", &done)
        .unwrap();
    client.leave("legacy", &member.member_id).unwrap();

    let log = run_once(&broker, &a, "legacy", &[]);
    assert_eq!(produced_in_log(&log), 400, "{}", tail(&log));
    assert_eq!(broker.log_end_total(), 400);
    let warned: Vec<_> = log
        .lines()
        .filter(|l| l.contains("without input identities"))
        .collect();
    assert_eq!(warned.len(), 1, "{}", tail(&log));
}
