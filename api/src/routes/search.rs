//! `GET /v1/search`: events by term, city, distance, type and dates, from this node's
//! local index (answers even when no quorum is reachable). Dates are inclusive: a day
//! (`2026-05-01`) means the whole day in UTC; an RFC 3339 time means that instant.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::dto::rfc3339;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// How long a CDN or browser may reuse a search answer.
pub const SEARCH_CACHE_CONTROL: &str = "public, max-age=5";
const DAY_MS: u64 = 86_400_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    pub term: Option<String>,
    /// A city name.
    pub location: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub radius_km: Option<f64>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// `YYYY-MM-DD` (from the start of that day) or an RFC 3339 time.
    pub date_from: Option<String>,
    /// `YYYY-MM-DD` (to the end of that day) or an RFC 3339 time.
    pub date_to: Option<String>,
    /// 1..=100, default 20; 0 or more than 100 is 400 `invalid_request` (as `/v1/me/bookings`).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchVenueOut {
    pub id: String,
    pub name: String,
    pub city: String,
}

#[derive(Serialize, ToSchema)]
pub struct SearchPerformerOut {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResultOut {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub starts_at: String,
    pub venue: SearchVenueOut,
    pub performers: Vec<SearchPerformerOut>,
    pub score: f32,
}

#[derive(Serialize, ToSchema)]
pub struct SearchOut {
    pub results: Vec<SearchResultOut>,
    pub next_cursor: Option<String>,
}

/// A day or a time as ms; a day's end is its last millisecond.
pub(crate) fn parse_bound(field: &str, value: &str, end_of_day: bool) -> Result<u64, ApiError> {
    if let Ok(t) = time::OffsetDateTime::parse(value, &Rfc3339) {
        return u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| ApiError::invalid(field, "before 1970"));
    }
    let day = time::Date::parse(value, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| ApiError::invalid(field, "must be YYYY-MM-DD or an RFC 3339 time"))?;
    let start = day.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000;
    let start = u64::try_from(start).map_err(|_| ApiError::invalid(field, "before 1970"))?;
    Ok(if end_of_day { start + DAY_MS - 1 } else { start })
}

#[utoipa::path(get, path = "/v1/search", tag = "browse", params(SearchParams),
    responses((status = 200, body = SearchOut), (status = 304), (status = 400, body = Problem)))]
pub async fn search(
    State(state): State<AppState>,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Query(p) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = match p.limit {
        None => search::SEARCH_RESULTS_DEFAULT,
        Some(n) if (1..=search::SEARCH_RESULTS_MAX).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid(
                "limit",
                format!("must be within 1..={}", search::SEARCH_RESULTS_MAX),
            ))
        }
    };
    let date_from_ms = p.date_from.as_deref().map(|v| parse_bound("date_from", v, false)).transpose()?;
    let date_to_ms = p.date_to.as_deref().map(|v| parse_bound("date_to", v, true)).transpose()?;
    let q = search::SearchQuery {
        term: p.term,
        location: p.location,
        lat: p.lat,
        lon: p.lon,
        radius_km: p.radius_km,
        event_type: p.event_type,
        date_from_ms,
        date_to_ms,
        limit,
        cursor: p.cursor,
        now_ms: cluster::store::wall_ms(),
    };
    let page = state.store.search(q).await?;
    let etag = {
        let mut h = Sha256::new();
        h.update(uri.query().unwrap_or_default().as_bytes());
        h.update(page.generation.to_le_bytes());
        for r in &page.results {
            h.update(r.event.id.as_bytes());
        }
        format!("W/\"s{}-{}\"", page.generation, &hex::encode(h.finalize())[..16])
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("ascii"));
        return Ok(r);
    }
    let body = SearchOut {
        results: page
            .results
            .into_iter()
            .map(|hit| SearchResultOut {
                id: hit.event.id,
                name: hit.event.name,
                event_type: hit.event.event_type,
                starts_at: rfc3339(hit.event.starts_at_ms),
                venue: SearchVenueOut {
                    id: hit.event.venue.id,
                    name: hit.event.venue.name,
                    city: hit.event.venue.city,
                },
                performers: hit
                    .event
                    .performers
                    .into_iter()
                    .map(|p| SearchPerformerOut { id: p.id, name: p.name })
                    .collect(),
                score: hit.score,
            })
            .collect(),
        next_cursor: page.next_cursor,
    };
    let mut r = Json(body).into_response();
    r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("ascii"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(SEARCH_CACHE_CONTROL));
    Ok(r)
}
