//! `GET /metrics`: Prometheus text, behind the admin token or on a listener
//! of its own, with counters that move as readers and messages come and go.
//! (One recorder per process: tests running side by side add to the same
//! counters, so moves are checked as at least what this test caused.)

mod common;

use std::time::Duration;

use common::{ADMIN_TOKEN, Backend, TestApp, free_port};

on_both_backends!(metrics_count_readers_messages_and_requests);

/// The value of the sample `name` whose labels include `labels`, or 0.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics_count_readers_messages_and_requests(backend: Backend) {
    let port = free_port();
    let app =
        TestApp::spawn_with(backend, |s| s.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap())).await;
    let scrape = || async {
        let res = app.client.get(app.url("/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        res.text().await.unwrap()
    };
    assert_eq!(app.get("/metrics").await.status(), 401, "the main address needs the admin token");
    let before = scrape().await;
    assert_eq!(sample(&before, "tidings_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    app.subscribe_confirmed("m1@example.com", &["orthopedic"]).await;
    app.subscribe_confirmed("m2@example.com", &["orthopedic"]).await;
    app.subscribe_confirmed("gone@example.com", &["orthopedic"]).await;
    app.smtp.reject_recipient("gone@example.com");
    app.add_post("https://blog.example/m", "Metrics", &["orthopedic"]).await;
    let digest = app.send_digest("orthopedic").await;
    assert_eq!((digest["sent"].as_i64(), digest["bounced"].as_i64()), (Some(2), Some(1)), "{digest}");
    let mail = app.smtp.to("m1@example.com").pop().unwrap();
    let one_click = app.local(&mail.link("http://tidings.test/unsubscribe/"));
    app.client.post(one_click).form(&[("List-Unsubscribe", "One-Click")]).send().await.unwrap();

    let after = scrape().await;
    let moved = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels) - sample(&before, name, labels);
    for (name, labels, at_least) in [
        ("tidings_signups_total", vec![("list", "orthopedic")], 3.0),
        ("tidings_confirmations_total", vec![("list", "orthopedic")], 3.0),
        ("tidings_unsubscribes_total", vec![("list", "orthopedic")], 1.0),
        ("tidings_messages_total", vec![("kind", "confirmation"), ("outcome", "sent")], 3.0),
        ("tidings_messages_total", vec![("kind", "digest"), ("outcome", "sent")], 2.0),
        ("tidings_messages_total", vec![("kind", "digest"), ("outcome", "bounced")], 1.0),
        ("tidings_smtp_send_seconds_count", vec![("kind", "digest")], 3.0),
        ("tidings_http_requests_total", vec![("route", "/subscriptions"), ("method", "POST"), ("status", "202")], 3.0),
        ("tidings_http_request_seconds_count", vec![("route", "/subscriptions/confirm")], 3.0),
    ] {
        assert!(
            moved(name, &labels) >= at_least,
            "{name}{labels:?} moved by {} (want {at_least}):\n{after}",
            moved(name, &labels)
        );
    }
    for gauge in ["tidings_outbox_pending", "tidings_deliveries_pending"] {
        assert!(after.lines().any(|l| l.starts_with(&format!("{gauge} "))), "{gauge} in:\n{after}");
    }
    assert!(after.contains("tidings_db_connections{state=\"idle\"}"), "{after}");
    assert!(after.contains("tidings_smtp_send_seconds_bucket{kind=\"digest\",le=\"0.001\"}"), "a histogram");

    // The metrics listener: no token, and nothing else on it.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let open = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(open.status(), 200);
    assert!(open.text().await.unwrap().contains("tidings_messages_total"));
    let other = client.get(format!("http://127.0.0.1:{port}/subscriptions/form-token")).send().await.unwrap();
    assert_eq!(other.status(), 404);
}
