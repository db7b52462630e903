//! Request forwarding: any node answers any request. When a handler finds that another
//! node serves it (the event's group is placed elsewhere, or led elsewhere for a booking
//! write), it answers with a [`ForwardTo`] marker and this layer replays the original
//! request — method, path, query, headers, body — on those nodes in order and returns the
//! first answer. One hop only: a forwarded request carries [`FORWARDED_HEADER`] and is
//! never forwarded again (it answers 503 instead, marked [`NOT_SERVED_HERE_HEADER`] so
//! that the first node tries its next target), so a stale view can never loop.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::body::BODY_BYTES_MAX;
use crate::error::{ApiError, ForwardTo};
use crate::state::AppState;

/// Set on forwarded requests.
pub const FORWARDED_HEADER: &str = "x-boxoffice-forwarded";
/// Set on the answer to a forwarded request that this node could not serve either (not a
/// replica, or its replica not caught up): nothing was done here, so the forwarding node
/// may try its next target. Any other answer — even a 503, whose write may have
/// committed — is relayed as it is.
pub const NOT_SERVED_HERE_HEADER: &str = "x-boxoffice-not-served-here";
/// How long one forwarded request may take (a confirm waits up to 15 s for its payment).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a forwarded long poll (`?since=&wait=`) may take: its longest wait plus the
/// ordinary bound.
pub const FORWARD_LONG_POLL_TIMEOUT: Duration =
    Duration::from_secs(crate::routes::browse::LONG_POLL_SECONDS_MAX + FORWARD_TIMEOUT.as_secs());

pub async fn forward(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let already_forwarded = req.headers().contains_key(FORWARDED_HEADER);
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().cloned();
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, BODY_BYTES_MAX).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::too_large(format!("body larger than {BODY_BYTES_MAX} bytes")).into_response()
        }
    };
    let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
    let response = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    let Some(ForwardTo(targets)) = response.extensions().get::<ForwardTo>().cloned() else {
        return response;
    };
    if already_forwarded {
        let mut response = response;
        response.headers_mut().insert(NOT_SERVED_HERE_HEADER, HeaderValue::from_static("1"));
        return response;
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    for target in targets {
        let url = format!("http://{target}{path}");
        let mut request = state.http.request(method.clone(), &url).body(bytes.clone());
        // Streams (SSE) stay open as long as the client watches; everything else is bounded.
        if !uri.path().ends_with("/stream") {
            let long_poll = uri.query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("wait=")));
            request = request.timeout(if long_poll { FORWARD_LONG_POLL_TIMEOUT } else { FORWARD_TIMEOUT });
        }
        if let Some(ConnectInfo(peer)) = client {
            request = request.header("x-forwarded-for", peer.ip().to_string());
        }
        for (name, value) in headers.iter() {
            if !is_hop_by_hop(name) {
                request = request.header(name, value);
            }
        }
        request = request.header(FORWARDED_HEADER, HeaderValue::from_static("1"));
        match request.send().await {
            Ok(answer) if answer.headers().contains_key(NOT_SERVED_HERE_HEADER) => {
                tracing::debug!(%url, "the forward target does not serve it either; trying the next node")
            }
            Ok(answer) => {
                metrics::counter!("boxoffice_http_forwarded_total").increment(1);
                let status = answer.status();
                let mut builder = Response::builder().status(status);
                for (name, value) in answer.headers() {
                    if !is_hop_by_hop(name) && name != "content-length" {
                        builder = builder.header(name, value);
                    }
                }
                return builder
                    .body(Body::from_stream(answer.bytes_stream()))
                    .unwrap_or_else(|_| response_failed());
            }
            Err(e) => tracing::debug!(%url, error = %e, "forward failed; trying the next node"),
        }
    }
    response
}

fn response_failed() -> Response {
    ApiError::new(
        axum::http::StatusCode::BAD_GATEWAY,
        "unavailable",
        "Unavailable",
        "the forwarded answer could not be relayed",
    )
    .into_response()
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
    )
}
