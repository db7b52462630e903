//! The OpenAPI document is exact where a generated client or a fuzzer looks (issue 16):
//! it is OpenAPI 3.1, every parameter declared `in: path` is in its path template (and
//! every template variable is declared), query parameters are optional unless the
//! handler needs them, and every error answer is `application/problem+json` with the
//! problem schema. `node/tests/api_edges.rs` checks the served copy the same way, and
//! `scripts/fuzz-api.sh` runs a validator and a fuzzer against it.

use serde_json::Value;
use utoipa::OpenApi;

pub fn document() -> Value {
    serde_json::to_value(api::openapi::ApiDoc::openapi()).expect("the document serializes")
}

/// Every way the document is not exact, as readable lines (empty: exact).
pub fn problems(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let version = doc["openapi"].as_str().unwrap_or_default();
    if !version.starts_with("3.1.") {
        out.push(format!("openapi is {version:?}, not 3.1.x"));
    }
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let template: Vec<&str> =
            path.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name)).collect();
        for (method, op) in item.as_object().expect("path item") {
            let at = format!("{} {path}", method.to_uppercase());
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for p in &params {
                let name = p["name"].as_str().unwrap_or_default();
                match p["in"].as_str() {
                    Some("path") => {
                        if !template.contains(&name) {
                            out.push(format!("{at}: `{name}` is declared in: path but is not in the path"));
                        }
                        if p["required"] != Value::Bool(true) {
                            out.push(format!("{at}: path parameter `{name}` is not required"));
                        }
                    }
                    Some("query") if p["required"] == Value::Bool(true) => {
                        out.push(format!("{at}: query parameter `{name}` is required"));
                    }
                    Some("query" | "header") => {}
                    other => out.push(format!("{at}: `{name}` is in {other:?}")),
                }
            }
            for name in &template {
                let declared = params.iter().any(|p| p["in"] == "path" && p["name"] == *name);
                if !declared {
                    out.push(format!("{at}: path variable `{name}` is not declared"));
                }
            }
            if op["operationId"].as_str().is_none_or(str::is_empty) {
                out.push(format!("{at}: no operationId"));
            }
            let responses = op["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let content = response["content"].as_object();
                if status.starts_with('4') || status.starts_with('5') {
                    let media: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                    if media != ["application/problem+json"] {
                        out.push(format!(
                            "{at} {status}: content is {media:?}, not application/problem+json"
                        ));
                    } else if content.unwrap()["application/problem+json"]["schema"]["$ref"]
                        != "#/components/schemas/Problem"
                    {
                        out.push(format!("{at} {status}: not the Problem schema"));
                    }
                } else if (status == "304" || status == "204") && content.is_some_and(|c| !c.is_empty()) {
                    out.push(format!("{at} {status}: has content"));
                }
            }
            for status in ["414", "431", "500"] {
                if !responses.contains_key(status) {
                    out.push(format!("{at}: {status} is not declared"));
                }
            }
            if op.get("security").is_some() && !responses.contains_key("401") {
                out.push(format!("{at}: needs a token but 401 is not declared"));
            }
            if op.get("requestBody").is_some()
                && !(responses.contains_key("400") && responses.contains_key("413"))
            {
                out.push(format!("{at}: takes a body but 400 or 413 is not declared"));
            }
        }
    }
    out
}

#[test]
fn the_document_is_exact() {
    let doc = document();
    let problems = problems(&doc);
    assert!(problems.is_empty(), "the OpenAPI document is not exact:\n{}", problems.join("\n"));
}

#[test]
fn the_query_parameters_of_the_issue_are_in_query() {
    let doc = document();
    for (path, names) in [
        ("/v1/search", &["term", "location", "lat", "lon", "radius_km", "type", "limit", "cursor"][..]),
        ("/v1/events/{id}/tickets", &["since", "wait"][..]),
        ("/v1/me/bookings", &["limit", "cursor"][..]),
    ] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().expect(path);
        for name in names {
            let p = params.iter().find(|p| p["name"] == *name).unwrap_or_else(|| panic!("{path}: no {name}"));
            assert_eq!(p["in"], "query", "{path} {name}");
            assert_ne!(p["required"], Value::Bool(true), "{path} {name}");
        }
    }
    // The bounds the handlers enforce are in the document, so a fuzzer (or a client's
    // validation) stays within them.
    for path in ["/v1/search", "/v1/me/bookings"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["minimum"], 1, "{path}: {limit}");
        assert_eq!(limit["schema"]["maximum"], 100, "{path}: {limit}");
    }
    let params = doc["paths"]["/v1/events/{id}/tickets"]["get"]["parameters"].as_array().unwrap();
    let wait = params.iter().find(|p| p["name"] == "wait").unwrap();
    assert_eq!(wait["schema"]["maximum"], 60, "{wait}");
}

#[test]
fn the_checker_finds_what_the_issue_found() {
    // The checks can fail: a document with the old mistakes is refused.
    let mut doc = document();
    let search = &mut doc["paths"]["/v1/search"]["get"];
    search["parameters"][0]["in"] = "path".into();
    search["parameters"][0]["required"] = true.into();
    search["responses"]["400"]["content"] =
        serde_json::json!({"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let found = problems(&doc);
    assert!(found.iter().any(|p| p.contains("is declared in: path but is not in the path")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("not application/problem+json")), "{found:?}");
}

#[test]
fn operation_ids_are_stable() {
    // External clients are generated from these: renaming one breaks them.
    let doc = document();
    let mut ids: Vec<String> = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ids.push(op["operationId"].as_str().unwrap().to_string());
        }
    }
    ids.sort();
    for id in
        ["reserve", "confirm", "release", "search", "event_page", "tickets", "my_bookings", "create_venue"]
    {
        assert!(ids.iter().any(|i| i == id), "operationId {id} missing: {ids:?}");
    }
}

#[test]
fn cancel_and_refund_are_described() {
    let doc = document();
    let op = &doc["paths"]["/v1/bookings/{booking_id}/cancel"]["post"];
    assert_eq!(op["operationId"], "cancel_booking", "{op}");
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CancelOut"
    );
    for status in ["402", "403", "404", "409"] {
        assert!(op["responses"].get(status).is_some(), "cancel answers {status}");
    }
    let schemas = &doc["components"]["schemas"];
    let cancel = schemas["CancelOut"]["properties"].as_object().expect("CancelOut");
    for field in ["booking_id", "status", "refund_ref"] {
        assert!(cancel.contains_key(field), "CancelOut.{field}");
    }
    for (schema, field) in [
        ("BookingOut", "status"),
        ("BookingOut", "refund_ref"),
        ("EventCreate", "refund_until"),
        ("EventUpdate", "refund_until"),
        ("EventOut", "refund_until"),
    ] {
        assert!(schemas[schema]["properties"].get(field).is_some(), "{schema}.{field} missing");
    }
}

#[test]
fn queue_answers_document_the_wait_range() {
    // Issue 18: clients read the range from the schema, two whole seconds [low, high].
    let doc = document();
    let range = &doc["components"]["schemas"]["QueueOut"]["properties"]["estimated_wait_range"];
    assert_eq!(range["type"], "array", "{range}");
    assert_eq!((range["minItems"].as_u64(), range["maxItems"].as_u64()), (Some(2), Some(2)), "{range}");
    assert_eq!(range["items"]["type"], "integer", "{range}");
    let required = doc["components"]["schemas"]["QueueOut"]["required"].as_array().unwrap();
    assert!(required.iter().any(|r| r == "estimated_wait_range"), "{required:?}");
}
