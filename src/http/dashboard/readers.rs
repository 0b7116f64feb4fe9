//! `/admin/ui/readers`: finding a reader by address, their page (lists,
//! consent history, recent deliveries, suppression) and what the author may
//! do for them: take them off a list, lift their suppression, erase them.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::session::{self, GenuineForm, SignedIn};
use crate::http::error::ApiError;
use crate::http::{AppState, evidence, readers};

/// Shown per search: enough to find someone, never the whole list.
const HITS: i64 = 50;
/// The deliveries shown on a reader's page, newest first.
const RECENT_DELIVERIES: usize = 20;

#[derive(serde::Deserialize)]
pub struct Search {
    q: Option<String>,
    done: Option<String>,
}

pub async fn index(
    author: SignedIn,
    query: web::Query<Search>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    render(&author, &state, StatusCode::OK, &query, Imported::default()).await
}

/// What an upload did, for the page: the report, or why there is none.
#[derive(Default)]
struct Imported {
    report: Option<Value>,
    error: Option<String>,
    list: Option<String>,
}

async fn render(
    author: &SignedIn,
    state: &AppState,
    status: StatusCode,
    query: &Search,
    imported: Imported,
) -> Result<HttpResponse, ApiError> {
    let needle = query.q.as_deref().map(str::trim).unwrap_or_default().chars().take(254).collect::<String>();
    let hits: Vec<Value> = if needle.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .search_readers(needle.clone(), HITS + 1)
            .await?
            .into_iter()
            .map(|(id, email, name)| json!({ "id": id, "email": email, "name": name }))
            .collect()
    };
    let more = hits.len() > usize::try_from(HITS).unwrap_or(0);
    let notice = match query.done.as_deref() {
        Some("erased") => {
            Some("The reader was erased: only a hash of the address is kept, on the suppression list if it was there.")
        }
        _ => None,
    };
    let data = json!({
        "title": "Readers",
        "q": needle,
        "searched": !needle.is_empty(),
        "hits": hits.iter().take(usize::try_from(HITS).unwrap_or(0)).collect::<Vec<_>>(),
        "more": more,
        "notice": notice,
        "lists": state
            .settings
            .lists
            .iter()
            .map(|l| json!({ "slug": l.slug.as_str(), "name": l.name, "chosen": imported.list.as_deref() == Some(l.slug.as_str()) }))
            .collect::<Vec<_>>(),
        "report": imported.report,
        "import_error": imported.error,
    });
    Ok(author.page(state, status, "dash_readers", "readers", &data))
}

/// `POST /admin/ui/readers/import` (multipart: `csrf`, `list`, `format`,
/// `dry_run`, `file`): the report on the readers page. A dry run, the
/// form's default, writes nothing.
pub async fn import(
    req: HttpRequest,
    author: SignedIn,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = readers::read_upload(payload, &state).await?;
    let form = readers::multipart_form(&req, &raw)?;
    let field = |name: &str| form.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if !author.form_is_genuine(&req, &state.settings, field("csrf").unwrap_or_default()) {
        return Ok(session::forged(&state));
    }
    let list = field("list").unwrap_or_default();
    let dry_run = field("dry_run") == Some("yes");
    let search = Search { q: None, done: None };
    let Some(file) = form.file.filter(|f| !f.is_empty()) else {
        let imported = Imported {
            error: Some("Choose a CSV file to import.".into()),
            list: Some(list.to_owned()),
            ..Imported::default()
        };
        return render(&author, &state, StatusCode::BAD_REQUEST, &search, imported).await;
    };
    let request = readers::ImportRequest { list, format: field("format"), dry_run, send_confirmations: false };
    let imported = match readers::import_file(&state, request, file).await {
        Ok(report) => Imported { report: Some(json!(report)), list: Some(list.to_owned()), ..Imported::default() },
        Err(ApiError::Invalid { message, .. }) => {
            Imported { error: Some(message), list: Some(list.to_owned()), ..Imported::default() }
        }
        Err(other) => return Err(other),
    };
    let status = if imported.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    render(&author, &state, status, &search, imported).await
}

fn reader_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound("no reader with that id".into()))
}

pub async fn show(
    author: SignedIn,
    id: web::Path<String>,
    query: web::Query<Search>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = reader_id(&id)?;
    let Some(reader) = state.store.reader_data(id).await? else {
        return Ok(state.pages.message(
            StatusCode::NOT_FOUND,
            "No such reader",
            &["This reader is not here (erased, perhaps)."],
            Some(("/admin/ui/readers", "Find a reader")),
        ));
    };
    let name_of = |slug: &str| {
        state.settings.lists.iter().find(|l| l.slug.as_str() == slug).map_or(slug.to_owned(), |l| l.name.clone())
    };
    let subscriptions: Vec<Value> = reader
        .subscriptions
        .iter()
        .map(|s| {
            let history: Vec<Value> = s
                .history
                .iter()
                .map(|h| json!({ "kind": h.kind, "at": h.at.format("%F %T UTC").to_string(), "source": h.source, "ip": h.ip }))
                .collect();
            json!({
                "slug": s.list,
                "name": name_of(&s.list),
                "status": s.status,
                "subscribed": s.subscribed_at.format("%F").to_string(),
                "leavable": s.status != "unsubscribed",
                "history": history,
            })
        })
        .collect();
    let deliveries: Vec<Value> = reader
        .deliveries
        .iter()
        .rev()
        .take(RECENT_DELIVERIES)
        .map(|d| json!({ "subject": d.subject, "status": d.status, "sent": d.sent_at.map(|t| t.format("%F %T UTC").to_string()) }))
        .collect();
    let notice = match query.done.as_deref() {
        Some("left") => Some("The reader was taken off the list."),
        Some("lifted") => Some("The suppression was lifted: mail may go to this address again."),
        _ => None,
    };
    let data = json!({
        "title": reader.email,
        "id": id,
        "email": reader.email,
        "name": reader.name,
        "since": reader.created_at.format("%-d %B %Y").to_string(),
        "subscriptions": subscriptions,
        "deliveries": deliveries,
        "suppression": reader.suppression.as_ref().map(|s| json!({ "reason": s.reason, "source": s.source, "at": s.created_at.format("%F").to_string() })),
        "notice": notice,
    });
    Ok(author.page(&state, StatusCode::OK, "dash_reader", "readers", &data))
}

/// `POST /admin/ui/readers/{id}/{leave|lift|erase}`.
pub async fn act(
    req: HttpRequest,
    posted: GenuineForm,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let form = posted.form;
    let (id, action) = path.into_inner();
    let id = reader_id(&id)?;
    let Some(reader) = state.store.reader_data(id).await? else {
        return Err(ApiError::NotFound("no reader with that id".into()));
    };
    let back = |done: &str| {
        HttpResponse::SeeOther().insert_header((LOCATION, format!("/admin/ui/readers/{id}?done={done}"))).finish()
    };
    match action.as_str() {
        "leave" => {
            let list = form.get("list").unwrap_or_default();
            if !reader.subscriptions.iter().any(|s| s.list == list) {
                return Err(ApiError::invalid("list", "the reader is not on that list"));
            }
            state.store.leave_lists(id, Some(list.to_owned()), evidence(&req, &state, "dashboard")).await?;
            tracing::info!(reader = id, list, "reader taken off a list from the dashboard");
            Ok(back("left"))
        }
        "lift" => {
            state.store.lift_suppression(reader.email.clone()).await?;
            Ok(back("lifted"))
        }
        "erase" => {
            if form.get("confirm") != Some("yes") {
                return Err(ApiError::invalid("confirm", "tick the box to confirm that the reader is to be erased"));
            }
            state.store.erase_reader(id).await?;
            tracing::info!(reader = id, "reader erased from the dashboard");
            Ok(HttpResponse::SeeOther().insert_header((LOCATION, "/admin/ui/readers?done=erased")).finish())
        }
        _ => Err(ApiError::NotFound("no such action: leave, lift or erase".into())),
    }
}
