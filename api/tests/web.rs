//! The web pages' routes without a socket or a store (`api::web::routes` is generic over the
//! router's state): every page and asset answers with its content type, `ETag` and
//! `Cache-Control`; `If-None-Match` gets `304`; unknown assets are the JSON 404; and each
//! page carries the ids and classes of the pages' contract that the browser tests drive.

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

fn app() -> Router {
    api::web::routes::<()>()
}

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn get(path: &str, if_none_match: Option<&str>) -> Got {
    let mut req = Request::get(path);
    if let Some(tag) = if_none_match {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let res = app().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = String::from_utf8(to_bytes(body, 1 << 22).await.unwrap().to_vec()).unwrap();
    Got { status: parts.status, headers: parts.headers, body }
}

fn header<'a>(g: &'a Got, name: header::HeaderName) -> &'a str {
    g.headers.get(&name).map(|v| v.to_str().unwrap()).unwrap_or_else(|| panic!("no {name} header"))
}

/// Every page, and the selectors of the contract (`docs/web.md`) it must contain.
const PAGES: &[(&str, &[&str])] = &[
    ("/", &["id=\"search\"", "name=\"term\"", "name=\"location\"", "name=\"date_from\"", "name=\"date_to\"", "id=\"events\""]),
    (
        "/events/evt_anything",
        &[
            "id=\"event-name\"",
            "id=\"event-when\"",
            "id=\"event-venue\"",
            "id=\"event-performers\"",
            "id=\"availability\"",
            "id=\"prices\"",
            "<svg id=\"seatmap\"",
            "<select id=\"best-section\"",
            "id=\"best-qty\"",
            "id=\"best-available\"",
            "id=\"reserve\"",
            "id=\"hold\"",
            "id=\"hold-id\"",
            "id=\"hold-tickets\"",
            "id=\"countdown\"",
            "id=\"extend\"",
            "<select id=\"card\"",
            "value=\"tok_visa\"",
            "value=\"tok_chargeDeclined\"",
            "value=\"tok_timeout\"",
            "id=\"pay\"",
            "id=\"release\"",
            "id=\"booking\"",
            "id=\"booking-id\"",
            "id=\"queue-join\"",
            "id=\"queue-position\"",
            "id=\"queue-ahead\"",
            "id=\"queue-wait\"",
            "id=\"queue-status\"",
            "id=\"admission-countdown\"",
            "<section id=\"buy\" hidden",
        ],
    ),
    ("/me", &["<ul id=\"bookings\""]),
    (
        "/admin",
        &[
            "<form id=\"venue-form\"",
            "id=\"add-section\"",
            "<svg id=\"venue-preview\"",
            "id=\"venue-save\"",
            "id=\"venue-created\"",
            "<form id=\"event-form\"",
            "<select id=\"event-venue\"",
            "name=\"starts_at\" type=\"datetime-local\"",
            "name=\"on_sale_at\"",
            "name=\"hold_seconds\"",
            "name=\"per_user_limit\"",
            "name=\"queue_enabled\"",
            "name=\"max_admitted\"",
            "name=\"admission_seconds\"",
            "id=\"event-save\"",
            "id=\"event-created\"",
            "<table id=\"admin-events\"",
            "<form id=\"performer-form\"",
            "name=\"genre\"",
            "id=\"performer-created\"",
        ],
    ),
    ("/ops", &["<table id=\"nodes\"", "<table id=\"groups\"", "id=\"figures\""]),
];

/// What every page's shell has: navigation, the sign-in area and `#error`.
const SHELL: &[&str] = &[
    "href=\"/\"",
    "href=\"/me\"",
    "href=\"/admin\"",
    "href=\"/ops\"",
    "id=\"whoami\"",
    "<textarea id=\"signin-token\"",
    "id=\"signin-save\"",
    "id=\"signout\"",
    "<form id=\"dev-login\"",
    "id=\"dev-user\"",
    "type=\"checkbox\" id=\"dev-admin\"",
    "id=\"dev-login-submit\"",
    "id=\"error\" role=\"alert\"",
    "href=\"/assets/app.css\"",
];

#[tokio::test]
async fn every_page_is_html_with_the_contract_ids_and_revalidates_with_its_etag() {
    for (path, ids) in PAGES {
        let g = get(path, None).await;
        assert_eq!(g.status, StatusCode::OK, "{path}");
        assert_eq!(header(&g, header::CONTENT_TYPE), "text/html; charset=utf-8", "{path}");
        assert_eq!(header(&g, header::CACHE_CONTROL), "no-cache", "{path}");
        for id in SHELL.iter().chain(ids.iter()) {
            assert!(g.body.contains(id), "{path} contains {id}");
        }
        let etag = header(&g, header::ETAG).to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{path}: a strong ETag: {etag}");
        let again = get(path, Some(&etag)).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path} with its ETag");
        assert!(again.body.is_empty(), "{path}: a 304 has no body");
        assert_eq!(header(&again, header::ETAG), etag, "{path}: the 304 names the same ETag");
        let listed = get(path, Some(&format!("\"other\", {etag}"))).await;
        assert_eq!(listed.status, StatusCode::NOT_MODIFIED, "{path}: a list of tags that holds it");
        let stale = get(path, Some("\"stale\"")).await;
        assert_eq!(stale.status, StatusCode::OK, "{path} with another ETag");
    }
}

#[tokio::test]
async fn each_page_loads_the_shared_script_and_its_own() {
    for (path, script) in [("/", "home"), ("/events/x", "event"), ("/me", "me"), ("/admin", "admin"), ("/ops", "ops")] {
        let g = get(path, None).await;
        assert!(g.body.contains(&format!("src=\"/assets/{script}.js\"")), "{path} loads {script}.js");
        let js = get(&format!("/assets/{script}.js"), None).await;
        assert!(js.body.contains("/assets/common.js"), "{script}.js imports common.js");
    }
}

#[tokio::test]
async fn assets_answer_with_type_etag_and_cache_control() {
    let names: Vec<&str> = api::web::asset_names().collect();
    for want in ["app.css", "common.js", "home.js", "event.js", "me.js", "admin.js", "ops.js"] {
        assert!(names.contains(&want), "{want} is served");
    }
    for name in names {
        let path = format!("/assets/{name}");
        let g = get(&path, None).await;
        assert_eq!(g.status, StatusCode::OK, "{path}");
        let want = if name.ends_with(".css") { "text/css; charset=utf-8" } else { "text/javascript; charset=utf-8" };
        assert_eq!(header(&g, header::CONTENT_TYPE), want, "{path}");
        assert_eq!(header(&g, header::CACHE_CONTROL), "public, max-age=300", "{path}");
        assert!(!g.body.is_empty(), "{path} has bytes");
        let etag = header(&g, header::ETAG).to_string();
        assert_eq!(get(&path, Some(&etag)).await.status, StatusCode::NOT_MODIFIED, "{path} with its ETag");
        assert_eq!(get(&path, Some("*")).await.status, StatusCode::NOT_MODIFIED, "{path} with *");
    }
}

#[tokio::test]
async fn unknown_assets_are_the_json_404() {
    for path in ["/assets/nope.js", "/assets/app.css.map", "/assets/..%2Fweb.rs"] {
        let g = get(path, None).await;
        assert_eq!(g.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(header(&g, header::CONTENT_TYPE), "application/problem+json", "{path}");
        let body: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(body["code"], "not_found", "{path}: {body}");
    }
}

#[tokio::test]
async fn the_same_bytes_keep_the_same_etag() {
    let a = get("/events/evt_a", None).await;
    let b = get("/events/evt_b", None).await;
    assert_eq!(a.body, b.body, "every event gets the same shell");
    assert_eq!(header(&a, header::ETAG), header(&b, header::ETAG));
    let home = get("/", None).await;
    assert_ne!(header(&home, header::ETAG), header(&a, header::ETAG), "pages differ, so do their tags");
}
