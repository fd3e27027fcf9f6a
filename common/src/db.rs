//! Database settings shared by the collector and the API: `DATABASE_URL`, or its parts.

use clap::Args;

/// Where PostgreSQL is. `DATABASE_URL` wins when set; otherwise the parts are combined.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Full connection string (URL or `key=value` form); overrides the DB_* parts.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Database host (when DATABASE_URL is unset).
    #[arg(long = "db-host", env = "DB_HOST", default_value = "localhost")]
    pub host: String,
    /// Database port.
    #[arg(long = "db-port", env = "DB_PORT", default_value_t = 5432)]
    pub port: u16,
    /// Database user.
    #[arg(long = "db-user", env = "DB_USER", default_value = "postgres")]
    pub user: String,
    #[arg(
        long = "db-password",
        env = "DB_PASSWORD",
        default_value = "postgres",
        hide_env_values = true
    )]
    pub password: String,
    /// Database name.
    #[arg(long = "db-name", env = "DB_NAME", default_value = "telemetry")]
    pub name: String,
}

impl DbArgs {
    /// A connection string that `postgres::Config::from_str` accepts.
    pub fn connection_string(&self) -> String {
        if let Some(url) = &self.database_url {
            return url.clone();
        }
        format!(
            "host={} port={} user={} password={} dbname={}",
            quote(&self.host),
            self.port,
            quote(&self.user),
            quote(&self.password),
            quote(&self.name)
        )
    }
}

/// Quotes a value for the `key=value` connection string form.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_quoted_so_spaces_and_quotes_survive() {
        let args = DbArgs {
            database_url: None,
            host: "db".into(),
            port: 5433,
            user: "u".into(),
            password: "p w'x".into(),
            name: "telemetry".into(),
        };
        assert_eq!(
            args.connection_string(),
            "host='db' port=5433 user='u' password='p w\\'x' dbname='telemetry'"
        );
    }
}
