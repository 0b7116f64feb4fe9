//! Signup, double opt-in and unsubscribe, end to end over HTTP and SMTP.

mod common;

use std::time::Duration;

use common::{Backend, Reply, SmtpServer, TestApp, TestDb, free_port, test_settings, wait_until};
use serde_json::{Value, json};
use tidings::domain::{Signer, TokenKind};

const CONFIRM: &str = "http://tidings.test/subscriptions/confirm?token=";

on_both_backends!(
    full_flow_confirms_every_list_of_the_signup,
    answers_are_identical_whatever_the_address_state,
    bad_input_is_refused_and_nothing_is_written,
    confirmation_mails_are_capped_per_day,
    get_on_the_confirm_link_does_not_confirm,
    expired_and_forged_tokens_are_refused,
    one_click_unsubscribe_by_post_body,
    unsubscribe_page_can_leave_every_list,
    smtp_down_at_signup_then_up_delivers,
    form_signup_works_without_javascript,
    admin_needs_the_token,
    consent_evidence_is_recorded,
    a_failing_signup_leaves_the_others_of_its_group_intact,
    one_address_signed_up_many_times_at_once,
);

async fn full_flow_confirms_every_list_of_the_signup(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.signup("Alice@Example.COM", &["orthopedic", "social-media"]).await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({ "status": "pending" }));

    let mail = &app.smtp.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(mail.to, ["alice@example.com"]);
    assert!(mail.header("Content-Type").unwrap().starts_with("multipart/alternative"));
    let message_id = mail.header("Message-ID").unwrap();
    assert!(message_id.starts_with('<') && message_id.ends_with("@tidings.test>"), "{message_id}");
    assert!(mail.header("Date").is_some());
    let unsubscribe = mail.header("List-Unsubscribe").unwrap();
    assert!(unsubscribe.starts_with("<http://tidings.test/unsubscribe/"), "{unsubscribe}");
    assert_eq!(mail.header("List-Unsubscribe-Post").unwrap(), "List-Unsubscribe=One-Click");
    let text = mail.text();
    assert!(text.contains("Medical Social Media and Orthopedic"), "{text}");
    assert!(mail.html().contains("Confirm my subscription"));
    assert_eq!(app.counts().await["orthopedic"], (1, 0, 0));

    let link = mail.link(CONFIRM);
    let page = app.client.get(app.local(&link)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<button type=\"submit\">Confirm my subscription</button>"));

    let token = link.strip_prefix(CONFIRM).unwrap();
    let res = app.post_form("/subscriptions/confirm", &[("token", token)]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are subscribed"));
    let counts = app.counts().await;
    assert_eq!(counts["orthopedic"], (0, 1, 0));
    assert_eq!(counts["social-media"], (0, 1, 0));

    // Confirming twice is harmless.
    let again = app.post_form("/subscriptions/confirm", &[("token", token)]).await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.counts().await["orthopedic"], (0, 1, 0));
    // The same address in another case is the same reader.
    assert_eq!(app.db.count("subscribers"), 1);
    app.db.assert_tallies_match();
}

async fn answers_are_identical_whatever_the_address_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let confirmed = "confirmed@example.com";
    let mail = app.subscribe_confirmed(confirmed, &["orthopedic"]).await;
    let gone = "gone@example.com";
    let gone_mail = app.subscribe_confirmed(gone, &["orthopedic"]).await;
    let unsubscribe = gone_mail.header("List-Unsubscribe").unwrap();
    let url = unsubscribe.trim_matches(['<', '>']);
    assert_eq!(app.client.post(app.local(url)).send().await.unwrap().status(), 200);
    assert_eq!(app.signup("pending@example.com", &["orthopedic"]).await.status(), 202);
    drop(mail);

    let mut answers = Vec::new();
    for email in ["new@example.com", "pending@example.com", confirmed, gone] {
        let res = app.signup(email, &["orthopedic"]).await;
        answers.push((res.status(), res.text().await.unwrap()));
        let res = app.post_form("/subscriptions", &[("email", email), ("lists", "orthopedic")]).await;
        answers.push((res.status(), res.text().await.unwrap()));
    }
    for pair in answers.chunks(2).skip(1) {
        assert_eq!(pair[0], answers[0], "JSON answers differ");
        assert_eq!(pair[1], answers[1], "form answers differ");
    }
    // A confirmed reader stays confirmed and gets no new confirmation; the
    // unsubscribed reader goes through double opt-in again.
    let counts = app.counts().await["orthopedic"];
    assert_eq!(counts, (3, 1, 0), "(pending, confirmed, unsubscribed)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp.to(confirmed).len(), 1);
    assert_eq!(app.smtp.to(gone).len(), 3, "first signup, then the JSON and the form re-signup");
}

async fn bad_input_is_refused_and_nothing_is_written(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let long_email = format!("{}@example.com", "a".repeat(250));
    let long_name = "n".repeat(101);
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "lists": ["orthopedic"] }), "email"),
        (json!({ "email": "not-an-email", "lists": ["orthopedic"] }), "email"),
        (json!({ "email": "john..doe@example.com", "lists": ["orthopedic"] }), "email"),
        (json!({ "email": "a@b", "lists": ["orthopedic"] }), "email"),
        (json!({ "email": long_email, "lists": ["orthopedic"] }), "email"),
        (json!({ "email": "a@example.com", "name": long_name, "lists": ["orthopedic"] }), "name"),
        (json!({ "email": "a@example.com", "name": "Eve\r\nBcc: x@y.z", "lists": ["orthopedic"] }), "name"),
        (json!({ "email": "a@example.com", "lists": [] }), "lists"),
        (json!({ "email": "a@example.com" }), "lists"),
        (json!({ "email": "a@example.com", "lists": ["cardiology"] }), "lists"),
        (json!({ "email": "a@example.com", "lists": "orthopedic" }), "lists"),
    ];
    for (body, field) in cases {
        let res = app.post_json("/subscriptions", &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["field"], field, "{body} -> {answer}");
        assert!(answer["error"].as_str().unwrap().len() > 10, "{answer}");
    }

    let malformed = app
        .client
        .post(app.url("/subscriptions"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(malformed.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("JSON"));

    let huge = format!("{{\"email\": \"a@example.com\", \"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let res = app
        .client
        .post(app.url("/subscriptions"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(res.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("64 KiB"));

    let res = app.client.post(app.url("/subscriptions")).body("email=a@example.com").send().await.unwrap();
    assert_eq!(res.status(), 415);

    let bad_utf8 = app
        .client
        .post(app.url("/subscriptions"))
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_utf8.status(), 400);

    // A form with a mistake comes back with the message and what was typed.
    let res = app.post_form("/subscriptions", &[("email", "bad@"), ("name", "Zoë"), ("lists", "orthopedic")]).await;
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(page.contains("value=\"Zoë\""));
    assert!(page.contains("value=\"orthopedic\" checked"));

    assert_eq!(app.db.count("subscribers"), 0);
    assert_eq!(app.db.count("subscriptions"), 0);
    assert_eq!(app.db.count("outbox"), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.smtp.received().is_empty());
}

async fn confirmation_mails_are_capped_per_day(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for _ in 0..6 {
        assert_eq!(app.signup("eager@example.com", &["orthopedic"]).await.status(), 202);
    }
    app.smtp.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.smtp.to("eager@example.com").len(), 3);
    assert_eq!(app.db.count("outbox"), 3);
    // Each mail carries a fresh token, and the latest works.
    let mails = app.smtp.to("eager@example.com");
    let links: Vec<_> = mails.iter().map(|m| m.link(CONFIRM)).collect();
    assert_ne!(links[0], links[2]);
    let token = links[2].strip_prefix(CONFIRM).unwrap();
    assert_eq!(app.post_form("/subscriptions/confirm", &[("token", token)]).await.status(), 200);
    assert_eq!(app.counts().await["orthopedic"], (0, 1, 0));
}

async fn get_on_the_confirm_link_does_not_confirm(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("scanned@example.com", &["orthopedic"]).await;
    let mail = &app.smtp.wait_for(1, Duration::from_secs(10)).await[0];
    let link = app.local(&mail.link(CONFIRM));
    for _ in 0..3 {
        assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);
    }
    assert_eq!(app.counts().await["orthopedic"], (1, 0, 0));
}

async fn expired_and_forged_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("late@example.com", &["orthopedic"]).await;
    let mail = &app.smtp.wait_for(1, Duration::from_secs(10)).await[0];
    let token = mail.link(CONFIRM).strip_prefix(CONFIRM).unwrap().to_owned();

    // Forged: one character changed, and a well-formed token never issued.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let res = app.post_form("/subscriptions/confirm", &[("token", &forged)]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Sign up again"));
    let res = app.get(&format!("/subscriptions/confirm?token={forged}")).await;
    assert_eq!(res.status(), 400);
    let never_issued = Signer::new(common::SECRET_KEY.as_bytes()).sign(TokenKind::Confirm, &Signer::new_id());
    let res = app.post_form("/subscriptions/confirm", &[("token", &never_issued)]).await;
    assert_eq!(res.status(), 404);
    // An unsubscribe token is no confirmation token.
    let unsubscribe = mail.header("List-Unsubscribe").unwrap();
    let unsubscribe_token = unsubscribe.trim_matches(['<', '>']).rsplit('/').next().unwrap().to_owned();
    let res = app.post_form("/subscriptions/confirm", &[("token", &unsubscribe_token)]).await;
    assert_eq!(res.status(), 400);

    // Expired: the token is 49 hours old.
    app.db.execute("UPDATE confirmation_tokens SET expires_at = created_at");
    let res = app.post_form("/subscriptions/confirm", &[("token", &token)]).await;
    assert_eq!(res.status(), 410);
    assert!(res.text().await.unwrap().contains("expired"));
    assert_eq!(app.counts().await["orthopedic"], (1, 0, 0));
}

async fn one_click_unsubscribe_by_post_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let multipart = app.subscribe_confirmed("multi@example.com", &["orthopedic"]).await;
    let urlencoded = app.subscribe_confirmed("plain@example.com", &["orthopedic"]).await;
    assert_eq!(app.counts().await["orthopedic"], (0, 2, 0));

    let url = |m: &common::Received| m.header("List-Unsubscribe").unwrap().trim_matches(['<', '>']).to_owned();
    // A GET (a link scanner) changes nothing.
    let page = app.client.get(app.local(&url(&multipart))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(app.counts().await["orthopedic"], (0, 2, 0));

    // RFC 8058 as multipart/form-data, no cookie, no credentials.
    let body =
        "--b0undary\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b0undary--\r\n";
    let res = app
        .client
        .post(app.local(&url(&multipart)))
        .header("content-type", "multipart/form-data; boundary=b0undary")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.counts().await["orthopedic"], (0, 1, 1));

    let res = app
        .client
        .post(app.local(&url(&urlencoded)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Unsubscribed readers are not counted as confirmed.
    assert_eq!(app.counts().await["orthopedic"], (0, 0, 2));
    // Twice is harmless, and a forged link is refused.
    let res = app.client.post(app.local(&url(&urlencoded))).body("List-Unsubscribe=One-Click").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res =
        app.client.post(app.url("/unsubscribe/AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.counts().await["orthopedic"], (0, 0, 2));
    app.db.assert_tallies_match();
}

async fn unsubscribe_page_can_leave_every_list(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mail = app.subscribe_confirmed("both@example.com", &["orthopedic", "social-media"]).await;
    let url = app.local(mail.header("List-Unsubscribe").unwrap().trim_matches(['<', '>']));
    let page = app.client.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Also leave"), "{page}");
    let res = app.client.post(&url).form(&[("all", "yes")]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let counts = app.counts().await;
    assert_eq!(counts["orthopedic"], (0, 0, 1));
    assert_eq!(counts["social-media"], (0, 0, 1));
    app.db.assert_tallies_match();
}

async fn smtp_down_at_signup_then_up_delivers(backend: Backend) {
    let port = free_port();
    let db = TestDb::new(backend);
    let settings = test_settings(&db, port);
    // Nothing listens on `port` yet: start a server elsewhere for the harness.
    let app = TestApp::spawn_on(settings, SmtpServer::start().await, db).await;
    for i in 0..3 {
        let res = app.signup(&format!("patient{i}@example.com"), &["orthopedic"]).await;
        assert_eq!(res.status(), 202, "signups keep working while SMTP is down");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(app.db.count("outbox WHERE status = 'pending' AND attempts > 0"), 3);

    let late = SmtpServer::start_on(port).await;
    let got = late.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3);
    wait_until(Duration::from_secs(5), || (app.db.count("outbox WHERE status = 'sent'") == 3).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(late.received().len(), 3, "each mail once");

    // A server answering 451 then 250: retried, delivered once.
    late.script(&[Reply::TempFail, Reply::TempFail]);
    app.signup("retry@example.com", &["orthopedic"]).await;
    wait_until(Duration::from_secs(10), || (late.to("retry@example.com").len() == 1).then_some(())).await;
    assert_eq!(late.attempts(), 6);
}

async fn form_signup_works_without_javascript(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    let html = page.text().await.unwrap();
    assert!(html.contains("<label for=\"email\">"));
    assert!(html.contains("value=\"orthopedic\""));
    assert!(html.contains("value=\"social-media\""));
    assert!(!html.contains("<script"));

    let res = app
        .post_form(
            "/subscriptions",
            &[
                ("email", "form@example.com"),
                ("name", "Dr. Who"),
                ("lists", "orthopedic"),
                ("lists", "social-media"),
                ("website", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Check your inbox"));
    let mail = &app.smtp.wait_for(1, Duration::from_secs(10)).await[0];
    // The confirmation never echoes the submitted name.
    assert!(!mail.data.contains("Dr. Who"));
    assert_eq!(app.counts().await["social-media"], (1, 0, 0));
}

async fn admin_needs_the_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/admin/lists").await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let res = app.client.get(app.url("/admin/lists")).bearer_auth("wrong-token-wrong-token").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app.client.get(app.url("/admin/lists")).bearer_auth(common::ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let lists: Value = res.json().await.unwrap();
    assert_eq!(
        lists,
        json!([
            { "slug": "social-media", "name": "Medical Social Media", "pending": 0, "confirmed": 0, "unsubscribed": 0 },
            { "slug": "orthopedic", "name": "Orthopedic", "pending": 0, "confirmed": 0, "unsubscribed": 0 },
        ])
    );
    assert_eq!(app.get("/health").await.status(), 200);
    // Every route under /admin is behind the token, even the wrong ones:
    // without it nobody learns which exist.
    for (method, path) in [("POST", "/admin/posts"), ("POST", "/admin/digests"), ("GET", "/admin/digests/1")] {
        let res = app.client.request(method.parse().unwrap(), app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{method} {path}");
    }
    assert_eq!(app.get("/admin/no-such-route").await.status(), 401);
    let res = app.client.get(app.url("/admin/no-such-route")).bearer_auth(common::ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 404);

    // Without a configured token nobody gets in.
    let closed = TestApp::spawn_with(backend, |s| s.admin_token = None).await;
    let res = closed.client.get(closed.url("/admin/lists")).bearer_auth(common::ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

async fn consent_evidence_is_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .client
        .post(app.url("/subscriptions"))
        .header("user-agent", "EvidenceBrowser/1.0")
        .json(&json!({ "email": "gdpr@example.com", "lists": ["orthopedic"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let mail = &app.smtp.wait_for(1, Duration::from_secs(10)).await[0];
    let token = mail.link(CONFIRM).strip_prefix(CONFIRM).unwrap().to_owned();
    app.post_form("/subscriptions/confirm", &[("token", &token)]).await;
    assert_eq!(
        app.db.count(
            "consent_events WHERE kind = 'signup' AND source = 'api' AND ip = '127.0.0.1' \
             AND user_agent = 'EvidenceBrowser/1.0' AND consent_version = '1'"
        ),
        1
    );
    assert_eq!(app.db.count("consent_events WHERE kind = 'confirm' AND source = 'link'"), 1);
    assert_eq!(app.db.count("subscriptions WHERE confirmed_at IS NOT NULL"), 1);
}

async fn a_failing_signup_leaves_the_others_of_its_group_intact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The database refuses one reader's subscription, after their subscriber
    // row was written: that signup must vanish whole, and only it.
    match backend {
        Backend::Sqlite => app.db.execute(
            "CREATE TRIGGER refuse_doomed BEFORE INSERT ON subscriptions \
             WHEN (SELECT email FROM subscribers WHERE id = NEW.subscriber_id) = 'doomed@example.com' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ),
        Backend::Postgres => {
            app.db.execute(
                "CREATE FUNCTION refuse_doomed() RETURNS trigger AS $$ BEGIN \
                 IF (SELECT email FROM subscribers WHERE id = NEW.subscriber_id) = 'doomed@example.com' \
                 THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            );
            app.db.execute(
                "CREATE TRIGGER refuse_doomed BEFORE INSERT ON subscriptions \
                 FOR EACH ROW EXECUTE FUNCTION refuse_doomed()",
            )
        }
    };
    let emails =
        (0..60).map(|i| if i == 30 { "doomed@example.com".to_owned() } else { format!("group{i}@example.com") });
    let statuses = app.signups_at_once(emails.collect(), &["orthopedic"]).await;
    assert_eq!(statuses[30], 500);
    assert!(statuses.iter().enumerate().all(|(i, &s)| i == 30 || s == 202), "{statuses:?}");
    assert_eq!(app.db.count("subscribers WHERE email = 'doomed@example.com'"), 0);
    assert_eq!(app.db.count("subscribers"), 59);
    assert_eq!(app.db.count("subscriptions"), 59);
    assert_eq!(app.db.count("outbox"), 59);
    app.smtp.wait_for(59, Duration::from_secs(20)).await;
}

async fn one_address_signed_up_many_times_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let emails =
        (0..60).map(|i| if i % 2 == 0 { "twin@example.com".to_owned() } else { format!("other{i}@example.com") });
    let statuses = app.signups_at_once(emails.collect(), &["orthopedic"]).await;
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    assert_eq!(app.db.count("subscribers"), 31);
    assert_eq!(app.db.count("subscriptions"), 31);
    let twin = "(SELECT id FROM subscribers WHERE email = 'twin@example.com')";
    assert_eq!(app.db.count(&format!("outbox WHERE subscriber_id = {twin}")), 3, "the daily cap holds");
    assert_eq!(app.db.count("consent_events WHERE kind = 'signup'"), 60);
    app.smtp.wait_for(33, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.smtp.to("twin@example.com").len(), 3);
    app.db.assert_tallies_match();
}
