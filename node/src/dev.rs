//! # `boxoffice dev --nodes N`: a local cluster of real processes
//!
//! For trying the store out on one machine: starts N children of this executable, each a
//! `boxoffice serve` with its own data directory, all formed into one cluster by the same
//! `--peers` list, loads the demo data once, prints where everything is, and stops them all
//! on Ctrl-C or SIGTERM.
//!
//! Layout under `--data-dir` (default `./data/dev`), for node `i` in `1..=N`:
//!
//! | what | where |
//! |---|---|
//! | HTTP | `127.0.0.1:(base + i - 1)` |
//! | Raft | `127.0.0.1:(base + 1000 + i - 1)` |
//! | data | `<data-dir>/node-i/` |
//! | stdout and stderr | `<data-dir>/node-i.log` (appended) |
//! | auth secret (signs JWTs) | `<data-dir>/auth-secret`, so `boxoffice token --data-dir <data-dir>` works |
//! | cluster secret (peers) | `<data-dir>/cluster-secret` |
//! | the layout (N, base port) | `<data-dir>/dev-layout` |
//! | cluster CA and node certificates | `<data-dir>/certs/` (`ca.pem`, `node-i.pem`, `node-i-key.pem`) |
//!
//! Every node runs with `--dev-login`, so the web pages' "sign in as NAME" form works
//! (`POST /v1/dev/token`), and with mutual TLS between peers (`--peer-tls-*`), with the
//! certificates `boxoffice certs` would make, made on first start and reused. With `--https`
//! the public ports serve HTTPS with the same certificates (trust `certs/ca.pem`); nodes ask
//! each other over the peer plane, so any node answers any request either way.
//!
//! Both secrets are made once (mode 0600) and reused, and the layout is checked on reuse:
//! a cluster's Raft addresses are in its stored membership, so the same data directory
//! with another N or base port would not form.
//!
//! The children run in their own process group, so a Ctrl-C in the terminal reaches only
//! `dev`, which then stops every node with SIGTERM (and kills what is left after
//! [`STOP_TIMEOUT`]). A node that dies while the cluster runs is reported with the end of
//! its log and the others keep running: `kill -9` one to watch a failover.
//!
//! Caveat: if `dev` itself is killed with SIGKILL, its children keep running; stop them by
//! the pids it printed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// Most nodes `dev` starts: one digit of node id, and enough for any local experiment.
pub const NODES_MAX: u32 = 9;
/// Node i's Raft port is its HTTP port plus this.
pub const RAFT_PORT_OFFSET: u16 = 1_000;
/// How long all nodes together get to answer `/readyz` with 200; at the limit `dev` stops
/// them and fails, naming the nodes that were not ready and their logs.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the nodes get to exit after SIGTERM; at the limit the rest are killed (SIGKILL).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two checks of the children (readiness while starting, exits while running).
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long one `/readyz` or `/v1/cluster` request may take before it counts as no answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of a node's log shown when it exits unexpectedly.
const LOG_TAIL_LINES: usize = 20;
/// Days the dev CA and certificates are valid (`<data-dir>/certs`; remove it for new ones).
const DEV_CERT_DAYS: u32 = 3_650;
/// Lifetime of the admin token `dev` mints to load the demo data.
const DEMO_ADMIN_TTL_S: u64 = 3_600;

struct DevNode {
    id: u32,
    /// `http` or `https` (`--https`).
    scheme: &'static str,
    http: String,
    raft: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl DevNode {
    fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.http)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(
        &mut self,
        exe: &Path,
        peers: &str,
        auth_secret: &str,
        cluster_secret: &str,
        certs: &Path,
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        {
            use std::io::Write;
            writeln!(log, "---- boxoffice dev: starting node {} ----", self.id)?;
        }
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .args(["--node-id", &self.id.to_string(), "--http", &self.http, "--raft", &self.raft])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--peers", peers])
            .arg("--peer-tls-ca")
            .arg(certs.join("ca.pem"))
            .arg("--peer-tls-cert")
            .arg(certs.join(format!("node-{}.pem", self.id)))
            .arg("--peer-tls-key")
            .arg(certs.join(format!("node-{}-key.pem", self.id)))
            // The web pages' "sign in as NAME" (POST /v1/dev/token): a dev cluster is for trying.
            .arg("--dev-login")
            // Secrets go in the environment, not the arguments, so `ps` does not show them.
            .env("BOXOFFICE_AUTH_SECRET", auth_secret)
            .env("BOXOFFICE_CLUSTER_SECRET", cluster_secret)
            // The flags above say everything; a config file or --join from the caller's
            // environment would make a different cluster.
            .env_remove("BOXOFFICE_CONFIG")
            .env_remove("BOXOFFICE_JOIN")
            .env_remove("BOXOFFICE_HTTP_TLS_CERT")
            .env_remove("BOXOFFICE_HTTP_TLS_KEY")
            // A node that fails to start ends its log with the error, not a backtrace of it
            // (unless the caller asks for those).
            // Plain text in the log files.
            .env("NO_COLOR", "1")
            .env("RUST_LIB_BACKTRACE", std::env::var("RUST_LIB_BACKTRACE").unwrap_or_else(|_| "0".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        if self.scheme == "https" {
            cmd.arg("--http-tls-cert")
                .arg(certs.join(format!("node-{}.pem", self.id)))
                .arg("--http-tls-key")
                .arg(certs.join(format!("node-{}-key.pem", self.id)));
        }
        let child = cmd.spawn().with_context(|| format!("starting node {} ({})", self.id, exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// If the process has exited: its status (and it is no longer tracked).
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    fn log_tail(&self) -> String {
        let tail = testkit::log_tail(&self.log, LOG_TAIL_LINES);
        tail.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
    }
}

/// The children; any still running when this drops (an error path) are killed.
struct Nodes(Vec<DevNode>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for node in &mut self.0 {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

pub async fn run(nodes: u32, data_dir: &Path, base_port: u16, https: bool) -> anyhow::Result<()> {
    if !(1..=NODES_MAX).contains(&nodes) {
        bail!("--nodes must be within 1..={NODES_MAX}, not {nodes}");
    }
    let last_port = u32::from(base_port) + u32::from(RAFT_PORT_OFFSET) + nodes - 1;
    if base_port == 0 || last_port > u32::from(u16::MAX) {
        bail!(
            "--base-port {base_port} leaves no room for {nodes} nodes: HTTP uses base..base+{n}, \
             Raft base+{RAFT_PORT_OFFSET}..base+{RAFT_PORT_OFFSET}+{n}, all within 1..=65535",
            n = nodes - 1
        );
    }
    let mut shutdown = Shutdown::install()?;
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    check_layout(data_dir, nodes, base_port)?;
    let auth_secret = secret_file(&data_dir.join("auth-secret"))?;
    let cluster_secret = secret_file(&data_dir.join("cluster-secret"))?;
    let certs = data_dir.join("certs");
    ensure_certs(&certs, nodes)?;
    let ca_pem =
        std::fs::read(certs.join("ca.pem")).with_context(|| format!("reading {}/ca.pem", certs.display()))?;
    let exe = std::env::current_exe().context("finding the boxoffice executable")?;

    let mut nodes = Nodes(
        (1..=nodes)
            .map(|id| {
                let offset = (id - 1) as u16;
                DevNode {
                    id,
                    scheme: if https { "https" } else { "http" },
                    http: format!("127.0.0.1:{}", base_port + offset),
                    raft: format!("127.0.0.1:{}", base_port + RAFT_PORT_OFFSET + offset),
                    data_dir: data_dir.join(format!("node-{id}")),
                    log: data_dir.join(format!("node-{id}.log")),
                    child: None,
                }
            })
            .collect(),
    );
    for node in &nodes.0 {
        for (kind, addr) in [("HTTP", &node.http), ("Raft", &node.raft)] {
            std::net::TcpListener::bind(addr.as_str()).with_context(|| {
                format!(
                    "node {}'s {kind} address {addr} is not free (another `boxoffice dev` or `serve`?); \
                     stop what uses it or pass --base-port",
                    node.id
                )
            })?;
        }
    }
    let peers = nodes.0.iter().map(|n| format!("{}={}", n.id, n.raft)).collect::<Vec<_>>().join(",");
    for node in &mut nodes.0 {
        node.spawn(&exe, &peers, &auth_secret, &cluster_secret, &certs)?;
    }
    record_layout(data_dir, nodes.0.len() as u32, base_port)?;
    println!("boxoffice dev: started {} node(s); waiting for the cluster to form...", nodes.0.len());

    let outcome = tokio::select! {
        r = run_cluster(&mut nodes.0, data_dir, &exe, &auth_secret, &ca_pem) => r,
        _ = shutdown.wait() => {
            println!("boxoffice dev: stopping");
            Ok(())
        }
    };
    // `run_cluster` only returns on its own with an error; a signal ends it otherwise.
    if let Err(e) = &outcome {
        eprintln!("boxoffice dev: {e:#}");
        eprintln!("boxoffice dev: stopping the nodes");
    }
    stop(&mut nodes.0).await;
    outcome
}

/// Wait for readiness, load the demo data, print the table, then watch the children until
/// the caller's shutdown signal drops this future. Returns only on an error.
async fn run_cluster(
    nodes: &mut [DevNode],
    data_dir: &Path,
    exe: &Path,
    auth_secret: &str,
    ca_pem: &[u8],
) -> anyhow::Result<()> {
    // Trusts the dev CA too, for `--https`.
    let ca = reqwest::Certificate::from_pem(ca_pem).context("the dev CA certificate")?;
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).add_root_certificate(ca).build()?;
    let started = Instant::now();
    wait_ready(&http, nodes).await?;
    println!("boxoffice dev: cluster ready in {:.1} s", started.elapsed().as_secs_f64());

    let first = nodes[0].base();
    let token = api::AuthKeys::new(auth_secret.as_bytes()).mint("dev-admin", true, DEMO_ADMIN_TTL_S);
    match placement(&http, &first).await {
        Ok(p) if p.is_empty() => {
            if let Err(e) = crate::demo::load(&http, &first, &token).await {
                eprintln!(
                    "boxoffice dev: the demo data was not loaded: {e:#}\n  the cluster runs without it; \
                     try `{} demo --http {} --data-dir {}`",
                    exe.display(),
                    nodes[0].http,
                    data_dir.display()
                );
            }
        }
        Ok(p) => {
            println!("boxoffice dev: the catalog already has {} events; not loading the demo data", p.len())
        }
        Err(e) => eprintln!("boxoffice dev: not loading the demo data, the catalog is unknown: {e:#}"),
    }
    let events = placement(&http, &first).await.unwrap_or_default();
    let section = match events.first() {
        Some((id, _)) => first_section(&http, &first, id).await,
        None => None,
    };
    print_table(nodes, data_dir, exe, &events, section.as_deref().unwrap_or("FLOOR"));

    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        for node in nodes.iter_mut() {
            let pid = node.pid();
            if let Some(status) = node.exited() {
                eprintln!(
                    "boxoffice dev: node {} (pid {}) exited: {status}; last lines of {}:\n{}",
                    node.id,
                    pid.unwrap_or_default(),
                    node.log.display(),
                    node.log_tail()
                );
            }
        }
        if nodes.iter().all(|n| n.child.is_none()) {
            bail!("every node has exited");
        }
    }
}

/// Wait for every node's `/readyz` to answer 200, at most [`READY_TIMEOUT`] in all; fail at
/// once if any node exits meanwhile.
async fn wait_ready(http: &reqwest::Client, nodes: &mut [DevNode]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for i in 0..nodes.len() {
        let base = nodes[i].base();
        let mut gone = None;
        let waited =
            testkit::wait_ready(http, &base, deadline.saturating_duration_since(Instant::now()), || {
                let (n, status) =
                    nodes.iter_mut().enumerate().find_map(|(n, node)| Some((n, node.exited()?)))?;
                gone = Some(n);
                Some(status.to_string())
            })
            .await;
        match (waited, gone) {
            (Ok(_), _) => {}
            (Err(e), Some(n)) => {
                let node = &nodes[n];
                bail!("node {} {e}; last lines of {}:\n{}", node.id, node.log.display(), node.log_tail())
            }
            (Err(e), None) => {
                let node = &nodes[i];
                bail!("node {} {e}; last lines of {}:\n{}", node.id, node.log.display(), node.log_tail())
            }
        }
    }
    Ok(())
}

/// The catalog's placement as node 1 sees it: event id → replicas. A server that does not
/// report placement counts as having no events.
async fn placement(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<(String, Vec<u64>)>> {
    let response = http.get(format!("{base}/v1/cluster")).send().await.context("GET /v1/cluster")?;
    let status = response.status();
    if !status.is_success() {
        bail!("GET /v1/cluster answered {status}");
    }
    let view: Value = response.json().await.context("reading /v1/cluster")?;
    let mut events: Vec<(String, Vec<u64>)> = view["placement"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(id, nodes)| {
                    let ids = nodes.as_array().map(|n| n.iter().filter_map(Value::as_u64).collect());
                    (id.clone(), ids.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    events.sort();
    Ok(events)
}

/// The name of the first section of an event's venue, for the example reserve.
async fn first_section(http: &reqwest::Client, base: &str, event: &str) -> Option<String> {
    let page: Value = http.get(format!("{base}/v1/events/{event}")).send().await.ok()?.json().await.ok()?;
    page["venue"]["sections"][0]["name"].as_str().map(str::to_string)
}

fn print_table(nodes: &[DevNode], data_dir: &Path, exe: &Path, events: &[(String, Vec<u64>)], section: &str) {
    let exe = exe.display();
    let dir = data_dir.display();
    println!();
    println!("boxoffice dev: {} node(s), data in {dir}", nodes.len());
    println!("  {:<5} {:<8} {:<24} {:<18} log", "node", "pid", "http", "raft");
    for n in nodes {
        let pid = n.pid().map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        println!("  {:<5} {:<8} {:<24} {:<18} {}", n.id, pid, n.base(), n.raft, n.log.display());
    }
    if !events.is_empty() {
        println!();
        println!("  events (replicas on nodes):");
        for (id, replicas) in events {
            let on = replicas.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            println!("    {id}  {on}");
        }
    }
    let event = events.first().map(|(id, _)| id.as_str()).unwrap_or("$EVENT");
    let first = nodes[0].base();
    let last = nodes[nodes.len() - 1].base();
    let https = nodes[0].scheme == "https";
    // With --https, curl must trust the dev CA.
    let curl = if https { format!("curl -s --cacert {dir}/certs/ca.pem") } else { "curl -s".into() };
    println!();
    println!("  peers: mutual TLS with the dev CA in {dir}/certs (ca.pem, node-i.pem, node-i-key.pem)");
    println!();
    println!("Try (any node answers any request):");
    println!("  {curl} {first}/v1/cluster");
    println!("  {curl} {last}/v1/events/{event}");
    println!("  TOKEN=$({exe} token --data-dir {dir} --user alice)");
    println!(
        "  {curl} -X POST {last}/v1/booking/reserve -H \"Authorization: Bearer $TOKEN\" \
         -H 'Content-Type: application/json' \\\n       -d \"{{\\\"event_id\\\":\\\"{event}\\\",\\\"section\\\":\\\"{section}\\\",\\\"quantity\\\":2}}\""
    );
    if let Some(pid) = nodes.get(1).and_then(DevNode::pid) {
        println!("  kill -9 {pid}    # node 2 dies; the others keep serving (this window reports it)");
    }
    println!("Ctrl-C stops every node.");
}

/// SIGTERM every running node, wait up to [`STOP_TIMEOUT`] for them to exit, kill the rest,
/// and say how each ended.
async fn stop(nodes: &mut [DevNode]) {
    for node in nodes.iter_mut() {
        if let Some(child) = node.child.as_mut() {
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !sent {
                // No `kill` to run (or the process is gone): stop it the hard way.
                let _ = child.kill();
            }
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        for node in nodes.iter_mut() {
            if let Some(status) = node.exited() {
                if status.success() {
                    println!("boxoffice dev: node {} stopped", node.id);
                } else {
                    eprintln!(
                        "boxoffice dev: node {} stopped: {status} (log {})",
                        node.id,
                        node.log.display()
                    );
                }
            }
        }
        if nodes.iter().all(|n| n.child.is_none()) {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in nodes.iter_mut() {
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "boxoffice dev: node {} did not stop within {} s of SIGTERM; killed (log {})",
                node.id,
                STOP_TIMEOUT.as_secs(),
                node.log.display()
            );
        }
    }
}

/// The dev CA and node-1 … node-`nodes` certificates in `certs`: made there (as by
/// `boxoffice certs`) on first start, reused after; an incomplete directory is an error.
fn ensure_certs(certs: &Path, nodes: u32) -> anyhow::Result<()> {
    if !certs.join("ca.pem").exists() {
        crate::tls::make(&crate::tls::CertsOptions {
            out: certs.to_path_buf(),
            names: crate::tls::node_names(nodes),
            hosts: vec!["127.0.0.1".into(), "localhost".into()],
            days: DEV_CERT_DAYS,
            force: false,
        })
        .with_context(|| format!("making the dev certificates in {}", certs.display()))?;
        return Ok(());
    }
    let mut missing = Vec::new();
    for file in std::iter::once("ca.pem".to_string())
        .chain((1..=nodes).flat_map(|i| [format!("node-{i}.pem"), format!("node-{i}-key.pem")]))
    {
        if !certs.join(&file).exists() {
            missing.push(file);
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} lacks {}: remove the directory and `boxoffice dev` makes a new CA and certificates",
            certs.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// The secret in `path`, made there (32 random bytes, hex, mode 0600) if it is not there yet.
fn secret_file(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 16 => return Ok(s.trim().to_string()),
        Ok(_) => bail!("{} holds less than 16 bytes; remove it to make a new secret", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    use std::io::Write;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    Ok(secret)
}

fn layout(nodes: u32, base_port: u16) -> String {
    format!("nodes={nodes} base_port={base_port}")
}

/// Refuse a data directory that `dev` made with another layout.
fn check_layout(data_dir: &Path, nodes: u32, base_port: u16) -> anyhow::Result<()> {
    let path = data_dir.join("dev-layout");
    let layout = layout(nodes, base_port);
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == layout => Ok(()),
        Ok(found) => bail!(
            "{} was made by `boxoffice dev` with {}, not {layout}: its nodes keep their peers' addresses; \
             use the same --nodes and --base-port, or another --data-dir (or remove this one)",
            data_dir.display(),
            found.trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Record the layout once the nodes have started with it (their data now depends on it).
fn record_layout(data_dir: &Path, nodes: u32, base_port: u16) -> anyhow::Result<()> {
    let path = data_dir.join("dev-layout");
    std::fs::write(&path, format!("{}\n", layout(nodes, base_port)))
        .with_context(|| format!("writing {}", path.display()))
}

/// Ctrl-C (SIGINT) or SIGTERM, listened for from [`Shutdown::install`] on, before any
/// child starts: a signal in between would otherwise end `dev` and orphan the children.
struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn install() -> anyhow::Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Shutdown {
                interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
                terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! { _ = self.interrupt.recv() => {}, _ = self.terminate.recv() => {} }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
