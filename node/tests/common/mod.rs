//! Test harness: real `boxoffice serve` processes on loopback with their own data
//! directories, and a small HTTP client. Every process is killed when its handle drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const SECRET: &str = "test-secret-0123456789abcdef";
/// How long a node may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_boxoffice"))
}

pub struct Node {
    pub child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    extra: Vec<(String, String)>,
}

/// Wait until the node at `base` answers `/readyz` with 200 (`testkit::wait_ready`, on a
/// thread of its own: `Node::start` is not async and may run inside a test's runtime).
fn wait_ready_blocking(base: &str) {
    let waited = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(testkit::wait_ready(&reqwest::Client::new(), base, START_TIMEOUT, || None))
        })
        .join()
        .expect("readiness thread")
    });
    if let Err(e) = waited {
        panic!("node at {base}: {e}");
    }
}

impl Node {
    /// Start a node on a free loopback port with data in `data_dir`; returns once it is ready.
    pub fn start(data_dir: &Path) -> Node {
        Self::start_with(data_dir, &[])
    }

    /// Start a node serving HTTP on `http` (a fixed address: a restart in place binds it again).
    pub fn start_on(data_dir: &Path, http: &str) -> Node {
        Self::spawn(data_dir, Vec::new(), http)
    }

    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Node {
        let extra: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(data_dir, extra, "127.0.0.1:0")
    }

    fn spawn(data_dir: &Path, extra: Vec<(String, String)>, http: &str) -> Node {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--http", http, "--raft", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("BOXOFFICE_AUTH_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn boxoffice");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("boxoffice listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let base = rx.recv_timeout(START_TIMEOUT).expect("node printed its address in time");
        wait_ready_blocking(&base);
        Node { child: Some(child), base, data_dir: data_dir.to_path_buf(), extra }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// kill -9, then start again on the same address and data.
    pub fn restart(&mut self) {
        self.kill();
        let http = self.base.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The port may linger briefly; retry until bound.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Self::spawn(&self.data_dir, self.extra.clone(), &http)
            }));
            match result {
                Ok(node) => {
                    *self = node;
                    return;
                }
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_sigterm(c.id());
        c.wait().expect("wait")
    }

    pub fn client(&self) -> Client {
        Client { base: self.base.clone(), http: reqwest::Client::new() }
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn token(user: &str, admin: bool) -> String {
    let out = Command::new(binary())
        .args(["token", "--user", user, "--ttl", "1h"])
        .args(if admin { vec!["--admin"] } else { vec![] })
        .env("BOXOFFICE_AUTH_SECRET", SECRET)
        .output()
        .expect("boxoffice token");
    assert!(out.status.success(), "token failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    async fn read(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body, headers }
    }
}

impl Client {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.timeout(Duration::from_secs(30)).send().await.expect("request sent");
        Answer::read(resp).await
    }

    /// Like [`Client::send`], but a request that gets no answer within `timeout` (or whose
    /// connection fails) is an `Err` instead of a panic: for nodes that may be down.
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Answer, reqwest::Error> {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.timeout(timeout).send().await?;
        Ok(Answer::read(resp).await)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send("GET", path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send("POST", path, Some(token), Some(body), &[]).await
    }
}

/// A small venue (section A: rows 1-2 of 10 seats; GA: 20) and an event there.
/// Returns the event id.
pub async fn small_event(c: &Client, hold_seconds: u64, per_user_limit: u32) -> String {
    let admin = token("admin", true);
    let venue = c
        .post("/v1/venues", &admin, json!({
            "name": "Test Hall", "city": "Springfield", "country": "US", "location": {"lat": 40.0, "lon": -75.0},
            "sections": [
                {"name": "A", "kind": "seated", "rows": [{"name": "1", "seats": 10}, {"name": "2", "seats": 10}]},
                {"name": "GA", "kind": "general", "capacity": 20}
            ]
        }))
        .await;
    assert_eq!(venue.status, 201, "{}", venue.body);
    let event = c
        .post(
            "/v1/events",
            &admin,
            json!({
                "name": "Test Night", "type": "concert", "venue_id": venue.body["id"],
                "starts_at": "2030-01-01T20:00:00Z", "prices": {"A": 5000, "GA": 2500}, "currency": "USD",
                "per_user_limit": per_user_limit, "hold_seconds": hold_seconds
            }),
        )
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    event.body["id"].as_str().unwrap().to_string()
}

/// A venue (section A: rows 1-2 of 10 seats; GA: `ga_capacity`). Returns its id.
pub async fn venue(c: &Client, admin: &str, ga_capacity: u32) -> String {
    let venue = c
        .post("/v1/venues", admin, json!({
            "name": "Test Hall", "city": "Springfield", "country": "US", "location": {"lat": 40.0, "lon": -75.0},
            "sections": [
                {"name": "A", "kind": "seated", "rows": [{"name": "1", "seats": 10}, {"name": "2", "seats": 10}]},
                {"name": "GA", "kind": "general", "capacity": ga_capacity}
            ]
        }))
        .await;
    assert_eq!(venue.status, 201, "{}", venue.body);
    venue.body["id"].as_str().unwrap().to_string()
}

/// An event at a [`venue`], holds of 10 minutes. Returns its id.
pub async fn event_at(c: &Client, admin: &str, venue_id: &str, name: &str, per_user_limit: u32) -> String {
    let event = c
        .post(
            "/v1/events",
            admin,
            json!({
                "name": name, "type": "concert", "venue_id": venue_id,
                "starts_at": "2030-01-01T20:00:00Z", "prices": {"A": 5000, "GA": 2500}, "currency": "USD",
                "per_user_limit": per_user_limit, "hold_seconds": 600
            }),
        )
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    event.body["id"].as_str().unwrap().to_string()
}

// ---- many nodes ------------------------------------------------------------------------
//
// A `Cluster` is N real `boxoffice serve` processes on loopback, formed with one `--peers`
// list. Ports are picked before start (the list needs every Raft address, and a restarted
// node comes back on the same addresses). Each node writes stdout and stderr to its own log
// file; when a test fails, the tail of every log is printed. Every process is killed when
// the `Cluster` drops.

/// The secret the nodes of a test cluster present to each other.
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";
/// How long a started node may take to answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls of a condition that does not hold yet.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long one poll (a `/readyz` or `/v1/cluster` request) may take before it counts as
/// no answer.
pub const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of each node's log printed when a test fails.
pub const LOG_TAIL_LINES: usize = 30;

/// `count` distinct free loopback ports that nothing else is handed while the test runs
/// (`testkit::ports` says why binding `:0` is not enough).
pub fn free_ports(count: usize) -> Vec<u16> {
    testkit::free_ports(count).expect("free loopback ports")
}

/// Poll `probe` until it answers `Ok`, at most `timeout`; on timeout, panic with `what` and
/// the last `Err` the probe gave (what the server said, not just "timed out").
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if start.elapsed() >= timeout => {
                panic!("{what}: not true within {timeout:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

pub struct ClusterNode {
    pub id: u64,
    /// HTTP listen address, `127.0.0.1:P`.
    pub http: String,
    /// Raft listen address, `127.0.0.1:R`.
    pub raft: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// How it finds the cluster: `--peers ...` or `--join ...`.
    membership_args: Vec<String>,
    /// Whether it is started with `--node-id` (a node joining without one gets its id from the
    /// cluster).
    with_node_id: bool,
    /// More flags, after all the others (a later flag wins).
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl ClusterNode {
    pub fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn client(&self) -> Client {
        Client { base: self.base(), http: reqwest::Client::new() }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        std::fs::create_dir_all(&self.data_dir).expect("node data dir");
        let mut log =
            std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open node log");
        use std::io::Write;
        writeln!(log, "---- test harness: starting node {} ----", self.id).expect("write node log");
        let node_id =
            if self.with_node_id { vec!["--node-id".to_string(), self.id.to_string()] } else { vec![] };
        let child = Command::new(binary())
            .arg("serve")
            .args(node_id)
            .args(["--http", &self.http, "--raft", &self.raft])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.membership_args)
            .args(["--cluster-secret", CLUSTER_SECRET])
            .args(&self.extra_args)
            .env("BOXOFFICE_AUTH_SECRET", SECRET)
            .env("RUST_LIB_BACKTRACE", "0")
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("BOXOFFICE_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn,sled=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn boxoffice serve");
        self.child = Some(child);
    }

    /// kill -9 (a no-op if it is not running).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// If the process has exited on its own: its status (and it no longer counts as running).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        testkit::log_tail(&self.log, lines)
    }
}

pub struct Cluster {
    /// Node `id` is `nodes[id - 1]`.
    pub nodes: Vec<ClusterNode>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Start `n` nodes (ids 1..=n) with one `--peers` list and wait until each answers
    /// `/readyz` with 200.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, Vec::new()).await
    }

    /// [`Cluster::start`] with more flags for every node.
    pub async fn start_with(n: usize, extra_args: Vec<String>) -> Cluster {
        Self::start_each(n, |_| extra_args.clone()).await
    }

    /// [`Cluster::start`] with more flags for each node: `extra_args(id)`.
    pub async fn start_each(n: usize, extra_args: impl Fn(u64) -> Vec<String>) -> Cluster {
        let started = Instant::now();
        let mut cluster = Self::spawn_each(n, extra_args);
        for id in cluster.ids() {
            cluster.wait_ready(id, READY_TIMEOUT).await;
        }
        eprintln!("cluster of {n} nodes ready in {:?} ({:?})", started.elapsed(), cluster.peers_arg());
        cluster
    }

    /// Start `n` nodes as [`Cluster::start_each`] does, without waiting for any to be ready.
    pub fn spawn_each(n: usize, extra_args: impl Fn(u64) -> Vec<String>) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2 * n);
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let peers = (0..n).map(|i| format!("{}={}", i + 1, addr(ports[n + i]))).collect::<Vec<_>>().join(",");
        let nodes = (0..n)
            .map(|i| ClusterNode {
                id: i as u64 + 1,
                http: addr(ports[i]),
                raft: addr(ports[n + i]),
                data_dir: dir.path().join(format!("node-{}", i + 1)),
                log: dir.path().join(format!("node-{}.log", i + 1)),
                membership_args: vec!["--peers".into(), peers.clone()],
                with_node_id: true,
                extra_args: extra_args(i as u64 + 1),
                child: None,
            })
            .collect();
        let mut cluster = Cluster { nodes, dir };
        for node in &mut cluster.nodes {
            node.spawn();
        }
        cluster
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Ids of the nodes whose process the harness has running.
    pub fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.is_running()).map(|n| n.id).collect()
    }

    pub fn node(&self, id: u64) -> &ClusterNode {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: u64) -> &mut ClusterNode {
        &mut self.nodes[id as usize - 1]
    }

    pub fn client(&self, id: u64) -> Client {
        self.node(id).client()
    }

    /// kill -9 node `id`.
    pub fn kill(&mut self, id: u64) {
        self.node_mut(id).kill();
    }

    /// kill -9 node `id` if it runs, then start it again with the same addresses, data and
    /// membership flags. Does not wait for it: see [`Cluster::wait_ready`].
    pub fn restart(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.kill();
        node.spawn();
    }

    /// Start one more node, `--join` the HTTP address of node `via`, on fresh ports. Returns
    /// its id. Does not wait for it: see [`Cluster::wait_ready`].
    pub fn join(&mut self, via: u64) -> u64 {
        self.join_with(via, true, Vec::new())
    }

    /// [`Cluster::join`], with or without `--node-id` (without, the cluster picks the next id,
    /// which is the harness's next id too as long as ids were used in order), and more flags.
    pub fn join_with(&mut self, via: u64, with_node_id: bool, extra_args: Vec<String>) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let ports = free_ports(2);
        let mut node = ClusterNode {
            id,
            http: format!("127.0.0.1:{}", ports[0]),
            raft: format!("127.0.0.1:{}", ports[1]),
            data_dir: self.dir.path().join(format!("node-{id}")),
            log: self.dir.path().join(format!("node-{id}.log")),
            membership_args: vec!["--join".into(), self.node(via).http.clone()],
            with_node_id,
            extra_args,
            child: None,
        };
        node.spawn();
        self.nodes.push(node);
        id
    }

    /// kill -9 node `id` and delete its data directory (a lost disk).
    pub fn wipe(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.kill();
        std::fs::remove_dir_all(&node.data_dir).expect("remove the node's data directory");
    }

    /// Start node `id` again (same addresses and data directory) with other membership flags.
    pub fn restart_with(&mut self, id: u64, membership_args: Vec<String>) {
        let node = self.node_mut(id);
        node.kill();
        node.membership_args = membership_args;
        node.spawn();
    }

    /// The `--peers` list the cluster was started with.
    pub fn peers_arg(&self) -> Vec<String> {
        self.nodes[0].membership_args.clone()
    }

    /// Wait until node `id`'s process exits on its own; its exit status and log. Panics if it
    /// still runs after `timeout`.
    pub async fn wait_exit(&mut self, id: u64, timeout: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            let node = self.node_mut(id);
            if let Some(status) = node.exited() {
                return (status, node.log_tail(40));
            }
            if start.elapsed() >= timeout {
                panic!("node {id} still runs after {timeout:?}; its log:\n{}", node.log_tail(60));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Wait until node `id` answers `/readyz` with 200; panic with its log if it exits first
    /// or is not ready in time.
    pub async fn wait_ready(&mut self, id: u64, timeout: Duration) {
        let base = self.node(id).base();
        let node = self.node_mut(id);
        let waited = testkit::wait_ready(&reqwest::Client::new(), &base, timeout, || {
            node.exited().map(|status| status.to_string())
        })
        .await;
        match waited {
            Ok(took) => eprintln!("node {id} ready after {took:?}"),
            Err(e) => panic!("node {id} {e}; its log:\n{}", self.node(id).log_tail(60)),
        }
    }

    /// `GET /v1/cluster` from node `id`, or why not.
    pub async fn try_view(&self, id: u64) -> Result<Value, String> {
        match self.client(id).try_send("GET", "/v1/cluster", None, None, POLL_REQUEST_TIMEOUT).await {
            Ok(a) if a.status == 200 => Ok(a.body),
            Ok(a) => Err(format!("node {id}: GET /v1/cluster answered {} {}", a.status, a.body)),
            Err(e) => Err(format!("node {id}: GET /v1/cluster: {e}")),
        }
    }

    /// `GET /v1/cluster` from node `id`, which must answer 200.
    pub async fn view(&self, id: u64) -> Value {
        self.try_view(id).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The leader of `group`, once a running node that hosts it names a running leader and
    /// that leader's own view agrees.
    pub async fn wait_leader(&self, group_id: &str, timeout: Duration) -> u64 {
        eventually(&format!("group {group_id} has a leader"), timeout, || async move {
            let mut seen = Vec::new();
            for id in self.running() {
                let view = self.try_view(id).await?;
                let Some(g) = group(&view, group_id) else { continue };
                let Some(leader) = g["leader"].as_u64() else {
                    seen.push(format!("node {id}: no leader"));
                    continue;
                };
                if !self.running().contains(&leader) {
                    seen.push(format!("node {id}: leader {leader} (not running)"));
                    continue;
                }
                let theirs = self.try_view(leader).await?;
                match group(&theirs, group_id).map(|g| g["leader"].clone()) {
                    Some(l) if l == json!(leader) => return Ok(leader),
                    other => seen.push(format!("node {id}: leader {leader}, who says {other:?}")),
                }
            }
            Err(if seen.is_empty() { "no running node hosts it".into() } else { seen.join("; ") })
        })
        .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!(
                    "---- node {} (http {}, raft {}): last lines of {} ----\n{}",
                    node.id,
                    node.http,
                    node.raft,
                    node.log.display(),
                    node.log_tail(LOG_TAIL_LINES)
                );
            }
        }
    }
}

/// The group `id` in a `/v1/cluster` view, if that node hosts it.
pub fn group<'a>(view: &'a Value, id: &str) -> Option<&'a Value> {
    view["groups"].as_array()?.iter().find(|g| g["id"] == id)
}

/// A group's members, sorted.
pub fn members(group: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> =
        group["members"].as_array().map(|m| m.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
    ids.sort();
    ids
}

/// A group's voters, sorted, once no membership change is in flight (`None` while one is: the
/// voters are then the old and the new sets together).
pub fn settled_voters(group: &Value) -> Option<Vec<u64>> {
    if group["membership_changing"] != json!(false) {
        return None;
    }
    let mut ids: Vec<u64> =
        group["voters"].as_array().map(|m| m.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
    ids.sort();
    Some(ids)
}

/// The view's `placement`: event id → its replicas (sorted), in event-id order.
pub fn placement(view: &Value) -> std::collections::BTreeMap<String, Vec<u64>> {
    view["placement"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(event, nodes)| {
                    let mut ids: Vec<u64> = nodes
                        .as_array()
                        .map(|n| n.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default();
                    ids.sort();
                    (event.clone(), ids)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A node's `status` in a `/v1/cluster` view (`up`, `down`, `removed`), if listed.
pub fn node_status(view: &Value, id: u64) -> Option<String> {
    view["nodes"].as_array()?.iter().find(|n| n["id"] == id)?["status"].as_str().map(str::to_string)
}

/// A group's `applied_index` in a view, if the node hosts it.
pub fn applied_index(view: &Value, group_id: &str) -> Option<u64> {
    group(view, group_id)?["applied_index"].as_u64()
}
