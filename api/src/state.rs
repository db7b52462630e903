//! What every handler shares.

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::AuthKeys;

#[derive(Clone)]
pub struct AppState {
    pub store: cluster::Store,
    pub auth: AuthKeys,
    /// Renders `/metrics`; `None` when no recorder is installed (e.g. in some tests).
    pub metrics: Option<PrometheusHandle>,
    /// Bounds on open SSE streams.
    pub streams: std::sync::Arc<crate::streams::StreamLimits>,
    /// `serve --dev-login`: `POST /v1/dev/token` mints tokens (404 when false).
    pub dev_login: bool,
    /// The seat map's bodies, built once per version (`seat_cache`).
    pub seat_caches: std::sync::Arc<crate::seat_cache::SeatCaches>,
}
