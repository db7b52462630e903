//! # api — the boxoffice HTTP/JSON API
//!
//! Owns the HTTP contract of docs/api.md: routes, JWT auth and roles, problem+json errors with
//! stable codes, `Idempotency-Key` fingerprinting, body and page limits, ETag and
//! Cache-Control on browse answers, Prometheus metrics and the OpenAPI document at
//! `/openapi.json`. It decides nothing itself: every rule is in `tickets`, applied by the
//! groups that `cluster::Store` runs.
//!
//! [`router`] is a plain function (tested with `oneshot`, no socket); [`serve`] takes a
//! listener and a shutdown future ([`serve_tls`]: the same over HTTPS). Modules: [`routes`]
//! (one file per endpoint group), [`dto`] (JSON shapes), [`error`], [`auth`], [`body`],
//! [`openapi`], [`state`], [`conn`] (hyper's own parse-error answers rewritten as
//! problem+json), [`metrics_catalog`] (every metric with its `# HELP`, and the recorder),
//! [`seat_cache`] (the seat map's bodies, built once per version, raw and gzipped), [`web`]
//! (the browser pages and their embedded assets), [`tls`] (HTTPS on the public listener).
//!
//! Must not depend on `raft` or `sled` directly.

pub mod auth;
pub mod body;
pub mod conn;
pub mod dto;
pub mod error;
pub mod metrics_catalog;
pub mod openapi;
pub mod routes;
pub mod seat_cache;
pub mod state;
pub mod streams;
pub mod tls;
pub mod web;

use std::future::Future;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

pub use auth::AuthKeys;
pub use state::AppState;
pub use tls::serve_tls;
pub use tls::HttpTls;

use crate::error::ApiError;
use crate::routes::{booking, browse, catalog, dev, live, ops, search, seats, waitlist, webhooks};

/// The whole API, and the web pages that use it, as a router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/venues", post(catalog::create_venue).get(catalog::list_venues))
        .route("/v1/venues/{id}", get(catalog::get_venue).put(catalog::update_venue))
        .route("/v1/performers", post(catalog::create_performer).get(catalog::list_performers))
        .route("/v1/performers/{id}", get(catalog::get_performer).put(catalog::update_performer))
        .route("/v1/events", post(catalog::create_event).get(catalog::list_events))
        .route("/v1/events/{id}", get(browse::event_page).patch(catalog::update_event))
        .route("/v1/events/{id}/cancel", post(catalog::cancel_event))
        .route("/v1/events/{id}/tickets", get(browse::tickets))
        .route("/v1/events/{id}/layout", get(seats::layout))
        .route("/v1/events/{id}/seats", get(seats::seats))
        .route("/v1/events/{id}/tickets/stream", get(live::ticket_stream))
        .route("/v1/events/{id}/queue", post(live::queue_join))
        .route("/v1/events/{id}/queue/me", get(live::queue_me).delete(live::queue_leave))
        .route("/v1/events/{id}/queue/me/stream", get(live::queue_stream))
        .route("/v1/events/{id}/waitlist", post(waitlist::waitlist_join))
        .route("/v1/events/{id}/waitlist/me", get(waitlist::waitlist_me).delete(waitlist::waitlist_leave))
        .route("/v1/events/{id}/waitlist/me/stream", get(waitlist::waitlist_stream))
        .route("/v1/webhooks", post(webhooks::create_webhook).get(webhooks::list_webhooks))
        .route("/v1/webhooks/{id}", delete(webhooks::delete_webhook))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", post(webhooks::redeliver))
        .route("/v1/search", get(search::search))
        .route("/v1/booking/reserve", post(booking::reserve))
        .route("/v1/booking/confirm", post(booking::confirm))
        .route("/v1/booking/release", post(booking::release))
        .route("/v1/holds/{hold_id}", get(booking::get_hold))
        .route("/v1/holds/{hold_id}/extend", post(booking::extend))
        .route("/v1/bookings/{booking_id}", get(booking::get_booking))
        .route("/v1/bookings/{booking_id}/cancel", post(booking::cancel_booking))
        .route("/v1/me/bookings", get(booking::my_bookings))
        .route("/v1/dev/token", post(dev::token))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/cluster", get(ops::cluster))
        .route("/v1/cluster/nodes", post(ops::add_node))
        .route("/v1/cluster/nodes/{id}", axum::routing::delete(ops::remove_node))
        .route("/openapi.json", get(ops::openapi))
        .merge(web::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(body::BODY_BYTES_MAX))
        .layer(middleware::from_fn_with_state(state.clone(), out_of_service))
        .layer(middleware::from_fn(track))
        .with_state(state)
}

/// A node that must not serve (removed from the cluster, its data is not what the cluster
/// registered, or its storage failed) answers 503 `unavailable` with the reason to everything but the operations routes, instead of
/// serving from state that no longer counts.
async fn out_of_service(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let operations = matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
        || path.starts_with("/v1/cluster");
    if !operations && !state.store.serving() {
        if let Some(reason) = state.store.out_of_service() {
            return ApiError::from(cluster::Error::Refused(reason)).into_response();
        }
    }
    next.run(req).await
}

/// Counts and times every request by route and status.
async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("boxoffice_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("boxoffice_http_request_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Serve the API on `listener` until `shutdown` resolves; in-flight requests finish.
/// Hyper's own answers to requests it cannot parse (400, 414, 431) go out as problem+json
/// like every other error ([`conn`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` (doing nothing) keeps `ConnectInfo<SocketAddr>` available through the wrapper.
    let listener = conn::ProblemListener(listener).tap_io(|_| {});
    axum::serve(listener, router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
