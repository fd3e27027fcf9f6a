//! The PostgreSQL schema: migrations embedded in the binary, versioned, applied at start.
//!
//! Owns the DDL (`store/migrations/NNNN_name.sql`) and the `schema_migrations` bookkeeping.
//! Several collectors may start together: the whole run holds a transaction-scoped advisory
//! lock, so exactly one applies each migration and the others then see it applied.

/// Every migration, in order. Append only: an applied migration is never edited.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "compact", include_str!("../migrations/0002_compact.sql")),
    (3, "latest", include_str!("../migrations/0003_latest.sql")),
];

/// Arbitrary but fixed key of the advisory lock that serialises migrations.
const MIGRATION_LOCK_KEY: i64 = 0x7465_6c65_6d65_7472; // "telemetr"

/// Applies the migrations this database lacks; returns how many were applied.
pub fn migrate(client: &mut postgres::Client) -> Result<usize, postgres::Error> {
    migrate_to(client, i32::MAX)
}

/// Applies the missing migrations up to and including `version` (tests build an old
/// database this way to check the upgrade from it).
pub fn migrate_to(client: &mut postgres::Client, version: i32) -> Result<usize, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )?;
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 <= version) {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )?;
        tracing::info!(version, name, "applied schema migration");
        applied += 1;
    }
    tx.commit()?;
    Ok(applied)
}
