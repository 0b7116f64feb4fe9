//! Scheduled digests on both databases: two processes' schedulers on one
//! database send one digest per slot, the feed is pulled at the slot, a
//! slot with nothing new sends nothing (and says so), and a missed slot is
//! sent at start only within its grace.

mod common;

use std::time::Duration;

use chrono::{Timelike, Utc};
use common::http::FileServer;
use common::{Backend, SmtpServer, TestApp, TestDb, test_settings, tidings_cli, wait_until};
use tidings::config::Settings;

on_both_backends!(
    one_digest_per_slot_across_two_processes,
    nothing_new_nothing_sent,
    a_missed_slot_is_sent_once_within_its_grace,
);

fn scheduled(s: &mut Settings, spec: &str, timezone: Option<&str>) {
    s.lists[1].schedule = Some(spec.into());
    s.lists[1].timezone = timezone.map(str::to_owned);
    s.schedule_poll_secs = 1;
}

fn runs(db: &TestDb, outcome: &str) -> i64 {
    db.count(&format!("schedule_runs WHERE outcome = '{outcome}'"))
}

async fn one_digest_per_slot_across_two_processes(backend: Backend) {
    let rss = FileServer::start(include_bytes!("fixtures/wordpress.rss"), "application/rss+xml").await;
    let feed = url::Url::parse(&rss.url("/feed/")).unwrap();
    let smtp = SmtpServer::start().await;
    let db = TestDb::new(backend);
    let settings = |db: &TestDb| {
        let mut s = test_settings(db, smtp.port);
        s.feed_allow_private_hosts = true;
        s.lists[1].feed_url = Some(feed.clone());
        // Every minute: the slot at the start of this minute is due now.
        scheduled(&mut s, "* * * * *", None);
        s
    };
    // Readers in place (the schema made by a migration) before either
    // process starts: the slot is due the moment they do.
    tidings::app::Core::open(settings(&db)).await.unwrap();
    let readers = db.seed_confirmed("orthopedic", "sched", 5);
    let (first, second) = (settings(&db), settings(&db));
    let a = TestApp::spawn_on(first, smtp, db).await;
    let b_app = tidings::app::Application::build(second).await.unwrap();
    tokio::spawn(b_app.run());
    let received = a.smtp.wait_for(5, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.smtp.received().len(), 5, "one digest per reader, from one process");
    for reader in &readers {
        assert_eq!(a.smtp.to(reader).len(), 1, "{reader}");
    }
    assert!(received[0].text().contains("Meniscus tears"), "the feed was pulled at the slot");
    assert_eq!(a.db.count("digests"), 1);
    assert_eq!(runs(&a.db, "sent"), 1);
    // The CLI shows the next slots and the last run.
    let mut cmd = tidings_cli(&a.db, a.smtp.port);
    cmd.env("TIDINGS_CONFIG", write_config("* * * * *")).args(["digest", "schedule"]);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("orthopedic \"* * * * *\" (UTC):") && text.matches("  next ").count() == 3, "{text}");
    assert!(text.contains(": sent, digest "), "{text}");
}

/// A config file giving orthopedic a schedule, for the CLI.
fn write_config(spec: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("tidings-schedule-{}.toml", uuid::Uuid::new_v4()));
    let toml = format!(
        "[[lists]]\nslug = \"social-media\"\nname = \"Medical Social Media\"\n\n\
         [[lists]]\nslug = \"orthopedic\"\nname = \"Orthopedic\"\nschedule = \"{spec}\"\n"
    );
    std::fs::write(&path, toml).unwrap();
    path
}

async fn nothing_new_nothing_sent(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| scheduled(s, "* * * * *", Some("Europe/Berlin"))).await;
    app.db.seed_confirmed("orthopedic", "quiet", 2);
    wait_until(Duration::from_secs(10), || (runs(&app.db, "nothing new") == 1).then_some(())).await;
    assert_eq!(app.db.count("digests"), 0);
    assert_eq!(app.smtp.received().len(), 0);
    // The author can still send by hand at any time.
    app.add_post("https://blog.example.org/by-hand", "By hand", &["orthopedic"]).await;
    assert_eq!(app.send_digest("orthopedic").await["sent"], 2);
}

async fn a_missed_slot_is_sent_once_within_its_grace(backend: Backend) {
    // A daily slot two hours ago, in New York time.
    let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let two_hours_ago = (Utc::now() - chrono::Duration::hours(2)).with_timezone(&ny);
    let spec = format!("daily {:02}:{:02}", two_hours_ago.hour(), two_hours_ago.minute());
    let late = |grace: u32| {
        let spec = spec.clone();
        move |s: &mut Settings| {
            scheduled(s, &spec, Some("America/New_York"));
            s.schedule_grace_hours = grace;
        }
    };
    // Older than its grace: not sent.
    let app = TestApp::spawn_with(backend, late(1)).await;
    app.db.seed_confirmed("orthopedic", "late", 2);
    app.add_post("https://blog.example.org/late", "Late", &["orthopedic"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.db.count("schedule_runs") + app.db.count("digests"), 0);
    // Within it: sent once at start, and not again by a restart.
    let mut settings = test_settings(&app.db, app.smtp.port);
    late(6)(&mut settings);
    let again = settings.clone();
    let TestApp { smtp, db, .. } = app;
    let app = TestApp::spawn_on(settings, smtp, db).await;
    app.smtp.wait_for(2, Duration::from_secs(20)).await;
    let restarted = tidings::app::Application::build(again).await.unwrap();
    tokio::spawn(restarted.run());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.smtp.received().len(), 2);
    assert_eq!((app.db.count("digests"), runs(&app.db, "sent")), (1, 1));
}
