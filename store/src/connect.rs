//! Connections to PostgreSQL: `sslmode` and TLS.
