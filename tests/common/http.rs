//! A tiny HTTP server serving one body at every path, for feed tests, and
//! able to misbehave the ways real feed hosts do.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// The body, with its length.
    Whole,
    /// The body without a length, a chunk at a time, ended by closing.
    Unsized,
    /// Reads the request and never answers.
    Stall,
    /// A redirect to this address, with the body as the redirect's page.
    Redirect(&'static str),
}

pub struct FileServer {
    pub port: u16,
    /// Requests answered so far.
    pub hits: Arc<AtomicUsize>,
    ipv6: bool,
    task: JoinHandle<()>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FileServer {
    /// Serves `body` with `content_type` at every path.
    pub async fn start(body: &'static [u8], content_type: &'static str) -> Self {
        Self::start_with(Arc::from(body), content_type, Serve::Whole).await
    }

    pub async fn start_with(body: Arc<[u8]>, content_type: &'static str, serve: Serve) -> Self {
        Self::start_at("127.0.0.1:0", body, content_type, serve).await
    }

    /// As `start_with`, listening on `bind` (`[::1]:0` for IPv6).
    pub async fn start_at(bind: &str, body: Arc<[u8]>, content_type: &'static str, serve: Serve) -> Self {
        let listener = TcpListener::bind(bind).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { continue };
                let body = body.clone();
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                        if read == buf.len() {
                            return;
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let (status, extra) = match serve {
                        Serve::Stall => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                        Serve::Whole => ("200 OK", format!("Content-Length: {}\r\n", body.len())),
                        Serve::Unsized => ("200 OK", String::new()),
                        Serve::Redirect(to) => {
                            ("301 Moved Permanently", format!("Location: {to}\r\nContent-Length: {}\r\n", body.len()))
                        }
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{extra}Connection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    for chunk in body.chunks(16 * 1024) {
                        if stream.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, hits, ipv6: bind.starts_with('['), task }
    }

    pub fn url(&self, path: &str) -> String {
        if self.ipv6 {
            return format!("http://[::1]:{}{path}", self.port);
        }
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
