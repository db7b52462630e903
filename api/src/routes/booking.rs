//! Booking (user token): reserve, confirm, release, extend, cancel (and refund), and the
//! holder's reads.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use tracing::{debug_span, Instrument};
use utoipa::IntoParams;

use tickets::inventory::{booking_status_name, Refunder, Selection};
use tickets::limits::TICKETS_PER_HOLD_MAX;

use crate::auth::{Caller, User};
use crate::body::{idempotency, ApiPath, JsonBody};
use crate::dto::{
    BookingOut, BookingsPage, CancelOut, ConfirmRequest, ExtendOut, HoldOut, HoldStatusOut, ReleaseRequest,
    ReserveRequest,
};
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use tickets::{BookingId, HoldId};

/// Nodes that may fail to answer `GET /v1/me/bookings`'s gathering before the answer
/// could miss bookings (an event has three replicas).
pub const PEERS_SILENT_MAX: usize = tickets::placement::REPLICAS_PER_EVENT - 1;
/// Largest page of `GET /v1/me/bookings`; a larger `limit` is `invalid_request`.
pub const BOOKINGS_PAGE_MAX: usize = 100;

#[utoipa::path(post, path = "/v1/booking/reserve", tag = "booking", request_body = ReserveRequest,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry safely: same key + body → first answer, for 24 h")),
    responses((status = 201, body = HoldOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem), (status = 504, body = Problem)))]
pub async fn reserve(
    State(state): State<AppState>,
    User(user): User,
    headers: HeaderMap,
    body: JsonBody<ReserveRequest>,
) -> ApiResult<(StatusCode, Json<HoldOut>)> {
    let idem = idempotency(&headers, "reserve", &body.raw)?;
    let req = body.value;
    let selection = match (req.ticket_ids, req.section, req.quantity) {
        (Some(ids), None, None) => {
            if ids.is_empty() {
                return Err(ApiError::invalid("ticket_ids", "must not be empty"));
            }
            Selection::Tickets(ids)
        }
        (None, Some(section), Some(quantity)) => {
            if quantity == 0 || quantity > TICKETS_PER_HOLD_MAX {
                return Err(tickets::Rejection::limit(format!(
                    "quantity must be within 1..={TICKETS_PER_HOLD_MAX}"
                ))
                .into());
            }
            Selection::Best { section, quantity }
        }
        _ => return Err(ApiError::invalid("body", "give either ticket_ids, or section and quantity")),
    };
    let span = debug_span!("reserve", user = %user, event = %req.event_id);
    let hold = state.store.reserve(&user, &req.event_id, selection, idem).instrument(span).await?;
    metrics::counter!("boxoffice_holds_total").increment(1);
    Ok((StatusCode::CREATED, Json(HoldOut::from(&hold))))
}

#[utoipa::path(post, path = "/v1/booking/confirm", tag = "booking", request_body = ConfirmRequest,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry safely: same key + body → first answer, for 24 h")),
    responses((status = 201, body = BookingOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 402, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem)))]
pub async fn confirm(
    State(state): State<AppState>,
    User(user): User,
    headers: HeaderMap,
    body: JsonBody<ConfirmRequest>,
) -> ApiResult<(StatusCode, Json<BookingOut>)> {
    let idem = idempotency(&headers, "confirm", &body.raw)?;
    let req = body.value;
    if req.payment.token.is_empty() || req.payment.token.len() > 255 {
        return Err(ApiError::invalid("payment.token", "must be 1..=255 bytes"));
    }
    let span = debug_span!("confirm", user = %user, hold = %req.hold_id);
    let booking = state.store.confirm(&user, &req.hold_id, &req.payment.token, idem).instrument(span).await?;
    metrics::counter!("boxoffice_bookings_total").increment(1);
    Ok((StatusCode::CREATED, Json(BookingOut::from(&booking))))
}

#[utoipa::path(post, path = "/v1/booking/release", tag = "booking", request_body = ReleaseRequest,
    security(("bearer" = [])),
    responses((status = 200, body = HoldStatusOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 410, body = Problem)))]
pub async fn release(
    State(state): State<AppState>,
    User(user): User,
    body: JsonBody<ReleaseRequest>,
) -> ApiResult<Json<HoldStatusOut>> {
    let span = debug_span!("release", user = %user, hold = %body.value.hold_id);
    let hold = state.store.release(&user, &body.value.hold_id).instrument(span).await?;
    Ok(Json(HoldStatusOut::from(&hold)))
}

#[utoipa::path(get, path = "/v1/holds/{hold_id}", tag = "booking", security(("bearer" = [])),
    responses((status = 200, body = HoldStatusOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_hold(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(hold_id): ApiPath<HoldId>,
) -> ApiResult<Json<HoldStatusOut>> {
    let hold = state.store.hold(&user, &hold_id).await?;
    Ok(Json(HoldStatusOut::from(&hold)))
}

#[utoipa::path(post, path = "/v1/holds/{hold_id}/extend", tag = "booking", security(("bearer" = [])),
    responses((status = 200, body = ExtendOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
pub async fn extend(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(hold_id): ApiPath<HoldId>,
) -> ApiResult<Json<ExtendOut>> {
    let hold = state.store.extend(&user, &hold_id).await?;
    Ok(Json(ExtendOut { hold_id: hold.id.to_string(), expires_at: crate::dto::rfc3339(hold.expires_at) }))
}

#[utoipa::path(get, path = "/v1/bookings/{booking_id}", tag = "booking", security(("bearer" = [])),
    responses((status = 200, body = BookingOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_booking(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(booking_id): ApiPath<BookingId>,
) -> ApiResult<Json<BookingOut>> {
    let booking = state.store.booking(&user, &booking_id).await?;
    Ok(Json(BookingOut::from(&booking)))
}

/// Cancel a booking and refund it: its buyer before the event's `refund_until`, an admin any
/// time. 200 with `refunded`, or `refund_pending` while the refund still runs; 409
/// `not_refundable` when already refunded or past the window; 402 `payment_declined` when
/// the provider declined the refund (the booking stays confirmed; cancel again to retry).
#[utoipa::path(post, path = "/v1/bookings/{booking_id}/cancel", tag = "booking", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry safely: same key → the cancel's final answer, for 24 h")),
    responses((status = 200, body = CancelOut), (status = 401, body = Problem), (status = 402, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 503, body = Problem), (status = 504, body = Problem)))]
pub async fn cancel_booking(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(booking_id): ApiPath<BookingId>,
) -> ApiResult<Json<CancelOut>> {
    let idem = idempotency(&headers, "cancel", booking_id.as_bytes())?;
    let by = if caller.admin { Refunder::Admin(caller.user) } else { Refunder::Buyer(caller.user) };
    let span = debug_span!("cancel", booking = %booking_id);
    let booking = state.store.cancel_booking(by, &booking_id, idem).instrument(span).await?;
    metrics::counter!("boxoffice_cancels_total", "status" => booking_status_name(booking.status))
        .increment(1);
    Ok(Json(CancelOut::from(&booking)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/me/bookings", tag = "booking", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = BookingsPage), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn my_bookings(
    State(state): State<AppState>,
    User(user): User,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<BookingsPage>> {
    let Query(query) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = query.limit.unwrap_or(20);
    if limit == 0 || limit > BOOKINGS_PAGE_MAX {
        return Err(ApiError::invalid("limit", format!("must be within 1..={BOOKINGS_PAGE_MAX}")));
    }
    let offset = match &query.cursor {
        Some(c) => {
            c.parse::<usize>().map_err(|_| ApiError::invalid("cursor", "not a cursor from this API"))?
        }
        None => 0,
    };
    let all: Vec<BookingOut> = state.store.my_bookings(&user).await?.iter().map(BookingOut::from).collect();
    let page: Vec<BookingOut> = all.iter().skip(offset).take(limit).cloned().collect();
    let next = offset + page.len();
    let next_cursor = (next < all.len()).then(|| next.to_string());
    Ok(Json(BookingsPage { bookings: page, next_cursor }))
}
