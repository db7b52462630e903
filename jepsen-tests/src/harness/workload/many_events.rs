//! The `many-events` workload: hundreds of events of a few seats, and clients that pick an
//! event at random for every operation, with long enough pauses that most events are asleep
//! (or out of memory) when they are touched. Same operations and mix as `contention`
//! (reserve / confirm / release / read), so the same per-ticket checks apply; what it tests is
//! that a group woken by a request — or failing over while it slept — is exactly as
//! linearizable as one that was awake.

use rand::Rng;

use super::contention::Mix;
use super::Client;

/// Events of a `many-events` run (at least; see `run.rs`).
pub const EVENTS_MIN: usize = 300;
pub async fn run(mut c: Client) {
    let mut mix = Mix::new(8);
    while !c.w.over() {
        // Long pauses: with 10 clients over 300 events, an event is touched every few
        // seconds, after its group went to sleep.
        c.think(100, 400).await;
        if c.w.over() {
            break;
        }
        let node = c.pick_node();
        let ev = c.w.events[c.rng.random_range(0..c.w.events.len())].clone();
        let req = mix.next(&mut c, &ev);
        let done = c.call(node, req).await;
        mix.keep(done.hold);
    }
}
