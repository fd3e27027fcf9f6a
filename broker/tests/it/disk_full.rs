//! A full disk answers 507 and reads keep working. The disk is "full" through the broker's
//! env-gated failpoint (`BROKER_FAILPOINT_ENOSPC_FILE`): while the named file exists, new
//! segments fail to preallocate with ENOSPC — the exact call a real full disk fails.

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
