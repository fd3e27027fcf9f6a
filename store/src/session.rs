//! Statement-level settings of a connection's session: the statement timeout, and how to
//! recognise a statement it cancelled.
//!
//! This module owns the SQL that sets them and the SQLSTATE that reports them; when to apply
//! them (on each new pooled connection) and what to answer a client is the caller's.

use std::time::Duration;

use postgres::error::SqlState;

/// Sets `statement_timeout` for the rest of the session: a statement running longer (waits for
/// locks included) is cancelled with SQLSTATE 57014. A session `SET` rather than the startup
/// `options` parameter, which connection poolers such as PgBouncer refuse.
pub fn set_statement_timeout(
    client: &mut postgres::Client,
    timeout: Duration,
) -> Result<(), postgres::Error> {
    // At least 1 ms: 0 would mean "no limit" to PostgreSQL.
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    client.batch_execute(&format!("SET statement_timeout = {ms}"))
}

/// Whether `e` is a statement cancelled by `statement_timeout` (SQLSTATE 57014,
/// `query_canceled`; an operator's `pg_cancel_backend` reports the same).
pub fn is_statement_timeout(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::QUERY_CANCELED)
}
