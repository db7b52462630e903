//! Request bodies and headers: JSON parsed by hand so every mistake becomes a 400
//! problem naming the field, bodies over [`BODY_BYTES_MAX`] a 413, and the
//! `Idempotency-Key` header checked and fingerprinted with the body it came with.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
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

pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid("body", "a JSON body is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        ApiError::invalid(field, e.into_inner().to_string())
    })
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
