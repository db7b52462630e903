//! Bearer tokens for tests and load generators: HS256 JWTs with the claims the server checks
//! (`sub`, `exp`, and `role: "admin"` for admins; see `api/src/auth.rs`). A test in this crate
//! checks that the server's own verifier accepts what is minted here, so the two cannot drift.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
}

/// Mints tokens with the cluster's auth secret.
#[derive(Clone)]
pub struct Tokens {
    key: EncodingKey,
}

impl Tokens {
    pub fn new(secret: &[u8]) -> Self {
        Tokens { key: EncodingKey::from_secret(secret) }
    }

    /// A token for `user`, an admin's if `admin`, valid for `ttl_s` seconds from now.
    pub fn mint(&self, user: &str, admin: bool, ttl_s: u64) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = Claims { sub: user, exp: now + ttl_s, role: admin.then_some("admin") };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key).expect("HS256 signing works")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_accepts_what_is_minted_here() {
        let secret = b"kit-secret";
        let server = api::AuthKeys::new(secret);
        let user = server.verify(&Tokens::new(secret).mint("fan-1", false, 60)).expect("user token");
        assert_eq!((user.sub.as_str(), user.role), ("fan-1", None));
        let admin = server.verify(&Tokens::new(secret).mint("ops", true, 60)).expect("admin token");
        assert_eq!((admin.sub.as_str(), admin.role.as_deref()), ("ops", Some("admin")));
        assert!(server.verify(&Tokens::new(b"other").mint("fan-1", false, 60)).is_err(), "wrong secret");
    }
}
