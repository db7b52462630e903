//! The seat map at on-sale scale (no token): `GET /v1/events/{id}/layout` (sections, rows,
//! seats and prices, fixed when the event is made) and `GET /v1/events/{id}/seats` (one
//! character per ticket in layout order), beside the full `GET /v1/events/{id}/tickets`.
//!
//! Layout order is the inventory's ticket order (`tickets::layout`): sections as the venue
//! lists them, rows front to back, seats by number; a general section's tickets
//! `<section>-1..=<section>-<capacity>`. So `statuses[i]` is the status of the i-th ticket of
//! the layout, and of the i-th entry of `/tickets`.
//!
//! Every body is built once per event version and shared ([`crate::seat_cache`]): gzip
//! when the request accepts it, `ETag` (layout: strong, a hash of its bytes; statuses:
//! weak, `W/"s<version>"`; tickets: weak, `W/"t<version>"`), `304` on `If-None-Match`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use tickets::inventory::TicketStatus;
use tickets::layout::{Layout, SectionTickets};

use crate::body::ApiPath;
use crate::dto::{TicketOut, TicketsOut};
use crate::error::{ApiError, ApiResult, Problem};
use crate::seat_cache::Encoded;
use crate::state::AppState;

/// The layout changes only if the event is made again: browsers may reuse it for a minute.
pub const LAYOUT_CACHE_CONTROL: &str = "public, max-age=60";
/// Statuses move with every sale: reuse for a second at most (then revalidate with the ETag).
pub const SEATS_CACHE_CONTROL: &str = "public, max-age=1";

#[derive(Serialize, ToSchema)]
pub struct LayoutRowOut {
    pub name: String,
    /// Seat numbers in order (1..=n).
    pub seats: Vec<u32>,
}

/// `{name, kind: "seated", price, rows}` or `{name, kind: "general", price, capacity}`.
#[derive(Serialize, ToSchema)]
pub struct LayoutSectionOut {
    pub name: String,
    /// `seated` or `general`.
    pub kind: &'static str,
    /// Minor units, as the event's prices.
    pub price: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<LayoutRowOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct LayoutOut {
    pub event_id: String,
    /// Number of tickets (= length of `statuses` in `/seats`).
    pub count: usize,
    /// In layout order.
    pub sections: Vec<LayoutSectionOut>,
}

#[derive(Serialize, ToSchema)]
pub struct SeatsOut {
    /// The inventory's version (applied log index), as in `/tickets` and the seat stream.
    pub version: u64,
    /// One character per ticket in layout order: `a` available, `h` held, `s` sold.
    pub statuses: String,
}

/// The JSON layout of `layout`, in its ticket order.
pub fn layout_out(event_id: &str, layout: &Layout) -> LayoutOut {
    let sections = layout
        .sections()
        .iter()
        .map(|s| match &s.tickets {
            SectionTickets::Seated { rows, .. } => LayoutSectionOut {
                name: s.name.clone(),
                kind: "seated",
                price: s.price,
                rows: Some(
                    rows.iter()
                        .map(|r| LayoutRowOut { name: r.name.clone(), seats: (1..=r.len).collect() })
                        .collect(),
                ),
                capacity: None,
            },
            SectionTickets::General { len, .. } => LayoutSectionOut {
                name: s.name.clone(),
                kind: "general",
                price: s.price,
                rows: None,
                capacity: Some(*len),
            },
        })
        .collect();
    LayoutOut { event_id: event_id.to_string(), count: layout.count(), sections }
}

/// The status letter of `/seats`.
pub fn status_char(status: TicketStatus) -> u8 {
    match status {
        TicketStatus::Available => b'a',
        TicketStatus::Held => b'h',
        TicketStatus::Sold => b's',
    }
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::from(cluster::Error::Internal(e.to_string())))
}

/// CPU-heavy builds (a 200,000-ticket JSON, its gzip) run off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::from(cluster::Error::Internal(format!("build task: {e}"))))?
}

#[utoipa::path(get, path = "/v1/events/{id}/layout", tag = "browse",
    params(("id" = String, Path, description = "event id")),
    responses((status = 200, body = LayoutOut, description = "strong `ETag`; `Cache-Control: public, max-age=60`; gzip with `Accept-Encoding: gzip`"),
        (status = 304), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn layout(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let store = state.store.clone();
    let body = state
        .seat_caches
        .layout
        .get_or_build(&id, 0, 0, || async {
            let layout = store.seat_layout(&id).await?;
            let id = id.clone();
            blocking(move || {
                let raw = to_json(&layout_out(&id, &layout))?;
                let etag = format!("\"l{}\"", &hex::encode(Sha256::digest(&raw))[..20]);
                Ok(Encoded::new(raw, etag, 0, None))
            })
            .await
        })
        .await?;
    Ok(body.respond(&headers, LAYOUT_CACHE_CONTROL))
}

#[utoipa::path(get, path = "/v1/events/{id}/seats", tag = "browse",
    params(("id" = String, Path, description = "event id")),
    responses((status = 200, body = SeatsOut, description = "weak `ETag` `W/\"s<version>\"`; `Cache-Control: public, max-age=1`; gzip with `Accept-Encoding: gzip`"),
        (status = 304), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn seats(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let store = state.store.clone();
    let build_id = id.clone();
    per_version(&state, &state.seat_caches.statuses, &id, 's', SEATS_CACHE_CONTROL, &headers, || async move {
        let seats = store.seat_statuses(&build_id).await?;
        let statuses: Vec<u8> = seats.statuses.iter().map(|s| status_char(*s)).collect();
        // Only ASCII letters: a valid string.
        let statuses = String::from_utf8(statuses).expect("ascii");
        blocking(move || {
            let raw = to_json(&SeatsOut { version: seats.version, statuses })?;
            Ok(Encoded::new(raw, format!("W/\"s{}\"", seats.version), seats.version, seats.valid_until))
        })
        .await
    })
    .await
}

/// `/tickets`' body for the event's current version, built once (same JSON as before).
pub(crate) async fn tickets_body(state: &AppState, id: &str, headers: &HeaderMap) -> ApiResult<Response> {
    let store = state.store.clone();
    let build_id = id.to_string();
    let cache_control = crate::routes::browse::BROWSE_CACHE_CONTROL;
    per_version(state, &state.seat_caches.tickets, id, 't', cache_control, headers, || async move {
        let map = store.seat_map(&build_id).await?;
        blocking(move || {
            let body = TicketsOut {
                version: map.version,
                tickets: map.tickets.iter().map(|(spec, status)| TicketOut::new(spec, *status)).collect(),
            };
            let raw = to_json(&body)?;
            Ok(Encoded::new(raw, format!("W/\"t{}\"", map.version), map.version, map.valid_until))
        })
        .await
    })
    .await
}

/// A body that follows the event's version (`W/"<tag><version>"`): `304` at once when the
/// client has this version (the version is read without reading any seat), else the body
/// built once for this version by `build` and shared from `cache`.
async fn per_version<F, Fut>(
    state: &AppState,
    cache: &crate::seat_cache::BodyCache,
    id: &str,
    tag: char,
    cache_control: &'static str,
    headers: &HeaderMap,
    build: F,
) -> ApiResult<Response>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Encoded, ApiError>>,
{
    let version = state.store.seat_version(id).await?;
    let etag = format!("W/\"{tag}{version}\"");
    if crate::seat_cache::if_none_match(headers, &etag) {
        return Ok(crate::seat_cache::not_modified(&etag, cache_control));
    }
    let body = cache.get_or_build(id, version, cluster::store::wall_ms(), build).await?;
    Ok(body.respond(headers, cache_control))
}
