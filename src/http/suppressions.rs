//! `/admin/suppressions`: the addresses never mailed, and the author's hand
//! on them (routes registered under the admin scope, behind its token).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::body;
use super::error::ApiError;
use crate::domain::{EmailAddress, SuppressionReason};

#[derive(Deserialize)]
pub(super) struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /admin/suppressions[?limit=N&offset=M]`, newest first.
pub(super) async fn list(query: web::Query<Page>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 10000"));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset", "must be 0 or more"));
    }
    Ok(HttpResponse::Ok().json(state.store.suppressions(limit, offset).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSuppression {
    email: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /admin/suppressions {"email", "note"}`: never mail this address
/// (reason `manual`; only the author lifts it).
pub(super) async fn add(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: NewSuppression = body::json(&req, payload, state.settings.body_timeout()).await?;
    let email = EmailAddress::parse(&body.email).map_err(|e| ApiError::invalid("email", e))?;
    let note = body.note.map(|n| n.chars().take(500).collect::<String>());
    if note.as_deref().is_some_and(|n| n.contains(['\r', '\n'])) {
        return Err(ApiError::invalid("note", "one line, please"));
    }
    state.store.suppress(email.as_str().to_owned(), SuppressionReason::Manual, "api".into(), note).await?;
    Ok(HttpResponse::Created().json(json!({ "email": email.as_str(), "reason": "manual" })))
}

/// `DELETE /admin/suppressions/{email}`: mail may go to it again.
pub(super) async fn remove(email: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let email = EmailAddress::parse(&email).map_err(|e| ApiError::invalid("email", e))?;
    if state.store.lift_suppression(email.as_str().to_owned()).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("that address is not suppressed".into()))
    }
}
