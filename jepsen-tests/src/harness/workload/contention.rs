//! The `contention` workload: a few seats per event, many clients, each a distinct user
//! (JWT subject), doing reserve / confirm / release / read against random nodes. A client
//! keeps its last few holds and confirms (4 %) or releases (21 %) one of them; otherwise it
//! reserves a random seat of the current event (50 %) or reads one (25 %).
//!
//! The mix itself ([`Mix`]) is shared with `many_events`, which only picks its event
//! differently.

use rand::Rng;

use super::{Client, EventUnderTest, HoldRef, Request};

/// Holds a client remembers (to confirm or release); older ones are forgotten.
const HOLDS_KEPT_MAX: usize = 4;

/// One client's operation mix: its last holds, and the share of operations (in percent) that
/// confirm one of them; up to 25 % act on a hold (the rest of them release it), 25 % read a
/// seat and the rest reserve one.
pub(super) struct Mix {
    holds: Vec<HoldRef>,
    confirm_percent: u32,
}

impl Mix {
    pub(super) fn new(confirm_percent: u32) -> Mix {
        assert!(confirm_percent <= 25, "at most a quarter of the operations act on holds");
        Mix { holds: Vec::new(), confirm_percent }
    }

    /// The next request, on a random seat of `ev` or one of the remembered holds.
    pub(super) fn next(&mut self, c: &mut Client, ev: &EventUnderTest) -> Request {
        let roll = c.rng.random_range(0..100);
        let ticket = &ev.tickets[c.rng.random_range(0..ev.tickets.len())];
        if !self.holds.is_empty() && roll < 25 {
            let h = self.holds.swap_remove(c.rng.random_range(0..self.holds.len()));
            if roll < self.confirm_percent {
                Request::confirm(&h)
            } else {
                Request::release(&h)
            }
        } else if roll >= 75 {
            Request::read(&ev.id, ticket)
        } else {
            Request::reserve(&ev.id, ticket)
        }
    }

    /// Remember a hold the last request made, forgetting the oldest beyond the limit.
    pub(super) fn keep(&mut self, hold: Option<HoldRef>) {
        if let Some(h) = hold {
            self.holds.push(h);
            if self.holds.len() > HOLDS_KEPT_MAX {
                self.holds.remove(0);
            }
        }
    }
}

pub async fn run(mut c: Client) {
    let mut mix = Mix::new(4);
    while !c.w.over() {
        c.think(20, 100).await;
        if c.w.over() {
            break;
        }
        let node = c.pick_node();
        let ev = c.w.current_event().clone();
        let req = mix.next(&mut c, &ev);
        let done = c.call(node, req).await;
        mix.keep(done.hold);
    }
}
