//! `/admin/ui/suppressions`: the addresses never mailed, why, and since
//! when; the author may lift one.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::session::{GenuineForm, SignedIn};
use crate::domain::EmailAddress;
use crate::http::AppState;
use crate::http::error::ApiError;

const PAGE: i64 = 200;

#[derive(serde::Deserialize)]
pub struct Page {
    page: Option<u32>,
    done: Option<String>,
}

pub async fn index(
    author: SignedIn,
    query: web::Query<Page>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = i64::from(query.page.unwrap_or(0));
    let rows = state.store.suppressions(PAGE + 1, page * PAGE).await?;
    let entries: Vec<Value> = rows
        .iter()
        .take(usize::try_from(PAGE).unwrap_or(0))
        .map(|s| {
            json!({
                "email": s.email,
                "hash": &s.address_hash[..12],
                "reason": s.reason.as_str().replace('_', " "),
                "source": s.source,
                "detail": s.detail,
                "at": s.created_at.format("%F %T UTC").to_string(),
            })
        })
        .collect();
    let data = json!({
        "title": "Suppressions",
        "entries": entries,
        "next": (rows.len() > entries.len()).then_some(page + 1),
        "previous": (page > 0).then_some(page - 1),
        "notice": (query.done.as_deref() == Some("lifted")).then_some("The suppression was lifted: mail may go to that address again."),
    });
    Ok(author.page(&state, StatusCode::OK, "dash_suppressions", "suppressions", &data))
}

/// `POST /admin/ui/suppressions/lift` with `email`.
pub async fn lift(posted: GenuineForm, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let form = posted.form;
    let email =
        EmailAddress::parse(form.get("email").unwrap_or_default()).map_err(|e| ApiError::invalid("email", e))?;
    if !state.store.lift_suppression(email.as_str().to_owned()).await? {
        return Err(ApiError::NotFound("that address is not suppressed".into()));
    }
    Ok(HttpResponse::SeeOther().insert_header((LOCATION, "/admin/ui/suppressions?done=lifted")).finish())
}
