//! The author's API under `/admin`, behind a bearer token.

use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/lists", web::get().to(lists));
}

/// Checks `Authorization: Bearer …` against the configured token. Hashing
/// both sides first makes the comparison constant-time whatever the lengths.
/// With no token configured, nobody gets in.
pub fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let expected = state
        .settings
        .admin_token
        .as_deref()
        .ok_or(ApiError::Unauthorized)?;
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let same: bool = Sha256::digest(given.trim().as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into();
    if same {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

async fn lists(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    Ok(HttpResponse::Ok().json(state.store.list_counts().await?))
}
