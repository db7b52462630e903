//! Operations: liveness, readiness, Prometheus metrics, cluster view, and the OpenAPI
//! document.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::auth::Admin;
use crate::body::{ApiPath, JsonBody};
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "process up", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready", body = String, content_type = "text/plain"), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    let (live, members) = state.store.reachable();
    if let Some(reason) = state.store.out_of_service() {
        Err(ApiError::from(cluster::Error::Refused(reason)))
    } else if state.store.is_ready() && live * 2 <= members {
        // No group can commit a write with this node's help alone: its events are not served
        // from here within any bound (reads of a group led here would be stale).
        Err(ApiError::from(cluster::Error::unavailable(format!(
            "this node reaches {live} of the cluster's {members} nodes: no majority"
        ))))
    } else if state.store.is_ready() {
        Ok("ready\n")
    } else {
        Err(ApiError::from(cluster::Error::unavailable("not part of a formed cluster yet")))
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    crate::metrics_catalog::record_scrape(&state.store);
    let body = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[derive(Serialize, ToSchema)]
pub struct NodeOut {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    /// `up`, `down`, `dead` (down longer than the dead time: its replicas were moved) or
    /// `removed`, as this node sees it (one liveness ping per node pair, and the catalog).
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct GroupOut {
    pub id: String,
    /// Voters and learners.
    pub members: Vec<u64>,
    /// Voters only (while `membership_changing`, the old and the new voters together).
    pub voters: Vec<u64>,
    /// A membership change (joint consensus) is in flight in this node's view.
    pub membership_changing: bool,
    pub leader: Option<u64>,
    pub last_log_index: u64,
    pub applied_index: u64,
    /// `awake` (its leader heartbeats, its followers time elections) or `asleep` (idle: no
    /// heartbeat, no timer; any request wakes it).
    pub state: String,
    /// Whether its Raft instance is in memory here (a group asleep for a while leaves memory
    /// and is loaded again on demand; its members and indexes are then as of that moment).
    pub in_memory: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterOut {
    pub node_id: u64,
    pub nodes: Vec<NodeOut>,
    /// Groups stored on this node: the catalog and the events placed here, in memory or not.
    pub groups: Vec<GroupOut>,
    /// Every event's replicas, as the catalog records them.
    pub placement: BTreeMap<String, Vec<u64>>,
    /// Events with fewer than three replicas up, as this node sees them (fewer placed, or
    /// placed on nodes that are down or removed).
    pub under_replicated: Vec<String>,
}

#[utoipa::path(get, path = "/v1/cluster", tag = "operations", responses((status = 200, body = ClusterOut)))]
pub async fn cluster(State(state): State<AppState>) -> Json<ClusterOut> {
    let view = state.store.cluster_view();
    Json(ClusterOut {
        node_id: view.node_id,
        nodes: view
            .nodes
            .into_iter()
            .map(|n| NodeOut {
                id: n.info.id,
                raft_addr: n.info.raft_addr,
                http_addr: n.info.http_addr,
                status: n.status.to_string(),
            })
            .collect(),
        groups: view
            .groups
            .into_iter()
            .map(|g| GroupOut {
                id: g.id,
                members: g.members,
                voters: g.voters,
                membership_changing: g.changing,
                leader: g.leader,
                last_log_index: g.last_log_index,
                applied_index: g.applied_index,
                state: g.state.to_string(),
                in_memory: g.in_memory,
            })
            .collect(),
        placement: view.placement.into_iter().map(|(id, nodes)| (id.into_string(), nodes)).collect(),
        under_replicated: view.under_replicated.into_iter().map(tickets::EventId::into_string).collect(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAdd {
    /// The new node's id; absent: the cluster picks a fresh one (answered in `id`).
    #[serde(default)]
    pub id: Option<u64>,
    pub raft_addr: String,
    pub http_addr: String,
    /// The joining process's store id (16 hex digits; `serve --join` sends it). Absent when an
    /// operator adds a node by hand: the node's own process records it when it starts.
    #[serde(default)]
    pub store_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/cluster/nodes", tag = "operations", request_body = NodeAdd, security(("bearer" = [])),
    responses((status = 201, body = NodeOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
pub async fn add_node(
    State(state): State<AppState>,
    _admin: Admin,
    body: JsonBody<NodeAdd>,
) -> ApiResult<(StatusCode, Json<NodeOut>)> {
    let NodeAdd { id, raft_addr, http_addr, store_id } = body.value;
    if id == Some(0) {
        return Err(ApiError::invalid("id", "node ids start at 1"));
    }
    let store_id = match store_id {
        None => 0,
        Some(hex) => match u64::from_str_radix(&hex, 16) {
            Ok(s) if s != 0 && hex.len() <= 16 => s,
            _ => return Err(ApiError::invalid("store_id", "must be 1 to 16 hex digits, not all zero")),
        },
    };
    let node = state.store.add_node(id.unwrap_or(0), raft_addr, http_addr, store_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(NodeOut {
            id: node.id,
            raft_addr: node.raft_addr,
            http_addr: node.http_addr,
            status: "up".into(),
        }),
    ))
}

#[utoipa::path(delete, path = "/v1/cluster/nodes/{id}", tag = "operations", security(("bearer" = [])),
    params(("id" = u64, Path, description = "the node's id")),
    responses((status = 202, body = NodeOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn remove_node(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<u64>,
) -> ApiResult<(StatusCode, Json<NodeOut>)> {
    let node = state.store.remove_node(id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(NodeOut {
            id: node.id,
            raft_addr: node.raft_addr,
            http_addr: node.http_addr,
            status: "removed".into(),
        }),
    ))
}

pub async fn openapi() -> Response {
    let doc = crate::openapi::ApiDoc::openapi();
    (StatusCode::OK, Json(doc)).into_response()
}
