//! `/admin/suppressions`: the addresses never mailed, and the author's hand
//! on them (routes registered under the admin scope, behind its token).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::body;
use super::error::{ApiError, ErrorBody};
use crate::domain::{EmailAddress, SuppressionReason};
use crate::store::suppressions::Suppression;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Page {
    /// At most this many (1 to 10,000; 1,000 if not given).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// Skip this many first.
    #[param(value_type = Option<i64>, minimum = 0)]
    offset: Option<String>,
}

/// A whole number from the query, or a 400 naming its field.
fn number(field: &'static str, value: Option<&str>, default: i64) -> Result<i64, ApiError> {
    value.map_or(Ok(default), |v| v.trim().parse().map_err(|_| ApiError::invalid(field, "must be a whole number")))
}

/// `GET /admin/suppressions[?limit=N&offset=M]`, newest first.
#[utoipa::path(get, path = "/admin/suppressions", tag = "admin", security(("admin_token" = [])), params(Page),
    responses(
        (status = 200, description = "Suppressed addresses, newest first", body = [Suppression]),
        (status = 400, description = "`limit` or `offset` out of range", body = ErrorBody),
    ))]
pub(super) async fn list(query: web::Query<Page>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let limit = number("limit", query.limit.as_deref(), 1000)?;
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 10000"));
    }
    let offset = number("offset", query.offset.as_deref(), 0)?;
    if offset < 0 {
        return Err(ApiError::invalid("offset", "must be 0 or more"));
    }
    Ok(HttpResponse::Ok().json(state.store.suppressions(limit, offset).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSuppression {
    email: String,
    /// One line, kept with the entry (at most 500 characters are kept).
    #[serde(default)]
    note: Option<String>,
}

/// `POST /admin/suppressions {"email", "note"}`: never mail this address
/// (reason `manual`; only the author lifts it).
/// The address now suppressed.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Suppressed {
    email: String,
    reason: SuppressionReason,
}

#[utoipa::path(post, path = "/admin/suppressions", tag = "admin", security(("admin_token" = [])), request_body = NewSuppression,
    responses(
        (status = 201, description = "Suppressed", body = Suppressed),
        (status = 400, description = "A field is missing or wrong (named in `field`)", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Created().json(Suppressed { email: email.as_str().to_owned(), reason: SuppressionReason::Manual }))
}

/// `DELETE /admin/suppressions/{email}`: mail may go to it again.
#[utoipa::path(delete, path = "/admin/suppressions/{email}", tag = "admin", security(("admin_token" = [])),
    params(("email" = String, Path, description = "The suppressed address")),
    responses(
        (status = 204, description = "Lifted: mail may go to the address again"),
        (status = 400, description = "Not an email address", body = ErrorBody),
        (status = 404, description = "That address is not suppressed", body = ErrorBody),
    ))]
pub(super) async fn remove(email: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let email = EmailAddress::parse(&email).map_err(|e| ApiError::invalid("email", e))?;
    if state.store.lift_suppression(email.as_str().to_owned()).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("that address is not suppressed".into()))
    }
}
