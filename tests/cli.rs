//! The binary itself: configuration errors, the migrate command, where logs go.

use std::process::Command;

fn tidings() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TIDINGS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn invalid_configuration_stops_with_one_line_naming_the_key() {
    for (key, value, named) in [
        ("TIDINGS_BASE_URL", "not a url", "base_url"),
        ("TIDINGS_DATABASE_URL", "mysql://localhost/x", "database_url"),
        ("TIDINGS_LISTEN", "nowhere", "listen"),
        ("TIDINGS_SMTP_TIMEOUT_SECS", "soon", "smtp_timeout_secs"),
        ("TIDINGS_MAIL_TRANSPORT", "pigeon", "mail_transport"),
        ("TIDINGS_ADMIN_TOKEN", "short", "admin_token"),
        ("TIDINGS_SENDER_THREADS", "0", "sender_threads"),
    ] {
        let out = tidings().arg("migrate").env(key, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named), "{key}: {stderr}");
    }
    let out = tidings().env("TIDINGS_CONFIG", "/nonexistent.toml").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("TIDINGS_CONFIG"));
}

#[test]
fn migrate_creates_the_schema_and_is_repeatable() {
    let path = std::env::temp_dir().join(format!("tidings-cli-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    for _ in 0..2 {
        let out = tidings().arg("migrate").env("TIDINGS_DATABASE_URL", &url).env_remove("RUST_LOG").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Logs (default level: info) go to stderr, uncoloured when it is not a terminal.
        let log = String::from_utf8(out.stderr).unwrap();
        assert!(log.contains("database is up to date"), "{log}");
        assert!(!log.contains('\x1b'), "{log:?}");
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    assert!(path.exists());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[test]
fn config_prints_the_effective_settings_with_every_secret_redacted() {
    let secrets = [
        ("TIDINGS_ADMIN_TOKEN", "admin-token-abcdefghijklmnop"),
        ("TIDINGS_SECRET_KEY", "secret-key-abcdefghijklmnopqrstuvwxyz0123"),
        ("TIDINGS_BOUNCE_WEBHOOK_SECRET", "webhook-secret-abcdefgh"),
        ("TIDINGS_SMTP_URL", "smtp://news:smtp-password-123@relay.example:587"),
        ("TIDINGS_DATABASE_URL", "postgres://tidings:db-password-456@db.example/tidings"),
        ("TIDINGS_BOUNCE_IMAP_URL", "imaps://bounces:imap-password-789@imap.example:993/INBOX"),
    ];
    let mut cmd = tidings();
    cmd.arg("config").env("TIDINGS_SIGNUP_RATE_PER_MINUTE", "7");
    for (key, value) in secrets {
        cmd.env(key, value);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8(out.stdout).unwrap();
    for secret in ["abcdefgh", "smtp-password-123", "db-password-456", "imap-password-789"] {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
    }
    let parsed: toml::Table = shown.parse().unwrap_or_else(|e| panic!("not TOML ({e}):\n{shown}"));
    assert_eq!(parsed["admin_token"].as_str(), Some("***"));
    assert_eq!(parsed["smtp_url"].as_str(), Some("smtp://news:***@relay.example:587"));
    assert_eq!(parsed["database_url"].as_str(), Some("postgres://tidings:***@db.example/tidings"));
    assert_eq!(parsed["signup_rate_per_minute"].as_integer(), Some(7), "the environment is applied");
    assert_eq!(parsed["lists"].as_array().map(Vec::len), Some(2));

    // Without secrets the output is a configuration file that gives itself back.
    let first = tidings().arg("config").output().unwrap();
    let path = std::env::temp_dir().join(format!("tidings-config-{}.toml", std::process::id()));
    std::fs::write(&path, &first.stdout).unwrap();
    let again = tidings().arg("config").env("TIDINGS_CONFIG", &path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), String::from_utf8(first.stdout).unwrap());
}
