//! Dashboard authors for tests, made the way an operator makes them: with
//! `tidings authors add`, the password on stdin.

use std::io::Write;
use std::process::Stdio;

use super::{TestApp, tidings_cli};

pub const PASSWORD: &str = "a long enough passphrase";

/// `tidings authors add EMAIL` with the password on stdin.
pub fn add_author(app: &TestApp, email: &str, password: &str) -> std::process::Output {
    let mut child = tidings_cli(&app.db, app.smtp.port)
        .args(["authors", "add", email])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}
