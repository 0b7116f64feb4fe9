//! A cap on the connections one client IP holds open. Each connection is
//! counted from accept to close (the count lives in the connection's data,
//! so it drops with the connection); a request on a connection over the cap
//! is answered 429 at once, before its body is read, and the connection is
//! closed. Trusted proxies are not counted: they carry every client.

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::HttpResponseBuilder;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

#[derive(Clone)]
pub struct ConnectionCap {
    counts: Counts,
    max: usize,
    trusted: Arc<[IpAddr]>,
}

impl ConnectionCap {
    /// `max` connections per IP; 0 turns the cap off.
    pub fn new(max: usize, trusted: &[IpAddr]) -> Self {
        Self { counts: Counts::default(), max, trusted: trusted.into() }
    }

    /// For `HttpServer::on_connect`: counts the new connection.
    pub fn on_connect(&self, conn: &dyn Any, data: &mut Extensions) {
        if self.max == 0 {
            return;
        }
        let Some(Ok(peer)) = conn.downcast_ref::<TcpStream>().map(TcpStream::peer_addr) else { return };
        let ip = peer.ip().to_canonical();
        if self.trusted.contains(&ip) {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let open = counts.entry(ip).or_insert(0);
        *open += 1;
        data.insert(Counted { ip, over_cap: *open > self.max, counts: Arc::clone(&self.counts) });
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).get(&ip).copied().unwrap_or(0)
    }
}

/// One open connection in the count; uncounted when the connection closes.
struct Counted {
    ip: IpAddr,
    over_cap: bool,
    counts: Counts,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&self.ip) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Middleware: a request on a connection over the cap gets 429 and the
/// connection is closed, which frees the slot.
pub async fn refuse_over_cap(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.conn_data::<Counted>().is_some_and(|c| c.over_cap) {
        tracing::info!("too many open connections from one address: refused");
        let answer = HttpResponseBuilder::new(StatusCode::TOO_MANY_REQUESTS)
            .insert_header(("Retry-After", "1"))
            .force_close()
            .json(serde_json::json!({
                "error": "too many open connections from your address; close some and try again",
            }));
        return Ok(req.into_response(answer).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_drop_with_their_connections() {
        let cap = ConnectionCap::new(2, &[]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let counted = |over_cap| Counted { ip, over_cap, counts: Arc::clone(&cap.counts) };
        cap.counts.lock().unwrap().insert(ip, 2);
        let (a, b) = (counted(false), counted(false));
        assert_eq!(cap.open(ip), 2);
        drop(a);
        assert_eq!(cap.open(ip), 1);
        drop(b);
        assert_eq!(cap.open(ip), 0);
        assert!(cap.counts.lock().unwrap().is_empty());
    }
}
