//! The built-in test provider: no network, behaviour chosen by the card token.
//!
//! Charges: `tok_visa` succeeds, `tok_chargeDeclined` is declined, `tok_timeout` takes the
//! charge but answers only after [`super::CHARGE_ATTEMPT_TIMEOUT`] on the first attempt (so
//! the caller times out and retries; the retry gets the recorded result). Any other token is
//! declined as invalid.
//!
//! Refunds (of a charge made here): succeed, but for two tokens whose charge succeeds:
//! `tok_refundDeclined` (every refund of it is declined) and `tok_refundTimeout` (the refund
//! is made at the first attempt, but each of the first [`REFUND_TIMEOUTS`] attempts under a
//! key answers only after the attempt timeout, as `tok_timeout` does for charges).
//!
//! Like a real provider it answers a repeated idempotency key with the first result: at most
//! one charge and one refund per key. It counts what it really did ([`TestProvider::charges`],
//! [`TestProvider::refunds`]) so tests can assert "charged once", "refunded once".
//!
//! Its ledger lives in memory. With [`TestProvider::with_journal`] (what `boxoffice serve`
//! uses, in the data directory) it also appends every refund, and every charge whose refund
//! behaviour matters, to a file it reads back at start: refunds made before a `kill -9`
//! are still known (and counted) after the restart, which is what the real-process crash
//! test checks. The file is written but not fsynced: it survives a process crash, not a
//! machine crash (this is a test provider).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{
    ChargeError, ChargeOutcome, ChargeRequest, PaymentProvider, RefundOutcome, RefundRequest,
    CHARGE_ATTEMPT_TIMEOUT,
};

/// Attempts under one key that time out before a `tok_refundTimeout` refund answers.
pub const REFUND_TIMEOUTS: u32 = 3;

#[derive(Default)]
pub struct TestProvider {
    ledger: Mutex<Ledger>,
    journal: Option<Journal>,
}

#[derive(Default)]
struct Ledger {
    /// Charge idempotency key -> outcome.
    charges: HashMap<String, ChargeOutcome>,
    /// Payment ref -> the token it was charged with.
    tokens: HashMap<String, String>,
    /// Refund idempotency key -> outcome.
    refunds: HashMap<String, RefundOutcome>,
    /// Refund attempts seen per key (in this process).
    refund_attempts: HashMap<String, u32>,
}

/// One line of the journal (JSON).
#[derive(Serialize, Deserialize)]
enum Entry {
    Charge { payment_ref: String, token: String },
    Refund { key: String, payment_ref: String, refund_ref: Option<String>, declined: Option<String> },
}

struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl TestProvider {
    /// A provider whose refunds (and refund-token charges) are appended to `path` and read
    /// back from it now (see the module doc).
    pub fn with_journal(path: &Path) -> std::io::Result<TestProvider> {
        let mut ledger = Ledger::default();
        if let Ok(file) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(file).lines() {
                // A line cut short by a crash is dropped.
                let Ok(entry) = serde_json::from_str::<Entry>(&line?) else { continue };
                match entry {
                    Entry::Charge { payment_ref, token } => {
                        ledger.tokens.insert(payment_ref, token);
                    }
                    Entry::Refund { key, refund_ref: Some(refund_ref), .. } => {
                        ledger.refunds.insert(key, RefundOutcome::Refunded { refund_ref });
                    }
                    Entry::Refund { key, declined, .. } => {
                        let detail = declined.unwrap_or_default();
                        ledger.refunds.insert(key, RefundOutcome::Declined { detail });
                    }
                }
            }
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(TestProvider {
            ledger: Mutex::new(ledger),
            journal: Some(Journal { path: path.to_path_buf(), file: Mutex::new(file) }),
        })
    }

    /// Charges actually made (distinct idempotency keys that succeeded), in this process.
    pub fn charges(&self) -> usize {
        let ledger = self.ledger.lock().expect("ledger lock");
        ledger.charges.values().filter(|o| matches!(o, ChargeOutcome::Succeeded { .. })).count()
    }

    /// Refunds actually made (distinct idempotency keys that were refunded), including those
    /// read back from the journal.
    pub fn refunds(&self) -> usize {
        let ledger = self.ledger.lock().expect("ledger lock");
        ledger.refunds.values().filter(|o| matches!(o, RefundOutcome::Refunded { .. })).count()
    }

    /// Refunds made per payment ref, read from a journal file (for tests that read it from
    /// outside the process).
    pub fn refunds_in_journal(path: &Path) -> std::io::Result<HashMap<String, usize>> {
        let mut out: HashMap<String, usize> = HashMap::new();
        let text = std::fs::read_to_string(path)?;
        for line in text.lines() {
            if let Ok(Entry::Refund { payment_ref, refund_ref: Some(_), .. }) = serde_json::from_str(line) {
                *out.entry(payment_ref).or_default() += 1;
            }
        }
        Ok(out)
    }

    fn write(&self, entry: &Entry) {
        let Some(journal) = &self.journal else { return };
        let mut line = serde_json::to_string(entry).expect("journal entries encode");
        line.push('\n');
        let mut file = journal.file.lock().expect("journal lock");
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(path = %journal.path.display(), error = %e, "test provider journal not written");
        }
    }
}

/// Tokens whose refund behaves differently: their charges are journaled.
fn refund_token(token: &str) -> bool {
    matches!(token, "tok_refundDeclined" | "tok_refundTimeout")
}

#[async_trait::async_trait]
impl PaymentProvider for TestProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ChargeError> {
        let (outcome, first) = {
            let mut ledger = self.ledger.lock().expect("ledger lock");
            if let Some(done) = ledger.charges.get(&request.idempotency_key) {
                (done.clone(), false)
            } else {
                let outcome = match request.token.as_str() {
                    "tok_visa" | "tok_timeout" | "tok_refundDeclined" | "tok_refundTimeout" => {
                        ChargeOutcome::Succeeded {
                            payment_ref: format!("pay_test_{}", request.idempotency_key),
                        }
                    }
                    "tok_chargeDeclined" => ChargeOutcome::Declined { detail: "card declined".into() },
                    other => ChargeOutcome::Declined { detail: format!("unknown test token {other:?}") },
                };
                ledger.charges.insert(request.idempotency_key.clone(), outcome.clone());
                if let ChargeOutcome::Succeeded { payment_ref } = &outcome {
                    ledger.tokens.insert(payment_ref.clone(), request.token.clone());
                    if refund_token(&request.token) {
                        self.write(&Entry::Charge {
                            payment_ref: payment_ref.clone(),
                            token: request.token.clone(),
                        });
                    }
                }
                (outcome, true)
            }
        };
        if first && request.token == "tok_timeout" {
            tokio::time::sleep(CHARGE_ATTEMPT_TIMEOUT * 2).await;
            return Err(ChargeError::Unknown("test provider timed out".into()));
        }
        Ok(outcome)
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ChargeError> {
        let (outcome, time_out) = {
            let mut ledger = self.ledger.lock().expect("ledger lock");
            // A charge this provider does not know (made before a restart without a journal)
            // is refunded as a `tok_visa` one.
            let token = ledger.tokens.get(&request.payment_ref).cloned().unwrap_or_default();
            let attempts = ledger.refund_attempts.entry(request.idempotency_key.clone()).or_default();
            *attempts += 1;
            let time_out = token == "tok_refundTimeout" && *attempts <= REFUND_TIMEOUTS;
            let outcome = match ledger.refunds.get(&request.idempotency_key) {
                Some(done) => done.clone(),
                None => {
                    let outcome = if !request.payment_ref.starts_with("pay_test_") {
                        RefundOutcome::Declined {
                            detail: format!("no such charge {:?}", request.payment_ref),
                        }
                    } else if token == "tok_refundDeclined" {
                        RefundOutcome::Declined { detail: "refund declined".into() }
                    } else {
                        RefundOutcome::Refunded { refund_ref: format!("re_test_{}", request.idempotency_key) }
                    };
                    ledger.refunds.insert(request.idempotency_key.clone(), outcome.clone());
                    let (refund_ref, declined) = match &outcome {
                        RefundOutcome::Refunded { refund_ref } => (Some(refund_ref.clone()), None),
                        RefundOutcome::Declined { detail } => (None, Some(detail.clone())),
                    };
                    self.write(&Entry::Refund {
                        key: request.idempotency_key.clone(),
                        payment_ref: request.payment_ref.clone(),
                        refund_ref,
                        declined,
                    });
                    outcome
                }
            };
            (outcome, time_out)
        };
        if time_out {
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

    fn refund_req(key: &str, payment_ref: &str) -> RefundRequest {
        RefundRequest {
            idempotency_key: key.into(),
            payment_ref: payment_ref.into(),
            amount: 100,
            currency: "USD".into(),
        }
    }

    async fn paid(p: &TestProvider, key: &str, token: &str) -> String {
        match p.charge(&req(key, token)).await.unwrap() {
            ChargeOutcome::Succeeded { payment_ref } => payment_ref,
            other => panic!("{other:?}"),
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

    #[tokio::test(start_paused = true)]
    async fn same_key_refunds_once() {
        let p = TestProvider::default();
        let pay = paid(&p, "h1-1", "tok_visa").await;
        let a = p.refund(&refund_req("refund:b1", &pay)).await.unwrap();
        let b = p.refund(&refund_req("refund:b1", &pay)).await.unwrap();
        assert!(matches!(&a, RefundOutcome::Refunded { .. }));
        assert_eq!(a, b);
        assert_eq!(p.refunds(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refund_tokens_decline_or_time_out() {
        let p = TestProvider::default();
        let pay = paid(&p, "h1-1", "tok_refundDeclined").await;
        assert!(matches!(p.refund(&refund_req("refund:b1", &pay)).await, Ok(RefundOutcome::Declined { .. })));
        assert!(matches!(
            p.refund(&refund_req("refund:b1-2", &pay)).await,
            Ok(RefundOutcome::Declined { .. })
        ));
        let pay = paid(&p, "h2-1", "tok_refundTimeout").await;
        for _ in 0..REFUND_TIMEOUTS {
            assert!(p.refund(&refund_req("refund:b2", &pay)).await.is_err());
        }
        assert!(matches!(p.refund(&refund_req("refund:b2", &pay)).await, Ok(RefundOutcome::Refunded { .. })));
        assert_eq!(p.refunds(), 1, "made at the first attempt, once");
    }

    #[tokio::test(start_paused = true)]
    async fn the_journal_keeps_refunds_over_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let p = TestProvider::with_journal(&path).unwrap();
        let pay = paid(&p, "h1-1", "tok_refundTimeout").await;
        assert!(p.refund(&refund_req("refund:b1", &pay)).await.is_err(), "timed out, but made");
        drop(p);
        let p = TestProvider::with_journal(&path).unwrap();
        assert_eq!(p.refunds(), 1);
        // The restarted provider still knows the charge's token (its refund times out again)
        // and answers the key with the first refund.
        assert!(p.refund(&refund_req("refund:b1", &pay)).await.is_err());
        for _ in 1..REFUND_TIMEOUTS {
            let _ = p.refund(&refund_req("refund:b1", &pay)).await;
        }
        let again = p.refund(&refund_req("refund:b1", &pay)).await.unwrap();
        assert_eq!(again, RefundOutcome::Refunded { refund_ref: "re_test_refund:b1".into() });
        assert_eq!(p.refunds(), 1);
        assert_eq!(TestProvider::refunds_in_journal(&path).unwrap().get(&pay), Some(&1));
    }
}
