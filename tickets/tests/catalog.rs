//! Catalog machine: creating venues, performers and events, their validation, updates and
//! cancellation.

use std::collections::BTreeMap;

use tickets::catalog::{
    Catalog, CatalogChange, CatalogCommand, EventPatch, EventSpec, GeoPoint, PerformerSpec, QueueSettings,
    RowSpec, SectionKind, SectionSpec, VenueSpec,
};
use tickets::layout::tickets_for;
use tickets::limits::{NAME_BYTES_MAX, PER_USER_LIMIT_MAX, SEATS_PER_ROW_MAX, TICKETS_PER_EVENT_MAX};
use tickets::Rejection;

fn venue() -> VenueSpec {
    VenueSpec {
        name: "Arena".into(),
        city: "Lisbon".into(),
        country: "PT".into(),
        location: GeoPoint { lat: 38.7, lon: -9.1 },
        sections: vec![
            SectionSpec {
                name: "A".into(),
                kind: SectionKind::Seated {
                    rows: vec![
                        RowSpec { name: "1".into(), seats: 3 },
                        RowSpec { name: "2".into(), seats: 2 },
                    ],
                },
            },
            SectionSpec { name: "Floor".into(), kind: SectionKind::General { capacity: 4 } },
        ],
    }
}

fn performer() -> PerformerSpec {
    PerformerSpec { name: "The Band".into(), genre: "rock".into() }
}

fn event() -> EventSpec {
    EventSpec {
        name: "The Band live".into(),
        description: "loud".into(),
        event_type: "concert".into(),
        venue_id: "v1".into(),
        performer_ids: vec!["p1".into()],
        starts_at: 2_000_000,
        on_sale_at: 1_000_000,
        sales_end: None,
        prices: BTreeMap::from([("A".into(), 4_500), ("Floor".into(), 3_000)]),
        currency: "EUR".into(),
        per_user_limit: 6,
        hold_seconds: 600,
        queue: QueueSettings::default(),
        refund_until: None,
        waitlist_offer_seconds: None,
    }
}

/// A catalog with venue `v1` and performer `p1`.
fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.apply(
        CatalogCommand::RegisterNode { id: 1, raft_addr: "r1".into(), http_addr: "h1".into(), store_id: 101 },
        50,
    )
    .unwrap();
    c.apply(CatalogCommand::CreateVenue { id: "v1".into(), spec: venue() }, 100).unwrap();
    c.apply(CatalogCommand::CreatePerformer { id: "p1".into(), spec: performer() }, 200).unwrap();
    c
}

/// Register nodes `ids` (addresses `r<id>` / `h<id>`, store id `100 + id`).
fn register_nodes(c: &mut Catalog, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        c.apply(
            CatalogCommand::RegisterNode {
                id,
                raft_addr: format!("r{id}"),
                http_addr: format!("h{id}"),
                store_id: 100 + id,
            },
            60,
        )
        .unwrap();
    }
}

fn invalid_field(reply: Result<CatalogChange, Rejection>) -> String {
    match reply {
        Err(Rejection::Invalid { field, .. }) => field,
        other => panic!("expected invalid_request, got {other:?}"),
    }
}

#[test]
fn create_venue_performer_event() {
    let mut c = catalog();
    assert_eq!(c.venues["v1"].created_at, 100);
    assert_eq!(c.performers["p1"].spec, performer());
    let reply = c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event() }, 300).unwrap();
    let CatalogChange::Event(e) = reply else { panic!("expected an event") };
    assert_eq!((e.id.as_str(), e.cancelled, e.created_at, e.updated_at), ("e1", false, 300, 300));
    assert_eq!(c.events["e1"], *e);
    // Its tickets, in the order best-available walks.
    let ids: Vec<String> =
        tickets_for(&c.venues["v1"].spec, &e.spec.prices).into_iter().map(|t| t.id).collect();
    assert_eq!(
        ids,
        ["A-1-1", "A-1-2", "A-1-3", "A-2-1", "A-2-2", "Floor-1", "Floor-2", "Floor-3", "Floor-4"]
    );
    assert_eq!(c.venues["v1"].spec.capacity(), 9);
}

#[test]
fn duplicate_ids_are_refused() {
    let mut c = catalog();
    assert_eq!(
        invalid_field(c.apply(CatalogCommand::CreateVenue { id: "v1".into(), spec: venue() }, 1)),
        "id"
    );
    assert_eq!(
        invalid_field(c.apply(CatalogCommand::CreatePerformer { id: "p1".into(), spec: performer() }, 1)),
        "id"
    );
    c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event() }, 1).unwrap();
    assert_eq!(
        invalid_field(c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event() }, 1)),
        "id"
    );
}

#[test]
fn event_references_must_exist() {
    let mut c = catalog();
    let mut spec = event();
    spec.venue_id = "nowhere".into();
    assert_eq!(invalid_field(c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec }, 1)), "venue_id");
    let mut spec = event();
    spec.performer_ids.push("ghost".into());
    assert_eq!(
        invalid_field(c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec }, 1)),
        "performer_ids"
    );
    let mut spec = event();
    spec.prices.remove("Floor");
    assert_eq!(invalid_field(c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec }, 1)), "prices");
    let mut spec = event();
    spec.prices.insert("Balcony".into(), 100);
    assert_eq!(invalid_field(c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec }, 1)), "prices");
    assert!(c.events.is_empty(), "no refused event is stored");
}

#[test]
fn venue_bounds() {
    let check = |change: fn(&mut VenueSpec), field: &str| {
        let mut v = venue();
        change(&mut v);
        assert_eq!(invalid_field(v.validate().map(|_| unreachable!())), field);
    };
    check(|v| v.name = "  ".into(), "name");
    check(|v| v.city = "x".repeat(NAME_BYTES_MAX + 1), "city");
    check(|v| v.location.lat = 91.0, "location.lat");
    check(|v| v.location.lon = f64::NAN, "location.lon");
    check(|v| v.sections.clear(), "sections");
    check(|v| v.sections[0].name = "A-B".into(), "sections[0].name");
    check(|v| v.sections[1].name = "A".into(), "sections[1].name");
    check(|v| v.sections[0].kind = SectionKind::Seated { rows: vec![] }, "sections[0].rows");
    check(
        |v| {
            v.sections[0].kind = SectionKind::Seated {
                rows: vec![RowSpec { name: "1".into(), seats: 1 }, RowSpec { name: "1".into(), seats: 1 }],
            }
        },
        "sections[0].rows[1].name",
    );
    check(
        |v| v.sections[0].kind = SectionKind::Seated { rows: vec![RowSpec { name: "1".into(), seats: 0 }] },
        "sections[0].rows[0].seats",
    );
    check(
        |v| {
            v.sections[0].kind =
                SectionKind::Seated { rows: vec![RowSpec { name: "1".into(), seats: SEATS_PER_ROW_MAX + 1 }] }
        },
        "sections[0].rows[0].seats",
    );
    check(|v| v.sections[1].kind = SectionKind::General { capacity: 0 }, "sections[1].capacity");
    check(|v| v.sections[1].kind = SectionKind::General { capacity: TICKETS_PER_EVENT_MAX }, "sections");
    // At the bounds it is fine.
    let mut v = venue();
    v.sections[1].kind = SectionKind::General { capacity: TICKETS_PER_EVENT_MAX - 5 };
    v.location = GeoPoint { lat: -90.0, lon: 180.0 };
    v.validate().unwrap();
}

#[test]
fn event_bounds() {
    let check = |change: fn(&mut EventSpec), field: &str| {
        let mut e = event();
        change(&mut e);
        assert_eq!(invalid_field(e.validate().map(|_| unreachable!())), field);
    };
    check(|e| e.name = String::new(), "name");
    check(|e| e.event_type = " ".into(), "type");
    check(|e| e.on_sale_at = e.starts_at + 1, "on_sale_at");
    check(|e| e.sales_end = Some(e.on_sale_at), "sales_end");
    check(|e| e.currency = "eur".into(), "currency");
    check(|e| e.currency = "EURO".into(), "currency");
    check(|e| e.per_user_limit = 0, "per_user_limit");
    check(|e| e.per_user_limit = PER_USER_LIMIT_MAX + 1, "per_user_limit");
    check(|e| e.hold_seconds = 0, "hold_seconds");
    check(|e| e.hold_seconds = 3_601, "hold_seconds");
    check(|e| e.prices.insert("A".into(), 100_000_001).map(|_| ()).unwrap_or(()), "prices");
    check(
        |e| e.queue = QueueSettings { enabled: true, max_admitted: 0, admission_seconds: 60 },
        "queue.max_admitted",
    );
    check(
        |e| e.queue = QueueSettings { enabled: true, max_admitted: 10, admission_seconds: 0 },
        "queue.admission_seconds",
    );
    // A disabled queue's settings are not checked.
    let mut e = event();
    e.queue = QueueSettings { enabled: false, max_admitted: 0, admission_seconds: 0 };
    e.validate().unwrap();
}

#[test]
fn update_and_cancel() {
    let mut c = catalog();
    c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event() }, 300).unwrap();
    let patch =
        EventPatch { name: Some("Renamed".into()), starts_at: Some(3_000_000), ..EventPatch::default() };
    let CatalogChange::Event(e) =
        c.apply(CatalogCommand::UpdateEvent { id: "e1".into(), patch }, 400).unwrap()
    else {
        panic!("expected an event")
    };
    assert_eq!(
        (e.spec.name.as_str(), e.spec.starts_at, e.updated_at, e.created_at),
        ("Renamed", 3_000_000, 400, 300)
    );
    assert_eq!(e.spec.description, "loud", "fields not in the patch stay");
    // A patch that breaks a rule changes nothing.
    let patch = EventPatch { starts_at: Some(600), ..EventPatch::default() };
    assert_eq!(
        invalid_field(c.apply(CatalogCommand::UpdateEvent { id: "e1".into(), patch }, 500)),
        "on_sale_at"
    );
    let patch = EventPatch { performer_ids: Some(vec!["ghost".into()]), ..EventPatch::default() };
    assert_eq!(
        invalid_field(c.apply(CatalogCommand::UpdateEvent { id: "e1".into(), patch }, 500)),
        "performer_ids"
    );
    assert_eq!(c.events["e1"], *e);
    // Unknown events.
    let missing = c.apply(CatalogCommand::UpdateEvent { id: "e9".into(), patch: EventPatch::default() }, 500);
    assert_eq!(missing, Err(Rejection::not_found("event")));
    assert_eq!(
        c.apply(CatalogCommand::CancelEvent { id: "e9".into() }, 500),
        Err(Rejection::not_found("event"))
    );
    // Cancel.
    let CatalogChange::Event(e) = c.apply(CatalogCommand::CancelEvent { id: "e1".into() }, 600).unwrap()
    else {
        panic!("expected an event")
    };
    assert!(e.cancelled);
    assert_eq!(e.updated_at, 600);
    // The clock never runs backwards.
    let CatalogChange::Event(e) = c.apply(CatalogCommand::CancelEvent { id: "e1".into() }, 50).unwrap()
    else {
        panic!("expected an event")
    };
    assert_eq!(e.updated_at, 600);
}

#[test]
fn a_venue_can_be_edited_until_an_event_is_on_it() {
    let mut c = catalog();
    let mut spec = venue();
    spec.name = "Arena Two".into();
    spec.sections.push(SectionSpec { name: "B".into(), kind: SectionKind::General { capacity: 10 } });
    let CatalogChange::Venue(v) =
        c.apply(CatalogCommand::UpdateVenue { id: "v1".into(), spec: spec.clone() }, 250).unwrap()
    else {
        panic!("expected a venue")
    };
    assert_eq!((v.spec.clone(), v.created_at), (spec.clone(), 100), "replaced; created_at kept");
    assert_eq!(c.venues["v1"], v);
    // A bad spec changes nothing.
    let mut bad = spec.clone();
    bad.sections.clear();
    assert!(c.apply(CatalogCommand::UpdateVenue { id: "v1".into(), spec: bad }, 260).is_err());
    assert_eq!(c.venues["v1"], v);
    // Unknown venue.
    assert_eq!(
        c.apply(CatalogCommand::UpdateVenue { id: "v9".into(), spec: venue() }, 260),
        Err(Rejection::not_found("venue"))
    );
    // Once an event is on it, the venue is fixed: the event's tickets were made from it.
    let mut e = event();
    e.prices.insert("B".into(), 1_000);
    c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: e }, 300).unwrap();
    let refused = c.apply(CatalogCommand::UpdateVenue { id: "v1".into(), spec: venue() }, 400);
    assert!(matches!(&refused, Err(Rejection::Conflict { detail }) if detail.contains("e1")), "{refused:?}");
    assert_eq!(c.venues["v1"], v);
}

#[test]
fn a_performer_can_be_edited() {
    let mut c = catalog();
    let spec = PerformerSpec { name: "The Band (reunited)".into(), genre: "indie".into() };
    let CatalogChange::Performer(p) =
        c.apply(CatalogCommand::UpdatePerformer { id: "p1".into(), spec: spec.clone() }, 300).unwrap()
    else {
        panic!("expected a performer")
    };
    assert_eq!((p.spec.clone(), p.created_at), (spec.clone(), 200));
    let bad = PerformerSpec { name: String::new(), genre: "x".into() };
    assert!(c.apply(CatalogCommand::UpdatePerformer { id: "p1".into(), spec: bad }, 310).is_err());
    assert_eq!(c.performers["p1"], p, "a bad spec changes nothing");
    assert_eq!(
        c.apply(CatalogCommand::UpdatePerformer { id: "p9".into(), spec }, 320),
        Err(Rejection::not_found("performer"))
    );
}

#[test]
fn catalog_json_round_trip() {
    let mut c = catalog();
    c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event() }, 300).unwrap();
    let json = serde_json::to_string(&c).unwrap();
    let back: Catalog = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn events_are_placed_and_replicas_move_off_a_removed_node() {
    let mut c = catalog();
    register_nodes(&mut c, 2..=5);
    for i in 0..10 {
        c.apply(CatalogCommand::CreateEvent { id: format!("e{i}").into(), spec: event() }, 300).unwrap();
    }
    let mut initializers = std::collections::BTreeMap::<u64, usize>::new();
    for e in c.events.values() {
        assert_eq!(e.replicas.len(), 3, "{e:?}");
        let mut initial = e.initial_replicas.clone();
        initial.sort_unstable();
        assert_eq!(e.replicas, initial, "the same nodes, in a rotated order");
        *initializers.entry(e.initial_replicas[0]).or_default() += 1;
    }
    // First leaders spread over the nodes, not all on the lowest id.
    assert!(initializers.len() >= 3, "initializers {initializers:?}");
    let load = c.load();
    assert_eq!(load.len(), 5);
    assert!(load.values().max().unwrap() - load.values().min().unwrap() <= 1, "{load:?}");

    let CatalogChange::Node(n) = c.apply(CatalogCommand::RemoveNode { id: 1 }, 400).unwrap() else {
        panic!()
    };
    assert!(n.removed);
    assert_eq!(c.live_nodes(), vec![2, 3, 4, 5]);
    for e in c.events.values() {
        assert_eq!(e.replicas.len(), 3, "{e:?}");
        assert!(!e.replicas.contains(&1), "{e:?}");
        let mut sorted = e.replicas.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 3);
    }
    // Re-registering does not bring a removed node back, and new events avoid it.
    let again = CatalogCommand::RegisterNode {
        id: 1,
        raft_addr: "r1b".into(),
        http_addr: "h1b".into(),
        store_id: 101,
    };
    assert_eq!(invalid_field(c.apply(again, 500)), "id");
    assert!(c.nodes[&1].removed);
    c.apply(CatalogCommand::CreateEvent { id: "late".into(), spec: event() }, 600).unwrap();
    assert!(!c.events["late"].replicas.contains(&1));
    assert!(matches!(c.apply(CatalogCommand::RemoveNode { id: 9 }, 700), Err(Rejection::NotFound { .. })));
}

#[test]
fn an_event_needs_a_live_node() {
    let mut c = Catalog::default();
    c.apply(CatalogCommand::CreateVenue { id: "v1".into(), spec: venue() }, 100).unwrap();
    c.apply(CatalogCommand::CreatePerformer { id: "p1".into(), spec: performer() }, 200).unwrap();
    assert_eq!(
        invalid_field(c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event() }, 300)),
        "replicas"
    );
}

/// `Catalog::load` is kept up to date by `apply` (not counted on every creation): it always
/// equals a count over the events, and a catalog decoded mid-way (which counts afresh) places
/// every later event exactly where the original does.
#[test]
fn replica_counts_kept_by_apply_match_a_recount_and_a_decoded_copy() {
    fn recount(c: &Catalog) -> BTreeMap<u64, usize> {
        let mut load = BTreeMap::new();
        for e in c.events.values() {
            for n in &e.replicas {
                *load.entry(*n).or_insert(0) += 1;
            }
        }
        load
    }
    let mut c = catalog();
    register_nodes(&mut c, 2..=6);
    let mut copy: Option<Catalog> = None;
    for step in 0..120u64 {
        let command = match step {
            40 => CatalogCommand::RemoveNode { id: 2 },
            90 => CatalogCommand::RemoveNode { id: 5 },
            _ => CatalogCommand::CreateEvent { id: format!("e{step}").into(), spec: event() },
        };
        if step == 20 || step == 70 {
            copy = Some(serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap());
        }
        let reply = c.apply(command.clone(), 1_000 + step);
        assert_eq!(c.load(), recount(&c), "step {step}");
        if let Some(copy) = copy.as_mut() {
            assert_eq!(copy.apply(command, 1_000 + step), reply, "step {step}");
            assert_eq!(copy.events, c.events, "step {step}");
        }
    }
    assert!(!c.load().contains_key(&2) && !c.load().contains_key(&5), "{:?}", c.load());
}

fn register(
    c: &mut Catalog,
    id: u64,
    addr: &str,
    store_id: u64,
    now: u64,
) -> Result<tickets::catalog::NodeInfo, Rejection> {
    let command = CatalogCommand::RegisterNode {
        id,
        raft_addr: format!("r-{addr}"),
        http_addr: format!("h-{addr}"),
        store_id,
    };
    match c.apply(command, now)? {
        CatalogChange::Node(n) => Ok(n),
        other => panic!("expected a node, got {other:?}"),
    }
}

/// An id belongs to one store (one data directory): another store, or an operator's request
/// with other addresses, is a conflict; the same store may move to new addresses.
#[test]
fn a_node_id_is_taken_by_one_store() {
    let mut c = Catalog::default();
    register(&mut c, 1, "a", 11, 10).unwrap();
    assert!(matches!(register(&mut c, 1, "b", 12, 20), Err(Rejection::Conflict { .. })), "another store");
    assert!(matches!(register(&mut c, 1, "b", 0, 20), Err(Rejection::Conflict { .. })), "other addresses");
    assert_eq!(register(&mut c, 1, "a", 0, 20).unwrap().store_id, 11, "the same request again is fine");
    let moved = register(&mut c, 1, "moved", 11, 30).unwrap();
    assert_eq!((moved.raft_addr.as_str(), moved.store_id), ("r-moved", 11));
    assert_eq!(c.nodes[&1].raft_addr, "r-moved");
}

/// Id 0 asks for a fresh id: the next after every id ever used (removed ones too); the same
/// store asking again gets its own id back.
#[test]
fn a_fresh_id_is_never_one_used_before() {
    let mut c = Catalog::default();
    assert_eq!(register(&mut c, 0, "a", 11, 10).unwrap().id, 1, "the first node");
    register(&mut c, 5, "e", 15, 10).unwrap();
    assert_eq!(register(&mut c, 0, "f", 16, 20).unwrap().id, 6);
    assert_eq!(register(&mut c, 0, "f", 16, 30).unwrap().id, 6, "a retried join");
    c.apply(CatalogCommand::RemoveNode { id: 6 }, 40).unwrap();
    assert_eq!(register(&mut c, 0, "g", 17, 50).unwrap().id, 7, "a removed id is not reused");
    assert_eq!(register(&mut c, 0, "f", 16, 60).unwrap().id, 8, "not even by its old store");
}

/// A node an operator added (no store yet) gets no events until its own process registers;
/// then it takes the replicas events are missing.
#[test]
fn events_go_to_nodes_that_arrived_and_lost_replicas_are_made_again() {
    let mut c = catalog();
    register_nodes(&mut c, 2..=3);
    for i in 0..4 {
        c.apply(CatalogCommand::CreateEvent { id: format!("e{i}").into(), spec: event() }, 300).unwrap();
    }
    register(&mut c, 74, "never", 0, 310).unwrap();
    c.apply(CatalogCommand::CreateEvent { id: "e4".into(), spec: event() }, 320).unwrap();
    assert_eq!(c.events["e4"].replicas, vec![1, 2, 3], "not on node 74, which never started");

    c.apply(CatalogCommand::RemoveNode { id: 3 }, 400).unwrap();
    assert!(c.events.values().all(|e| e.replicas == vec![1, 2]), "no node to take node 3's replicas");
    register(&mut c, 74, "never", 0, 410).unwrap();
    assert!(c.events.values().all(|e| e.replicas == vec![1, 2]), "still not on node 74");

    let joined = register(&mut c, 0, "new", 99, 500).unwrap();
    assert_eq!(joined.id, 75);
    for e in c.events.values() {
        assert_eq!(e.replicas, vec![1, 2, 75], "{}", e.id);
        assert_eq!(e.updated_at, 500);
    }
    assert_eq!(c.load(), BTreeMap::from([(1, 5), (2, 5), (75, 5)]));
    // Node 74 starting at last is a node like any other: nothing is missing, nothing moves.
    register(&mut c, 74, "never", 74, 600).unwrap();
    assert!(c.events.values().all(|e| e.replicas == vec![1, 2, 75]));
    c.apply(CatalogCommand::CreateEvent { id: "e5".into(), spec: event() }, 610).unwrap();
    assert!(c.events["e5"].replicas.contains(&74), "the least loaded node gets the next event");
}

#[test]
fn the_cluster_id_is_set_once() {
    let mut c = Catalog::default();
    assert_eq!(c.cluster_id, None);
    c.apply(CatalogCommand::SetClusterId { id: "c1".into() }, 10).unwrap();
    c.apply(CatalogCommand::SetClusterId { id: "c1".into() }, 20).unwrap();
    assert!(matches!(
        c.apply(CatalogCommand::SetClusterId { id: "c2".into() }, 30),
        Err(Rejection::Conflict { .. })
    ));
    assert_eq!(c.cluster_id.as_deref(), Some("c1"));
}

/// A node down longer than the dead time gives its replicas to free nodes (an event is never
/// shrunk when there is none), gets no new events, and takes what is missing when it is back.
#[test]
fn a_node_down_for_good_gives_its_replicas_away() {
    let mut c = catalog();
    register_nodes(&mut c, 2..=3);
    for i in 0..3 {
        c.apply(CatalogCommand::CreateEvent { id: format!("e{i}").into(), spec: event() }, 300).unwrap();
    }
    // Three nodes: nowhere to go, so nothing moves.
    c.apply(CatalogCommand::MarkNodeDown { id: 3, down: true }, 400).unwrap();
    assert!(c.nodes[&3].down);
    assert!(c.events.values().all(|e| e.replicas == vec![1, 2, 3]));
    c.apply(CatalogCommand::MarkNodeDown { id: 3, down: false }, 410).unwrap();

    register_nodes(&mut c, 4..=4);
    assert!(c.events.values().all(|e| e.replicas == vec![1, 2, 3]), "nothing was short of three");
    c.apply(CatalogCommand::MarkNodeDown { id: 3, down: true }, 500).unwrap();
    for e in c.events.values() {
        assert_eq!(e.replicas, vec![1, 2, 4], "{}", e.id);
        assert_eq!(e.updated_at, 500);
    }
    c.apply(CatalogCommand::CreateEvent { id: "late".into(), spec: event() }, 510).unwrap();
    assert!(!c.events["late"].replicas.contains(&3), "no new event on a down node");
    assert_eq!(c.load(), BTreeMap::from([(1, 4), (2, 4), (4, 4)]));

    // Back: a placeable node again (nothing is short, so nothing moves back by itself).
    c.apply(CatalogCommand::MarkNodeDown { id: 3, down: false }, 600).unwrap();
    assert!(!c.nodes[&3].down);
    c.apply(CatalogCommand::CreateEvent { id: "after".into(), spec: event() }, 610).unwrap();
    assert!(c.events["after"].replicas.contains(&3), "the least loaded node gets the next event");
    assert!(matches!(
        c.apply(CatalogCommand::MarkNodeDown { id: 9, down: true }, 700),
        Err(Rejection::NotFound { .. })
    ));
}

/// A node that joins a loaded cluster takes its share, one replica move at a time.
#[test]
fn rebalancing_spreads_replicas_onto_a_new_node() {
    let mut c = catalog();
    register_nodes(&mut c, 2..=3);
    for i in 0..12 {
        c.apply(CatalogCommand::CreateEvent { id: format!("e{i:02}").into(), spec: event() }, 300).unwrap();
    }
    assert_eq!(c.rebalance_step(), None, "three nodes, three replicas each: even");
    register_nodes(&mut c, 4..=4);
    let mut moves = 0;
    while let Some(command) = c.rebalance_step() {
        c.apply(command, 400).unwrap();
        moves += 1;
        assert!(moves <= 12, "rebalancing converges");
    }
    assert_eq!(moves, 9, "node 4's fair share of 36 replicas on four nodes");
    assert_eq!(c.load(), BTreeMap::from([(1, 9), (2, 9), (3, 9), (4, 9)]));
    for e in c.events.values() {
        let mut r = e.replicas.clone();
        r.dedup();
        assert_eq!(r.len(), 3, "{e:?}");
    }
    let bad = CatalogCommand::MoveReplica { event: "e00".into(), from: 9, to: 1 };
    assert_eq!(invalid_field(c.apply(bad, 500)), "to");
}

#[test]
fn sales_window() {
    // Sales end at the start unless told otherwise.
    let mut e = event();
    assert_eq!(e.sales_end(), e.starts_at);
    e.sales_end = Some(1_500_000);
    assert_eq!(e.sales_end(), 1_500_000);
    // An event that has already started, or whose sales have already ended, is not created
    // (the time is the entry's, so every replica decides the same).
    // (A fresh catalog each time: its clock never runs backwards.)
    assert_eq!(
        invalid_field(
            catalog().apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event() }, 2_000_000)
        ),
        "starts_at"
    );
    assert_eq!(
        invalid_field(
            catalog().apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: e.clone() }, 1_500_000)
        ),
        "sales_end"
    );
    let mut c = catalog();
    c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: e }, 1_200_000).unwrap();
    // A patch may not move the start into the past, but may close sales now.
    let patch = EventPatch { starts_at: Some(1_300_000), ..EventPatch::default() };
    assert_eq!(
        invalid_field(c.apply(CatalogCommand::UpdateEvent { id: "e1".into(), patch }, 1_400_000)),
        "starts_at"
    );
    let patch = EventPatch { sales_end: Some(1_400_000), ..EventPatch::default() };
    let CatalogChange::Event(e) =
        c.apply(CatalogCommand::UpdateEvent { id: "e1".into(), patch }, 1_400_000).unwrap()
    else {
        panic!("expected an event")
    };
    assert_eq!(e.spec.sales_end(), 1_400_000);
    // Renaming a started event keeps its (past) start.
    let patch = EventPatch { name: Some("Renamed".into()), ..EventPatch::default() };
    c.apply(CatalogCommand::UpdateEvent { id: "e1".into(), patch }, 3_000_000).unwrap();
}

#[test]
fn refund_window() {
    // Buyers may cancel until the show starts unless told otherwise.
    let mut e = event();
    assert_eq!(e.refund_until(), e.starts_at);
    e.refund_until = Some(1_100_000);
    assert_eq!(e.refund_until(), 1_100_000);
    let mut c = catalog();
    c.apply(CatalogCommand::CreateEvent { id: "e1".into(), spec: event() }, 1_000).unwrap();
    // A patch moves it, to any time (now or past closes it).
    let patch = EventPatch { refund_until: Some(5_000), ..EventPatch::default() };
    let CatalogChange::Event(e) =
        c.apply(CatalogCommand::UpdateEvent { id: "e1".into(), patch }, 6_000).unwrap()
    else {
        panic!("expected an event")
    };
    assert_eq!((e.spec.refund_until, e.spec.refund_until()), (Some(5_000), 5_000));
}
