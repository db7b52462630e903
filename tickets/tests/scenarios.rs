//! Scenario tests: small scripts in `tests/scenarios/*.txt` that read like stories.
//!
//! Script format, one command per line (`#` starts a comment line):
//!
//! ```text
//! setup venue=small hold=10s limit=4 [on_sale=0] [sales_end=1h] [queue=2x60s] [refund_until=1h] [offer=5s]
//! reserve A-1-1,A-1-2 by=alice at=1000 hold=h1 [key=k1] [body=b1]   -> hold h1 active ...
//! reserve best=A:2 by=bob at=1000 hold=h2
//! pay h1 by=alice at=2000 [token=tok_visa] [key=k] [body=b]
//! confirm h1 booking=b1 at=3000 [ref=ch_1]
//! fail h1 at=3000 [detail=declined]
//! release h1 by=alice at=4000        extend h1 by=alice at=4000
//! expire at=5000                     cancel at=5000     sales_end to=9000 at=5000
//! join alice at=1   leave alice at=1   admit seed=42 at=100
//! wait alice best=GA:2 hold=w1 at=1   unwait alice at=1      (the waiting list)
//! refund b1 by=alice|admin=root at=6000 [key=k]   refunded b1 [ref=re_1]   refund_failed b1 [detail=x]
//! refund_until to=9000 at=5000       cancel_all admin=root at=5000
//! show h1 at=5000   avail at=5000   seats [A] at=5000   queue alice at=5000   bookings alice
//! booking b1        refunding         waitlist [alice]
//! ```
//!
//! After a command come its expected output lines, each starting with `->`; the first may
//! be on the command's own line. Output is compared exactly; a mismatch fails with every
//! difference listed as `file:line`, the command, and want/got. A mutating command with
//! the word `changes` also prints the ticket changes. Times are ms, or with a unit
//! (`10s`, `30m`); a missing `at=` repeats the previous one. `venue=small` is section `A`
//! (rows 1..3 of 5 seats, 5000 each) and general section `GA` (10 places, 2000 each);
//! `venue=tiny` is only `GA`, of 3 places. `notices` lists the outbox; `ack N` acknowledges it.
//!
//! After every command the harness checks `check_invariants`, a JSON round trip, and at
//! the end a replay of the whole log from scratch (same replies, same state).
//!
//! Set `UPDATE_SCENARIOS=1` to rewrite the expectations with the actual output (then read
//! the diff before committing it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use tickets::catalog::{GeoPoint, QueueSettings, RowSpec, SectionKind, SectionSpec, VenueSpec};
use tickets::inventory::{
    booking_status_name, status_name, BookingStatus, Idempotency, Inventory, InventoryCommand,
    InventoryReply, InventorySetup, NoticeData, Outcome, Refunder, Selection, TicketChange, TicketStatus,
    WaitlistEntry, WaitlistStatus,
};
use tickets::queue::QueueStatus;
use tickets::{Millis, Rejection};

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { run(stringify!($name)); } )*
        const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

scenarios!(
    happy_path,
    sales_window,
    expiry_boundary,
    best_available,
    general_admission,
    all_or_nothing,
    per_user_limit,
    declined_payment,
    payment_window,
    release_and_forbidden,
    extend_limits,
    extend_cap,
    idempotency,
    expire_changes,
    cancel,
    refund,
    refund_declined,
    refund_window,
    refund_event,
    refund_propagate,
    queue,
    queue_booking,
    queue_rejoin,
    waitlist,
    waitlist_lapse,
    waitlist_refund,
    notices,
    rejections,
    compaction,
);

#[test]
fn every_script_is_run() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(files, names, "tests/scenarios/*.txt and the scenarios! list must match");
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("scenarios")
}

/// One command of a script with where it is and what it should print.
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn parse_script(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("->") {
            let step =
                steps.last_mut().unwrap_or_else(|| panic!("line {}: output before any command", n + 1));
            step.expected.push(rest.trim().to_string());
            continue;
        }
        let (command, expected) = match line.split_once("->") {
            Some((c, e)) => (c.trim().to_string(), vec![e.trim().to_string()]),
            None => (line.to_string(), Vec::new()),
        };
        steps.push(Step { line: n + 1, command, expected });
    }
    steps
}

fn run(name: &str) {
    let path = dir().join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let steps = parse_script(&text);
    let mut world = World::default();
    let mut failures = String::new();
    let mut actual_all = Vec::new();
    for step in &steps {
        let actual = world.step(&step.command).unwrap_or_else(|e| panic!("{name}.txt:{}: {e}", step.line));
        if let Err(e) = world.inventory.check_invariants() {
            panic!("{name}.txt:{}: invariant broken after `{}`: {e}", step.line, step.command);
        }
        let json = serde_json::to_string(&world.inventory).expect("inventory encodes as JSON");
        let back: Inventory = serde_json::from_str(&json).expect("inventory decodes from JSON");
        assert_eq!(back, world.inventory, "{name}.txt:{}: JSON round trip changed the state", step.line);
        if actual != step.expected {
            let _ = writeln!(failures, "{name}.txt:{}: {}", step.line, step.command);
            for l in &step.expected {
                let _ = writeln!(failures, "    want -> {l}");
            }
            for l in &actual {
                let _ = writeln!(failures, "    got  -> {l}");
            }
        }
        actual_all.push(actual);
    }
    world.check_replay();
    if failures.is_empty() {
        return;
    }
    if std::env::var_os("UPDATE_SCENARIOS").is_some() {
        std::fs::write(&path, rewrite(&text, &steps, &actual_all)).unwrap();
        eprintln!("rewrote {}", path.display());
        return;
    }
    panic!("scenario {name} differs:\n{failures}");
}

/// The script with every command's expectations replaced by `actual`.
fn rewrite(text: &str, steps: &[Step], actual: &[Vec<String>]) -> String {
    let by_line: BTreeMap<usize, &Vec<String>> = steps.iter().zip(actual).map(|(s, a)| (s.line, a)).collect();
    let mut out = String::new();
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with("->") {
            continue;
        }
        match by_line.get(&(n + 1)) {
            Some(lines) => {
                let command = raw.split_once("->").map_or(raw, |(c, _)| c).trim_end();
                let mut lines = lines.iter();
                match lines.next() {
                    Some(first) => {
                        let pad = 60usize.saturating_sub(command.len()).max(1);
                        let _ = writeln!(out, "{command}{}-> {first}", " ".repeat(pad));
                    }
                    None => {
                        let _ = writeln!(out, "{command}");
                    }
                }
                for l in lines {
                    let _ = writeln!(out, "    -> {l}");
                }
            }
            None => {
                let _ = writeln!(out, "{raw}");
            }
        }
    }
    out
}

/// The inventory under test plus the log applied to it, for the replay check.
#[derive(Default)]
struct World {
    inventory: Inventory,
    log: Vec<(InventoryCommand, Millis, InventoryReply, Vec<TicketChange>)>,
    at: Millis,
}

/// A parsed command line: the verb, positional words and `key=value` options.
struct Line<'a> {
    verb: &'a str,
    words: Vec<&'a str>,
    opts: BTreeMap<&'a str, &'a str>,
}

impl<'a> Line<'a> {
    fn parse(text: &'a str) -> Line<'a> {
        let mut tokens = text.split_whitespace();
        let verb = tokens.next().unwrap_or("");
        let mut words = Vec::new();
        let mut opts = BTreeMap::new();
        for t in tokens {
            match t.split_once('=') {
                Some((k, v)) => {
                    opts.insert(k, v);
                }
                None => words.push(t),
            }
        }
        Line { verb, words, opts }
    }

    fn opt(&self, key: &str) -> Result<&'a str, String> {
        self.opts.get(key).copied().ok_or_else(|| format!("`{}` needs {key}=", self.verb))
    }

    fn word(&self, i: usize) -> Result<&'a str, String> {
        self.words.get(i).copied().ok_or_else(|| format!("`{}` needs argument {}", self.verb, i + 1))
    }

    fn changes(&self) -> bool {
        self.words.contains(&"changes")
    }
}

fn duration(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "ms"),
    };
    let n: u64 = digits.parse().map_err(|_| format!("bad time {text}"))?;
    Ok(match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        _ => return Err(format!("bad time unit in {text}")),
    })
}

fn small_venue() -> VenueSpec {
    let rows = (1..=3).map(|r| RowSpec { name: r.to_string(), seats: 5 }).collect();
    VenueSpec {
        name: "Small Hall".into(),
        city: "Oslo".into(),
        country: "NO".into(),
        location: GeoPoint { lat: 59.9, lon: 10.7 },
        sections: vec![
            SectionSpec { name: "A".into(), kind: SectionKind::Seated { rows } },
            SectionSpec { name: "GA".into(), kind: SectionKind::General { capacity: 10 } },
        ],
    }
}

/// One general section of 3 places (2000 each): quick to sell out.
fn tiny_venue() -> VenueSpec {
    VenueSpec {
        name: "Tiny Room".into(),
        city: "Oslo".into(),
        country: "NO".into(),
        location: GeoPoint { lat: 59.9, lon: 10.7 },
        sections: vec![SectionSpec { name: "GA".into(), kind: SectionKind::General { capacity: 3 } }],
    }
}

impl World {
    fn step(&mut self, text: &str) -> Result<Vec<String>, String> {
        let line = Line::parse(text);
        if let Some(at) = line.opts.get("at") {
            self.at = duration(at)?;
        }
        let at = self.at;
        let command = match line.verb {
            "setup" => {
                let venue = match line.opt("venue")? {
                    "small" => small_venue(),
                    "tiny" => tiny_venue(),
                    other => return Err(format!("unknown venue {other}")),
                };
                let prices: BTreeMap<String, u64> = [("A".to_string(), 5_000), ("GA".to_string(), 2_000)]
                    .into_iter()
                    .filter(|(s, _)| venue.sections.iter().any(|x| x.name == *s))
                    .collect();
                let queue = match line.opts.get("queue") {
                    Some(q) => {
                        let (n, secs) = q.split_once('x').ok_or("queue=<max>x<admission>")?;
                        QueueSettings {
                            enabled: true,
                            max_admitted: n.parse().map_err(|_| "bad queue max")?,
                            admission_seconds: duration(secs)? / 1_000,
                        }
                    }
                    None => QueueSettings::default(),
                };
                InventoryCommand::Setup(InventorySetup {
                    event_id: "e1".into(),
                    sections: venue.sections,
                    prices,
                    currency: "USD".into(),
                    per_user_limit: line
                        .opts
                        .get("limit")
                        .map_or(Ok(4), |v| v.parse())
                        .map_err(|_| "bad limit")?,
                    hold_ms: duration(line.opt("hold")?)?,
                    on_sale_at: line.opts.get("on_sale").map_or(Ok(0), |v| duration(v))?,
                    sales_end: line.opts.get("sales_end").map_or(Ok(Millis::MAX), |v| duration(v))?,
                    queue,
                    refund_until: line.opts.get("refund_until").map_or(Ok(Millis::MAX), |v| duration(v))?,
                    waitlist_offer_ms: line.opts.get("offer").map_or(Ok(5_000), |v| duration(v))?,
                })
            }
            "reserve" => {
                let selection = match line.opts.get("best") {
                    Some(best) => {
                        let (section, q) = best.split_once(':').ok_or("best=<section>:<quantity>")?;
                        Selection::Best {
                            section: section.into(),
                            quantity: q.parse().map_err(|_| "bad quantity")?,
                        }
                    }
                    None => {
                        let ids = line.word(0)?;
                        let ids = if ids == "none" {
                            Vec::new()
                        } else {
                            ids.split(',').map(String::from).collect()
                        };
                        Selection::Tickets(ids)
                    }
                };
                InventoryCommand::Reserve {
                    hold_id: line.opt("hold")?.into(),
                    user: line.opt("by")?.into(),
                    selection,
                    idempotency: idempotency_of(&line),
                }
            }
            "pay" => InventoryCommand::BeginPayment {
                hold_id: line.word(0)?.into(),
                user: line.opt("by")?.into(),
                payment_token: line.opts.get("token").unwrap_or(&"tok_visa").to_string(),
                idempotency: idempotency_of(&line),
            },
            "confirm" => InventoryCommand::Confirm {
                hold_id: line.word(0)?.into(),
                booking_id: line.opt("booking")?.into(),
                payment_ref: line.opts.get("ref").unwrap_or(&"ch_1").to_string(),
            },
            "fail" => InventoryCommand::PaymentFailed {
                hold_id: line.word(0)?.into(),
                detail: line.opts.get("detail").unwrap_or(&"card declined").replace('_', " "),
            },
            "release" => {
                InventoryCommand::Release { hold_id: line.word(0)?.into(), user: line.opt("by")?.into() }
            }
            "extend" => {
                InventoryCommand::Extend { hold_id: line.word(0)?.into(), user: line.opt("by")?.into() }
            }
            "expire" => InventoryCommand::Expire,
            "cancel" => InventoryCommand::Cancel,
            "sales_end" => InventoryCommand::SetSalesEnd { at: duration(line.opt("to")?)? },
            "refund" => InventoryCommand::BeginRefund {
                booking_id: line.word(0)?.into(),
                by: match (line.opts.get("by"), line.opts.get("admin")) {
                    (Some(user), None) => Refunder::Buyer(user.to_string().into()),
                    (None, Some(admin)) => Refunder::Admin(admin.to_string().into()),
                    _ => return Err("`refund` needs by=<buyer> or admin=<admin>".into()),
                },
                idempotency: idempotency_of(&line),
            },
            "refunded" => InventoryCommand::Refunded {
                booking_id: line.word(0)?.into(),
                refund_ref: line.opts.get("ref").unwrap_or(&"re_1").to_string(),
            },
            "refund_failed" => InventoryCommand::RefundFailed {
                booking_id: line.word(0)?.into(),
                detail: line.opts.get("detail").unwrap_or(&"refund declined").replace('_', " "),
            },
            "refund_until" => InventoryCommand::SetRefundUntil { at: duration(line.opt("to")?)? },
            "cancel_all" => InventoryCommand::CancelAndRefund { admin: line.opt("admin")?.into() },
            "propagate_cancel" => InventoryCommand::PropagateCancel { admin: line.opt("admin")?.into() },
            "wait" => {
                let (section, q) = line.opt("best")?.split_once(':').ok_or("best=<section>:<quantity>")?;
                InventoryCommand::WaitlistJoin {
                    user: line.word(0)?.into(),
                    section: section.into(),
                    quantity: q.parse().map_err(|_| "bad quantity")?,
                    offer_hold_id: line.opt("hold")?.into(),
                }
            }
            "unwait" => InventoryCommand::WaitlistLeave { user: line.word(0)?.into() },
            "ack" => {
                InventoryCommand::OutboxAck { upto: line.word(0)?.parse().map_err(|_| "bad notice number")? }
            }
            "join" => InventoryCommand::QueueJoin { user: line.word(0)?.into() },
            "joins" => InventoryCommand::QueueJoinMany {
                users: line.word(0)?.split(',').map(tickets::UserId::from).collect(),
            },
            "leave" => InventoryCommand::QueueLeave { user: line.word(0)?.into() },
            "admit" => {
                InventoryCommand::QueueAdmit { seed: line.opt("seed")?.parse().map_err(|_| "bad seed")? }
            }
            _ => return self.query(&line, at),
        };
        let (reply, changes) = self.inventory.apply(command.clone(), at);
        let mut out = vec![format_reply(&reply)];
        if line.changes() {
            out.push(format_changes(&changes));
        }
        self.log.push((command, at, reply, changes));
        Ok(out)
    }

    /// Read-only commands: they print state and apply nothing.
    fn query(&self, line: &Line, at: Millis) -> Result<Vec<String>, String> {
        let inv = &self.inventory;
        Ok(match line.verb {
            "show" => {
                let id = line.word(0)?;
                match inv.hold(id) {
                    Some(h) => {
                        let mut h = h.clone();
                        h.status = h.status_at(at);
                        vec![format_reply(&Ok(Outcome::Hold(h)))]
                    }
                    None => vec!["no such hold".into()],
                }
            }
            "avail" => {
                let a = inv.availability(at);
                vec![format!("available={} held={} sold={}", a.available, a.held, a.sold)]
            }
            "seats" => {
                let mut rows: Vec<(String, String)> = Vec::new();
                for (spec, status) in inv.ticket_statuses(at) {
                    if line.words.first().is_some_and(|s| *s != spec.section) {
                        continue;
                    }
                    let key = match &spec.row {
                        Some(r) => format!("{}-{r}", spec.section),
                        None => spec.section.clone(),
                    };
                    if rows.last().is_none_or(|(k, _)| *k != key) {
                        rows.push((key.clone(), String::new()));
                    }
                    let c = match status {
                        TicketStatus::Available => '.',
                        TicketStatus::Held => 'H',
                        TicketStatus::Sold => 'S',
                    };
                    rows.last_mut().unwrap().1.push(c);
                }
                rows.into_iter().map(|(k, v)| format!("{k:<4} {v}")).collect()
            }
            "queue" => match inv.queue_view(line.word(0)?, at) {
                Some(v) => vec![format_reply(&Ok(Outcome::Queue(v)))],
                None => vec!["not in queue".into()],
            },
            "notices" => {
                let all: Vec<String> = inv
                    .outbox()
                    .map(|n| {
                        let about = match &n.data {
                            NoticeData::Booking(b) => {
                                format!(" {} {} [{}]", b.id, b.user, b.tickets.join(","))
                            }
                            NoticeData::Hold(h) => format!(" {} {} [{}]", h.id, h.user, h.tickets.join(",")),
                            NoticeData::Event => String::new(),
                        };
                        format!("#{} {} at={}{about}", n.seq, n.kind.name(), n.at)
                    })
                    .collect();
                if all.is_empty() {
                    vec!["no notices".into()]
                } else {
                    all
                }
            }
            "waitlist" => match line.words.first() {
                Some(user) => match inv.waitlist_entry(user, at) {
                    Some(e) => vec![format_entry(&e)],
                    None => vec!["not waiting".into()],
                },
                None => {
                    let all = inv.waitlist(at);
                    if all.is_empty() {
                        vec!["waitlist empty".into()]
                    } else {
                        all.iter().map(format_entry).collect()
                    }
                }
            },
            "bookings" => {
                let list = inv.bookings_of(line.word(0)?);
                if list.is_empty() {
                    vec!["no bookings".into()]
                } else {
                    list.into_iter().map(|b| format_reply(&Ok(Outcome::Booked(b.clone())))).collect()
                }
            }
            "booking" => match inv.booking(line.word(0)?) {
                Some(b) => vec![format_reply(&Ok(Outcome::Booked(b)))],
                None => vec!["no such booking".into()],
            },
            "refunding" => {
                let ids: Vec<tickets::BookingId> = inv.refunding().into_iter().map(|b| b.id).collect();
                vec![format!("refunding {}", list(&ids))]
            }
            "next" => vec![format!(
                "expiry={} queue={}",
                inv.earliest_expiry().map_or("-".into(), |t| t.to_string()),
                inv.queue_next_deadline().map_or("-".into(), |t| t.to_string())
            )],
            other => return Err(format!("unknown command {other}")),
        })
    }

    /// Replay the whole log into a fresh inventory: same replies, same changes, same state.
    fn check_replay(&self) {
        let mut fresh = Inventory::default();
        for (i, (command, at, reply, changes)) in self.log.iter().enumerate() {
            let (r, c) = fresh.apply(command.clone(), *at);
            assert_eq!((&r, &c), (reply, changes), "replay differs at command {i}: {command:?}");
        }
        assert_eq!(fresh, self.inventory, "replay reached a different state");
    }
}

fn idempotency_of(line: &Line) -> Option<Idempotency> {
    let key = line.opts.get("key")?;
    Some(Idempotency {
        key: key.to_string(),
        fingerprint: line.opts.get("body").unwrap_or(&"same").to_string(),
    })
}

fn list<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(",")
    }
}

fn format_changes(changes: &[TicketChange]) -> String {
    if changes.is_empty() {
        return "changes -".into();
    }
    let parts: Vec<String> = changes
        .iter()
        .map(|c| {
            let s = match c.status {
                TicketStatus::Available => "available",
                TicketStatus::Held => "held",
                TicketStatus::Sold => "sold",
            };
            format!("{}={s}", c.id)
        })
        .collect();
    format!("changes {}", parts.join(" "))
}

fn format_entry(e: &WaitlistEntry) -> String {
    match (&e.status, &e.offer) {
        (WaitlistStatus::Offered, Some(h)) => format!(
            "wait {} {}:{} offered {} {} until={}",
            e.user,
            e.section,
            e.quantity,
            h.id,
            list(&h.tickets),
            h.expires_at
        ),
        _ => format!("wait {} {}:{} waiting position={}", e.user, e.section, e.quantity, e.position),
    }
}

fn format_reply(reply: &InventoryReply) -> String {
    match reply {
        Ok(Outcome::SetUp) => "ok".into(),
        Ok(Outcome::Hold(h)) => {
            let mut s = format!(
                "hold {} {} {} until={} amount={}",
                h.id,
                status_name(h.status),
                list(&h.tickets),
                h.expires_at,
                h.amount
            );
            if h.extensions > 0 {
                let _ = write!(s, " ext={}", h.extensions);
            }
            s
        }
        Ok(Outcome::Booked(b)) => {
            let mut s = format!(
                "booked {} hold={} {} amount={} by={}",
                b.id,
                b.hold_id,
                list(&b.tickets),
                b.amount,
                b.user
            );
            if b.status != BookingStatus::Confirmed {
                let _ = write!(s, " {}", booking_status_name(b.status));
            }
            if let Some(r) = &b.refund {
                let _ = write!(s, " refund#{}", r.attempt);
                if let Some(d) = &r.declined {
                    let _ = write!(s, " declined={}", d.replace(' ', "_"));
                }
            }
            if let Some(r) = &b.refund_ref {
                let _ = write!(s, " ref={r}");
            }
            s
        }
        Ok(Outcome::Refunding(ids)) => format!("cancelled, refunding {}", list(ids)),
        Ok(Outcome::Expired(ids)) => format!("expired {}", list(ids)),
        Ok(Outcome::Cancelled) => "cancelled".into(),
        Ok(Outcome::Queue(v)) => match v.status {
            QueueStatus::Waiting => {
                format!("queue {} waiting position={} ahead={}", v.user, v.position, v.ahead)
            }
            QueueStatus::Admitted => {
                format!("queue {} admitted until={}", v.user, v.admitted_until.unwrap_or(0))
            }
        },
        Ok(Outcome::QueueChanged { admitted }) => format!("admitted {}", list(admitted)),
        Ok(Outcome::QueueMany(answers)) => answers
            .iter()
            .map(|a| format_reply(&a.clone().map(Outcome::Queue)))
            .collect::<Vec<_>>()
            .join("; "),
        Ok(Outcome::Waitlist(e)) => format_entry(e),
        Ok(Outcome::Acked { pending }) => format!("acked, {pending} pending"),
        Err(r) => match r {
            Rejection::Invalid { field, detail } => format!("invalid {field}: {detail}"),
            Rejection::NotFound { what } => format!("not_found {what}"),
            Rejection::Forbidden => "forbidden".into(),
            Rejection::TicketUnavailable { tickets } => format!("ticket_unavailable {}", list(tickets)),
            Rejection::HoldExpired => "hold_expired".into(),
            Rejection::LimitExceeded { detail } => format!("limit_exceeded: {detail}"),
            Rejection::QueueAdmissionRequired => "queue_admission_required".into(),
            Rejection::IdempotencyConflict => "idempotency_conflict".into(),
            Rejection::PaymentDeclined { detail } => format!("payment_declined: {detail}"),
            Rejection::HoldNotActive { status } => format!("hold_not_active {status}"),
            Rejection::Conflict { detail } => format!("conflict: {detail}"),
            Rejection::EventClosed { detail } => format!("event_closed: {detail}"),
            Rejection::NotRefundable { detail } => format!("not_refundable: {detail}"),
            Rejection::RefundDeclined { detail } => format!("refund_declined: {detail}"),
        },
    }
}
