//! The built-in test provider. Tokens: `tok_visa` succeeds, `tok_chargeDeclined` is
//! declined, `tok_timeout` takes the charge but answers only after
//! [`super::CHARGE_ATTEMPT_TIMEOUT`] on the first attempt (so the caller times out and
//! retries; the retry gets the recorded result). Any other token is declined as invalid.
//! Its ledger lives in memory: charges are keyed by idempotency key and counted.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{ChargeError, ChargeOutcome, ChargeRequest, PaymentProvider, CHARGE_ATTEMPT_TIMEOUT};

#[derive(Default)]
pub struct TestProvider {
    ledger: Mutex<HashMap<String, ChargeOutcome>>,
}

impl TestProvider {
    /// Charges actually made (distinct idempotency keys that succeeded).
    pub fn charges(&self) -> usize {
        let ledger = self.ledger.lock().expect("ledger lock");
        ledger.values().filter(|o| matches!(o, ChargeOutcome::Succeeded { .. })).count()
    }
}

#[async_trait::async_trait]
impl PaymentProvider for TestProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ChargeError> {
        let (outcome, first) = {
            let mut ledger = self.ledger.lock().expect("ledger lock");
            if let Some(done) = ledger.get(&request.idempotency_key) {
                (done.clone(), false)
            } else {
                let outcome = match request.token.as_str() {
                    "tok_visa" | "tok_timeout" => ChargeOutcome::Succeeded {
                        payment_ref: format!("pay_test_{}", request.idempotency_key),
                    },
                    "tok_chargeDeclined" => ChargeOutcome::Declined { detail: "card declined".into() },
                    other => ChargeOutcome::Declined { detail: format!("unknown test token {other:?}") },
                };
                ledger.insert(request.idempotency_key.clone(), outcome.clone());
                (outcome, true)
            }
        };
        if first && request.token == "tok_timeout" {
            tokio::time::sleep(CHARGE_ATTEMPT_TIMEOUT * 2).await;
            return Err(ChargeError::Unknown("test provider timed out".into()));
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, token: &str) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: key.into(),
            amount: 100,
            currency: "USD".into(),
            token: token.into(),
            description: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn same_key_charges_once() {
        let p = TestProvider::default();
        let a = p.charge(&req("h1", "tok_visa")).await.unwrap();
        let b = p.charge(&req("h1", "tok_visa")).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(p.charges(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_then_retry_returns_the_recorded_charge() {
        let p = TestProvider::default();
        assert!(p.charge(&req("h2", "tok_timeout")).await.is_err());
        assert!(matches!(p.charge(&req("h2", "tok_timeout")).await, Ok(ChargeOutcome::Succeeded { .. })));
        assert_eq!(p.charges(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn declined_is_final() {
        let p = TestProvider::default();
        assert!(matches!(
            p.charge(&req("h3", "tok_chargeDeclined")).await,
            Ok(ChargeOutcome::Declined { .. })
        ));
        assert_eq!(p.charges(), 0);
    }
}
