//! Catalog (admin): venues, performers, events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::auth::Admin;
use crate::body::JsonBody;
use crate::dto::{EventCreate, EventOut, EventUpdate, PerformerCreate, PerformerOut, VenueCreate, VenueOut};
use crate::error::{ApiResult, Problem};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/venues", tag = "catalog", request_body = VenueCreate,
    security(("bearer" = [])),
    responses((status = 201, body = VenueOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn create_venue(
    State(state): State<AppState>,
    _admin: Admin,
    body: JsonBody<VenueCreate>,
) -> ApiResult<(StatusCode, Json<VenueOut>)> {
    let spec = body.value.into_spec()?;
    let venue = state.store.create_venue(spec).await?;
    Ok((StatusCode::CREATED, Json(VenueOut::from(&venue))))
}

#[utoipa::path(get, path = "/v1/venues/{id}", tag = "catalog",
    responses((status = 200, body = VenueOut), (status = 404, body = Problem)))]
pub async fn get_venue(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<VenueOut>> {
    Ok(Json(VenueOut::from(&state.store.venue(&id)?)))
}

#[utoipa::path(post, path = "/v1/performers", tag = "catalog", request_body = PerformerCreate,
    security(("bearer" = [])),
    responses((status = 201, body = PerformerOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn create_performer(
    State(state): State<AppState>,
    _admin: Admin,
    body: JsonBody<PerformerCreate>,
) -> ApiResult<(StatusCode, Json<PerformerOut>)> {
    let performer = state.store.create_performer(body.value.into_spec()).await?;
    Ok((StatusCode::CREATED, Json(PerformerOut::from(&performer))))
}

#[utoipa::path(get, path = "/v1/performers/{id}", tag = "catalog",
    responses((status = 200, body = PerformerOut), (status = 404, body = Problem)))]
pub async fn get_performer(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PerformerOut>> {
    Ok(Json(PerformerOut::from(&state.store.performer(&id)?)))
}

#[utoipa::path(post, path = "/v1/events", tag = "catalog", request_body = EventCreate,
    security(("bearer" = [])),
    responses((status = 201, body = EventOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn create_event(
    State(state): State<AppState>,
    _admin: Admin,
    body: JsonBody<EventCreate>,
) -> ApiResult<(StatusCode, Json<EventOut>)> {
    let spec = body.value.into_spec(cluster::store::wall_ms())?;
    let event = state.store.create_event(spec).await?;
    Ok((StatusCode::CREATED, Json(EventOut::from(&event))))
}

#[utoipa::path(patch, path = "/v1/events/{id}", tag = "catalog", request_body = EventUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = EventOut), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn update_event(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    body: JsonBody<EventUpdate>,
) -> ApiResult<Json<EventOut>> {
    let event = state.store.update_event(&id, body.value.into_patch()?).await?;
    Ok(Json(EventOut::from(&event)))
}

#[utoipa::path(post, path = "/v1/events/{id}/cancel", tag = "catalog",
    security(("bearer" = [])),
    responses((status = 200, body = EventOut), (status = 404, body = Problem)))]
pub async fn cancel_event(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<EventOut>> {
    let event = state.store.cancel_event(&id).await?;
    Ok(Json(EventOut::from(&event)))
}
