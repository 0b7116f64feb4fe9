//! Test harness: the real app on a random port with its own database (a
//! SQLite file, or a fresh PostgreSQL database when `TIDINGS_TEST_PG_URL` is
//! set), and a real SMTP server on another port.
#![allow(dead_code)]

pub mod authors;
pub mod browser;
pub mod http;
pub mod peers;
pub mod proxy;
pub mod smtp;

use std::path::PathBuf;
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use serde_json::Value;
use tidings::app::Application;
use tidings::config::{DatabaseUrl, MailTransportKind, Settings};

#[allow(unused_imports)]
pub use smtp::{Attempt, Received, Reply, SmtpServer, Stage};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdefghijklmnop";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` as two tests: `name::sqlite`, always,
/// and `name::postgres`, when `TIDINGS_TEST_PG_URL` is set.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::common::pg_url().is_some() {
                    super::$name($crate::common::Backend::Postgres).await;
                } else {
                    eprintln!("TIDINGS_TEST_PG_URL is not set: PostgreSQL run skipped");
                }
            }
        }
    )*};
}

/// The PostgreSQL server for tests, without TLS: nothing to gain on
/// loopback, and OpenSSL's exit-time cleanup must not meet a connection
/// still open in another thread of the test process.
pub fn pg_url() -> Option<String> {
    let raw = std::env::var("TIDINGS_TEST_PG_URL").ok().filter(|s| !s.is_empty())?;
    let mut url = url::Url::parse(&raw).ok()?;
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    Some(url.to_string())
}

/// A database of its own for one test, removed when dropped.
pub struct TestDb {
    pub url: DatabaseUrl,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    PgDatabase { admin_url: String, name: String },
}

impl TestDb {
    pub fn new(backend: Backend) -> Self {
        let name = format!("tidings_test_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Self { url: DatabaseUrl::Sqlite(path.clone()), cleanup: Cleanup::File(path) }
            }
            Backend::Postgres => {
                let admin_url = pg_url().expect("TIDINGS_TEST_PG_URL");
                let mut conn = PgConnection::establish(&admin_url).expect("connect to TIDINGS_TEST_PG_URL");
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).unwrap();
                let mut url = url::Url::parse(&admin_url).unwrap();
                url.set_path(&name);
                Self { url: DatabaseUrl::Postgres(url.to_string()), cleanup: Cleanup::PgDatabase { admin_url, name } }
            }
        }
    }

    /// Runs SQL straight on the test database (to age a token, say).
    pub fn execute(&self, sql: &str) -> usize {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                diesel::sql_query("PRAGMA busy_timeout = 10000").execute(&mut c).unwrap();
                diesel::sql_query(sql).execute(&mut c).unwrap()
            }
            DatabaseUrl::Postgres(url) => {
                let mut c = PgConnection::establish(url).unwrap();
                diesel::sql_query(sql).execute(&mut c).unwrap()
            }
        }
    }

    /// Runs a script of several statements (a migration's SQL, say).
    pub fn execute_script(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                c.batch_execute("PRAGMA busy_timeout = 10000").unwrap();
                c.batch_execute(sql).unwrap();
            }
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).unwrap().batch_execute(sql).unwrap(),
        }
    }

    pub fn count(&self, table_and_filter: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let sql = format!("SELECT COUNT(*) AS n FROM {table_and_filter}");
        let rows: Vec<N> = match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                diesel::sql_query(sql).load(&mut c).unwrap()
            }
            DatabaseUrl::Postgres(url) => {
                let mut c = PgConnection::establish(url).unwrap();
                diesel::sql_query(sql).load(&mut c).unwrap()
            }
        };
        rows[0].n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::PgDatabase { admin_url, name } => {
                if let Ok(mut conn) = PgConnection::establish(admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
                }
            }
        }
    }
}

/// The `tidings` binary on this database and SMTP server, with the test's
/// keys and none of the caller's TIDINGS_* variables (but for
/// `TIDINGS_TEST_BIN`, which names another build of the binary to run).
pub fn tidings_cli(db: &TestDb, smtp_port: u16) -> std::process::Command {
    // `TIDINGS_TEST_BIN` runs another build (CI: the release binary).
    let bin = std::env::var_os("TIDINGS_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_tidings").into());
    let mut cmd = std::process::Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("TIDINGS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("TIDINGS_DATABASE_URL", db.url.to_url())
        .env("TIDINGS_MAIL_TRANSPORT", "smtp")
        .env("TIDINGS_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
        .env("TIDINGS_SECRET_KEY", SECRET_KEY)
        .env("TIDINGS_BASE_URL", "http://tidings.test")
        .env("TIDINGS_OUTBOX_POLL_MS", "50")
        // The feed fixtures are dated November 2026: a first import must
        // count them as new unless a test says otherwise.
        .env("TIDINGS_FEED_FIRST_LOOKBACK_DAYS", "36500")
        // The default log level: its lines must stay out of the reports on stdout.
        .env_remove("RUST_LOG");
    cmd
}

/// Settings for a test: SMTP delivery, fast retries, known keys.
pub fn test_settings(db: &TestDb, smtp_port: u16) -> Settings {
    let mut s = Settings::from_toml_str("").unwrap();
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.base_url = url::Url::parse("http://tidings.test").unwrap();
    s.database_url = db.url.clone();
    s.database_pool_size = 4;
    s.mail_transport = MailTransportKind::Smtp;
    s.smtp_url = url::Url::parse(&format!("smtp://127.0.0.1:{smtp_port}")).unwrap();
    s.smtp_timeout_secs = 5;
    s.admin_token = Some(ADMIN_TOKEN.into());
    s.secret_key = Some(SECRET_KEY.into());
    s.retry_base_ms = 100;
    s.retry_max_ms = 400;
    s.send_max_attempts = 50;
    s.outbox_poll_ms = 50;
    // Abuse checks have tests of their own; elsewhere many signups come
    // from 127.0.0.1 in a hurry.
    s.signup_rate_per_minute = 0;
    s.confirm_rate_per_minute = 0;
    s.max_connections_per_ip = 0;
    s.form_min_fill_ms = 0;
    // The feed fixtures are dated November 2026: a first pull counts them as
    // new unless a test says otherwise.
    s.feed_first_lookback_days = 36_500;
    s
}

pub struct TestApp {
    pub address: String,
    pub smtp: SmtpServer,
    pub db: TestDb,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let smtp = SmtpServer::start().await;
        let db = TestDb::new(backend);
        let mut settings = test_settings(&db, smtp.port);
        tweak(&mut settings);
        Self::spawn_on(settings, smtp, db).await
    }

    pub async fn spawn_on(settings: Settings, smtp: SmtpServer, db: TestDb) -> Self {
        let app = Application::build(settings).await.expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self { address, smtp, db, client }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The same URL on this app, for a link made with the test base URL.
    pub fn local(&self, link: &str) -> String {
        let rest = link.strip_prefix("http://tidings.test").unwrap_or_else(|| panic!("not our link: {link}"));
        self.url(rest)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).form(pairs).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn signup(&self, email: &str, lists: &[&str]) -> reqwest::Response {
        self.post_json("/subscriptions", &serde_json::json!({ "email": email, "lists": lists })).await
    }

    /// Sends every signup at once, each on a task of its own; the answers'
    /// statuses, in the order of `emails`.
    pub async fn signups_at_once(&self, emails: Vec<String>, lists: &[&str]) -> Vec<u16> {
        let tasks: Vec<_> = emails
            .into_iter()
            .map(|email| {
                let (client, url) = (self.client.clone(), self.url("/subscriptions"));
                let body = serde_json::json!({ "email": email, "lists": lists });
                tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status().as_u16() })
            })
            .collect();
        let mut statuses = Vec::with_capacity(tasks.len());
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN).send().await.unwrap()
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap()
    }

    /// Adds a post to lists through the admin API.
    pub async fn add_post(&self, url: &str, title: &str, lists: &[&str]) -> i64 {
        let body = serde_json::json!({
            "title": title,
            "url": url,
            "summary": format!("<p>About {title}.</p>"),
            "published_at": "2026-11-24T10:00:00Z",
            "lists": lists,
        });
        let res = self.admin_post("/admin/posts", &body).await;
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    /// Triggers a digest and waits until it is finished; returns its status.
    pub async fn send_digest(&self, list: &str) -> Value {
        let res = self.admin_post("/admin/digests", &serde_json::json!({ "list": list })).await;
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        self.wait_digest(id).await
    }

    pub async fn wait_digest(&self, id: i64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status: Value = self.admin_get(&format!("/admin/digests/{id}")).await.json().await.unwrap();
            if ["sent", "failed", "cancelled"].contains(&status["status"].as_str().unwrap_or("")) {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "digest not finished: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the digest's status is `want`; returns the status then.
    pub async fn wait_digest_status(&self, id: i64, want: &str, within: Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let status: Value = self.admin_get(&format!("/admin/digests/{id}")).await.json().await.unwrap();
            if status["status"] == want {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "digest not {want}: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Triggers a digest of `list`; returns its id.
    pub async fn trigger_digest(&self, list: &str) -> i64 {
        let res = self.admin_post("/admin/digests", &serde_json::json!({ "list": list })).await;
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    /// `GET /admin/lists` as a map from slug to its counts.
    pub async fn counts(&self) -> std::collections::HashMap<String, (i64, i64, i64)> {
        let res = self.client.get(self.url("/admin/lists")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let lists: Vec<Value> = res.json().await.unwrap();
        lists
            .into_iter()
            .map(|l| {
                let n = |k: &str| l[k].as_i64().unwrap();
                (l["slug"].as_str().unwrap().to_owned(), (n("pending"), n("confirmed"), n("unsubscribed")))
            })
            .collect()
    }

    /// Signs up, reads the confirmation mail and confirms: a confirmed reader.
    pub async fn subscribe_confirmed(&self, email: &str, lists: &[&str]) -> Received {
        let before = self.smtp.to(email).len();
        assert_eq!(self.signup(email, lists).await.status(), 202);
        let mail = wait_until(Duration::from_secs(10), || {
            let got = self.smtp.to(email);
            (got.len() > before).then(|| got[before].clone())
        })
        .await;
        let link = mail.link("http://tidings.test/subscriptions/confirm?token=");
        let token = link.split("token=").nth(1).unwrap().to_owned();
        let res = self.post_form("/subscriptions/confirm", &[("token", &token)]).await;
        assert_eq!(res.status(), 200);
        mail
    }
}

impl TestDb {
    /// Checks that the list tallies (with their unfolded changes) say what a
    /// count over every subscription says, per list and state and per day.
    pub fn assert_tallies_match(&self) {
        let day = |column: &str| match self.url {
            DatabaseUrl::Sqlite(_) => format!("substr({column}, 1, 10)"),
            DatabaseUrl::Postgres(_) => format!("to_char({column}, 'YYYY-MM-DD')"),
        };
        let states = "(SELECT list_id, status FROM ( \
             SELECT list_id, status, COUNT(*) AS n FROM subscriptions GROUP BY list_id, status \
             UNION ALL SELECT list_id, status, -readers FROM list_tallies \
             UNION ALL SELECT list_id, status, -readers FROM list_tally_changes \
             ) AS d GROUP BY list_id, status HAVING SUM(n) <> 0) AS wrong";
        assert_eq!(self.count(states), 0, "readers by list and state differ from the tallies");
        let days = format!(
            "(SELECT list_id, day FROM ( \
             SELECT list_id, {c} AS day, 1 AS c, 0 AS u FROM subscriptions WHERE confirmed_at IS NOT NULL \
             UNION ALL SELECT list_id, {u}, 0, 1 FROM subscriptions WHERE unsubscribed_at IS NOT NULL \
             UNION ALL SELECT list_id, day, -confirmed, -unsubscribed FROM list_days \
             UNION ALL SELECT list_id, day, -confirmed, -unsubscribed FROM list_day_changes \
             ) AS d GROUP BY list_id, day HAVING SUM(c) <> 0 OR SUM(u) <> 0) AS wrong",
            c = day("confirmed_at"),
            u = day("unsubscribed_at")
        );
        assert_eq!(self.count(&days), 0, "growth per list and day differs from the tallies");
    }

    /// Inserts confirmed readers of `list` straight into the database: fast
    /// seeding for dispatch tests. Returns their addresses.
    pub fn seed_confirmed(&self, list: &str, prefix: &str, n: usize) -> Vec<String> {
        let emails: Vec<String> = (0..n).map(|i| format!("{prefix}{i}@example.com")).collect();
        for chunk in emails.chunks(200) {
            let values: Vec<String> =
                chunk.iter().map(|e| format!("('{}', '{e}', '2026-11-01 10:00:00')", uuid::Uuid::new_v4())).collect();
            self.execute(&format!(
                "INSERT INTO subscribers (uuid, email, created_at) VALUES {} ON CONFLICT (email) DO NOTHING",
                values.join(", ")
            ));
            let values: Vec<String> = chunk
                .iter()
                .map(|e| {
                    format!(
                        "((SELECT id FROM subscribers WHERE email = '{e}'), (SELECT id FROM lists WHERE slug = '{list}'), \
                         'confirmed', '{}', '2026-11-01 10:00:00', '2026-11-01 10:00:00', '2026-11-01 10:00:00')",
                        tidings::domain::Signer::new_id()
                    )
                })
                .collect();
            self.execute(&format!(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, unsubscribe_id, created_at, updated_at, confirmed_at) VALUES {}",
                values.join(", ")
            ));
        }
        emails
    }
}

/// Polls `f` until it returns something; panics after `within`.
pub async fn wait_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "condition not met within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port with nothing listening on it (for a while).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether a peer program the test needs is installed, found by running
/// `check`; if not, the test should skip, unless `TIDINGS_TEST_REQUIRE_PEERS`
/// is set (CI), where that fails it.
pub fn peer_installed(what: &str, check: &mut std::process::Command) -> bool {
    use std::process::Stdio;
    let ok = check.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var_os("TIDINGS_TEST_REQUIRE_PEERS").is_none(), "{what} is required but missing");
        eprintln!("{what} is not installed: skipped");
    }
    ok
}
