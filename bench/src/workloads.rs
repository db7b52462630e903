//! The workloads against boxoffice's own HTTP API (`docs/api.md`), and their setup and checks.
//!
//! Owns: [`Workload`], [`Options`], [`run`]. Every request is made as a distinct user (a JWT
//! minted with [`testkit::Tokens`] per operation), so the per-user limit never interferes;
//! clients are spread round-robin over the nodes.
//!
//! - `hold`: reserve one distinct seat per request on one hot event (seats enough for the
//!   run: 100,000 by default; the run stops early, with a note, if they run out). (On 3
//!   nodes an event of 190,000 seats never became ready in our runs: its group answered
//!   503 for 60 s; 100,000 works.)
//! - `hold-confirm`: the same, then confirm the hold with payment token `tok_visa`; one
//!   operation is the pair.
//! - `contention`: many clients, few seats (16 by default): reserve a pseudo-random seat; a
//!   won hold is released at once so the seat comes back. `409 ticket_unavailable` is the
//!   expected loss and is counted under its code.
//! - `flash-sale`: N general-admission tickets (1,000 by default), every client buys
//!   (reserve a quantity of 1, then confirm) until all are sold or the time is up. Checks: the
//!   seat map's sold count equals the successful confirms and is at most N, and no ticket id
//!   came back from two confirms. Time to sell out is reported.
//! - `many-events`: `hold` spread round-robin over 100 events (100 Raft groups).
//! - `ga`: what most buyers ask: `{section: "GA", quantity}` with quantity 1 or 2 (every
//!   other request) in one general section of 150,000 by default — the store picks the
//!   seats.
//! - `best-available`: "the best 2–4 in section N": quantities 2, 3, 4 in turn, sections in
//!   turn, in a seated venue of 10 sections × 30 rows × 500 seats (150,000) by default.
//!
//! `ga` and `best-available` also keep a ledger: tickets named in `201` answers, and
//! tickets asked for by requests whose outcome the client cannot know (`504
//! outcome_unknown`, a timeout, a lost connection). After the run the event's `held` count
//! must lie between the first and the first plus the second — otherwise a client was told
//! a hold did not happen while it did (or a `201` was lost). `--hold-seconds` shorter than
//! the run lets seats come back (an on-sale); the ledger is then not checked.
//!
//! Before the clock starts, every event is warmed up: a reserve of its one-seat section `W`
//! is retried (503 while its group elects a leader) until it answers 201.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::client::{get, outcome_name, post};
use crate::cluster::Nodes;
use crate::driver::{drive, Client, OpFuture, Outcome};
use crate::progress::Budget;
use crate::report::{FlashSale, Ledger, Report};

/// Seats per row of the bench venue (the API's `SEATS_PER_ROW_MAX`).
const SEATS_PER_ROW: u32 = 1_000;
/// Sections of the `best-available` venue (named 101, 102, ...).
const BEST_SECTIONS: u32 = 10;
/// Seats per row of the `best-available` venue.
const BEST_ROW_SEATS: u32 = 500;
/// How long the event's `held` count may take to settle on the node read after the run.
const LEDGER_SETTLE: Duration = Duration::from_secs(10);
/// Most tickets one event may have (the API's `TICKETS_PER_EVENT_MAX`, less the warm-up seat).
pub const SEATS_MAX: u32 = 199_000;
/// Events of `many-events`.
pub const MANY_EVENTS: usize = 100;
/// Most events one run creates.
pub const EVENTS_MAX: usize = 1_000;
/// How long an event's warm-up reserve may keep failing.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Most results one search answers (the API's `SEARCH_RESULTS_MAX`).
const SEARCH_RESULTS_MAX: usize = 100;
/// Events created or warmed up at once.
const SETUP_PARALLEL: usize = 8;
/// How long the flash-sale's seat map may take to show every confirmed sale (followers
/// apply a little after the leader answers).
const SEAT_MAP_SETTLE: Duration = Duration::from_secs(10);
/// Lifetime of the tokens the tool mints.
const TOKEN_TTL_S: u64 = 3_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Hold,
    HoldConfirm,
    Contention,
    FlashSale,
    ManyEvents,
    Ga,
    BestAvailable,
}

/// The shape of the bench venue's main section(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Section `S`, rows of 1,000 seats.
    Seated,
    /// Section `GA`, general admission.
    General,
    /// Sections `101`.. of [`BEST_ROW_SEATS`]-seat rows.
    Sections,
}

impl FromStr for Workload {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Workload> {
        Ok(match s {
            "hold" | "holds" => Workload::Hold,
            "hold-confirm" => Workload::HoldConfirm,
            "contention" => Workload::Contention,
            "flash-sale" => Workload::FlashSale,
            "many-events" => Workload::ManyEvents,
            "ga" => Workload::Ga,
            "best-available" => Workload::BestAvailable,
            other => bail!(
                "no workload {other:?} (hold, hold-confirm, contention, flash-sale, many-events, ga, best-available)"
            ),
        })
    }
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Hold => "hold",
            Workload::HoldConfirm => "hold-confirm",
            Workload::Contention => "contention",
            Workload::FlashSale => "flash-sale",
            Workload::ManyEvents => "many-events",
            Workload::Ga => "ga",
            Workload::BestAvailable => "best-available",
        }
    }

    fn shape(self) -> Shape {
        match self {
            Workload::FlashSale | Workload::Ga => Shape::General,
            Workload::BestAvailable => Shape::Sections,
            _ => Shape::Seated,
        }
    }

    /// Keeps a ledger of held tickets (see the module doc).
    fn ledger(self) -> bool {
        matches!(self, Workload::Ga | Workload::BestAvailable)
    }

    fn default_seats(self) -> u32 {
        match self {
            Workload::Hold | Workload::HoldConfirm => 100_000,
            Workload::Contention => 16,
            Workload::FlashSale => 1_000,
            Workload::ManyEvents => 2_000,
            Workload::Ga | Workload::BestAvailable => 150_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub clients: usize,
    pub budget: Budget,
    /// Seats (tickets) per event; `None` takes the workload's default.
    pub seats: Option<u32>,
    /// Events for `hold` and `hold-confirm` (default 1); `many-events` always has 100.
    pub events: usize,
    /// The events' hold time [default: 600 s].
    pub hold_seconds: Option<u64>,
    pub progress: bool,
}

/// What every client shares.
struct Shared {
    http: reqwest::Client,
    keys: testkit::Tokens,
    workload: Workload,
    events: Vec<String>,
    seats: u64,
    stop: Arc<AtomicBool>,
    started: Instant,
    /// Set when a hold workload runs out of seats.
    exhausted: AtomicBool,
    confirms: AtomicU64,
    /// Ticket ids returned by successful confirms (flash-sale).
    sold_ids: Mutex<Vec<String>>,
    sold_out_ms: Mutex<Option<u64>>,
    /// Tickets named in `201` answers (ledger workloads).
    held_answered: AtomicU64,
    /// Tickets asked for by requests whose outcome is unknown to the client.
    held_unknown: AtomicU64,
}

struct HttpClient {
    shared: Arc<Shared>,
    base: String,
    id: usize,
    /// xorshift state for `contention`'s seat choice (seeded by the client id).
    rng: u64,
}

fn seat_id(index: u64) -> String {
    let row = index / u64::from(SEATS_PER_ROW) + 1;
    let seat = index % u64::from(SEATS_PER_ROW) + 1;
    format!("S-{row}-{seat}")
}

impl HttpClient {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn reserve(&self, token: &str, body: Value) -> Result<Value, String> {
        let r = post(&self.shared.http, self.url("/v1/booking/reserve"), token, body).await;
        match r {
            Ok((201, b)) => Ok(b),
            other => Err(outcome_name(&other)),
        }
    }

    async fn confirm(&self, token: &str, hold: &Value) -> Result<Value, String> {
        let body = json!({"hold_id": hold["hold_id"], "payment": {"token": "tok_visa"}});
        let r = post(&self.shared.http, self.url("/v1/booking/confirm"), token, body).await;
        match r {
            Ok((201, b)) => Ok(b),
            other => Err(format!("confirm {}", outcome_name(&other))),
        }
    }

    async fn run_op(&mut self, n: u64) -> Outcome {
        let s = self.shared.clone();
        let token = s.keys.mint(&format!("u{}-{n}", self.id), false, TOKEN_TTL_S);
        let events = s.events.len() as u64;
        let result = match s.workload {
            Workload::Hold | Workload::ManyEvents | Workload::HoldConfirm => {
                let (event, seat) = (&s.events[(n % events) as usize], n / events);
                if seat >= s.seats {
                    s.exhausted.store(true, Ordering::Relaxed);
                    s.stop.store(true, Ordering::Relaxed);
                    return Outcome::Done;
                }
                let hold =
                    self.reserve(&token, json!({"event_id": event, "ticket_ids": [seat_id(seat)]})).await;
                match hold {
                    Ok(h) if s.workload == Workload::HoldConfirm => {
                        self.confirm(&token, &h).await.map(|_| ())
                    }
                    other => other.map(|_| ()),
                }
            }
            Workload::Ga | Workload::BestAvailable => {
                let (section, quantity) = if s.workload == Workload::Ga {
                    ("GA".to_string(), 1 + n % 2)
                } else {
                    ((101 + n % u64::from(BEST_SECTIONS)).to_string(), 2 + n % 3)
                };
                let body = json!({"event_id": s.events[0], "section": section, "quantity": quantity});
                let r = post(&s.http, self.url("/v1/booking/reserve"), &token, body).await;
                match &r {
                    Ok((201, b)) => {
                        let got = b["tickets"].as_array().map_or(0, |t| t.len()) as u64;
                        s.held_answered.fetch_add(got, Ordering::Relaxed);
                        Ok(())
                    }
                    Ok((409, b)) if b["code"] == "ticket_unavailable" => {
                        // The section cannot give `quantity` (adjacent, for a seated one): it
                        // is sold out or nearly, and the others (filled in turn) with it.
                        s.exhausted.store(true, Ordering::Relaxed);
                        s.stop.store(true, Ordering::Relaxed);
                        Err(outcome_name(&r))
                    }
                    Ok((504, _)) | Err(_) => {
                        s.held_unknown.fetch_add(quantity, Ordering::Relaxed);
                        Err(outcome_name(&r))
                    }
                    _ => Err(outcome_name(&r)),
                }
            }
            Workload::Contention => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                let seat = self.rng % s.seats;
                match self
                    .reserve(&token, json!({"event_id": s.events[0], "ticket_ids": [seat_id(seat)]}))
                    .await
                {
                    Ok(h) => {
                        let r = post(
                            &s.http,
                            self.url("/v1/booking/release"),
                            &token,
                            json!({"hold_id": h["hold_id"]}),
                        )
                        .await;
                        match r {
                            Ok((200, _)) => Ok(()),
                            other => Err(format!("release {}", outcome_name(&other))),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Workload::FlashSale => {
                let body = json!({"event_id": s.events[0], "section": "GA", "quantity": 1});
                match self.reserve(&token, body).await {
                    Ok(h) => match self.confirm(&token, &h).await {
                        Ok(booking) => {
                            let ids = booking["tickets"].as_array().cloned().unwrap_or_default();
                            s.sold_ids
                                .lock()
                                .expect("sold ids lock")
                                .extend(ids.iter().filter_map(|t| t.as_str().map(String::from)));
                            if s.confirms.fetch_add(1, Ordering::SeqCst) + 1 == s.seats {
                                *s.sold_out_ms.lock().expect("sold out lock") =
                                    Some(s.started.elapsed().as_millis() as u64);
                                s.stop.store(true, Ordering::Relaxed);
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(e) => Outcome::Err(e),
        }
    }
}

impl Client for HttpClient {
    fn op(&mut self, n: u64) -> OpFuture<'_> {
        Box::pin(self.run_op(n))
    }
}

/// Rows `1..` of `seats` seats in all, `per_row` to a row (the last one shorter).
fn rows(seats: u32, per_row: u32) -> Vec<Value> {
    (1..=seats.div_ceil(per_row))
        .map(|r| json!({"name": r.to_string(), "seats": per_row.min(seats - (r - 1) * per_row)}))
        .collect()
}

/// The venue's main sections for `shape` with `seats` tickets in all.
fn sections(shape: Shape, seats: u32) -> Vec<Value> {
    match shape {
        Shape::General => vec![json!({"name": "GA", "kind": "general", "capacity": seats})],
        Shape::Seated => vec![json!({"name": "S", "kind": "seated", "rows": rows(seats, SEATS_PER_ROW)})],
        Shape::Sections => {
            let per = seats.div_ceil(BEST_SECTIONS);
            (0..BEST_SECTIONS)
                .map(|i| {
                    let n = per.min(seats.saturating_sub(i * per)).max(1);
                    json!({"name": (101 + i).to_string(), "kind": "seated", "rows": rows(n, BEST_ROW_SEATS)})
                })
                .collect()
        }
    }
}

/// Create the venue (see [`Shape`]) and `count` events of `seats` tickets plus the
/// one-seat warm-up section `W`; warm each up.
#[allow(clippy::too_many_arguments)]
async fn setup(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    keys: &testkit::Tokens,
    count: usize,
    seats: u32,
    shape: Shape,
    hold_seconds: u64,
) -> anyhow::Result<Vec<String>> {
    let mut all = sections(shape, seats);
    all.push(json!({"name": "W", "kind": "seated", "rows": [{"name": "1", "seats": 1}]}));
    let mut prices = serde_json::Map::new();
    for section in &all {
        prices.insert(section["name"].as_str().expect("section name").to_string(), json!(1000));
    }
    let venue = post(http, format!("{base}/v1/venues"), admin, json!({
        "name": "Bench Stadium", "city": "Benchville", "country": "US", "location": {"lat": 0.0, "lon": 0.0},
        "sections": all
    }))
    .await?;
    if venue.0 != 201 {
        bail!("creating the venue: {} {}", venue.0, venue.1);
    }
    // Names this run's events apart from earlier runs' on the same nodes.
    let tag = format!("r{}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros());
    let started = Instant::now();
    let mut events = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(SETUP_PARALLEL) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let (http, url, admin, keys, tag) =
                (http.clone(), base.to_string(), admin.to_string(), keys.clone(), tag.clone());
            let body = json!({
                "name": format!("Bench {tag} e{i}"), "type": "concert", "venue_id": venue.1["id"],
                "starts_at": "2030-01-01T00:00:00Z", "prices": prices, "currency": "USD",
                "per_user_limit": 4, "hold_seconds": hold_seconds
            });
            let name = format!("Bench {tag} e{i}");
            tasks.push(tokio::spawn(async move {
                let e = post(&http, format!("{url}/v1/events"), &admin, body).await?;
                let id = match e {
                    (201, b) => b["id"].as_str().context("event id")?.to_string(),
                    // "created but its inventory is not ready yet": the answer has no id.
                    (503, _) => find_event(&http, &url, &format!("{tag}%20e{i}"), &name).await?,
                    (s, b) => bail!("creating an event: {s} {b}"),
                };
                warm_up(&http, &url, &keys, &id).await?;
                Ok(id)
            }));
        }
        for t in tasks {
            events.push(t.await??);
        }
    }
    eprintln!("set up {count} event(s) of {seats} tickets in {:?}", started.elapsed());
    Ok(events)
}

/// The id of the event named `name`, from search (polled: the index follows the catalog).
async fn find_event(http: &reqwest::Client, base: &str, term: &str, name: &str) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let r = get(http, format!("{base}/v1/search?term={term}&limit={SEARCH_RESULTS_MAX}")).await;
        if let Ok((200, body)) = &r {
            let hit = body["results"].as_array().into_iter().flatten().find(|e| e["name"] == name);
            if let Some(id) = hit.and_then(|e| e["id"].as_str()) {
                return Ok(id.to_string());
            }
        }
        if started.elapsed() > WARM_UP_TIMEOUT {
            bail!("event {name:?} was created (503) but search does not find it: {}", outcome_name(&r));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn warm_up(
    http: &reqwest::Client,
    base: &str,
    keys: &testkit::Tokens,
    event: &str,
) -> anyhow::Result<()> {
    let token = keys.mint(&format!("warm-up-{event}"), false, TOKEN_TTL_S);
    let started = Instant::now();
    let mut last = String::new();
    loop {
        // The same Idempotency-Key on every try: a try whose 201 was lost (a timeout while the
        // group elects) is answered again by the retry, not refused as over the user's limit.
        let r = http
            .post(format!("{base}/v1/booking/reserve"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("warm-up-{event}"))
            .json(&json!({"event_id": event, "ticket_ids": ["W-1-1"]}))
            .send()
            .await;
        let answer = match r {
            Ok(r) => {
                let status = r.status().as_u16();
                Ok((status, r.json().await.unwrap_or(Value::Null)))
            }
            Err(e) => Err(anyhow::Error::from(e)),
        };
        match answer {
            Ok((201, _)) => return Ok(()),
            other => {
                let name = outcome_name(&other);
                if name != last {
                    eprintln!("warm-up of {event}: {name}, retrying");
                    last = name;
                }
            }
        }
        if started.elapsed() > WARM_UP_TIMEOUT {
            bail!("event {event} does not take holds after {WARM_UP_TIMEOUT:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run `workload` against `nodes`.
pub async fn run(
    workload: Workload,
    nodes: &Nodes,
    keys: &testkit::Tokens,
    opts: &Options,
) -> anyhow::Result<Report> {
    let http = crate::client::client()?;
    let base = nodes.bases[0].clone();
    let admin = keys.mint("bench-admin", true, TOKEN_TTL_S);
    let seats = opts.seats.unwrap_or(workload.default_seats());
    if seats == 0 || seats > SEATS_MAX {
        bail!("--seats must be within 1..={SEATS_MAX}");
    }
    let count = match workload {
        Workload::ManyEvents => MANY_EVENTS,
        Workload::Hold | Workload::HoldConfirm => opts.events,
        Workload::Contention | Workload::FlashSale | Workload::Ga | Workload::BestAvailable => 1,
    };
    let hold_seconds = opts.hold_seconds.unwrap_or(600);
    if count == 0 || count > EVENTS_MAX {
        bail!("--events must be within 1..={EVENTS_MAX}");
    }
    let events = setup(&http, &base, &admin, keys, count, seats, workload.shape(), hold_seconds).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        http: http.clone(),
        keys: keys.clone(),
        workload,
        events: events.clone(),
        seats: u64::from(seats),
        stop: stop.clone(),
        started: Instant::now(),
        exhausted: AtomicBool::new(false),
        confirms: AtomicU64::new(0),
        sold_ids: Mutex::new(Vec::new()),
        sold_out_ms: Mutex::new(None),
        held_answered: AtomicU64::new(0),
        held_unknown: AtomicU64::new(0),
    });
    let clients = (0..opts.clients)
        .map(|id| HttpClient {
            shared: shared.clone(),
            base: nodes.bases[id % nodes.bases.len()].clone(),
            id,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1),
        })
        .collect();
    let label = format!("boxoffice {} x{}", workload.name(), opts.clients);
    let run = drive(&label, clients, opts.budget, stop, opts.progress).await?;
    let mut report =
        Report::new("boxoffice", workload.name(), nodes.bases.len(), opts.clients, run.elapsed, &run.stats);
    if events.len() > 1 {
        report.notes.push(format!("{} events of {seats} seats", events.len()));
    }
    if shared.exhausted.load(Ordering::Relaxed) {
        report.notes.push(format!(
            "all {} seats held after {:.1} s; the run stopped there",
            seats as usize * events.len(),
            run.elapsed.as_secs_f64()
        ));
    }
    if workload.ledger() {
        let answered = shared.held_answered.load(Ordering::Relaxed);
        let unknown = shared.held_unknown.load(Ordering::Relaxed);
        // Holds that outlive the run (plus a margin for the settle) are all still held.
        let checked = hold_seconds > run.elapsed.as_secs() + LEDGER_SETTLE.as_secs() + 5;
        let held = if checked { Some(held_now(&http, &base, &events[0], answered).await?) } else { None };
        report.ledger = Some(Ledger {
            answered,
            unknown,
            held,
            consistent: held.is_none_or(|h| answered <= h && h <= answered + unknown),
        });
    }
    if workload == Workload::FlashSale {
        let confirms = shared.confirms.load(Ordering::SeqCst);
        let ids = shared.sold_ids.lock().expect("sold ids lock").clone();
        let distinct: HashSet<&String> = ids.iter().collect();
        let sold_twice = (ids.len() - distinct.len()) as u64;
        let sold = sold_in_seat_map(&http, &base, &events[0], confirms).await?;
        report.flash_sale = Some(FlashSale {
            capacity: u64::from(seats),
            confirms,
            sold,
            sold_twice,
            sold_out_ms: *shared.sold_out_ms.lock().expect("sold out lock"),
            consistent: sold <= u64::from(seats) && sold == confirms && sold_twice == 0,
        });
    }
    Ok(report)
}

/// GA tickets the seat map shows as sold; polled until it shows `expected` or
/// [`SEAT_MAP_SETTLE`] has passed (then the last count is returned).
async fn sold_in_seat_map(
    http: &reqwest::Client,
    base: &str,
    event: &str,
    expected: u64,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let (status, body) = get(http, format!("{base}/v1/events/{event}/tickets")).await?;
        if status != 200 {
            bail!("reading the seat map: {status} {body}");
        }
        let sold = body["tickets"]
            .as_array()
            .context("tickets list")?
            .iter()
            .filter(|t| t["section"] == "GA" && t["status"] == "sold")
            .count() as u64;
        if sold == expected || started.elapsed() > SEAT_MAP_SETTLE {
            return Ok(sold);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The event's held tickets less the warm-up seat, read from `base`; polled until it reaches
/// `expected` or [`LEDGER_SETTLE`] has passed (a follower applies a little after the leader
/// answers).
async fn held_now(http: &reqwest::Client, base: &str, event: &str, expected: u64) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let (status, body) = get(http, format!("{base}/v1/events/{event}")).await?;
        if status != 200 {
            bail!("reading the event: {status} {body}");
        }
        let held = body["availability"]["held"].as_u64().context("availability.held")?.saturating_sub(1);
        if held >= expected || started.elapsed() > LEDGER_SETTLE {
            return Ok(held);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
