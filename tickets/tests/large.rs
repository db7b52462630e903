//! A large event (100,000 tickets): commands must stay cheap. Not a benchmark — it fails
//! only if something is accidentally quadratic (a debug build doing 3,000 commands over
//! 100,000 tickets at O(tickets) each would still pass; at O(tickets x holds) it would not
//! finish in the time limit below).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tickets::catalog::{GeoPoint, QueueSettings, RowSpec, SectionKind, SectionSpec, VenueSpec};
use tickets::inventory::{Inventory, InventoryCommand, InventorySetup, Outcome, Selection};

#[test]
fn hundred_thousand_tickets() {
    let rows = (1..=100).map(|r| RowSpec { name: r.to_string(), seats: 500 }).collect();
    let venue = VenueSpec {
        name: "Stadium".into(),
        city: "Rome".into(),
        country: "IT".into(),
        location: GeoPoint { lat: 41.9, lon: 12.5 },
        sections: vec![
            SectionSpec { name: "S".into(), kind: SectionKind::Seated { rows } },
            SectionSpec { name: "F".into(), kind: SectionKind::General { capacity: 50_000 } },
        ],
    };
    let prices = BTreeMap::from([("S".to_string(), 100), ("F".to_string(), 50)]);
    let started = Instant::now();
    let mut inv = Inventory::default();
    let setup = InventorySetup {
        event_id: "big".into(),
        sections: venue.sections.clone(),
        prices,
        currency: "EUR".into(),
        per_user_limit: 10,
        hold_ms: 60_000,
        on_sale_at: 0,
        sales_end: u64::MAX,
        queue: QueueSettings::default(),
        refund_until: u64::MAX,
        waitlist_offer_ms: 60_000,
    };
    assert_eq!(inv.apply(InventoryCommand::Setup(setup), 0).0, Ok(Outcome::SetUp));
    assert_eq!(inv.layout().count(), 100_000);
    let mut t = 1;
    for i in 0..1_000u32 {
        let user = format!("u{i}");
        // Rows 51..=100, away from the front rows best-available fills.
        let ids = vec![format!("S-{}-{}", i % 50 + 51, i / 50 + 1)];
        let cmds = [
            InventoryCommand::Reserve {
                hold_id: format!("a{i}").into(),
                user: user.clone().into(),
                selection: Selection::Tickets(ids),
                idempotency: None,
            },
            InventoryCommand::Reserve {
                hold_id: format!("b{i}").into(),
                user: user.clone().into(),
                selection: Selection::Best { section: "S".into(), quantity: 4 },
                idempotency: None,
            },
            InventoryCommand::Reserve {
                hold_id: format!("c{i}").into(),
                user: user.into(),
                selection: Selection::Best { section: "F".into(), quantity: 4 },
                idempotency: None,
            },
        ];
        for cmd in cmds {
            let (reply, _) = inv.apply(cmd, t);
            assert!(matches!(reply, Ok(Outcome::Hold(_))), "{reply:?}");
            t += 10;
        }
    }
    let (reply, changes) = inv.apply(InventoryCommand::Expire, t + 60_000);
    assert!(matches!(reply, Ok(Outcome::Expired(ids)) if ids.len() == 3_000));
    assert_eq!(changes.len(), 9_000);
    assert_eq!(inv.availability(inv.now()).available, 100_000);
    inv.check_invariants().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}
