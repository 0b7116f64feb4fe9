//! TLS to PostgreSQL through the libpq built from source with the crate
//! (`pq-sys/bundled`, OpenSSL vendored): the local server's self-signed
//! certificate, `sslmode=require`. Skipped without `TIDINGS_TEST_PG_URL`.

mod common;

use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use tidings::config::DatabaseUrl;
use tidings::store::Store;

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

#[tokio::test]
async fn postgres_over_tls_with_the_bundled_libpq() {
    if common::pg_url().is_none() {
        eprintln!("TIDINGS_TEST_PG_URL is not set: PostgreSQL run skipped");
        return;
    }
    // A database of its own, as every test has.
    let db = common::TestDb::new(common::Backend::Postgres);
    let DatabaseUrl::Postgres(plain) = &db.url else { unreachable!("a PostgreSQL test database") };
    let mut url = url::Url::parse(plain).unwrap();
    url.query_pairs_mut().clear().append_pair("sslmode", "require");
    let checked = tokio::task::spawn_blocking({
        let url = url.to_string();
        move || {
            let mut conn = PgConnection::establish(&url).expect("a TLS connection with sslmode=require");
            let rows: Vec<Ssl> =
                diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").load(&mut conn).unwrap();
            rows.first().is_some_and(|r| r.ssl)
        }
    })
    .await
    .unwrap();
    assert!(checked, "the connection is not encrypted");
    // Tidings' own pool over TLS: connect (migrations run) and answer.
    let store = Store::connect(&DatabaseUrl::Postgres(url.to_string()), 1).await.expect("the store connects over TLS");
    store.ping().await.expect("the store answers over TLS");
}
