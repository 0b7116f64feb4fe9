//! A bounded soak: many signups from 64 concurrent clients while a digest
//! sends. Size with TIDINGS_SOAK_SIGNUPS (default 50,000).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, TestApp};
use serde_json::{Value, json};

on_both_backends!(fifty_thousand_signups_while_a_digest_sends);

async fn fifty_thousand_signups_while_a_digest_sends(backend: Backend) {
    let total: usize = std::env::var("TIDINGS_SOAK_SIGNUPS").ok().and_then(|s| s.parse().ok()).unwrap_or(50_000);
    const CLIENTS: usize = 64;
    const READERS: usize = 3_000;
    let app = TestApp::spawn_with(backend, |s| s.database_pool_size = 16).await;
    let readers = app.db.seed_confirmed("orthopedic", "reader-soak", READERS);
    app.add_post("https://blog.example.org/soak", "Soak", &["orthopedic"]).await;
    let res = app.admin_post("/admin/digests", &json!({ "list": "orthopedic" })).await;
    let digest = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, next) = (app.client.clone(), app.url("/subscriptions"), Arc::clone(&next));
        clients.push(tokio::spawn(async move {
            let mut statuses: HashMap<u16, usize> = HashMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return statuses;
                }
                let body = json!({ "email": format!("soak{i}@example.com"), "lists": ["orthopedic"] });
                let status = client.post(&url).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                *statuses.entry(status).or_default() += 1;
            }
        }));
    }
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for c in clients {
        for (status, n) in c.await.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "soak ({backend:?}): {total} signups from {CLIENTS} clients in {:.1}s ({:.0}/s), answers {statuses:?}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(statuses.get(&202), Some(&total), "every signup accepted, no 5xx, no error: {statuses:?}");
    assert_eq!(app.db.count("subscribers WHERE email LIKE 'soak%@example.com'"), total as i64, "each stored once");
    assert_eq!(app.db.count("subscriptions WHERE status = 'pending'"), total as i64);

    let done = app.wait_digest(digest).await;
    assert_eq!(done["sent"], READERS as i64, "{done}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut per_reader: HashMap<String, usize> = HashMap::new();
        for m in app.smtp.received() {
            if m.to[0].starts_with("reader-soak") {
                *per_reader.entry(m.to[0].clone()).or_default() += 1;
            }
        }
        if per_reader.len() == READERS {
            assert!(readers.iter().all(|r| per_reader[r] == 1), "a digest delivery was made twice");
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
