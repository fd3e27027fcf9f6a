//! `--database-read-url`: the API reads from a streaming replica while the collectors write
//! to the primary.

use std::process::Command;
use std::time::Duration;

use testkit::{wait_until, Child, Postgres};

use crate::harness::*;

/// The total points `/api/v1/stats` reports, or None while it does not answer 200.
fn points(base: &str) -> Option<i64> {
    let (status, body) = testkit::http_get(&format!("{base}/api/v1/stats"))?;
    let stats: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200).then(|| stats["points"].as_i64())?
}

#[test]
fn the_api_reads_from_a_streaming_replica_given_by_database_read_url() {
    let primary = Postgres::start();
    let mut client = primary.connect();
    store::schema::migrate(&mut client).expect("migrate");
    seed(&mut client);
    let replica = primary.start_replica();

    let port = testkit::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // The primary's address is wrong on purpose: every read must go to the replica.
        .env(
            "DATABASE_URL",
            "postgres://postgres:postgres@127.0.0.1:1/telemetry",
        )
        .env("DATABASE_READ_URL", replica.url());
    let _api = Child::spawn("api-on-replica", command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(
        Duration::from_secs(30),
        "the api to read the seeded points from the replica",
        || points(&base) == Some(TOTAL_POINTS),
    );
    let page = request(
        "GET",
        &format!("{base}/api/v1/gpus/{GPU_A}/telemetry?limit=5"),
    );
    assert_eq!(page.status, 200);

    // A write on the primary reaches the API through replication.
    client
        .execute(
            "UPDATE metric_day_totals SET points = points + 1 WHERE (metric, day) =
                 (SELECT metric, day FROM metric_day_totals ORDER BY metric, day LIMIT 1)",
            &[],
        )
        .expect("write on the primary");
    wait_until(
        Duration::from_secs(30),
        "the primary's write to show through the replica",
        || points(&base) == Some(TOTAL_POINTS + 1),
    );
    let read_only: String = replica
        .connect()
        .query_one("SHOW transaction_read_only", &[])
        .expect("show")
        .get(0);
    assert_eq!(read_only, "on", "the API really reads a standby");
}
