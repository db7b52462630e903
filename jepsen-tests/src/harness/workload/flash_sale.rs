//! The `flash-sale` workload: each event is one sale of `seats` tickets and the run has
//! 5–10× as many buyers (clients). A buyer wants one ticket per sale: it reads the seat
//! map (a browse read from a random node), reserves a random seat the map shows available,
//! and confirms at once; a 409 sends it back to the map. Once it has a booking, or the map
//! shows nothing available for long, it waits for the next sale. The per-user limit of a
//! sale is 1. `run.rs` reports each sale's time to sell out.

use std::time::{Duration, Instant};

use rand::Rng;

use super::{available_in, Client, Request};
use crate::history::OpKind;

pub async fn run(mut c: Client) {
    // Buyers arrive over the first moments of each sale, not all in one instant.
    let mut bought_in: Option<usize> = None;
    while !c.w.over() {
        let index = c.w.event_index_at(c.w.started.elapsed());
        if bought_in == Some(index) {
            let end = c.w.event_end(index).min(c.w.deadline);
            tokio::time::sleep_until(end.into()).await;
            continue;
        }
        c.think(10, 200).await;
        if c.w.over() {
            break;
        }
        let ev = c.w.events[index].clone();
        let node = c.pick_node();
        let Some(map) = c.seat_map(node, &ev.id).await else {
            c.think(200, 500).await;
            continue;
        };
        let free = available_in(&map);
        if free.is_empty() {
            // Sold out (or all held): look again a little later; holds may expire.
            c.think(300, 800).await;
            continue;
        }
        let ticket = free[c.rng.random_range(0..free.len())].clone();
        let node = c.pick_node();
        let done = c.call(node, Request::reserve(&ev.id, &ticket)).await;
        let Some(hold) = done.hold else { continue };
        // Confirm on the same node or another one; retry a 503 / unknown once elsewhere.
        let deadline = Instant::now() + Duration::from_millis(c.w.hold_ms);
        let mut attempts = 0;
        while attempts < 2 && Instant::now() < deadline {
            attempts += 1;
            let node = c.pick_node();
            let done = c.call(node, Request::confirm(&hold)).await;
            match done.kind {
                OpKind::Ok => {
                    bought_in = Some(index);
                    break;
                }
                OpKind::Fail => break,
                _ => {}
            }
        }
    }
}
