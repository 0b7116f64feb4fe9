//! A TCP stream for SMTP that holds what is written until the server's answer
//! is awaited, so a message costs fewer `write` calls.
//!
//! lettre writes and flushes every command, and the body and its final `.`
//! separately; with `TCP_NODELAY` each of those is a syscall and a packet.
//! SMTP always reads a reply after writing, so sending the held bytes just
//! before a read loses no latency. The shared [`Outbound`] handle also lets
//! the mailer queue commands itself: several commands sent in one write and
//! their replies read after, which is PIPELINING (RFC 2920).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes waiting to go to the server, shared by the stream and the mailer.
#[derive(Debug, Clone, Default)]
pub struct Outbound(Arc<Mutex<Vec<u8>>>);

impl Outbound {
    /// Queues bytes; they leave with the next read of the server's reply.
    pub fn push(&self, bytes: &[u8]) {
        self.held().extend_from_slice(bytes);
    }

    /// Queues a message's content as DATA carries it: a `.` opening a line
    /// doubled (RFC 5321 4.5.2), then the closing `CRLF.CRLF`.
    pub fn push_data(&self, message: &[u8]) {
        let mut held = self.held();
        held.reserve(message.len() + 5);
        let mut start = 0;
        if message.first() == Some(&b'.') {
            held.push(b'.');
        }
        for newline in memchr::memchr_iter(b'\n', message) {
            let line_ends = newline > 0 && message[newline - 1] == b'\r';
            if line_ends && message.get(newline + 1) == Some(&b'.') {
                held.extend_from_slice(&message[start..=newline]);
                held.push(b'.');
                start = newline + 1;
            }
        }
        held.extend_from_slice(&message[start..]);
        held.extend_from_slice(b"\r\n.\r\n");
    }

    fn held(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic elsewhere cannot leave a half-appended buffer: extend is
        // the only mutation, so the bytes are still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
pub struct CorkedStream {
    tcp: TcpStream,
    outbound: Outbound,
}

impl CorkedStream {
    pub fn new(tcp: TcpStream) -> (Self, Outbound) {
        let outbound = Outbound::default();
        (Self { tcp, outbound: outbound.clone() }, outbound)
    }

    /// Writes out everything held; `Ready(Ok)` once the buffer is empty.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = self.outbound.held();
        while !held.is_empty() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for CorkedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for CorkedStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.outbound.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    /// Holds on: the bytes leave when the reply they ask for is read.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for CorkedStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn data_is_dot_stuffed_and_terminated() {
        let stuffed = |m: &[u8]| {
            let out = Outbound::default();
            out.push_data(m);
            String::from_utf8(out.held().clone()).unwrap()
        };
        assert_eq!(stuffed(b"a\r\n.b\r\n..c\r\nd.\r\n"), "a\r\n..b\r\n...c\r\nd.\r\n\r\n.\r\n");
        assert_eq!(stuffed(b".first"), "..first\r\n.\r\n");
        assert_eq!(stuffed(b"end\r\n."), "end\r\n..\r\n.\r\n");
        assert_eq!(stuffed(b""), "\r\n.\r\n");
        assert_eq!(stuffed(b"bare\n.lf"), "bare\n.lf\r\n.\r\n", "as lettre: only CRLF ends a line");
    }

    #[tokio::test]
    async fn writes_leave_together_when_the_reply_is_read() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            let mut got = vec![0u8; 64];
            let n = peer.read(&mut got).await.unwrap();
            peer.write_all(b"250 OK\r\n").await.unwrap();
            got.truncate(n);
            got
        });
        let (mut stream, outbound) = CorkedStream::new(TcpStream::connect(addr).await.unwrap());
        stream.write_all(b"MAIL FROM:<a@b>\r\n").await.unwrap();
        stream.flush().await.unwrap();
        outbound.push(b"RCPT TO:<c@d>\r\n");
        let mut reply = [0u8; 8];
        stream.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"250 OK\r\n");
        assert_eq!(server.await.unwrap(), b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", "one write, in order");
    }
}
