//! Reading and decoding request bodies ourselves, so every failure gets our
//! own clear answer (413, 415, 400) instead of an extractor's default.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;

use super::error::ApiError;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;

/// The whole body, within `deadline` from the first byte we wait for: a
/// client that sends `Content-Length: 100` and then one byte would otherwise
/// hold its connection (and a file descriptor) for as long as it likes.
pub async fn read(payload: Payload, deadline: Duration) -> Result<Bytes, ApiError> {
    read_up_to(payload, deadline, MAX_BODY).await
}

/// `read` with another size limit (a provider's batch of events).
pub async fn read_up_to(payload: Payload, deadline: Duration, max: usize) -> Result<Bytes, ApiError> {
    tokio::time::timeout(deadline, read_all(payload, max))
        .await
        .map_err(|_| ApiError::BodyTimeout(deadline.as_secs_f64()))?
}

async fn read_all(mut payload: Payload, max: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => ApiError::TooLarge(max / 1024),
            other => ApiError::invalid("body", format!("could not read the request body: {other}")),
        })?;
        if body.len() + chunk.len() > max {
            return Err(ApiError::TooLarge(max / 1024));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Form,
    Other,
}

pub fn kind(req: &HttpRequest) -> Kind {
    let ct = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Kind::Json,
        "application/x-www-form-urlencoded" => Kind::Form,
        _ if essence.ends_with("+json") => Kind::Json,
        _ => Kind::Other,
    }
}

/// Every `key=value` pair of a urlencoded body, repeated keys kept in order.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A JSON body into `T`, with a 400 that says what is wrong and where.
pub async fn json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: Payload,
    deadline: Duration,
) -> Result<T, ApiError> {
    if kind(req) != Kind::Json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = read(payload, deadline).await?;
    serde_json::from_slice(&body).map_err(|e| {
        let field = match e.classify() {
            serde_json::error::Category::Data => field_of(&e.to_string()).unwrap_or("body"),
            _ => "body",
        };
        ApiError::invalid(field, format!("the body is not the JSON expected: {e}"))
    })
}

/// serde names a missing field as "missing field `x`"; the answer should too.
fn field_of(message: &str) -> Option<&'static str> {
    const FIELDS: &[&str] = &["title", "url", "summary", "published_at", "lists", "list", "subject", "email", "name"];
    FIELDS.iter().copied().find(|f| message.contains(&format!("`{f}`")))
}
