//! Integration tests of the `api` binary: a real PostgreSQL (testkit), the real binary over
//! real HTTP. One test binary built from modules, sharing the harness.

mod abuse;
mod auth;
mod browser;
mod chromium;
mod compacted;
mod conformance;
mod dashboard;
mod endpoints;
mod errors;
mod explain;
mod fuzz;
mod harness;
mod prometheus;
mod queries;
mod replica;
mod restart;
mod tls;
