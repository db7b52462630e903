//! Issue 14's API over a real process: the seat map's layout and compact statuses (in the
//! order of `/tickets`, with ETags, 304 and gzip), `?since=` on the seat stream, dev
//! sign-in, and the admin listings.

mod common;

use std::time::Duration;

use common::{event_at, eventually, token, venue, Client, Node};
use serde_json::{json, Value};

/// A raw GET: status, headers and the body's bytes as sent (reqwest here does not decompress).
async fn get_raw(
    c: &Client,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = c.http.get(format!("{}{}", c.base, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.timeout(Duration::from_secs(30)).send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// Sections out of name order (Z before B), rows out of name order ("10" before "2"), and a
/// general section between seated ones: layout order must be the venue's order, not sorted.
async fn mixed_event(c: &Client, admin: &str) -> String {
    let venue = c
        .post("/v1/venues", admin, json!({
            "name": "Mixed Hall", "city": "Springfield", "country": "US", "location": {"lat": 40.0, "lon": -75.0},
            "sections": [
                {"name": "Z", "kind": "seated", "rows": [{"name": "10", "seats": 3}, {"name": "2", "seats": 2}]},
                {"name": "GA", "kind": "general", "capacity": 4},
                {"name": "B", "kind": "seated", "rows": [{"name": "1", "seats": 2}]}
            ]
        }))
        .await;
    assert_eq!(venue.status, 201, "{}", venue.body);
    let event = c
        .post(
            "/v1/events",
            admin,
            json!({
                "name": "Mixed Night", "type": "concert", "venue_id": venue.body["id"],
                "starts_at": "2030-01-01T20:00:00Z", "prices": {"Z": 7000, "GA": 2500, "B": 9000},
                "currency": "USD", "per_user_limit": 8, "hold_seconds": 600
            }),
        )
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    event.body["id"].as_str().unwrap().to_string()
}

/// The ticket ids of a layout answer, in its order.
fn layout_ids(layout: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    for s in layout["sections"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        match s["kind"].as_str().unwrap() {
            "seated" => {
                for r in s["rows"].as_array().unwrap() {
                    for seat in r["seats"].as_array().unwrap() {
                        ids.push(format!("{name}-{}-{seat}", r["name"].as_str().unwrap()));
                    }
                }
            }
            "general" => {
                for n in 1..=s["capacity"].as_u64().unwrap() {
                    ids.push(format!("{name}-{n}"));
                }
            }
            other => panic!("unknown kind {other}"),
        }
    }
    ids
}

fn status_letter(word: &str) -> char {
    match word {
        "available" => 'a',
        "held" => 'h',
        "sold" => 's',
        other => panic!("unknown status {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_and_statuses_follow_the_tickets_order_with_etags_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let admin = token("admin", true);
    let event = mixed_event(&c, &admin).await;
    let (alice, bob) = (token("alice", false), token("bob", false));
    let hold = c
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["Z-2-1", "GA-3"]}))
        .await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let paid = c
        .post(
            "/v1/booking/confirm",
            &alice,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    let held = c.post("/v1/booking/reserve", &bob, json!({"event_id": event, "ticket_ids": ["B-1-2"]})).await;
    assert_eq!(held.status, 201, "{}", held.body);

    // Order and content: layout × statuses == /tickets, entry by entry.
    let (status, th, raw_tickets) = get_raw(&c, &format!("/v1/events/{event}/tickets"), &[]).await;
    assert_eq!(status, 200);
    assert!(th.get("content-encoding").is_none(), "no gzip unless asked");
    let tickets: Value = serde_json::from_slice(&raw_tickets).unwrap();
    let (status, lh, raw_layout) = get_raw(&c, &format!("/v1/events/{event}/layout"), &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&raw_layout));
    let layout: Value = serde_json::from_slice(&raw_layout).unwrap();
    let (status, sh, raw_seats) = get_raw(&c, &format!("/v1/events/{event}/seats"), &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&raw_seats));
    let seats: Value = serde_json::from_slice(&raw_seats).unwrap();

    let list = tickets["tickets"].as_array().unwrap();
    let ids = layout_ids(&layout);
    let ticket_ids: Vec<&str> = list.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ticket_ids, "layout order is /tickets' order");
    assert_eq!(
        &ids[..6],
        &["Z-10-1", "Z-10-2", "Z-10-3", "Z-2-1", "Z-2-2", "GA-1"],
        "venue order, not sorted"
    );
    assert_eq!(ids.last().unwrap(), "B-1-2");
    assert_eq!(layout["count"].as_u64().unwrap() as usize, list.len());
    assert_eq!(layout["event_id"], event.as_str());
    let kinds: Vec<(&str, &str, u64)> = layout["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["kind"].as_str().unwrap(), s["price"].as_u64().unwrap()))
        .collect();
    assert_eq!(kinds, [("Z", "seated", 7000), ("GA", "general", 2500), ("B", "seated", 9000)]);
    for (t, id) in list.iter().zip(&ids) {
        let section =
            layout["sections"].as_array().unwrap().iter().find(|s| s["name"] == t["section"]).unwrap();
        assert_eq!(t["price"], section["price"], "{id}");
    }
    let statuses = seats["statuses"].as_str().unwrap();
    let expected: String = list.iter().map(|t| status_letter(t["status"].as_str().unwrap())).collect();
    assert_eq!(statuses, expected);
    assert_eq!(seats["version"], tickets["version"]);
    let at = |id: &str| statuses.as_bytes()[ids.iter().position(|x| x == id).unwrap()] as char;
    assert_eq!((at("Z-2-1"), at("GA-3"), at("B-1-2"), at("Z-10-1")), ('s', 's', 'h', 'a'));

    // Headers: layout strong ETag for a minute; statuses and tickets weak by version.
    let version = seats["version"].as_u64().unwrap();
    let layout_etag = header(&lh, "etag").to_string();
    assert!(layout_etag.starts_with('"') && layout_etag.len() > 4, "strong: {layout_etag}");
    assert_eq!(header(&lh, "cache-control"), "public, max-age=60");
    assert_eq!(header(&sh, "etag"), format!("W/\"s{version}\""));
    assert_eq!(header(&sh, "cache-control"), "public, max-age=1");
    assert_eq!(header(&th, "etag"), format!("W/\"t{version}\""));
    for h in [&lh, &sh, &th] {
        assert!(header(h, "vary").to_ascii_lowercase().contains("accept-encoding"));
        assert!(header(h, "content-type").starts_with("application/json"));
    }

    // 304 on If-None-Match, for each.
    for (path, etag) in [
        ("layout", layout_etag.clone()),
        ("seats", format!("W/\"s{version}\"")),
        ("tickets", format!("W/\"t{version}\"")),
    ] {
        let (status, h, body) =
            get_raw(&c, &format!("/v1/events/{event}/{path}"), &[("if-none-match", etag.as_str())]).await;
        assert_eq!(status, 304, "{path}");
        assert!(body.is_empty(), "{path}");
        assert_eq!(header(&h, "etag"), etag, "{path}");
    }

    // gzip, when asked: decodes to exactly the plain bytes.
    for (path, plain) in [("layout", &raw_layout), ("seats", &raw_seats), ("tickets", &raw_tickets)] {
        let (status, h, gz) =
            get_raw(&c, &format!("/v1/events/{event}/{path}"), &[("accept-encoding", "gzip, deflate, br")])
                .await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&h, "content-encoding"), "gzip", "{path}");
        assert_eq!(&gunzip(&gz), plain, "{path}");
        let (_, h, identity) =
            get_raw(&c, &format!("/v1/events/{event}/{path}"), &[("accept-encoding", "gzip;q=0")]).await;
        assert!(h.get("content-encoding").is_none(), "{path}");
        assert_eq!(&identity, plain, "{path}");
    }
    // Today's JSON, field order included, for existing clients.
    let text = String::from_utf8(raw_tickets.clone()).unwrap();
    assert!(text.starts_with(&format!("{{\"version\":{version},\"tickets\":[{{\"id\":\"Z-10-1\",\"section\":\"Z\",\"row\":\"10\",\"seat\":1,\"price\":7000,\"status\":\"available\"}}")), "{}", &text[..200.min(text.len())]);

    // A change: statuses and tickets move on (the old ETags get the new body), the layout does not.
    let more =
        c.post("/v1/booking/reserve", &bob, json!({"event_id": event, "ticket_ids": ["Z-10-2"]})).await;
    assert_eq!(more.status, 201, "{}", more.body);
    let old = format!("W/\"s{version}\"");
    let (status, _, body) =
        get_raw(&c, &format!("/v1/events/{event}/seats"), &[("if-none-match", old.as_str())]).await;
    assert_eq!(status, 200);
    let after: Value = serde_json::from_slice(&body).unwrap();
    assert!(after["version"].as_u64().unwrap() > version);
    assert_eq!(after["statuses"].as_str().unwrap().as_bytes()[1], b'h', "Z-10-2 held");
    let old = format!("W/\"t{version}\"");
    let (status, _, _) =
        get_raw(&c, &format!("/v1/events/{event}/tickets"), &[("if-none-match", old.as_str())]).await;
    assert_eq!(status, 200);
    let (status, _, _) =
        get_raw(&c, &format!("/v1/events/{event}/layout"), &[("if-none-match", layout_etag.as_str())]).await;
    assert_eq!(status, 304);

    // Unknown events are 404 problems.
    for path in ["layout", "seats"] {
        let missing = c.get(&format!("/v1/events/evt_missing/{path}"), None).await;
        assert_eq!((missing.status, missing.body["code"].as_str()), (404, Some("not_found")), "{path}");
    }
    let doc = c.get("/openapi.json", None).await;
    for path in
        ["/v1/events/{id}/layout", "/v1/events/{id}/seats", "/v1/dev/token", "/v1/venues", "/v1/performers"]
    {
        assert!(doc.body["paths"].get(path).is_some(), "{path} missing from /openapi.json");
    }
    assert!(doc.body["paths"]["/v1/events"].get("get").is_some(), "GET /v1/events in /openapi.json");
}

/// One server-sent event: its name and data.
async fn next_event(
    resp: &mut reqwest::Response,
    buffer: &mut String,
    limit: Duration,
) -> Option<(String, Value)> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut event, mut data) = (String::from("message"), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if data.is_empty() {
                continue; // keep-alive
            }
            return Some((event, serde_json::from_str(&data).unwrap()));
        }
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(bytes))) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            _ => return None,
        }
    }
}

async fn open_stream(c: &Client, event: &str, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = c.http.get(format!("{}/v1/events/{event}/tickets/stream{query}", c.base));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    req.send().await.expect("stream opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seat_stream_resumes_from_since() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let event = common::small_event(&c, 600, 8).await;
    let alice = token("alice", false);
    let version = c.get(&format!("/v1/events/{event}/seats"), None).await.body["version"].as_u64().unwrap();

    // ?since=<current>: no snapshot, only the change that follows.
    let mut resumed = open_stream(&c, &event, &format!("?since={version}"), None).await;
    assert_eq!(resumed.status(), 200);
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-1"]})).await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let mut buf = String::new();
    let (name, data) = next_event(&mut resumed, &mut buf, Duration::from_secs(5)).await.expect("a change");
    assert_eq!(name, "change", "{data}");
    assert!(data["version"].as_u64().unwrap() > version);
    assert_eq!(data["tickets"], json!([{"id": "A-1-1", "status": "held"}]));

    // ?since=<older>: the missed change first, still no snapshot.
    let mut late = open_stream(&c, &event, &format!("?since={version}"), None).await;
    let mut buf = String::new();
    let (name, data) =
        next_event(&mut late, &mut buf, Duration::from_secs(5)).await.expect("the missed change");
    assert_eq!((name.as_str(), &data["tickets"][0]["id"]), ("change", &json!("A-1-1")));

    // No since: a snapshot first, as before.
    let mut fresh = open_stream(&c, &event, "", None).await;
    let mut buf = String::new();
    let (name, _) = next_event(&mut fresh, &mut buf, Duration::from_secs(5)).await.expect("a snapshot");
    assert_eq!(name, "snapshot");

    // Last-Event-ID wins over since: a version the node never had gets a snapshot.
    let mut both = open_stream(&c, &event, &format!("?since={version}"), Some("999999999999")).await;
    let mut buf = String::new();
    let (name, _) = next_event(&mut both, &mut buf, Duration::from_secs(5)).await.expect("a snapshot");
    assert_eq!(name, "snapshot", "the header won");

    let bad = c.get(&format!("/v1/events/{event}/tickets/stream?since=abc"), None).await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (400, Some("since")), "{}", bad.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_login_is_404_when_off_and_mints_tokens_when_on() {
    let off_dir = tempfile::tempdir().unwrap();
    let off = Node::start(off_dir.path());
    let answer = off.client().send("POST", "/v1/dev/token", None, Some(json!({"user": "alice"})), &[]).await;
    assert_eq!((answer.status, answer.body["code"].as_str()), (404, Some("not_found")), "{}", answer.body);
    drop(off);

    let on_dir = tempfile::tempdir().unwrap();
    let on = Node::start_with(on_dir.path(), &[("BOXOFFICE_DEV_LOGIN", "true")]);
    let c = on.client();
    let mint = |body: Value| {
        let c = c.clone();
        async move { c.send("POST", "/v1/dev/token", None, Some(body), &[]).await }
    };
    let alice = mint(json!({"user": "alice"})).await;
    assert_eq!(alice.status, 200, "{}", alice.body);
    let alice = alice.body["token"].as_str().unwrap().to_string();
    assert_eq!(c.get("/v1/me/bookings", Some(&alice)).await.status, 200, "a working user token");
    assert_eq!(c.get("/v1/venues", Some(&alice)).await.status, 403, "never an admin token unless asked");
    for bad in [
        json!({"user": ""}),
        json!({"user": "al ice"}),
        json!({"user": "x".repeat(65)}),
        json!({"user": "é"}),
    ] {
        let answer = mint(bad.clone()).await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (400, Some("user")),
            "{bad}: {}",
            answer.body
        );
    }
    let unknown = mint(json!({"user": "alice", "role": "admin"})).await;
    assert_eq!((unknown.status, unknown.body["code"].as_str()), (400, Some("invalid_request")));
    let root = mint(json!({"user": "root", "admin": true})).await;
    assert_eq!(root.status, 200, "{}", root.body);
    let root = root.body["token"].as_str().unwrap();
    assert_eq!(c.get("/v1/venues", Some(root)).await.status, 200, "an admin token when asked");
    assert_eq!(c.get("/v1/dev/token", None).await.status, 405, "GET is not a thing");
}

async fn ids_of(c: &Client, path: &str, key: &str, admin: &str) -> (Vec<String>, Option<String>) {
    let page = c.get(path, Some(admin)).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    let ids =
        page.body[key].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    (ids, page.body["next_cursor"].as_str().map(String::from))
}

/// Every id of a listing, page by page (`limit` each).
async fn walk(c: &Client, base: &str, key: &str, admin: &str, limit: usize) -> Vec<String> {
    let sep = if base.contains('?') { '&' } else { '?' };
    let (mut all, mut cursor) = ids_of(c, &format!("{base}{sep}limit={limit}"), key, admin).await;
    let mut pages = 1;
    while let Some(cur) = cursor {
        let (ids, next) = ids_of(c, &format!("{base}{sep}limit={limit}&cursor={cur}"), key, admin).await;
        assert!(ids.len() <= limit);
        assert!(ids.iter().all(|id| *id > cur), "{base}: a page after cursor {cur} starts after it: {ids:?}");
        all.extend(ids);
        cursor = next;
        pages += 1;
        assert!(pages <= 100, "{base}: the cursor does not move on");
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listings_page_by_id_filter_and_check_their_input() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let admin = token("admin", true);
    let mut venues = Vec::new();
    for _ in 0..3 {
        venues.push(venue(&c, &admin, 10).await);
    }
    let mut performers = Vec::new();
    for name in ["One", "Two"] {
        let p = c.post("/v1/performers", &admin, json!({"name": name, "genre": "rock"})).await;
        assert_eq!(p.status, 201, "{}", p.body);
        performers.push(p.body["id"].as_str().unwrap().to_string());
    }
    let first = event_at(&c, &admin, &venues[0], "First", 4).await;
    let second = event_at(&c, &admin, &venues[1], "Second", 4).await;
    let later = c
        .post("/v1/events", &admin, json!({
            "name": "Later", "type": "concert", "venue_id": venues[2], "starts_at": "2031-06-01T20:00:00Z",
            "prices": {"A": 5000, "GA": 2500}
        }))
        .await;
    assert_eq!(later.status, 201, "{}", later.body);
    let later = later.body["id"].as_str().unwrap().to_string();
    let cancelled = c.post(&format!("/v1/events/{second}/cancel"), &admin, json!({})).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);

    // Auth first.
    let user = token("alice", false);
    for path in ["/v1/events", "/v1/venues", "/v1/performers"] {
        assert_eq!(c.get(path, None).await.body["code"], "unauthorized", "{path}");
        assert_eq!(c.get(path, Some(&user)).await.body["code"], "forbidden", "{path}");
    }

    // Paging: every id once, in id order, whatever the page size.
    let mut events = vec![first.clone(), second.clone(), later.clone()];
    events.sort();
    venues.sort();
    performers.sort();
    for limit in [1, 2, 100] {
        assert_eq!(walk(&c, "/v1/events", "events", &admin, limit).await, events, "limit {limit}");
        assert_eq!(walk(&c, "/v1/venues", "venues", &admin, limit).await, venues, "limit {limit}");
        assert_eq!(
            walk(&c, "/v1/performers", "performers", &admin, limit).await,
            performers,
            "limit {limit}"
        );
    }
    let (page, next) = ids_of(&c, "/v1/events?limit=2", "events", &admin).await;
    assert_eq!(
        (page.as_slice(), next.as_deref()),
        (&events[..2], Some(events[1].as_str())),
        "cursor = last id"
    );
    let (_, next) = ids_of(&c, "/v1/events", "events", &admin).await;
    assert_eq!(next, None, "default limit 20 holds them all");
    let full = c.get("/v1/events?limit=1", Some(&admin)).await;
    for key in ["id", "name", "venue_id", "starts_at", "prices", "status", "queue"] {
        assert!(full.body["events"][0].get(key).is_some(), "{key} in {}", full.body);
    }
    let v = c.get("/v1/venues?limit=1", Some(&admin)).await;
    assert!(v.body["venues"][0]["sections"].is_array(), "{}", v.body);
    let p = c.get("/v1/performers?limit=1", Some(&admin)).await;
    assert!(p.body["performers"][0]["genre"].is_string(), "{}", p.body);

    // Filters.
    let mut scheduled = vec![first.clone(), later.clone()];
    scheduled.sort();
    assert_eq!(walk(&c, "/v1/events?status=scheduled", "events", &admin, 1).await, scheduled);
    assert_eq!(walk(&c, "/v1/events?status=cancelled", "events", &admin, 5).await, vec![second.clone()]);
    assert_eq!(walk(&c, "/v1/events?from=2030-06-01", "events", &admin, 5).await, vec![later.clone()]);
    let mut in_2030 = vec![first.clone(), second.clone()];
    in_2030.sort();
    assert_eq!(
        walk(&c, "/v1/events?to=2030-01-01", "events", &admin, 5).await,
        in_2030,
        "a day is inclusive"
    );
    assert_eq!(
        walk(
            &c,
            "/v1/events?from=2031-06-01T20:00:00Z&to=2031-06-01T20:00:00Z&status=scheduled",
            "events",
            &admin,
            5
        )
        .await,
        vec![later.clone()]
    );

    // Bad input names its field.
    for (path, field) in [
        ("/v1/events?limit=0", "limit"),
        ("/v1/events?limit=101", "limit"),
        ("/v1/events?limit=abc", "limit"),
        ("/v1/events?status=done", "status"),
        ("/v1/events?from=yesterday", "from"),
        ("/v1/events?to=2030-13-01", "to"),
        ("/v1/events?from=2031-01-01&to=2030-01-01", "to"),
        ("/v1/venues?limit=0", "limit"),
        ("/v1/venues?status=cancelled", "status"),
        ("/v1/performers?limit=1000", "limit"),
        ("/v1/events?colour=red", "colour"),
    ] {
        let answer = c.get(path, Some(&admin)).await;
        assert_eq!(
            (answer.status, answer.body["code"].as_str(), answer.body["field"].as_str()),
            (400, Some("invalid_request"), Some(field)),
            "{path}: {}",
            answer.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_a_replica_relays_layout_and_seats_gzipped() {
    let cluster = common::Cluster::start(4).await;
    let event = common::small_event(&cluster.client(1), 600, 8).await;
    let view = cluster.view(1).await;
    let replicas = common::placement(&view)[&event].clone();
    let outsider =
        cluster.ids().into_iter().find(|id| !replicas.contains(id)).expect("a node without a replica");
    let (inside, outside) = (cluster.client(replicas[0]), cluster.client(outsider));
    let hold = inside
        .post(
            "/v1/booking/reserve",
            &token("carol", false),
            json!({"event_id": event, "ticket_ids": ["GA-2"]}),
        )
        .await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    for path in ["layout", "seats", "tickets"] {
        let path = format!("/v1/events/{event}/{path}");
        // The replica may apply the reserve a moment after it answered: wait for the same body.
        let (status, h, from_inside) = get_raw(&inside, &path, &[]).await;
        assert_eq!(status, 200, "{path}");
        let etag = header(&h, "etag").to_string();
        let relayed = common::eventually(&path, Duration::from_secs(10), || {
            let (outside, path, etag) = (outside.clone(), path.clone(), etag.clone());
            async move {
                let (status, h, gz) = get_raw(&outside, &path, &[("accept-encoding", "gzip")]).await;
                let seen = format!("{status} {}", header(&h, "etag"));
                (status == 200 && header(&h, "etag") == etag).then_some((h, gz)).ok_or(seen)
            }
        })
        .await;
        assert_eq!(header(&relayed.0, "content-encoding"), "gzip", "{path}: the relay keeps the encoding");
        assert_eq!(gunzip(&relayed.1), from_inside, "{path}");
        let (status, _, _) = get_raw(&outside, &path, &[("if-none-match", etag.as_str())]).await;
        assert_eq!(status, 304, "{path} relayed");
    }
    let seats: Value =
        serde_json::from_slice(&get_raw(&outside, &format!("/v1/events/{event}/seats"), &[]).await.2)
            .unwrap();
    assert_eq!(seats["statuses"].as_str().unwrap().as_bytes()[21], b'h', "GA-2 is the 22nd ticket");
}

/// `PUT /v1/venues/{id}` (the organizer's venue editor): replaces the venue while no event is
/// on it; then 409, and the venue stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_is_edited_until_an_event_is_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let admin = token("admin", true);
    let id = venue(&c, &admin, 10).await;
    let path = format!("/v1/venues/{id}");
    let edited = json!({
        "name": "Bigger Hall", "city": "Shelbyville", "country": "US", "location": {"lat": 41.0, "lon": -75.5},
        "sections": [
            {"name": "A", "kind": "seated", "rows": [{"name": "1", "seats": 12}]},
            {"name": "GA", "kind": "general", "capacity": 30}
        ]
    });
    let user = token("alice", false);
    assert_eq!(c.send("PUT", &path, None, Some(edited.clone()), &[]).await.status, 401);
    assert_eq!(c.send("PUT", &path, Some(&user), Some(edited.clone()), &[]).await.status, 403);
    let missing = c.send("PUT", "/v1/venues/ven_missing", Some(&admin), Some(edited.clone()), &[]).await;
    assert_eq!((missing.status, missing.body["code"].as_str()), (404, Some("not_found")), "{}", missing.body);
    let mut bad = edited.clone();
    bad["sections"] = json!([]);
    let bad = c.send("PUT", &path, Some(&admin), Some(bad), &[]).await;
    assert_eq!((bad.status, bad.body["code"].as_str()), (400, Some("invalid_request")), "{}", bad.body);

    let ok = c.send("PUT", &path, Some(&admin), Some(edited.clone()), &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let read = c.get(&path, None).await;
    assert_eq!(
        (read.body["name"].as_str(), read.body["city"].as_str()),
        (Some("Bigger Hall"), Some("Shelbyville"))
    );
    assert_eq!(read.body["sections"][0]["rows"][0]["seats"], 12, "{}", read.body);

    // An event on it: its 12 + 30 tickets were made from the venue; the venue is fixed now.
    let event = event_at(&c, &admin, &id, "On the edited venue", 4).await;
    let tickets = c.get(&format!("/v1/events/{event}/tickets"), None).await;
    assert_eq!(tickets.body["tickets"].as_array().map(Vec::len), Some(42), "{}", tickets.body);
    let mut again = edited.clone();
    again["name"] = json!("Renamed once more");
    let refused = c.send("PUT", &path, Some(&admin), Some(again), &[]).await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (409, Some("conflict")), "{}", refused.body);
    assert_eq!(c.get(&path, None).await.body["name"], "Bigger Hall");
}

/// `PUT /v1/performers/{id}`: the new name shows on the events that name the performer, and
/// search finds them by it (the feed re-indexes them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_performer_is_edited_and_search_follows() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client();
    let admin = token("admin", true);
    let venue_id = venue(&c, &admin, 10).await;
    let p = c.post("/v1/performers", &admin, json!({"name": "Quietband", "genre": "folk"})).await;
    assert_eq!(p.status, 201, "{}", p.body);
    let pid = p.body["id"].as_str().unwrap().to_string();
    let e = c
        .post(
            "/v1/events",
            &admin,
            json!({
                "name": "An evening", "type": "concert", "venue_id": venue_id, "performer_ids": [pid],
                "starts_at": "2030-01-01T20:00:00Z", "prices": {"A": 5000, "GA": 2500}
            }),
        )
        .await;
    assert_eq!(e.status, 201, "{}", e.body);
    let event = e.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/performers/{pid}");
    let body = json!({"name": "Loudhorns", "genre": "brass"});
    assert_eq!(c.send("PUT", &path, Some(&token("alice", false)), Some(body.clone()), &[]).await.status, 403);
    let missing = c.send("PUT", "/v1/performers/prf_missing", Some(&admin), Some(body.clone()), &[]).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let bad = c.send("PUT", &path, Some(&admin), Some(json!({"name": "", "genre": "x"})), &[]).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let ok = c.send("PUT", &path, Some(&admin), Some(body), &[]).await;
    assert_eq!((ok.status, ok.body["name"].as_str()), (200, Some("Loudhorns")), "{}", ok.body);
    let page = c.get(&format!("/v1/events/{event}"), None).await;
    assert_eq!(page.body["performers"][0]["name"], "Loudhorns", "{}", page.body);
    eventually("search finds the event by the performer's new name", Duration::from_secs(10), || {
        let c = c.clone();
        let event = event.clone();
        async move {
            let found = c.get("/v1/search?term=Loudhorns", None).await;
            let ids: Vec<String> = found.body["results"]
                .as_array()
                .map(|r| r.iter().filter_map(|x| x["id"].as_str().map(String::from)).collect())
                .unwrap_or_default();
            if ids.contains(&event) {
                Ok(())
            } else {
                Err(found.body.to_string())
            }
        }
    })
    .await;
}
