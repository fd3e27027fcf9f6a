//! Integration tests of the `broker` binary over real HTTP: one test binary built from
//! modules, each scenario named for the behaviour it proves. Every test starts its own
//! broker process on port 0 with a temporary data directory.

mod harness;
mod raw;

mod atomic_produce;
mod auth;
mod checker;
mod client_routing;
mod cluster;
mod cluster_groups;
mod connections;
mod disk_full;
mod errors;
mod forged_records;
mod group_bounds;
mod group_restart;
mod groups;
mod idempotence;
mod longpoll;
mod produce_fetch;
mod recovery;
mod replication;
mod restart;
mod shutdown;
mod tls;
mod topic_limits;
mod wire_contract;
