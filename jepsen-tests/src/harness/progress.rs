//! The progress of a run's workload on stderr: an indicatif bar over the `time_s` seconds
//! when stderr is a terminal, else (CI, logs piped to a file, or `quiet`) a plain line
//! every [`PLAIN_EVERY_S`] seconds.
//!
//! Cheap to call often: [`Progress::tick`] can be called every second (the bar redraws at
//! most ~20 times a second; the plain lines are throttled here). `&self` everywhere, so
//! one `Arc<Progress>` can be shared with the task that ticks.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Seconds between two plain lines when the bar is hidden.
pub const PLAIN_EVERY_S: u64 = 10;

pub struct Progress {
    bar: ProgressBar,
    time_s: u64,
    /// No bar: plain lines instead.
    plain: bool,
    /// The last `elapsed_s / PLAIN_EVERY_S` a plain line was printed for.
    last_plain: AtomicU64,
}

impl Progress {
    /// A bar of `time_s` seconds on stderr; hidden (plain lines instead) when `quiet` or
    /// when stderr is not a terminal.
    pub fn new(time_s: u64, quiet: bool) -> Progress {
        Progress::with_bar(time_s, quiet || !std::io::stderr().is_terminal())
    }

    fn with_bar(time_s: u64, plain: bool) -> Progress {
        let bar = if plain {
            ProgressBar::hidden()
        } else {
            let style = ProgressStyle::with_template("[{bar:40.cyan/blue}] {pos:>4}/{len} s  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar =
                ProgressBar::with_draw_target(Some(time_s), ProgressDrawTarget::stderr()).with_style(style);
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        };
        Progress { bar, time_s, plain, last_plain: AtomicU64::new(0) }
    }

    /// Whether the bar is hidden (plain lines instead).
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// The state at `elapsed_s` since the workload start: `ops` invoked, how many came
    /// back ok / fail / info, and what the nemesis is doing (e.g. `"quiet"`).
    pub fn tick(&self, elapsed_s: u64, ops: usize, ok: usize, fail: usize, info: usize, nemesis_state: &str) {
        if self.plain {
            let bucket = elapsed_s / PLAIN_EVERY_S;
            if bucket > 0 && self.last_plain.fetch_max(bucket, Ordering::Relaxed) < bucket {
                eprintln!("{}", plain_line(elapsed_s, self.time_s, ops, ok, fail, info, nemesis_state));
            }
        } else {
            self.bar.set_position(elapsed_s.min(self.time_s));
            self.bar.set_message(bar_message(ops, ok, fail, info, nemesis_state));
        }
    }

    /// A line of its own above the bar (or on stderr when plain), without tearing the bar.
    pub fn println(&self, line: &str) {
        if self.plain {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Stop: the bar stays on screen at its last position with `msg`; plain: `msg` is
    /// printed.
    pub fn finish(&self, msg: &str) {
        if self.plain {
            eprintln!("{msg}");
        } else {
            self.bar.finish_with_message(msg.to_string());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A bar dropped without `finish` (error path) must not keep redrawing.
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}

/// The text next to the bar.
pub fn bar_message(ops: usize, ok: usize, fail: usize, info: usize, nemesis_state: &str) -> String {
    format!("ops {ops} (ok {ok}, fail {fail}, info {info}); nemesis: {nemesis_state}")
}

/// The plain progress line (no terminal): the same facts as the bar.
pub fn plain_line(
    elapsed_s: u64,
    time_s: u64,
    ops: usize,
    ok: usize,
    fail: usize,
    info: usize,
    nemesis_state: &str,
) -> String {
    format!("[{elapsed_s:>4}/{time_s} s] {}", bar_message(ops, ok, fail, info, nemesis_state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_format() {
        assert_eq!(
            plain_line(10, 60, 123, 100, 20, 3, "quiet"),
            "[  10/60 s] ops 123 (ok 100, fail 20, info 3); nemesis: quiet"
        );
        assert_eq!(
            plain_line(1234, 3600, 5, 4, 0, 1, "Kill node 2"),
            "[1234/3600 s] ops 5 (ok 4, fail 0, info 1); nemesis: Kill node 2"
        );
    }

    #[test]
    fn plain_mode_throttles_to_one_line_per_interval() {
        let p = Progress::with_bar(60, true);
        assert!(p.is_plain());
        // Not testing stderr itself: the bucket bookkeeping that decides when to print.
        for s in 0..35 {
            p.tick(s, 0, 0, 0, 0, "quiet");
        }
        assert_eq!(p.last_plain.load(Ordering::Relaxed), 3);
        // Going backwards (a late tick) prints nothing and keeps the mark.
        p.tick(12, 0, 0, 0, 0, "quiet");
        assert_eq!(p.last_plain.load(Ordering::Relaxed), 3);
        p.finish("done");
    }

    #[test]
    fn quiet_is_plain_even_on_a_terminal() {
        assert!(Progress::new(5, true).is_plain());
    }
}
