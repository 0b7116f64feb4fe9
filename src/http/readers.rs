//! `/admin/subscribers`: CSV import and export, and erasing a reader
//! (routes registered under the admin scope, behind its token).

use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use mail_parser::{MessageParser, MimeHeaders};
use serde::Deserialize;

use super::AppState;
use super::body;
use super::error::{ApiError, ErrorBody};
use crate::author;
use crate::domain::EmailAddress;
use crate::portability::export::export;
use crate::portability::formats::Format;
use crate::portability::import::{ImportError, ImportReport, import};
use crate::store::imports::ImportSettings;
use crate::store::readers::ExportFilter;

/// An uploaded CSV file, read whole (a million rows fit; the CLI streams).
const MAX_UPLOAD: usize = 256 * 1024 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportQuery {
    /// The list's slug (required).
    #[param(value_type = crate::domain::ListSlug, required = true)]
    list: Option<String>,
    /// `auto` (from the header row), `tidings`, `mailchimp`, `listmonk`,
    /// `substack` or `ghost`.
    format: Option<String>,
    /// Check and count only: nothing is written.
    #[param(value_type = Option<bool>)]
    dry_run: Option<String>,
    /// Mail pending readers a confirmation link.
    #[param(value_type = Option<bool>)]
    send_confirmations: Option<String>,
}

/// `true`/`false` (also `1`/`0`, as forms send them), or a 400 naming the
/// field; absent is `false`.
fn flag(field: &'static str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(ApiError::invalid(field, "use true or false")),
    }
}

/// `POST /admin/subscribers/import?list=SLUG[&format=F][&dry_run=true]`:
/// the body is the CSV file (`text/csv`), or a `multipart/form-data` upload
/// whose first file part is.
#[utoipa::path(post, path = "/admin/subscribers/import", tag = "admin", security(("admin_token" = [])), params(ImportQuery),
    request_body(description = "The CSV file, or a multipart upload whose first file part is", content(
        ("text/csv"),
        ("multipart/form-data"),
    )),
    responses(
        (status = 200, description = "What the import did, invalid rows listed", body = ImportReport),
        (status = 400, description = "A parameter is wrong, or the file cannot be imported", body = ErrorBody),
    ))]
pub(super) async fn import_csv(
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let slug = query.list.as_deref().ok_or_else(|| ApiError::invalid("list", "say which list: ?list=SLUG"))?;
    let dry_run = flag("dry_run", query.dry_run.as_deref())?;
    let send_confirmations = flag("send_confirmations", query.send_confirmations.as_deref())?;
    let raw = read_upload(payload, &state).await?;
    let file = uploaded_file(&req, raw)?;
    let request = ImportRequest { list: slug, format: query.format.as_deref(), dry_run, send_confirmations };
    Ok(HttpResponse::Ok().json(import_file(&state, request, file).await?))
}

/// An upload of up to `MAX_UPLOAD`, with more time than a form's body.
pub(super) async fn read_upload(payload: web::Payload, state: &AppState) -> Result<Bytes, ApiError> {
    body::read_up_to(payload, state.settings.body_timeout() * 6, MAX_UPLOAD).await
}

/// What to import, as the API's query or the dashboard's form says.
pub(super) struct ImportRequest<'a> {
    pub list: &'a str,
    pub format: Option<&'a str>,
    pub dry_run: bool,
    pub send_confirmations: bool,
}

/// Imports `file` into a list (the API's and the dashboard's import).
pub(super) async fn import_file(
    state: &AppState,
    request: ImportRequest<'_>,
    file: Bytes,
) -> Result<ImportReport, ApiError> {
    let list = author::known_list(&state.settings, "list", request.list)?;
    let format = request.format.filter(|f| !f.is_empty()).unwrap_or("auto").to_owned();
    if !Format::NAMES.contains(&format.as_str()) {
        return Err(ApiError::invalid("format", format!("use one of {}", Format::NAMES.join(", "))));
    }
    let settings = ImportSettings {
        list: list.to_string(),
        dry_run: request.dry_run,
        send_confirmations: request.send_confirmations,
        confirm_ttl: chrono::Duration::hours(i64::from(state.settings.confirm_token_ttl_hours)),
        consent_version: state.settings.consent_version.clone(),
    };
    let open = move || Ok(std::io::Cursor::new(file.clone()));
    match import(&state.store, settings, &format, open, |_| {}).await {
        Ok(report) => {
            if request.send_confirmations && !request.dry_run {
                state.outbox_wake.notify_one();
            }
            tracing::info!(
                created = report.created,
                invalid = report.invalid,
                dry_run = request.dry_run,
                "subscribers imported"
            );
            Ok(report)
        }
        Err(ImportError::File(why)) => Err(ApiError::invalid("file", why)),
        Err(ImportError::Store(e)) => Err(e.into()),
    }
}

/// The CSV bytes of the request: the body, or the first file part of a
/// multipart upload.
fn uploaded_file(req: &HttpRequest, raw: Bytes) -> Result<Bytes, ApiError> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Ok(raw);
    }
    multipart_form(req, &raw)?.file.ok_or_else(|| ApiError::invalid("file", "the upload holds no file"))
}

/// A `multipart/form-data` body: its text fields and its first file
/// (parsed by mail-parser, whose MIME parser reads it as any multipart).
pub(super) struct MultipartForm {
    pub fields: Vec<(String, String)>,
    pub file: Option<Bytes>,
}

pub(super) fn multipart_form(req: &HttpRequest, raw: &[u8]) -> Result<MultipartForm, ApiError> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut message = format!("Content-Type: {content_type}\r\n\r\n").into_bytes();
    message.extend_from_slice(raw);
    let parsed = MessageParser::default()
        .parse(&message)
        .ok_or_else(|| ApiError::invalid("file", "the multipart upload could not be read"))?;
    let mut form = MultipartForm { fields: Vec::new(), file: None };
    for part in parsed.parts.iter().skip(1).filter(|p| !p.is_multipart()) {
        let disposition = part.content_disposition();
        let name = disposition.and_then(|d| d.attribute("name")).unwrap_or_default().to_owned();
        if disposition.and_then(|d| d.attribute("filename")).is_some() || name == "file" {
            if form.file.is_none() {
                form.file = Some(Bytes::copy_from_slice(part.contents()));
            }
        } else {
            form.fields.push((name, String::from_utf8_lossy(part.contents()).into_owned()));
        }
    }
    Ok(form)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportQuery {
    /// Only this list's readers.
    #[param(value_type = Option<crate::domain::ListSlug>)]
    list: Option<String>,
    /// Only readers in this state.
    #[param(value_type = Option<ExportStatus>)]
    status: Option<String>,
}

/// The states an export can be narrowed to.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // The document's names for `ExportFilter::STATUSES`.
pub(super) enum ExportStatus {
    Confirmed,
    Pending,
    Unsubscribed,
    Suppressed,
}

/// `GET /admin/subscribers/export.csv[?list=SLUG&status=S]`, streamed.
#[utoipa::path(get, path = "/admin/subscribers/export.csv", tag = "admin", security(("admin_token" = [])), params(ExportQuery),
    responses(
        (status = 200, description = "Every reader's subscriptions, one row each", body = String, content_type = "text/csv"),
        (status = 400, description = "A parameter is wrong", body = ErrorBody),
    ))]
pub(super) async fn export_csv(
    query: web::Query<ExportQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    export_download(&query, &state)
}

/// The streamed CSV of `query`'s readers (the API's and the dashboard's).
pub(super) fn export_download(query: &ExportQuery, state: &AppState) -> Result<HttpResponse, ApiError> {
    let list = query.list.as_deref().map(|s| author::known_list(&state.settings, "list", s)).transpose()?;
    let status = query.status.clone();
    if status.as_deref().is_some_and(|s| !ExportFilter::STATUSES.contains(&s)) {
        return Err(ApiError::invalid("status", "use confirmed, pending, unsubscribed or suppressed"));
    }
    let filter = ExportFilter { list: list.map(|l| l.to_string()), status };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = export(&store, filter, tx).await {
            tracing::error!(error = %e, "export stopped");
        }
    });
    let chunks = tokio_stream_of(rx).map(|chunk| Ok::<_, actix_web::Error>(Bytes::from(chunk)));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", "attachment; filename=\"subscribers.csv\""))
        .streaming(chunks))
}

fn tokio_stream_of(mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> impl futures_util::Stream<Item = Vec<u8>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `DELETE /admin/subscribers/{email}`: erases the reader.
#[utoipa::path(delete, path = "/admin/subscribers/{email}", tag = "admin", security(("admin_token" = [])),
    params(("email" = String, Path, description = "The reader's address")),
    responses(
        (status = 204, description = "Erased: only a hash stays, on the suppression list if it was there"),
        (status = 400, description = "Not an email address", body = ErrorBody),
        (status = 404, description = "No reader with that address", body = ErrorBody),
    ))]
pub(super) async fn erase(email: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let email = EmailAddress::parse(&email).map_err(|e| ApiError::invalid("email", e))?;
    let Some(id) = state.store.reader_by_email(email.as_str().to_owned()).await? else {
        return Err(ApiError::NotFound("no reader with that address".into()));
    };
    state.store.erase_reader(id).await?;
    tracing::info!("reader erased");
    Ok(HttpResponse::NoContent().finish())
}
