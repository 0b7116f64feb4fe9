//! `GET /openapi.json`: the OpenAPI 3.1 document of every JSON route,
//! generated from the handlers' own annotations and the types they answer
//! with, so it cannot drift from the code. The answers every route can give
//! (a refused token, a body too large, too many requests, a database that is
//! briefly away) are added here once instead of on each handler.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::endpoint::endpoint;
use super::error::ErrorBody;
use super::{admin, metrics, preferences, public, readers, suppressions, webhooks};
use crate::config::Settings;
use crate::domain::ListSlug;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/openapi.json").get(document).done());
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tidings", description = "Newsletter signups with double opt-in, digests, and their delivery."),
    paths(
        public::subscribe,
        public::form_token,
        public::health,
        preferences::export,
        admin::lists,
        admin::add_post,
        admin::posts,
        admin::pull,
        admin::trigger,
        admin::digests,
        admin::preview,
        admin::digest,
        admin::pause,
        admin::resume,
        admin::cancel,
        suppressions::list,
        suppressions::add,
        suppressions::remove,
        readers::import_csv,
        readers::export_csv,
        readers::erase,
        webhooks::bounces,
        metrics::guarded,
    ),
    components(schemas(ErrorBody, ListSlug, readers::ExportStatus)),
    modifiers(&SecuritySchemes, &EveryRouteAnswers),
    tags(
        (name = "readers", description = "Signing up, and a reader's own data"),
        (name = "admin", description = "The author's API, behind `TIDINGS_ADMIN_TOKEN`"),
        (name = "webhooks", description = "Bounce and complaint events from a mail provider"),
        (name = "operations", description = "Health and metrics"),
    ),
)]
struct ApiDoc;

/// The document as this instance serves it: the code's, with the
/// configured lists named where a list's slug goes. Built once at start.
pub fn document_json(settings: &Settings) -> Result<String, serde_json::Error> {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let slugs: Vec<&str> = settings.lists.iter().map(|l| l.slug.as_str()).collect();
    let lists = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(slugs))
        .description(Some("A list's slug: one of the lists this instance serves"));
    doc.components.get_or_insert_with(Default::default).schemas.insert("ListSlug".to_owned(), lists.into());
    let mut json = serde_json::to_value(&doc)?;
    spell_links_as_openapi_does(&mut json);
    serde_json::to_string_pretty(&json)
}

/// utoipa 5.5 writes a link's fields in snake case (`operation_id`); the
/// specification spells them `operationId`, `operationRef`, `requestBody`,
/// and schemathesis' stateful phase reads only those.
fn spell_links_as_openapi_does(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links").and_then(|l| l.as_object_mut()))
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (snake, camel) in
            [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
        {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}

async fn document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((CACHE_CONTROL, "public, max-age=300"))
        .body(state.openapi.clone())
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(what.to_owned());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme("admin_token", bearer("`Authorization: Bearer TIDINGS_ADMIN_TOKEN`"));
        components.add_security_scheme(
            "api_key",
            bearer("An API key from `tidings api-keys create` (`tk_…`): signups without a form token"),
        );
        components
            .add_security_scheme("webhook_secret", bearer("`Authorization: Bearer TIDINGS_BOUNCE_WEBHOOK_SECRET`"));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some("Any user name, `TIDINGS_BOUNCE_WEBHOOK_SECRET` as the password".to_owned());
        components.add_security_scheme("webhook_basic", SecurityScheme::Http(basic));
    }
}

/// The answers that do not depend on the route: refusals by the middleware
/// every request passes, and the body limits every body is read under.
struct EveryRouteAnswers;

impl Modify for EveryRouteAnswers {
    fn modify(&self, doc: &mut Document) {
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
            ];
            for operation in operations.into_iter().flatten() {
                let has_body = operation.request_body.is_some();
                let secured =
                    operation.security.as_ref().is_some_and(|s| s.iter().any(|r| *r != SecurityRequirement::default()));
                let answers = &mut operation.responses.responses;
                let mut add = |status: &str, what: &str| {
                    answers.entry(status.to_owned()).or_insert_with(|| refusal(what));
                };
                add("429", "Too many requests or connections from this address; `Retry-After` says when to try again");
                add("503", "The database is briefly unavailable; `Retry-After` says when to try again");
                if secured {
                    add("401", "Missing or wrong credentials");
                }
                if has_body {
                    add("408", "The body did not arrive in time; send it in one go");
                    add("413", "The body is too large");
                    add("415", "The body's content type is not one this route takes");
                }
            }
        }
    }
}

fn refusal(what: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody")))),
            )
            .build(),
    )
}
