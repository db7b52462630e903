//! The waiting queue's checks. Queue operations are recorded as whole calls
//! ([`QueueCall`], one JSON line each in `queue.jsonl`); reserves and confirms of queued
//! events come from the ticket history. Polls (`GET …/queue/me`) are linearizable reads on
//! the server (ReadIndex), and joins and leaves are Raft writes, so real-time order is all
//! these checks use — no clocks, except for the admission length in `queue_durable`.
//!
//! - `queue_fifo`: if A's join was acknowledged before B's first join was sent, and A never
//!   left nor joined again, then once B has been seen admitted, A is never seen waiting
//!   (A, ahead of B, was passed over).
//! - `queue_no_skip`: a reserve that succeeded for a queued event was preceded by a join
//!   of that user; and a user seen waiting before the reserve was sent and again after it
//!   completed (no join or leave in between) was never admitted then — the reserve skipped
//!   the queue. (An admission cannot end and turn back into waiting without a new join.)
//! - `queue_durable`: a user seen waiting is found again (waiting or admitted) by every
//!   later poll, unless they left, reserved or confirmed in between, or the poll came so
//!   late that an admission could have started and run its whole length — a `404` earlier
//!   than that means an acknowledged place in the queue was lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::direct::{CheckName, CheckResult, Violation};
use crate::history::{Call, OpFn, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueFn {
    Join,
    Poll,
    Leave,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    Waiting,
    Admitted,
}

/// One queue request, invoke to completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCall {
    pub id: u64,
    pub process: u64,
    pub user: String,
    pub node: u64,
    pub event: String,
    pub f: QueueFn,
    /// `ok`, `fail` or `info` (`info`: no answer, or a 5xx on a join / leave).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<QueueState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub invoke_ms: u64,
    pub complete_ms: u64,
}

impl QueueCall {
    fn ok(&self) -> bool {
        self.outcome == "ok"
    }
    fn seen(&self, state: QueueState) -> bool {
        self.ok() && self.state == Some(state)
    }
    fn not_found(&self) -> bool {
        self.outcome == "fail" && self.http_status == Some(404)
    }
}

/// Per `(event, user)`: their queue calls in invoke order.
fn by_user(calls: &[QueueCall]) -> BTreeMap<(&str, &str), Vec<&QueueCall>> {
    let mut out: BTreeMap<(&str, &str), Vec<&QueueCall>> = BTreeMap::new();
    for c in calls {
        out.entry((c.event.as_str(), c.user.as_str())).or_default().push(c);
    }
    for v in out.values_mut() {
        v.sort_by_key(|c| (c.invoke_ms, c.id));
    }
    out
}

fn event_of(call: &Call) -> &str {
    call.ticket().split_once('/').map_or("", |(e, _)| e)
}

pub fn queue_fifo(calls: &[QueueCall]) -> Vec<Violation> {
    let users = by_user(calls);
    let mut out = Vec::new();
    let mut events: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (event, user) in users.keys() {
        events.entry(event).or_default().push(user);
    }
    for (event, members) in events {
        for a in &members {
            let a_calls = &users[&(event, *a)];
            let Some(a_ack) =
                a_calls.iter().filter(|c| c.f == QueueFn::Join && c.ok()).map(|c| c.complete_ms).min()
            else {
                continue;
            };
            let a_last_join =
                a_calls.iter().filter(|c| c.f == QueueFn::Join).map(|c| c.invoke_ms).max().unwrap_or(0);
            let a_first_leave = a_calls.iter().filter(|c| c.f == QueueFn::Leave).map(|c| c.invoke_ms).min();
            for b in &members {
                if a == b {
                    continue;
                }
                let b_calls = &users[&(event, *b)];
                let Some(b_first_join) =
                    b_calls.iter().filter(|c| c.f == QueueFn::Join).map(|c| c.invoke_ms).min()
                else {
                    continue;
                };
                if a_ack >= b_first_join {
                    continue; // not definitely ahead
                }
                let Some(b_admitted) =
                    b_calls.iter().filter(|c| c.seen(QueueState::Admitted)).min_by_key(|c| c.complete_ms)
                else {
                    continue;
                };
                if a_last_join >= b_admitted.complete_ms {
                    continue; // A joined again later
                }
                let passed_over = a_calls.iter().find(|c| {
                    c.seen(QueueState::Waiting)
                        && c.invoke_ms > b_admitted.complete_ms
                        && a_first_leave.is_none_or(|l| l > c.invoke_ms)
                });
                if let Some(w) = passed_over {
                    out.push(Violation {
                        check: CheckName::QueueFifo,
                        ticket: None,
                        ops: vec![b_admitted.id, w.id],
                        message: format!(
                            "event {event}: {b} seen admitted (queue call {}) while {a}, who joined first, was \
                             still waiting (queue call {})",
                            b_admitted.id, w.id
                        ),
                    });
                    break;
                }
            }
        }
    }
    out
}

pub fn queue_no_skip(queue: &[QueueCall], tickets: &[Call], queued_events: &[String]) -> Vec<Violation> {
    let users = by_user(queue);
    let mut out = Vec::new();
    for r in tickets.iter().filter(|c| c.f() == OpFn::Reserve && c.outcome() == Outcome::Ok) {
        let event = event_of(r);
        if !queued_events.iter().any(|e| e == event) {
            continue;
        }
        let user = r.user().unwrap_or("");
        let complete = r.completion.as_ref().map_or(u64::MAX, |c| c.time_ms);
        let mine: &[&QueueCall] = users.get(&(event, user)).map(Vec::as_slice).unwrap_or(&[]);
        if !mine.iter().any(|c| c.f == QueueFn::Join && c.invoke_ms < complete) {
            out.push(Violation {
                check: CheckName::QueueNoSkip,
                ticket: Some(r.ticket().to_string()),
                ops: vec![r.index()],
                message: format!("{user} reserved on queued event {event} without ever joining its queue"),
            });
            continue;
        }
        let before = mine.iter().rfind(|c| c.seen(QueueState::Waiting) && c.complete_ms < r.invoke.time_ms);
        let after = mine.iter().find(|c| c.seen(QueueState::Waiting) && c.invoke_ms > complete);
        if let (Some(p1), Some(p2)) = (before, after) {
            let rejoined = mine.iter().any(|c| {
                c.f != QueueFn::Poll && c.invoke_ms < p2.invoke_ms && c.complete_ms > p1.complete_ms
            });
            if !rejoined {
                out.push(Violation {
                    check: CheckName::QueueNoSkip,
                    ticket: Some(r.ticket().to_string()),
                    ops: vec![r.index(), p1.id, p2.id],
                    message: format!(
                        "{user} reserved on {event} while waiting: seen waiting before (queue call {}) and after \
                         (queue call {}) the reserve",
                        p1.id, p2.id
                    ),
                });
            }
        }
    }
    out
}

pub fn queue_durable(
    queue: &[QueueCall],
    tickets: &[Call],
    admission_ms: u64,
    skew_ms: u64,
) -> Vec<Violation> {
    let users = by_user(queue);
    let mut out = Vec::new();
    for ((event, user), mine) in &users {
        // Reserves and confirms of this user on this event: each may end an admission.
        let buys: Vec<(u64, u64)> = tickets
            .iter()
            .filter(|c| matches!(c.f(), OpFn::Reserve | OpFn::Confirm))
            .filter(|c| c.user() == Some(*user) && event_of(c) == *event)
            .map(|c| (c.invoke.time_ms, c.completion.as_ref().map_or(u64::MAX, |x| x.time_ms)))
            .collect();
        for w in mine.iter().filter(|c| c.seen(QueueState::Waiting)) {
            let lost = mine.iter().find(|n| {
                n.not_found()
                    && n.invoke_ms > w.complete_ms
                    && n.complete_ms + skew_ms < w.invoke_ms + admission_ms
                    && !mine.iter().any(|x| x.f == QueueFn::Leave && x.invoke_ms < n.complete_ms)
                    && !buys.iter().any(|(inv, _)| *inv < n.complete_ms && *inv + admission_ms > w.invoke_ms)
            });
            if let Some(n) = lost {
                out.push(Violation {
                    check: CheckName::QueueDurable,
                    ticket: None,
                    ops: vec![w.id, n.id],
                    message: format!(
                        "event {event}: {user} seen waiting (queue call {}), then not in the queue (queue call {}, \
                         {} ms later) without leaving or buying, before any admission could have run out ({} ms)",
                        w.id,
                        n.id,
                        n.complete_ms.saturating_sub(w.invoke_ms),
                        admission_ms
                    ),
                });
                break;
            }
        }
    }
    out
}

/// The three queue checks.
pub fn check_all(
    queue: &[QueueCall],
    tickets: &[Call],
    queued_events: &[String],
    admission_ms: u64,
    skew_ms: u64,
) -> Vec<CheckResult> {
    vec![
        CheckResult { check: CheckName::QueueFifo, ran: true, violations: queue_fifo(queue) },
        CheckResult {
            check: CheckName::QueueNoSkip,
            ran: true,
            violations: queue_no_skip(queue, tickets, queued_events),
        },
        CheckResult {
            check: CheckName::QueueDurable,
            ran: true,
            violations: queue_durable(queue, tickets, admission_ms, skew_ms),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{pair_calls, parse_story};

    fn q(
        id: u64,
        user: &str,
        f: QueueFn,
        outcome: &str,
        state: Option<QueueState>,
        t: (u64, u64),
    ) -> QueueCall {
        QueueCall {
            id,
            process: id,
            user: user.into(),
            node: 1,
            event: "e".into(),
            f,
            outcome: outcome.into(),
            state,
            position: None,
            http_status: match outcome {
                "fail" => Some(404),
                _ => Some(200),
            },
            invoke_ms: t.0,
            complete_ms: t.1,
        }
    }
    use QueueFn::*;
    use QueueState::*;

    #[test]
    fn fifo_passes_in_order_and_catches_a_user_passed_over() {
        let good = vec![
            q(1, "a", Join, "ok", Some(Waiting), (0, 10)),
            q(2, "b", Join, "ok", Some(Waiting), (20, 30)),
            q(3, "a", Poll, "ok", Some(Admitted), (40, 50)),
            q(4, "b", Poll, "ok", Some(Waiting), (60, 70)),
            q(5, "b", Poll, "ok", Some(Admitted), (80, 90)),
        ];
        assert!(queue_fifo(&good).is_empty());
        let mut bad = good.clone();
        bad[2] = q(3, "a", Poll, "ok", Some(Waiting), (100, 110)); // a still waiting after b admitted
        let v = queue_fifo(&bad);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].ops, vec![5, 3]);
        // Concurrent joins: no order to keep.
        let mut concurrent = bad.clone();
        concurrent[1] = q(2, "b", Join, "ok", Some(Waiting), (5, 30));
        assert!(queue_fifo(&concurrent).is_empty());
        // a left before being seen again: nothing wrong.
        let mut left = bad.clone();
        left.push(q(6, "a", Leave, "info", None, (95, 99)));
        assert!(queue_fifo(&left).is_empty());
    }

    fn tickets(story: &str) -> Vec<Call> {
        pair_calls(&parse_story(story).unwrap()).unwrap()
    }

    #[test]
    fn a_reserve_between_two_waiting_sightings_skipped_the_queue() {
        let queue = vec![
            q(1, "u", Join, "ok", Some(Waiting), (0, 10)),
            q(2, "u", Poll, "ok", Some(Waiting), (20, 30)),
            q(3, "u", Poll, "ok", Some(Waiting), (200, 210)),
        ];
        let t = tickets("100 p1 invoke reserve e/T1 user=u\n150 p1 ok reserve e/T1 hold=h1 until=5000\n");
        let events = vec!["e".to_string()];
        assert_eq!(queue_no_skip(&queue, &t, &events).len(), 1);
        // Admitted in between (no second waiting sighting): fine.
        assert!(queue_no_skip(&queue[..2], &t, &events).is_empty());
        // Never joined at all.
        assert_eq!(queue_no_skip(&[], &t, &events).len(), 1);
        // Not a queued event: not judged.
        assert!(queue_no_skip(&[], &t, &[]).is_empty());
    }

    #[test]
    fn a_place_that_vanishes_before_any_admission_could_end_is_lost() {
        let queue = vec![
            q(1, "u", Join, "ok", Some(Waiting), (0, 10)),
            q(2, "u", Poll, "fail", None, (1_000, 1_010)),
        ];
        let v = queue_durable(&queue, &[], 60_000, 0);
        assert_eq!(v.len(), 1, "{v:?}");
        // Late enough that an admission could have started and run out: fine.
        assert!(queue_durable(&queue, &[], 900, 0).is_empty());
        // Left in between: fine.
        let mut left = queue.clone();
        left.insert(1, q(3, "u", Leave, "ok", None, (500, 510)));
        assert!(queue_durable(&left, &[], 60_000, 0).is_empty());
        // Bought in between (a completed booking ends the admission): fine.
        let t = tickets("100 p1 invoke reserve e/T1 user=u\n150 p1 ok reserve e/T1 hold=h1 until=5000\n");
        assert!(queue_durable(&queue, &t, 60_000, 0).is_empty());
    }
}
