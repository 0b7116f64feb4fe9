//! The author's dashboard: pages under `/admin` for a signed-in author (a
//! session cookie, never the API's bearer token). The JSON API under
//! `/admin/...` stays behind the token; these routes are registered first.

mod chart;
mod digests;
mod login;
mod overview;
mod posts;
mod readers;
mod session;
mod suppressions;

use actix_governor::Governor;
use actix_web::http::header::CACHE_CONTROL;
use actix_web::middleware::Condition;
use actix_web::{HttpResponse, web};

pub use session::LoginThrottle;
use session::SignedIn;

use super::abuse::Limits;
use super::endpoint::{endpoint, reading};

pub fn routes(cfg: &mut web::ServiceConfig, limits: &Limits) {
    cfg.service(endpoint("/admin").get(overview::page).done())
        // Showing the form is free; each sign-in attempt counts per IP.
        .service(endpoint("/admin/login").guard(reading()).get(login::page).done())
        .service(
            endpoint("/admin/login")
                .get(login::page)
                .post(login::submit)
                .done()
                .wrap(Condition::new(true, Governor::new(&limits.login))),
        )
        .service(endpoint("/admin/logout").post(login::logout).done())
        .service(endpoint("/admin/ui/posts").get(posts::page).post(posts::add).done())
        .service(endpoint("/admin/ui/posts/pull").post(posts::pull).done())
        .service(endpoint("/admin/ui/digests").get(digests::index).done())
        .service(endpoint("/admin/ui/digests/send").get(digests::confirm).post(digests::send).done())
        .service(endpoint("/admin/ui/digests/preview").get(digests::preview).done())
        .service(endpoint("/admin/ui/digests/test").post(digests::test_send).done())
        .service(endpoint("/admin/ui/digests/{id}").get(digests::show).done())
        .service(endpoint("/admin/ui/digests/{id}/progress").get(digests::progress_json).done())
        .service(endpoint("/admin/ui/digests/{id}/{action}").post(digests::control).done())
        .service(endpoint("/admin/ui/readers").get(readers::index).done())
        .service(endpoint("/admin/ui/readers/export.csv").get(export).done())
        .service(endpoint("/admin/ui/readers/import").post(readers::import).done())
        .service(endpoint("/admin/ui/readers/{id}").get(readers::show).done())
        .service(endpoint("/admin/ui/readers/{id}/{action}").post(readers::act).done())
        .service(endpoint("/admin/ui/suppressions").get(suppressions::index).done())
        .service(endpoint("/admin/ui/suppressions/lift").post(suppressions::lift).done())
        .service(endpoint("/admin/ui/dashboard.js").get(script).done());
}

/// `GET /admin/ui/readers/export.csv[?list=&status=]`: the API's export,
/// for a signed-in author.
async fn export(
    _author: SignedIn,
    query: web::Query<super::readers::ExportQuery>,
    state: web::Data<super::AppState>,
) -> Result<HttpResponse, super::ApiError> {
    super::readers::export_download(&query, &state)
}

/// The dashboard's one script (progressive enhancement of the progress page).
async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(include_str!("../pages/dashboard/dashboard.js"))
}
