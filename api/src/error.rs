//! API errors as `application/problem+json`, with the stable codes of docs/api.md. Internals
//! never leak: an internal error is logged with its detail and answered with a generic one.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use cluster::Error as StoreError;
use tickets::Rejection;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem kind (`https://boxoffice.dev/problems/<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Stable, machine-readable code (see docs/api.md).
    pub code: String,
    pub detail: String,
    /// For `invalid_request`: the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `ticket_unavailable`: the tickets that are held or sold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickets: Option<Vec<String>>,
    /// For `outcome_unknown`: the hold the write would have made or touched; look it up
    /// (`GET /v1/holds/{id}`) or retry with the same `Idempotency-Key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    /// For `outcome_unknown`: the booking it would have made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
}

/// An error answer. Boxed so `Result<_, ApiError>` stays small on the happy path.
#[derive(Debug)]
pub struct ApiError(Box<ErrorParts>);

#[derive(Debug)]
pub struct ErrorParts {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub field: Option<String>,
    pub tickets: Option<Vec<String>>,
    pub hold_id: Option<String>,
    pub booking_id: Option<String>,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError(Box::new(ErrorParts {
            status,
            code,
            title,
            detail: detail.into(),
            field: None,
            tickets: None,
            hold_id: None,
            booking_id: None,
            retry_after_s: None,
        }))
    }

    pub fn set_retry_after(&mut self, seconds: u64) {
        self.0.retry_after_s = Some(seconds);
    }

    pub fn parts(&self) -> &ErrorParts {
        &self.0
    }

    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let field = field.into();
        let detail = format!("{field}: {}", detail.into());
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request", "Invalid request", detail);
        e.0.field = Some(field);
        e
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large", detail)
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let detail = r.to_string();
        match r {
            Rejection::Invalid { field, detail } => ApiError::invalid(field, detail),
            Rejection::NotFound { .. } => ApiError::not_found(detail),
            Rejection::Forbidden => ApiError::forbidden("the hold or booking belongs to another user"),
            Rejection::TicketUnavailable { tickets } => {
                let mut e =
                    ApiError::new(StatusCode::CONFLICT, "ticket_unavailable", "Tickets unavailable", detail);
                e.0.tickets = Some(tickets);
                e
            }
            Rejection::HoldExpired => ApiError::new(StatusCode::GONE, "hold_expired", "Hold expired", detail),
            Rejection::LimitExceeded { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", "Limit exceeded", detail)
            }
            Rejection::QueueAdmissionRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "queue_admission_required",
                "Queue admission required",
                "join the event's waiting queue and wait to be admitted",
            ),
            Rejection::IdempotencyConflict => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                "Idempotency conflict",
                detail,
            ),
            Rejection::PaymentDeclined { .. } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment_declined", "Payment declined", detail)
            }
            Rejection::HoldNotActive { .. } => {
                ApiError::new(StatusCode::CONFLICT, "hold_not_active", "Hold not active", detail)
            }
            Rejection::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail),
            Rejection::EventClosed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "event_closed", "Event closed", detail)
            }
            Rejection::NotRefundable { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_refundable", "Not refundable", detail)
            }
            // The provider said no, as for a charge: the booking stays confirmed.
            Rejection::RefundDeclined { .. } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment_declined", "Refund declined", detail)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(r) => r.into(),
            StoreError::Unavailable { reason, retry_after_s } => {
                let mut e =
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Unavailable", reason);
                e.0.retry_after_s = Some(retry_after_s.max(1));
                e
            }
            StoreError::Overloaded { reason, retry_after_s } => {
                let mut e =
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Overloaded", reason);
                e.0.retry_after_s = Some(retry_after_s.max(1));
                e
            }
            StoreError::OutcomeUnknown { reason, hold_id, booking_id } => {
                let mut e =
                    ApiError::new(StatusCode::GATEWAY_TIMEOUT, "outcome_unknown", "Outcome unknown", reason);
                e.0.hold_id = hold_id;
                e.0.booking_id = booking_id;
                e
            }
            // The store's front asks the peers itself; this only escapes it as a bug.
            StoreError::Elsewhere { .. } => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Unavailable",
                    "the node that serves this could not be reached",
                );
                e.0.retry_after_s = Some(1);
                e
            }
            StoreError::Refused(reason) => {
                let mut e =
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Unavailable", reason);
                e.0.retry_after_s = Some(60);
                e
            }
            StoreError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let parts = *self.0;
        metrics::counter!("boxoffice_http_errors_total", "code" => parts.code).increment(1);
        let body = Problem {
            kind: format!("https://boxoffice.dev/problems/{}", parts.code),
            title: parts.title.to_string(),
            status: parts.status.as_u16(),
            code: parts.code.to_string(),
            detail: parts.detail,
            field: parts.field,
            tickets: parts.tickets,
            hold_id: parts.hold_id,
            booking_id: parts.booking_id,
        };
        let mut response = (parts.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = parts.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
