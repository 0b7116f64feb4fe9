//! The author's dashboard: pages under `/admin` for a signed-in author (a
//! session cookie, never the API's bearer token). The JSON API under
//! `/admin/...` stays behind the token; these routes are registered first.

mod chart;
mod login;
mod overview;
mod session;

use actix_governor::Governor;
use actix_web::middleware::Condition;
use actix_web::web;

pub use session::LoginThrottle;

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
        .service(endpoint("/admin/logout").post(login::logout).done());
}
