//! Live seats and the waiting queue: the seat stream (SSE) of an event, and the queue's
//! join / status / stream / leave for a user. Streams are bounded (see `streams`) and
//! served by any replica of the event's group; other nodes relay them (`forward`). The seat
//! stream resumes after `Last-Event-ID` or, for a browser's first connect, `?since=`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use cluster::machine::ChangeSet;
use tickets::queue::{QueueStatus, QueueView, WaitEstimate};

use crate::auth::User;
use crate::body::ApiPath;
use crate::dto::{rfc3339, status_str, TicketOut, TicketsOut};
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// How often an idle stream sends a comment, so proxies keep it open.
pub const STREAM_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(crate) type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

/// The client's address: the connection's peer. No header counts (a client could name any
/// address in one); nodes never relay clients' HTTP requests to each other, they ask over the
/// peer plane.
pub(crate) fn client_ip(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> IpAddr {
    match peer {
        Some(Extension(ConnectInfo(addr))) => addr.ip(),
        None => IpAddr::from([127, 0, 0, 1]),
    }
}

#[derive(Serialize, ToSchema)]
pub struct TicketChangeOut {
    pub id: String,
    /// `available`, `held` or `sold`.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChangeOut {
    pub version: u64,
    pub tickets: Vec<TicketChangeOut>,
}

fn change_event(set: &ChangeSet) -> Event {
    let body = ChangeOut {
        version: set.version,
        tickets: set
            .changes
            .iter()
            .map(|c| TicketChangeOut { id: c.id.clone(), status: status_str(c.status).into() })
            .collect(),
    };
    Event::default().event("change").id(set.version.to_string()).json_data(body).expect("serializable")
}

/// `?since=<version>`: where to resume, for clients that cannot send `Last-Event-ID` on
/// their first connect (a browser's `EventSource`). Other parameters are ignored (a cache
/// buster must not break a stream).
#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    pub since: Option<String>,
}

/// The version to resume after: `Last-Event-ID` if sent (it wins), else `?since=`.
fn resume_version(headers: &HeaderMap, query: &StreamQuery) -> Result<Option<u64>, ApiError> {
    if let Some(v) =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
    {
        return Ok(Some(v));
    }
    match query.since.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid("since", "must be a version (a whole number)")),
    }
}

#[utoipa::path(get, path = "/v1/events/{id}/tickets/stream", tag = "browse",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this version"),
        ("since" = Option<u64>, Query, description = "resume after this version (as Last-Event-ID, which wins when both are sent): no `snapshot` when the node's window of recent changes still covers it")),
    responses((status = 200, content_type = "text/event-stream", description = "`snapshot` then `change` events; `id:` = version"),
        (status = 404, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn ticket_stream(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let last_seen = resume_version(&headers, &query)?;
    let permit = state.streams.acquire(client_ip(peer))?;
    let watch = state.store.watch_seats(&id, last_seen).await?;
    let mut first: Vec<Event> = Vec::new();
    if let Some(map) = &watch.snapshot {
        let body = TicketsOut {
            version: map.version,
            tickets: map.tickets.iter().map(|(spec, status)| TicketOut::new(spec, *status)).collect(),
        };
        first.push(
            Event::default()
                .event("snapshot")
                .id(map.version.to_string())
                .json_data(body)
                .expect("serializable"),
        );
    }
    first.extend(watch.missed.iter().map(change_event));
    // The feed ends when the watcher falls too far behind or the group goes away: the
    // client resumes with Last-Event-ID (and gets a snapshot if it fell too far behind).
    // The permit lives as long as the stream.
    let live = watch.live.map(move |set| {
        let _held = &permit;
        Ok(change_event(&set))
    });
    let stream: EventStream = Box::pin(stream::iter(first.into_iter().map(Ok)).chain(live));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(STREAM_KEEP_ALIVE)).into_response())
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct QueueOut {
    /// 1-based among waiting users; 0 once admitted.
    pub position: u64,
    pub ahead: u64,
    /// `waiting` or `admitted`.
    pub status: String,
    pub admitted_until: Option<String>,
    /// Seconds this user can expect to wait (rounded); 0 once admitted. From how long
    /// admitted shoppers of this event actually took (see `docs/live.md`); before any has
    /// finished, from a prior of 1/8 of the admission window per shopper.
    pub estimated_wait_seconds: u64,
    /// `[low, high]` seconds: the wait is expected in this range. Wide while the estimate
    /// rests on the prior or few samples, narrower as shoppers finish; `[0, 0]` once admitted.
    #[schema(value_type = Vec<u64>, min_items = 2, max_items = 2, example = json!([120, 240]))]
    pub estimated_wait_range: [u64; 2],
}

/// The queue stream pushes a new answer when the place or status changes, or when the
/// estimate moves by more than this share of the last one pushed.
pub const QUEUE_ESTIMATE_PUSH_SHARE: f64 = 0.10;
/// A queue stream re-reads the place on every change of the event's state, and at least
/// this often (the estimate moves with time too).
pub const QUEUE_ESTIMATE_RECHECK: Duration = Duration::from_secs(5);

fn queue_out(view: &QueueView, estimate: Option<WaitEstimate>) -> QueueOut {
    let status = match view.status {
        QueueStatus::Waiting => "waiting",
        QueueStatus::Admitted => "admitted",
    };
    let (point, range) = match (view.status, estimate) {
        (QueueStatus::Waiting, Some(e)) => {
            // Whole seconds: the point rounded, the range rounded outwards (it still holds it).
            let s = |ms: u64, up: bool| if up { ms.div_ceil(1_000) } else { ms / 1_000 };
            (e.point_ms.saturating_add(500) / 1_000, [s(e.low_ms, false), s(e.high_ms, true)])
        }
        _ => (0, [0, 0]),
    };
    debug_assert!(range[0] <= point && point <= range[1], "the range holds the point");
    QueueOut {
        position: view.position,
        ahead: view.ahead,
        status: status.into(),
        admitted_until: view.admitted_until.map(rfc3339),
        estimated_wait_seconds: point,
        estimated_wait_range: range,
    }
}

/// Whether the stream, having last pushed `last`, pushes `next`: a new place or status, or
/// an estimate more than [`QUEUE_ESTIMATE_PUSH_SHARE`] away from the last one pushed.
fn worth_pushing(last: &QueueOut, next: &QueueOut) -> bool {
    let place = |q: &QueueOut| (q.position, q.ahead, q.status.clone(), q.admitted_until.clone());
    if place(last) != place(next) {
        return true;
    }
    let (old, new) = (last.estimated_wait_seconds as f64, next.estimated_wait_seconds as f64);
    (new - old).abs() > QUEUE_ESTIMATE_PUSH_SHARE * old
}

#[utoipa::path(post, path = "/v1/events/{id}/queue", tag = "queue", security(("bearer" = [])),
    responses((status = 200, body = QueueOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
pub async fn queue_join(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<tickets::EventId>,
) -> ApiResult<Json<QueueOut>> {
    let place = state.store.queue_join(&user, &id).await?;
    Ok(Json(queue_out(&place.view, place.estimate)))
}

#[utoipa::path(get, path = "/v1/events/{id}/queue/me", tag = "queue", security(("bearer" = [])),
    responses((status = 200, body = QueueOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn queue_me(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<tickets::EventId>,
) -> ApiResult<Json<QueueOut>> {
    let place = state.store.queue_view(&user, &id, true).await?;
    Ok(Json(queue_out(&place.view, place.estimate)))
}

#[utoipa::path(delete, path = "/v1/events/{id}/queue/me", tag = "queue", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn queue_leave(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<tickets::EventId>,
) -> ApiResult<axum::http::StatusCode> {
    state.store.queue_leave(&user, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/events/{id}/queue/me/stream", tag = "queue", security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "a `queue` event whenever the place or status changes, or the estimate moves by more than 10 %"),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn queue_stream(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<tickets::EventId>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> ApiResult<Response> {
    let permit = state.streams.acquire(client_ip(peer))?;
    let place = state.store.queue_view(&user, &id, false).await?;
    let version = state.store.watch_version(&id).await?;
    let first = queue_out(&place.view, place.estimate);
    let initial = Event::default().event("queue").json_data(&first).expect("serializable");
    let store = state.store.clone();
    let live = stream::unfold((version, Some(first), permit), move |(mut version, last, permit)| {
        let (store, user, id) = (store.clone(), user.clone(), id.clone());
        async move {
            loop {
                // The estimate also drifts while nothing changes (the shoppers in the slots
                // grow older): look again now and then.
                tokio::select! {
                    changed = version.changed() => changed.ok()?,
                    () = tokio::time::sleep(QUEUE_ESTIMATE_RECHECK) => {}
                }
                let out = match store.queue_view(&user, &id, false).await {
                    Ok(place) => queue_out(&place.view, place.estimate),
                    // Left the queue (or the event went away): the stream ends.
                    Err(_) => return None,
                };
                if last.as_ref().is_none_or(|last| worth_pushing(last, &out)) {
                    let event = Event::default().event("queue").json_data(&out).expect("serializable");
                    return Some((Ok(event), (version, Some(out), permit)));
                }
            }
        }
    });
    let stream: EventStream = Box::pin(stream::iter([Ok(initial)]).chain(live));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(STREAM_KEEP_ALIVE)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(ahead: u64, point_ms: u64, low_ms: u64, high_ms: u64) -> QueueOut {
        let view = QueueView {
            user: "u".into(),
            position: ahead + 1,
            ahead,
            status: QueueStatus::Waiting,
            admitted_until: None,
        };
        queue_out(&view, Some(WaitEstimate { point_ms, low_ms, high_ms, samples: 3 }))
    }

    #[test]
    fn seconds_round_the_point_and_widen_the_range() {
        let q = waiting(4, 2_499, 1_999, 4_001);
        assert_eq!((q.estimated_wait_seconds, q.estimated_wait_range), (2, [1, 5]));
        let q = waiting(4, 2_500, 2_500, 2_500);
        assert_eq!((q.estimated_wait_seconds, q.estimated_wait_range), (3, [2, 3]));
        let admitted = QueueView {
            user: "u".into(),
            position: 0,
            ahead: 0,
            status: QueueStatus::Admitted,
            admitted_until: Some(1_000),
        };
        let q = queue_out(&admitted, None);
        assert_eq!((q.estimated_wait_seconds, q.estimated_wait_range), (0, [0, 0]));
    }

    #[test]
    fn the_stream_pushes_a_new_place_or_an_estimate_moved_by_more_than_a_tenth() {
        let last = waiting(9, 100_000, 50_000, 200_000);
        assert!(!worth_pushing(&last, &waiting(9, 110_000, 50_000, 200_000)), "10 % is not more than 10 %");
        assert!(!worth_pushing(&last, &waiting(9, 90_000, 10_000, 100_000)), "nor is the range");
        assert!(worth_pushing(&last, &waiting(9, 111_000, 50_000, 200_000)));
        assert!(worth_pushing(&last, &waiting(9, 89_000, 50_000, 200_000)));
        assert!(worth_pushing(&last, &waiting(8, 100_000, 50_000, 200_000)), "a new place");
        assert!(worth_pushing(&waiting(0, 0, 0, 1_000), &waiting(0, 1_000, 0, 2_000)), "from no wait");
    }
}
