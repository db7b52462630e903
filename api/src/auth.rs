//! Bearer JWT auth (HS256, signed with the cluster's auth secret). Claims: `sub` (the
//! user id), `exp`, optional `role: "admin"`. The user is never taken from a request body.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tickets::UserId;

use crate::error::ApiError;
use crate::state::AppState;

/// Longest user id (`sub`) accepted, in bytes.
pub const USER_ID_BYTES_MAX: usize = 128;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Signing and checking keys made from the auth secret. Shared: the handlers' state is
/// cloned for every request, and a key's clone would copy (and its drop zero) the secret.
#[derive(Clone)]
pub struct AuthKeys {
    keys: std::sync::Arc<(EncodingKey, DecodingKey)>,
}

impl AuthKeys {
    pub fn new(secret: &[u8]) -> Self {
        AuthKeys {
            keys: std::sync::Arc::new((EncodingKey::from_secret(secret), DecodingKey::from_secret(secret))),
        }
    }

    /// A token for `user`, valid `ttl_s` seconds.
    pub fn mint(&self, user: &str, admin: bool, ttl_s: u64) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims =
            Claims { sub: user.to_string(), exp: now + ttl_s, role: admin.then(|| "admin".to_string()) };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.keys.0)
            .expect("HS256 signing works")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.keys.1, &validation)
            .map_err(|e| ApiError::unauthorized(format!("bad token: {e}")))?;
        let sub = &data.claims.sub;
        if sub.is_empty() || sub.len() > USER_ID_BYTES_MAX {
            return Err(ApiError::unauthorized("bad token: sub must be 1..=128 bytes"));
        }
        Ok(data.claims)
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    bearer_token(value).ok_or_else(|| ApiError::unauthorized("Authorization must be 'Bearer <token>'"))
}

/// The token of an `Authorization` value `Bearer <token>`. The scheme is case-insensitive
/// (RFC 7235 §2.1: `bearer`, `BEARER` are the same scheme); one or more spaces follow it.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An authenticated user (any role): their token's `sub`, the one place a user id is made.
pub struct User(pub UserId);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let claims = state.auth.verify(bearer(parts)?)?;
        Ok(User(claims.sub.into()))
    }
}

/// An authenticated user and whether their token is an admin's (for routes open to both,
/// where an admin may do more: cancelling any booking at any time).
pub struct Caller {
    pub user: UserId,
    pub admin: bool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let claims = state.auth.verify(bearer(parts)?)?;
        Ok(Caller { admin: claims.role.as_deref() == Some("admin"), user: claims.sub.into() })
    }
}

/// An authenticated admin.
pub struct Admin(pub String);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let claims = state.auth.verify(bearer(parts)?)?;
        if claims.role.as_deref() != Some("admin") {
            return Err(ApiError::forbidden("this needs an admin token"));
        }
        Ok(Admin(claims.sub))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc ", " Bearer abc"] {
            assert_eq!(bearer_token(value), Some("abc"), "{value:?}");
        }
        for value in ["Bearer", "Bearer ", "Basic abc", "Bearerabc", "abc", "", "Token abc"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
