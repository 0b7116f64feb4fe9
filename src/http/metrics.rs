//! `GET /metrics` in Prometheus text format: behind the admin token on the
//! main address, or without it on `TIDINGS_METRICS_LISTEN` (an address of
//! its own, for a scraper on a private network).

use std::net::TcpListener;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use super::endpoint::endpoint;
use super::error::ApiError;
use super::{AppState, admin, get};
use crate::store::Store;
use crate::telemetry::meters;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/metrics").get(guarded).done());
}

/// A server answering only `GET /metrics`, without the admin token, for
/// `TIDINGS_METRICS_LISTEN` (in `serve` and in `worker` alike).
pub fn server(listener: TcpListener, store: Store) -> std::io::Result<actix_web::dev::Server> {
    let store = web::Data::new(store);
    Ok(HttpServer::new(move || App::new().app_data(store.clone()).route("/metrics", get().to(open)))
        .workers(1)
        .listen(listener)?
        .run())
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("admin_token" = [])),
    responses((status = 200, description = "Every meter", body = String, content_type = "text/plain")))]
pub(super) async fn guarded(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    admin::authorize(req.headers(), &state.settings)?;
    scrape(&state.store).await
}

async fn open(store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    scrape(&store).await
}

/// Reads the queue depths and the pool's state as of now, then renders.
async fn scrape(store: &Store) -> Result<HttpResponse, ApiError> {
    let (outbox, deliveries) = (store.outbox_pending().await?, store.deliveries_pending().await?);
    meters::queues(outbox, deliveries);
    let pool = store.pool_state();
    meters::pool(pool.in_use, pool.idle, pool.waiting);
    let text = meters::render().ok_or(ApiError::Internal)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text))
}
