//! Operations: liveness, readiness, Prometheus metrics, cluster view, and the OpenAPI
//! document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "process up")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    if state.store.catalog_group().leader().is_some() {
        Ok("ready\n")
    } else {
        Err(ApiError::from(cluster::Error::unavailable("the catalog group has no leader")))
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // fsyncs of the node's database so far: with group commit, fewer than committed writes.
    metrics::gauge!("boxoffice_raft_flushes").set(state.store.host().flush_count() as f64);
    let body = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[derive(Serialize, ToSchema)]
pub struct NodeOut {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    /// `up` or `down` as this node sees it.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct GroupOut {
    pub id: String,
    pub members: Vec<u64>,
    pub leader: Option<u64>,
    pub last_log_index: u64,
    pub applied_index: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterOut {
    pub node_id: u64,
    pub nodes: Vec<NodeOut>,
    pub groups: Vec<GroupOut>,
}

#[utoipa::path(get, path = "/v1/cluster", tag = "operations", responses((status = 200, body = ClusterOut)))]
pub async fn cluster(State(state): State<AppState>) -> Json<ClusterOut> {
    let store = &state.store;
    let catalog = store.catalog_group();
    let nodes = catalog
        .members()
        .into_iter()
        .map(|(id, addr)| NodeOut {
            id,
            raft_addr: addr.raft_addr,
            http_addr: addr.http_addr,
            status: if id == store.node_id() || catalog.leader().is_some() { "up" } else { "down" }.into(),
        })
        .collect();
    let mut gids = store.host().stored_groups();
    gids.sort();
    let groups = gids
        .iter()
        .filter_map(|gid| store.host().group(gid))
        .map(|g| GroupOut {
            id: g.id().to_string(),
            members: g.members().into_keys().collect(),
            leader: g.leader(),
            last_log_index: g.last_log_index(),
            applied_index: g.applied_index(),
        })
        .collect();
    Json(ClusterOut { node_id: store.node_id(), nodes, groups })
}

pub async fn openapi() -> Response {
    let doc = crate::openapi::ApiDoc::openapi();
    (StatusCode::OK, Json(doc)).into_response()
}
