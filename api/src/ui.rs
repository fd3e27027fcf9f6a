//! The dashboard's assets under `/ui`, embedded in the binary (being built).

use bytes::Bytes;

/// The asset at `tail` (`""` is the page) and its content type.
pub fn asset(tail: &str) -> Option<(Bytes, &'static str)> {
    match tail {
        "" => Some((
            Bytes::from_static(b"<!doctype html><title>GPU fleet</title>"),
            "text/html; charset=utf-8",
        )),
        _ => None,
    }
}
