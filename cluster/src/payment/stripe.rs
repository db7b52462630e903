//! A Stripe-compatible provider: `POST {base_url}/v1/payment_intents` (form encoded:
//! amount, currency, payment_method = the client's token, confirm = true) with
//! `Idempotency-Key: <hold id>` and `Authorization: Bearer <secret key>`. A `succeeded`
//! intent is a charge; a 402 `card_error` is a decline; anything else (timeouts, 5xx,
//! unexpected bodies) leaves the outcome unknown, to be retried with the same key.
//!
//! A refund is `POST {base_url}/v1/refunds` (form encoded: payment_intent = the charge's
//! `payment_ref`) with `Idempotency-Key: refund:<booking id>`. A refund `succeeded` or
//! `pending` (accepted; Stripe settles it later) is refunded; `failed` / `canceled` or a
//! 4xx error body is a decline; anything else is unknown, retried with the same key.

use std::time::Duration;

use serde::Deserialize;

use super::{
    ChargeError, ChargeOutcome, ChargeRequest, PaymentProvider, RefundOutcome, RefundRequest,
    CHARGE_ATTEMPT_TIMEOUT,
};

#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// e.g. `https://api.stripe.com`; a test points it at a fake server.
    pub base_url: String,
    pub secret_key: String,
    pub timeout: Duration,
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig {
            base_url: "https://api.stripe.com".into(),
            secret_key: String::new(),
            timeout: CHARGE_ATTEMPT_TIMEOUT,
        }
    }
}

pub struct StripeProvider {
    config: StripeConfig,
    http: reqwest::Client,
}

impl StripeProvider {
    pub fn new(config: StripeConfig) -> Self {
        let http = reqwest::Client::builder().timeout(config.timeout).build().expect("http client builds");
        StripeProvider { config, http }
    }
}

#[derive(Deserialize)]
struct Intent {
    id: String,
    status: String,
}

#[derive(Deserialize)]
struct Refund {
    id: String,
    status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

#[async_trait::async_trait]
impl PaymentProvider for StripeProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ChargeError> {
        let form = [
            ("amount", request.amount.to_string()),
            ("currency", request.currency.to_lowercase()),
            ("payment_method", request.token.clone()),
            ("confirm", "true".to_string()),
            ("description", request.description.clone()),
        ];
        let (status, bytes) = self.post("payment_intents", &request.idempotency_key, &form).await?;
        if status.is_success() {
            let intent: Intent = serde_json::from_slice(&bytes)
                .map_err(|e| ChargeError::Unknown(format!("unexpected provider answer: {e}")))?;
            return match intent.status.as_str() {
                "succeeded" => Ok(ChargeOutcome::Succeeded { payment_ref: intent.id }),
                "requires_payment_method" | "canceled" => {
                    Ok(ChargeOutcome::Declined { detail: format!("payment intent {}", intent.status) })
                }
                other => Err(ChargeError::Unknown(format!("payment intent status {other}"))),
            };
        }
        if status.is_client_error() {
            if let Ok(err) = serde_json::from_slice::<ErrorBody>(&bytes) {
                if err.error.kind == "card_error" || status.as_u16() == 402 {
                    return Ok(ChargeOutcome::Declined { detail: err.error.message });
                }
                return Ok(ChargeOutcome::Declined {
                    detail: format!("{}: {}", err.error.kind, err.error.message),
                });
            }
        }
        Err(ChargeError::Unknown(format!("provider answered {status}")))
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ChargeError> {
        let form = [("payment_intent", request.payment_ref.clone())];
        let (status, bytes) = self.post("refunds", &request.idempotency_key, &form).await?;
        if status.is_success() {
            let refund: Refund = serde_json::from_slice(&bytes)
                .map_err(|e| ChargeError::Unknown(format!("unexpected provider answer: {e}")))?;
            return match refund.status.as_str() {
                "succeeded" | "pending" => Ok(RefundOutcome::Refunded { refund_ref: refund.id }),
                "failed" | "canceled" => {
                    Ok(RefundOutcome::Declined { detail: format!("refund {}", refund.status) })
                }
                other => Err(ChargeError::Unknown(format!("refund status {other}"))),
            };
        }
        if status.is_client_error() {
            if let Ok(err) = serde_json::from_slice::<ErrorBody>(&bytes) {
                return Ok(RefundOutcome::Declined {
                    detail: format!("{}: {}", err.error.kind, err.error.message),
                });
            }
        }
        Err(ChargeError::Unknown(format!("provider answered {status}")))
    }
}

impl StripeProvider {
    /// POST a form to `/v1/{path}` with the idempotency key; the status and body, or unknown
    /// when no answer came.
    async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(&str, String)],
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ChargeError> {
        let url = format!("{}/v1/{path}", self.config.base_url.trim_end_matches('/'));
        let body = form.iter().map(|(k, v)| format!("{k}={}", form_escape(v))).collect::<Vec<_>>().join("&");
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.config.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| ChargeError::Unknown(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ChargeError::Unknown(e.to_string()))?;
        Ok((status, bytes.to_vec()))
    }
}

/// application/x-www-form-urlencoded escaping of one value.
fn form_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::form_escape;

    #[test]
    fn escapes_form_values() {
        assert_eq!(form_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
