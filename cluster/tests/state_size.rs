//! What a hold costs in an event's stored state (what snapshots, restarts and followers
//! carry), in the encoding snapshots use (bincode, standard config). Not a benchmark: it
//! fails if holds stop leaving the state (the state after every hold has ended and been
//! forgotten must be back near the empty event's) or if a live hold grows past a bound.
//! It prints the figures quoted in docs/benchmarks.md.

use std::collections::BTreeMap;

use tickets::catalog::{QueueSettings, SectionKind, SectionSpec};
use tickets::inventory::{Inventory, InventoryCommand, InventorySetup, Outcome, Selection, ENDED_HOLD_MS};

/// Live holds made.
const HOLDS: u32 = 20_000;
/// Bound on the bytes one live hold of two tickets adds to the encoded state.
const BYTES_PER_LIVE_HOLD_MAX: usize = 160;

fn encoded(inv: &Inventory) -> usize {
    bincode::serde::encode_to_vec(inv.snapshot_core(), bincode::config::standard()).expect("encodes").len()
}

#[test]
fn holds_leave_the_state() {
    let mut inv = Inventory::default();
    let setup = InventorySetup {
        event_id: "evt_0123456789abcdef".into(),
        sections: vec![SectionSpec { name: "GA".into(), kind: SectionKind::General { capacity: 150_000 } }],
        prices: BTreeMap::from([("GA".to_string(), 1000)]),
        currency: "USD".into(),
        per_user_limit: 4,
        hold_ms: 15_000,
        on_sale_at: 0,
        sales_end: u64::MAX,
        queue: QueueSettings::default(),
        refund_until: u64::MAX,
        waitlist_offer_ms: 60_000,
    };
    assert_eq!(inv.apply(InventoryCommand::Setup(setup), 0).0, Ok(Outcome::SetUp));
    let empty = encoded(&inv);
    for i in 0..HOLDS {
        let reserve = InventoryCommand::Reserve {
            // Ids shaped like the store's: the event id, then 16 random hex digits.
            hold_id: format!("hld_0123456789abcdef_{i:016x}").into(),
            user: format!("user-{i:08}").into(),
            selection: Selection::Best { section: "GA".into(), quantity: 2 },
            idempotency: None,
        };
        assert!(matches!(inv.apply(reserve, 1).0, Ok(Outcome::Hold(_))));
    }
    let live = encoded(&inv);
    let per_live = (live - empty) / HOLDS as usize;
    // Every hold expires at 15 s; the ended records are kept for late answers, then forgotten.
    let expired = inv.apply(InventoryCommand::Expire, 15_001).0;
    assert!(matches!(&expired, Ok(Outcome::Expired(ids)) if ids.len() == HOLDS as usize), "{expired:?}");
    let ended = encoded(&inv);
    assert!(inv.apply(InventoryCommand::Expire, 15_001 + ENDED_HOLD_MS + 1).0.is_ok());
    // The leader's webhook deliverer acknowledges the expiries' notices (with no endpoint,
    // at once); until then the outbox holds them, bounded by OUTBOX_MAX.
    let upto = inv.last_notice_seq();
    assert_eq!(upto, u64::from(HOLDS), "one hold.expired notice per hold");
    assert!(inv.apply(InventoryCommand::OutboxAck { upto }, 15_001 + ENDED_HOLD_MS + 1).0.is_ok());
    let forgotten = encoded(&inv);
    println!(
        "encoded state: empty event {empty} B; {HOLDS} live holds of 2 tickets {live} B ({per_live} B each); \
         all expired {ended} B; after {} min {forgotten} B",
        ENDED_HOLD_MS / 60_000
    );
    assert!(per_live <= BYTES_PER_LIVE_HOLD_MAX, "{per_live} B per live hold");
    assert!(forgotten <= empty + 64, "the state keeps {} B of forgotten holds", forgotten - empty);
}
