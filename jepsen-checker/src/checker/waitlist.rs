//! The waiting list's checks. Waiting-list requests are recorded as whole calls
//! ([`WaitCall`], one JSON line each in `waitlist.jsonl`); the confirms and releases of the
//! offers go to the ticket history, where `no_double_sale` and `bookings_durable` judge
//! them with every other sale. Polls (`GET …/waitlist/me`) are linearizable reads on the
//! server and joins are Raft writes, so real-time order is all this check uses — no clocks.
//!
//! - `waitlist_fifo`: every entry of the workload is one ticket of one section, so any
//!   entry fits whenever a seat is free, and the rules must offer returned seats to the
//!   oldest entry first. So: if A's join was acknowledged before B's join was sent (A is
//!   ahead of B), and B is seen offered (a poll, or its join's answer), then a poll of A
//!   sent after that sighting completed never reads A `waiting` — unless A sent another
//!   join in between (a new entry, at the back). A and B are entries of one event.
//!
//! What it cannot see: an entry whose join had an unknown outcome (its place is unknown),
//! and an offer that lapsed between two polls (the entry then reads 404, not `waiting`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::direct::{CheckName, CheckResult, Violation};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitFn {
    Join,
    Poll,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitState {
    Waiting,
    Offered,
}

/// One waiting-list request, invoke to completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitCall {
    pub id: u64,
    pub process: u64,
    pub user: String,
    pub node: u64,
    pub event: String,
    pub f: WaitFn,
    /// `ok`, `fail` or `info` (`info`: no answer, or a 5xx on a join).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<WaitState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// The offer's hold, when offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub invoke_ms: u64,
    pub complete_ms: u64,
}

/// The waiting list's checks over its calls.
pub fn check_all(calls: &[WaitCall]) -> Vec<CheckResult> {
    vec![CheckResult { check: CheckName::WaitlistFifo, ran: true, violations: fifo(calls) }]
}

/// One acknowledged entry: its join, and the user's calls until their next join was sent.
struct Entry<'a> {
    join: &'a WaitCall,
    calls: Vec<&'a WaitCall>,
}

fn entries(calls: &[WaitCall]) -> BTreeMap<&str, Vec<Entry<'_>>> {
    let mut by_user: BTreeMap<(&str, &str), Vec<&WaitCall>> = BTreeMap::new();
    for c in calls {
        by_user.entry((c.event.as_str(), c.user.as_str())).or_default().push(c);
    }
    let mut out: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
    for ((event, _), mut mine) in by_user {
        mine.sort_by_key(|c| (c.invoke_ms, c.id));
        for (i, c) in mine.iter().enumerate() {
            if c.f != WaitFn::Join || c.outcome != "ok" {
                continue;
            }
            // Until the next join of this user was sent (whatever its outcome).
            let rest: Vec<&WaitCall> =
                mine[i + 1..].iter().take_while(|x| x.f != WaitFn::Join).copied().collect();
            out.entry(event).or_default().push(Entry { join: c, calls: rest });
        }
    }
    out
}

fn fifo(calls: &[WaitCall]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (event, list) in entries(calls) {
        for b in &list {
            // When B was first seen offered (the join's answer, or a poll).
            let seen = std::iter::once(b.join)
                .chain(b.calls.iter().copied())
                .filter(|c| c.outcome == "ok" && c.state == Some(WaitState::Offered))
                .min_by_key(|c| c.complete_ms);
            let Some(seen) = seen else { continue };
            for a in
                list.iter().filter(|a| a.join.complete_ms < b.join.invoke_ms && a.join.user != b.join.user)
            {
                let waiting_after = a.calls.iter().find(|c| {
                    c.f == WaitFn::Poll
                        && c.outcome == "ok"
                        && c.state == Some(WaitState::Waiting)
                        && c.invoke_ms > seen.complete_ms
                });
                if let Some(p) = waiting_after {
                    out.push(Violation {
                        check: CheckName::WaitlistFifo,
                        ticket: None,
                        ops: vec![a.join.id, b.join.id, seen.id, p.id],
                        message: format!(
                            "{event}: {} joined (ack at {}) before {} (sent at {}), yet {} was offered \
                             (seen at {}) while {} still waited (poll sent at {})",
                            a.join.user,
                            a.join.complete_ms,
                            b.join.user,
                            b.join.invoke_ms,
                            b.join.user,
                            seen.complete_ms,
                            a.join.user,
                            p.invoke_ms
                        ),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        id: u64,
        user: &str,
        f: WaitFn,
        outcome: &str,
        state: Option<WaitState>,
        at: (u64, u64),
    ) -> WaitCall {
        WaitCall {
            id,
            process: 0,
            user: user.into(),
            node: 1,
            event: "e".into(),
            f,
            outcome: outcome.into(),
            state,
            position: None,
            hold_id: None,
            http_status: Some(200),
            invoke_ms: at.0,
            complete_ms: at.1,
        }
    }

    use WaitFn::{Join, Poll};
    use WaitState::{Offered, Waiting};

    #[test]
    fn an_entry_passed_over_is_a_violation() {
        let calls = vec![
            call(0, "ann", Join, "ok", Some(Waiting), (0, 10)),
            call(1, "bob", Join, "ok", Some(Waiting), (20, 30)),
            call(2, "bob", Poll, "ok", Some(Offered), (40, 50)),
            call(3, "ann", Poll, "ok", Some(Waiting), (60, 70)),
        ];
        let v = fifo(&calls);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].ops, vec![0, 1, 2, 3]);
    }

    #[test]
    fn overlaps_rejoins_and_unknown_joins_are_not_judged() {
        // Joins that overlap: no order between them.
        let overlapping = vec![
            call(0, "ann", Join, "ok", Some(Waiting), (0, 30)),
            call(1, "bob", Join, "ok", Some(Waiting), (20, 40)),
            call(2, "bob", Poll, "ok", Some(Offered), (50, 60)),
            call(3, "ann", Poll, "ok", Some(Waiting), (70, 80)),
        ];
        assert!(fifo(&overlapping).is_empty());
        // ann joined again after bob's offer: a new entry, behind bob.
        let rejoined = vec![
            call(0, "ann", Join, "ok", Some(Waiting), (0, 10)),
            call(1, "bob", Join, "ok", Some(Waiting), (20, 30)),
            call(2, "ann", Poll, "ok", Some(Offered), (35, 38)),
            call(3, "bob", Poll, "ok", Some(Offered), (40, 50)),
            call(4, "ann", Join, "ok", Some(Waiting), (55, 58)),
            call(5, "ann", Poll, "ok", Some(Waiting), (60, 70)),
        ];
        assert!(fifo(&rejoined).is_empty());
        // ann's join has an unknown outcome: her place is unknown.
        let unknown = vec![
            call(0, "ann", Join, "info", None, (0, 10)),
            call(1, "bob", Join, "ok", Some(Waiting), (20, 30)),
            call(2, "bob", Poll, "ok", Some(Offered), (40, 50)),
            call(3, "ann", Poll, "ok", Some(Waiting), (60, 70)),
        ];
        assert!(fifo(&unknown).is_empty());
        // A poll of ann sent before bob's offer was seen may read her waiting.
        let early = vec![
            call(0, "ann", Join, "ok", Some(Waiting), (0, 10)),
            call(1, "bob", Join, "ok", Some(Offered), (20, 30)),
            call(2, "ann", Poll, "ok", Some(Waiting), (25, 35)),
        ];
        assert!(fifo(&early).is_empty());
    }

    #[test]
    fn an_offer_at_join_counts_as_a_sighting() {
        let calls = vec![
            call(0, "ann", Join, "ok", Some(Waiting), (0, 10)),
            call(1, "bob", Join, "ok", Some(Offered), (20, 30)),
            call(2, "ann", Poll, "ok", Some(Waiting), (40, 50)),
        ];
        assert_eq!(fifo(&calls).len(), 1);
    }
}
