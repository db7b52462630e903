//! The API in process: a one-node store (sled in a temp dir, its Raft and peer listener on
//! loopback) behind `api::router(state)`, driven with `oneshot` — no HTTP socket, no other
//! process. Shows the API's answers as a client sees them, and that headers a client could
//! send to pass for a peer change nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Node {
    app: Router,
    auth: api::AuthKeys,
    store: cluster::Store,
    _dir: tempfile::TempDir,
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let db = raft::open_db(dir.path().join("db"), 16 * 1024 * 1024).unwrap();
    let raft_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = cluster::StoreOptions {
        node_id: 1,
        raft_addr: raft_listener.local_addr().unwrap().to_string(),
        http_addr: "127.0.0.1:1".into(),
        snapshot_dir: dir.path().join("snapshots"),
        ..Default::default()
    };
    let payments = Arc::new(cluster::payment::TestProvider::default());
    let store = cluster::Store::start(options, db, payments, raft_listener, None).await.unwrap();
    let auth = api::AuthKeys::new(b"in-process-test-secret-0123456789");
    let state = api::AppState {
        store: store.clone(),
        auth: auth.clone(),
        metrics: None,
        streams: Default::default(),
        dev_login: false,
        seat_caches: Default::default(),
    };
    let node = Node { app: api::router(state), auth, store, _dir: dir };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while node.send("GET", "/readyz", None, None, &[]).await.0 != StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "the one-node store never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node
}

impl Node {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let res = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = to_bytes(body, 1 << 22).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, value, parts.headers)
    }

    fn token(&self, user: &str, admin: bool) -> String {
        self.auth.mint(user, admin, 3600)
    }
}

/// A venue with one seated section `A` (row 1, 10 seats).
async fn venue(n: &Node, admin: &str) -> Value {
    let (status, venue, _) = n
        .send("POST", "/v1/venues", Some(admin), Some(json!({
            "name": "Hall", "city": "Springfield", "country": "US", "location": {"lat": 40.0, "lon": -75.0},
            "sections": [{"name": "A", "kind": "seated", "rows": [{"name": "1", "seats": 10}]}]
        })), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{venue}");
    venue
}

async fn event(n: &Node) -> String {
    let admin = n.token("admin", true);
    let venue = venue(n, &admin).await;
    let (status, event, _) = n
        .send("POST", "/v1/events", Some(&admin), Some(json!({
            "name": "Night", "type": "concert", "venue_id": venue["id"], "starts_at": "2030-01-01T20:00:00Z",
            "prices": {"A": 5000}, "currency": "USD", "per_user_limit": 8, "hold_seconds": 600
        })), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    event["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_stay_paged_whatever_a_client_claims_to_be() {
    let n = node().await;
    let event = event(&n).await;
    let user = n.token("gus", false);
    for seat in ["A-1-1", "A-1-2"] {
        let (status, hold, _) = n
            .send(
                "POST",
                "/v1/booking/reserve",
                Some(&user),
                Some(json!({"event_id": event, "ticket_ids": [seat]})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hold}");
        let body = json!({"hold_id": hold["hold_id"], "payment": {"token": "tok_visa"}});
        let (status, booking, _) = n.send("POST", "/v1/booking/confirm", Some(&user), Some(body), &[]).await;
        assert_eq!(status, StatusCode::CREATED, "{booking}");
    }
    let forged = [("x-boxoffice-forwarded", "1"), ("x-forwarded-for", "10.1.2.3")];
    let (status, page, _) = n.send("GET", "/v1/me/bookings?limit=1", Some(&user), None, &forged).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["bookings"].as_array().map(Vec::len), Some(1), "{page}");
    let cursor = page["next_cursor"].as_str().expect("a next page").to_string();
    let (_, rest, _) =
        n.send("GET", &format!("/v1/me/bookings?limit=1&cursor={cursor}"), Some(&user), None, &[]).await;
    assert_eq!(rest["bookings"].as_array().map(Vec::len), Some(1), "{rest}");
    assert!(rest["next_cursor"].is_null(), "{rest}");
    n.store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_holds_and_events_are_problems_naming_what_is_missing() {
    let n = node().await;
    let user = n.token("hal", false);
    let (status, body, headers) = n.send("GET", "/v1/holds/hld_evt_nope_1", Some(&user), None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(body["code"], "not_found", "{body}");
    let (status, body, _) = n
        .send(
            "POST",
            "/v1/booking/reserve",
            Some(&user),
            Some(json!({"event_id": "evt_nope", "section": "A", "quantity": 1})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    n.store.shutdown().await;
}

/// RFC 3339 of now plus `seconds`.
fn from_now(seconds: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    at.format(&time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_close_at_sales_end_and_past_events_are_refused() {
    let n = node().await;
    let admin = n.token("admin", true);
    let venue = venue(&n, &admin).await;
    let create = |starts_at: &str, sales_end: Option<String>| {
        let mut body = json!({"name": "Night", "type": "concert", "venue_id": venue["id"], "starts_at": starts_at,
            "prices": {"A": 5000}, "currency": "USD"});
        if let Some(end) = sales_end {
            body["sales_end"] = json!(end);
        }
        body
    };
    // An event dated 2001 is not created (it once was, and sold a hold).
    let (status, problem, _) =
        n.send("POST", "/v1/events", Some(&admin), Some(create("2001-01-01T20:00:00Z", None)), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], "starts_at", "{problem}");

    // Sales end in 4 s: room for the create and one reserve on a busy machine.
    let closes = tokio::time::Instant::now() + Duration::from_secs(4);
    let end = from_now(4);
    let (status, event, _) = n
        .send(
            "POST",
            "/v1/events",
            Some(&admin),
            Some(create("2030-01-01T20:00:00Z", Some(end.clone()))),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let id = event["id"].as_str().unwrap().to_string();
    assert_ne!(event["sales_end"], event["starts_at"], "{event}");
    let user = n.token("hal", false);
    let reserve = |seat: &'static str| json!({"event_id": id, "ticket_ids": [seat]});
    let (status, hold, _) =
        n.send("POST", "/v1/booking/reserve", Some(&user), Some(reserve("A-1-1")), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");

    tokio::time::sleep_until(closes + Duration::from_millis(300)).await;
    let (status, problem, _) =
        n.send("POST", "/v1/booking/reserve", Some(&user), Some(reserve("A-1-2")), &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "event_closed", "{problem}");
    // A hold made before the end is still bought.
    let body = json!({"hold_id": hold["hold_id"], "payment": {"token": "tok_visa"}});
    let (status, booking, _) = n.send("POST", "/v1/booking/confirm", Some(&user), Some(body), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");

    // The organizer reopens the sale, then closes it early; the start cannot move into the past.
    let path = format!("/v1/events/{id}");
    let (status, patched, _) =
        n.send("PATCH", &path, Some(&admin), Some(json!({"sales_end": "2029-12-31T00:00:00Z"})), &[]).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (status, hold, _) =
        n.send("POST", "/v1/booking/reserve", Some(&user), Some(reserve("A-1-2")), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let (status, patched, _) =
        n.send("PATCH", &path, Some(&admin), Some(json!({"sales_end": from_now(0)})), &[]).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (status, problem, _) =
        n.send("POST", "/v1/booking/reserve", Some(&user), Some(reserve("A-1-3")), &[]).await;
    assert_eq!(problem["code"], "event_closed", "{status} {problem}");
    let (status, problem, _) =
        n.send("PATCH", &path, Some(&admin), Some(json!({"starts_at": "2001-01-01T20:00:00Z"})), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], "starts_at", "{problem}");
    n.store.shutdown().await;
}

/// Reserve `seat` for `user` and pay with `card`: the booking.
async fn book(n: &Node, user: &str, event: &str, seat: &str, card: &str) -> Value {
    let body = json!({"event_id": event, "ticket_ids": [seat]});
    let (status, hold, _) = n.send("POST", "/v1/booking/reserve", Some(user), Some(body), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let body = json!({"hold_id": hold["hold_id"], "payment": {"token": card}});
    let (status, booking, _) = n.send("POST", "/v1/booking/confirm", Some(user), Some(body), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    booking
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_refund_keeps_the_booking_and_the_window_binds_buyers_only() {
    let n = node().await;
    let event = event(&n).await;
    let (ann, admin) = (n.token("ann", false), n.token("root", true));
    // The provider declines this card's refunds: 402, and the booking stays confirmed.
    let declined = book(&n, &ann, &event, "A-1-1", "tok_refundDeclined").await;
    let id = declined["booking_id"].as_str().unwrap();
    let cancel = format!("/v1/bookings/{id}/cancel");
    let (status, problem, _) = n.send("POST", &cancel, Some(&ann), None, &[]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("payment_declined")),
        "{problem}"
    );
    let (_, read, _) = n.send("GET", &format!("/v1/bookings/{id}"), Some(&ann), None, &[]).await;
    assert_eq!(read["status"], "confirmed", "{read}");

    // A retry with the same Idempotency-Key gets the cancel's final answer, not a second refund.
    let visa = book(&n, &ann, &event, "A-1-2", "tok_visa").await;
    let cancel = format!("/v1/bookings/{}/cancel", visa["booking_id"].as_str().unwrap());
    let key = [("idempotency-key", "cancel-1")];
    let (status, first, _) = n.send("POST", &cancel, Some(&ann), None, &key).await;
    assert_eq!((status, first["status"].as_str()), (StatusCode::OK, Some("refunded")), "{first}");
    let (status, again, _) = n.send("POST", &cancel, Some(&ann), None, &key).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    let (status, problem, _) = n.send("POST", &cancel, Some(&ann), None, &[]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_refundable")),
        "{problem}"
    );

    // The admin closes the buyers' window: ann may not cancel now, the admin still may.
    let late = book(&n, &ann, &event, "A-1-3", "tok_visa").await;
    let patch = json!({"refund_until": "2020-01-01T00:00:00Z"});
    let (status, e, _) =
        n.send("PATCH", &format!("/v1/events/{event}"), Some(&admin), Some(patch), &[]).await;
    assert_eq!((status, e["refund_until"].as_str()), (StatusCode::OK, Some("2020-01-01T00:00:00Z")), "{e}");
    let cancel = format!("/v1/bookings/{}/cancel", late["booking_id"].as_str().unwrap());
    let (status, problem, _) = n.send("POST", &cancel, Some(&ann), None, &[]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_refundable")),
        "{problem}"
    );
    let (status, done, _) = n.send("POST", &cancel, Some(&admin), None, &[]).await;
    assert_eq!((status, done["status"].as_str()), (StatusCode::OK, Some("refunded")), "{done}");
    assert!(done["refund_ref"].as_str().is_some_and(|r| r.starts_with("re_test_refund:")), "{done}");
    n.store.shutdown().await;
}
