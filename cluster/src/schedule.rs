//! The node's deadline scheduler: one task for every event placed here, instead of a task (and
//! a timer) per event.
//!
//! Each inventory tells the node its next deadline when an entry moves it
//! ([`crate::machine::NodeHooks::deadline`]): the earliest hold expiry, the queue's next
//! admission, or "now" while a payment sits in `confirming` or a refund is pending. The
//! scheduler keeps them ordered (and in a sled tree, so a restart still knows the deadlines
//! of events that are not in memory) and sleeps until the earliest. When one is due and this node leads the event, it
//! does what the old per-event driver did: propose `Expire` (so watchers see the seats come
//! back at once — expiry itself is exact in log order anyway), propose `QueueAdmit`, and
//! finish payments left in `confirming` and refunds left pending that no request in this
//! process is running. That wakes the event's group if it slept, and loads it if it had left memory. A node that does
//! not lead the event looks again a little later ([`NOT_LEADER_RECHECK`]): the leader's own
//! scheduler acts, and if the leader's node dies its groups fail over (`raft`'s quiesce).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use tickets::inventory::InventoryCommand;
use tickets::Millis;

use crate::store::{wall_ms, Store};

/// How soon a node that does not lead a due event looks at it again.
pub const NOT_LEADER_RECHECK: Duration = Duration::from_millis(1_000);
/// How soon a due event whose proposal failed (or whose payment still runs) is tried again.
pub const RETRY_AFTER: Duration = Duration::from_millis(300);
/// Longest sleep of the scheduler (so clock jumps are noticed).
pub const TICK_MAX: Duration = Duration::from_secs(5);
/// Most due events acted on at once.
pub const DUE_PARALLEL_MAX: usize = 64;

#[derive(Default)]
struct Table {
    /// `(due at, event)`, earliest first.
    queue: BTreeSet<(Millis, String)>,
    /// Event -> its entry in `queue`.
    due: BTreeMap<String, Millis>,
    /// Events being acted on now.
    running: BTreeSet<String>,
}

/// See the module doc.
pub struct Scheduler {
    table: Mutex<Table>,
    tree: sled::Tree,
    wake: Notify,
}

impl Scheduler {
    /// The scheduler, with the deadlines `tree` remembers.
    pub fn open(tree: sled::Tree) -> Scheduler {
        let mut table = Table::default();
        for (key, value) in tree.iter().flatten() {
            let (Ok(event), Ok(at)) = (std::str::from_utf8(&key), <[u8; 8]>::try_from(value.as_ref())) else {
                continue;
            };
            let at = u64::from_be_bytes(at);
            table.queue.insert((at, event.to_string()));
            table.due.insert(event.to_string(), at);
        }
        Scheduler { table: Mutex::new(table), tree, wake: Notify::new() }
    }

    /// `event` next needs its leader at `at`, or never.
    pub fn set(&self, event: &str, at: Option<Millis>) {
        {
            let mut t = self.table.lock().expect("scheduler lock");
            if let Some(old) = t.due.remove(event) {
                t.queue.remove(&(old, event.to_string()));
            }
            if let Some(at) = at {
                t.queue.insert((at, event.to_string()));
                t.due.insert(event.to_string(), at);
            }
        }
        // A hint, not a record: losing it in a crash costs a late `Expire`, never a wrong answer.
        let written = match at {
            Some(at) => self.tree.insert(event.as_bytes(), &at.to_be_bytes()).map(|_| ()),
            None => self.tree.remove(event.as_bytes()).map(|_| ()),
        };
        if let Err(e) = written {
            tracing::warn!(event, error = %e, "could not record a deadline");
        }
        self.wake.notify_one();
    }

    /// When `event` is due, if it is.
    pub fn due_at(&self, event: &str) -> Option<Millis> {
        self.table.lock().expect("scheduler lock").due.get(event).copied()
    }

    /// Events due by `now` and not being acted on (marked as being acted on), and the next
    /// later deadline.
    fn take_due(&self, now: Millis) -> (Vec<String>, Option<Millis>) {
        let mut t = self.table.lock().expect("scheduler lock");
        let mut due = Vec::new();
        let mut next = None;
        for (at, event) in t.queue.iter() {
            if *at > now {
                next = Some(*at);
                break;
            }
            if !t.running.contains(event) && due.len() < DUE_PARALLEL_MAX {
                due.push(event.clone());
            }
        }
        for event in &due {
            t.running.insert(event.clone());
        }
        (due, next)
    }

    /// Done with `event`; if its deadline did not move, look again after `later`.
    fn done(&self, event: &str, deadline_before: Option<Millis>, later: Duration) {
        let now = wall_ms();
        let mut t = self.table.lock().expect("scheduler lock");
        t.running.remove(event);
        if let Some(at) = t.due.get(event).copied() {
            if Some(at) == deadline_before && at <= now {
                t.queue.remove(&(at, event.to_string()));
                let retry = now + later.as_millis() as u64;
                t.queue.insert((retry, event.to_string()));
                t.due.insert(event.to_string(), retry);
            }
        }
    }
}

/// What the scheduler does with an event whose deadline came. On a node that is the event's
/// local work ([`Store`]'s impl: expire, admit, finish payments and refunds, if it leads);
/// the loop's own tests use a recording fake, so the loop is tested without a node.
pub(crate) trait DueWork: Clone + Send + Sync + 'static {
    /// Act on `event`; how soon to look again if nothing moves its deadline meanwhile.
    fn act(&self, event: String) -> impl Future<Output = Duration> + Send;
}

impl DueWork for Store {
    async fn act(&self, event: String) -> Duration {
        act(self, &event).await
    }
}

/// The scheduler's task: its table, the work it hands due events to, and the node's shutdown
/// signal — nothing else of the node.
pub(crate) async fn run<W: DueWork>(scheduler: Arc<Scheduler>, work: W, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = wall_ms();
        let (due, next) = scheduler.take_due(now);
        for event in due {
            let (scheduler, work) = (scheduler.clone(), work.clone());
            tokio::spawn(async move {
                let before = scheduler.due_at(&event);
                let later = work.act(event.clone()).await;
                scheduler.done(&event, before, later);
                scheduler.wake.notify_one();
            });
        }
        let wait = next.map_or(TICK_MAX, |at| Duration::from_millis(at.saturating_sub(now)).min(TICK_MAX));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = scheduler.wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Act on a due event if this node leads it; how soon to look again if nothing changes.
async fn act(store: &Store, event: &str) -> Duration {
    let me = store.node_id();
    if store.host().known_leader(event) != Some(me) {
        return NOT_LEADER_RECHECK;
    }
    let group = match store.host().load(event).await {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(event, error = %e, "due event not loaded");
            return NOT_LEADER_RECHECK;
        }
    };
    if group.leader() != Some(me) && group.known_leader() != Some(me) {
        return NOT_LEADER_RECHECK;
    }
    let now = wall_ms();
    let (expiry, queue_deadline, queue_on, confirming, refunding, notices) =
        group.read_local(|m| match m.as_inventory() {
            Some(inv) => (
                inv.earliest_expiry(),
                inv.queue_next_deadline(),
                inv.setup().is_some_and(|s| s.queue.enabled),
                inv.confirming(),
                inv.refunding(),
                inv.outbox_len(),
            ),
            None => (None, None, false, Vec::new(), Vec::new(), 0),
        });
    // Notices for webhooks: one delivery pass at a time per event.
    if notices > 0 && !store.inner.webhooks.claimed(event) {
        let (store, group, event) = (store.clone(), group.clone(), event.to_string());
        tokio::spawn(async move { store.deliver_outbox(&group, &event).await });
    }
    for hold in confirming {
        if !store.payment_claimed(&hold.id) {
            let (store, group) = (store.clone(), group.clone());
            tokio::spawn(async move { store.recover_payment(&group, hold).await });
        }
    }
    // Refunds left pending, a bounded number per pass (an event cancel pins every booking).
    let running = refunding.iter().filter(|b| store.refund_claimed(&b.id)).count();
    let room = crate::refund::REFUNDS_STARTED_PER_PASS_MAX.saturating_sub(running);
    for booking in refunding.into_iter().filter(|b| !store.refund_claimed(&b.id)).take(room) {
        let (store, group) = (store.clone(), group.clone());
        tokio::spawn(async move { store.recover_refund(&group, booking).await });
    }
    if expiry.is_some_and(|at| at <= now) {
        if let Err(e) = store.write_inventory(&group, InventoryCommand::Expire).await {
            tracing::debug!(event, error = %e, "expire not proposed");
        }
    }
    if queue_on && queue_deadline.is_some_and(|at| at <= now) {
        let seed = crate::ids::random_u64();
        if let Err(e) = store.write_inventory(&group, InventoryCommand::QueueAdmit { seed }).await {
            tracing::debug!(event, error = %e, "queue admit not proposed");
        }
    }
    // A proposal that went through moved the deadline; one that failed, or a payment that is
    // still running, leaves it due: look again soon.
    RETRY_AFTER
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work that records what it was handed; it moves `evt_a`'s deadline away (like an
    /// `Expire` that went through) and leaves the others as they were (like a node that does
    /// not lead them).
    #[derive(Clone)]
    struct Recorder {
        acted: Arc<Mutex<Vec<String>>>,
        scheduler: Arc<Scheduler>,
    }

    impl DueWork for Recorder {
        async fn act(&self, event: String) -> Duration {
            self.acted.lock().unwrap().push(event.clone());
            if event == "evt_a" {
                self.scheduler.set(&event, None);
            }
            Duration::from_millis(20)
        }
    }

    #[tokio::test]
    async fn the_task_hands_due_events_to_its_work_retries_what_did_not_move_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let scheduler = Arc::new(Scheduler::open(db.open_tree("deadlines").unwrap()));
        let now = wall_ms();
        scheduler.set("evt_a", Some(now - 1));
        scheduler.set("evt_b", Some(now - 1));
        scheduler.set("evt_later", Some(now + 3_600_000));
        let acted = Arc::new(Mutex::new(Vec::new()));
        let work = Recorder { acted: acted.clone(), scheduler: scheduler.clone() };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(scheduler.clone(), work, stopped));
        let count = |e: &str| acted.lock().unwrap().iter().filter(|a| *a == e).count();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while count("evt_b") < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(count("evt_b") >= 3, "a deadline that did not move is retried: {:?}", acted.lock().unwrap());
        assert_eq!(count("evt_a"), 1, "a deadline the work moved away is not acted on again");
        assert_eq!(count("evt_later"), 0, "nothing is acted on before it is due");
        // A new deadline wakes the task at once, not after its longest sleep (TICK_MAX).
        scheduler.set("evt_c", Some(wall_ms()));
        let woke = tokio::time::Instant::now();
        while count("evt_c") == 0 && woke.elapsed() < TICK_MAX {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(woke.elapsed() < TICK_MAX / 2, "the scheduler slept through a new deadline");
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the task stops on shutdown")
            .unwrap();
    }

    #[test]
    fn deadlines_move_persist_and_come_due_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let s = Scheduler::open(db.open_tree("deadlines").unwrap());
        s.set("evt_b", Some(200));
        s.set("evt_a", Some(100));
        s.set("evt_c", Some(300));
        s.set("evt_c", None);
        s.set("evt_b", Some(50));
        let (due, next) = s.take_due(150);
        assert_eq!(due, vec!["evt_b".to_string(), "evt_a".to_string()]);
        assert_eq!(next, None);
        // Being acted on: not handed out twice.
        assert!(s.take_due(150).0.is_empty());
        s.done("evt_a", Some(100), Duration::from_millis(10));
        assert_eq!(s.due_at("evt_a").map(|at| at > 150), Some(true), "retried later when nothing moved");
        drop(s);
        let again = Scheduler::open(db.open_tree("deadlines").unwrap());
        assert_eq!(again.due_at("evt_b"), Some(50));
        assert_eq!(again.due_at("evt_c"), None);
    }
}
