//! A spec-driven fuzzer against the running API: Schemathesis (PyPI `schemathesis`) reads
//! `/openapi.json`, generates requests from it — valid and invalid — and checks every answer
//! against the spec: no 5xx, only documented statuses, content types and headers, bodies that
//! match their schemas, schema-valid requests accepted and invalid ones refused.
//!
//! Skipped, with a message, only where `st` is not installed and `REQUIRE_TOOLS` is unset;
//! CI installs it (`.ci/run`) and sets `REQUIRE_TOOLS`, so there a missing fuzzer fails.

use std::process::Command;

use crate::harness::*;

/// Examples per operation and phase: enough to hit every parameter's edges, small enough for CI.
const EXAMPLES: &str = "40";

fn schemathesis() -> Option<&'static str> {
    ["st", "schemathesis"].into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn a_spec_driven_fuzzer_finds_nothing_wrong() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var_os("REQUIRE_TOOLS").is_none(),
            "no Schemathesis found (pip install schemathesis)"
        );
        eprintln!("SKIPPED a_spec_driven_fuzzer_finds_nothing_wrong: no Schemathesis found (pip install schemathesis)");
        return;
    };
    let f = Fixture::start();
    let reports = tempfile::tempdir().expect("tempdir");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/schemathesis.toml");
    let output = Command::new(st)
        .current_dir(reports.path())
        .args(["--config-file", config])
        .args(["run", &format!("{}/openapi.json", f.base)])
        .args(["--checks", "all"])
        .args(["--max-examples", EXAMPLES])
        .args(["--seed", "20261202"])
        .args(["--request-timeout", "20"])
        .args(["--generation-deterministic"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the fuzzer found problems:\n{text}"
    );
    f.api.scan_for_panics();
}
