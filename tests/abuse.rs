//! Abuse resistance and security, each point with a test that fails without it.

mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    signups_are_rate_limited_per_client_ip,
    forwarded_for_counts_only_behind_a_trusted_proxy,
    confirmations_are_rate_limited_per_client_ip,
    confirmation_cap_holds_across_instances,
    fill_time_asks_for_one_more_step_and_honeypot_stays_silent,
    json_api_gets_the_same_protection,
    one_form_token_serves_one_signup,
    blocked_domains_are_answered_and_dropped,
    cross_origin_posts_need_an_allowed_origin,
    tokens_are_single_use_and_scoped,
    pages_carry_security_headers,
);

async fn signups_are_rate_limited_per_client_ip(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.signup_rate_per_minute = 5).await;
    for i in 0..5 {
        assert_eq!(app.signup(&format!("r{i}@example.com"), &["orthopedic"]).await.status(), 202);
    }
    let res = app.signup("r5@example.com", &["orthopedic"]).await;
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("too many requests"));
    // Nothing was stored for the refused request; other routes still answer.
    assert_eq!(app.db.count("subscribers WHERE email = 'r5@example.com'"), 0);
    assert_eq!(app.get("/health").await.status(), 200);
}

async fn forwarded_for_counts_only_behind_a_trusted_proxy(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.signup_rate_per_minute = 2;
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let from = |ip: &'static str, email: String| {
        app.client
            .post(app.url("/subscriptions"))
            .header("x-forwarded-for", ip)
            .json(&json!({ "email": email, "lists": ["orthopedic"] }))
            .send()
    };
    for i in 0..2 {
        assert_eq!(from("203.0.113.1", format!("a{i}@example.com")).await.unwrap().status(), 202);
    }
    assert_eq!(from("203.0.113.1", "a2@example.com".into()).await.unwrap().status(), 429);
    // Another client behind the same proxy has its own allowance.
    assert_eq!(from("203.0.113.2", "b0@example.com".into()).await.unwrap().status(), 202);
    // The consent record holds the real client address.
    assert_eq!(app.db.count("consent_events WHERE ip = '203.0.113.2'"), 1);

    // Without a trusted proxy the header is ignored: every request is 127.0.0.1.
    let direct = TestApp::spawn_with(backend, |s| s.signup_rate_per_minute = 2).await;
    for (i, ip) in ["198.51.100.1", "198.51.100.2"].iter().enumerate() {
        let res = direct
            .client
            .post(direct.url("/subscriptions"))
            .header("x-forwarded-for", *ip)
            .json(&json!({ "email": format!("c{i}@example.com"), "lists": ["orthopedic"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    let res = direct
        .client
        .post(direct.url("/subscriptions"))
        .header("x-forwarded-for", "198.51.100.3")
        .json(&json!({ "email": "c2@example.com", "lists": ["orthopedic"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "a forged X-Forwarded-For must not buy a new allowance");
}

async fn confirmations_are_rate_limited_per_client_ip(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.confirm_rate_per_minute = 3;
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    assert_eq!(app.signup("guessed@example.com", &["orthopedic"]).await.status(), 202);
    app.smtp.wait_for(1, Duration::from_secs(10)).await;
    let link = app.smtp.received()[0].link("http://tidings.test/subscriptions/confirm?token=");
    let token = link.rsplit('=').next().unwrap().to_owned();
    let confirm = |ip: &'static str, token: String| {
        app.client
            .post(app.url("/subscriptions/confirm"))
            .header("x-forwarded-for", ip)
            .form(&[("token", token)])
            .send()
    };
    // A guesser runs out of tries; even the right token is then refused.
    for i in 0..3 {
        let res = confirm("203.0.113.9", format!("{i}.AAAAAAAAAAAAAAAAAAAAAA")).await.unwrap();
        assert_eq!(res.status(), 400);
    }
    let res = confirm("203.0.113.9", token.clone()).await.unwrap();
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert_eq!(app.db.count("subscriptions WHERE status = 'confirmed'"), 0);
    // The page behind the link is not limited, and the reader, from their
    // own address, confirms.
    let page = app.client.get(app.local(&link)).header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(confirm("203.0.113.10", token).await.unwrap().status(), 200);
    assert_eq!(app.db.count("subscriptions WHERE status = 'confirmed'"), 1);
}

async fn confirmation_cap_holds_across_instances(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let settings = common::test_settings(&first.db, first.smtp.port);
    let second = tidings::app::Application::build(settings).await.unwrap();
    let second_url = format!("http://127.0.0.1:{}", second.port());
    tokio::spawn(second.run());
    for i in 0..6 {
        let url = if i % 2 == 0 { first.url("/subscriptions") } else { format!("{second_url}/subscriptions") };
        let res = first
            .client
            .post(url)
            .json(&json!({"email": "victim@example.com", "lists": ["orthopedic"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    first.smtp.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(first.smtp.to("victim@example.com").len(), 3, "the cap lives in the database");
}

/// The form token in a page's hidden field.
fn form_token_in(page: &str) -> String {
    page.split("name=\"form_token\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
}

async fn fill_time_asks_for_one_more_step_and_honeypot_stays_silent(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.form_min_fill_ms = 1_500).await;
    let token = form_token_in(&app.get("/").await.text().await.unwrap());
    let human = [("email", "human@example.com"), ("lists", "orthopedic"), ("website", ""), ("form_token", &token)];

    // Instantly, without a token, with a forged one: one more step, with
    // the choices kept and a fresh token; nothing stored.
    let res = app.post_form("/subscriptions", &human).await;
    assert_eq!(res.status(), 200);
    let step = res.text().await.unwrap();
    assert!(step.contains("One more step"), "{step}");
    assert!(step.contains(r#"name="email" value="human@example.com""#));
    assert!(step.contains(r#"name="lists" value="orthopedic""#));
    assert_ne!(form_token_in(&step), token, "a fresh token");
    let no_token = app.post_form("/subscriptions", &[("email", "late@example.com"), ("lists", "orthopedic")]).await;
    let no_token = no_token.text().await.unwrap();
    assert!(no_token.contains("One more step"));
    let forged = app
        .post_form(
            "/subscriptions",
            &[
                ("email", "bot2@example.com"),
                ("lists", "orthopedic"),
                ("form_token", "1-0011223344556677.AAAAAAAAAAAAAAAAAAAAAA"),
            ],
        )
        .await;
    assert!(forged.text().await.unwrap().contains("One more step"));
    assert_eq!(app.db.count("subscribers"), 0);

    tokio::time::sleep(Duration::from_millis(1_600)).await;
    // The honeypot stays silent: the answer a person gets, nothing stored.
    let trap = form_token_in(&app.get("/").await.text().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let trapped = app
        .post_form(
            "/subscriptions",
            &[
                ("email", "bot3@example.com"),
                ("lists", "orthopedic"),
                ("website", "http://spam.example"),
                ("form_token", &trap),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(trapped.contains("Check your inbox"));
    assert_eq!(app.db.count("subscribers"), 0, "bots leave nothing behind");

    // A person who took their time gets through, once per token.
    let res = app.post_form("/subscriptions", &human).await.text().await.unwrap();
    assert!(res.contains("Check your inbox"));
    assert_eq!(app.db.count("subscribers"), 1);
    let reused = [("email", "second@example.com"), ("lists", "orthopedic"), ("form_token", &token)];
    let again = app.post_form("/subscriptions", &reused).await.text().await.unwrap();
    assert!(again.contains("One more step"), "a used token asks again");
    assert_eq!(app.db.count("subscribers"), 1);

    // Pressing Subscribe on "one more step" completes the signup.
    let fresh = form_token_in(&no_token);
    let pressed = [("email", "late@example.com"), ("name", ""), ("lists", "orthopedic"), ("form_token", &fresh)];
    let done = app.post_form("/subscriptions", &pressed).await.text().await.unwrap();
    assert!(done.contains("Check your inbox"), "{done}");
    assert_eq!(app.db.count("subscribers"), 2);
    app.smtp.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.received().len(), 2);
}

async fn json_api_gets_the_same_protection(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.signup_rate_per_minute = 3).await;
    let res = app
        .post_json("/subscriptions", &json!({"email": "bot@example.com", "lists": ["orthopedic"], "website": "x"}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(app.db.count("subscribers"), 0, "the honeypot works for JSON too");
    app.signup("a@example.com", &["orthopedic"]).await;
    app.signup("b@example.com", &["orthopedic"]).await;
    assert_eq!(app.signup("c@example.com", &["orthopedic"]).await.status(), 429, "one limit for form and API");
    let form = app.post_form("/subscriptions", &[("email", "d@example.com"), ("lists", "orthopedic")]).await;
    assert_eq!(form.status(), 429);

    // The fill time holds for JSON too: a client fetches a token first, and
    // one without a usable token is told how to get one.
    let timed = TestApp::spawn_with(backend, |s| s.form_min_fill_ms = 1_500).await;
    let issued = timed.get("/subscriptions/form-token").await;
    assert_eq!(issued.headers()["cache-control"], "no-store");
    let issued = issued.json::<Value>().await.unwrap();
    assert_eq!(issued["min_fill_ms"], 1_500);
    let token = issued["form_token"].as_str().unwrap();
    let timed = &timed;
    let json_signup = |email: &'static str, token: Option<&str>| {
        let body = json!({"email": email, "lists": ["orthopedic"], "form_token": token});
        async move { timed.post_json("/subscriptions", &body).await }
    };
    for (email, token, why) in [
        ("no-token@example.com", None, "missing"),
        ("too-fast@example.com", Some(token), "sooner"),
        ("forged@example.com", Some("1-0011223344556677.AAAAAAAAAAAAAAAAAAAAAA"), "not one we issued"),
    ] {
        let res = json_signup(email, token).await;
        assert_eq!(res.status(), 400, "{email}");
        let body = res.json::<Value>().await.unwrap();
        assert_eq!(body["field"], "form_token");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(why) && error.contains("GET /subscriptions/form-token"), "{error}");
    }
    assert_eq!(timed.db.count("subscribers"), 0, "JSON cannot skip the fill time");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(json_signup("patient@example.com", Some(token)).await.status(), 202);
    assert_eq!(timed.db.count("subscribers"), 1);
    assert_eq!(timed.db.count("subscribers WHERE email = 'patient@example.com'"), 1);
    let reused = json_signup("second@example.com", Some(token)).await;
    assert_eq!(reused.status(), 400, "one token, one signup");
    assert!(reused.text().await.unwrap().contains("used by another signup"));
    assert_eq!(timed.db.count("subscribers"), 1);

    let closed = TestApp::spawn_with(backend, |s| s.json_signups = false).await;
    assert_eq!(closed.signup("e@example.com", &["orthopedic"]).await.status(), 403);
    assert_eq!(closed.db.count("subscribers"), 0);
}

/// Many signups posted at once with one token: exactly one gets through.
async fn one_form_token_serves_one_signup(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.form_min_fill_ms = 500).await;
    let issued = app.get("/subscriptions/form-token").await.json::<Value>().await.unwrap();
    let token = issued["form_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (client, url, token) = (app.client.clone(), app.url("/subscriptions"), token.clone());
            tokio::spawn(async move {
                let body =
                    json!({"email": format!("many{i}@example.com"), "lists": ["orthopedic"], "form_token": token});
                client.post(url).json(&body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 202).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 400).count(), 39, "{statuses:?}");
    assert_eq!(app.db.count("subscribers"), 1);
    assert_eq!(app.db.count("form_token_uses"), 1);
}

async fn blocked_domains_are_answered_and_dropped(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.blocked_domains = vec!["throwaway.example".into()]).await;
    let ok = app.signup("real@example.com", &["orthopedic"]).await;
    let blocked = app.signup("x@throwaway.example", &["orthopedic"]).await;
    let sub = app.signup("x@eu.throwaway.example", &["orthopedic"]).await;
    assert_eq!([ok.status(), blocked.status(), sub.status()].map(|s| s.as_u16()), [202, 202, 202]);
    let bodies = (ok.text().await.unwrap(), blocked.text().await.unwrap(), sub.text().await.unwrap());
    assert_eq!(bodies.0, bodies.1);
    assert_eq!(bodies.0, bodies.2);
    assert_eq!(app.db.count("subscribers"), 1);
    app.smtp.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.received().len(), 1);
}

async fn cross_origin_posts_need_an_allowed_origin(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.allowed_origins = vec!["https://blog.example.org".into()];
        s.form_min_fill_ms = 1_000;
    })
    .await;
    // The blog's pages fetch a fill-time token across origins.
    let issued = app
        .client
        .get(app.url("/subscriptions/form-token"))
        .header("origin", "https://blog.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(issued.headers()["access-control-allow-origin"], "https://blog.example.org");
    let token = issued.json::<Value>().await.unwrap()["form_token"].as_str().unwrap().to_owned();
    let more_token = || async {
        let issued = app.get("/subscriptions/form-token").await.json::<Value>().await.unwrap();
        issued["form_token"].as_str().unwrap().to_owned()
    };
    let tokens = [token.clone(), more_token().await, more_token().await, more_token().await];
    let foreign =
        app.client.get(app.url("/subscriptions/form-token")).header("origin", "https://evil.example").send().await;
    assert!(foreign.unwrap().headers().get("access-control-allow-origin").is_none());
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let post = |origin: &'static str, email: &'static str, token: &str| {
        app.client
            .post(app.url("/subscriptions"))
            .header("origin", origin)
            .json(&json!({ "email": email, "lists": ["orthopedic"], "form_token": token }))
            .send()
    };
    let res = post("https://evil.example", "a@example.com", &tokens[0]).await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = post("https://blog.example.org", "b@example.com", &tokens[1]).await.unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://blog.example.org");
    let res = post("http://tidings.test", "c@example.com", &tokens[2]).await.unwrap();
    assert_eq!(res.status(), 202, "our own pages");
    // The blog's own copy of the form: claiming the blog's origin does not
    // excuse a post from the fill time.
    let blog_form = |pairs: &[(&str, &str)]| {
        app.client.post(app.url("/subscriptions")).header("origin", "https://blog.example.org").form(pairs).send()
    };
    let res = blog_form(&[("email", "bot@example.com"), ("lists", "orthopedic")]).await.unwrap();
    assert_eq!(res.status(), 200);
    let res =
        blog_form(&[("email", "d@example.com"), ("lists", "orthopedic"), ("form_token", &tokens[3])]).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.db.count("subscribers"), 3);
    assert_eq!(app.db.count("subscribers WHERE email = 'bot@example.com'"), 0);

    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/subscriptions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let res = preflight("https://blog.example.org").await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://blog.example.org");
    assert_eq!(res.headers()["access-control-allow-methods"], "POST");
    assert_eq!(preflight("https://evil.example").await.unwrap().status(), 403);
}

async fn tokens_are_single_use_and_scoped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mail = app.subscribe_confirmed("once@example.com", &["orthopedic", "social-media"]).await;
    let token = mail.link("http://tidings.test/subscriptions/confirm?token=").rsplit('=').next().unwrap().to_owned();
    let unsubscribe = app.local(mail.header("List-Unsubscribe").unwrap().trim_matches(['<', '>']));
    assert_eq!(app.client.post(&unsubscribe).send().await.unwrap().status(), 200);
    // The used confirmation token cannot bring the reader back.
    assert_eq!(app.post_form("/subscriptions/confirm", &[("token", &token)]).await.status(), 200);
    // The confirmation mail's link is for the first of its lists.
    let counts = app.counts().await;
    assert_eq!(counts["social-media"], (0, 0, 1), "a used token must not re-confirm");
    // The unsubscribe link was for that one list only.
    assert_eq!(counts["orthopedic"], (0, 1, 0));
    assert_eq!(app.db.count("confirmation_tokens WHERE used_at IS NOT NULL"), 1);
    // The database holds no usable token: only ids, never the MAC.
    let mac = token.split('.').nth(1).unwrap();
    assert_eq!(app.db.count(&format!("confirmation_tokens WHERE public_id LIKE '%{mac}%'")), 0);
}

async fn pages_carry_security_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mail = app.subscribe_confirmed("headers@example.com", &["orthopedic"]).await;
    let unsubscribe = app.local(mail.header("List-Unsubscribe").unwrap().trim_matches(['<', '>']));
    let confirm = app.local(&mail.link("http://tidings.test/subscriptions/confirm?token="));
    for url in [app.url("/"), confirm, unsubscribe, app.url("/health"), app.url("/nowhere")] {
        let res = app.client.get(&url).send().await.unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{url}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(h["referrer-policy"], "same-origin", "{url}");
        assert_eq!(h["x-frame-options"], "DENY", "{url}");
        assert!(h.contains_key("x-request-id"));
    }
}
