//! DKIM: keys made by `tidings dkim keygen`, every message signed with RSA
//! and Ed25519 together, each signature checked by an independent verifier
//! (Debian's python3-dkim) against the record the CLI printed, on a
//! confirmation and on digest copies, received over SMTP. Skipped when
//! python3-dkim is missing, unless `TIDINGS_TEST_REQUIRE_PEERS` is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Backend, TestApp, peer_installed, wait_until};
use serde_json::json;
use tidings::config::DkimSettings;

on_both_backends!(confirmations_and_digest_copies_carry_signatures_that_verify,);

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidings-dkim-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tidings(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .env("TIDINGS_LOG", "error")
        .env("TIDINGS_MAIL_FROM", "Tidings <newsletter@example.org>")
        .output()
        .unwrap()
}

/// `tidings dkim keygen`: the key file, and the record's name and value as
/// printed (the value's quoted strings joined, as DNS does).
fn keygen(dir: &Path, selector: &str, algorithm: &str) -> (PathBuf, String, String) {
    let key = dir.join(format!("{selector}.pem"));
    let out =
        tidings(&["dkim", "keygen", "--selector", selector, "--algorithm", algorithm, "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    let record = printed.lines().find(|l| l.contains("._domainkey.")).unwrap_or_else(|| panic!("{printed}"));
    let name = record.split_whitespace().next().unwrap().to_owned();
    let value: String = record.split('"').skip(1).step_by(2).collect();
    assert!(value.starts_with(&format!("v=DKIM1; k={algorithm}; p=")), "{record}");
    // A second keygen never overwrites a key.
    let again = tidings(&["dkim", "keygen", "--selector", selector, "--out", key.to_str().unwrap()]);
    assert!(!again.status.success());
    (key, name, value)
}

fn verify(dir: &Path, message: &str, records: &serde_json::Value) -> String {
    let (file, keys) = (dir.join(format!("{}.eml", uuid::Uuid::new_v4().simple())), dir.join("records.json"));
    std::fs::write(&file, message).unwrap();
    std::fs::write(&keys, records.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/dkim_verify.py");
    let out = Command::new("/usr/bin/python3").arg(script).arg(&file).arg(&keys).output().unwrap();
    assert!(out.status.success(), "{}\n{message}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn confirmations_and_digest_copies_carry_signatures_that_verify(backend: Backend) {
    if !peer_installed("python3-dkim", Command::new("/usr/bin/python3").args(["-c", "import dkim, nacl"])) {
        return;
    }
    let dir = temp_dir();
    let (rsa, rsa_name, rsa_value) = keygen(&dir, "tidings-rsa", "rsa");
    let (ed, ed_name, ed_value) = keygen(&dir, "tidings-ed", "ed25519");
    assert_eq!(rsa_name, "tidings-rsa._domainkey.example.org.");
    let records = json!({ rsa_name: rsa_value, ed_name: ed_value });
    let keys = vec![
        DkimSettings { selector: "tidings-rsa".into(), key_file: rsa.clone(), domain: None },
        DkimSettings { selector: "tidings-ed".into(), key_file: ed.clone(), domain: None },
    ];
    let configured = keys.clone();
    let app = TestApp::spawn_with(backend, |s| s.dkim = configured).await;

    // A confirmation to a reader with a non-ASCII name.
    let body = json!({"email": "zoe@example.com", "name": "Zoë Łukasz", "lists": ["orthopedic"]});
    assert_eq!(app.post_json("/subscriptions", &body).await.status(), 202);
    let confirmation = app.smtp.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let header = confirmation.header("DKIM-Signature").unwrap();
    assert!(header.contains("d=example.org") && header.contains("s=tidings-rsa"), "{header}");
    let signed = header.split("h=").nth(1).unwrap().split(';').next().unwrap().to_ascii_lowercase();
    for h in ["list-unsubscribe", "list-unsubscribe-post", "from", "to", "subject", "message-id"] {
        assert!(signed.split(':').any(|x| x.trim() == h), "{h} not signed: {signed}");
    }
    assert_eq!(verify(&dir, &confirmation.data, &records), "verified 2");

    // Digest copies, stamped per reader: each has its own signatures.
    let link = confirmation.link("http://tidings.test/subscriptions/confirm?token=");
    let token = link.split("token=").nth(1).unwrap();
    assert_eq!(app.post_form("/subscriptions/confirm", &[("token", token)]).await.status(), 200);
    app.db.seed_confirmed("orthopedic", "plain", 2);
    app.add_post("https://blog.example.org/signed", "Signed — and sealed", &["orthopedic"]).await;
    assert_eq!(app.send_digest("orthopedic").await["sent"], 3);
    let copies = wait_until(Duration::from_secs(10), || Some(app.smtp.received()).filter(|r| r.len() == 4)).await;
    for copy in &copies[1..] {
        assert!(copy.data.contains("List-Unsubscribe-Post"), "{}", copy.data);
        assert_eq!(verify(&dir, &copy.data, &records), "verified 2", "{:?}", copy.to);
    }
    let zoe = copies.iter().skip(1).find(|c| c.to == ["zoe@example.com"]).unwrap();
    assert!(zoe.text().contains("Zoë"), "the named copy: {}", zoe.text());

    // A copy altered in transit no longer verifies.
    let tampered = zoe.data.replacen("Signed", "Singed", 1);
    let file = dir.join("tampered.eml");
    std::fs::write(&file, tampered).unwrap();
    std::fs::write(dir.join("records.json"), records.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/dkim_verify.py");
    let out = Command::new("/usr/bin/python3").arg(script).arg(&file).arg(dir.join("records.json")).output().unwrap();
    assert!(!out.status.success(), "a tampered copy verified");

    // A relay without 8BITMIME gets each copy re-encoded, and signed as sent.
    let configured = keys.clone();
    let seven = TestApp::spawn_with(backend, |s| s.dkim = configured).await;
    seven.smtp.refuse_8bitmime();
    seven.db.seed_confirmed("orthopedic", "seven", 2);
    seven.db.execute("UPDATE subscribers SET name = 'Zoë Brontë' WHERE email = 'seven0@example.com'");
    seven.add_post("https://blog.example.org/cafe", "Café au lait", &["orthopedic"]).await;
    assert_eq!(seven.send_digest("orthopedic").await["sent"], 2);
    for copy in seven.smtp.received() {
        assert!(copy.data.is_ascii(), "re-encoded for the relay");
        assert_eq!(verify(&dir, &copy.data, &records), "verified 2", "{:?}", copy.to);
    }

    // `dkim show` prints the records of the configured keys.
    let shown = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["dkim", "show"])
        .env("TIDINGS_LOG", "error")
        .env("TIDINGS_MAIL_FROM", "Tidings <newsletter@example.org>")
        .env("TIDINGS_DKIM_SELECTOR", "tidings-ed")
        .env("TIDINGS_DKIM_KEY_FILE", &ed)
        .output()
        .unwrap();
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.contains(&ed_value), "{shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key that does not load, or a domain From is not in, stops start-up
/// with a line that says what to fix.
#[tokio::test]
async fn a_bad_or_misaligned_key_stops_start_up() {
    let dir = temp_dir();
    let (key, _, _) = keygen(&dir, "s1", "ed25519");
    let start = |selector: &str, key_file: &Path, domain: Option<&str>| {
        Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["dkim", "show"])
            .env("TIDINGS_LOG", "error")
            .env("TIDINGS_MAIL_FROM", "Tidings <newsletter@news.example.org>")
            .env("TIDINGS_DKIM_SELECTOR", selector)
            .env("TIDINGS_DKIM_KEY_FILE", key_file)
            .envs(domain.map(|d| ("TIDINGS_DKIM_DOMAIN", d)))
            .output()
            .unwrap()
    };
    let misaligned = start("s1", &key, Some("other.example"));
    assert!(!misaligned.status.success());
    let said = String::from_utf8_lossy(&misaligned.stderr);
    assert!(said.contains("not the From address's domain news.example.org"), "{said}");
    // A parent domain is aligned (DMARC's relaxed alignment).
    assert!(start("s1", &key, Some("example.org")).status.success());
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let said = String::from_utf8_lossy(&start("s1", &garbage, None).stderr).into_owned();
    assert!(said.contains("not a PEM private key"), "{said}");
    let said = String::from_utf8_lossy(&start("s1", &dir.join("missing.pem"), None).stderr).into_owned();
    assert!(said.contains("cannot read it"), "{said}");
    // The service refuses to start the same way.
    let mut settings = tidings::config::Settings::from_toml_str("").unwrap();
    settings.dkim = vec![DkimSettings { selector: "s1".into(), key_file: garbage, domain: None }];
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database_url =
        tidings::config::DatabaseUrl::parse(&format!("sqlite://{}", dir.join("t.db").display())).unwrap();
    let Err(e) = tidings::app::Application::build(settings).await else { panic!("started with a bad key") };
    assert!(format!("{e:#}").contains("not a PEM private key"), "{e:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
