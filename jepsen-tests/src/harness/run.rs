//! One run: start the cluster, set up the events, run the workload and the nemesis, heal,
//! read the final state, check, and write the run directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Mutex as AsyncMutex;

use super::cluster::{Cluster, NetMode, StartOptions, AUTH_SECRET};
use super::membership;
use super::nemesis::{self, NemesisKind, NemesisLog};
use super::progress::Progress;
use super::timeline;
use super::tools;
use super::workload::queue::{queue_call, ADMISSION_SECONDS, MAX_ADMITTED};
use super::workload::{self, ticket_key, EventUnderTest, Kind, Workload};
use crate::checker::direct::{FinalBooking, FinalRead, FinalState};
use crate::checker::queue::{self as queue_check, QueueFn};
use crate::checker::waitlist::{self as waitlist_check, WaitFn, WaitState};
use crate::history::{save_jsonl, TicketStatus};
use crate::{Budget, LinearConfig, ModelConfig, Results, Validity};

#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub nodes: usize,
    pub nemeses: Vec<NemesisKind>,
    pub workload: String,
    pub time_s: u64,
    pub seed: u64,
    pub out: PathBuf,
    pub binary: PathBuf,
    pub clients: usize,
    pub seats: u32,
    pub hold_seconds: u64,
    pub event_seconds: u64,
    pub op_timeout_ms: u64,
    pub quiet_ms: (u64, u64),
    pub fault_ms: (u64, u64),
    pub skew_ms: u64,
    pub check_browse_reads: bool,
    pub final_restart: bool,
    pub check_time_max_ms: u64,
    /// `auto` (namespaces when root and they work, else proxies), `netns` or `proxy`.
    pub net: String,
    /// Largest clock offset the clock nemesis may apply (s); the checker's skew bound is
    /// raised to cover it.
    pub clock_max_s: u64,
    /// No progress bar (plain lines every 10 s instead).
    pub quiet: bool,
    /// Every node's data directory on a lazy disk ([`crate::lazyfs`]), and the final
    /// restart a power cut of every node (only fsynced data survives it). On by itself
    /// for the power and disk-full nemeses.
    pub disks: bool,
}

impl RunConfig {
    pub fn new(binary: PathBuf, out: PathBuf, seed: u64) -> RunConfig {
        RunConfig {
            nodes: 3,
            nemeses: vec![NemesisKind::Kill, NemesisKind::Pause, NemesisKind::Partition],
            workload: "contention".into(),
            time_s: 60,
            seed,
            out,
            binary,
            clients: 10,
            seats: 5,
            hold_seconds: 3,
            event_seconds: 10,
            op_timeout_ms: 3_000,
            quiet_ms: (5_000, 10_000),
            fault_ms: (5_000, 10_000),
            skew_ms: 0,
            check_browse_reads: false,
            final_restart: true,
            check_time_max_ms: 120_000,
            net: "auto".into(),
            clock_max_s: 60,
            quiet: false,
            disks: false,
        }
    }
}

pub struct RunOutcome {
    pub results: Results,
    pub dir: PathBuf,
    pub notes: Vec<String>,
}

const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after the workload the run waits for the nemesis to finish its last fault
/// (it ends before the deadline; a membership action may take [`membership::ACTION_MAX`]
/// more). Past it the nemesis is stopped and the run says so.
const NEMESIS_FINISH_WAIT: Duration = Duration::from_secs(30);
/// How long after the final restart an event's group may take to name a leader before the
/// run wakes it with a read (and notes it); then 30 s more.
const FINAL_LEADER_WAIT: Duration = Duration::from_secs(15);
/// Events created, or checked for readiness, at once.
const SETUP_PARALLEL: usize = 4;
const TOKEN_TTL_S: u64 = 24 * 3600;

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Result<(u16, Value)> {
    let r = http.post(url).bearer_auth(token).json(&body).timeout(Duration::from_secs(10)).send().await?;
    let s = r.status().as_u16();
    let t = r.text().await?;
    Ok((s, serde_json::from_str(&t).unwrap_or(Value::String(t))))
}

async fn get(http: &reqwest::Client, url: String, token: Option<&str>) -> Result<(u16, Value)> {
    let mut req = http.get(url).timeout(Duration::from_secs(5));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let s = r.status().as_u16();
    let t = r.text().await?;
    Ok((s, serde_json::from_str(&t).unwrap_or(Value::String(t))))
}

/// Retry `f` until it returns Some, at most `timeout`.
async fn retry<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() > timeout => bail!("{what}: not done within {timeout:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One run, phase by phase (each phase is a function below, in order).
pub async fn run(mut cfg: RunConfig) -> Result<RunOutcome> {
    let mut notes = Vec::new();
    let (kind, mode, faketime) = prepare(&mut cfg, &mut notes)?;
    let (dir, faults) = open_run_dir(&cfg)?;
    let cluster = start_cluster(&cfg, &dir, mode, faketime, &faults).await?;
    let keys = testkit::Tokens::new(AUTH_SECRET.as_bytes());
    let http = reqwest::Client::new();
    let events = setup_events(&cfg, kind, &cluster, &keys, &http).await?;
    let Driven { mut cluster, w, nlog, users, workload_ms } =
        drive(&cfg, kind, cluster, &events, faults, &keys, &mut notes).await?;
    let ending = match heal_and_restart(&cfg, &mut cluster, &mut notes).await? {
        Some(why) => Ending::Unrecovered(why),
        None => {
            final_reads(&cfg, kind, &cluster, &events, &users, &keys, &http, &w, &nlog, &mut notes).await?
        }
    };
    drop(cluster); // every node killed, every proxy closed
    match ending {
        Ending::Read(fin) => check_and_write(&cfg, kind, &dir, &w, &nlog, &fin, &events, workload_ms, notes),
        Ending::Unrecovered(why) => {
            unrecovered(&cfg, &dir, &w.history.snapshot(), &nlog.snapshot(), why, notes)
        }
    }
}

/// Phase 1: what this machine can do for the run — the network mode, libfaketime for the
/// clock nemesis, FUSE for lazy disks — with the nemeses it cannot run dropped (and said so),
/// and the skew bound raised to cover the clock nemesis.
fn prepare(cfg: &mut RunConfig, notes: &mut Vec<String>) -> Result<(Kind, NetMode, Option<PathBuf>)> {
    let Some(kind) = Kind::parse(&cfg.workload) else {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        bail!("unknown workload {:?} (one of {names:?})", cfg.workload);
    };
    let (mode, why) = NetMode::choose(&cfg.net)?;
    eprintln!("network: {mode:?} ({why})");
    notes.push(format!("network: {mode:?} ({why})"));
    let clock = cfg.nemeses.contains(&NemesisKind::Clock);
    let faketime = if clock {
        tools::ensure_installed();
        match tools::libfaketime() {
            Some(lib) => Some(lib),
            None => {
                let why = "clock nemesis skipped: libfaketime is not installed (and could not be)";
                eprintln!("{why}");
                notes.push(why.into());
                cfg.nemeses.retain(|k| *k != NemesisKind::Clock);
                None
            }
        }
    } else {
        None
    };
    if cfg.nemeses.iter().any(|k| k.needs_disks()) {
        cfg.disks = true;
    }
    if cfg.disks {
        tools::ensure_installed();
        if let Err(why) = crate::lazyfs::LazyFs::available() {
            let dropped: Vec<NemesisKind> = cfg.nemeses.iter().copied().filter(|k| k.needs_disks()).collect();
            let why =
                format!("lazy disks skipped: FUSE is unavailable here ({why}); nemeses dropped: {dropped:?}");
            eprintln!("{why}");
            notes.push(why);
            cfg.nemeses.retain(|k| !k.needs_disks());
            cfg.disks = false;
        }
    }
    if faketime.is_some() {
        // The checker's clock-skew bound must cover every offset the nemesis applies.
        let bound_ms = nemesis::clock_bound_s(cfg.clock_max_s) * 1000 + 1000;
        if cfg.skew_ms < bound_ms {
            notes.push(format!(
                "skew bound raised from {} to {bound_ms} ms for the clock nemesis",
                cfg.skew_ms
            ));
            cfg.skew_ms = bound_ms;
        }
    }
    Ok((kind, mode, faketime))
}

/// Phase 2: the run directory (which must be new: it would reuse old node data), with the
/// config and the nemesis schedule, made first: the cluster makes a spare machine for each
/// join onto a new one.
fn open_run_dir(cfg: &RunConfig) -> Result<(PathBuf, Vec<nemesis::Fault>)> {
    let dir = cfg.out.clone();
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!("run directory {} exists and is not empty (it would reuse old node data)", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;
    let faults = nemesis::schedule(
        cfg.seed,
        &cfg.nemeses,
        cfg.nodes,
        cfg.time_s * 1000,
        cfg.quiet_ms,
        cfg.fault_ms,
        cfg.clock_max_s,
    );
    std::fs::write(dir.join("schedule.json"), serde_json::to_string_pretty(&faults)?)?;
    Ok((dir, faults))
}

/// Phase 3: the cluster, every node ready.
async fn start_cluster(
    cfg: &RunConfig,
    dir: &Path,
    mode: NetMode,
    faketime: Option<PathBuf>,
    faults: &[nemesis::Fault],
) -> Result<Cluster> {
    let t0 = Instant::now();
    let spare = nemesis::spare_slots(faults);
    let options = StartOptions {
        faketime,
        disks: cfg.disks,
        // Snapshots every 100 entries: a power cut then often lands near a snapshot being
        // written, renamed and its directory fsynced.
        node_args: if cfg.disks { vec!["--snapshot-every".into(), "100".into()] } else { vec![] },
    };
    let mut cluster = Cluster::start(cfg.nodes, spare, &cfg.binary, dir, mode, options).await?;
    cluster.wait_all_ready(READY_TIMEOUT).await?;
    eprintln!("cluster of {} nodes ready in {:?}", cfg.nodes, t0.elapsed());

    Ok(cluster)
}

/// Phase 4: one venue (GA of `seats`), one event per rotation window (hundreds for
/// `many-events`), each with a leader and its seat map served by every node.
async fn setup_events(
    cfg: &RunConfig,
    kind: Kind,
    cluster: &Cluster,
    keys: &testkit::Tokens,
    http: &reqwest::Client,
) -> Result<Vec<EventUnderTest>> {
    let t0 = Instant::now();
    let admin = keys.mint("jepsen-admin", true, TOKEN_TTL_S);
    let base1 = cluster.node(1).base();
    let venue = retry("create venue", Duration::from_secs(30), || async {
        match post(http, format!("{base1}/v1/venues"), &admin, json!({
            "name": "Jepsen Hall", "city": "Springfield", "country": "US", "location": {"lat": 40.0, "lon": -75.0},
            "sections": [{"name": "GA", "kind": "general", "capacity": cfg.seats}]
        })).await {
            Ok((201, b)) => Ok(b["id"].as_str().unwrap_or_default().to_string()),
            Ok((s, b)) => Err(format!("{s} {b}")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await?;
    let mut n_events = (cfg.time_s / cfg.event_seconds.max(1) + 1) as usize;
    if kind == Kind::ManyEvents {
        n_events = n_events.max(workload::many_events::EVENTS_MIN);
    }
    let mut events = Vec::new();
    // A few creations at a time (many-events makes hundreds).
    for chunk in (0..n_events).collect::<Vec<_>>().chunks(SETUP_PARALLEL) {
        let created = futures::future::join_all(chunk.iter().map(|&k| {
            let (admin, venue, base1) = (&admin, &venue, &base1);
            retry("create event", Duration::from_secs(30), move || async move {
                match post(
                    http,
                    format!("{base1}/v1/events"),
                    admin,
                    event_body(kind, k, venue, cfg.hold_seconds),
                )
                .await
                {
                    Ok((201, b)) => Ok(b["id"].as_str().unwrap_or_default().to_string()),
                    Ok((s, b)) => Err(format!("{s} {b}")),
                    Err(e) => Err(e.to_string()),
                }
            })
        }))
        .await;
        for id in created {
            let tickets: Vec<String> = (1..=cfg.seats).map(|i| format!("GA-{i}")).collect();
            events.push(EventUnderTest { id: id?, tickets });
        }
    }
    // Every node serves every event's seat map, and every group has a leader.
    for chunk in events.chunks(SETUP_PARALLEL) {
        let ready = futures::future::join_all(chunk.iter().map(|ev| async move {
            cluster.wait_leader(&ev.id, Duration::from_secs(30)).await?;
            for id in cluster.ids() {
                let base = cluster.node(id).base();
                retry("seat map on every node", Duration::from_secs(30), || async {
                    match get(http, format!("{base}/v1/events/{}/tickets", ev.id), None).await {
                        Ok((200, _)) => Ok(()),
                        Ok((s, b)) => Err(format!("{s} {b}")),
                        Err(e) => Err(e.to_string()),
                    }
                })
                .await?;
            }
            anyhow::Ok(())
        }))
        .await;
        for r in ready {
            r?;
        }
    }
    eprintln!("{} events of {} seats ready in {:?}", events.len(), cfg.seats, t0.elapsed());

    Ok(events)
}

/// What the workload phase hands on: the cluster (healed of nothing yet), the workload with
/// its recorded history, the nemesis log, the clients' users, and how long it ran.
struct Driven {
    cluster: Cluster,
    w: Arc<Workload>,
    nlog: Arc<NemesisLog>,
    users: Vec<String>,
    workload_ms: u64,
}

/// Phase 5: the clients and the nemesis together until the deadline, then the nemesis's last
/// fault (or it is stopped where it was, and the run says so).
async fn drive(
    cfg: &RunConfig,
    kind: Kind,
    cluster: Cluster,
    events: &[EventUnderTest],
    faults: Vec<nemesis::Fault>,
    keys: &testkit::Tokens,
    notes: &mut Vec<String>,
) -> Result<Driven> {
    let started = Instant::now();
    let w = Arc::new(Workload {
        kind,
        events: events.to_vec(),
        event_seconds: cfg.event_seconds,
        nodes: cluster.directory(),
        clients: cfg.clients,
        hold_ms: cfg.hold_seconds * 1000,
        op_timeout: Duration::from_millis(cfg.op_timeout_ms),
        history: Default::default(),
        reads: Default::default(),
        queue: Default::default(),
        waitlist: Default::default(),
        check_browse_reads: cfg.check_browse_reads,
        started,
        deadline: started + Duration::from_secs(cfg.time_s),
    });
    let users: Vec<String> = (0..cfg.clients).map(|c| format!("jepsen-user-{c}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, user) in users.iter().enumerate() {
        let token = keys.mint(user, false, TOKEN_TTL_S);
        let seed = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(c as u64 + 1);
        tasks.spawn(workload::run_client(w.clone(), c, user.clone(), token, seed));
    }
    let cluster = Arc::new(AsyncMutex::new(cluster));
    let nlog = Arc::new(NemesisLog::default());
    let w2 = w.clone();
    let nemesis_task = tokio::spawn(nemesis::run(
        cluster.clone(),
        faults,
        started,
        started + Duration::from_secs(cfg.time_s),
        move |elapsed| w2.events[w2.event_index_at(elapsed)].id.clone(),
        nlog.clone(),
    ));
    let bar = Arc::new(Progress::new(cfg.time_s, cfg.quiet));
    let progress = {
        let (w, nlog, bar) = (w.clone(), nlog.clone(), bar.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let ops = w.history.snapshot();
                let count = |k| ops.iter().filter(|o| o.kind == k).count();
                bar.tick(
                    started.elapsed().as_secs(),
                    count(crate::OpKind::Invoke),
                    count(crate::OpKind::Ok),
                    count(crate::OpKind::Fail),
                    count(crate::OpKind::Info),
                    &nlog.active().unwrap_or_else(|| "quiet".into()),
                );
            }
        })
    };
    while let Some(r) = tasks.join_next().await {
        r.context("client task panicked")?;
    }
    // Wait for the nemesis (its last fault ends before the deadline), then heal everything.
    let mut finish = NEMESIS_FINISH_WAIT;
    if cfg.nemeses.contains(&NemesisKind::Membership) || cfg.nemeses.contains(&NemesisKind::Corrupt) {
        finish += membership::ACTION_MAX;
    }
    let abort = nemesis_task.abort_handle();
    let nemesis_result = tokio::time::timeout(finish, nemesis_task).await;
    if nemesis_result.is_err() {
        // Stopped where it was (it holds the cluster only while it acts); heal_all below
        // restarts what it left down.
        abort.abort();
        for _ in 0..100 {
            if Arc::strong_count(&cluster) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    progress.abort();
    bar.finish("workload done");
    let cluster = Arc::try_unwrap(cluster).ok().context("cluster still shared")?.into_inner();
    match nemesis_result {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => notes.push(format!("nemesis error: {e:#}")),
        Ok(Err(e)) => notes.push(format!("nemesis task failed: {e}")),
        Err(_) => notes.push("nemesis did not finish in time".into()),
    }
    let workload_ms = started.elapsed().as_millis() as u64;
    let retired = cluster.retired_ids();
    if !retired.is_empty() {
        notes.push(format!("membership: nodes removed {retired:?}; members at the end {:?}", cluster.ids()));
    }
    Ok(Driven { cluster, w, nlog, users, workload_ms })
}

/// Phase 6: heal every fault, then kill -9 (or, on lazy disks, cut the power of) every node
/// and restart it. `Some(why)` if a node could not start again on what its disk kept.
async fn heal_and_restart(
    cfg: &RunConfig,
    cluster: &mut Cluster,
    notes: &mut Vec<String>,
) -> Result<Option<String>> {
    cluster.heal_all()?;
    if cfg.final_restart && cluster.has_disks() {
        eprintln!("final: power cut of every node, and restart");
        let ids = cluster.ids();
        let reports = cluster.power_cut(&ids, false, cfg.seed)?;
        let total = nemesis::sum_reports(reports.iter().map(|(_, r)| r));
        notes.push(format!("final: power cut of every node: {total:?}"));
        for id in ids {
            cluster.restart(id)?;
        }
    } else if cfg.final_restart {
        eprintln!("final: kill -9 and restart of every node");
        for id in cluster.ids() {
            cluster.kill(id);
        }
        for id in cluster.ids() {
            cluster.restart(id)?;
        }
    }
    if let Err(e) = cluster.wait_all_ready(READY_TIMEOUT).await {
        if !cluster.has_disks() {
            return Err(e);
        }
        // After power cuts, a node that cannot start on what its disk kept is a finding, not
        // a harness failure: the run is invalid, checked without final reads.
        return Ok(Some(format!("{e:#}")));
    }

    Ok(None)
}

/// How the final reads ended.
enum Ending {
    Read(FinalState),
    /// An event no node could serve after power cuts: the run is invalid (`nodes_recover`).
    Unrecovered(String),
}

/// Phase 7: read every event's seat map from its leader and every user's bookings (with
/// their refund status); for the queue, poll everyone still queued once more; then check
/// that the faults acted ([`faults_acted`]).
#[allow(clippy::too_many_arguments)]
async fn final_reads(
    cfg: &RunConfig,
    kind: Kind,
    cluster: &Cluster,
    events: &[EventUnderTest],
    users: &[String],
    keys: &testkit::Tokens,
    http: &reqwest::Client,
    w: &Workload,
    nlog: &NemesisLog,
    notes: &mut Vec<String>,
) -> Result<Ending> {
    let mut reads = Vec::new();
    for ev in events {
        let leader = match cluster.wait_leader(&ev.id, FINAL_LEADER_WAIT).await {
            Ok(l) => l,
            Err(_) => {
                // A sleeping group wakes on a request, not on `GET /v1/cluster`: one whose
                // remembered leader is gone (removed by the membership nemesis) may wait for
                // one. Say so, read its seat map on every member, and wait again.
                let seen = cluster.group_reports(&ev.id).await;
                for id in cluster.ids() {
                    let url = format!("{}/v1/events/{}/tickets", cluster.node(id).base(), ev.id);
                    let _ = get(http, url, None).await;
                }
                let note = format!(
                    "final: no member led {} within {FINAL_LEADER_WAIT:?} of the restart (members' (leader, state): \
                     {seen:?}); woken by a seat-map read on every member",
                    ev.id
                );
                eprintln!("{note}");
                notes.push(note);
                match cluster.wait_leader(&ev.id, Duration::from_secs(30)).await {
                    Ok(l) => l,
                    // On lazy disks an event nobody leads after power cuts is an event whose
                    // replicas lost it: invalid, not a harness failure.
                    Err(e) if cluster.has_disks() => {
                        return Ok(Ending::Unrecovered(format!("{e:#}")));
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        // The seat map and the booking lists are local reads (a replica as it is), and a
        // node just restarted may not have applied every committed entry yet: a write
        // acknowledged a moment before the final restart would read as not done. So first
        // a linearizable read on every replica (a booking lookup: a read index confirmed by
        // the new leader, applied here before it answers), then the local reads.
        if let Err(e) = applied_everywhere(cluster, http, keys, &ev.id).await {
            if cluster.has_disks() {
                return Ok(Ending::Unrecovered(format!("{e:#}")));
            }
            return Err(e);
        }
        let base = cluster.node(leader).base();
        let map = retry("final seat map", Duration::from_secs(30), || async {
            match get(http, format!("{base}/v1/events/{}/tickets", ev.id), None).await {
                Ok((200, b)) => Ok(b),
                Ok((s, b)) => Err(format!("{s} {b}")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        let map = match map {
            Ok(map) => map,
            Err(e) if cluster.has_disks() => {
                return Ok(Ending::Unrecovered(format!("{e:#}")));
            }
            Err(e) => return Err(e),
        };
        for t in map["tickets"].as_array().cloned().unwrap_or_default() {
            let status = match t["status"].as_str() {
                Some("available") => TicketStatus::Available,
                Some("held") => TicketStatus::Held,
                Some("sold") => TicketStatus::Sold,
                other => bail!("final read: unknown status {other:?}"),
            };
            let tid = t["id"].as_str().unwrap_or_default();
            reads.push(FinalRead { ticket: ticket_key(&ev.id, tid), status, booking_id: None });
        }
    }
    // Bookings of every user (gathered from every node by the API).
    let mut booked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut final_bookings: Vec<FinalBooking> = Vec::new();
    for user in users {
        let token = keys.mint(user, false, TOKEN_TTL_S);
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("?limit=100&cursor={c}"),
                None => "?limit=100".into(),
            };
            let url = format!("{}/v1/me/bookings{q}", cluster.node(cluster.ids()[0]).base());
            let page = retry("final bookings", Duration::from_secs(30), || async {
                match get(http, url.clone(), Some(&token)).await {
                    Ok((200, b)) => Ok(b),
                    Ok((s, b)) => Err(format!("{s} {b}")),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await?;
            for b in page["bookings"].as_array().cloned().unwrap_or_default() {
                let (Some(ev), Some(id)) = (b["event_id"].as_str(), b["booking_id"].as_str()) else {
                    continue;
                };
                let status = b["status"].as_str().unwrap_or("confirmed");
                final_bookings.push(FinalBooking {
                    booking_id: id.to_string(),
                    status: status.to_string(),
                    refund_ref: b["refund_ref"].as_str().map(str::to_string),
                });
                // A refunded booking's seats are back on sale; a pending refund's still sold.
                if status == "refunded" {
                    continue;
                }
                for t in b["tickets"].as_array().cloned().unwrap_or_default() {
                    if let Some(t) = t.as_str() {
                        booked.entry(ticket_key(ev, t)).or_default().push(id.to_string());
                    }
                }
            }
            cursor = page["next_cursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
    }
    for r in &mut reads {
        match booked.get(&r.ticket).map(Vec::as_slice) {
            Some([one]) => r.booking_id = Some(one.clone()),
            Some(many) => notes.push(format!("{}: {} bookings list it: {many:?}", r.ticket, many.len())),
            None if r.status == TicketStatus::Sold => {
                notes.push(format!("{}: sold, but no user's bookings list it", r.ticket))
            }
            None => {}
        }
        if r.status != TicketStatus::Sold && booked.contains_key(&r.ticket) {
            notes.push(format!("{}: reads {:?} but a booking lists it", r.ticket, r.status));
        }
    }
    // The queue: poll everyone still queued once more (after the heal and the restart).
    if kind == Kind::Queue {
        for (event, user) in w.queue.still_queued() {
            let token = keys.mint(&user, false, TOKEN_TTL_S);
            let ids = cluster.ids();
            let node = ids[(queue_final_pick(&event, &user) % ids.len() as u64) as usize];
            let base = cluster.node(node).base();
            queue_call(
                http,
                &w.queue,
                &base,
                &token,
                u64::MAX,
                &user,
                node,
                &event,
                QueueFn::Poll,
                Duration::from_secs(10),
            )
            .await;
        }
    }
    faults_acted(cfg, cluster, nlog, notes)?;
    let fin = FinalState {
        capacity: Some(events.len() as u64 * cfg.seats as u64),
        reads,
        counts: None,
        bookings: final_bookings,
    };

    Ok(Ending::Read(fin))
}

/// Wait until every member has applied everything its group committed for `event`: a
/// linearizable read (`GET /v1/bookings/{id}` of a booking id of that event that does not
/// exist: 404, after the read index) on each member.
async fn applied_everywhere(
    cluster: &Cluster,
    http: &reqwest::Client,
    keys: &testkit::Tokens,
    event: &str,
) -> Result<()> {
    let token = keys.mint("jepsen-final-reader", false, TOKEN_TTL_S);
    let key = event.strip_prefix("evt_").unwrap_or(event);
    for id in cluster.ids() {
        let url = format!("{}/v1/bookings/bkg_{key}_0", cluster.node(id).base());
        retry("a linearizable read on every member", Duration::from_secs(30), || async {
            match get(http, url.clone(), Some(&token)).await {
                Ok((404, _)) => Ok(()),
                Ok((s, b)) => Err(format!("{s} {b}")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
    }
    Ok(())
}

/// The faults must have acted on real traffic and data: partitions that dropped no packet,
/// proxies no Raft connection went through, or power cuts that threw nothing away tested
/// nothing, and fail the run.
fn faults_acted(
    cfg: &RunConfig,
    cluster: &Cluster,
    nlog: &NemesisLog,
    notes: &mut Vec<String>,
) -> Result<()> {
    let proof = cluster.traffic_proof();
    let partitioned = nlog.snapshot().iter().any(|e| e.kind == NemesisKind::Partition && e.phase == "start");
    match cluster.mode() {
        NetMode::Proxy if cfg.nodes > 1 && proof.get("raft").copied().unwrap_or(0) == 0 => {
            bail!("no Raft connection went through the link proxies (is the connect shim loaded?): partitions were no-ops")
        }
        NetMode::Netns if partitioned && proof.get("packets_dropped").copied().unwrap_or(0) == 0 => {
            bail!("the partitions dropped no packets: they were no-ops")
        }
        _ => {}
    }
    notes.push(format!("proof the network faults acted on real traffic: {proof:?}"));
    // Power cuts that threw nothing away tested nothing (like partitions that drop nothing).
    let cuts: Vec<_> = nlog
        .snapshot()
        .into_iter()
        .filter(|e| e.kind == NemesisKind::Power && e.phase == "start")
        .filter_map(|e| e.dropped)
        .collect();
    if !cuts.is_empty() {
        let total = nemesis::sum_reports(&cuts);
        if total.bytes_dropped == 0 && total.entries_reverted == 0 {
            bail!("the {} power cuts dropped no unsynced data: they tested nothing", cuts.len());
        }
        notes.push(format!("power: {} cuts during the run dropped {total:?}", cuts.len()));
    }
    Ok(())
}

/// Phase 8: check the history against the final state, and write the run directory
/// (history, reads, nemesis log, final state, results, summary, timelines).
#[allow(clippy::too_many_arguments)]
fn check_and_write(
    cfg: &RunConfig,
    kind: Kind,
    dir: &Path,
    w: &Workload,
    nlog: &NemesisLog,
    fin: &FinalState,
    events: &[EventUnderTest],
    workload_ms: u64,
    mut notes: Vec<String>,
) -> Result<RunOutcome> {
    let ops = w.history.snapshot();
    let check_start = Instant::now();
    let queue_calls = w.queue.snapshot();
    let wait_calls = w.waitlist.snapshot();
    let results = check_run(
        kind,
        &ops,
        fin,
        &queue_calls,
        &wait_calls,
        cfg.skew_ms,
        cfg.hold_seconds * 1000,
        cfg.check_time_max_ms,
    )?;
    let check_ms = check_start.elapsed().as_millis();
    save_jsonl(&ops, std::io::BufWriter::new(std::fs::File::create(dir.join("history.jsonl"))?))?;
    save_jsonl(
        &w.reads.snapshot(),
        std::io::BufWriter::new(std::fs::File::create(dir.join("reads.jsonl"))?),
    )?;
    let nevents = nlog.snapshot();
    write_nemesis_log(dir, &nevents)?;
    if kind == Kind::Queue {
        let mut qj = String::new();
        for c in &queue_calls {
            qj.push_str(&serde_json::to_string(c)?);
            qj.push('\n');
        }
        std::fs::write(dir.join("queue.jsonl"), qj)?;
    }
    if kind == Kind::Waitlist {
        let mut wj = String::new();
        for c in &wait_calls {
            wj.push_str(&serde_json::to_string(c)?);
            wj.push('\n');
        }
        std::fs::write(dir.join("waitlist.jsonl"), wj)?;
    }
    std::fs::write(dir.join("final.json"), serde_json::to_string_pretty(fin)?)?;
    std::fs::write(dir.join("results.json"), results.to_json())?;
    let mut summary = summary_header(cfg);
    summary.push_str(&format!(
        "workload {} ms, {} history events, {} browse reads (in history: {}), {} nemesis actions, check {} ms\n",
        workload_ms,
        ops.len(),
        w.reads.len() / 2,
        cfg.check_browse_reads,
        nevents.len(),
        check_ms
    ));
    summary.push_str(&results.summary());
    if kind == Kind::FlashSale {
        summary.push_str(&sellout_summary(&ops, events, cfg.seats as usize, w));
    }
    if kind == Kind::Queue {
        let count = |f: QueueFn| queue_calls.iter().filter(|c| c.f == f).count();
        let admitted =
            queue_calls.iter().filter(|c| c.state == Some(queue_check::QueueState::Admitted)).count();
        summary.push_str(&format!(
            "queue calls: {} joins, {} polls ({admitted} saw admitted), {} leaves\n",
            count(QueueFn::Join),
            count(QueueFn::Poll),
            count(QueueFn::Leave)
        ));
    }
    if kind == Kind::Waitlist {
        let count = |f: WaitFn| wait_calls.iter().filter(|c| c.f == f).count();
        let offers: std::collections::BTreeSet<&str> = wait_calls
            .iter()
            .filter(|c| c.state == Some(WaitState::Offered))
            .filter_map(|c| c.hold_id.as_deref())
            .collect();
        summary.push_str(&format!(
            "waitlist calls: {} joins, {} polls; {} distinct offers seen\n",
            count(WaitFn::Join),
            count(WaitFn::Poll),
            offers.len()
        ));
    }
    let info = timeline::TimelineInfo {
        title: timeline::run_title(cfg.seed, &cfg.workload, &cfg.nemeses, cfg.nodes, cfg.time_s),
        op_timeout_ms: Some(cfg.op_timeout_ms),
    };
    match timeline::write_png(&dir.join("timeline.png"), &ops, &nevents, started_ms(&ops, &nevents), &info) {
        Ok(written) => notes.extend(written.note),
        Err(e) => notes.push(format!("timeline.png not written: {e:#}")),
    }
    for n in &notes {
        summary.push_str(&format!("note: {n}\n"));
    }
    std::fs::write(dir.join("summary.txt"), &summary)?;
    if let Err(e) = timeline::write_svg(&dir.join("timeline.svg"), &ops, &nevents, started_ms(&ops, &nevents))
    {
        notes.push(format!("timeline not written: {e:#}"));
    }
    eprint!("{summary}");
    if results.valid != Validity::Valid {
        eprintln!("run directory: {}", dir.display());
    }
    Ok(RunOutcome { results, dir: dir.to_path_buf(), notes })
}

/// A run whose nodes did not all start again on their disks after the faults, or whose
/// events no node could serve: `invalid` (`nodes_recover`), with the history checked as far
/// as it goes without final reads.
fn unrecovered(
    cfg: &RunConfig,
    dir: &Path,
    ops: &[crate::Op],
    nevents: &[nemesis::NemesisEvent],
    why: String,
    mut notes: Vec<String>,
) -> Result<RunOutcome> {
    use crate::checker::direct::{CheckName, CheckResult, Violation};
    let fin = FinalState { capacity: None, reads: Vec::new(), counts: None, bookings: Vec::new() };
    // The ticket checks only: with no final poll, the queue's checks have nothing to judge
    // (the waitlist workload's history is still kept from the per-ticket model).
    let kind = match Kind::parse(&cfg.workload) {
        Some(Kind::Waitlist) => Kind::Waitlist,
        _ => Kind::Contention,
    };
    let mut results =
        check_run(kind, ops, &fin, &[], &[], cfg.skew_ms, cfg.hold_seconds * 1000, cfg.check_time_max_ms)?;
    let message = format!("a node did not start again on what its disk kept: {why}");
    results.add_checks(vec![CheckResult {
        check: CheckName::NodesRecover,
        ran: true,
        violations: vec![Violation { check: CheckName::NodesRecover, ticket: None, ops: vec![], message }],
    }]);
    save_jsonl(ops, std::io::BufWriter::new(std::fs::File::create(dir.join("history.jsonl"))?))?;
    write_nemesis_log(dir, nevents)?;
    std::fs::write(dir.join("results.json"), results.to_json())?;
    notes.push("no final reads: a node did not come back (see nodes_recover)".into());
    let mut summary = summary_header(cfg);
    summary.push_str(&results.summary());
    for n in &notes {
        summary.push_str(&format!("note: {n}\n"));
    }
    std::fs::write(dir.join("summary.txt"), &summary)?;
    eprint!("{summary}");
    eprintln!("run directory: {}", dir.display());
    Ok(RunOutcome { results, dir: dir.to_path_buf(), notes })
}

/// `nemesis.jsonl`: one line per nemesis action.
fn write_nemesis_log(dir: &Path, events: &[nemesis::NemesisEvent]) -> Result<()> {
    let mut lines = String::new();
    for e in events {
        lines.push_str(&serde_json::to_string(e)?);
        lines.push('\n');
    }
    std::fs::write(dir.join("nemesis.jsonl"), lines)?;
    Ok(())
}

/// The first line of `summary.txt`.
fn summary_header(cfg: &RunConfig) -> String {
    format!(
        "boxoffice jepsen run: seed {} nodes {} nemesis {:?} workload {} time {} s\n",
        cfg.seed, cfg.nodes, cfg.nemeses, cfg.workload, cfg.time_s
    )
}

/// Every checker over one run's records: the ticket checkers, the queue's for the queue
/// workload (every event of that workload has its queue on), and the waiting list's for
/// the waitlist workload (without the per-ticket model, which cannot see offers).
#[allow(clippy::too_many_arguments)]
pub fn check_run(
    kind: Kind,
    ops: &[crate::Op],
    fin: &FinalState,
    queue_calls: &[queue_check::QueueCall],
    wait_calls: &[waitlist_check::WaitCall],
    skew_ms: u64,
    hold_ms: u64,
    check_time_max_ms: u64,
) -> Result<Results> {
    let config = LinearConfig {
        model: ModelConfig { skew_ms },
        budget: Budget { time_max_ms: 30_000, ..Budget::default() },
        total_time_max_ms: check_time_max_ms,
        hold_ms: Some(hold_ms),
    };
    let mut results = if kind == Kind::Waitlist {
        Results::compute_direct(ops, fin, &config)
    } else {
        Results::compute(ops, fin, &config)
    }
    .context("history malformed (harness bug)")?;
    if kind == Kind::Waitlist {
        results.add_checks(waitlist_check::check_all(wait_calls));
    }
    if kind == Kind::Queue {
        let calls = crate::history::pair_calls(ops).context("history malformed (harness bug)")?;
        let mut queued: Vec<String> =
            ops.iter().filter_map(|o| o.ticket.split_once('/')).map(|(e, _)| e.to_string()).collect();
        queued.extend(queue_calls.iter().map(|c| c.event.clone()));
        queued.sort();
        queued.dedup();
        results.add_checks(queue_check::check_all(
            queue_calls,
            &calls,
            &queued,
            ADMISSION_SECONDS * 1000,
            skew_ms,
        ));
    }
    Ok(results)
}

/// Check a finished run's directory again (e.g. after a checker change): reads
/// `config.json`, `history.jsonl`, `final.json`, `queue.jsonl` and `waitlist.jsonl`; writes
/// nothing.
pub fn recheck(dir: &Path) -> Result<Results> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).with_context(|| format!("read {name}"));
    let cfg: Value = serde_json::from_str(&read("config.json")?)?;
    let kind =
        Kind::parse(cfg["workload"].as_str().unwrap_or("contention")).context("config.json: workload")?;
    let ops =
        crate::history::load_jsonl(std::io::BufReader::new(std::fs::File::open(dir.join("history.jsonl"))?))?;
    let fin: FinalState = serde_json::from_str(&read("final.json")?)?;
    let queue_calls: Vec<queue_check::QueueCall> = match std::fs::read_to_string(dir.join("queue.jsonl")) {
        Ok(text) => text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?,
        Err(_) => Vec::new(),
    };
    let wait_calls: Vec<waitlist_check::WaitCall> = match std::fs::read_to_string(dir.join("waitlist.jsonl"))
    {
        Ok(text) => text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?,
        Err(_) => Vec::new(),
    };
    let skew_ms = cfg["skew_ms"].as_u64().unwrap_or(0);
    let hold_ms = cfg["hold_seconds"].as_u64().unwrap_or(3) * 1000;
    let check_time_max_ms = cfg["check_time_max_ms"].as_u64().unwrap_or(120_000);
    check_run(kind, &ops, &fin, &queue_calls, &wait_calls, skew_ms, hold_ms, check_time_max_ms)
}

/// The body of the `k`-th event of a run.
fn event_body(kind: Kind, k: usize, venue: &str, hold_seconds: u64) -> Value {
    let mut body = json!({
        "name": format!("Jepsen Night {k}"), "type": "concert", "venue_id": venue,
        "starts_at": "2030-01-01T20:00:00Z", "prices": {"GA": 2500}, "currency": "USD",
        "per_user_limit": 50, "hold_seconds": hold_seconds
    });
    match kind {
        // One ticket per buyer per sale.
        Kind::FlashSale => body["per_user_limit"] = json!(1),
        // On sale already (no pre-sale shuffle): the queue is first come, first served.
        Kind::Queue => {
            body["on_sale_at"] = json!("2020-01-01T00:00:00Z");
            body["queue"] = json!({
                "enabled": true, "max_admitted": MAX_ADMITTED, "admission_seconds": ADMISSION_SECONDS
            });
        }
        Kind::Waitlist => body["waitlist_offer_seconds"] = json!(workload::waitlist::OFFER_SECONDS),
        _ => {}
    }
    body
}

/// A fixed node for a final poll (spread over the nodes).
fn queue_final_pick(event: &str, user: &str) -> u64 {
    event.bytes().chain(user.bytes()).fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
}

/// Flash sale: which sales sold out, and how long each took from its start.
fn sellout_summary(ops: &[crate::Op], events: &[EventUnderTest], seats: usize, w: &Workload) -> String {
    let mut times = Vec::new();
    let start_ms = ops.first().map(|o| o.time_ms).unwrap_or(0);
    for (i, ev) in events.iter().enumerate() {
        let confirms: Vec<u64> = ops
            .iter()
            .filter(|o| o.kind == crate::OpKind::Ok && o.f == crate::OpFn::Confirm)
            .filter(|o| o.ticket.starts_with(&format!("{}/", ev.id)))
            .map(|o| o.time_ms)
            .collect();
        if confirms.len() >= seats {
            let sale_start = start_ms + (i as u64) * w.event_seconds * 1000;
            times.push(confirms.iter().max().unwrap().saturating_sub(sale_start));
        }
    }
    times.sort_unstable();
    let p = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    format!(
        "flash sale: {} of {} sales sold out; time to sell out p50 {} ms, max {} ms\n",
        times.len(),
        events.len(),
        p(0.5),
        times.last().copied().unwrap_or(0)
    )
}

fn started_ms(ops: &[crate::Op], nevents: &[nemesis::NemesisEvent]) -> u64 {
    let a = ops.first().map(|o| o.time_ms).unwrap_or(u64::MAX);
    let b = nevents.first().map(|e| e.time_ms - e.offset_ms).unwrap_or(u64::MAX);
    a.min(b)
}

/// Where the run directory goes by default.
pub fn default_out(root: &Path, seed: u64) -> PathBuf {
    let stamp = workload::now_ms();
    root.join(format!("run-{stamp}-seed{seed}"))
}
