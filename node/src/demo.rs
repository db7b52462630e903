//! `boxoffice demo`: loads sample venues, performers and events into a running node over
//! its HTTP API, as an admin client would, and prints what to try next. Run again, it finds
//! its venue and loads nothing twice. Its output may go to a pipe that closes early
//! (`demo | head`): lines that cannot be written are dropped, never a panic.

use std::io::Write as _;

use anyhow::{bail, Context};
use serde_json::{json, Value};

async fn post(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {base}{path} (is `boxoffice serve` running?)"))?;
    let status = response.status();
    let value: Value = response.json().await.with_context(|| format!("reading the answer to POST {path}"))?;
    if !status.is_success() {
        bail!("POST {path} answered {status}: {value}");
    }
    Ok(value)
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

fn seated(name: &str, rows: &[&str], seats: u32) -> Value {
    json!({"name": name, "kind": "seated", "rows": rows.iter().map(|r| json!({"name": r, "seats": seats})).collect::<Vec<_>>()})
}

/// The demo's first venue; its presence means the demo was loaded before.
const FIRST_VENUE: &str = "Harbor Arena";

/// Print a line to stdout; a closed pipe drops it.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Whether the node already has the demo's venue (the admin listing, page by page).
async fn loaded_before(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<bool> {
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "100".to_string())];
        query.extend(cursor.take().map(|c| ("cursor", c)));
        let response = client
            .get(format!("{base}/v1/venues"))
            .query(&query)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {base}/v1/venues (is `boxoffice serve` running?)"))?;
        let status = response.status();
        let value: Value = response.json().await.context("reading the answer to GET /v1/venues")?;
        if !status.is_success() {
            bail!("GET /v1/venues answered {status}: {value}");
        }
        let venues = value["venues"].as_array().map(Vec::as_slice).unwrap_or_default();
        if venues.iter().any(|v| v["name"] == FIRST_VENUE) {
            return Ok(true);
        }
        match value["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(false),
        }
    }
}

/// Load the demo data through `client` into the node at `http` (an address, or a base URL).
pub async fn load(client: &reqwest::Client, http: &str, token: &str) -> anyhow::Result<()> {
    let base = if http.starts_with("http") { http.to_string() } else { format!("http://{http}") };
    if loaded_before(client, &base, token).await? {
        say(&format!("The demo is already loaded into {base} (venue {FIRST_VENUE:?}); nothing added."));
        say(&format!("  curl -s '{base}/v1/search?q=harbor' | jq ."));
        return Ok(());
    }
    let arena = post(
        client,
        &base,
        token,
        "/v1/venues",
        json!({
            "name": FIRST_VENUE, "city": "Seattle", "country": "US",
            "location": {"lat": 47.6221, "lon": -122.3540},
            "sections": [
                seated("FLOOR", &["A", "B", "C", "D"], 20),
                seated("UPPER", &["A", "B", "C", "D", "E", "F"], 30),
                {"name": "GA", "kind": "general", "capacity": 500},
            ]
        }),
    )
    .await?;
    let club = post(
        client,
        &base,
        token,
        "/v1/venues",
        json!({
            "name": "Blue Note Club", "city": "Chicago", "country": "US",
            "location": {"lat": 41.8781, "lon": -87.6298},
            "sections": [seated("MAIN", &["A", "B"], 12), {"name": "BAR", "kind": "general", "capacity": 80}]
        }),
    )
    .await?;
    let theater = post(
        client,
        &base,
        token,
        "/v1/venues",
        json!({
            "name": "Old Globe Theater", "city": "San Diego", "country": "US",
            "location": {"lat": 32.7320, "lon": -117.1510},
            "sections": [seated("ORCH", &["A", "B", "C", "D", "E"], 16), seated("BALC", &["A", "B"], 18)]
        }),
    )
    .await?;
    let band = post(client, &base, token, "/v1/performers", json!({"name": "Mötley Waves", "genre": "rock"}))
        .await?;
    let singer =
        post(client, &base, token, "/v1/performers", json!({"name": "Taylor Swiftwater", "genre": "pop"}))
            .await?;
    let trio =
        post(client, &base, token, "/v1/performers", json!({"name": "The Late Trio", "genre": "jazz"}))
            .await?;
    let company =
        post(client, &base, token, "/v1/performers", json!({"name": "Globe Players", "genre": "theater"}))
            .await?;

    let in_days = |d: i64| {
        let t = time::OffsetDateTime::now_utc() + time::Duration::days(d);
        t.replace_nanosecond(0)
            .unwrap_or(t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let events = [
        json!({"name": "Mötley Waves — Harbor Tour", "description": "Loud guitars by the water.", "type": "concert",
            "venue_id": id(&arena), "performer_ids": [id(&band)], "starts_at": in_days(30),
            "prices": {"FLOOR": 12000, "UPPER": 6500, "GA": 4500}, "currency": "USD", "per_user_limit": 6}),
        json!({"name": "Taylor Swiftwater: The Eras of Rain", "description": "A pop night.", "type": "concert",
            "venue_id": id(&arena), "performer_ids": [id(&singer)], "starts_at": in_days(45),
            "prices": {"FLOOR": 25000, "UPPER": 9000, "GA": 7000}, "currency": "USD", "per_user_limit": 4}),
        json!({"name": "Late Night Jazz", "description": "Standards and blue notes.", "type": "jazz",
            "venue_id": id(&club), "performer_ids": [id(&trio)], "starts_at": in_days(7),
            "prices": {"MAIN": 3500, "BAR": 2000}, "currency": "USD", "per_user_limit": 4}),
        json!({"name": "Hamlet", "description": "To be, or not to be.", "type": "theater",
            "venue_id": id(&theater), "performer_ids": [id(&company)], "starts_at": in_days(14),
            "prices": {"ORCH": 8000, "BALC": 4000}, "currency": "USD", "per_user_limit": 8}),
    ];
    say(&format!("Loaded into {base}:"));
    let mut first = None;
    for e in events {
        let event = post(client, &base, token, "/v1/events", e).await?;
        say(&format!("  event {}  {}", id(&event), event["name"].as_str().unwrap_or_default()));
        first.get_or_insert(id(&event));
    }
    let first = first.unwrap_or_default();
    say("");
    say("Try:");
    say(&format!("  curl -s {base}/v1/events/{first} | jq .availability"));
    say("  TOKEN=$(boxoffice token --user alice)");
    say(&format!(
        "  curl -s -X POST {base}/v1/booking/reserve -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n       -d '{{\"event_id\":\"{first}\",\"section\":\"FLOOR\",\"quantity\":2}}'"
    ));
    Ok(())
}
