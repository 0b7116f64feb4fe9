//! Bounces and complaints end to end, on both databases: VERP tags on what
//! goes out over SMTP, reports shaped like real MTAs' and providers' read
//! back from an mbox file (CLI), from a real IMAP server (Dovecot) and from
//! webhooks over HTTP, and the suppression list they feed.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use common::http::FileServer;
use common::peers::{Peer, TempDir, listening, private_ca};
use common::{ADMIN_TOKEN, Backend, TestApp, free_port, peer_installed, tidings_cli, wait_until};
use serde_json::{Value, json};

on_both_backends!(
    verp_bounces_from_a_mailbox_file_suppress_once,
    webhooks_apply_provider_events,
    suppression_list_by_api_cli_and_send_time_bounce,
    imap_poller_reads_the_bounce_mailbox,
);

const BOUNCES: &str = "bounces@news.example.org";
const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";

/// A fixture with its placeholders filled in.
fn fixture(name: &str, tag: &str, rcpt: &str, n: usize) -> String {
    let path = format!("{}/tests/fixtures/bounces/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .replace("{{TAG}}", tag)
        .replace("{{RCPT}}", rcpt)
        .replace("{{N}}", &n.to_string())
}

/// The VERP tag of each reader's copy, from the envelope sender the SMTP
/// server saw: `bounces+TAG@news.example.org`.
fn tags_by_reader(app: &TestApp) -> HashMap<String, String> {
    app.smtp
        .received()
        .into_iter()
        .map(|r| {
            let tag = r.from.strip_prefix("bounces+").and_then(|t| t.strip_suffix("@news.example.org"));
            let tag = tag.unwrap_or_else(|| panic!("not a VERP sender: {}", r.from)).to_owned();
            assert!(r.data.contains(&format!("X-Tidings-Tag: {tag}\r\n")), "tag header missing");
            (r.to[0].clone(), tag)
        })
        .collect()
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn suppressions(app: &TestApp) -> Vec<Value> {
    let res = app.admin_get("/admin/suppressions").await;
    assert_eq!(res.status(), 200);
    res.json::<Vec<Value>>().await.unwrap()
}

fn reason_of(list: &[Value], email: &str) -> Option<String> {
    list.iter().find(|s| s["email"] == email).map(|s| s["reason"].as_str().unwrap().to_owned())
}

async fn digest_of_new_post(app: &TestApp, n: usize) -> Value {
    app.add_post(&format!("https://blog.example.org/p{n}"), &format!("Post {n}"), &["orthopedic"]).await;
    app.send_digest("orthopedic").await
}

async fn verp_bounces_from_a_mailbox_file_suppress_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.bounce_address = Some(BOUNCES.parse().unwrap())).await;
    let readers = app.db.seed_confirmed("orthopedic", "verp", 4);
    let (a, b, c, d) = (&readers[0], &readers[1], &readers[2], &readers[3]);
    app.db.execute(&format!(
        "INSERT INTO subscriptions (subscriber_id, list_id, status, unsubscribe_id, created_at, updated_at, confirmed_at) \
         SELECT s.id, l.id, 'confirmed', 'other-list-{c}', '2026-11-01 10:00:00', '2026-11-01 10:00:00', '2026-11-01 10:00:00' \
         FROM subscribers s, lists l WHERE s.email = '{c}' AND l.slug = 'social-media'"
    ));
    let status = digest_of_new_post(&app, 1).await;
    assert_eq!(status["sent"], 4, "{status}");
    let tags = tags_by_reader(&app);
    assert_eq!(tags.len(), 4);
    let mut distinct: Vec<_> = tags.values().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "every copy has its own tag");

    // An mbox of four reports: a hard bounce for A, a complaint for C, a
    // delay warning for B, and a forged hard bounce for D.
    let (head, last) = tags[d].split_at(tags[d].len() - 1);
    let forged = format!("{head}{}", if last == "0" { "1" } else { "0" });
    let mbox_entry =
        |raw: String| format!("From MAILER-DAEMON Thu Dec  3 10:11:12 2026\n{}\n", raw.replace("\r\n", "\n"));
    let mbox = [
        mbox_entry(fixture("postfix_hard.eml", &tags[a], a, 1)),
        mbox_entry(fixture("yahoo_arf.eml", &tags[c], c, 1)),
        mbox_entry(fixture("postfix_delayed.eml", &tags[b], b, 1)),
        mbox_entry(fixture("exim_hard.eml", &forged, d, 1)),
    ]
    .concat();
    let dir = TempDir::new();
    let file = dir.path().join("bounces.mbox");
    std::fs::write(&file, mbox).unwrap();
    let import = || {
        let mut cmd = tidings_cli(&app.db, app.smtp.port);
        cmd.env("TIDINGS_BOUNCE_ADDRESS", BOUNCES).args(["bounces", "import"]).arg(&file);
        cmd
    };
    let first = stdout(&run(import()).await);
    assert!(
        first.contains("4 message(s): 1 hard, 0 soft, 1 complaint, 0 policy (nobody suppressed), 1 ignored, 1 unrecognised, 0 already applied; 2 address(es) suppressed"),
        "{first}"
    );
    let again = stdout(&run(import()).await);
    assert!(
        again.contains("0 hard, 0 soft, 0 complaint") && again.contains("2 already applied; 0 address(es)"),
        "{again}"
    );

    let list = suppressions(&app).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(reason_of(&list, a).as_deref(), Some("hard_bounce"));
    assert_eq!(reason_of(&list, c).as_deref(), Some("complaint"));
    assert!(list.iter().all(|s| s["source"] == "import"), "{list:?}");
    // The complaint left every list at once.
    assert_eq!(
        app.db.count(&format!(
            "subscriptions WHERE status <> 'unsubscribed' AND subscriber_id = (SELECT id FROM subscribers WHERE email = '{c}')"
        )),
        0
    );
    // The next digest leaves out the bounced reader and says so.
    let next = digest_of_new_post(&app, 2).await;
    assert_eq!((next["recipients"].as_i64(), next["suppressed"].as_i64()), (Some(2), Some(1)), "{next}");
    assert!(app.smtp.to(a).len() == 1 && app.smtp.to(b).len() == 2 && app.smtp.to(d).len() == 2);

    // Signing up again: a complainer gets no mail; a bounced address gets
    // a confirmation, and confirming lifts its suppression.
    assert_eq!(app.signup(c, &["orthopedic"]).await.status(), 202);
    // A signup commits its mail before it answers: none was queued.
    let queued_for = |email: &str| {
        app.db.count(&format!("outbox WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = '{email}')"))
    };
    assert_eq!(queued_for(c), 0, "a complainer was sent a confirmation");
    let mail = app.subscribe_confirmed(a, &["orthopedic"]).await;
    assert!(mail.from.starts_with("bounces+o"), "confirmations carry an outbox tag: {}", mail.from);
    assert_eq!(queued_for(a), 1);
    assert!(app.smtp.to(c).len() == 1, "a complainer was mailed again");
    let list = suppressions(&app).await;
    assert_eq!((reason_of(&list, a), reason_of(&list, c).as_deref()), (None, Some("complaint")));
}

async fn post_webhook(app: &TestApp, body: &Value, auth: Option<&str>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/webhooks/bounces")).body(body.to_string());
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    req.send().await.unwrap()
}

async fn applied(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["applied"].clone()
}

async fn webhooks_apply_provider_events(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.bounce_webhook_secret = Some(WEBHOOK_SECRET.into());
        s.sns_confirm_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let r = app.db.seed_confirmed("orthopedic", "hook", 7);
    let bearer = format!("Bearer {WEBHOOK_SECRET}");
    let generic = |email: &str, kind: &str, id: &str| json!({"email": email, "type": kind, "reason": "550", "id": id});

    // Without the secret, or with a wrong one: 401, nothing changes.
    assert_eq!(post_webhook(&app, &generic(&r[0], "hard", "g0"), None).await.status(), 401);
    assert_eq!(post_webhook(&app, &generic(&r[0], "hard", "g0"), Some("Bearer nope")).await.status(), 401);
    assert!(suppressions(&app).await.is_empty());

    let got = applied(post_webhook(&app, &generic(&r[0], "hard", "g0"), Some(&bearer)).await).await;
    assert_eq!((got["hard"].as_u64(), got["suppressed"].as_u64()), (Some(1), Some(1)), "{got}");
    let again = applied(post_webhook(&app, &generic(&r[0], "hard", "g0"), Some(&bearer)).await).await;
    assert_eq!(again["duplicate"], 1, "a provider's retry changes nothing: {again}");

    // Amazon SES through SNS, authenticated the way SNS can: Basic.
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("sns:{WEBHOOK_SECRET}")));
    let ses = json!({"notificationType": "Complaint", "complaint": {"feedbackId": "fb-1",
        "complaintFeedbackType": "abuse", "complainedRecipients": [{"emailAddress": r[1]}]},
        "mail": {"messageId": "m-1", "destination": [r[1]]}});
    let sns = json!({"Type": "Notification", "MessageId": "n-1", "TopicArn": "arn:aws:sns:eu-west-1:1:ses",
        "Message": ses.to_string()});
    assert_eq!(applied(post_webhook(&app, &sns, Some(&basic)).await).await["complaint"], 1);
    // Postmark, Mailgun, SendGrid.
    let postmark = json!({"RecordType": "Bounce", "ID": 4242, "Type": "HardBounce", "TypeCode": 1,
        "Email": r[2], "Description": "The server was unable to deliver your message"});
    assert_eq!(applied(post_webhook(&app, &postmark, Some(&bearer)).await).await["hard"], 1);
    let mailgun = json!({"signature": {"timestamp": "1", "token": "t", "signature": "s"},
        "event-data": {"id": "mg-1", "event": "failed", "severity": "permanent", "recipient": r[3],
        "reason": "bounce", "delivery-status": {"code": 550, "message": "5.1.1 no such user"}}});
    assert_eq!(applied(post_webhook(&app, &mailgun, Some(&bearer)).await).await["hard"], 1);
    let sendgrid = json!([
        {"email": r[4], "event": "bounce", "type": "bounce", "status": "5.1.1", "sg_event_id": "sg-1"},
        {"email": r[5], "event": "deferred", "sg_event_id": "sg-2"},
        {"email": r[5], "event": "bounce", "type": "blocked", "status": "5.7.1", "sg_event_id": "sg-3"}
    ]);
    let got = applied(post_webhook(&app, &sendgrid, Some(&bearer)).await).await;
    assert_eq!((got["hard"].as_u64(), got["ignored"].as_u64(), got["policy"].as_u64()), (Some(1), Some(1), Some(1)));

    // Soft bounces suppress at the third within the window.
    for (i, want) in [(1, 0), (2, 0), (3, 1)] {
        let got = applied(post_webhook(&app, &generic(&r[6], "soft", &format!("s{i}")), Some(&bearer)).await).await;
        assert_eq!(got["suppressed"].as_u64(), Some(want), "soft bounce {i}: {got}");
    }
    let list = suppressions(&app).await;
    let reasons: Vec<Option<String>> = r.iter().map(|e| reason_of(&list, e)).collect();
    let want = ["hard_bounce", "complaint", "hard_bounce", "hard_bounce", "hard_bounce"];
    assert_eq!(&reasons[..5], want.map(|w| Some(w.to_owned())));
    assert_eq!(reasons[5], None, "a deferral and a policy block suppress nobody");
    assert_eq!(reasons[6].as_deref(), Some("soft_bounces"));
    assert!(list.iter().any(|s| s["source"] == "webhook:sendgrid"));

    // SNS subscription confirmation: the SubscribeURL is visited, only at an allowed host.
    let sns_host = FileServer::start(b"<ConfirmSubscriptionResponse/>", "text/xml").await;
    let confirm = json!({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:x",
        "SubscribeURL": sns_host.url("/?Action=ConfirmSubscription&Token=t")});
    assert_eq!(post_webhook(&app, &confirm, Some(&bearer)).await.status(), 200);
    assert_eq!(sns_host.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let elsewhere = json!({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:x",
        "SubscribeURL": "http://192.0.2.1/?Action=ConfirmSubscription"});
    let res = post_webhook(&app, &elsewhere, Some(&bearer)).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("SubscribeURL"));

    // Bodies we cannot read are refused saying what is wrong.
    let res = app.client.post(app.url("/webhooks/bounces")).header("Authorization", &bearer).body("{not json").send();
    let res = res.await.unwrap();
    assert_eq!(res.status(), 400);
    let res = post_webhook(&app, &json!({"email": r[6], "type": "maybe"}), Some(&bearer)).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("type"));

    // Without a secret configured the webhook is off, and says how to turn it on.
    let off = TestApp::spawn(backend).await;
    let res = post_webhook(&off, &generic("x@example.com", "hard", "1"), Some(&bearer)).await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("TIDINGS_BOUNCE_WEBHOOK_SECRET"));
}

async fn suppression_list_by_api_cli_and_send_time_bounce(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let readers = app.db.seed_confirmed("orthopedic", "list", 3);

    // The author's hand, by API.
    let res = app.admin_post("/admin/suppressions", &json!({"email": readers[0], "note": "asked by phone"})).await;
    assert_eq!(res.status(), 201);
    let res = app.admin_post("/admin/suppressions", &json!({"email": "not an address"})).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "email");
    let res = app.client.get(app.url("/admin/suppressions")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let list = suppressions(&app).await;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0]["reason"].as_str(), list[0]["source"].as_str()), (Some("manual"), Some("api")));
    assert_eq!(list[0]["detail"], "asked by phone");

    // A refusal at send time that names the mailbox is a hard bounce.
    app.smtp.reject_recipient(&readers[1]);
    let status = digest_of_new_post(&app, 1).await;
    assert_eq!((status["recipients"].as_i64(), status["suppressed"].as_i64()), (Some(2), Some(1)), "{status}");
    assert_eq!(status["bounced"], 1, "{status}");
    let list = suppressions(&app).await;
    let bounced = list.iter().find(|s| s["email"] == readers[1].as_str()).expect("bounced reader listed");
    assert_eq!((bounced["reason"].as_str(), bounced["source"].as_str()), (Some("hard_bounce"), Some("smtp")));
    assert!(bounced["detail"].as_str().unwrap().contains("550"), "{bounced}");

    // Lifting: by API, then the CLI's add, list and remove.
    let delete = |email: &str| {
        app.client.delete(app.url(&format!("/admin/suppressions/{email}"))).bearer_auth(ADMIN_TOKEN).send()
    };
    assert_eq!(delete(&readers[0]).await.unwrap().status(), 204);
    assert_eq!(delete(&readers[0]).await.unwrap().status(), 404);
    let cli = |args: &[&str]| {
        let mut cmd = tidings_cli(&app.db, app.smtp.port);
        cmd.arg("suppressions").args(args);
        cmd
    };
    assert!(stdout(&run(cli(&["add", "zed@example.com", "--note", "left by letter"])).await).contains("manual"));
    let listed = stdout(&run(cli(&["list"])).await);
    assert!(
        listed.contains("zed@example.com\tmanual\tcli")
            && listed.contains(&format!("{}\thard_bounce\tsmtp", readers[1]))
    );
    assert!(stdout(&run(cli(&["remove", &readers[1]])).await).contains("may be mailed again"));
    let out = run(cli(&["remove", &readers[1]])).await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("is not suppressed"));
    let out = run(cli(&["add", "nope"])).await;
    assert!(!out.status.success());

    // Lifted: both are mailed again (the relay still refuses the second).
    let status = digest_of_new_post(&app, 2).await;
    assert_eq!((status["recipients"].as_i64(), status["suppressed"].as_i64()), (Some(3), Some(0)), "{status}");
    assert_eq!(app.smtp.to(&readers[0]).len(), 1, "the lifted manual suppression");
}

/// Dovecot on a loopback port: STARTTLS required (a private CA), one user
/// whose Maildir the test fills.
fn start_dovecot(dir: &Path, port: u16, cert: &Path, key: &Path) -> Peer {
    let mail = dir.join("mail");
    for sub in ["bounces/cur", "bounces/new", "bounces/tmp"] {
        std::fs::create_dir_all(mail.join(sub)).unwrap();
    }
    let chown = Command::new("chown").args(["-R", "nobody:nogroup"]).arg(&mail).status().unwrap();
    assert!(chown.success());
    for sub in ["run", "state"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let d = dir.display();
    let conf = format!(
        "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
         instance_name = tidings-test-{port}\nlog_path = {d}/dovecot.log\nssl = required\n\
         ssl_cert = <{}\nssl_key = <{}\ndisable_plaintext_auth = yes\nauth_mechanisms = plain\n\
         mail_location = maildir:{d}/mail/%u\nfirst_valid_uid = 1\n\
         passdb {{\n  driver = static\n  args = password=bounce-secret\n}}\n\
         userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n\
         service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
         inet_listener imaps {{\n    port = 0\n  }}\n}}\nservice anvil {{\n  chroot =\n}}\n",
        cert.display(),
        key.display()
    );
    std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
    let child = Command::new("dovecot")
        .args(["-F", "-c"])
        .arg(dir.join("dovecot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Peer(child)
}

/// Delivers a message into the Maildir's `new/`, as an MTA would.
fn deliver(dir: &Path, name: &str, raw: &str) {
    let new = dir.join("mail/bounces/new").join(name);
    std::fs::write(&new, raw.replace("\r\n", "\n").replace('\n', "\r\n")).unwrap();
}

async fn imap_poller_reads_the_bounce_mailbox(backend: Backend) {
    if !peer_installed("dovecot-imapd", Command::new("dovecot").arg("--version"))
        || !peer_installed("openssl", Command::new("openssl").arg("version"))
    {
        return;
    }
    let dir = TempDir::new();
    let (ca, cert, key) = private_ca(dir.path());
    let port = free_port();
    let _dovecot = start_dovecot(dir.path(), port, &cert, &key);
    listening(port).await;

    let app = TestApp::spawn_with(backend, |s| s.bounce_address = Some(BOUNCES.parse().unwrap())).await;
    let readers = app.db.seed_confirmed("orthopedic", "imap", 3);
    assert_eq!(digest_of_new_post(&app, 1).await["sent"], 3);
    let tags = tags_by_reader(&app);
    deliver(dir.path(), "1.bounce", &fixture("gmail_hard.eml", &tags[&readers[0]], &readers[0], 1));
    deliver(dir.path(), "2.bounce", &fixture("microsoft_arf.eml", &tags[&readers[1]], &readers[1], 1));
    deliver(dir.path(), "3.bounce", &fixture("malformed_truncated.eml", &tags[&readers[2]], &readers[2], 1));

    // `tidings worker` reads the mailbox over STARTTLS, trusting the private CA.
    let mut worker = tidings_cli(&app.db, app.smtp.port);
    worker
        .env("TIDINGS_BOUNCE_ADDRESS", BOUNCES)
        .env("TIDINGS_BOUNCE_IMAP_URL", format!("imap://bounces:bounce-secret@127.0.0.1:{port}/INBOX"))
        .env("TIDINGS_BOUNCE_IMAP_CA_FILE", &ca)
        .env("TIDINGS_BOUNCE_POLL_SECS", "1")
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let worker = Peer(worker.spawn().unwrap());
    let list = wait_until(Duration::from_secs(20), || {
        let n = app.db.count("suppressions");
        (n >= 2).then_some(n)
    })
    .await;
    assert_eq!(list, 2);
    let list = suppressions(&app).await;
    assert_eq!(reason_of(&list, &readers[0]).as_deref(), Some("hard_bounce"));
    assert_eq!(reason_of(&list, &readers[1]).as_deref(), Some("complaint"));
    assert!(list.iter().all(|s| s["source"] == "imap"));

    // Every message was flagged once processed: a later poll reads none of
    // them again, and a new one is read.
    deliver(dir.path(), "4.bounce", &fixture("yahoo_hard.eml", &tags[&readers[2]], &readers[2], 1));
    wait_until(Duration::from_secs(20), || (app.db.count("suppressions") == 3).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.db.count("bounce_events"), 3, "a message was applied twice");
    let flagged = std::fs::read_dir(dir.path().join("mail/bounces/cur"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(",S"))
        .count();
    assert_eq!(flagged, 4, "every message is marked seen");
    drop(worker);
}
