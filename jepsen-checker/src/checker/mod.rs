//! The checkers: per-ticket linearizability ([`linear`] + [`model`]), direct checks
//! ([`direct`]), the waiting queue's checks ([`queue`]) and the waiting list's ([`waitlist`]).

pub mod direct;
pub mod linear;
pub mod model;
pub mod queue;
pub mod waitlist;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::history::{pair_calls, Call, HistoryError, Op};
use linear::{Budget, Stats, Verdict};
use model::{Interner, ModelConfig, Prepared, TicketModel};

/// Options of the linearizability check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearConfig {
    pub model: ModelConfig,
    /// Per ticket; the whole check also stops when `total_time_max_ms` is spent (the tickets
    /// not reached are Unknown).
    pub budget: Budget,
    pub total_time_max_ms: u64,
    /// The events' hold length, when known: enables the `expiry_bounded` direct check.
    #[serde(default)]
    pub hold_ms: Option<u64>,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig {
            model: ModelConfig { skew_ms: 0 },
            budget: Budget::default(),
            total_time_max_ms: 600_000,
            hold_ms: None,
        }
    }
}

/// One ticket's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketResult {
    pub ticket: String,
    /// Calls given to the model (refusals with no effect and failed reads are left out).
    pub ops: usize,
    pub verdict: Verdict,
    pub stats: Stats,
}

/// The whole history's result: invalid if any ticket is, else unknown if any is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearReport {
    pub verdict: Verdict,
    /// The first invalid (else unknown) ticket, in ticket order.
    pub ticket: Option<String>,
    pub tickets: Vec<TicketResult>,
}

/// Check a history for per-ticket linearizability. Tickets are independent objects (every
/// op touches one), so by P-compositionality the history is linearizable iff each ticket's
/// sub-history is. Errors only on a malformed history.
pub fn check_linearizable(ops: &[Op], config: &LinearConfig) -> Result<LinearReport, HistoryError> {
    let calls = pair_calls(ops)?;
    check_calls(&calls, config)
}

/// [`check_linearizable`] on calls already paired.
pub fn check_calls(calls: &[Call], config: &LinearConfig) -> Result<LinearReport, HistoryError> {
    let started = Instant::now();
    let mut by_ticket: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for call in calls {
        by_ticket.entry(call.ticket()).or_default().push(call);
    }
    let mut tickets = Vec::new();
    for (ticket, calls) in by_ticket {
        let mut ids = Interner::default();
        let mut entries = Vec::new();
        for call in calls {
            match model::prepare(call, &config.model, &mut ids) {
                Prepared::Op { entry } => entries.push(entry),
                Prepared::Skip => {}
                Prepared::Malformed(detail) => {
                    return Err(HistoryError::Malformed { index: call.index(), detail })
                }
            }
        }
        let spent = started.elapsed().as_millis() as u64;
        let (verdict, stats) = if spent >= config.total_time_max_ms {
            let reason =
                format!("total time budget of {} ms spent before this ticket", config.total_time_max_ms);
            (Verdict::Unknown { reason }, Stats::default())
        } else {
            let mut budget = config.budget;
            budget.time_max_ms = budget.time_max_ms.min(config.total_time_max_ms - spent);
            linear::check(&TicketModel, &entries, &budget)
        };
        tickets.push(TicketResult { ticket: ticket.to_string(), ops: entries.len(), verdict, stats });
    }
    let first = |pred: fn(&Verdict) -> bool| tickets.iter().find(|t| pred(&t.verdict));
    let (verdict, ticket) = match first(Verdict::is_invalid).or_else(|| first(Verdict::is_unknown)) {
        Some(t) => (t.verdict.clone(), Some(t.ticket.clone())),
        None => (Verdict::Valid, None),
    };
    Ok(LinearReport { verdict, ticket, tickets })
}
