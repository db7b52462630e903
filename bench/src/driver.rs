//! The load loop shared by every workload and every peer: C clients, each doing one
//! operation at a time, until the budget (seconds or a count of attempts) is spent or a
//! workload says stop.
//!
//! Owns: [`Client`] (one client's state and its operation), [`Outcome`], [`drive`].
//! Operation numbers `n` come from one shared counter, so each is handed out once across
//! all clients (a hold workload turns `n` into a distinct seat). Every attempt is timed and
//! counted in the client's [`Stats`]; the progress bar reads the shared counter.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::progress::{Budget, Progress};
use crate::report::Stats;

/// Time a run may overrun its deadline (operations in flight finish, each bounded by its
/// own request timeout) before its clients are abandoned.
pub const OVERRUN_MAX: Duration = Duration::from_secs(45);
/// Most clients one run may have.
pub const CLIENTS_MAX: usize = 1_024;
/// Longest run.
pub const SECONDS_MAX: u64 = 3_600;

pub enum Outcome {
    Ok,
    /// A failed attempt, counted under this name.
    Err(String),
    /// Nothing left to do (capacity reached): not an attempt; this client stops.
    Done,
}

pub type OpFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

pub trait Client: Send + 'static {
    /// Operation number `n` (unique across clients).
    fn op(&mut self, n: u64) -> OpFuture<'_>;
}

pub struct Run {
    pub stats: Stats,
    pub elapsed: Duration,
}

/// Run `clients` until `budget` is spent or `stop` is set.
pub async fn drive<C: Client>(
    label: &str,
    clients: Vec<C>,
    budget: Budget,
    stop: Arc<AtomicBool>,
    progress: bool,
) -> anyhow::Result<Run> {
    if clients.is_empty() || clients.len() > CLIENTS_MAX {
        bail!("clients must be within 1..={CLIENTS_MAX}");
    }
    let (deadline, count) = match budget {
        Budget::Seconds(s) if (1..=SECONDS_MAX).contains(&s) => {
            (Instant::now() + Duration::from_secs(s), u64::MAX)
        }
        Budget::Count(n) if n > 0 => (Instant::now() + Duration::from_secs(SECONDS_MAX), n),
        _ => bail!("the run needs 1..={SECONDS_MAX} seconds or a count > 0"),
    };
    let next = Arc::new(AtomicU64::new(0));
    let bar = Progress::start(label, budget, next.clone(), progress);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut client in clients {
        let (next, stop) = (next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let t0 = Instant::now();
                let outcome = client.op(n).await;
                let took = t0.elapsed();
                stats.note_second(started.elapsed(), matches!(outcome, Outcome::Ok), took);
                match outcome {
                    Outcome::Ok => stats.record_ok(took),
                    Outcome::Err(name) => stats.record_err(name, took),
                    Outcome::Done => break,
                }
            }
            stats
        }));
    }
    let mut stats = Stats::default();
    let give_up = deadline.max(Instant::now()) + OVERRUN_MAX;
    for t in tasks {
        let abort = t.abort_handle();
        match tokio::time::timeout_at(give_up.into(), t).await {
            Ok(s) => stats.merge(s?),
            Err(_) => {
                abort.abort();
                stats.record_err("client abandoned".into(), OVERRUN_MAX);
            }
        }
    }
    let elapsed = started.elapsed();
    bar.finish();
    Ok(Run { stats, elapsed })
}
