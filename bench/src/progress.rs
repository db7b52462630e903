//! The progress bar while a run lasts: on stderr, hidden when stderr is not a terminal or
//! with `--json`, so that pipes and the smoke test see only the report.
//!
//! Owns: [`Progress`], which ticks from a shared attempt counter every
//! [`TICK`] until it is finished (or dropped).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bar redraws.
pub const TICK: Duration = Duration::from_millis(200);

pub struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

/// What ends the run: a deadline or a number of attempts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Seconds(u64),
    Count(u64),
}

impl Progress {
    /// A bar for `label` driven by `attempts`; `visible` false hides it.
    pub fn start(label: &str, budget: Budget, attempts: Arc<AtomicU64>, visible: bool) -> Progress {
        let visible = visible && std::io::stderr().is_terminal();
        let (len, template) = match budget {
            Budget::Seconds(s) => (s * 10, "{prefix} [{bar:30}] {elapsed}/{duration} {msg}"),
            Budget::Count(n) => (n, "{prefix} [{bar:30}] {pos}/{len} {msg}"),
        };
        let bar = ProgressBar::with_draw_target(
            Some(len),
            if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
        );
        bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
        bar.set_prefix(label.to_string());
        let b = bar.clone();
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                let n = attempts.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                match budget {
                    Budget::Seconds(_) => b.set_position(((secs * 10.0) as u64).min(len)),
                    Budget::Count(_) => b.set_position(n.min(len)),
                }
                b.set_message(format!("{n} attempts, {:.0}/s", n as f64 / secs.max(1e-3)));
            }
        });
        Progress { bar, ticker }
    }

    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
