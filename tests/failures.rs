//! Failures that must never cost the list: refusals sorted by whose fault
//! they are, a digest that pauses itself, pause/resume/cancel, no duplicates
//! under a rate limit, and SMTP servers that are less friendly than ours.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::{Backend, Received, Stage, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    a_refused_digest_pauses_itself_and_resume_reaches_everyone_once,
    a_blocklist_refusal_at_rcpt_suppresses_nobody,
    a_multi_line_bounce_at_rcpt_suppresses_only_that_reader,
    a_rate_cap_with_a_short_lease_sends_no_duplicates,
    a_451_is_retried_after_its_backoff_not_before,
    pause_resume_and_cancel_by_api_and_cli,
    a_server_without_8bitmime_gets_every_copy,
    credentials_are_never_sent_without_tls,
    a_server_closing_idle_connections_costs_no_attempt,
    concurrent_retries_with_one_idempotency_key_get_one_digest,
);

fn per_recipient(received: &[Received]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in received {
        *seen.entry(m.to[0].clone()).or_insert(0) += 1;
    }
    seen
}

fn tidings(app: &TestApp) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"));
    cmd.env("TIDINGS_DATABASE_URL", app.db.url.to_url())
        .env("TIDINGS_MAIL_TRANSPORT", "smtp")
        .env("TIDINGS_SMTP_URL", app.smtp.url())
        .env("TIDINGS_SECRET_KEY", common::SECRET_KEY)
        .env("TIDINGS_BASE_URL", "http://tidings.test")
        .env("TIDINGS_RETRY_BASE_MS", "100")
        .env("TIDINGS_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

async fn run(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

/// Amazon SES refusing the sender at the end of DATA, for every reader: the
/// digest stops itself after the breaker's count, says why, suppresses
/// nobody; once the relay is fixed, resuming reaches every reader once.
async fn a_refused_digest_pauses_itself_and_resume_reaches_everyone_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.digest_breaker_failures = 10;
        s.smtp_concurrency = 2;
    })
    .await;
    let readers = app.db.seed_confirmed("orthopedic", "ses", 60);
    app.smtp.refuse_at(Stage::EndOfData, "554 Message rejected: Email address is not verified.");
    app.add_post("https://blog.example.org/ses", "SES", &["orthopedic"]).await;
    let id = app.trigger_digest("orthopedic").await;
    let paused = app.wait_digest_status(id, "paused", Duration::from_secs(20)).await;
    let reason = paused["paused_reason"].as_str().unwrap();
    assert!(reason.contains("end of DATA: 554 Message rejected"), "{paused}");
    assert!(reason.contains("resume"), "says what to do: {reason}");
    assert!(paused["failed"].as_i64().unwrap() >= 10, "{paused}");
    assert_eq!(paused["failures"]["message"], paused["failed"], "{paused}");
    assert_eq!(paused["bounced"], 0, "{paused}");
    assert!(paused["pending"].as_i64().unwrap() > 0, "the breaker stopped it before the end: {paused}");
    assert!(paused["last_error"].as_str().unwrap().contains("554"), "{paused}");
    assert_eq!(app.db.count("subscribers WHERE suppressed_at IS NOT NULL"), 0, "nobody suppressed");
    // Paused means nothing more is claimed: the attempts stop growing.
    let attempts = app.smtp.attempts();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(app.smtp.attempts() <= attempts + 2, "at most the sends in flight");

    app.smtp.clear_refusals();
    let res = app.admin_post(&format!("/admin/digests/{id}/resume"), &json!({})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let done = app.wait_digest(id).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!((done["sent"].as_i64(), done["failed"].as_i64()), (Some(60), Some(0)), "{done}");
    assert!(done["paused_reason"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = per_recipient(&app.smtp.received());
    assert_eq!(seen.len(), 60);
    for r in &readers {
        assert_eq!(seen.get(r), Some(&1), "{r}");
    }
    // The next digest still goes to everyone.
    app.add_post("https://blog.example.org/ses2", "After", &["orthopedic"]).await;
    assert_eq!(app.send_digest("orthopedic").await["recipients"], 60);
}

/// A blocklisted sending IP refused at RCPT names no bad mailbox: the reader
/// stays subscribed and unsuppressed, and the failure says why.
async fn a_blocklist_refusal_at_rcpt_suppresses_nobody(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.db.seed_confirmed("orthopedic", "blocked", 3);
    app.smtp.refuse_at(Stage::Rcpt, "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen");
    app.add_post("https://blog.example.org/bl", "Blocklisted", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!((status["failed"].as_i64(), status["bounced"].as_i64()), (Some(3), Some(0)), "{status}");
    assert!(status["last_error"].as_str().unwrap().starts_with("RCPT TO: 554 5.7.1"), "{status}");
    assert_eq!(app.db.count("subscribers WHERE suppressed_at IS NOT NULL"), 0);
    assert_eq!(app.db.count("deliveries WHERE failure_class = 'message' AND failure_stage = 'rcpt'"), 3);
    assert_eq!(app.db.count("deliveries WHERE failure_code = '554 5.7.1'"), 3);
}

/// Gmail's multi-line 550 5.1.1 for one address: only that reader bounces.
async fn a_multi_line_bounce_at_rcpt_suppresses_only_that_reader(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.db.seed_confirmed("orthopedic", "ok", 3);
    app.db.seed_confirmed("orthopedic", "gone", 1);
    app.smtp.reject_recipient("gone0@example.com");
    app.add_post("https://blog.example.org/ml", "Multi", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!((status["sent"].as_i64(), status["bounced"].as_i64()), (Some(3), Some(1)), "{status}");

    // A multi-line refusal for everyone at RCPT, with 5.1.1: all bounce.
    let app = TestApp::spawn(backend).await;
    app.db.seed_confirmed("orthopedic", "gmail", 2);
    app.smtp.refuse_at(
        Stage::Rcpt,
        "550 5.1.1 The email account that you tried to reach does not exist. Please try\n\
         550 5.1.1 double-checking the recipient's email address for typos.",
    );
    app.add_post("https://blog.example.org/ml2", "Multi 2", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["bounced"], 2, "{status}");
    assert!(status["last_error"].as_str().unwrap().contains("does not exist"), "{status}");
    assert_eq!(app.db.count("subscribers WHERE suppressed_at IS NOT NULL"), 2);
}

/// 2 messages/s and a 10 s lease over 60 readers, 40 connections: each
/// connection's claimed delivery waits up to 20 s, twice the lease, behind
/// the rate limit, and none is sent twice.
async fn a_rate_cap_with_a_short_lease_sends_no_duplicates(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.send_rate_per_second = 2.0;
        s.delivery_lease_secs = 10;
        s.smtp_concurrency = 40;
    })
    .await;
    app.db.seed_confirmed("orthopedic", "capped", 60);
    app.add_post("https://blog.example.org/cap", "Capped", &["orthopedic"]).await;
    let id = app.trigger_digest("orthopedic").await;
    let done = app.wait_digest_status(id, "sent", Duration::from_secs(90)).await;
    assert_eq!(done["sent"], 60, "{done}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = app.smtp.received();
    let seen = per_recipient(&received);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(received.len(), 60);
}

/// A 451 waits for its backoff before the next try, never goes again at once.
async fn a_451_is_retried_after_its_backoff_not_before(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.retry_base_ms = 1500;
        s.retry_max_ms = 1500;
    })
    .await;
    app.db.seed_confirmed("orthopedic", "grey", 1);
    app.smtp.script(&[common::Reply::TempFail]);
    app.add_post("https://blog.example.org/grey", "Greylisted", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["sent"], 1, "{status}");
    let log = app.smtp.log();
    assert_eq!(log.len(), 2, "one refused try, one accepted: {log:?}");
    assert!(!log[0].accepted && log[1].accepted);
    let gap = log[1].at - log[0].at;
    assert!(gap >= Duration::from_millis(1400), "retried after {gap:?}, before its 1.5 s backoff");
}

async fn pause_resume_and_cancel_by_api_and_cli(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.smtp_concurrency = 1).await;
    app.smtp.set_delay(Duration::from_millis(100));
    app.db.seed_confirmed("orthopedic", "ctl", 30);
    app.add_post("https://blog.example.org/ctl", "Controlled", &["orthopedic"]).await;
    let id = app.trigger_digest("orthopedic").await;
    app.smtp.wait_for(2, Duration::from_secs(10)).await;

    // Pause by API: the status says so, and sending stops.
    let res = app.admin_post(&format!("/admin/digests/{id}/pause"), &json!({})).await;
    assert_eq!(res.status(), 200);
    let paused: Value = res.json().await.unwrap();
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["paused_reason"], "paused by the author");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_while_paused = app.smtp.received().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.smtp.received().len(), sent_while_paused, "a paused digest sends nothing");
    assert!(sent_while_paused < 30);

    // Resume by CLI: it sends the rest itself and exits 0 once sent.
    let mut resume = tidings(&app);
    resume.args(["digest", "resume", &id.to_string()]);
    let out = run(resume).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = app.wait_digest(id).await;
    assert_eq!(done["sent"], 30, "{done}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(per_recipient(&app.smtp.received()).values().all(|&n| n == 1));

    // A finished digest cannot be paused or cancelled; the answer says why.
    let res = app.admin_post(&format!("/admin/digests/{id}/cancel"), &json!({})).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("sent"));
    assert_eq!(app.admin_post("/admin/digests/999/pause", &json!({})).await.status(), 404);

    // Pause by CLI, then cancel by CLI: what was pending is never sent.
    app.add_post("https://blog.example.org/ctl2", "Cancelled", &["orthopedic"]).await;
    let before = app.smtp.received().len();
    let second = app.trigger_digest("orthopedic").await;
    app.smtp.wait_for(before + 1, Duration::from_secs(10)).await;
    let mut pause = tidings(&app);
    pause.args(["digest", "pause", &second.to_string()]);
    let out = run(pause).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(app.wait_digest_status(second, "paused", Duration::from_secs(5)).await["status"], "paused");
    let mut cancel = tidings(&app);
    cancel.args(["digest", "cancel", &second.to_string()]);
    let out = run(cancel).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cancelled = app.wait_digest(second).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["pending"], 0, "{cancelled}");
    // Messages in flight when it was cancelled still go out, and count as sent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cancelled: Value = app.admin_get(&format!("/admin/digests/{second}")).await.json().await.unwrap();
    let (sent, n) = (cancelled["sent"].as_i64().unwrap(), cancelled["cancelled"].as_i64().unwrap());
    assert!(n > 0 && sent + n == 30, "{cancelled}");
    assert_eq!(app.smtp.received().len() as i64 - before as i64, sent, "the cancelled ones were never sent");
    // A cancelled digest cannot be resumed.
    let mut resume = tidings(&app);
    resume.args(["digest", "resume", &second.to_string()]);
    let out = run(resume).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cancelled"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A relay without 8BITMIME gets the same message in quoted-printable.
async fn a_server_without_8bitmime_gets_every_copy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.smtp.refuse_8bitmime();
    app.db.seed_confirmed("orthopedic", "ascii", 3);
    app.db.execute("UPDATE subscribers SET name = 'Zoë Brontë' WHERE email = 'ascii0@example.com'");
    app.add_post("https://blog.example.org/cafe", "Café au lait: knees and caffeine", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!((status["sent"].as_i64(), status["failed"].as_i64()), (Some(3), Some(0)), "{status}");
    let got = app.smtp.received();
    assert_eq!(got.len(), 3);
    for m in &got {
        assert!(m.data.is_ascii(), "8bit content reached a server without 8BITMIME");
        assert!(m.text().contains("Café au lait"), "{}", m.data);
        assert!(m.html().contains("Café au lait"), "{}", m.data);
    }
    let zoe = got.iter().find(|m| m.to[0] == "ascii0@example.com").unwrap();
    assert!(zoe.text().contains("Zoë"), "{}", zoe.text());
}

/// Credentials and a relay that offers no STARTTLS: the password is never
/// sent, and the digest stops itself saying why.
async fn credentials_are_never_sent_without_tls(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.digest_breaker_failures = 3;
        s.smtp_concurrency = 1;
        let port = s.smtp_url.port().unwrap();
        s.smtp_url = url::Url::parse(&format!("smtp://user:secret@127.0.0.1:{port}")).unwrap();
    })
    .await;
    app.db.seed_confirmed("orthopedic", "auth", 5);
    app.add_post("https://blog.example.org/auth", "Auth", &["orthopedic"]).await;
    let id = app.trigger_digest("orthopedic").await;
    let paused = app.wait_digest_status(id, "paused", Duration::from_secs(10)).await;
    let reason = paused["paused_reason"].as_str().unwrap();
    assert!(reason.contains("offers no STARTTLS") && reason.contains("tls=none"), "{reason}");
    assert_eq!(app.smtp.auth_seen(), 0, "AUTH was attempted in the clear");
    assert!(app.smtp.received().is_empty());
    assert_eq!(app.db.count("subscribers WHERE suppressed_at IS NOT NULL"), 0);
}

/// Servers close idle connections; the next message goes on a new one at
/// once, costing no attempt and no backoff.
async fn a_server_closing_idle_connections_costs_no_attempt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.smtp.close_idle_after(Duration::from_millis(300));
    app.db.seed_confirmed("orthopedic", "idle", 4);
    app.add_post("https://blog.example.org/idle1", "First", &["orthopedic"]).await;
    assert_eq!(app.send_digest("orthopedic").await["sent"], 4);
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.add_post("https://blog.example.org/idle2", "Second", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!((status["sent"].as_i64(), status["retrying"].as_i64()), (Some(4), Some(0)), "{status}");
    assert_eq!(app.db.count("deliveries WHERE attempts > 1"), 0, "a closed idle connection cost an attempt");
    assert_eq!(app.smtp.received().len(), 8);
}

/// A client retrying while its first request still runs gets the first
/// answer, never a 409; two posts of one URL at once give one post.
async fn concurrent_retries_with_one_idempotency_key_get_one_digest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.db.seed_confirmed("orthopedic", "idem", 20);
    let post = json!({
        "title": "Raced", "url": "https://blog.example.org/raced", "summary": "s",
        "published_at": "2026-11-24T10:00:00Z", "lists": ["orthopedic"],
    });
    let posts: Vec<_> = (0..6)
        .map(|_| {
            let (client, url, body) = (app.client.clone(), app.url("/admin/posts"), post.clone());
            tokio::spawn(async move {
                let res = client.post(url).bearer_auth(common::ADMIN_TOKEN).json(&body).send().await.unwrap();
                (res.status().as_u16(), res.json::<Value>().await.unwrap()["id"].clone())
            })
        })
        .collect();
    let mut ids = Vec::new();
    for p in posts {
        let (status, id) = p.await.unwrap();
        assert!(status == 200 || status == 201, "{status}");
        ids.push(id);
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(app.db.count("posts"), 1);

    let tries: Vec<_> = (0..6)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/admin/digests"));
            tokio::spawn(async move {
                let res = client
                    .post(url)
                    .bearer_auth(common::ADMIN_TOKEN)
                    .header("Idempotency-Key", "raced-key")
                    .json(&json!({ "list": "orthopedic" }))
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tries {
        answers.push(t.await.unwrap());
    }
    assert!(answers.iter().all(|(s, _)| *s == 202), "{answers:?}");
    assert!(answers.windows(2).all(|w| w[0].1["id"] == w[1].1["id"]), "{answers:?}");
    assert_eq!(app.db.count("digests"), 1);
}
