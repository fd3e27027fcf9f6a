//! Disk failures, injected through the broker's env-gated failpoints at the exact calls a
//! real disk fails in: while `BROKER_FAILPOINT_ENOSPC_FILE` names an existing file, new
//! segments fail to preallocate with ENOSPC (a full disk: 507, reads keep working, writes
//! resume once there is room); while `BROKER_FAILPOINT_EIO_SYNC_FILE` does, fdatasync fails
//! with EIO (the produce fails and the partition refuses writes until restart).

use crate::harness::{pinned, tempdir, Broker};

#[test]
fn a_full_disk_answers_507_reads_keep_working_and_writes_resume_after() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let trigger = dir.path().join("disk-is-full");
    let b = Broker::start_with_env(
        &data,
        &["--segment-bytes", "65536"],
        &[(
            "BROKER_FAILPOINT_ENOSPC_FILE",
            trigger.to_str().expect("utf8 path"),
        )],
    );
    assert_eq!(b.put_topic("full", 1).status, 201);
    let lines: Vec<String> = (0..100).map(|i| pinned(0, i)).collect();
    b.produce("full", "", &lines);
    std::fs::write(&trigger, b"").expect("arm the failpoint");
    // Keep producing until a segment roll is needed.
    let mut refused = None;
    for _ in 0..200 {
        let r = b.produce_raw("full", "", &lines);
        if r.status != 200 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("a roll must hit the full disk");
    assert_eq!(refused.status, 507, "{}", refused.text());
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    let stored = b.fetch_all("full", 0, 0);
    assert!(stored.len() >= 100, "reads keep working");
    std::fs::remove_file(&trigger).expect("disarm");
    let r = b.produce("full", "", &lines);
    assert_eq!(
        r.json()["results"][0]["offset"].as_u64(),
        Some(stored.len() as u64)
    );
    b.stop();
}

#[test]
fn a_failed_sync_fails_the_produce_and_the_partition_refuses_writes_until_restart() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let trigger = dir.path().join("sync-fails");
    let env = [(
        "BROKER_FAILPOINT_EIO_SYNC_FILE",
        trigger.to_str().expect("utf8 path"),
    )];
    let mut b = Broker::start_with_env(&data, &["--fsync", "always"], &env);
    assert_eq!(b.put_topic("eio", 1).status, 201);
    b.produce("eio", "", &[pinned(0, 1)]);
    std::fs::write(&trigger, b"").expect("arm the failpoint");
    let failed = b.produce_raw("eio", "", &[pinned(0, 2)]);
    assert_eq!(failed.status, 500, "{}", failed.text());
    std::fs::remove_file(&trigger).expect("disarm");
    let refused = b.produce_raw("eio", "", &[pinned(0, 3)]);
    assert_eq!(refused.status, 500, "never pretend: {}", refused.text());
    let stored = b.fetch_all("eio", 0, 0);
    assert_eq!(
        stored.len(),
        1,
        "reads keep working and show only synced data"
    );
    b.child.kill9();

    let b = Broker::start_with_env(&data, &["--fsync", "always"], &env);
    let r = b.produce("eio", "", &[pinned(0, 4)]);
    let offset = r.json()["results"][0]["offset"].as_u64().expect("offset");
    let stored = b.fetch_all("eio", 0, 0);
    assert_eq!(
        stored[0]["value"]["n"], 1,
        "the acknowledged message survived"
    );
    assert_eq!(
        stored.last().map(|m| m["value"]["n"].clone()),
        Some(4.into())
    );
    assert_eq!(stored.len() as u64, offset + 1);
    b.stop();
}
