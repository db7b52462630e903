//! Every checker run over one history, as `results.json` and a short text summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::checker::direct::{self, CheckName, FinalState, Violation};
use crate::checker::linear::Verdict;
use crate::checker::{check_calls, LinearConfig, LinearReport};
use crate::history::{pair_calls, HistoryError, Op, OpFn, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    Valid,
    /// Could not decide (search budget spent, or the check lacked its input).
    Unknown,
    Invalid,
}

impl Validity {
    pub fn name(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Unknown => "unknown",
            Validity::Invalid => "invalid",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    /// The worst of the checkers: invalid > unknown > valid.
    pub valid: Validity,
    /// Checker name (`linearizable`, then the direct checks) -> verdict.
    pub checkers: BTreeMap<String, Validity>,
    /// `f` -> outcome counts (calls; an invoke without completion counts as info).
    pub counts: BTreeMap<String, OutcomeCounts>,
    pub linear: LinearReport,
    /// Direct-check violations.
    pub violations: Vec<Violation>,
}

impl Results {
    /// Run every checker over a history.
    pub fn compute(ops: &[Op], fin: &FinalState, config: &LinearConfig) -> Result<Results, HistoryError> {
        Results::compute_with(ops, fin, config, true)
    }

    /// Every checker but the per-ticket model: for histories where the server makes holds
    /// no client asked for in the history (waiting-list offers), which the model cannot
    /// see. `linearizable` is then absent from `checkers`.
    pub fn compute_direct(
        ops: &[Op],
        fin: &FinalState,
        config: &LinearConfig,
    ) -> Result<Results, HistoryError> {
        Results::compute_with(ops, fin, config, false)
    }

    fn compute_with(
        ops: &[Op],
        fin: &FinalState,
        config: &LinearConfig,
        linearizable: bool,
    ) -> Result<Results, HistoryError> {
        let calls = pair_calls(ops)?;
        let linear = if linearizable {
            check_calls(&calls, config)?
        } else {
            LinearReport { verdict: Verdict::Valid, ticket: None, tickets: Vec::new() }
        };
        let direct = direct::check_all(&calls, fin, config.model.skew_ms, config.hold_ms);

        let mut checkers = BTreeMap::new();
        if linearizable {
            let linear_validity = match linear.verdict {
                Verdict::Valid => Validity::Valid,
                Verdict::Invalid { .. } => Validity::Invalid,
                Verdict::Unknown { .. } => Validity::Unknown,
            };
            checkers.insert("linearizable".to_string(), linear_validity);
        }
        let mut violations = Vec::new();
        for r in direct {
            let validity = match (r.ran, r.violations.is_empty()) {
                (_, false) => Validity::Invalid,
                (false, true) => Validity::Unknown,
                (true, true) => Validity::Valid,
            };
            checkers.insert(r.check.name().to_string(), validity);
            violations.extend(r.violations);
        }
        let valid = checkers.values().copied().max().unwrap_or(Validity::Valid);

        let mut counts: BTreeMap<String, OutcomeCounts> = BTreeMap::new();
        for f in [OpFn::Reserve, OpFn::Confirm, OpFn::Release, OpFn::Read] {
            counts.insert(f_name(f).to_string(), OutcomeCounts::default());
        }
        for call in &calls {
            // Cancels are counted only in histories that have them (older results keep their shape).
            let c = counts.entry(f_name(call.f()).to_string()).or_default();
            match call.outcome() {
                Outcome::Ok => c.ok += 1,
                Outcome::Fail => c.fail += 1,
                Outcome::Info => c.info += 1,
            }
        }
        debug_assert_eq!(
            counts.values().map(|c| c.ok + c.fail + c.info).sum::<u64>(),
            calls.len() as u64,
            "every call counted once"
        );
        Ok(Results { valid, checkers, counts, linear, violations })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("Results serializes")
    }

    /// A few lines for the terminal and `summary.txt`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "result: {}", self.valid.name().to_uppercase());
        for (name, v) in &self.checkers {
            let _ = writeln!(s, "  {name:<18} {}", v.name());
        }
        let ops: Vec<String> =
            self.counts.iter().map(|(f, c)| format!("{f} {}/{}/{}", c.ok, c.fail, c.info)).collect();
        let _ = writeln!(s, "ops (ok/fail/info): {}", ops.join(", "));
        let unknown = self.linear.tickets.iter().filter(|t| t.verdict.is_unknown()).count();
        let _ = writeln!(s, "tickets checked: {} ({unknown} unknown)", self.linear.tickets.len());
        match (&self.linear.verdict, &self.linear.ticket) {
            (Verdict::Invalid { witness }, Some(ticket)) => {
                let _ = writeln!(
                    s,
                    "not linearizable: ticket {ticket}: after ops {:?} (state {}), op {} completes but nothing \
                     pending can go next",
                    witness.linearized, witness.state, witness.stuck_at
                );
            }
            (Verdict::Unknown { reason }, Some(ticket)) => {
                let _ = writeln!(s, "linearizability unknown: ticket {ticket}: {reason}");
            }
            _ => {}
        }
        const VIOLATIONS_SHOWN_MAX: usize = 10;
        for v in self.violations.iter().take(VIOLATIONS_SHOWN_MAX) {
            let _ = writeln!(s, "violation {}: {} (ops {:?})", v.check.name(), v.message, v.ops);
        }
        if self.violations.len() > VIOLATIONS_SHOWN_MAX {
            let _ = writeln!(s, "... and {} more violations", self.violations.len() - VIOLATIONS_SHOWN_MAX);
        }
        s
    }

    /// Fold in checks run outside [`Results::compute`] (e.g. the queue's), recomputing
    /// the overall verdict.
    pub fn add_checks(&mut self, extra: Vec<direct::CheckResult>) {
        for r in extra {
            let validity = match (r.ran, r.violations.is_empty()) {
                (_, false) => Validity::Invalid,
                (false, true) => Validity::Unknown,
                (true, true) => Validity::Valid,
            };
            self.checkers.insert(r.check.name().to_string(), validity);
            self.violations.extend(r.violations);
        }
        self.valid = self.checkers.values().copied().max().unwrap_or(Validity::Valid);
    }

    /// The verdict of one direct check.
    pub fn direct(&self, check: CheckName) -> Validity {
        self.checkers[check.name()]
    }
}

fn f_name(f: OpFn) -> &'static str {
    match f {
        OpFn::Reserve => "reserve",
        OpFn::Confirm => "confirm",
        OpFn::Release => "release",
        OpFn::Read => "read",
        OpFn::Cancel => "cancel",
    }
}
