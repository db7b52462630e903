//! Dev sign-in: `POST /v1/dev/token {user, admin?}` → `{token}`, for trying the web pages
//! without a token printer. Only on a node started with `serve --dev-login` (and in
//! `boxoffice dev`); otherwise 404 `not_found`, as if the route did not exist. There are no
//! passwords here: anyone who reaches a dev-login node can act as anyone, admin included.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::parse_json;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// Longest dev user name, in characters (`[A-Za-z0-9_.-]` only).
pub const DEV_USER_CHARS_MAX: usize = 64;
/// How long a dev token lasts, in seconds.
pub const DEV_TOKEN_TTL_SECONDS: u64 = 12 * 3_600;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevTokenRequest {
    /// 1..=64 characters of `[A-Za-z0-9_.-]`; becomes the token's `sub`.
    pub user: String,
    /// Mint an admin token (`role: "admin"`); default false.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DevTokenOut {
    /// An HS256 JWT valid for 12 hours.
    pub token: String,
}

fn valid_user(user: &str) -> bool {
    (1..=DEV_USER_CHARS_MAX).contains(&user.len())
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[utoipa::path(post, path = "/v1/dev/token", tag = "dev", request_body = DevTokenRequest,
    responses((status = 200, body = DevTokenOut), (status = 400, body = Problem),
        (status = 404, body = Problem, description = "the node does not run with `--dev-login`")))]
pub async fn token(State(state): State<AppState>, body: Bytes) -> ApiResult<Json<DevTokenOut>> {
    // Checked before the body is read: a node without dev login has no such route.
    if !state.dev_login {
        return Err(ApiError::not_found("no such route (dev login is off: serve --dev-login turns it on)"));
    }
    let request: DevTokenRequest = parse_json(&body)?;
    if !valid_user(&request.user) {
        return Err(ApiError::invalid(
            "user",
            format!("must be 1..={DEV_USER_CHARS_MAX} characters of A-Z a-z 0-9 _ . -"),
        ));
    }
    Ok(Json(DevTokenOut { token: state.auth.mint(&request.user, request.admin, DEV_TOKEN_TTL_SECONDS) }))
}

#[cfg(test)]
mod tests {
    use super::valid_user;

    #[test]
    fn user_names() {
        for ok in ["alice", "a", "bob.smith-2_x", &"x".repeat(64)] {
            assert!(valid_user(ok), "{ok}");
        }
        for bad in ["", "al ice", "é", "a/b", &"x".repeat(65), "a\n"] {
            assert!(!valid_user(bad), "{bad:?}");
        }
    }
}
