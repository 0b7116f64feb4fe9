//! One address and the methods it takes. Any other method gets 405 with
//! `Allow` naming the ones it has (RFC 9110 §15.5.6), not the 404 of an
//! address that does not exist.

use actix_web::http::header::ALLOW;
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, web};

use super::error::ErrorBody;

pub struct Endpoint {
    resource: Resource,
    allow: Vec<&'static str>,
}

/// The routes of `path`: `endpoint("/x").get(page).post(change).done()`.
pub fn endpoint(path: &str) -> Endpoint {
    Endpoint { resource: web::resource(path), allow: Vec::new() }
}

impl Endpoint {
    /// `GET`, and `HEAD` with the same headers (uptime monitors ask with
    /// `HEAD`).
    pub fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.with(super::get().to(handler), &["GET", "HEAD"])
    }

    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.with(web::post().to(handler), &["POST"])
    }

    pub fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.with(web::delete().to(handler), &["DELETE"])
    }

    pub fn options<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.with(web::route().method(actix_web::http::Method::OPTIONS).to(handler), &["OPTIONS"])
    }

    /// Only requests that pass `guard` reach this address's routes (and its
    /// 405); the others go on to the next registration of the same path.
    pub fn guard(mut self, guard: impl actix_web::guard::Guard + 'static) -> Self {
        self.resource = self.resource.guard(guard);
        self
    }

    fn with(mut self, route: actix_web::Route, methods: &[&'static str]) -> Self {
        self.resource = self.resource.route(route);
        self.allow.extend_from_slice(methods);
        self
    }

    pub fn done(self) -> Resource {
        let allow = self.allow.join(", ");
        self.resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move {
                HttpResponse::MethodNotAllowed()
                    .insert_header((ALLOW, allow.as_str()))
                    .json(ErrorBody::new(format!("this address takes {allow} only")))
            }
        }))
    }
}

/// `GET` or `HEAD`: to split an address whose reading is free from its
/// writing, which is rate limited.
pub fn reading() -> impl actix_web::guard::Guard {
    actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head())
}
