//! `seatmap`: an on-sale's viewers all loading one event's seat map at once.
//!
//! Makes a seated venue of 20 sections × 20 rows × `seats / 400` seats (20,000 by default)
//! and an event there, holds about 5 % of its seats (in small groups at seeded random
//! places, so the status string is not one long run), then measures with `--clients`
//! clients, each looping a cold page load with `Accept-Encoding: gzip` and no
//! `If-None-Match`:
//!
//! - `seatmap`: `GET /v1/events/{id}/layout` then `GET /v1/events/{id}/seats` (one load =
//!   both answers, read to the end);
//! - `tickets-gzip`: the old `GET /v1/events/{id}/tickets`, gzipped;
//! - `tickets`: the old `GET /v1/events/{id}/tickets` as existing clients get it (no gzip).
//!
//! Each report's ops/s is loads/s; its notes give the bytes of each answer, raw and gzipped.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::json;

use crate::client::post;
use crate::driver::{self, OpFuture, Outcome};
use crate::progress::Budget;
use crate::report::Report;

/// Sections × rows of the bench venue; seats per row = seats / this.
const SECTIONS: u32 = 20;
const ROWS: u32 = 20;
/// Share of seats held before the measurement, in percent.
const HELD_PERCENT: u32 = 5;
/// Seats per bench hold (the event's per-user limit allows it).
const SEATS_PER_HOLD: u32 = 4;
/// The store's most seats per row (`tickets::limits::SEATS_PER_ROW_MAX`).
const SEATS_PER_ROW_MAX: u32 = 1_000;

pub struct Options {
    pub seats: u32,
    pub clients: usize,
    pub budget: Budget,
    pub progress: bool,
}

/// One client: a cold page load of the given paths, in order.
struct Loader {
    http: reqwest::Client,
    urls: Arc<Vec<String>>,
    gzip: bool,
}

impl driver::Client for Loader {
    fn op(&mut self, _n: u64) -> OpFuture<'_> {
        Box::pin(async move {
            for url in self.urls.iter() {
                let mut req = self.http.get(url);
                if self.gzip {
                    req = req.header("accept-encoding", "gzip");
                }
                match req.send().await {
                    Ok(r) if r.status().as_u16() == 200 => {
                        if r.bytes().await.is_err() {
                            return Outcome::Err("body".into());
                        }
                    }
                    Ok(r) => return Outcome::Err(r.status().as_u16().to_string()),
                    Err(e) if e.is_timeout() => return Outcome::Err("timeout".into()),
                    Err(_) => return Outcome::Err("transport".into()),
                }
            }
            Outcome::Ok
        })
    }
}

/// Bytes of one answer, raw and gzipped.
async fn sizes(http: &reqwest::Client, url: &str) -> anyhow::Result<(usize, usize)> {
    let raw = http.get(url).send().await?.bytes().await?.len();
    let r = http.get(url).header("accept-encoding", "gzip").send().await?;
    let gzipped = r.headers().get("content-encoding").is_some_and(|v| v == "gzip");
    let len = r.bytes().await?.len();
    if !gzipped {
        bail!("{url} did not answer gzip to Accept-Encoding: gzip");
    }
    Ok((raw, len))
}

/// A small deterministic generator (splitmix64), so runs hold the same seats.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub async fn run(
    base: &str,
    nodes: usize,
    keys: &testkit::Tokens,
    opts: &Options,
) -> anyhow::Result<Vec<Report>> {
    let per_row = opts.seats / (SECTIONS * ROWS);
    if per_row == 0 || per_row > SEATS_PER_ROW_MAX {
        bail!(
            "--seats must be within {}..={} for seatmap (20 sections × 20 rows)",
            SECTIONS * ROWS,
            SECTIONS * ROWS * SEATS_PER_ROW_MAX
        );
    }
    let http = crate::client::client()?;
    let admin = keys.mint("bench-admin", true, 3_600);
    let sections: Vec<_> = (1..=SECTIONS)
        .map(|s| {
            let rows: Vec<_> = (1..=ROWS).map(|r| json!({"name": r.to_string(), "seats": per_row})).collect();
            json!({"name": format!("S{s}"), "kind": "seated", "rows": rows})
        })
        .collect();
    let prices: serde_json::Map<String, serde_json::Value> =
        (1..=SECTIONS).map(|s| (format!("S{s}"), json!(5_000 + 100 * s))).collect();
    let venue = post(&http, format!("{base}/v1/venues"), &admin, json!({
        "name": "Seat Map Arena", "city": "Benchville", "country": "US", "location": {"lat": 0.0, "lon": 0.0},
        "sections": sections
    }))
    .await?;
    if venue.0 != 201 {
        bail!("creating the venue: {} {}", venue.0, venue.1);
    }
    let event = post(&http, format!("{base}/v1/events"), &admin, json!({
        "name": "Seat Map Night", "type": "concert", "venue_id": venue.1["id"], "starts_at": "2030-01-01T00:00:00Z",
        "prices": prices, "per_user_limit": SEATS_PER_HOLD, "hold_seconds": 1_800
    }))
    .await?;
    if event.0 != 201 {
        bail!("creating the event: {} {}", event.0, event.1);
    }
    let id = event.1["id"].as_str().context("event id")?.to_string();
    let seats = SECTIONS * ROWS * per_row;

    // Hold ~5 % of the seats, SEATS_PER_HOLD adjacent ones at a time, at random places.
    let mut rng = 14u64;
    let holds = seats * HELD_PERCENT / 100 / SEATS_PER_HOLD;
    let mut held = 0;
    for h in 0..holds {
        let s = 1 + splitmix(&mut rng) % u64::from(SECTIONS);
        let r = 1 + splitmix(&mut rng) % u64::from(ROWS);
        let first = 1 + splitmix(&mut rng) % u64::from(per_row.saturating_sub(SEATS_PER_HOLD - 1).max(1));
        let ids: Vec<String> =
            (0..u64::from(SEATS_PER_HOLD.min(per_row))).map(|i| format!("S{s}-{r}-{}", first + i)).collect();
        let user = keys.mint(&format!("viewer-{h}"), false, 3_600);
        let answer = post(
            &http,
            format!("{base}/v1/booking/reserve"),
            &user,
            json!({"event_id": id, "ticket_ids": ids}),
        )
        .await?;
        if answer.0 == 201 {
            held += ids.len();
        }
    }

    let layout = format!("{base}/v1/events/{id}/layout");
    let statuses = format!("{base}/v1/events/{id}/seats");
    let tickets = format!("{base}/v1/events/{id}/tickets");
    let (layout_raw, layout_gz) = sizes(&http, &layout).await?;
    let (seats_raw, seats_gz) = sizes(&http, &statuses).await?;
    let (tickets_raw, tickets_gz) = sizes(&http, &tickets).await?;

    let mut reports = Vec::new();
    for (label, urls, gzip) in [
        ("seatmap", vec![layout.clone(), statuses.clone()], true),
        ("tickets-gzip", vec![tickets.clone()], true),
        ("tickets", vec![tickets.clone()], false),
    ] {
        let urls = Arc::new(urls);
        let clients: Vec<Loader> =
            (0..opts.clients).map(|_| Loader { http: http.clone(), urls: urls.clone(), gzip }).collect();
        let run = driver::drive(label, clients, opts.budget, Arc::new(AtomicBool::new(false)), opts.progress)
            .await?;
        let mut report = Report::new("boxoffice", label, nodes, opts.clients, run.elapsed, &run.stats);
        report.notes.push(format!("{seats} seats, {held} held; one load = {}", urls.join(" + ")));
        let note = match label {
            "seatmap" => format!(
                "bytes per load: layout {layout_gz} gzipped ({layout_raw} raw) + seats {seats_gz} gzipped ({seats_raw} raw) = {} gzipped",
                layout_gz + seats_gz
            ),
            "tickets-gzip" => format!("bytes per load: {tickets_gz} gzipped ({tickets_raw} raw)"),
            _ => format!("bytes per load: {tickets_raw} (no gzip: what existing clients get)"),
        };
        report.notes.push(note);
        reports.push(report);
    }
    Ok(reports)
}
