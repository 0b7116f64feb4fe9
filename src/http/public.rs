//! What readers use: the signup form and API, confirmation, health.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use actix_governor::Governor;
use actix_web::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE,
    AUTHORIZATION, CACHE_CONTROL, HeaderValue, ORIGIN, VARY,
};
use actix_web::middleware::Condition;

use super::abuse::{self, FillCheck, Limits};
use super::api_keys::{self, KeyCheck, Presented};
use super::body::{self, Kind};
use super::endpoint::endpoint;
use super::error::{ApiError, ErrorBody};
use super::pages::SignupForm;
use super::{AppState, evidence};
use crate::domain::{EmailAddress, ListSlug, SignupSource, SubscriberName, TokenKind, redact_token};
use crate::store::signups::{SignupOutcome, SignupRequest};
use crate::store::subscriptions::ConfirmOutcome;
use crate::telemetry::meters;

pub fn routes(cfg: &mut web::ServiceConfig, limits: &Limits) {
    cfg.service(endpoint("/").get(signup_form).done())
        .service(endpoint("/privacy").get(privacy).done())
        .service(endpoint("/embed").get(embed).done())
        // A keyed signup is limited per key (in the handler), not per IP: a
        // blog's backend signs everyone up from one address.
        .service(
            endpoint("/subscriptions")
                .guard(actix_web::guard::fn_guard(|ctx| ctx.head().headers().contains_key(AUTHORIZATION)))
                .post(subscribe)
                .options(preflight)
                .done(),
        )
        .service(
            endpoint("/subscriptions")
                .post(subscribe)
                .options(preflight)
                .done()
                .wrap(Condition::new(limits.signup_on, Governor::new(&limits.signup))),
        )
        .service(endpoint("/subscriptions/form-token").get(form_token).done())
        // Showing the confirmation page is not rate limited; confirming is.
        .service(endpoint("/subscriptions/confirm").guard(super::endpoint::reading()).get(confirm_page).done())
        .service(
            endpoint("/subscriptions/confirm")
                .get(confirm_page)
                .post(confirm)
                .done()
                .wrap(Condition::new(limits.confirm_on, Governor::new(&limits.confirm))),
        )
        .service(endpoint("/health").get(health).done());
}

async fn privacy(state: web::Data<AppState>) -> HttpResponse {
    state.pages.privacy(state.settings.confirm_token_ttl_hours)
}

/// `GET /embed?lists=a,b`: the signup form as a snippet to paste into the
/// blog (see `embed`).
async fn embed(query: web::Query<EmbedQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut lists = Vec::new();
    for wanted in query.lists.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        lists.push(crate::author::known_list(&state.settings, "lists", wanted)?);
    }
    let chosen: Vec<&crate::config::ListSettings> = if lists.is_empty() {
        state.settings.lists.iter().collect()
    } else {
        state.settings.lists.iter().filter(|l| lists.contains(&l.slug)).collect()
    };
    let snippet = state.pages.embed(
        state.settings.base_url.as_str(),
        state.settings.site_url.as_ref().map_or("your blog", |u| u.as_str()),
        &chosen,
    )?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=300"))
        .body(snippet))
}

#[derive(Deserialize)]
struct EmbedQuery {
    lists: Option<String>,
}

async fn signup_form(state: web::Data<AppState>) -> HttpResponse {
    let form = SignupForm { form_token: abuse::form_token(&state.signer), ..SignupForm::default() };
    state.pages.signup(StatusCode::OK, &state.settings.lists, &form)
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct FormToken {
    /// Send it with one signup.
    form_token: String,
    /// Sign up no sooner than this many milliseconds after getting it.
    min_fill_ms: u64,
}

/// A fill-time token for forms we do not render (the blog's own copy) and
/// for JSON clients: sign up with it no sooner than `min_fill_ms` later.
#[utoipa::path(get, path = "/subscriptions/form-token", tag = "readers",
    responses((status = 200, description = "A token for one signup", body = FormToken)))]
pub(super) async fn form_token(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut answer = HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(FormToken { form_token: abuse::form_token(&state.signer), min_fill_ms: state.settings.form_min_fill_ms });
    cors(&req, &state, &mut answer);
    answer
}

/// CORS for the JSON API: only configured origins may call it from a browser.
fn cors(req: &HttpRequest, state: &AppState, answer: &mut HttpResponse) {
    let Some(origin) = req.headers().get(ORIGIN) else { return };
    if abuse::from_allowed_origin(req.headers(), &state.settings) {
        answer.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        answer.headers_mut().insert(VARY, HeaderValue::from_static("Origin"));
    }
}

async fn preflight(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if !abuse::from_allowed_origin(req.headers(), &state.settings) {
        return HttpResponse::Forbidden().json(ErrorBody::new("this origin may not call the signup API"));
    }
    let mut answer = HttpResponse::NoContent()
        .insert_header((ACCESS_CONTROL_ALLOW_METHODS, "POST"))
        .insert_header((ACCESS_CONTROL_ALLOW_HEADERS, "content-type"))
        .insert_header((ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish();
    cors(&req, &state, &mut answer);
    answer
}

/// A signup as it arrives, before any of it is trusted.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(super) struct RawSignup {
    #[schema(format = Email)]
    email: Option<String>,
    /// How the newsletters greet the reader (optional).
    name: Option<String>,
    /// The newsletters to subscribe to.
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::ListSlug>, min_items = 1)]
    lists: Vec<String>,
    /// The form's hidden honeypot field: people leave it empty, bots do not.
    /// Not in the document: a client that fills it is answered as a bot.
    #[serde(default)]
    #[schema(ignore)]
    website: Option<String>,
    /// When the form was served (see `abuse::form_token`); JSON clients get
    /// one from `GET /subscriptions/form-token`.
    #[serde(default)]
    form_token: Option<String>,
}

impl RawSignup {
    fn from_form(body: &[u8]) -> Self {
        let mut raw = Self::default();
        for (key, value) in body::form_pairs(body) {
            match key.as_str() {
                "email" => raw.email = Some(value),
                "name" => raw.name = Some(value),
                "lists" | "lists[]" => raw.lists.push(value),
                "website" => raw.website = Some(value),
                "form_token" => raw.form_token = Some(value),
                _ => {}
            }
        }
        raw
    }

    fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            let field = match e.classify() {
                serde_json::error::Category::Data => "lists",
                _ => "body",
            };
            ApiError::invalid(field, format!("the body is not the JSON expected: {e}"))
        })
    }
}

struct ValidSignup {
    email: EmailAddress,
    name: Option<SubscriberName>,
    lists: Vec<ListSlug>,
}

fn validate(raw: &RawSignup, state: &AppState) -> Result<ValidSignup, ApiError> {
    let email = EmailAddress::parse(raw.email.as_deref().unwrap_or("")).map_err(|e| ApiError::invalid("email", e))?;
    let name = SubscriberName::parse_optional(raw.name.as_deref()).map_err(|e| ApiError::invalid("name", e))?;
    if raw.lists.is_empty() {
        return Err(ApiError::invalid("lists", "choose at least one newsletter"));
    }
    let mut lists = Vec::new();
    for wanted in &raw.lists {
        let slug = crate::author::known_list(&state.settings, "lists", wanted)?;
        if !lists.contains(&slug) {
            lists.push(slug);
        }
    }
    Ok(ValidSignup { email, name, lists })
}

/// The answer to every accepted JSON signup, whatever the address's state.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SignupAccepted {
    /// Always `pending`: a confirmation link is on its way if the address
    /// can receive our newsletters.
    status: &'static str,
}

/// `POST /subscriptions`, from the form or as JSON. The answer is the same
/// whatever the address's state, so it tells nobody who subscribes.
#[utoipa::path(post, path = "/subscriptions", tag = "readers",
    security((), ("api_key" = [])),
    request_body(description = "The signup: JSON (an API client) or the form's fields", content(
        (RawSignup = "application/json"),
        (RawSignup = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 202, description = "Accepted (JSON): a confirmation link is on its way if the address can receive mail", body = SignupAccepted),
        (status = 200, description = "Accepted (form): the page that says to check the inbox, or asks for one more step", body = String, content_type = "text/html"),
        (status = 400, description = "A field is missing or wrong (named in `field`)", content(
            (ErrorBody = "application/json"),
            (String = "text/html"),
        )),
        (status = 401, description = "Authorization is not a live API key", body = ErrorBody),
        (status = 403, description = "Signups from this origin, or as JSON, are not accepted", content(
            (ErrorBody = "application/json"),
            (String = "text/html"),
        )),
    ))]
pub(super) async fn subscribe(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let arrived = tokio::time::Instant::now();
    let answer = signup(&req, payload, &state).await;
    // Every answer waits for the same floor, whatever the address's state
    // (new, pending, confirmed, blocked): only that keeps its timing from
    // telling who subscribes. The work of a signup is shorter than the
    // floor on a healthy database; under load, signups answer together at
    // their group's commit.
    tokio::time::sleep_until(arrived + state.settings.signup_answer_floor()).await;
    let mut answer = answer?;
    cors(&req, &state, &mut answer);
    Ok(answer)
}

/// 401 for a bearer that is not a live API key.
fn key_refused(why: &str) -> HttpResponse {
    HttpResponse::Unauthorized().insert_header(("WWW-Authenticate", "Bearer")).json(ErrorBody::on(
        "Authorization",
        format!("{why}: create one with `tidings api-keys create --name NAME`, or sign up without Authorization and with a form_token"),
    ))
}

/// Why a signup's form token did not pass.
enum TokenProblem {
    Check(&'static str),
    Used,
}

/// A signup without a usable form token: a form gets "one more step" (the
/// same choices, a fresh token, one button), a JSON client a 400 that says
/// how to get a token.
fn token_refused(state: &AppState, raw: &RawSignup, source: SignupSource, problem: TokenProblem) -> HttpResponse {
    match source {
        SignupSource::Form => {
            let form = SignupForm {
                email: raw.email.clone().unwrap_or_default(),
                name: raw.name.clone().unwrap_or_default(),
                checked: raw.lists.clone(),
                form_token: abuse::form_token(&state.signer),
                ..SignupForm::default()
            };
            state.pages.one_more_step(&state.settings.lists, &form)
        }
        SignupSource::Api => {
            let why = match problem {
                TokenProblem::Check(why) => why,
                TokenProblem::Used => "form_token was used by another signup already",
            };
            let message = format!(
                "{why}: get one from GET /subscriptions/form-token for each signup and send it no sooner than {} ms later",
                state.settings.form_min_fill_ms
            );
            HttpResponse::BadRequest().json(ErrorBody::on("form_token", message))
        }
    }
}

async fn signup(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<HttpResponse, ApiError> {
    if !abuse::origin_allowed(req.headers(), &state.settings) {
        if body::kind(req) == Kind::Form {
            return Ok(state.pages.message(
                StatusCode::FORBIDDEN,
                "Signups from that site are not accepted",
                &["The form you used is on a site this newsletter does not take signups from. Sign up on our own page instead."],
                Some(("/", "Go to the signup form")),
            ));
        }
        return Ok(HttpResponse::Forbidden().json(ErrorBody::new("signups from this site are not accepted")));
    }
    // A key is checked before the body is read: a wrong one costs nothing.
    let keyed = match api_keys::presented(req) {
        Presented::None => None,
        Presented::Malformed => return Ok(key_refused("Authorization is not an API key of this service")),
        Presented::Key(key) => match state.api_keys.check(&state.store, &key).await? {
            KeyCheck::Allowed { name } => Some(name),
            KeyCheck::Unknown => return Ok(key_refused("this API key is unknown or revoked")),
            KeyCheck::Limited(wait) => {
                let secs = wait.as_secs().max(1);
                return Ok(HttpResponse::TooManyRequests()
                    .insert_header(("Retry-After", secs.to_string()))
                    .json(ErrorBody::new(format!("this API key made too many signups; try again in {secs} seconds"))));
            }
        },
    };
    let kind = body::kind(req);
    let body = body::read(payload, state.settings.body_timeout()).await?;
    let (raw, source) = match kind {
        Kind::Json if state.settings.json_signups => (RawSignup::from_json(&body)?, SignupSource::Api),
        Kind::Json => {
            return Ok(HttpResponse::Forbidden().json(ErrorBody::new("this service takes signups from its form only")));
        }
        Kind::Form => (RawSignup::from_form(&body), SignupSource::Form),
        Kind::Other => return Err(ApiError::UnsupportedMediaType),
    };
    let accepted = || {
        match source {
        SignupSource::Api => HttpResponse::Accepted().json(SignupAccepted { status: "pending" }),
        SignupSource::Form => state.pages.message(
            StatusCode::OK,
            "Check your inbox",
            &[
                "If the address can receive our newsletters, an email is on its way with a link to confirm your subscription.",
                "Nothing will be sent to you until you confirm. If nothing arrives within a few minutes, look in your spam folder.",
            ],
            state.settings.site_url.as_ref().map(|u| (u.as_str(), "Back to the blog")),
        ),
    }
    };
    // Bots get the answer people get, so they cannot learn what stopped them.
    if raw.website.as_deref().is_some_and(|w| !w.is_empty()) {
        tracing::info!("honeypot filled: signup dropped");
        return Ok(accepted());
    }
    let valid = match (validate(&raw, state), source) {
        (Ok(valid), _) => valid,
        (Err(ApiError::Invalid { field, message }), SignupSource::Form) => {
            let form = SignupForm {
                email: raw.email.clone().unwrap_or_default(),
                name: raw.name.clone().unwrap_or_default(),
                checked: raw.lists.clone(),
                error: Some(message),
                error_email: field == "email",
                // The token is not spent by a refusal: the reader keeps it.
                form_token: raw
                    .form_token
                    .clone()
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| abuse::form_token(&state.signer)),
            };
            return Ok(state.pages.signup(StatusCode::BAD_REQUEST, &state.settings.lists, &form));
        }
        (Err(e), _) => return Err(e),
    };
    // Every way in is held to the fill time, or bots would post JSON, or
    // claim the blog's origin, to skip it.
    let fill = match &keyed {
        Some(_) => FillCheck::Off,
        None => abuse::fill_check(&state.signer, raw.form_token.as_deref(), state.settings.form_min_fill_ms),
    };
    let form_nonce = match fill {
        FillCheck::Off => None,
        FillCheck::Person { nonce } => Some(nonce),
        FillCheck::Failed(why) => {
            tracing::info!(source = source.as_str(), why, "signup without a usable form token: asked again");
            return Ok(token_refused(state, &raw, source, TokenProblem::Check(why)));
        }
    };
    let redacted = valid.email.redacted();
    let slugs: Vec<String> = valid.lists.iter().map(|l| l.as_str().to_owned()).collect();
    if abuse::blocked(&valid.email, &state.settings) {
        tracing::info!(email = %redacted, "blocked domain: signup dropped");
        return Ok(accepted());
    }
    let outcome = state
        .store
        .signup(SignupRequest {
            email: valid.email,
            name: valid.name,
            lists: valid.lists,
            evidence: evidence(req, state, source.as_str()),
            token_ttl: state.settings.confirm_token_ttl(),
            confirmations_per_day: state.settings.confirmations_per_day,
            form_nonce,
        })
        .await?;
    tracing::info!(email = %redacted, ?outcome, key = keyed.as_deref(), "signup");
    if outcome == SignupOutcome::FormTokenUsed {
        return Ok(token_refused(state, &raw, source, TokenProblem::Used));
    }
    slugs.iter().for_each(|slug| meters::signup(slug));
    state.outbox_wake.notify_one();
    Ok(accepted())
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn invalid_link(state: &AppState, status: StatusCode, title: &str, why: &str) -> HttpResponse {
    state.pages.message(
        status,
        title,
        &[why, "You can sign up again: it only takes a moment."],
        Some(("/", "Sign up again")),
    )
}

/// `GET /subscriptions/confirm`: only shows a button. Mail scanners prefetch
/// links, so a GET must never confirm anything.
async fn confirm_page(query: web::Query<TokenQuery>, state: web::Data<AppState>) -> HttpResponse {
    let token = query.token.as_deref().unwrap_or("");
    match state.signer.verify(TokenKind::Confirm, token) {
        Ok(_) => state.pages.confirm(token.trim()),
        Err(e) => invalid_link(&state, StatusCode::BAD_REQUEST, "This confirmation link does not work", &e.to_string()),
    }
}

/// `POST /subscriptions/confirm` with form field `token`.
async fn confirm(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read(payload, state.settings.body_timeout()).await?;
    let token = body::form_pairs(&body).into_iter().find(|(k, _)| k == "token").map(|(_, v)| v).unwrap_or_default();
    let id = match state.signer.verify(TokenKind::Confirm, &token) {
        Ok(id) => id,
        Err(e) => {
            return Ok(invalid_link(
                &state,
                StatusCode::BAD_REQUEST,
                "This confirmation link does not work",
                &e.to_string(),
            ));
        }
    };
    let outcome = state.store.confirm(id, evidence(&req, &state, "link"), state.settings.welcome_lists()).await?;
    tracing::info!(token = %redact_token(&token), outcome = ?std::mem::discriminant(&outcome), "confirmation");
    if let ConfirmOutcome::Confirmed { lists } = &outcome {
        lists.iter().for_each(|name| meters::confirmed(state.settings.slug_of(name)));
        // A welcome email may be queued.
        state.outbox_wake.notify_one();
    }
    Ok(match outcome {
        ConfirmOutcome::AlreadyConfirmed { lists, left } if !left.is_empty() => {
            let left = format!("This link was used before, and you have since left {}.", left.join(" and "));
            let still = format!("You still receive {}.", lists.join(" and "));
            let mut lines = vec![left.as_str()];
            if !lists.is_empty() {
                lines.push(&still);
            }
            lines.push("To get them again, sign up again.");
            state.pages.message(StatusCode::OK, "This link was used before", &lines, Some(("/", "Sign up again")))
        }
        ConfirmOutcome::Confirmed { lists } | ConfirmOutcome::AlreadyConfirmed { lists, .. } => {
            let joined = lists.join(" and ");
            state.pages.message(
                StatusCode::OK,
                "You are subscribed",
                &[
                    &format!("Thank you! You will receive {joined} at this address."),
                    "Every email has a link to unsubscribe whenever you like.",
                ],
                state.settings.site_url.as_ref().map(|u| (u.as_str(), "Back to the blog")),
            )
        }
        ConfirmOutcome::Expired => invalid_link(
            &state,
            StatusCode::GONE,
            "This confirmation link has expired",
            "Confirmation links work for a limited time, and this one is too old.",
        ),
        ConfirmOutcome::Unknown => invalid_link(
            &state,
            StatusCode::NOT_FOUND,
            "This confirmation link is not known",
            "We could not find the signup this link belongs to.",
        ),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    /// `ok`, or `unavailable` when the database does not answer.
    status: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
}

/// Whether the service and its database answer (for load balancers and
/// uptime monitors; `HEAD` works too).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    ))]
pub(super) async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(Health { status: "ok", database: state.store.backend_name() }),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "5"))
                .json(Health { status: "unavailable", database: state.store.backend_name() })
        }
    }
}
