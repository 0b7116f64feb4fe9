//! The attack review's cases: slow bodies, connection floods, injectable
//! template stand-ins, unsendable addresses, spoofing characters, and what
//! a replayed link or a misconfigured feed is told. Each fails without its fix.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::{FileServer, Serve};
use common::{Backend, TestApp};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_backends!(
    a_stalled_body_gets_408_within_the_deadline,
    a_connection_flood_from_one_address_starves_nobody,
    post_content_cannot_forge_a_readers_values,
    address_literals_are_refused,
    spoofing_characters_are_refused_in_names_and_dropped_from_titles,
    a_replayed_confirmation_says_what_is_true,
);

/// Opens a connection to `port` and sends `request` (headers and the start
/// of a body, never all of it).
async fn stall(port: u16, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// The status line's code of whatever `stream` answers within `within`,
/// or `None` if it says nothing in that time.
async fn status_of(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, stream.read(&mut buf)).await.ok()?.ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

const STALLED_SIGNUP: &str = "POST /subscriptions HTTP/1.1\r\nHost: tidings.test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";

fn port_of(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

async fn a_stalled_body_gets_408_within_the_deadline(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.body_timeout_ms = 1_500).await;
    let port = port_of(&app);
    let started = Instant::now();
    let mut stalled = stall(port, STALLED_SIGNUP).await;
    // Others are served meanwhile.
    assert_eq!(app.signup("patient@example.com", &["orthopedic"]).await.status(), 202);
    assert!(started.elapsed() < Duration::from_secs(1), "served while a body stalls");
    assert_eq!(status_of(&mut stalled, Duration::from_secs(5)).await, Some(408));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1_400) && waited < Duration::from_secs(3), "{waited:?}");
    // And the connection is closed: nothing more is read from it.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), stalled.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection closes after a 408");
    assert_eq!(app.db.count("subscribers"), 1);

    // A forged unsubscribe link is answered before any body is read.
    let mut forged = stall(
        port,
        "POST /unsubscribe/forged.token HTTP/1.1\r\nHost: tidings.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nList",
    )
    .await;
    assert_eq!(status_of(&mut forged, Duration::from_millis(800)).await, Some(404));
}

async fn a_connection_flood_from_one_address_starves_nobody(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.body_timeout_ms = 3_000;
        s.max_connections_per_ip = 100;
    })
    .await;
    let port = port_of(&app);
    let mut flood = Vec::new();
    for _ in 0..500 {
        flood.push(stall(port, STALLED_SIGNUP).await);
    }
    // A reader from another address signs up as usual.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let res = other
        .post(app.url("/subscriptions"))
        .json(&json!({"email": "other@example.com", "lists": ["orthopedic"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // Over the cap: 429 at once; within it: 408 at the deadline.
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = flood
        .into_iter()
        .map(|mut stream| {
            let answers = Arc::clone(&answers);
            tokio::spawn(async move {
                let status = status_of(&mut stream, Duration::from_secs(8)).await;
                answers.lock().unwrap().push((status, Instant::now()));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let count = |code| answers.iter().filter(|(s, _)| *s == Some(code)).count();
    assert_eq!(count(429), 400, "{answers:?}");
    assert_eq!(count(408), 100);
    // The slots come back when the connections close.
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.signup("again@example.com", &["orthopedic"]).await.status(), 202);
    assert_eq!(app.db.count("subscribers"), 2);
}

async fn post_content_cannot_forge_a_readers_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let readers = ["ann@example.com", "ben@example.com"];
    for r in readers {
        app.subscribe_confirmed(r, &["orthopedic"]).await;
    }
    let before = app.smtp.received().len();
    // The old stand-ins, the way a feed would write them too.
    let body = json!({
        "title": "Claim prize \u{E000}unsubscribe\u{E000}",
        "url": "https://blog.example.org/prize",
        "summary": "Press &#xE000;unsubscribe&#xE000; now \u{E000}name\u{E000}",
        "published_at": "2026-12-01T10:00:00Z",
        "lists": ["orthopedic"],
    });
    assert_eq!(app.admin_post("/admin/posts", &body).await.status(), 201);
    let digest = app.send_digest("orthopedic").await;
    assert_eq!(digest["sent"], 2, "{digest}");
    let mails = app.smtp.wait_for(before + 2, Duration::from_secs(10)).await;
    for reader in readers {
        let mail = mails[before..].iter().find(|m| m.to == [reader]).unwrap();
        let (text, html) = (mail.text(), mail.html());
        assert!(text.contains("Claim prize unsubscribe"), "{text}");
        assert!(text.contains("Press unsubscribe now name"), "{text}");
        let own = mail.header("List-Unsubscribe").unwrap();
        let own = own.trim_matches(['<', '>']);
        // The reader's own link appears only where the template puts it.
        assert_eq!(text.matches(own).count(), 1, "{text}");
        assert!(html.contains("Claim prize unsubscribe"), "{html}");
        assert!(!text.contains('\u{E000}') && !html.contains('\u{E000}'));
    }
}

async fn address_literals_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for literal in ["a@[127.0.0.1]", "a@[IPv6:::1]", "a@127.0.0.1"] {
        let res = app.signup(literal, &["orthopedic"]).await;
        assert_eq!(res.status(), 400, "{literal}");
        assert_eq!(res.json::<Value>().await.unwrap()["field"], "email");
    }
    let form = app.post_form("/subscriptions", &[("email", "a@[127.0.0.1]"), ("lists", "orthopedic")]).await;
    assert_eq!(form.status(), 400);
    assert!(form.text().await.unwrap().contains("valid email address"));
    assert_eq!(app.db.count("subscribers"), 0);
}

async fn spoofing_characters_are_refused_in_names_and_dropped_from_titles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["Bob\u{202E}gpj.exe", "A\u{200B}lice", "\u{FEFF}Eve", "Mal\u{E000}lory"] {
        let res = app
            .post_json("/subscriptions", &json!({"email": "n@example.com", "name": name, "lists": ["orthopedic"]}))
            .await;
        assert_eq!(res.status(), 400, "{name:?}");
        assert_eq!(res.json::<Value>().await.unwrap()["field"], "name");
    }
    assert_eq!(app.db.count("subscribers"), 0);
    let ok = json!({"email": "n@example.com", "name": "Zoë \u{1F468}\u{200D}\u{1F469}", "lists": ["orthopedic"]});
    assert_eq!(app.post_json("/subscriptions", &ok).await.status(), 202, "joiners stay allowed");
    let id = app.add_post("https://blog.example.org/spoof", "Invoice\u{202E}fdp.exe\u{200B}", &["orthopedic"]).await;
    let posts: Value = app.admin_get("/admin/posts?list=orthopedic").await.json().await.unwrap();
    let post = posts.as_array().unwrap().iter().find(|p| p["id"] == id).unwrap();
    assert_eq!(post["title"], "Invoicefdp.exe");
    // The scheme of an Authorization header is case-insensitive.
    let lower =
        app.client.get(app.url("/admin/lists")).header("authorization", format!("bearer {}", common::ADMIN_TOKEN));
    assert_eq!(lower.send().await.unwrap().status(), 200);
}

async fn a_replayed_confirmation_says_what_is_true(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mail = app.subscribe_confirmed("leaver@example.com", &["orthopedic"]).await;
    let link = mail.link("http://tidings.test/subscriptions/confirm?token=");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let again = app.post_form("/subscriptions/confirm", &[("token", &token)]).await.text().await.unwrap();
    assert!(again.contains("You will receive Orthopedic"), "{again}");
    let unsubscribe = mail.header("List-Unsubscribe").unwrap();
    let res = app.client.post(app.local(unsubscribe.trim_matches(['<', '>']))).form(&[("x", "y")]).send().await;
    assert_eq!(res.unwrap().status(), 200);
    let replay = app.post_form("/subscriptions/confirm", &[("token", &token)]).await.text().await.unwrap();
    assert!(replay.contains("since left Orthopedic"), "{replay}");
    assert!(!replay.contains("You will receive"), "{replay}");
}

#[tokio::test]
async fn feeds_on_ipv6_literals_work_and_redirects_are_named() {
    let rss: Arc<[u8]> = Arc::from(&include_bytes!("fixtures/wordpress.rss")[..]);
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback on this machine: skipped");
        return;
    };
    drop(probe);
    let v6 = FileServer::start_at("[::1]:0", Arc::clone(&rss), "application/rss+xml", Serve::Whole).await;
    let moved =
        FileServer::start_with(rss, "application/rss+xml", Serve::Redirect("https://blog.example.org/feed/")).await;
    let (v6_url, moved_url) = (v6.url("/feed/"), moved.url("/feed/"));
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.feed_allow_private_hosts = true;
        s.lists[1].feed_url = Some(url::Url::parse(&v6_url).unwrap());
        s.lists[0].feed_url = Some(url::Url::parse(&moved_url).unwrap());
    })
    .await;
    let pull = |list: &'static str| {
        app.client.post(app.url(&format!("/admin/posts/pull?list={list}"))).bearer_auth(common::ADMIN_TOKEN).send()
    };
    let res = pull("orthopedic").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()[0]["created"], 4);
    let res = pull("social-media").await.unwrap();
    assert_eq!(res.status(), 502);
    let error = res.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("301") && error.contains("redirects are not followed"), "{error}");
    assert!(error.contains("https://blog.example.org/feed/"), "{error}");
    assert_eq!(app.db.count("post_lists"), 4, "the redirect's body is not read as a feed");

    // Without the private-host allowance, an IPv6 loopback literal is refused as such.
    let guarded = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.lists[1].feed_url = Some(url::Url::parse(&v6_url).unwrap());
    })
    .await;
    let res = guarded
        .client
        .post(guarded.url("/admin/posts/pull?list=orthopedic"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let error = res.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("private or loopback"), "{error}");
}
