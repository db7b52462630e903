//! Request bodies, paths and headers: JSON parsed by hand so every mistake becomes a 400
//! problem naming the field, bodies over [`BODY_BYTES_MAX`] a 413, path parameters whose
//! rejections are problems too ([`ApiPath`]), and the `Idempotency-Key` header checked and
//! fingerprinted with the body it came with.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use tickets::inventory::Idempotency;
use tickets::limits::IDEMPOTENCY_KEY_BYTES_MAX;

use crate::error::ApiError;

/// Largest request body, in bytes; larger is 413 `payload_too_large`.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

/// A JSON body: parsed with `deny_unknown_fields` types; errors name the field.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(format!("body larger than {BODY_BYTES_MAX} bytes"))
            } else {
                ApiError::invalid("body", e.body_text())
            }
        })?;
        let value = parse_json(&raw)?;
        Ok(JsonBody { value, raw })
    }
}

/// A path parameter, as axum's `Path`, but a value that does not fit (`/v1/cluster/nodes/x`
/// for a number, bytes that are not UTF-8 once percent-decoded) is 400 `invalid_request`
/// naming the parameter, as problem+json like every other answer (axum's own rejection is
/// plain text).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                // Name the parameter: axum says which for some errors; a route with a single
                // parameter (`{id}` as a number) has only one it can be.
                let names: Vec<String> = match RawPathParams::from_request_parts(parts, state).await {
                    Ok(raw) => raw.iter().map(|(k, _)| k.to_string()).collect(),
                    Err(_) => Vec::new(),
                };
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => key.clone(),
                    ErrorKind::ParseErrorAtIndex { index, .. } => {
                        names.get(*index).cloned().unwrap_or_else(|| "path".into())
                    }
                    _ if names.len() == 1 => names[0].clone(),
                    _ => "path".to_string(),
                };
                Err(ApiError::invalid(field, e.body_text()))
            }
            Err(e) => Err(ApiError::invalid("path", e.body_text())),
        }
    }
}

/// A JSON object body as `T`. Every request body of the API is an object: anything else
/// (an array, which serde would read into a struct field by field, a string, a number) is
/// 400 `invalid_request` on `body`. A body that ends too early, or is not JSON at all, is
/// blamed on `body`; a value of the wrong type on its path (`sections[0].rows`).
/// A query string as the handler's `Result<Query<T>, _>` got it: a bad one is a problem+json
/// 400 `invalid_request` naming the parameter when serde says which (an unknown one).
pub fn query_params<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| {
        let text = e.body_text();
        let field =
            text.split('`').nth(1).filter(|_| text.contains("unknown field")).unwrap_or("query").to_string();
        ApiError::invalid(field, text)
    })?;
    Ok(q)
}

pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    match raw.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::invalid("body", "a JSON body is required")),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid("body", "must be a JSON object ({...})")),
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    // Bytes after the object (`{...} x`) are not one JSON document.
    de.end().map_err(|_| ApiError::invalid("body", "must be one JSON object, with nothing after it"))?;
    Ok(value)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        serde_json::error::Category::Eof => ApiError::invalid(
            "body",
            format!(
                "the body is not complete JSON: it ends early (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        ),
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
            ApiError::invalid("body", format!("the body is not valid JSON: {inner}"))
        }
        serde_json::error::Category::Data => {
            let field = if path == "." || path.is_empty() { "body".to_string() } else { path };
            ApiError::invalid(field, inner.to_string())
        }
    }
}

/// The `Idempotency-Key` header, if any, fingerprinted with the request's route and body.
pub fn idempotency(headers: &HeaderMap, route: &str, body: &[u8]) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?;
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!("must be 1..={IDEMPOTENCY_KEY_BYTES_MAX} bytes"),
        ));
    }
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(body);
    Ok(Some(Idempotency { key: key.to_string(), fingerprint: hex::encode(hash.finalize()) }))
}

#[cfg(test)]
mod tests {
    use super::parse_json;
    use crate::dto::{ReserveRequest, VenueCreate};

    fn field_and_detail<T: serde::de::DeserializeOwned>(raw: &str) -> (String, String) {
        let e = parse_json::<T>(raw.as_bytes()).err().expect("refused");
        let parts = e.parts();
        assert_eq!(parts.status, axum::http::StatusCode::BAD_REQUEST, "{raw}");
        (parts.field.clone().unwrap_or_default(), parts.detail.clone())
    }

    #[test]
    fn an_array_is_not_an_object() {
        // serde reads a struct from a sequence, field by field: `["evt_1"]` was a reserve.
        for raw in [r#"["evt_1", ["A-1-1"]]"#, " [] ", "\"x\"", "12", "null", "true"] {
            let (field, detail) = field_and_detail::<ReserveRequest>(raw);
            assert_eq!(field, "body", "{raw}");
            assert!(detail.contains("must be a JSON object"), "{raw}: {detail}");
        }
        parse_json::<ReserveRequest>(br#" {"event_id": "evt_1", "ticket_ids": ["A-1-1"]} "#).unwrap();
    }

    #[test]
    fn a_truncated_body_is_not_blamed_on_a_field() {
        for raw in
            [r#"{"event_id": "evt_1", "ticket_ids": ["A-1"#, r#"{"event_id": "ev"#, "{", r#"{"event_id":"#]
        {
            let (field, detail) = field_and_detail::<ReserveRequest>(raw);
            assert_eq!(field, "body", "{raw}");
            assert!(detail.contains("not complete JSON"), "{raw}: {detail}");
        }
        let (field, detail) = field_and_detail::<ReserveRequest>(r#"{"event_id": "evt_1"} trailing"#);
        assert_eq!(field, "body");
        assert!(detail.contains("nothing after it"), "{detail}");
        let (field, _) = field_and_detail::<ReserveRequest>(r#"{"event_id": tru}"#);
        assert_eq!(field, "body");
    }

    #[test]
    fn field_paths_index_arrays() {
        let venue = |sections: &str| {
            format!(
                r#"{{"name": "V", "city": "C", "country": "X", "location": {{"lat": 1, "lon": 2}}, "sections": {sections}}}"#
            )
        };
        let (field, _) =
            field_and_detail::<VenueCreate>(&venue(r#"[{"name": "A", "kind": "seated", "rows": 3}]"#));
        assert_eq!(field, "sections[0].rows");
        let (field, _) = field_and_detail::<VenueCreate>(&venue(
            r#"[{"name": "A", "kind": "general", "capacity": 3}, {"name": 7, "kind": "general", "capacity": 3}]"#,
        ));
        assert_eq!(field, "sections[1].name");
        let (field, _) = field_and_detail::<VenueCreate>(&venue(
            r#"[{"name": "A", "kind": "seated", "rows": [{"name": "1", "seats": -1}]}]"#,
        ));
        assert_eq!(field, "sections[0].rows[0].seats");
    }
}
