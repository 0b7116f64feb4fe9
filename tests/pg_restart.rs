//! A real restart of the PostgreSQL server under a running Tidings. It stops
//! the shared server, so it is ignored by a plain `cargo test` and run on its
//! own, after the suite, by `.ci/run`:
//! `cargo test --test pg_restart -- --ignored`.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, TestApp};

/// `pg_ctlcluster` for the one cluster installed on this machine.
fn cluster(action: &str) {
    let versions = std::fs::read_dir("/etc/postgresql").expect("PostgreSQL is installed from Debian packages");
    let version = versions.filter_map(Result::ok).map(|e| e.file_name()).next().expect("a cluster version");
    let mut command = Command::new("pg_ctlcluster");
    command.arg("--skip-systemctl-redirect").arg(&version).arg("main").arg(action);
    if action == "stop" {
        command.args(["-m", "fast"]);
    }
    let out = command.output().expect("run pg_ctlcluster");
    assert!(out.status.success(), "pg_ctlcluster {action}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Sets the server's `lc_messages` (and reloads), so its errors come in
/// that language; `None` puts the default back.
fn server_messages_in(locale: Option<&str>) {
    use diesel::{Connection, RunQueryDsl};
    let url = common::pg_url().expect("TIDINGS_TEST_PG_URL");
    let mut c = diesel::PgConnection::establish(&url).expect("connect");
    let set = match locale {
        Some(l) => format!("ALTER SYSTEM SET lc_messages = '{l}'"),
        None => "ALTER SYSTEM RESET lc_messages".to_owned(),
    };
    diesel::sql_query(set).execute(&mut c).expect("set lc_messages");
    diesel::sql_query("SELECT pg_reload_conf()").execute(&mut c).expect("reload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the shared PostgreSQL server; .ci/run runs it alone"]
async fn postgres_server_restart_is_survived_without_restarting_tidings() {
    assert!(common::pg_url().is_some(), "TIDINGS_TEST_PG_URL must be set");
    // Lost connections are told by what the connection says, not by the
    // wording of errors: with TIDINGS_TEST_PG_LC_MESSAGES (CI: German) the
    // server's messages are not English.
    let locale = std::env::var("TIDINGS_TEST_PG_LC_MESSAGES").ok().filter(|l| !l.is_empty());
    if let Some(l) = &locale {
        server_messages_in(Some(l));
        eprintln!("PostgreSQL messages in {l}");
    }
    let app = Arc::new(TestApp::spawn(Backend::Postgres).await);

    // Signups keep coming, one after another, through the whole restart.
    let answers: Arc<Mutex<Vec<(String, u16, Duration)>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let client = {
        let (app, answers, running) = (Arc::clone(&app), Arc::clone(&answers), Arc::clone(&running));
        tokio::spawn(async move {
            let mut i = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let email = format!("reader{i}@example.com");
                let started = Instant::now();
                let status = app.signup(&email, &["orthopedic"]).await.status().as_u16();
                answers.lock().unwrap().push((email, status, started.elapsed()));
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster("stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health = app.get("/health").await;
    assert_eq!(health.status(), 503, "the database is down");
    cluster("start");

    let deadline = Instant::now() + Duration::from_secs(30);
    while app.get("/health").await.status() != 200 {
        assert!(Instant::now() < deadline, "Tidings did not recover by itself");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    client.await.unwrap();

    let answers = answers.lock().unwrap().clone();
    let accepted: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 202).collect();
    let refused: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 503).collect();
    assert!(answers.iter().all(|(_, s, _)| *s == 202 || *s == 503), "only 202 or 503: {answers:?}");
    assert!(!refused.is_empty(), "some signups came while the server was down");
    assert!(answers.last().is_some_and(|(_, s, _)| *s == 202), "signups work again");
    let slowest = refused.iter().map(|(_, _, took)| *took).max().unwrap_or_default();
    assert!(slowest < Duration::from_secs(5), "a refusal took {slowest:?}");
    for (email, _, _) in &accepted {
        assert_eq!(app.db.count(&format!("subscribers WHERE email = '{email}'")), 1, "{email} was lost");
    }
    eprintln!(
        "{} signups: {} accepted and stored, {} answered 503 (slowest refusal {slowest:?})",
        answers.len(),
        accepted.len(),
        refused.len()
    );
    // Every accepted signup's confirmation goes out once the outbox is back.
    app.smtp.wait_for(accepted.len(), Duration::from_secs(60)).await;
    if locale.is_some() {
        server_messages_in(None);
    }
}
