//! The history: every operation a client attempted, as an invoke followed (on the same
//! process) by its completion: `ok`, `fail` (definitely did not happen, or a refusal the
//! model explains) or `info` (unknown outcome: timeout, reset). One JSON object a line.
//!
//! The harness writes it; the checkers read it. `index` is the order in which the harness
//! recorded the events (real-time order); `time_ms` is the client's wall clock, which the
//! ticket model compares with the server's `expires_at` inside a clock-skew bound.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// Longest line [`load_jsonl`] accepts; a longer line is an error, not a truncation.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {source}")]
    Json { line: usize, source: serde_json::Error },
    #[error("line {line}: longer than {LINE_BYTES_MAX} bytes")]
    LineTooLong { line: usize },
    /// The history is not well formed (the harness has a bug): fix the writer.
    #[error("op {index}: {detail}")]
    Malformed { index: u64, detail: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpFn {
    Reserve,
    Confirm,
    Release,
    Read,
    /// Cancel a booking (`POST /v1/bookings/{id}/cancel`): the buyer asks for their money
    /// back; the seats go back on sale once the refund is done.
    Cancel,
}

/// A ticket's public status, as `GET` shows it (expiry applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Available,
    Held,
    Sold,
}

/// What came back with a completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpValue {
    /// Reserve ok: the new hold and its expiry (server clock, ms since epoch).
    Hold { hold_id: String, expires_at_ms: u64 },
    /// Confirm ok.
    Booking { booking_id: String },
    /// Read ok: the observed status.
    Status { status: TicketStatus },
    /// Cancel ok: `refunded` (the seats are back on sale) or `refund_pending` (the refund
    /// still runs; the seats come back when it is done), and the provider's refund reference
    /// once refunded.
    Refund {
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_ref: Option<String>,
    },
    /// Fail: the HTTP status and problem+json `code` (e.g. 409 `ticket_unavailable`,
    /// 410 `hold_expired`). Info ops may carry one too (e.g. a 503 whose effect is unknown).
    Error { http_status: u16, code: String },
}

/// One event of the history: an invoke or a completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, strictly increasing (real-time order of recording).
    pub index: u64,
    /// The client process; one op at a time per process.
    pub process: u64,
    /// The node the request went to.
    pub node: u64,
    pub kind: OpKind,
    pub f: OpFn,
    /// One ticket per op.
    pub ticket: String,
    /// Confirm / release: the hold acted on (reserve: in the completion's value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Cancel: the booking acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    /// The `Idempotency-Key` sent, if any (same on every retry of one logical request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<OpValue>,
    /// Wall clock of the client, ms since the epoch.
    pub time_ms: u64,
    /// Completions: time from invoke to completion as the client measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

impl Op {
    /// The error code of a fail/info completion, if it has one.
    pub fn error_code(&self) -> Option<&str> {
        match &self.value {
            Some(OpValue::Error { code, .. }) => Some(code),
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match &self.value {
            Some(OpValue::Error { http_status, .. }) => Some(*http_status),
            _ => None,
        }
    }

    /// Reserve ok: `(hold_id, expires_at_ms)`.
    pub fn hold(&self) -> Option<(&str, u64)> {
        match &self.value {
            Some(OpValue::Hold { hold_id, expires_at_ms }) => Some((hold_id, *expires_at_ms)),
            _ => None,
        }
    }

    pub fn booking(&self) -> Option<&str> {
        match &self.value {
            Some(OpValue::Booking { booking_id }) => Some(booking_id),
            _ => None,
        }
    }

    /// Cancel ok: `(status, refund_ref)`.
    pub fn refund(&self) -> Option<(&str, Option<&str>)> {
        match &self.value {
            Some(OpValue::Refund { status, refund_ref }) => Some((status, refund_ref.as_deref())),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<TicketStatus> {
        match &self.value {
            Some(OpValue::Status { status }) => Some(*status),
            _ => None,
        }
    }
}

/// How a call ended. A call whose completion is missing (the history stopped) is `Info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

/// An invoke paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub invoke: Op,
    pub completion: Option<Op>,
}

impl Call {
    pub fn outcome(&self) -> Outcome {
        match self.completion.as_ref().map(|c| c.kind) {
            Some(OpKind::Ok) => Outcome::Ok,
            Some(OpKind::Fail) => Outcome::Fail,
            _ => Outcome::Info,
        }
    }

    pub fn ticket(&self) -> &str {
        &self.invoke.ticket
    }

    pub fn f(&self) -> OpFn {
        self.invoke.f
    }

    /// The op index used to name this call in reports: the invoke's.
    pub fn index(&self) -> u64 {
        self.invoke.index
    }

    /// The hold this call is about: the invoke's for confirm/release, the returned one for
    /// a reserve ok.
    pub fn hold_id(&self) -> Option<&str> {
        self.invoke
            .hold_id
            .as_deref()
            .or_else(|| self.completion.as_ref().and_then(|c| c.hold().map(|(h, _)| h)))
    }

    pub fn user(&self) -> Option<&str> {
        self.invoke.user.as_deref()
    }

    /// The booking a cancel is about (its invoke's), or the one a confirm ok returned.
    pub fn booking_id(&self) -> Option<&str> {
        self.invoke.booking_id.as_deref().or_else(|| self.completion.as_ref().and_then(|c| c.booking()))
    }
}

/// Pair every invoke with the next op of the same process, which must be its completion
/// (same `f` and ticket). An invoke left open at the end becomes a call without completion
/// (an `Info`). Calls come back in invoke order.
pub fn pair_calls(ops: &[Op]) -> Result<Vec<Call>, HistoryError> {
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut calls: Vec<Call> = Vec::new();
    let mut last_index: Option<u64> = None;
    for op in ops {
        let malformed = |detail: String| HistoryError::Malformed { index: op.index, detail };
        if let Some(last) = last_index {
            if op.index <= last {
                return Err(malformed(format!("index not after the previous op's {last}")));
            }
        }
        last_index = Some(op.index);
        match op.kind {
            OpKind::Invoke => {
                if let Some(&i) = open.get(&op.process) {
                    return Err(malformed(format!(
                        "process {} invokes while op {} is open",
                        op.process, calls[i].invoke.index
                    )));
                }
                open.insert(op.process, calls.len());
                calls.push(Call { invoke: op.clone(), completion: None });
            }
            OpKind::Ok | OpKind::Fail | OpKind::Info => {
                let Some(i) = open.remove(&op.process) else {
                    return Err(malformed(format!(
                        "completion without an open invoke on process {}",
                        op.process
                    )));
                };
                let invoke = &calls[i].invoke;
                if invoke.f != op.f || invoke.ticket != op.ticket {
                    return Err(malformed(format!(
                        "completion {:?} {} does not match invoke {} ({:?} {})",
                        op.f, op.ticket, invoke.index, invoke.f, invoke.ticket
                    )));
                }
                if op.time_ms < invoke.time_ms {
                    return Err(malformed(format!("completes before its invoke {}", invoke.index)));
                }
                calls[i].completion = Some(op.clone());
            }
        }
    }
    Ok(calls)
}

/// Write one op per line.
pub fn save_jsonl<W: Write>(ops: &[Op], mut out: W) -> Result<(), HistoryError> {
    for op in ops {
        let line = serde_json::to_string(op).map_err(|e| HistoryError::Json { line: 0, source: e })?;
        debug_assert!(!line.contains('\n'), "serde_json never writes a newline in compact mode");
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Read ops written by [`save_jsonl`]; blank lines are skipped. Lines are numbered from 1.
pub fn load_jsonl<R: BufRead>(input: R) -> Result<Vec<Op>, HistoryError> {
    let mut ops = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.len() > LINE_BYTES_MAX {
            return Err(HistoryError::LineTooLong { line: n + 1 });
        }
        if line.trim().is_empty() {
            continue;
        }
        let op = serde_json::from_str(&line).map_err(|e| HistoryError::Json { line: n + 1, source: e })?;
        ops.push(op);
    }
    Ok(ops)
}

/// Parse a history written as a story, one event a line, for tests and examples:
///
/// ```text
/// # time process kind f ticket [key=value ...]
/// 100 p1 invoke reserve A1 user=alice
/// 130 p1 ok     reserve A1 hold=h1 until=5000
/// 140 p2 invoke confirm A1 hold=h1 user=alice key=k1
/// 150 p2 fail   confirm A1 code=hold_expired
/// 160 p3 invoke read A1
/// 170 p3 ok     read A1 status=held
/// ```
///
/// Keys: `hold`, `user`, `key` (idempotency key), `until` (reserve ok: `expires_at_ms`),
/// `booking` (confirm ok; a cancel's invoke: the booking cancelled), `refund` and `ref`
/// (cancel ok: `refunded` or `refund_pending`, and the refund reference), `status` (read ok), `code` and `http` (fail/info; `http` defaults from the
/// code: 409 `ticket_unavailable`, 410 `hold_expired`, 503 `unavailable`, else 400),
/// `node`. Process `pN` (or `N`) becomes `N`. `index` is the line's position among events.
/// A completion's `hold` on a reserve is the returned hold (needs `until`).
pub fn parse_story(text: &str) -> Result<Vec<Op>, HistoryError> {
    let mut ops = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let index = ops.len() as u64;
        let bad = |detail: String| HistoryError::Malformed {
            index,
            detail: format!("story line {}: {detail}", n + 1),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 5 {
            return Err(bad("want: time process kind f ticket [key=value ...]".into()));
        }
        let time_ms = words[0].parse().map_err(|_| bad(format!("bad time {:?}", words[0])))?;
        let process = words[1]
            .trim_start_matches('p')
            .parse()
            .map_err(|_| bad(format!("bad process {:?}", words[1])))?;
        let kind = match words[2] {
            "invoke" => OpKind::Invoke,
            "ok" => OpKind::Ok,
            "fail" => OpKind::Fail,
            "info" => OpKind::Info,
            other => return Err(bad(format!("bad kind {other:?}"))),
        };
        let f = match words[3] {
            "reserve" => OpFn::Reserve,
            "confirm" => OpFn::Confirm,
            "release" => OpFn::Release,
            "read" => OpFn::Read,
            "cancel" => OpFn::Cancel,
            other => return Err(bad(format!("bad f {other:?}"))),
        };
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for word in &words[5..] {
            let (k, v) = word.split_once('=').ok_or_else(|| bad(format!("want key=value, got {word:?}")))?;
            fields.insert(k, v);
        }
        let num = |k: &str| -> Result<Option<u64>, HistoryError> {
            fields.get(k).map(|v| v.parse::<u64>().map_err(|_| bad(format!("bad {k}={v}")))).transpose()
        };
        let until = num("until")?;
        let http = num("http")?;
        let node = num("node")?.unwrap_or(0);
        let returned_hold = f == OpFn::Reserve && kind == OpKind::Ok;
        let value = if let Some(code) = fields.get("code") {
            let http_status = match http {
                Some(h) => h as u16,
                None => match *code {
                    "ticket_unavailable" | "hold_not_active" | "not_refundable" => 409,
                    "hold_expired" => 410,
                    "unavailable" => 503,
                    "forbidden" => 403,
                    _ => 400,
                },
            };
            Some(OpValue::Error { http_status, code: code.to_string() })
        } else if returned_hold {
            let hold_id = fields.get("hold").ok_or_else(|| bad("reserve ok needs hold=".into()))?;
            let expires_at_ms = until.ok_or_else(|| bad("reserve ok needs until=".into()))?;
            Some(OpValue::Hold { hold_id: hold_id.to_string(), expires_at_ms })
        } else if let Some(r) = fields.get("refund") {
            Some(OpValue::Refund {
                status: r.to_string(),
                refund_ref: fields.get("ref").map(|s| s.to_string()),
            })
        } else if let (Some(b), false) = (fields.get("booking"), f == OpFn::Cancel) {
            Some(OpValue::Booking { booking_id: b.to_string() })
        } else if let Some(s) = fields.get("status") {
            let status = match *s {
                "available" => TicketStatus::Available,
                "held" => TicketStatus::Held,
                "sold" => TicketStatus::Sold,
                other => return Err(bad(format!("bad status {other:?}"))),
            };
            Some(OpValue::Status { status })
        } else {
            None
        };
        ops.push(Op {
            index,
            process,
            node,
            kind,
            f,
            ticket: words[4].to_string(),
            hold_id: if returned_hold { None } else { fields.get("hold").map(|s| s.to_string()) },
            user: fields.get("user").map(|s| s.to_string()),
            booking_id: if f == OpFn::Cancel { fields.get("booking").map(|s| s.to_string()) } else { None },
            idempotency_key: fields.get("key").map(|s| s.to_string()),
            value,
            time_ms,
            latency_ms: None,
        });
    }
    // Fill latencies from the pairs, as the harness would.
    let mut open: BTreeMap<u64, u64> = BTreeMap::new();
    for op in &mut ops {
        if op.kind == OpKind::Invoke {
            open.insert(op.process, op.time_ms);
        } else if let Some(t) = open.remove(&op.process) {
            op.latency_ms = Some(op.time_ms.saturating_sub(t));
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORY: &str = "
        100 p1 invoke reserve A1 user=alice key=k1
        110 p2 invoke read A1
        130 p1 ok reserve A1 hold=h1 until=5000
        140 p2 ok read A1 status=held
        150 p1 invoke confirm A1 hold=h1 user=alice
        160 p1 fail confirm A1 code=hold_expired
        170 p3 invoke release A1 hold=h1 user=alice
    ";

    #[test]
    fn story_pairs_and_round_trips_through_jsonl() {
        let ops = parse_story(STORY).unwrap();
        assert_eq!(ops.len(), 7);
        let calls = pair_calls(&ops).unwrap();
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[0].outcome(), Outcome::Ok);
        assert_eq!(calls[0].hold_id(), Some("h1"));
        assert_eq!(calls[0].completion.as_ref().unwrap().latency_ms, Some(30));
        assert_eq!(calls[1].completion.as_ref().unwrap().status(), Some(TicketStatus::Held));
        assert_eq!(calls[2].completion.as_ref().unwrap().http_status(), Some(410));
        assert_eq!(calls[3].outcome(), Outcome::Info, "an open invoke at the end is unknown");

        let mut buf = Vec::new();
        save_jsonl(&ops, &mut buf).unwrap();
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), ops.len());
        let back = load_jsonl(&buf[..]).unwrap();
        assert_eq!(back, ops);
    }

    #[test]
    fn jsonl_field_names_are_the_documented_ones() {
        let ops = parse_story("100 p1 invoke reserve A1 user=alice\n130 p1 ok reserve A1 hold=h1 until=5000")
            .unwrap();
        let line = serde_json::to_string(&ops[1]).unwrap();
        assert_eq!(
            line,
            r#"{"index":1,"process":1,"node":0,"kind":"ok","f":"reserve","ticket":"A1","value":{"hold":{"hold_id":"h1","expires_at_ms":5000}},"time_ms":130,"latency_ms":30}"#
        );
    }

    #[test]
    fn malformed_histories_are_rejected() {
        let double_invoke = parse_story("1 p1 invoke read A\n2 p1 invoke read A").unwrap();
        assert!(matches!(pair_calls(&double_invoke), Err(HistoryError::Malformed { index: 1, .. })));
        let orphan = parse_story("1 p1 ok read A status=sold").unwrap();
        assert!(pair_calls(&orphan).is_err());
        let mismatch = parse_story("1 p1 invoke read A\n2 p1 ok read B status=sold").unwrap();
        assert!(pair_calls(&mismatch).is_err());
        let mut backwards = parse_story("1 p1 invoke read A\n2 p1 ok read A status=sold").unwrap();
        backwards[1].index = 0;
        assert!(pair_calls(&backwards).is_err());
        assert!(load_jsonl(&b"{\"index\":1}\n"[..]).is_err());
    }
}
