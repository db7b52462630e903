//! The `many-events` workload: hundreds of events of a few seats, and clients that pick an
//! event at random for every operation, with long enough pauses that most events are asleep
//! (or out of memory) when they are touched. Same operations and mix as `contention`
//! (reserve / confirm / release / read), so the same per-ticket checks apply; what it tests is
//! that a group woken by a request — or failing over while it slept — is exactly as
//! linearizable as one that was awake.

use rand::Rng;

use super::{Client, HoldRef, Request};

/// Events of a `many-events` run (at least; see `run.rs`).
pub const EVENTS_MIN: usize = 300;
/// Holds a client remembers (to confirm or release); older ones are forgotten.
const HOLDS_KEPT_MAX: usize = 4;

pub async fn run(mut c: Client) {
    let mut holds: Vec<HoldRef> = Vec::new();
    while !c.w.over() {
        // Long pauses: with 10 clients over 300 events, an event is touched every few
        // seconds, after its group went to sleep.
        c.think(100, 400).await;
        if c.w.over() {
            break;
        }
        let node = c.pick_node();
        let roll = c.rng.random_range(0..100);
        let ev = c.w.events[c.rng.random_range(0..c.w.events.len())].clone();
        let ticket = ev.tickets[c.rng.random_range(0..ev.tickets.len())].clone();
        let req = if !holds.is_empty() && roll < 25 {
            let h = holds.swap_remove(c.rng.random_range(0..holds.len()));
            if roll < 8 {
                Request::confirm(&h)
            } else {
                Request::release(&h)
            }
        } else if roll >= 75 {
            Request::read(&ev.id, &ticket)
        } else {
            Request::reserve(&ev.id, &ticket)
        };
        let done = c.call(node, req).await;
        if let Some(h) = done.hold {
            holds.push(h);
            if holds.len() > HOLDS_KEPT_MAX {
                holds.remove(0);
            }
        }
    }
}
