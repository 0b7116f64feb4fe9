//! The binary's process roles: `serve --no-dispatch` serves HTTP only, a
//! `worker` sends what it queues, and `tidings health` is a container's
//! health check.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::peers::{Peer, listening};
use common::{Backend, SmtpServer, TestDb, free_port, tidings_cli};

on_both_backends!(serve_without_dispatch_leaves_sending_to_a_worker);

async fn serve_without_dispatch_leaves_sending_to_a_worker(backend: Backend) {
    let (db, smtp, port) = (TestDb::new(backend), SmtpServer::start().await, free_port());
    let listen = format!("127.0.0.1:{port}");
    let role = |args: &[&str]| {
        let mut cmd = tidings_cli(&db, smtp.port);
        cmd.args(args)
            .env("TIDINGS_LISTEN", &listen)
            .env("TIDINGS_FORM_MIN_FILL_MS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let health = || {
        let out = role(&["health"]).stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = health();
    assert_eq!(code, Some(1), "nothing serves yet");
    assert!(stderr.contains(&format!("http://{listen}/health")), "{stderr}");

    let log_path = std::env::temp_dir().join(format!("tidings-serve-{}.log", uuid::Uuid::new_v4().simple()));
    let mut serve = role(&["serve", "--no-dispatch"]);
    serve
        .env("TIDINGS_LOG_FORMAT", "json")
        .env("TIDINGS_LOG", "tidings=debug,info")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let server = Peer(serve.spawn().unwrap());
    listening(port).await;
    let (code, stdout, _) = health();
    assert_eq!(code, Some(0));
    assert!(stdout.contains("\"ok\""), "{stdout}");

    let res = reqwest::Client::new()
        .post(format!("http://{listen}/subscriptions"))
        .json(&serde_json::json!({ "email": "split@example.com", "lists": ["orthopedic"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(db.count("outbox WHERE status = 'pending'"), 1, "queued in the database");
    // A serving process that dispatched would have sent it well within this
    // (its outbox poll is 50 ms); the worker below shows the mail is sendable.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(smtp.attempts(), 0, "serve --no-dispatch sends nothing");

    let _worker = Peer(role(&["worker"]).spawn().unwrap());
    smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(smtp.to("split@example.com").len(), 1);
    common::wait_until(Duration::from_secs(10), || (db.count("outbox WHERE status = 'sent'") == 1).then_some(())).await;
    drop(server);

    // JSON logs: one object per line, each request's lines in its span with
    // its id, and never the reader's full address.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let lines: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string() && l["target"].is_string()));
    let signup = lines
        .iter()
        .find(|l| l["fields"]["message"] == "signup")
        .unwrap_or_else(|| panic!("no signup line in:\n{log}"));
    assert_eq!(signup["span"]["name"], "request");
    assert_eq!(signup["span"]["id"].as_str().map(str::len), Some(12), "{signup}");
    assert!(signup["fields"]["email"].as_str().unwrap().contains("***"), "{signup}");
    assert!(!log.contains("split@example.com"), "{log}");
}
