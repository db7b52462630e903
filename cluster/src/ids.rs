//! Id generation and routing by id. Ids are random (decided before proposing, so the rules
//! stay deterministic) and carry the key needed to route them: a hold or booking id names
//! its event, so `confirm {hold_id}` finds its group without a lookup table
//! ([`HoldId::event`], [`BookingId::event`] in `tickets::ids`).
//!
//! Shapes: `ven_<hex>`, `prf_<hex>`, `evt_<hex>`, `hld_<event hex>_<hex>`, `bkg_<event hex>_<hex>`.

use tickets::{BookingId, EventId, HoldId};

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// A random number, e.g. the seed of a queue shuffle (chosen by the leader, carried in the
/// command).
pub fn random_u64() -> u64 {
    let id = uuid::Uuid::new_v4();
    u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"))
}

pub fn venue_id() -> String {
    format!("ven_{}", random_hex())
}

pub fn webhook_id() -> String {
    format!("whk_{}", random_hex())
}

pub fn performer_id() -> String {
    format!("prf_{}", random_hex())
}

pub fn event_id() -> EventId {
    format!("evt_{}", random_hex()).into()
}

fn event_key(event_id: &str) -> &str {
    event_id.strip_prefix("evt_").unwrap_or(event_id)
}

/// A new hold of the event; [`HoldId::event`] gives the event back.
pub fn hold_id(event_id: &str) -> HoldId {
    format!("hld_{}_{}", event_key(event_id), random_hex()).into()
}

/// A new booking of the event; [`BookingId::event`] gives the event back.
pub fn booking_id(event_id: &str) -> BookingId {
    format!("bkg_{}_{}", event_key(event_id), random_hex()).into()
}

/// True if `id` looks like an event id (so it is safe as a group / tree name).
pub fn is_event_id(id: &str) -> bool {
    id.strip_prefix("evt_")
        .is_some_and(|k| !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_and_booking_ids_route_to_their_event() {
        let e = event_id();
        assert_eq!(hold_id(&e).event().as_deref(), Some(e.as_str()));
        assert_eq!(booking_id(&e).event().as_deref(), Some(e.as_str()));
        assert!(is_event_id(&e));
    }

    #[test]
    fn malformed_event_ids_are_refused() {
        assert!(!is_event_id("evt_../x"));
        assert!(!is_event_id("evt_"));
    }
}
