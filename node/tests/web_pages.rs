//! The web pages on a real `boxoffice serve` process: served beside the API by the whole
//! router (not only `api::web::routes`), every page and asset with its type and caching
//! headers, an event's page for a real and an unknown id, and the JSON 404 still answering
//! unknown paths. (The pages' behaviour in a browser is `browser.rs`.)

mod common;

use common::{small_event, Node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_the_pages_beside_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;

    for path in [
        "/".to_string(),
        format!("/events/{event}"),
        "/events/evt_nope".into(),
        "/me".into(),
        "/admin".into(),
        "/ops".into(),
    ] {
        let a = c.get(&path, None).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.headers["content-type"], "text/html; charset=utf-8", "{path}");
        assert_eq!(a.headers["cache-control"], "no-cache", "{path}");
        let html = a.body.as_str().expect("HTML, not JSON");
        assert!(html.contains("id=\"whoami\"") && html.contains("id=\"error\""), "{path}: the shell");
        let etag = a.headers["etag"].to_str().unwrap().to_string();
        let again = c.send("GET", &path, None, None, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{path} with its ETag");
    }
    let event_page = c.get(&format!("/events/{event}"), None).await;
    assert!(event_page.body.as_str().unwrap().contains("<svg id=\"seatmap\""), "the event page has the map");

    for (file, kind) in
        [("app.css", "text/css"), ("common.js", "text/javascript"), ("event.js", "text/javascript")]
    {
        let a = c.get(&format!("/assets/{file}"), None).await;
        assert_eq!(a.status, 200, "{file}");
        assert!(
            a.headers["content-type"].to_str().unwrap().starts_with(kind),
            "{file}: {:?}",
            a.headers["content-type"]
        );
        assert_eq!(a.headers["cache-control"], "public, max-age=300", "{file}");
    }

    // Unknown paths and assets stay the API's JSON 404; the API itself is untouched.
    for path in ["/assets/nope.js", "/nope", "/events", "/events/x/y", "/v1/nope"] {
        let a = c.get(path, None).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.headers["content-type"], "application/problem+json", "{path}");
        assert_eq!(a.body["code"], "not_found", "{path}: {}", a.body);
    }
    let api = c.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(api.status, 200, "{}", api.body);
    assert_eq!(api.body["event"]["id"], event.as_str());
}
