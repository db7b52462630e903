//! Webhook endpoints, as the catalog keeps them: where to send the notices of the events'
//! outboxes (`inventory::outbox`), which kinds, and the secret that signs them. Registered and
//! removed by admins through the catalog's log, so every node's deliverer sees the same list.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::inventory::NoticeKind;
use crate::{Millis, Rejection};

/// Most endpoints a cluster keeps.
pub const WEBHOOKS_MAX: usize = 100;
/// Longest endpoint URL.
pub const WEBHOOK_URL_MAX: usize = 2_048;
/// A signing secret's length, in bytes.
pub const WEBHOOK_SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// What an admin registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSpec {
    /// `http://` or `https://`, with a host.
    pub url: String,
    /// The notice kinds wanted; at least one.
    pub events: BTreeSet<NoticeKind>,
    /// Signs every delivery (HMAC-SHA256); printable ASCII.
    pub secret: String,
}

/// A registered endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub spec: WebhookSpec,
    pub created_at: Millis,
}

impl WebhookSpec {
    pub fn validate(&self) -> Result<(), Rejection> {
        let url = self.url.as_str();
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        if url.len() > WEBHOOK_URL_MAX {
            return Err(Rejection::invalid("url", format!("at most {WEBHOOK_URL_MAX} bytes")));
        }
        if host.is_none_or(str::is_empty) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Rejection::invalid("url", "an http:// or https:// URL with a host, without spaces"));
        }
        if self.events.is_empty() {
            return Err(Rejection::invalid("events", "name at least one event type"));
        }
        if !WEBHOOK_SECRET_LEN.contains(&self.secret.len())
            || !self.secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Rejection::invalid(
                "secret",
                format!(
                    "{}..={} printable ASCII characters",
                    WEBHOOK_SECRET_LEN.start(),
                    WEBHOOK_SECRET_LEN.end()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str, events: &[NoticeKind], secret: &str) -> WebhookSpec {
        WebhookSpec { url: url.into(), events: events.iter().copied().collect(), secret: secret.into() }
    }

    #[test]
    fn what_an_endpoint_must_be() {
        let k = [NoticeKind::BookingConfirmed];
        let s = "0123456789abcdef";
        assert!(spec("https://example.com/hooks", &k, s).validate().is_ok());
        assert!(spec("http://127.0.0.1:9/x?y=1", &k, s).validate().is_ok());
        for (bad, field) in [
            (spec("ftp://example.com", &k, s), "url"),
            (spec("https://", &k, s), "url"),
            (spec("https:///path", &k, s), "url"),
            (spec("https://exa mple.com", &k, s), "url"),
            (spec(&format!("https://e.com/{}", "x".repeat(WEBHOOK_URL_MAX)), &k, s), "url"),
            (spec("https://e.com", &[], s), "events"),
            (spec("https://e.com", &k, "short"), "secret"),
            (spec("https://e.com", &k, "0123456789abcde\u{e9}"), "secret"),
            (spec("https://e.com", &k, &"s".repeat(257)), "secret"),
        ] {
            match bad.validate() {
                Err(Rejection::Invalid { field: f, .. }) => assert_eq!(f, field, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
