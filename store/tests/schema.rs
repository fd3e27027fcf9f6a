//! Migrations against a real PostgreSQL: applied once, idempotent, safe when raced.

use testkit::Postgres;

#[test]
fn migrations_apply_once_even_when_several_collectors_race() {
    let pg = Postgres::start();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let conn = pg.connection_string();
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&conn, postgres::NoTls).unwrap();
                store::schema::migrate(&mut client).unwrap()
            })
        })
        .collect();
    let applied: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(applied, store::schema::MIGRATIONS.len());

    let mut client = pg.connect();
    assert_eq!(store::schema::migrate(&mut client).unwrap(), 0);
    let versions: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(versions as usize, store::schema::MIGRATIONS.len());
    for table in [
        "telemetry",
        "series",
        "points",
        "rollup_1m",
        "rollup_1h",
        "metric_day_totals",
        "latest",
        "gpus",
        "consumer_offsets",
        "dead_letters",
    ] {
        let found: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .unwrap()
            .get(0);
        assert_eq!(found.as_deref(), Some(table));
    }
}
