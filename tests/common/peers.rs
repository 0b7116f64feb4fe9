//! Helpers for tests against servers we did not write: child processes
//! killed at the end, scratch directories, and a private CA.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

/// A child process killed when the test ends.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory of its own under the system's temporary one, removed at the end.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tidings-peers-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until something accepts connections on `port`.
pub async fn listening(port: u16) {
    wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())).await;
}

/// Waits until a Tidings server on `port` answers `/health` with 200: its
/// port accepts connections before its migrations are done.
pub async fn healthy(port: u16) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let res = client.get(format!("http://127.0.0.1:{port}/health")).send().await;
        if res.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no healthy server on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A private CA and a server certificate it signed for 127.0.0.1 and
/// localhost: (CA certificate, server certificate, server key). rustls
/// refuses a CA certificate as a server's, as it should.
pub fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let ran = Command::new("openssl").current_dir(dir).args(args).stderr(Stdio::null()).status().unwrap();
        assert!(ran.success(), "openssl {args:?} failed");
    };
    std::fs::write(p("leaf.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Tidings test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}
