//! The `expiry-edge` workload: a client reserves a seat, then aims its confirm at the edge
//! of the hold — uniformly from 400 ms before `expires_at` (client clock) to 300 ms after —
//! so confirms race the expiry: before it they must sell, after it they must answer 410
//! `hold_expired` and the seat must be free again (the model and the direct checks judge
//! both, within the clock-skew bound). Other clients keep reserving the same seats, so an
//! expired seat is taken again at once.

use std::time::Duration;

use rand::Rng;

use super::{now_ms, Client, Request};

pub async fn run(mut c: Client) {
    while !c.w.over() {
        c.think(20, 100).await;
        if c.w.over() {
            break;
        }
        let ev = c.w.current_event().clone();
        let ticket = c.mostly_own_seat(&ev.tickets);
        let node = c.pick_node();
        let done = c.call(node, Request::reserve(&ev.id, &ticket)).await;
        let Some(hold) = done.hold else { continue };
        let aim = hold.expires_at_ms as i64 + c.rng.random_range(-400..300);
        let wait = (aim - now_ms() as i64).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let node = c.pick_node();
        c.call(node, Request::confirm(&hold)).await;
    }
}
