//! Idempotency records: `(user, key) -> (fingerprint, reply)`, kept `IDEMPOTENCY_TTL_MS`.
//!
//! A `Reserve` records its reply when it succeeds (a refused reserve may be retried with
//! the same key and get a fresh decision). A `BeginPayment` records its reply when it pins
//! the hold, and the payment's final reply (`Confirm`'s booking or `PaymentFailed`'s
//! decline) replaces it under the same key, so a retried confirm gets the final answer.

use std::sync::Arc;

use super::{Idempotency, IdempotencyRecord, Inventory, InventoryReply};
use crate::limits::{IDEMPOTENCY_KEY_BYTES_MAX, IDEMPOTENCY_TTL_MS};
use crate::{Millis, Rejection};

impl Inventory {
    /// Drop records with `expires_at <= now`. `O(dropped · log n)`.
    pub(super) fn prune_idempotency(&mut self, now: Millis) {
        while let Some((expires_at, _)) = self.derived.idempotency_by_expiry.first() {
            if *expires_at > now {
                break;
            }
            let (expires_at, id) = self.derived.idempotency_by_expiry.pop_first().expect("first exists");
            let record = self.core.idempotency.remove(&id);
            debug_assert!(
                record.is_some_and(|r| r.expires_at == expires_at),
                "idempotency expiry index out of step with the records"
            );
        }
    }

    /// The answer to give instead of running the command: the recorded reply for the same
    /// key and fingerprint, `idempotency_conflict` for the same key with another
    /// fingerprint, `invalid_request` for a key over `IDEMPOTENCY_KEY_BYTES_MAX`.
    pub(super) fn replay(&self, user: &str, idempotency: Option<&Idempotency>) -> Option<InventoryReply> {
        let idempotency = idempotency?;
        if idempotency.key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
            return Some(Err(Rejection::invalid(
                "idempotency_key",
                format!("longer than {IDEMPOTENCY_KEY_BYTES_MAX} bytes"),
            )));
        }
        let record = self.core.idempotency.get(&(user.to_string(), idempotency.key.clone()))?;
        if record.fingerprint == idempotency.fingerprint {
            Some(record.reply.clone())
        } else {
            Some(Err(Rejection::IdempotencyConflict))
        }
    }

    /// Record `reply` under `(user, key)`. A record with the same fingerprint gets the new
    /// reply and keeps its expiry; a missing one is created; one with another fingerprint
    /// (the key was reused after the record lapsed) is left alone.
    pub(super) fn remember(
        &mut self,
        user: &str,
        idempotency: Option<&Idempotency>,
        reply: &InventoryReply,
        now: Millis,
    ) {
        let Some(idempotency) = idempotency else { return };
        let id = (user.to_string(), idempotency.key.clone());
        match self.core.idempotency.get_mut(&id) {
            Some(record) if record.fingerprint == idempotency.fingerprint => {
                Arc::make_mut(record).reply = reply.clone()
            }
            Some(_) => {}
            None => {
                let expires_at = now.saturating_add(IDEMPOTENCY_TTL_MS);
                let id = Arc::new(id);
                self.derived.idempotency_by_expiry.insert((expires_at, id.clone()));
                let record = IdempotencyRecord {
                    fingerprint: idempotency.fingerprint.clone(),
                    reply: reply.clone(),
                    expires_at,
                };
                self.core.idempotency.insert(id, Arc::new(record));
            }
        }
    }
}
