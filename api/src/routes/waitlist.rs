//! The waiting list of a sold-out event (user token): join for a quantity in a section, read
//! or leave one's entry, and follow it on a stream. When seats of the section come back the
//! oldest entry that fits gets an offer: a hold made for the user in the log (the rules are
//! in `tickets::inventory::waitlist`), confirmed like any hold with `/v1/booking/confirm`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use tickets::inventory::{WaitlistEntry, WaitlistStatus};

use crate::auth::User;
use crate::body::{ApiPath, JsonBody};
use crate::dto::{rfc3339, HoldOut};
use crate::error::{ApiResult, Problem};
use crate::routes::live::{client_ip, EventStream, STREAM_KEEP_ALIVE};
use crate::state::AppState;

/// `{section, quantity}`: wait for `quantity` tickets together in `section`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistRequest {
    pub section: String,
    /// `1..=50`, and within the event's per-user limit with what the user already has.
    pub quantity: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct WaitlistOut {
    pub event_id: String,
    pub section: String,
    pub quantity: u32,
    pub joined_at: String,
    /// `waiting`, or `offered` (then `offer` is the hold made for you).
    pub status: String,
    /// 1-based place among the section's waiting entries; 0 once offered.
    pub position: u64,
    /// The offer: a hold of your quantity in the section, yours until its `expires_at`.
    /// Confirm it with `POST /v1/booking/confirm`; if it lapses the next entry gets it.
    pub offer: Option<HoldOut>,
}

fn waitlist_out(event_id: &str, e: &WaitlistEntry) -> WaitlistOut {
    WaitlistOut {
        event_id: event_id.to_string(),
        section: e.section.clone(),
        quantity: e.quantity,
        joined_at: rfc3339(e.joined_at),
        status: match e.status {
            WaitlistStatus::Waiting => "waiting",
            WaitlistStatus::Offered => "offered",
        }
        .into(),
        position: e.position,
        offer: e.offer.as_ref().map(HoldOut::from),
    }
}

#[utoipa::path(post, path = "/v1/events/{id}/waitlist", tag = "waitlist", request_body = WaitlistRequest,
    security(("bearer" = [])),
    responses((status = 201, body = WaitlistOut, description = "on the list; `offered` at once if the seats are free"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem), (status = 504, body = Problem)))]
pub async fn waitlist_join(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<tickets::EventId>,
    body: JsonBody<WaitlistRequest>,
) -> ApiResult<(StatusCode, Json<WaitlistOut>)> {
    let req = body.value;
    let entry = state.store.waitlist_join(&user, &id, &req.section, req.quantity).await?;
    metrics::counter!("boxoffice_waitlist_joins_total").increment(1);
    Ok((StatusCode::CREATED, Json(waitlist_out(&id, &entry))))
}

#[utoipa::path(get, path = "/v1/events/{id}/waitlist/me", tag = "waitlist", security(("bearer" = [])),
    responses((status = 200, body = WaitlistOut), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 503, body = Problem)))]
pub async fn waitlist_me(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<tickets::EventId>,
) -> ApiResult<Json<WaitlistOut>> {
    let entry = state.store.waitlist_view(&user, &id, true).await?;
    Ok(Json(waitlist_out(&id, &entry)))
}

#[utoipa::path(delete, path = "/v1/events/{id}/waitlist/me", tag = "waitlist", security(("bearer" = [])),
    responses((status = 204, description = "left; an open offer's hold is released"), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn waitlist_leave(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<tickets::EventId>,
) -> ApiResult<StatusCode> {
    state.store.waitlist_leave(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/events/{id}/waitlist/me/stream", tag = "waitlist", security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream",
        description = "a `waitlist` event (a `WaitlistOut`) whenever the entry changes — its place, or an offer; then `ended` when the entry is gone (offer confirmed, lapsed or released, or left) and the stream closes"),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn waitlist_stream(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<tickets::EventId>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> ApiResult<Response> {
    let permit = state.streams.acquire(client_ip(peer))?;
    let entry = state.store.waitlist_view(&user, &id, false).await?;
    let version = state.store.watch_version(&id).await?;
    let first = waitlist_out(&id, &entry);
    let initial = Event::default().event("waitlist").json_data(&first).expect("serializable");
    let store = state.store.clone();
    // `None` in the state: the entry is gone and `ended` was sent.
    let live = stream::unfold(Some((version, first, permit)), move |state| {
        let (store, user, id) = (store.clone(), user.clone(), id.clone());
        async move {
            let (mut version, last, permit) = state?;
            loop {
                // An offer lapses with time alone: look again at its expiry at the latest.
                let lapse =
                    last.offer.as_ref().map_or(STREAM_KEEP_ALIVE, |_| std::time::Duration::from_secs(1));
                tokio::select! {
                    changed = version.changed() => changed.ok()?,
                    () = tokio::time::sleep(lapse) => {}
                }
                match store.waitlist_view(&user, &id, false).await {
                    Ok(entry) => {
                        let out = waitlist_out(&id, &entry);
                        if out != last {
                            let event =
                                Event::default().event("waitlist").json_data(&out).expect("serializable");
                            return Some((Ok(event), Some((version, out, permit))));
                        }
                    }
                    Err(_) => return Some((Ok(Event::default().event("ended").data("{}")), None)),
                }
            }
        }
    });
    let stream: EventStream = Box::pin(stream::iter([Ok(initial)]).chain(live));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(STREAM_KEEP_ALIVE)).into_response())
}
