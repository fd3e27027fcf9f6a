//! Offline, read-only checker of one partition directory (it never repairs, unlike `open`):
//! `cargo run -p broker-log --example check_log -- <partition dir>`.
//!
//! For every `{base:020}.log` it walks the batches, checks each CRC and that base offsets
//! continue without a gap from segment to segment, and prints one line per segment. Exits 1
//! when anything but the clean zero tail of the last segment is found.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use broker_log::record::{self, Decoded};

struct Summary {
    batches: u64,
    records: u64,
    end_offset: u64,
    bytes: usize,
    problem: Option<String>,
}

fn check_segment(path: &Path, base: u64) -> std::io::Result<Summary> {
    let bytes = std::fs::read(path)?;
    let mut s = Summary {
        batches: 0,
        records: 0,
        end_offset: base,
        bytes: 0,
        problem: None,
    };
    while s.bytes < bytes.len() {
        match record::decode(&bytes[s.bytes..]) {
            Decoded::Intact(b) if b.header.base_offset == s.end_offset => {
                s.batches += 1;
                s.records += u64::from(b.header.record_count);
                s.end_offset = b.header.end_offset();
                s.bytes += b.bytes.len();
            }
            Decoded::Intact(b) => {
                s.problem = Some(format!(
                    "batch at byte {} has base offset {}, expected {}",
                    s.bytes, b.header.base_offset, s.end_offset
                ));
                break;
            }
            Decoded::Empty if bytes[s.bytes..].iter().all(|&b| b == 0) => break,
            other => {
                s.problem = Some(format!("at byte {}: {other:?}", s.bytes));
                break;
            }
        }
    }
    Ok(s)
}

fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(base) = name
            .strip_suffix(".log")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((base, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Prints one line; false when stdout is gone (e.g. piped into `head`), to stop quietly.
fn say(line: &str) -> bool {
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: check_log <partition dir>");
        return ExitCode::from(2);
    };
    let segs = match segments(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot list {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let mut ok = true;
    let mut expected = segs.first().map_or(0, |s| s.0);
    let mut previous_ok = true;
    for (base, path) in &segs {
        // After a damaged segment its end is unknown: only report the damage once.
        if previous_ok && *base != expected {
            ok = false;
            let line = format!(
                "{}: starts at {base}, previous ended at {expected}",
                path.display()
            );
            if !say(&line) {
                break;
            }
        }
        match check_segment(path, *base) {
            Ok(s) => {
                let line = format!(
                    "{}: {} batches, {} records, offsets {base}..{}, {} bytes{}",
                    path.display(),
                    s.batches,
                    s.records,
                    s.end_offset,
                    s.bytes,
                    s.problem
                        .as_deref()
                        .map(|p| format!(" — PROBLEM {p}"))
                        .unwrap_or_default()
                );
                previous_ok = s.problem.is_none();
                ok &= previous_ok;
                expected = s.end_offset;
                if !say(&line) {
                    break;
                }
            }
            Err(e) => {
                (ok, previous_ok) = (false, false);
                if !say(&format!("{}: cannot read: {e}", path.display())) {
                    break;
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
