//! Scale-out on PostgreSQL with separate processes: two `serve
//! --no-dispatch` take signups, two `worker` send a 5,000-reader digest
//! (each a share of it), one worker is killed with SIGKILL midway, and every
//! reader still gets it, with duplicates only within the documented bound
//! (at most `TIDINGS_SMTP_CONCURRENCY` sent but unrecorded per crash).
//!
//! Ignored by `cargo test` (PostgreSQL only, and it wants the release
//! binary): CI runs it with `TIDINGS_TEST_BIN=target/release/tidings`.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::peers::{Peer, healthy, listening};
use common::{ADMIN_TOKEN, Backend, SmtpServer, TestDb, free_port, pg_url, tidings_cli, wait_until};

const READERS: usize = 5_000;
const CONCURRENCY: usize = 8;

/// `tidings_messages_total{kind="digest",outcome="sent"}` of one worker.
async fn digests_sent(client: &reqwest::Client, metrics_port: u16) -> f64 {
    let text =
        client.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("tidings_messages_total{") && l.contains("kind=\"digest\"") && l.contains("outcome=\"sent\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL and the release binary: run by CI with TIDINGS_TEST_BIN"]
async fn two_servers_and_two_workers_share_one_postgresql() {
    assert!(pg_url().is_some(), "TIDINGS_TEST_PG_URL is required");
    let (db, smtp) = (TestDb::new(Backend::Postgres), SmtpServer::start().await);
    // A slow server, so that the digest is still going when the kill comes.
    smtp.set_delay(Duration::from_millis(2));
    let role = |args: &[&str], env: &[(&str, String)]| {
        let mut cmd = tidings_cli(&db, smtp.port);
        cmd.args(args)
            .env("TIDINGS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TIDINGS_FORM_MIN_FILL_MS", "0")
            .env("TIDINGS_SIGNUP_RATE_PER_MINUTE", "0")
            .env("TIDINGS_SMTP_CONCURRENCY", CONCURRENCY.to_string())
            .env("TIDINGS_DELIVERY_LEASE_SECS", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Peer(cmd.spawn().unwrap())
    };
    let web: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let _servers: Vec<Peer> = web
        .iter()
        .map(|p| role(&["serve", "--no-dispatch"], &[("TIDINGS_LISTEN", format!("127.0.0.1:{p}"))]))
        .collect();
    for &p in &web {
        healthy(p).await;
    }
    let metrics: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let mut workers: Vec<Peer> =
        metrics.iter().map(|p| role(&["worker"], &[("TIDINGS_METRICS_LISTEN", format!("127.0.0.1:{p}"))])).collect();
    for &p in &metrics {
        listening(p).await;
    }

    // Signups through both servers; the workers send their confirmations.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    for i in 0..40 {
        let res = client
            .post(format!("http://127.0.0.1:{}/subscriptions", web[i % 2]))
            .json(&serde_json::json!({ "email": format!("joined{i}@example.com"), "lists": ["social-media"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    smtp.wait_for(40, Duration::from_secs(30)).await;

    db.seed_confirmed("orthopedic", "scale", READERS);
    let admin = |port: u16, path: &str| client.post(format!("http://127.0.0.1:{port}{path}")).bearer_auth(ADMIN_TOKEN);
    let post = serde_json::json!({
        "title": "Scale", "url": "https://blog.example/scale", "summary": "",
        "published_at": "2026-11-24T10:00:00Z", "lists": ["orthopedic"],
    });
    assert_eq!(admin(web[0], "/admin/posts").json(&post).send().await.unwrap().status(), 201);
    let res = admin(web[1], "/admin/digests").json(&serde_json::json!({"list": "orthopedic"})).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let digest = res.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap();

    // Midway: each worker has sent a share; then one of them is killed.
    let started = Instant::now();
    wait_until(Duration::from_secs(120), || (smtp.attempts() >= 40 + READERS / 3).then_some(())).await;
    let shares = [digests_sent(&client, metrics[0]).await, digests_sent(&client, metrics[1]).await];
    assert!(shares.iter().all(|&s| s > 0.0), "each worker sends a share: {shares:?}");
    workers[0].0.kill().unwrap();
    let _ = workers[0].0.wait();
    eprintln!("killed a worker with SIGKILL at {} messages; shares so far {shares:?}", smtp.attempts() - 40);

    let status = client.get(format!("http://127.0.0.1:{}/admin/digests/{digest}", web[0])).bearer_auth(ADMIN_TOKEN);
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let s: serde_json::Value = status.try_clone().unwrap().send().await.unwrap().json().await.unwrap();
        if s["status"] == "sent" {
            break s;
        }
        assert!(Instant::now() < deadline, "the digest did not finish: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["sent"].as_i64(), Some(READERS as i64), "{done}");
    let mut copies: HashMap<String, usize> = HashMap::new();
    for message in smtp.received() {
        for to in message.to.into_iter().filter(|t| t.starts_with("scale")) {
            *copies.entry(to).or_default() += 1;
        }
    }
    assert_eq!(copies.len(), READERS, "every reader got the digest");
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    eprintln!(
        "{READERS} readers in {:.1} s with one worker killed: {duplicates} duplicates (bound {CONCURRENCY})",
        started.elapsed().as_secs_f64()
    );
    assert!(duplicates <= CONCURRENCY, "{duplicates} duplicates, more than the {CONCURRENCY} a crash may leave");
    drop(workers);
}
