//! Behaviour of the search index, end to end through the public API.

use search::{
    EventDoc, FeedMark, PerformerDoc, SearchError, SearchIndex, SearchOptions, SearchPage, SearchQuery,
    VenueDoc,
};

const DAY: u64 = 86_400_000;
const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn venue(city: &str, lat: f64, lon: f64) -> VenueDoc {
    VenueDoc { id: format!("v-{city}"), name: format!("{city} Arena"), city: city.into(), lat, lon }
}

fn ev(id: &str, name: &str, starts_at_ms: u64, v: VenueDoc) -> EventDoc {
    EventDoc {
        id: id.into(),
        name: name.into(),
        description: String::new(),
        event_type: "concert".into(),
        starts_at_ms,
        on_sale_at_ms: 0,
        cancelled: false,
        venue: v,
        performers: vec![],
    }
}

fn nyc() -> VenueDoc {
    venue("New York", 40.7128, -74.0060)
}
fn chicago() -> VenueDoc {
    venue("Chicago", 41.8781, -87.6298)
}

fn options() -> SearchOptions {
    SearchOptions { writer_memory_bytes: 15 << 20, cache_entries: 16 }
}

fn index_with(events: Vec<EventDoc>) -> SearchIndex {
    let index = SearchIndex::in_memory(options()).unwrap();
    index.apply(1, events).unwrap();
    index
}

fn ids(page: &SearchPage) -> Vec<&str> {
    page.results.iter().map(|h| h.event.id.as_str()).collect()
}

fn term(t: &str) -> SearchQuery {
    SearchQuery { term: Some(t.into()), ..Default::default() }
}

fn invalid_field(r: Result<SearchPage, SearchError>) -> String {
    match r {
        Err(SearchError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn exact_name_ranks_first() {
    let index = index_with(vec![
        ev("a", "Taylor Swift Tribute Night", T0, nyc()),
        ev("b", "Taylor Swift", T0 + DAY, nyc()),
        ev("c", "Swift Taylor and friends", T0 + 2 * DAY, nyc()),
        ev("d", "Unrelated", T0, nyc()),
    ]);
    let page = index.search(&term("taylor swift")).unwrap();
    assert_eq!(ids(&page)[0], "b", "{page:?}");
    assert_eq!(page.results.len(), 3);
    assert!(page.results[0].score > page.results[1].score);
}

#[test]
fn performers_venue_and_description_are_searched_and_carried() {
    let mut e = ev("p", "Stadium Night", T0, nyc());
    e.performers = vec![PerformerDoc { id: "p1".into(), name: "Mötley Crüe".into() }];
    e.description = "an evening of glam".into();
    let index = index_with(vec![e, ev("q", "Other", T0, chicago())]);
    let page = index.search(&term("crue")).unwrap();
    assert_eq!(ids(&page), vec!["p"]);
    assert_eq!(page.results[0].event.performers[0].name, "Mötley Crüe");
    assert_eq!(page.results[0].event.venue.name, "New York Arena");
    assert_eq!(ids(&index.search(&term("glam")).unwrap()), vec!["p"]);
    assert_eq!(ids(&index.search(&term("arena chicago")).unwrap()), vec!["q"]);
}

#[test]
fn accents_typos_and_prefix() {
    let index = index_with(vec![
        ev("m", "Mötley Crüe", T0, nyc()),
        ev("t", "Taylor Swift", T0, nyc()),
        ev("x", "Mike Tyson Live", T0, nyc()),
    ]);
    assert_eq!(ids(&index.search(&term("motley")).unwrap()), vec!["m"]);
    assert_eq!(ids(&index.search(&term("MÖTLEY crue")).unwrap()), vec!["m"]);
    assert_eq!(ids(&index.search(&term("tayler")).unwrap()), vec!["t"], "typo at distance 1");
    assert_eq!(ids(&index.search(&term("taylor swi")).unwrap()), vec!["t"], "prefix of the last word");
    assert_eq!(ids(&index.search(&term("tay")).unwrap()), vec!["t"], "prefix of the only word");
    assert_eq!(ids(&index.search(&term("tysom")).unwrap()), vec!["x"], "typo at distance 1");
    // Short words get no typo tolerance: "swit" (4 letters, not last) must match exactly.
    assert!(index.search(&term("swit taylor")).unwrap().results.is_empty());
    assert!(index.search(&term("zzzzzz")).unwrap().results.is_empty());
}

#[test]
fn each_filter_alone_and_combined() {
    let mut theatre = ev("th", "Hamlet", T0 + 3 * DAY, chicago());
    theatre.event_type = "Theatre".into();
    let index = index_with(vec![
        ev("n1", "Rock Night", T0, nyc()),
        ev("n2", "Jazz Night", T0 + 5 * DAY, nyc()),
        ev("c1", "Rock Night", T0 + DAY, chicago()),
        theatre,
    ]);
    let q = |f: &dyn Fn(&mut SearchQuery)| {
        let mut q = SearchQuery::default();
        f(&mut q);
        ids(&index.search(&q).unwrap()).into_iter().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(q(&|q| q.location = Some("new york".into())), vec!["n1", "n2"]);
    assert_eq!(q(&|q| q.location = Some("  NEW   YÖRK ".into())), vec!["n1", "n2"]);
    assert!(q(&|q| q.location = Some("new yrok".into())).is_empty(), "city is not fuzzy");
    assert!(q(&|q| q.location = Some("new".into())).is_empty(), "city is exact");
    assert_eq!(q(&|q| q.event_type = Some("theatre".into())), vec!["th"]);
    assert_eq!(q(&|q| q.event_type = Some("concert".into())), vec!["n1", "c1", "n2"]);
    assert_eq!(q(&|q| q.date_from_ms = Some(T0 + DAY)), vec!["c1", "th", "n2"]);
    assert_eq!(q(&|q| q.date_to_ms = Some(T0 + DAY)), vec!["n1", "c1"]);
    assert_eq!(
        q(&|q| {
            q.lat = Some(41.88);
            q.lon = Some(-87.63);
            q.radius_km = Some(10.0)
        }),
        vec!["c1", "th"]
    );
    assert_eq!(
        q(&|q| {
            q.term = Some("rock".into());
            q.location = Some("chicago".into())
        }),
        vec!["c1"]
    );
    assert_eq!(
        q(&|q| {
            q.term = Some("night".into());
            q.location = Some("new york".into());
            q.event_type = Some("concert".into());
            q.date_from_ms = Some(T0 + DAY);
            q.date_to_ms = Some(T0 + 10 * DAY)
        }),
        vec!["n2"]
    );
}

#[test]
fn date_bounds_are_inclusive() {
    let index = index_with(vec![
        ev("before", "E", T0 - 1, nyc()),
        ev("from", "E", T0, nyc()),
        ev("to", "E", T0 + DAY, nyc()),
        ev("after", "E", T0 + DAY + 1, nyc()),
    ]);
    let q = SearchQuery { date_from_ms: Some(T0), date_to_ms: Some(T0 + DAY), ..Default::default() };
    assert_eq!(ids(&index.search(&q).unwrap()), vec!["from", "to"]);
    let q = SearchQuery {
        term: Some("e".into()),
        date_from_ms: Some(T0),
        date_to_ms: Some(T0),
        ..Default::default()
    };
    assert_eq!(ids(&index.search(&q).unwrap()), vec!["from"]);
}

#[test]
fn geo_radius_is_a_true_distance_at_the_edge() {
    // Points due north of the centre at 49.9 km and 50.1 km, and one at a box corner (inside
    // the lat/lon box of 50 km but ~70 km away).
    let (lat, lon) = (40.0, -100.0);
    let km_per_deg_lat = search::geo::EARTH_RADIUS_KM.to_radians();
    let inside = venue("In", lat + 49.9 / km_per_deg_lat, lon);
    let outside = venue("Out", lat + 50.1 / km_per_deg_lat, lon);
    let corner =
        venue("Corner", lat + 49.0 / km_per_deg_lat, lon + 49.0 / (km_per_deg_lat * lat.to_radians().cos()));
    let index = index_with(vec![
        ev("in", "E", T0, inside),
        ev("out", "E", T0, outside),
        ev("corner", "E", T0, corner),
    ]);
    let q = SearchQuery { lat: Some(lat), lon: Some(lon), radius_km: Some(50.0), ..Default::default() };
    assert_eq!(ids(&index.search(&q).unwrap()), vec!["in"]);
    let q = SearchQuery { radius_km: Some(50.2), ..q };
    assert_eq!(ids(&index.search(&q).unwrap()), vec!["in", "out"]);
    let q = SearchQuery { radius_km: Some(75.0), ..q };
    assert_eq!(ids(&index.search(&q).unwrap()), vec!["corner", "in", "out"]);
}

#[test]
fn geo_across_the_antimeridian() {
    let fiji = venue("Suva", -18.14, 178.44);
    let samoa_side = venue("Far", -18.14, -179.9);
    let index = index_with(vec![ev("a", "E", T0, fiji), ev("b", "E", T0, samoa_side)]);
    let q = SearchQuery { lat: Some(-18.14), lon: Some(179.5), radius_km: Some(200.0), ..Default::default() };
    assert_eq!(ids(&index.search(&q).unwrap()), vec!["a", "b"]);
}

fn page_through(index: &SearchIndex, mut q: SearchQuery) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let page = index.search(&q).unwrap();
        assert!(page.results.len() <= q.limit);
        seen.extend(page.results.iter().map(|h| h.event.id.clone()));
        match page.next_cursor {
            Some(c) => {
                assert_eq!(page.results.len(), q.limit, "only the last page is short");
                q.cursor = Some(c)
            }
            None => return seen,
        }
    }
    panic!("paging did not end");
}

#[test]
fn paging_has_no_duplicates_or_gaps() {
    // 250 events, many sharing a start time (ties broken by id) and a score.
    let events: Vec<EventDoc> = (0..250)
        .map(|i| {
            let name = if i % 3 == 0 { "gala gala" } else { "gala" };
            ev(&format!("e{i:03}"), name, T0 + (i % 17) * 1000, if i % 2 == 0 { nyc() } else { chicago() })
        })
        .collect();
    let index = index_with(events);
    for q in [
        SearchQuery { limit: 7, ..Default::default() },
        SearchQuery { limit: 7, term: Some("gala".into()), ..Default::default() },
        SearchQuery { limit: 7, location: Some("chicago".into()), ..Default::default() },
        SearchQuery { limit: 100, date_from_ms: Some(T0), ..Default::default() },
    ] {
        let all = index.search(&SearchQuery { limit: 100, cursor: None, ..q.clone() }).unwrap();
        let seen = page_through(&index, q.clone());
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "duplicates for {q:?}");
        let expected = if q.location.is_some() { 125 } else { 250 };
        assert_eq!(seen.len(), expected, "gaps for {q:?}");
        // Pages concatenate to the same order as one big page.
        let first: Vec<String> = all.results.iter().map(|h| h.event.id.clone()).collect();
        assert_eq!(&seen[..first.len()], &first[..]);
    }
    // Ordering without a term: starts_at then id.
    let page = index.search(&SearchQuery { limit: 5, ..Default::default() }).unwrap();
    assert_eq!(ids(&page), vec!["e000", "e017", "e034", "e051", "e068"]);
}

#[test]
fn cursor_of_another_query_is_rejected() {
    let index = index_with((0..5).map(|i| ev(&format!("e{i}"), "gala", T0 + i, nyc())).collect());
    let page = index.search(&SearchQuery { limit: 2, ..term("gala") }).unwrap();
    let cursor = page.next_cursor.expect("more pages");
    let other = SearchQuery { limit: 2, cursor: Some(cursor), ..term("other") };
    assert_eq!(invalid_field(index.search(&other)), "cursor");
    let garbage = SearchQuery { cursor: Some("nope".into()), ..Default::default() };
    assert_eq!(invalid_field(index.search(&garbage)), "cursor");
}

#[test]
fn no_parameters_lists_upcoming_events() {
    let index = index_with(vec![
        ev("past", "E", T0 - DAY, nyc()),
        ev("soon", "E", T0 + 1000 * DAY, nyc()),
        ev("next", "E", T0 + DAY, chicago()),
    ]);
    let page = index.search(&SearchQuery { now_ms: T0, ..Default::default() }).unwrap();
    assert_eq!(ids(&page), vec!["next", "soon"]);
}

#[test]
fn cancelled_events_never_appear() {
    let mut c = ev("c", "Gala", T0, nyc());
    c.cancelled = true;
    let index = index_with(vec![c.clone(), ev("ok", "Gala", T0, nyc())]);
    assert_eq!(ids(&index.search(&term("gala")).unwrap()), vec!["ok"]);
    assert_eq!(ids(&index.search(&SearchQuery::default()).unwrap()), vec!["ok"]);
    assert_eq!(index.len(), 2, "cancelled stays indexed");
    // Un-cancel through an update.
    c.cancelled = false;
    index.apply(2, vec![c]).unwrap();
    assert_eq!(ids(&index.search(&term("gala")).unwrap()), vec!["c", "ok"]);
}

#[test]
fn upsert_replaces_and_is_idempotent() {
    let index = index_with(vec![ev("a", "Old Name", T0, nyc())]);
    let g1 = index.generation();
    let renamed = ev("a", "Brand New", T0, nyc());
    index.apply(2, vec![renamed.clone()]).unwrap();
    index.apply(2, vec![renamed.clone()]).unwrap();
    assert!(index.generation() > g1);
    assert_eq!(index.len(), 1);
    assert!(index.search(&term("old")).unwrap().results.is_empty());
    assert_eq!(index.search(&term("brand")).unwrap().results[0].event, renamed);
    // The same id twice in one batch: the last copy wins.
    index.apply(3, vec![ev("a", "First", T0, nyc()), ev("a", "Second", T0, nyc())]).unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(ids(&index.search(&term("second")).unwrap()), vec!["a"]);
    // An older batch is ignored.
    index.apply(1, vec![ev("a", "Stale", T0, nyc())]).unwrap();
    assert!(index.search(&term("stale")).unwrap().results.is_empty());
    assert_eq!(index.applied_index(), 3);
}

#[test]
fn cache_never_serves_a_stale_generation() {
    let index = index_with(vec![ev("a", "Gala", T0, nyc())]);
    let q = term("gala");
    assert_eq!(index.search(&q).unwrap().results.len(), 1);
    assert_eq!(index.search(&q).unwrap().results.len(), 1);
    index.apply(2, vec![ev("b", "Gala", T0, nyc())]).unwrap();
    let page = index.search(&q).unwrap();
    assert_eq!(page.results.len(), 2);
    assert_eq!(page.generation, index.generation());
}

#[test]
fn rebuild_replaces_everything() {
    let index = index_with(vec![ev("a", "Gala", T0, nyc()), ev("b", "Gala", T0, nyc())]);
    index.rebuild(10, vec![ev("c", "Gala", T0, nyc())]).unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index.applied_index(), 10);
    assert_eq!(ids(&index.search(&term("gala")).unwrap()), vec!["c"]);
}

#[test]
fn reopen_from_disk_keeps_applied_index_and_docs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx");
    {
        let index = SearchIndex::open(&path, options()).unwrap();
        assert_eq!(index.applied_index(), 0);
        index.apply(41, vec![ev("a", "Gala", T0, nyc())]).unwrap();
        index.apply(42, vec![ev("b", "Gala", T0, nyc())]).unwrap();
        index.compact().unwrap();
        assert_eq!((index.len(), index.applied_index(), index.generation()), (2, 42, 2));
    }
    let index = SearchIndex::open(&path, options()).unwrap();
    assert_eq!(index.applied_index(), 42);
    assert_eq!(index.len(), 2);
    assert_eq!(index.generation(), 2);
    assert_eq!(ids(&index.search(&term("gala")).unwrap()), vec!["a", "b"]);
}

#[test]
fn the_feed_mark_is_kept_with_its_commit_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx");
    let mark = FeedMark { clock_ms: 1_234, names: 99 };
    {
        let index = SearchIndex::open(&path, options()).unwrap();
        assert_eq!(index.feed_mark(), None);
        index
            .rebuild_marked(5, Some(FeedMark { clock_ms: 1, names: 99 }), vec![ev("a", "Gala", T0, nyc())])
            .unwrap();
        index.apply_marked(6, Some(mark), vec![ev("b", "Gala", T0, nyc())]).unwrap();
        // An older batch is ignored, its mark with it.
        index.apply_marked(3, Some(FeedMark { clock_ms: 7, names: 7 }), vec![]).unwrap();
        assert_eq!(index.feed_mark(), Some(mark));
    }
    let index = SearchIndex::open(&path, options()).unwrap();
    assert_eq!((index.applied_index(), index.feed_mark()), (6, Some(mark)));
    // A commit without a mark says so: the next restart cannot catch up from it.
    index.apply(7, vec![ev("c", "Gala", T0, nyc())]).unwrap();
    assert_eq!(index.feed_mark(), None);
}

#[test]
fn corrupt_index_dir_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx");
    {
        let index = SearchIndex::open(&path, options()).unwrap();
        index.apply(7, vec![ev("a", "Gala", T0, nyc())]).unwrap();
    }
    // Flip bytes in every segment file: checksums no longer match.
    for entry in std::fs::read_dir(&path).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") && !name.starts_with('.') {
            let mut bytes = std::fs::read(&p).unwrap();
            if let Some(b) = bytes.first_mut() {
                *b ^= 0xff;
            }
            std::fs::write(&p, bytes).unwrap();
        }
    }
    let index = SearchIndex::open(&path, options()).unwrap();
    assert_eq!(index.applied_index(), 0);
    assert_eq!(index.len(), 0);
    index.apply(7, vec![ev("a", "Gala", T0, nyc())]).unwrap();
    assert_eq!(index.len(), 1);

    // Garbage meta.json.
    drop(index);
    std::fs::write(path.join("meta.json"), b"{ not json").unwrap();
    let index = SearchIndex::open(&path, options()).unwrap();
    assert_eq!((index.applied_index(), index.len()), (0, 0));

    // Junk files and no meta.json at all.
    drop(index);
    std::fs::remove_dir_all(&path).unwrap();
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("junk"), b"x").unwrap();
    let index = SearchIndex::open(&path, options()).unwrap();
    assert_eq!((index.applied_index(), index.len()), (0, 0));
}

#[test]
fn invalid_inputs_name_their_field() {
    let index = index_with(vec![]);
    let s = |q: SearchQuery| invalid_field(index.search(&q));
    assert_eq!(s(SearchQuery { limit: 101, ..Default::default() }), "limit");
    assert_eq!(s(term(&"a".repeat(201))), "term");
    assert_eq!(s(term("!!! ???")), "term");
    assert_eq!(s(term("a b c d e f g h i")), "term");
    assert_eq!(s(SearchQuery { location: Some("x".repeat(101)), ..Default::default() }), "location");
    assert_eq!(s(SearchQuery { event_type: Some("x".repeat(65)), ..Default::default() }), "type");
    let geo = |lat, lon, r| SearchQuery { lat, lon, radius_km: r, ..Default::default() };
    assert_eq!(s(geo(Some(1.0), Some(1.0), None)), "radius_km");
    assert_eq!(s(geo(None, Some(1.0), Some(1.0))), "lat");
    assert_eq!(s(geo(Some(1.0), None, Some(1.0))), "lon");
    assert_eq!(s(geo(Some(91.0), Some(1.0), Some(1.0))), "lat");
    assert_eq!(s(geo(Some(1.0), Some(-181.0), Some(1.0))), "lon");
    assert_eq!(s(geo(Some(1.0), Some(1.0), Some(0.0))), "radius_km");
    assert_eq!(s(geo(Some(1.0), Some(1.0), Some(20_000.1))), "radius_km");
    assert_eq!(s(geo(Some(f64::NAN), Some(1.0), Some(1.0))), "lat");
    assert_eq!(
        s(SearchQuery { date_from_ms: Some(2), date_to_ms: Some(1), ..Default::default() }),
        "date_to"
    );
    // Bounds themselves are fine.
    let longest = format!("{} {}", vec!["a".repeat(39); 4].join(" "), "b".repeat(40));
    assert_eq!(longest.len(), search::TERM_BYTES_MAX);
    assert!(index.search(&SearchQuery { limit: 100, ..term(&longest) }).is_ok());
    assert!(index.search(&geo(Some(-90.0), Some(180.0), Some(20_000.0))).is_ok());
}
