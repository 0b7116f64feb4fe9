//! A real SMTP server over TCP for tests: it speaks enough ESMTP for lettre,
//! keeps every accepted message, and can be told to refuse or fail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// What the server answers at the end of DATA for the next messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Accept,
    /// `451 4.3.0` temporary failure.
    TempFail,
    /// `550 5.1.1` no such user.
    Reject,
    /// Close the connection in the middle of DATA, without a reply.
    Drop,
}

/// Replies given at a stage for every message until cleared, e.g. `"554
/// 5.7.1 Message rejected"`; lines split by `\n` make a multi-line reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Mail,
    Rcpt,
    Data,
    EndOfData,
}

/// One message that reached the end of DATA.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: Instant,
    pub to: Vec<String>,
    pub accepted: bool,
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    rejected_rcpts: Vec<String>,
    attempts: usize,
    delay: Duration,
    no_pipelining: bool,
    /// Transactions whose commands arrived before their replies were sent.
    pipelined: usize,
    refusals: std::collections::HashMap<Stage, String>,
    no_8bitmime: bool,
    idle_close: Option<Duration>,
    log: Vec<Attempt>,
    auth_seen: usize,
}

pub struct SmtpServer {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind SMTP test server");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let accept_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    let _ = session(stream, shared).await;
                });
            }
        });
        Self { port, shared, task }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Answers the next messages' DATA with these replies, then accepts.
    pub fn script(&self, replies: &[Reply]) {
        self.shared.lock().unwrap().script.extend(replies.iter().copied());
    }

    /// Waits this long before answering the end of DATA (a slow server).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().unwrap().delay = delay;
    }

    /// Stops offering PIPELINING to new connections (aiosmtpd does not).
    pub fn refuse_pipelining(&self) {
        self.shared.lock().unwrap().no_pipelining = true;
    }

    /// Answers every message at `stage` with `reply` (lines split by `\n`)
    /// until [`Self::clear_refusals`].
    pub fn refuse_at(&self, stage: Stage, reply: &str) {
        self.shared.lock().unwrap().refusals.insert(stage, reply.to_owned());
    }

    pub fn clear_refusals(&self) {
        self.shared.lock().unwrap().refusals.clear();
    }

    /// Stops offering 8BITMIME to new connections and refuses 8bit bodies.
    pub fn refuse_8bitmime(&self) {
        self.shared.lock().unwrap().no_8bitmime = true;
    }

    /// Closes a connection that has been idle this long (servers do).
    pub fn close_idle_after(&self, idle: Duration) {
        self.shared.lock().unwrap().idle_close = Some(idle);
    }

    /// Every message that reached the end of DATA, in order.
    pub fn log(&self) -> Vec<Attempt> {
        self.shared.lock().unwrap().log.clone()
    }

    /// How many AUTH commands arrived.
    pub fn auth_seen(&self) -> usize {
        self.shared.lock().unwrap().auth_seen
    }

    /// Transactions whose MAIL arrived together with the commands after it.
    pub fn pipelined(&self) -> usize {
        self.shared.lock().unwrap().pipelined
    }

    /// Refuses `RCPT TO` for this address with 550, always.
    pub fn reject_recipient(&self, address: &str) {
        self.shared.lock().unwrap().rejected_rcpts.push(address.to_lowercase());
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Messages that reached the end of DATA, accepted or not.
    pub fn attempts(&self) -> usize {
        self.shared.lock().unwrap().attempts
    }

    /// Waits until at least `n` messages were accepted; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "expected {n} messages, got {} after {within:?}", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Messages accepted for one recipient.
    pub fn to(&self, address: &str) -> Vec<Received> {
        self.received().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address))).collect()
    }
}

async fn session(stream: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 test-smtp ESMTP ready\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    let idle_close = shared.lock().unwrap().idle_close;
    loop {
        line.clear();
        let read = match idle_close {
            Some(idle) => match tokio::time::timeout(idle, lines.read_line(&mut line)).await {
                Ok(read) => read?,
                Err(_) => {
                    // As postfix does at its idle limit: say so, then close.
                    let _ = write.write_all(b"421 4.4.2 test-smtp Error: timeout exceeded\r\n").await;
                    return Ok(());
                }
            },
            None => lines.read_line(&mut line).await?,
        };
        if read == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let stage = if upper.starts_with("MAIL FROM:") {
            Some(Stage::Mail)
        } else if upper.starts_with("RCPT TO:") {
            Some(Stage::Rcpt)
        } else if upper.starts_with("DATA") {
            Some(Stage::Data)
        } else {
            None
        };
        if let Some(refusal) = stage.and_then(|st| shared.lock().unwrap().refusals.get(&st).cloned()) {
            if stage == Some(Stage::Mail) && !lines.buffer().is_empty() {
                shared.lock().unwrap().pipelined += 1;
            }
            write.write_all(multi_line(&refusal).as_bytes()).await?;
            continue;
        }
        let reply: &[u8] = if upper.starts_with("EHLO") {
            let offers = {
                let s = shared.lock().unwrap();
                (s.no_pipelining, s.no_8bitmime)
            };
            match offers {
                (true, false) => b"250-test-smtp\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n",
                (false, false) => {
                    b"250-test-smtp\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n"
                }
                (true, true) => b"250-test-smtp\r\n250 SIZE 10485760\r\n",
                (false, true) => b"250-test-smtp\r\n250-PIPELINING\r\n250 SIZE 10485760\r\n",
            }
        } else if upper.starts_with("AUTH") {
            shared.lock().unwrap().auth_seen += 1;
            b"503 5.5.1 Error: authentication not enabled\r\n"
        } else if upper.starts_with("MAIL FROM:")
            && upper.contains("BODY=8BITMIME")
            && shared.lock().unwrap().no_8bitmime
        {
            b"555 5.5.4 Unsupported option: BODY=8BITMIME\r\n"
        } else if upper.starts_with("HELO") {
            b"250 test-smtp\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line[10..]);
            to.clear();
            if !lines.buffer().is_empty() {
                shared.lock().unwrap().pipelined += 1;
            }
            b"250 2.1.0 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = address(&line[8..]);
            if shared.lock().unwrap().rejected_rcpts.contains(&rcpt.to_lowercase()) {
                b"550 5.1.1 No such user here\r\n"
            } else {
                to.push(rcpt);
                b"250 2.1.5 OK\r\n"
            }
        } else if upper.starts_with("DATA") && to.is_empty() {
            b"554 5.5.1 Error: no valid recipients\r\n"
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let next = shared.lock().unwrap().script.pop_front().unwrap_or(Reply::Accept);
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if lines.read_line(&mut l).await? == 0 {
                    return Ok(());
                }
                if next == Reply::Drop {
                    shared.lock().unwrap().attempts += 1;
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            let delay = shared.lock().unwrap().delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let refusal = {
                let mut s = shared.lock().unwrap();
                s.attempts += 1;
                let refusal = s.refusals.get(&Stage::EndOfData).cloned();
                if refusal.is_some() {
                    s.log.push(Attempt { at: Instant::now(), to: to.clone(), accepted: false });
                }
                refusal
            };
            if let Some(refusal) = refusal {
                write.write_all(multi_line(&refusal).as_bytes()).await?;
                continue;
            }
            let mut s = shared.lock().unwrap();
            let eight_bit_refused = s.no_8bitmime && !data.is_ascii();
            let accepted = next == Reply::Accept && !eight_bit_refused;
            s.log.push(Attempt { at: Instant::now(), to: to.clone(), accepted });
            if eight_bit_refused {
                b"554 5.6.1 8bit content without 8BITMIME\r\n"
            } else {
                match next {
                    Reply::Accept | Reply::Drop => {
                        s.received.push(Received { from: from.clone(), to: to.clone(), data });
                        b"250 2.0.0 Queued\r\n"
                    }
                    Reply::TempFail => b"451 4.3.0 Try again later\r\n",
                    Reply::Reject => b"550 5.1.1 Mailbox unavailable\r\n",
                }
            }
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            b"250 2.0.0 OK\r\n"
        } else if upper.starts_with("NOOP") {
            b"250 2.0.0 OK\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 5.5.2 Command not recognised\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// `"554 5.7.1 a\n554 5.7.1 b"` as a multi-line SMTP reply.
fn multi_line(reply: &str) -> String {
    let lines: Vec<&str> = reply.split('\n').collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let (code, text) = l.split_at(3.min(l.len()));
        let sep = if i + 1 < lines.len() { "-" } else { " " };
        out.push_str(&format!("{code}{sep}{}\r\n", text.trim_start()));
    }
    out
}

fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg.split_once('<').and_then(|(_, r)| r.split_once('>')).map_or(arg, |(a, _)| a);
    inner.to_owned()
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }

    /// The decoded body of the first part with this content type.
    pub fn part(&self, content_type: &str) -> String {
        let start = self
            .data
            .find(&format!("Content-Type: {content_type}"))
            .unwrap_or_else(|| panic!("no {content_type} part in:\n{}", self.data));
        let part = &self.data[start..];
        let (head, rest) = part.split_once("\r\n\r\n").expect("part has a body");
        let content_type = self.header("Content-Type").unwrap_or_default();
        let boundary = content_type.split("boundary=").nth(1).unwrap_or("").trim_matches('"');
        let body = rest.split(&format!("\r\n--{boundary}")).next().unwrap_or(rest);
        if head.contains("quoted-printable") {
            decode_qp(body)
        } else if head.contains("base64") {
            use base64::Engine;
            let clean: String = body.split_whitespace().collect();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(clean).unwrap()).unwrap()
        } else {
            body.to_owned()
        }
    }

    pub fn text(&self) -> String {
        self.part("text/plain")
    }

    pub fn html(&self) -> String {
        self.part("text/html")
    }

    /// The first link in the text part that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let text = self.text();
        let start = text.find(prefix).unwrap_or_else(|| panic!("no link {prefix} in:\n{text}"));
        text[start..].split_whitespace().next().unwrap().to_owned()
    }
}

fn decode_qp(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() + 1 {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..(i + 3).min(joined.len())], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
