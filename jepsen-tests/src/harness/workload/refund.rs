//! The `refund` workload: buyers who change their minds. Each client reserves a seat of the
//! current event (mostly "its own", so most reserves succeed), confirms its hold, and cancels
//! some of its bookings — the test provider refunds them — so seats go sold → available →
//! sold again while the nemesis partitions, kills and pauses nodes. A cancel whose outcome is
//! unknown is sent again later (a cancel is idempotent: a pending refund answers again, a
//! finished one answers 409 `not_refundable`). The rest of the ops read the seat map.
//!
//! What it lets the checkers see: a seat is never in two bookings that were not refunded
//! (`no_double_sale` and the ticket model, which knows that a refund frees the seat), a
//! booking is refunded at most once and only when its buyer asked (`refund_once`), and an
//! acknowledged booking ends either sold or refunded, never lost (`bookings_durable`).

use rand::Rng;

use super::{Client, HoldRef, Request};
use crate::history::OpKind;

/// Holds a client keeps to confirm; older ones are forgotten (they expire).
const HOLDS_KEPT_MAX: usize = 2;

/// A booking a client may cancel.
struct Bought {
    event: String,
    ticket: String,
    booking_id: String,
}

pub async fn run(mut c: Client) {
    let mut holds: Vec<HoldRef> = Vec::new();
    let mut bought: Vec<Bought> = Vec::new();
    while !c.w.over() {
        c.think(20, 100).await;
        if c.w.over() {
            break;
        }
        let node = c.pick_node();
        let ev = c.w.current_event().clone();
        let roll = c.rng.random_range(0..100);
        if !bought.is_empty() && roll < 25 {
            let b = bought.swap_remove(c.rng.random_range(0..bought.len()));
            let done = c.call(node, Request::cancel(&b.event, &b.ticket, &b.booking_id)).await;
            if done.kind == OpKind::Info {
                bought.push(b);
            }
        } else if !holds.is_empty() && roll < 60 {
            let h = holds.remove(0);
            let done = c.call(node, Request::confirm(&h)).await;
            if let (OpKind::Ok, Some(booking_id)) = (done.kind, done.body["booking_id"].as_str()) {
                bought.push(Bought { event: h.event, ticket: h.ticket, booking_id: booking_id.to_string() });
            }
        } else if roll >= 85 {
            let ticket = &ev.tickets[c.rng.random_range(0..ev.tickets.len())];
            c.call(node, Request::read(&ev.id, ticket)).await;
        } else {
            let ticket = c.mostly_own_seat(&ev.tickets);
            let done = c.call(node, Request::reserve(&ev.id, &ticket)).await;
            if let Some(h) = done.hold {
                holds.push(h);
                if holds.len() > HOLDS_KEPT_MAX {
                    holds.remove(0);
                }
            }
        }
    }
}
