//! Catalog (admin): venues, performers, events — writes, reads by id, and the admin
//! listings (`GET /v1/events|venues|performers`, paged by id from the local catalog replica).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use cluster::browse::EventFilter;

use crate::auth::Admin;
use crate::body::{ApiPath, JsonBody};
use crate::dto::{EventCreate, EventOut, EventUpdate, PerformerCreate, PerformerOut, VenueCreate, VenueOut};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::search::parse_bound;
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
pub async fn get_venue(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<VenueOut>> {
    Ok(Json(VenueOut::from(&state.store.venue(&id)?)))
}

/// Replace a venue (the same body as creating one). Only while no event is on it: an event's
/// tickets and seat map were made from its venue, so a venue in use answers 409 `conflict`.
#[utoipa::path(put, path = "/v1/venues/{id}", tag = "catalog", request_body = VenueCreate,
    security(("bearer" = [])),
    responses((status = 200, body = VenueOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "an event is on the venue: it is fixed")))]
pub async fn update_venue(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    body: JsonBody<VenueCreate>,
) -> ApiResult<Json<VenueOut>> {
    let spec = body.value.into_spec()?;
    let venue = state.store.update_venue(&id, spec).await?;
    Ok(Json(VenueOut::from(&venue)))
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

/// Replace a performer's name and genre (the same body as creating one); the events that
/// name the performer show (and are found by) the new name.
#[utoipa::path(put, path = "/v1/performers/{id}", tag = "catalog", request_body = PerformerCreate,
    security(("bearer" = [])),
    responses((status = 200, body = PerformerOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn update_performer(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    body: JsonBody<PerformerCreate>,
) -> ApiResult<Json<PerformerOut>> {
    let spec = body.value.into_spec();
    let performer = state.store.update_performer(&id, spec).await?;
    Ok(Json(PerformerOut::from(&performer)))
}

#[utoipa::path(get, path = "/v1/performers/{id}", tag = "catalog",
    responses((status = 200, body = PerformerOut), (status = 404, body = Problem)))]
pub async fn get_performer(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
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
    responses((status = 200, body = EventOut), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn update_event(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    body: JsonBody<EventUpdate>,
) -> ApiResult<Json<EventOut>> {
    let event = state.store.update_event(&id, body.value.into_patch()?).await?;
    Ok(Json(EventOut::from(&event)))
}

/// Cancel the event: no more sales, and every confirmed booking is refunded (the refunds run
/// in the background; each booking shows `refund_pending`, then `refunded`).
#[utoipa::path(post, path = "/v1/events/{id}/cancel", tag = "catalog",
    security(("bearer" = [])),
    responses((status = 200, body = EventOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn cancel_event(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EventOut>> {
    let event = state.store.cancel_event(&id, &admin).await?;
    Ok(Json(EventOut::from(&event)))
}

// ---- listings (admin) ------------------------------------------------------------------

/// Most entries one listing page holds; more is `invalid_request` (field `limit`).
pub const LISTING_PAGE_MAX: usize = 100;
/// Entries per page when `limit` is not given.
pub const LISTING_PAGE_DEFAULT: usize = 20;
/// Longest cursor accepted, in bytes (cursors are ids).
pub const LISTING_CURSOR_BYTES_MAX: usize = 128;

/// `?limit=&cursor=` (and, for events, `status`, `from`, `to`). Every value is taken as text
/// and checked here, so a bad one is a 400 naming its own field.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListingQuery {
    /// 1..=100, default 20.
    pub limit: Option<String>,
    /// The previous page's `next_cursor` (opaque).
    pub cursor: Option<String>,
    /// Events only: `scheduled` or `cancelled`.
    pub status: Option<String>,
    /// Events only: `starts_at` at or after this (RFC 3339 time, or a day `YYYY-MM-DD` from its start).
    pub from: Option<String>,
    /// Events only: `starts_at` at or before this (RFC 3339 time, or a day `YYYY-MM-DD` to its end).
    pub to: Option<String>,
}

impl ListingQuery {
    fn page(&self) -> Result<(usize, Option<&str>), ApiError> {
        let limit = match &self.limit {
            None => LISTING_PAGE_DEFAULT,
            Some(text) => {
                text.trim().parse::<usize>().ok().filter(|n| (1..=LISTING_PAGE_MAX).contains(n)).ok_or_else(
                    || ApiError::invalid("limit", format!("must be a number within 1..={LISTING_PAGE_MAX}")),
                )?
            }
        };
        let cursor = self.cursor.as_deref();
        if cursor.is_some_and(|c| c.is_empty() || c.len() > LISTING_CURSOR_BYTES_MAX) {
            return Err(ApiError::invalid("cursor", "not a cursor from this API"));
        }
        Ok((limit, cursor))
    }

    fn only_paging(&self) -> Result<(), ApiError> {
        for (field, value) in [("status", &self.status), ("from", &self.from), ("to", &self.to)] {
            if value.is_some() {
                return Err(ApiError::invalid(field, "only GET /v1/events takes this filter"));
            }
        }
        Ok(())
    }

    fn event_filter(&self) -> Result<EventFilter, ApiError> {
        let cancelled = match self.status.as_deref() {
            None => None,
            Some("scheduled") => Some(false),
            Some("cancelled") => Some(true),
            Some(_) => return Err(ApiError::invalid("status", "must be scheduled or cancelled")),
        };
        let from_ms = self.from.as_deref().map(|v| parse_bound("from", v, false)).transpose()?;
        let to_ms = self.to.as_deref().map(|v| parse_bound("to", v, true)).transpose()?;
        if let (Some(f), Some(t)) = (from_ms, to_ms) {
            if t < f {
                return Err(ApiError::invalid("to", "is before from"));
            }
        }
        Ok(EventFilter { cancelled, from_ms, to_ms })
    }
}

type ListingParams = Result<Query<ListingQuery>, axum::extract::rejection::QueryRejection>;

fn listing_query(query: ListingParams) -> Result<ListingQuery, ApiError> {
    crate::body::query_params(query)
}

#[derive(Serialize, ToSchema)]
pub struct EventsPage {
    /// Each as `GET /v1/events/{id}`'s `event`, ordered by id.
    pub events: Vec<EventOut>,
    /// Pass as `cursor` for the next page; `null` when there is none. A page may be shorter
    /// than `limit` (even empty) and still have a cursor when a filter matched little of
    /// the part of the catalog one page looks at (10,000 events).
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VenuesPage {
    /// Ordered by id.
    pub venues: Vec<VenueOut>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PerformersPage {
    /// Ordered by id.
    pub performers: Vec<PerformerOut>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/events", tag = "catalog", params(ListingQuery),
    security(("bearer" = [])),
    responses((status = 200, body = EventsPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_events(
    State(state): State<AppState>,
    _admin: Admin,
    query: ListingParams,
) -> ApiResult<Json<EventsPage>> {
    let q = listing_query(query)?;
    let (limit, cursor) = q.page()?;
    let filter = q.event_filter()?;
    let page = state.store.list_events(cursor, limit, filter);
    Ok(Json(EventsPage { events: page.items.iter().map(EventOut::from).collect(), next_cursor: page.next }))
}

#[utoipa::path(get, path = "/v1/venues", tag = "catalog", params(("limit" = Option<String>, Query, description = "1..=100, default 20"), ("cursor" = Option<String>, Query, description = "the previous page's next_cursor")),
    security(("bearer" = [])),
    responses((status = 200, body = VenuesPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_venues(
    State(state): State<AppState>,
    _admin: Admin,
    query: ListingParams,
) -> ApiResult<Json<VenuesPage>> {
    let q = listing_query(query)?;
    q.only_paging()?;
    let (limit, cursor) = q.page()?;
    let page = state.store.list_venues(cursor, limit);
    Ok(Json(VenuesPage { venues: page.items.iter().map(VenueOut::from).collect(), next_cursor: page.next }))
}

#[utoipa::path(get, path = "/v1/performers", tag = "catalog", params(("limit" = Option<String>, Query, description = "1..=100, default 20"), ("cursor" = Option<String>, Query, description = "the previous page's next_cursor")),
    security(("bearer" = [])),
    responses((status = 200, body = PerformersPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_performers(
    State(state): State<AppState>,
    _admin: Admin,
    query: ListingParams,
) -> ApiResult<Json<PerformersPage>> {
    let q = listing_query(query)?;
    q.only_paging()?;
    let (limit, cursor) = q.page()?;
    let page = state.store.list_performers(cursor, limit);
    Ok(Json(PerformersPage {
        performers: page.items.iter().map(PerformerOut::from).collect(),
        next_cursor: page.next,
    }))
}
