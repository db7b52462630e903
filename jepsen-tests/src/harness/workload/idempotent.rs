//! The `idempotent` workload: reserve and confirm, each with an `Idempotency-Key`; after
//! every unknown outcome (timeout, 503, reset) the client re-sends the *same* request —
//! same key, same body — to a random node, up to 4 times, as a payment page's retry would.
//! The checkers then require that one key never yields two holds or two bookings, and the
//! linearizability model accepts a replay only as the first answer again.

use rand::Rng;

use super::{Client, Done, Request};
use crate::history::OpKind;

const SENDS_MAX: usize = 5;

/// Send `make()` with one key until it has a definite answer (or `SENDS_MAX` sends).
async fn with_retries(c: &mut Client, key: &str, make: impl Fn() -> Request) -> Done {
    let mut sends = 0;
    loop {
        sends += 1;
        let node = c.pick_node();
        let done = c.call(node, make().with_key(key.to_string())).await;
        if done.kind != OpKind::Info || sends >= SENDS_MAX || c.w.over() {
            return done;
        }
    }
}

pub async fn run(mut c: Client) {
    let mut n = 0u64;
    while !c.w.over() {
        c.think(20, 150).await;
        if c.w.over() {
            break;
        }
        let ev = c.w.current_event().clone();
        let ticket = c.mostly_own_seat(&ev.tickets);
        n += 1;
        let key = format!("{}-r{n}", c.user);
        let done = with_retries(&mut c, &key, || Request::reserve(&ev.id, &ticket)).await;
        let Some(hold) = done.hold else { continue };
        if c.rng.random_range(0..100) < 30 {
            continue; // let it expire
        }
        c.think(0, 500).await;
        let key = format!("{}-c{n}", c.user);
        with_retries(&mut c, &key, || Request::confirm(&hold)).await;
    }
}
