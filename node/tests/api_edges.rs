//! The edges of the HTTP API over a real process (issue 16): the served OpenAPI document is
//! exact (3.1, path parameters only where the path has them, every error problem+json);
//! every error answer is `application/problem+json` with a body — hyper's own answers to a
//! request it cannot parse (414, 431, 400) and axum's rejections (unknown route, method,
//! body size, path parameter) included; `bearer` in any case; `limit=0` the same 400 on
//! search and my bookings; a JSON array or a truncated body a clear 400 on `body`; field
//! paths of one form (`sections[0].rows[0].seats`).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{token, Answer, Node};
use serde_json::{json, Value};

const PROBLEM: &str = "application/problem+json";

fn content_type(a: &Answer) -> &str {
    a.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A problem+json answer with this status and code; returns its body.
#[track_caller]
fn problem(a: &Answer, status: u16, code: &str) -> Value {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(content_type(a), PROBLEM, "{} {}", a.status, a.body);
    assert_eq!(a.body["code"], code, "{}", a.body);
    assert_eq!(a.body["status"], status, "{}", a.body);
    a.body.clone()
}

/// Send raw bytes, read the whole answer (the server closes after these errors).
fn raw(base: &str, request: &[u8]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_document_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let doc = node.client().get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let doc = doc.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    let mut wrong = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                if p["in"] == "path" && !path.contains(&format!("{{{name}}}")) {
                    wrong.push(format!("{method} {path}: {name} in: path is not in the path"));
                }
                if p["in"] == "query" && p["required"] == true {
                    wrong.push(format!("{method} {path}: query parameter {name} is required"));
                }
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let media: Vec<&String> =
                        response["content"].as_object().map(|c| c.keys().collect()).unwrap_or_default();
                    if media != [PROBLEM] {
                        wrong.push(format!("{method} {path} {status}: {media:?}"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_answer_problems() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let admin = token("admin", true);
    let alice = token("alice", false);
    let event = common::small_event(&c, 600, 8).await;

    // The auth scheme is case-insensitive (RFC 7235).
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {alice}");
        let a = c.send("GET", "/v1/me/bookings", None, None, &[("authorization", &auth)]).await;
        assert_eq!(a.status, 200, "{scheme}: {}", a.body);
    }
    let a =
        c.send("GET", "/v1/me/bookings", None, None, &[("authorization", &format!("Basic {alice}"))]).await;
    problem(&a, 401, "unauthorized");

    // limit=0 (and over 100) is the same 400 on both pages.
    for path in
        ["/v1/search?limit=0", "/v1/me/bookings?limit=0", "/v1/search?limit=101", "/v1/me/bookings?limit=101"]
    {
        let a = c.get(path, Some(&alice)).await;
        let body = problem(&a, 400, "invalid_request");
        assert_eq!(body["field"], "limit", "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("1..=100"), "{path}: {body}");
    }
    assert_eq!(c.get("/v1/search?limit=1", None).await.status, 200);

    // A JSON array is not a reserve.
    let a = c.send("POST", "/v1/booking/reserve", Some(&alice), Some(json!([event, ["A-1-1"]])), &[]).await;
    let body = problem(&a, 400, "invalid_request");
    assert_eq!(body["field"], "body", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("JSON object"), "{body}");

    // A truncated body is the body's fault, not a field's.
    let truncated = format!(r#"{{"event_id": "{event}", "ticket_ids": ["A-1"#);
    let a = c
        .http
        .post(format!("{}/v1/booking/reserve", c.base))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(truncated)
        .send()
        .await
        .unwrap();
    let a = answer(a).await;
    let body = problem(&a, 400, "invalid_request");
    assert_eq!(body["field"], "body", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("not complete JSON"), "{body}");

    // One form of field path, from the parser and from the rules alike.
    let venue = |sections: Value| json!({"name": "V", "city": "C", "country": "X", "location": {"lat": 1.0, "lon": 2.0}, "sections": sections});
    for (sections, field) in [
        (
            json!([{"name": "A", "kind": "seated", "rows": [{"name": "1", "seats": -1}]}]),
            "sections[0].rows[0].seats",
        ),
        (
            json!([{"name": "A", "kind": "seated", "rows": [{"name": "1", "seats": 0}]}]),
            "sections[0].rows[0].seats",
        ),
        (
            json!([{"name": "A", "kind": "general", "capacity": 5}, {"name": "A", "kind": "general", "capacity": 5}]),
            "sections[1].name",
        ),
        (json!([{"name": "A", "kind": "seated", "rows": []}]), "sections[0].rows"),
    ] {
        let a = c.post("/v1/venues", &admin, venue(sections)).await;
        let body = problem(&a, 400, "invalid_request");
        assert_eq!(body["field"], field, "{body}");
    }

    // axum's own rejections, as problems.
    problem(&c.get("/v1/no/such/route", None).await, 404, "not_found");
    problem(&c.send("DELETE", "/v1/search", None, None, &[]).await, 405, "method_not_allowed");
    let a = c.send("DELETE", "/v1/cluster/nodes/not-a-number", Some(&admin), None, &[]).await;
    assert_eq!(problem(&a, 400, "invalid_request")["field"], "id");
    let a = c.get("/v1/events/%FF%FE/layout", None).await;
    problem(&a, 400, "invalid_request");
    let big = vec![b' '; 2 * 1024 * 1024];
    let a = c
        .http
        .post(format!("{}/v1/booking/reserve", c.base))
        .bearer_auth(&alice)
        .body(big)
        .send()
        .await
        .unwrap();
    problem(&answer(a).await, 413, "payload_too_large");

    // hyper's own answers, before any route: a 100,000-character search term, too many
    // headers, a malformed header. Each a problem with a body.
    let long = format!("GET /v1/search?term={} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(100_000));
    let many: String = (0..200).map(|i| format!("x-h{i}: 1\r\n")).collect();
    for (request, status, code) in [
        (long, 414, "uri_too_long"),
        (format!("GET /v1/search HTTP/1.1\r\nhost: x\r\n{many}\r\n"), 431, "headers_too_large"),
        ("GET /v1/search HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n".to_string(), 400, "invalid_request"),
    ] {
        let (got, head, body) = raw(&node.base, request.as_bytes());
        assert_eq!(got, status, "{head}\n{body}");
        assert!(head.contains("content-type: application/problem+json"), "{head}");
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        assert_eq!(body["code"], code);
        assert_eq!(body["status"], status);
    }
    // The node is still well after all that.
    assert_eq!(c.get("/healthz", None).await.status, 200);
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body, headers }
}
