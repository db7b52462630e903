//! # web — the box office in a browser
//!
//! Owns the HTML pages (`/`, `/events/{id}`, `/me`, `/admin`, `/ops`) and their assets
//! (`/assets/{file}`: one stylesheet, one shared script, one script per page). Every byte
//! is embedded in the binary with `include_str!` from `api/web/`: no build step, no CDN,
//! no file system at run time. The pages talk only to the public API, from the browser.
//!
//! A page is the shared shell `api/web/page.html` with the page's `<main>` (its own
//! `api/web/<page>.html`), title and script put in. Each body is assembled once, on first
//! use, with its strong `ETag` (the first 20 hex digits of the SHA-256 of the bytes);
//! `If-None-Match` with it gets `304`. Pages are `Cache-Control: no-cache` (always
//! revalidated, so a new build shows at once); assets `public, max-age=300`.
//!
//! `/events/{id}` serves the same shell for any id: the page asks the API for the event
//! and shows "no such event" on its 404. Unknown assets are the API's JSON 404.
//!
//! [`routes`] is generic over the router's state so it can be tested without a store.
//! Must not call into the store: pages are static bytes.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// `Cache-Control` of the pages: revalidate every time (the `ETag` makes that a `304`).
pub const PAGE_CACHE_CONTROL: &str = "no-cache";
/// `Cache-Control` of the assets: five minutes, then revalidate.
pub const ASSET_CACHE_CONTROL: &str = "public, max-age=300";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The shell every page shares: header, navigation, sign-in area, `#error`.
const SHELL: &str = include_str!("../web/page.html");

/// The pages: (name, title, main content). The script is `/assets/<name>.js`.
const PAGES: &[(&str, &str, &str)] = &[
    ("home", "Events", include_str!("../web/home.html")),
    ("event", "Event", include_str!("../web/event.html")),
    ("me", "My bookings", include_str!("../web/me.html")),
    ("admin", "Organizer", include_str!("../web/admin.html")),
    ("ops", "Operator console", include_str!("../web/ops.html")),
];

/// The assets under `/assets/`: (file name, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", CSS, include_str!("../web/app.css")),
    ("common.js", JS, include_str!("../web/common.js")),
    ("home.js", JS, include_str!("../web/home.js")),
    ("event.js", JS, include_str!("../web/event.js")),
    ("me.js", JS, include_str!("../web/me.js")),
    ("admin.js", JS, include_str!("../web/admin.js")),
    ("ops.js", JS, include_str!("../web/ops.js")),
];

/// One servable body with its headers' values, made once.
struct Served {
    body: String,
    etag: HeaderValue,
    content_type: &'static str,
    cache_control: &'static str,
}

impl Served {
    fn new(body: String, content_type: &'static str, cache_control: &'static str) -> Self {
        let digest = hex::encode(Sha256::digest(body.as_bytes()));
        let etag = HeaderValue::from_str(&format!("\"w{}\"", &digest[..20])).expect("hex is a valid header");
        Served { body, etag, content_type, cache_control }
    }

    /// The body, or `304` when the request already has these bytes.
    fn respond(&'static self, headers: &HeaderMap) -> Response {
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|inm| inm.split(',').map(str::trim).any(|t| t == "*" || t.as_bytes() == self.etag.as_bytes()));
        let mut response =
            if fresh { StatusCode::NOT_MODIFIED.into_response() } else { self.body.as_str().into_response() };
        let h = response.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.cache_control));
        if !fresh {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        }
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        response
    }
}

/// Put a page's title, main content and script into the shell.
fn assemble(name: &str, title: &str, main: &str) -> String {
    assert!(SHELL.contains("{{main}}") && SHELL.contains("{{script}}"), "the shell has its slots");
    let page = SHELL
        .replace("{{title}}", title)
        .replace("{{page}}", name)
        .replace("{{script}}", &format!("/assets/{name}.js"))
        .replace("{{main}}", main);
    assert!(!page.contains("{{"), "page {name}: every slot filled");
    page
}

static SERVED_PAGES: LazyLock<Vec<(&'static str, Served)>> = LazyLock::new(|| {
    PAGES
        .iter()
        .map(|(name, title, main)| (*name, Served::new(assemble(name, title, main), HTML, PAGE_CACHE_CONTROL)))
        .collect()
});

static SERVED_ASSETS: LazyLock<Vec<(&'static str, Served)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|(file, content_type, body)| (*file, Served::new(body.to_string(), content_type, ASSET_CACHE_CONTROL)))
        .collect()
});

fn page(name: &str) -> &'static Served {
    let found = SERVED_PAGES.iter().find(|(n, _)| *n == name);
    &found.unwrap_or_else(|| panic!("page {name} is in PAGES")).1
}

/// The names of the pages' assets and the pages (for tests and docs).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(file, _, _)| *file)
}

/// The page routes and `/assets/{file}`, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { page("home").respond(&h) }))
        .route("/events/{id}", get(|h: HeaderMap| async move { page("event").respond(&h) }))
        .route("/me", get(|h: HeaderMap| async move { page("me").respond(&h) }))
        .route("/admin", get(|h: HeaderMap| async move { page("admin").respond(&h) }))
        .route("/ops", get(|h: HeaderMap| async move { page("ops").respond(&h) }))
        .route("/assets/{file}", get(asset))
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match SERVED_ASSETS.iter().find(|(name, _)| *name == file) {
        Some((_, served)) => served.respond(&headers),
        None => ApiError::not_found(format!("no asset {file:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_assembles_with_its_script() {
        for (name, _, _) in PAGES {
            let body = &page(name).body;
            assert!(body.contains(&format!("src=\"/assets/{name}.js\"")), "{name} loads its script");
            assert!(ASSETS.iter().any(|(f, _, _)| *f == format!("{name}.js")), "{name}.js is an asset");
        }
    }
}
