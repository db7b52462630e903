//! Rule violations: normal, deterministic replies, one variant per API error code.

use serde::{Deserialize, Serialize};

use crate::TicketId;

/// Why a command was refused. Decided identically on every replica; the API maps each
/// variant to its problem+json `code` (in parentheses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// (`invalid_request`, 400) a bad value; `field` names it.
    #[error("invalid {field}: {detail}")]
    Invalid { field: String, detail: String },
    /// (`not_found`, 404) no such venue, performer, event, hold or booking.
    #[error("{what} not found")]
    NotFound { what: String },
    /// (`forbidden`, 403) the hold or booking belongs to someone else.
    #[error("not yours")]
    Forbidden,
    /// (`ticket_unavailable`, 409) requested tickets are held or sold (or no adjacent run
    /// of seats / not enough general admission is left); `tickets` lists the taken ones.
    #[error("tickets unavailable")]
    TicketUnavailable { tickets: Vec<TicketId> },
    /// (`hold_expired`, 410) confirm, release or extend after the hold's expiry.
    #[error("hold expired")]
    HoldExpired,
    /// (`limit_exceeded`, 422) per-user limit, quantity out of range, extension limit.
    #[error("limit exceeded: {detail}")]
    LimitExceeded { detail: String },
    /// (`queue_admission_required`, 403) the queue is on and the user is not admitted.
    #[error("queue admission required")]
    QueueAdmissionRequired,
    /// (`idempotency_conflict`, 422) same key, different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    /// (`payment_declined`, 402) the provider declined; the hold stays live.
    #[error("payment declined: {detail}")]
    PaymentDeclined { detail: String },
    /// (`invalid_request`, 409 in spirit) the hold is not in a state that allows this
    /// (e.g. release while confirming, confirm of a released hold). API: `conflict`-like
    /// 409 with code `hold_not_active`.
    #[error("hold is {status}")]
    HoldNotActive { status: String },
    /// (`conflict`, 409) the request clashes with the cluster's state (a node id that is
    /// taken, a cluster id already set).
    #[error("conflict: {detail}")]
    Conflict { detail: String },
    /// (`event_closed`, 409) the event is cancelled or not on sale yet.
    #[error("event closed: {detail}")]
    EventClosed { detail: String },
    /// (`not_refundable`, 409) the booking was refunded already, or the buyer's refund
    /// window (`refund_until`) has closed.
    #[error("not refundable: {detail}")]
    NotRefundable { detail: String },
    /// (`payment_declined`, 402) the provider declined the refund; the booking stays
    /// confirmed and may be cancelled again.
    #[error("refund declined: {detail}")]
    RefundDeclined { detail: String },
}

impl Rejection {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Rejection::Invalid { field: field.into(), detail: detail.into() }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Rejection::NotFound { what: what.into() }
    }
    pub fn limit(detail: impl Into<String>) -> Self {
        Rejection::LimitExceeded { detail: detail.into() }
    }
}
