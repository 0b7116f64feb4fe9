//! Mail to real SMTP servers we did not write: Debian's aiosmtpd with
//! STARTTLS and AUTH required (a self-signed certificate trusted through
//! `smtp_ca_file`), and postfix's `smtp-sink` refusing the message at the end
//! of DATA. Skipped when the peer is not installed, unless
//! `TIDINGS_TEST_REQUIRE_PEERS` is set (CI sets it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::peers::{Peer, TempDir, listening, private_ca};
use common::{Backend, TestApp, free_port, peer_installed, wait_until};
use serde_json::{Value, json};

on_both_backends!(starttls_and_auth_against_aiosmtpd, smtp_sink_refusing_at_end_of_data_pauses_without_suppressing,);

fn eml_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

async fn starttls_and_auth_against_aiosmtpd(backend: Backend) {
    if !peer_installed("aiosmtpd", Command::new("/usr/bin/python3").args(["-c", "import aiosmtpd"]))
        || !peer_installed("openssl", Command::new("openssl").arg("version"))
    {
        return;
    }
    let dir = TempDir::new();
    let (ca, cert, key) = private_ca(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/aiosmtpd_tls_auth.py");
    let _server = Peer(
        Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args([&cert, &key])
            .args(["newsletter", "s3cret pass", out.to_str().unwrap()])
            .stdout(Stdio::null())
            // The refused handshake below logs a traceback by design.
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    listening(port).await;
    let trusted = ca.clone();
    let app = TestApp::spawn_with(backend, |s| {
        s.smtp_url =
            url::Url::parse(&format!("smtp://newsletter:s3cret%20pass@127.0.0.1:{port}?tls=required")).unwrap();
        s.smtp_ca_file = Some(trusted);
    })
    .await;
    assert_eq!(app.signup("reader@example.com", &["orthopedic"]).await.status(), 202);
    let mails = wait_until(Duration::from_secs(15), || Some(eml_files(&out)).filter(|m| !m.is_empty())).await;
    let confirmation = &mails[0];
    assert!(confirmation.contains("X-Envelope-To: reader@example.com"), "{confirmation}");
    assert!(confirmation.contains("/subscriptions/confirm?token="), "{confirmation}");

    // A digest over the same TLS + AUTH session path.
    let readers = app.db.seed_confirmed("orthopedic", "tls", 5);
    app.add_post("https://blog.example.org/tls", "Over TLS", &["orthopedic"]).await;
    let digest = app.send_digest("orthopedic").await;
    assert_eq!(digest["sent"], 5, "{digest}");
    let mails = wait_until(Duration::from_secs(10), || Some(eml_files(&out)).filter(|m| m.len() == 6)).await;
    for r in readers {
        assert_eq!(mails.iter().filter(|m| m.contains(&format!("X-Envelope-To: {r}\r\n"))).count(), 1, "{r}");
    }

    // The wrong password: every delivery says AUTH refused it, nobody is
    // suppressed.
    let wrong = TestApp::spawn_with(backend, |s| {
        s.smtp_url = url::Url::parse(&format!("smtp://newsletter:wrong@127.0.0.1:{port}?tls=required")).unwrap();
        s.smtp_ca_file = Some(ca.clone());
    })
    .await;
    wrong.db.seed_confirmed("orthopedic", "auth", 3);
    wrong.add_post("https://blog.example.org/auth", "Refused", &["orthopedic"]).await;
    let id = wrong.trigger_digest("orthopedic").await;
    let done = wrong.wait_digest_status(id, "failed", Duration::from_secs(20)).await;
    let error = done["last_error"].as_str().unwrap();
    assert!(error.contains("AUTH") && error.contains("535"), "{done}");
    assert_eq!(done["bounced"], 0, "{done}");
    assert_eq!(wrong.db.count("subscribers WHERE suppressed_at IS NOT NULL"), 0);
    assert_eq!(eml_files(&out).len(), 6, "nothing was accepted without AUTH");

    // Without the certificate trusted, nothing is sent in clear instead.
    let untrusted = TestApp::spawn_with(backend, |s| {
        s.smtp_url =
            url::Url::parse(&format!("smtp://newsletter:s3cret%20pass@127.0.0.1:{port}?tls=required")).unwrap();
    })
    .await;
    untrusted.db.seed_confirmed("orthopedic", "untrusted", 2);
    untrusted.add_post("https://blog.example.org/untrusted", "Untrusted", &["orthopedic"]).await;
    let id = untrusted.trigger_digest("orthopedic").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status: Value = untrusted.admin_get(&format!("/admin/digests/{id}")).await.json().await.unwrap();
        if !status["last_error"].is_null() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "no error recorded: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("STARTTLS"), "{status}");
    assert_eq!(status["sent"], 0, "{status}");
    assert_eq!(eml_files(&out).len(), 6);
}

async fn smtp_sink_refusing_at_end_of_data_pauses_without_suppressing(backend: Backend) {
    if !peer_installed("smtp-sink", Command::new("sh").args(["-c", "command -v smtp-sink"])) {
        return;
    }
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let user = user.trim().to_owned();
    let port = free_port();
    let sink = |args: &[&str]| {
        Peer(
            Command::new("smtp-sink")
                .args(["-u", &user])
                .args(args)
                .arg(format!("127.0.0.1:{port}"))
                .arg("64")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    // `-f .`: a hard error (500 5.3.0) at the end of DATA, for every message.
    let refusing = sink(&["-f", "."]);
    listening(port).await;
    let app = TestApp::spawn_with(backend, |s| {
        s.smtp_url = url::Url::parse(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
        s.digest_breaker_failures = 10;
        s.smtp_concurrency = 2;
    })
    .await;
    app.db.seed_confirmed("orthopedic", "sink", 30);
    app.add_post("https://blog.example.org/sink", "Refused", &["orthopedic"]).await;
    let id = app.trigger_digest("orthopedic").await;
    let paused = app.wait_digest_status(id, "paused", Duration::from_secs(20)).await;
    let reason = paused["paused_reason"].as_str().unwrap();
    assert!(reason.contains("end of DATA: 500 5.3.0"), "{paused}");
    assert_eq!(paused["bounced"], 0, "{paused}");
    assert_eq!(app.db.count("subscribers WHERE suppressed_at IS NOT NULL"), 0, "nobody suppressed");

    // The relay is fixed: an accepting sink dumping each message to a file.
    drop(refusing);
    let dump = TempDir::new();
    let template = format!("{}/%H%M%S.", dump.path().display());
    let _accepting = sink(&["-d", &template]);
    listening(port).await;
    let res = app.admin_post(&format!("/admin/digests/{id}/resume"), &json!({})).await;
    assert_eq!(res.status(), 200);
    let done = app.wait_digest(id).await;
    assert_eq!((done["status"].as_str(), done["sent"].as_i64()), (Some("sent"), Some(30)), "{done}");
    let dumped = wait_until(Duration::from_secs(5), || {
        let n = std::fs::read_dir(dump.path()).ok()?.count();
        (n == 30).then_some(n)
    })
    .await;
    assert_eq!(dumped, 30, "each reader once");
}
