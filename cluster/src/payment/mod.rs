//! Payment providers, behind one trait. A charge is keyed by the hold id, used as the
//! provider's idempotency key, so that retrying after a timeout or a crash charges at most
//! once: the provider answers a repeated key with the first result. A refund is keyed the
//! same way (`refund:<booking id>`, see `tickets::inventory::RefundAttempt::refund_key`), so a
//! booking is refunded at most once whatever crashes in between.
//!
//! - [`TestProvider`]: built in, no network; the cards of docs/api.md (`tok_visa`,
//!   `tok_chargeDeclined`, `tok_timeout`, and for refunds `tok_refundDeclined`,
//!   `tok_refundTimeout`).
//! - [`StripeProvider`]: a Stripe-compatible HTTP provider (PaymentIntents).

mod stripe;
mod test_provider;

use std::time::Duration;

pub use stripe::{StripeConfig, StripeProvider};
pub use test_provider::{TestProvider, REFUND_TIMEOUTS};

/// How long one charge attempt may take before it counts as timed out (and is retried
/// with the same idempotency key).
pub const CHARGE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The hold id: the provider's idempotency key.
    pub idempotency_key: String,
    pub amount: u64,
    pub currency: String,
    pub token: String,
    /// Free text for the provider's dashboard.
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        payment_ref: String,
    },
    /// Final: the card was declined. The hold goes back to active.
    Declined {
        detail: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    /// The outcome is unknown (timeout, connection reset, 5xx): retry with the same key.
    #[error("charge outcome unknown: {0}")]
    Unknown(String),
}

/// Give back a charge in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    /// `refund:<booking id>` (`-<attempt>` after a decline): the provider's idempotency key.
    pub idempotency_key: String,
    /// The charge's reference (its `payment_ref`).
    pub payment_ref: String,
    pub amount: u64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    Refunded {
        refund_ref: String,
    },
    /// Final: the provider refused. The booking goes back to confirmed.
    Declined {
        detail: String,
    },
}

#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ChargeError>;
    /// Refund a charge. An `Err` leaves the outcome unknown: retry with the same key.
    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ChargeError>;
}
