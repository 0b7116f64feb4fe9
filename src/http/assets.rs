//! The one stylesheet every page links, served from the binary (no CDN).

use actix_web::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse, web};

use super::endpoint::endpoint;

const STYLE: &str = include_str!("pages/style.css");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/style.css").get(style).done());
}

/// The stylesheet's version: it changes with the binary's stylesheet.
fn etag() -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(STYLE.as_bytes());
    format!("\"{}\"", digest.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
}

async fn style(req: HttpRequest) -> HttpResponse {
    let tag = etag();
    if req.headers().get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
        return HttpResponse::NotModified().insert_header((ETAG, tag)).finish();
    }
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((ETAG, tag))
        .body(STYLE)
}
