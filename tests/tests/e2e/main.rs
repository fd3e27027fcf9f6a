//! End-to-end tests: the real binaries, a real PostgreSQL, real HTTP. One test binary built
//! from modules, sharing the harness in `testkit` (tests/src/lib.rs).
//!
//! Run with `make test` (which builds the binaries first) or `make test-integration`.

mod inputs;
mod ops;
mod pipeline;
mod scrape;
mod scrape_fleet;
mod scrape_spool;
mod soak;
mod tls;
