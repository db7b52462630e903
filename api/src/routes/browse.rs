//! Browse (no token): the event page and the seat map, served from the local replica with
//! their version, an ETag and Cache-Control so a CDN can cache them. The seat map also
//! long-polls: `?since=<version>&wait=<seconds ≤ 60>` answers once the version passes `since`.
//! The seat map's body is built once per version and gzipped when asked (`routes::seats`).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::body::ApiPath;
use crate::dto::{AvailabilityOut, EventOut, EventPageOut, PerformerOut, TicketsOut, VenueOut};
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// Longest long-poll wait, in seconds; more is `invalid_request`.
pub const LONG_POLL_SECONDS_MAX: u64 = 60;
/// How long a CDN or browser may reuse a browse answer.
pub const BROWSE_CACHE_CONTROL: &str = "public, max-age=1";

#[utoipa::path(get, path = "/v1/events/{id}", tag = "browse",
    responses((status = 200, body = EventPageOut), (status = 304), (status = 404, body = Problem)))]
pub async fn event_page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let page = state.store.event_page(&id).await?;
    let etag = format!("W/\"e{}-{}\"", page.catalog_version, page.version);
    if let Some(not_modified) = not_modified(&headers, &etag) {
        return Ok(not_modified);
    }
    let body = EventPageOut {
        event: EventOut::from(&page.event),
        venue: VenueOut::from(&page.venue),
        performers: page.performers.iter().map(PerformerOut::from).collect(),
        availability: AvailabilityOut::from(page.availability),
        version: page.version,
    };
    Ok(cached(Json(body), &etag))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TicketsQuery {
    /// Long poll: answer once the version is greater than this.
    pub since: Option<u64>,
    /// Long poll: wait at most this many seconds (≤ 60, default 30).
    #[param(maximum = 60)]
    pub wait: Option<u64>,
}

#[utoipa::path(get, path = "/v1/events/{id}/tickets", tag = "browse", params(TicketsQuery),
    responses((status = 200, body = TicketsOut, description = "weak `ETag` `W/\"t<version>\"`; `Cache-Control: public, max-age=1`; gzip with `Accept-Encoding: gzip` (`Vary: Accept-Encoding`)"),
        (status = 304), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn tickets(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: Result<Query<TicketsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    if let Some(since) = query.since {
        let wait = query.wait.unwrap_or(30);
        if wait > LONG_POLL_SECONDS_MAX {
            return Err(ApiError::invalid("wait", format!("must be at most {LONG_POLL_SECONDS_MAX}")));
        }
        state.store.wait_version(&id, since, Duration::from_secs(wait)).await?;
    } else if query.wait.is_some() {
        return Err(ApiError::invalid("since", "wait needs since"));
    }
    // Built once per version and shared by every reader, raw and gzipped (`seats`).
    crate::routes::seats::tickets_body(&state, &id, &headers).await
}

fn not_modified(headers: &HeaderMap, etag: &str) -> Option<Response> {
    crate::seat_cache::if_none_match(headers, etag)
        .then(|| crate::seat_cache::not_modified(etag, BROWSE_CACHE_CONTROL))
}

fn cached(body: impl IntoResponse, etag: &str) -> Response {
    let mut r = body.into_response();
    crate::seat_cache::set_cache_headers(&mut r, etag, BROWSE_CACHE_CONTROL);
    r
}
