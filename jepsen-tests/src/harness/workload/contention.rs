//! The `contention` workload: a few seats per event, many clients, each a distinct user
//! (JWT subject), doing reserve / confirm / release / read against random nodes. A client
//! keeps its last few holds and confirms (4 %) or releases (21 %) one of them; otherwise it
//! reserves a random seat of the current event (50 %) or reads one (25 %).

use super::{Client, HoldRef, Request};

/// Holds a client remembers (to confirm or release); older ones are forgotten.
const HOLDS_KEPT_MAX: usize = 4;

pub async fn run(mut c: Client) {
    let mut holds: Vec<HoldRef> = Vec::new();
    while !c.w.over() {
        c.think(20, 100).await;
        if c.w.over() {
            break;
        }
        let node = c.pick_node();
        let roll = c.rng.random_range(0..100);
        let ev = c.w.current_event().clone();
        let ticket = ev.tickets[c.rng.random_range(0..ev.tickets.len())].clone();
        let req = if !holds.is_empty() && roll < 25 {
            let h = holds.swap_remove(c.rng.random_range(0..holds.len()));
            if roll < 4 {
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

use rand::Rng;
