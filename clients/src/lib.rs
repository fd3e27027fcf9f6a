//! Blocking broker clients and the telemetry model (see the module docs).

pub mod schema;
