//! Readers in and out, on both databases: CSV imports shaped like each
//! tool's real export through the CLI and the API, the export and its round
//! trip into a fresh Tidings, and a reader's own export and erasure.

mod common;

use std::process::{Command, Output};

use common::{ADMIN_TOKEN, Backend, TestApp, TestDb, tidings_cli};
use serde_json::{Value, json};

on_both_backends!(
    imports_from_every_tool_keep_status_and_consent,
    imports_never_resurrect_or_downgrade,
    bad_files_and_bad_rows,
    export_round_trips_into_a_fresh_tidings,
    import_export_and_erase_over_http,
    a_reader_downloads_and_erases_their_data,
);

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/imports/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

/// `tidings subscribers import --list orthopedic FILE ARGS…`: stdout, or a
/// panic with stderr.
async fn import(app: &TestApp, file: &str, args: &[&str]) -> String {
    let out = run(import_cmd(&app.db, app.smtp.port, file, args)).await;
    assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn import_cmd(db: &TestDb, smtp_port: u16, file: &str, args: &[&str]) -> Command {
    let mut cmd = tidings_cli(db, smtp_port);
    cmd.args(["subscribers", "import", "--list", "orthopedic"]).arg(file).args(args);
    cmd
}

fn status_of(db: &TestDb, email: &str) -> String {
    let states = ["confirmed", "pending", "unsubscribed"];
    let found: Vec<&str> = states
        .iter()
        .copied()
        .filter(|s| {
            db.count(&format!(
                "subscriptions s JOIN subscribers r ON r.id = s.subscriber_id WHERE r.email = '{email}' AND s.status = '{s}'"
            )) > 0
        })
        .collect();
    found.join(",")
}

fn suppressed(db: &TestDb, email: &str) -> bool {
    db.count(&format!("suppressions WHERE email = '{email}'")) > 0
}

async fn imports_from_every_tool_keep_status_and_consent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            "mailchimp_subscribed.csv",
            "2 rows (mailchimp format, UTF-8): 2 created, 0 updated, 0 unchanged, 0 skipped, 0 invalid",
        ),
        ("mailchimp_unsubscribed.csv", "1 rows (mailchimp format, UTF-8): 1 created"),
        ("mailchimp_cleaned.csv", "1 rows (mailchimp format, UTF-8): 1 created"),
        ("listmonk.csv", "3 rows (listmonk format, UTF-8): 3 created"),
        ("listmonk_import.csv", "1 rows (listmonk format, UTF-8): 1 created"),
        ("substack.csv", "2 rows (substack format, UTF-8): 2 created"),
        ("ghost.csv", "2 rows (ghost format, UTF-8): 2 created"),
        ("excel_1252.csv", "1 rows (listmonk format, Windows-1252): 1 created"),
        ("utf8_bom.csv", "1 rows (listmonk format, UTF-8): 1 created"),
    ];
    for (file, want) in cases {
        let out = import(&app, &fixture(file), &[]).await;
        assert!(out.contains(want), "{file}: {out}");
    }
    let want = [
        ("ada@example.com", "confirmed", false),
        ("bob@example.com", "confirmed", false),
        ("carol@example.com", "unsubscribed", false),
        ("dave@example.com", "confirmed", true),
        ("erin@example.com", "confirmed", false),
        ("frank@example.com", "confirmed", true),
        ("grace@example.com", "unsubscribed", false),
        ("heidi@example.com", "confirmed", false),
        ("ivan@example.com", "confirmed", false),
        ("judy@example.com", "confirmed", true),
        ("mallory@example.com", "confirmed", false),
        ("niaj@example.com", "unsubscribed", false),
        ("olivia@example.com", "confirmed", false),
        ("peggy@example.com", "confirmed", false),
    ];
    for (email, status, is_suppressed) in want {
        assert_eq!(status_of(&app.db, email), status, "{email}");
        assert_eq!(suppressed(&app.db, email), is_suppressed, "{email}");
    }
    // Names, with Mailchimp's first and last joined and Excel's encoding read.
    assert_eq!(app.db.count("subscribers WHERE email = 'ada@example.com' AND name = 'Ada Lovelace'"), 1);
    assert_eq!(app.db.count("subscribers WHERE email = 'olivia@example.com' AND name = 'José Müller €'"), 1);
    assert_eq!(app.db.count("subscribers WHERE email = 'peggy@example.com' AND name = 'Zoë'"), 1);
    // Consent kept with the original opt-in time and IP, from `import`.
    let ada = "(SELECT s.id FROM subscriptions s JOIN subscribers r ON r.id = s.subscriber_id WHERE r.email = 'ada@example.com')";
    assert_eq!(
        app.db.count(&format!(
            "consent_events WHERE subscription_id = {ada} AND kind = 'signup' AND source = 'import' \
             AND ip = '198.51.100.7' AND at = '2024-01-05 10:11:12'"
        )),
        1
    );
    assert_eq!(app.db.count(&format!("consent_events WHERE subscription_id = {ada} AND kind = 'confirm'")), 1);
    // Nobody was mailed by an import: no mail is even queued.
    assert_eq!(app.db.count("outbox"), 0);

    // Again: nothing changes; a dry run writes nothing.
    let before = app.db.count("consent_events");
    for (file, _) in cases {
        let out = import(&app, &fixture(file), &[]).await;
        assert!(out.contains(" 0 created, 0 updated,") && out.contains(" 0 invalid"), "{file} again: {out}");
    }
    assert_eq!(app.db.count("consent_events"), before);
    let fresh = TestApp::spawn(backend).await;
    let out = import(&fresh, &fixture("mailchimp_subscribed.csv"), &["--dry-run"]).await;
    assert!(out.contains("(dry run: nothing written): 2 created"), "{out}");
    assert_eq!(fresh.db.count("subscribers") + fresh.db.count("subscriptions"), 0);

    // Pending readers get a confirmation only when asked.
    let pending = std::env::temp_dir().join(format!("tidings-pending-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(
        &pending,
        "email,name,list,status,subscribed_at,confirmed_at,unsubscribed_at,consent_source\n\
        uma@example.com,Uma,orthopedic,pending,2024-01-01T00:00:00Z,,,form\n\
        vic@example.com,,social-media,pending,2024-01-01T00:00:00Z,,,form\n",
    )
    .unwrap();
    let out = import(&app, pending.to_str().unwrap(), &["--send-confirmations"]).await;
    assert!(out.contains("2 rows (tidings format, UTF-8): 1 created, 0 updated, 0 unchanged, 1 skipped"), "{out}");
    assert_eq!(status_of(&app.db, "uma@example.com"), "pending");
    assert_eq!(
        app.db.count("outbox WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = 'uma@example.com')"),
        1
    );
    let _ = std::fs::remove_file(pending);
    app.db.assert_tallies_match();
}

async fn imports_never_resurrect_or_downgrade(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let readers = app.db.seed_confirmed("orthopedic", "known", 3);
    app.db.execute(&format!("UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = '{}')", readers[1]));
    let res = app.admin_post("/admin/suppressions", &json!({"email": readers[2]})).await;
    assert_eq!(res.status(), 201);
    let res = app.admin_post("/admin/suppressions", &json!({"email": "stranger@example.com"})).await;
    assert_eq!(res.status(), 201);
    let file = std::env::temp_dir().join(format!("tidings-known-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        format!(
            "email,name,list,status,subscribed_at,confirmed_at,unsubscribed_at,consent_source\n\
             {0},,orthopedic,pending,,,,\n{1},,orthopedic,confirmed,,,,\n{2},,orthopedic,confirmed,,,,\n\
             stranger@example.com,,orthopedic,confirmed,,,,\n{0},,orthopedic,unsubscribed,,,,\n",
            readers[0], readers[1], readers[2]
        ),
    )
    .unwrap();
    let out = import(&app, file.to_str().unwrap(), &[]).await;
    // confirmed → pending: unchanged; unsubscribed → confirmed: skipped;
    // suppressed stays; a suppressed stranger is not added; a repeat skipped.
    assert!(out.contains("5 rows (tidings format, UTF-8): 0 created, 0 updated, 2 unchanged, 3 skipped"), "{out}");
    assert_eq!(status_of(&app.db, &readers[0]), "confirmed");
    assert_eq!(status_of(&app.db, &readers[1]), "unsubscribed");
    assert!(suppressed(&app.db, &readers[2]));
    assert_eq!(status_of(&app.db, "stranger@example.com"), "");
    // Leaving is always allowed: an unsubscribed row unsubscribes.
    std::fs::write(&file, format!("email,name,list,status\n{},,orthopedic,unsubscribed\n", readers[0])).unwrap();
    assert!(import(&app, file.to_str().unwrap(), &[]).await.contains("1 updated"));
    assert_eq!(status_of(&app.db, &readers[0]), "unsubscribed");
    let _ = std::fs::remove_file(file);
    app.db.assert_tallies_match();
}

async fn bad_files_and_bad_rows(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let out = import(&app, &fixture("with_bad_rows.csv"), &[]).await;
    assert!(
        out.contains("6 rows (listmonk format, UTF-8): 2 created, 0 updated, 0 unchanged, 0 skipped, 4 invalid"),
        "{out}"
    );
    for line in ["line 3: email:", "line 4: email: empty", "line 5: email:", "line 6: name:"] {
        assert!(out.contains(line), "{line} missing: {out}");
    }
    assert_eq!(status_of(&app.db, "quentin@example.com"), "confirmed");
    assert_eq!(status_of(&app.db, "trent@example.com"), "confirmed");

    let dir = std::env::temp_dir().join(format!("tidings-bad-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("binary.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0", "not a CSV file"),
        ("no_email.csv", b"name,phone\nAda,123\n", "no email column"),
        ("unknown.csv", b"email,phone\na@example.com,123\n", "--format"),
        ("empty.csv", b"", "no email column"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = run(import_cmd(&app.db, app.smtp.port, path.to_str().unwrap(), &[])).await;
        assert!(!out.status.success(), "{name} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{name}: {err}");
    }
    let out = run(import_cmd(&app.db, app.smtp.port, dir.join("no_such.csv").to_str().unwrap(), &[])).await;
    assert!(!out.status.success());
    let mut unknown_list = tidings_cli(&app.db, app.smtp.port);
    unknown_list.args(["subscribers", "import", "--list", "nope", &fixture("ghost.csv")]);
    let out = run(unknown_list).await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no list called"));
    assert_eq!(app.db.count("subscribers"), 2, "a refused file wrote nothing");
    let _ = std::fs::remove_dir_all(dir);
}

async fn export_cli(db: &TestDb, port: u16, args: &[&str]) -> String {
    let mut cmd = tidings_cli(db, port);
    cmd.args(["subscribers", "export"]).args(args);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The export without its consent source column (an imported reader's
/// consent comes from `import`).
fn without_source(csv: &str) -> Vec<String> {
    let mut lines: Vec<String> =
        csv.lines().map(|l| l.rsplit_once(',').map_or(l, |(rest, _)| rest).to_owned()).collect();
    lines[1..].sort();
    lines
}

async fn export_round_trips_into_a_fresh_tidings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for file in ["mailchimp_subscribed.csv", "mailchimp_unsubscribed.csv", "mailchimp_cleaned.csv", "ghost.csv"] {
        import(&app, &fixture(file), &[]).await;
    }
    app.subscribe_confirmed("wendy@example.com", &["orthopedic", "social-media"]).await;
    assert_eq!(app.signup("xavier@example.com", &["social-media"]).await.status(), 202);
    let exported = export_cli(&app.db, app.smtp.port, &[]).await;
    assert!(exported.starts_with("email,name,list,status,subscribed_at,confirmed_at,unsubscribed_at,consent_source\n"));
    assert!(
        exported.contains(
            "\nada@example.com,Ada Lovelace,orthopedic,confirmed,2024-01-05T10:11:12Z,2024-01-05T10:15:00Z,,import\n"
        ),
        "{exported}"
    );
    assert!(exported.contains("dave@example.com,Dave,orthopedic,suppressed,"), "{exported}");
    assert!(exported.contains("wendy@example.com,,social-media,confirmed,"), "{exported}");
    assert!(
        exported.contains("xavier@example.com,,social-media,pending,") && exported.contains(",api\n"),
        "{exported}"
    );
    let confirmed = export_cli(&app.db, app.smtp.port, &["--list", "orthopedic", "--status", "confirmed"]).await;
    assert_eq!(confirmed.lines().count(), 1 + 4, "ada, bob, mallory, wendy: {confirmed}");

    let file = std::env::temp_dir().join(format!("tidings-export-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, &exported).unwrap();
    let fresh = TestApp::spawn(backend).await;
    for list in ["orthopedic", "social-media"] {
        let mut cmd = tidings_cli(&fresh.db, fresh.smtp.port);
        cmd.args(["subscribers", "import", "--list", list]).arg(&file);
        assert!(run(cmd).await.status.success());
    }
    let again = export_cli(&fresh.db, fresh.smtp.port, &[]).await;
    assert_eq!(without_source(&again), without_source(&exported));
    let _ = std::fs::remove_file(file);
}

async fn import_export_and_erase_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let csv = std::fs::read(fixture("ghost.csv")).unwrap();
    let post = |query: &str, body: reqwest::Body, content_type: &str| {
        app.client
            .post(app.url(&format!("/admin/subscribers/import{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let res = post("?list=orthopedic&dry_run=true", csv.clone().into(), "text/csv").await.unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!((report["created"].as_u64(), report["dry_run"].as_bool()), (Some(2), Some(true)), "{report}");
    assert_eq!(app.db.count("subscribers"), 0);
    let mut multipart = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ghost.csv\"\r\nContent-Type: text/csv\r\n\r\n".to_vec();
    multipart.extend_from_slice(&csv);
    multipart.extend_from_slice(b"\r\n--XyZ--\r\n");
    let res = post("?list=orthopedic", multipart.into(), "multipart/form-data; boundary=XyZ").await.unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!((report["created"].as_u64(), report["format"].as_str()), (Some(2), Some("ghost")), "{report}");
    let res = post("?list=nope", csv.clone().into(), "text/csv").await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "list");
    let res = post("?list=orthopedic", b"name\nx\n".to_vec().into(), "text/csv").await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "file");

    let res = app.admin_get("/admin/subscribers/export.csv?list=orthopedic").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = res.text().await.unwrap();
    assert_eq!(body.lines().count(), 3, "{body}");
    assert_eq!(app.admin_get("/admin/subscribers/export.csv?status=maybe").await.status(), 400);
    assert_eq!(app.client.get(app.url("/admin/subscribers/export.csv")).send().await.unwrap().status(), 401);

    let delete = |email: &str| {
        app.client.delete(app.url(&format!("/admin/subscribers/{email}"))).bearer_auth(ADMIN_TOKEN).send()
    };
    assert_eq!(delete("mallory@example.com").await.unwrap().status(), 204);
    assert_eq!(delete("mallory@example.com").await.unwrap().status(), 404);
    assert_eq!(app.db.count("subscribers WHERE email = 'mallory@example.com'"), 0);
    let mut erase = tidings_cli(&app.db, app.smtp.port);
    erase.args(["subscribers", "erase", "niaj@example.com"]);
    assert!(run(erase).await.status.success());
    assert_eq!(app.db.count("subscribers") + app.db.count("subscriptions") + app.db.count("consent_events"), 0);
    app.db.assert_tallies_match();
}

async fn a_reader_downloads_and_erases_their_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.subscribe_confirmed("yara@example.com", &["orthopedic", "social-media"]).await;
    app.db.seed_confirmed("orthopedic", "other", 2);
    app.add_post("https://blog.example.org/p1", "Post 1", &["orthopedic"]).await;
    let status = app.send_digest("orthopedic").await;
    assert_eq!(status["sent"], 3);
    let digest = app.smtp.to("yara@example.com").pop().unwrap();
    let unsubscribe = digest.header("List-Unsubscribe").unwrap();
    let token = unsubscribe.trim_matches(['<', '>']).rsplit('/').next().unwrap().to_owned();

    let res = app.get(&format!("/preferences/{token}/export")).await;
    assert_eq!(res.status(), 200);
    let data: Value = res.json().await.unwrap();
    assert_eq!(data["email"], "yara@example.com");
    assert_eq!(data["subscriptions"].as_array().unwrap().len(), 2);
    let history = &data["subscriptions"][0]["history"];
    assert_eq!(history[0]["kind"], "signup");
    assert_eq!(history[1]["kind"], "confirm");
    assert_eq!(data["deliveries"][0]["status"], "sent");
    assert_eq!(app.get("/preferences/forged.token/export").await.status(), 404);

    // The reader also complained once: the suppression must outlive them.
    let res = app.admin_post("/admin/suppressions", &json!({"email": "yara@example.com"})).await;
    assert_eq!(res.status(), 201);
    let page = app.client.post(app.url(&format!("/preferences/{token}/erase"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Erase my data"), "asks first");
    assert_eq!(app.db.count("subscribers WHERE email = 'yara@example.com'"), 1);
    let res = app.post_form(&format!("/preferences/{token}/erase"), &[("confirm", "yes")]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Your data is erased"));
    assert_eq!(app.db.count("subscribers WHERE email = 'yara@example.com'"), 0);
    assert_eq!(app.db.count("suppressions WHERE email IS NULL"), 1, "only the hash is kept");
    assert_eq!(app.db.count("suppressions WHERE email = 'yara@example.com'"), 0);
    let status: Value = app.admin_get(&format!("/admin/digests/{}", status["id"])).await.json().await.unwrap();
    assert_eq!((status["sent"].as_i64(), status["recipients"].as_i64()), (Some(3), Some(3)), "counts stay: {status}");
    assert_eq!(app.get(&format!("/preferences/{token}/export")).await.status(), 404);
    // An erased complainer who signs up again is never mailed.
    assert_eq!(app.signup("yara@example.com", &["orthopedic"]).await.status(), 202);
    // The signup committed before answering, with no mail queued.
    assert_eq!(app.db.count("subscribers WHERE email = 'yara@example.com'"), 1, "the signup was stored");
    assert_eq!(app.db.count("outbox"), 0, "an erased complainer was sent a confirmation");
    assert_eq!(app.smtp.to("yara@example.com").len(), 2, "confirmation and digest only");
    app.db.assert_tallies_match();
}
