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
