//! What a run measured, and how it is printed.
//!
//! Owns: [`Stats`] (one client's latency histogram, successes and failures by code; merged
//! over clients), [`Report`] (one workload against one system: ops/s, p50/p90/p99/p99.9/max
//! latency, errors by code, workload-specific checks) and its two renderings: a Markdown
//! table for people and `--json` for tools (the smoke test reads it).
//!
//! Every attempt is counted exactly once: `attempts == ok + sum(errors)`; the latency
//! histogram holds every attempt, successful or not. `ops_per_sec` counts successes only.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The histogram's range: 1 µs to 60 s, 3 significant digits.
const LATENCY_US_MAX: u64 = 60_000_000;

pub struct Stats {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Successes and the longest attempt of each second of the run (by when the attempt
    /// ended), when the driver gives times.
    pub seconds: Vec<Second>,
}

/// One second of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Second {
    pub ok: u64,
    pub max_us: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            hist: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds"),
            ok: 0,
            errors: BTreeMap::new(),
            seconds: Vec::new(),
        }
    }
}

impl Stats {
    pub fn record_ok(&mut self, took: Duration) {
        self.ok += 1;
        self.record(took);
    }

    pub fn record_err(&mut self, name: String, took: Duration) {
        *self.errors.entry(name).or_default() += 1;
        self.record(took);
    }

    fn record(&mut self, took: Duration) {
        self.hist.saturating_record((took.as_micros() as u64).clamp(1, LATENCY_US_MAX));
    }

    /// Note an attempt that ended `at` after the run's start in the per-second timeline.
    pub fn note_second(&mut self, at: Duration, ok: bool, took: Duration) {
        let i = at.as_secs() as usize;
        if self.seconds.len() <= i {
            self.seconds.resize(i + 1, Second::default());
        }
        let s = &mut self.seconds[i];
        s.ok += u64::from(ok);
        s.max_us = s.max_us.max(took.as_micros() as u64);
    }

    pub fn attempts(&self) -> u64 {
        self.hist.len()
    }

    pub fn merge(&mut self, other: Stats) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize(other.seconds.len(), Second::default());
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(other.seconds) {
            mine.ok += theirs.ok;
            mine.max_us = mine.max_us.max(theirs.max_us);
        }
        assert_eq!(
            self.attempts(),
            self.ok + self.errors.values().sum::<u64>(),
            "every attempt counted once"
        );
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// The ledger of `ga` and `best-available` (see `workloads`).
#[derive(Debug, Clone, Serialize)]
pub struct Ledger {
    /// Tickets named in `201` answers.
    pub answered: u64,
    /// Tickets asked for by requests whose outcome the client could not know (`504
    /// outcome_unknown`, timeouts, lost connections).
    pub unknown: u64,
    /// Tickets the event showed as held after the run (the warm-up seat not counted);
    /// `None` when holds expire within the run, so there is nothing to compare.
    pub held: Option<u64>,
    /// `answered <= held <= answered + unknown`.
    pub consistent: bool,
}

/// One window of a long run (a minute, or a tenth of a shorter run).
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from_s: u64,
    pub to_s: u64,
    pub ok_per_sec: f64,
    pub max_us: u64,
}

/// The flash-sale's own checks.
#[derive(Debug, Clone, Serialize)]
pub struct FlashSale {
    /// Tickets on sale.
    pub capacity: u64,
    /// Confirms that answered 201.
    pub confirms: u64,
    /// Tickets the seat map shows as sold at the end.
    pub sold: u64,
    /// Ticket ids that two successful confirms both claimed (must be 0).
    pub sold_twice: u64,
    /// From the first request to the confirm of the last ticket; `None` if not sold out.
    pub sold_out_ms: Option<u64>,
    /// `sold <= capacity && sold == confirms && sold_twice == 0`.
    pub consistent: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `boxoffice` or the peer's name (`etcd3`, `redis-aof`, ...).
    pub system: String,
    pub workload: String,
    /// Nodes (or members) of the system.
    pub nodes: usize,
    pub clients: usize,
    pub seconds: f64,
    pub attempts: u64,
    pub ok: u64,
    pub ops_per_sec: f64,
    pub attempts_per_sec: f64,
    pub latency: Latency,
    /// Failed attempts by `"<status> <code>"`, `timeout` or `transport` (or a peer's error).
    pub errors: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_sale: Option<FlashSale>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<Ledger>,
    /// The run in windows: minutes for runs of two minutes or more, else tenths (runs of
    /// 10 s or more).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// Anything else worth knowing (e.g. "capacity reached after 8.1 s").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(
        system: &str,
        workload: &str,
        nodes: usize,
        clients: usize,
        elapsed: Duration,
        stats: &Stats,
    ) -> Report {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let q = |q: f64| stats.hist.value_at_quantile(q);
        Report {
            system: system.into(),
            workload: workload.into(),
            nodes,
            clients,
            seconds,
            attempts: stats.attempts(),
            ok: stats.ok,
            ops_per_sec: stats.ok as f64 / seconds,
            attempts_per_sec: stats.attempts() as f64 / seconds,
            latency: Latency {
                p50_us: q(0.5),
                p90_us: q(0.9),
                p99_us: q(0.99),
                p999_us: q(0.999),
                max_us: stats.hist.max(),
            },
            errors: stats.errors.clone(),
            flash_sale: None,
            ledger: None,
            windows: windows(&stats.seconds, elapsed),
            notes: Vec::new(),
        }
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Cut the per-second timeline of a run into windows (see [`Report::windows`]); the last
/// partial second is left out.
fn windows(seconds: &[Second], elapsed: Duration) -> Vec<Window> {
    let whole = (elapsed.as_secs() as usize).min(seconds.len());
    let width = match whole {
        0..=9 => return Vec::new(),
        10..=119 => whole / 10,
        _ => 60,
    };
    seconds[..whole]
        .chunks(width)
        .enumerate()
        .filter(|(_, c)| c.len() == width)
        .map(|(i, c)| Window {
            from_s: (i * width) as u64,
            to_s: ((i + 1) * width) as u64,
            ok_per_sec: c.iter().map(|s| s.ok).sum::<u64>() as f64 / width as f64,
            max_us: c.iter().map(|s| s.max_us).max().unwrap_or(0),
        })
        .collect()
}

pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The Markdown table of workload reports.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| system | workload | nodes | clients | seconds | ok | ok/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let errors = if r.errors.is_empty() {
            "0".to_string()
        } else {
            r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
        };
        let l = &r.latency;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
            r.system,
            r.workload,
            r.nodes,
            r.clients,
            r.seconds,
            r.ok,
            r.ops_per_sec,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us),
            errors
        ));
    }
    for r in reports {
        if let Some(f) = &r.flash_sale {
            out.push_str(&format!(
                "\nflash-sale ({} clients): capacity {}, confirms {}, sold {}, sold twice {}, sold out in {}, consistent: {}\n",
                r.clients,
                f.capacity,
                f.confirms,
                f.sold,
                f.sold_twice,
                f.sold_out_ms.map_or("(not sold out)".to_string(), |m| format!("{m} ms")),
                f.consistent
            ));
        }
        if let Some(l) = &r.ledger {
            out.push_str(&format!(
                "\nledger ({} {} clients): tickets in 201 answers {}, in unknown outcomes {}, held after the run {}, consistent: {}\n",
                r.workload,
                r.clients,
                l.answered,
                l.unknown,
                l.held.map_or("(not checked: holds expired within the run)".to_string(), |h| h.to_string()),
                l.consistent
            ));
        }
        if !r.windows.is_empty() {
            out.push_str(&format!("\nwindows ({} {} clients): ", r.workload, r.clients));
            let parts: Vec<String> = r
                .windows
                .iter()
                .map(|w| format!("{}–{} s {:.0}/s max {} ms", w.from_s, w.to_s, w.ok_per_sec, ms(w.max_us)))
                .collect();
            out.push_str(&parts.join(" · "));
            out.push('\n');
        }
        for n in &r.notes {
            out.push_str(&format!("note ({} {} {} clients): {n}\n", r.system, r.workload, r.clients));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_stats_count_every_attempt_once() {
        let mut a = Stats::default();
        a.record_ok(Duration::from_micros(500));
        a.record_err("409 ticket_unavailable".into(), Duration::from_micros(900));
        let mut b = Stats::default();
        b.record_ok(Duration::from_millis(2));
        b.record_err("409 ticket_unavailable".into(), Duration::from_micros(1));
        a.merge(b);
        assert_eq!((a.attempts(), a.ok), (4, 2));
        assert_eq!(a.errors["409 ticket_unavailable"], 2);
        let r = Report::new("boxoffice", "hold", 1, 2, Duration::from_secs(2), &a);
        assert_eq!(r.ops_per_sec, 1.0);
        assert!(r.latency.p50_us <= r.latency.p99_us && r.latency.p99_us <= r.latency.max_us);
        assert!(r.latency.max_us >= 1_999, "{:?}", r.latency);
    }
}
