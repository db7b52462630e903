//! The boxoffice nodes a run talks to: either N local `boxoffice serve` processes this
//! tool starts on loopback (`--nodes N`), or nodes already running (`--target URL,...`).
//!
//! Owns: [`Nodes`]. Local nodes are started the way `node/tests/common/mod.rs` starts a test
//! cluster: ports picked up front (the `--peers` list needs every Raft address), ids 1..=N,
//! one `--peers` list and `--cluster-secret`, a fresh data directory each, the log of each
//! node in a file beside it; then every node must answer `/readyz` with 200 within
//! [`READY_TIMEOUT`]. Every process this tool started is killed (SIGKILL) when [`Nodes`]
//! drops — at the end of a run, on an error, and on Ctrl-C (main drops the run's future).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The user-token secret of the nodes this tool starts.
pub const AUTH_SECRET: &str = "bench-secret-0123456789abcdef";
/// The secret local nodes present to each other.
pub const CLUSTER_SECRET: &str = "bench-cluster-secret-0123456789abcdef";
/// How long started nodes may take to all answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Most local nodes.
pub const NODES_MAX: usize = 9;
/// Lines of a node's log shown when it does not become ready.
const LOG_TAIL_LINES: usize = 20;
/// The local nodes' `RUST_LOG` (default `warn`), e.g. `info` to see failover steps.
const NODE_LOG_ENV: &str = "BOXOFFICE_BENCH_NODE_LOG";
/// Set: keep the local nodes' data directories and logs after the run (the path is printed).
const KEEP_ENV: &str = "BOXOFFICE_BENCH_KEEP";

pub struct Nodes {
    /// Base URLs, `http://127.0.0.1:P`, in node-id order.
    pub bases: Vec<String>,
    children: Vec<Child>,
    logs: Vec<PathBuf>,
    /// Data directories and logs of local nodes (removed when dropped, after the kills).
    dir: Option<tempfile::TempDir>,
}

impl Nodes {
    /// Nodes already running at `targets` (`host:port` or URLs).
    pub fn running(targets: &[String]) -> Nodes {
        let bases = targets
            .iter()
            .map(|t| {
                if t.starts_with("http") {
                    t.trim_end_matches('/').to_string()
                } else {
                    format!("http://{t}")
                }
            })
            .collect();
        Nodes { bases, children: Vec::new(), logs: Vec::new(), dir: None }
    }

    /// Start `n` local nodes and wait until each is ready.
    pub async fn start(binary: &Path, n: usize, data_parent: &Path) -> anyhow::Result<Nodes> {
        Self::start_with(binary, n, data_parent, &[]).await
    }

    /// [`Nodes::start`], with more flags for every node.
    pub async fn start_with(
        binary: &Path,
        n: usize,
        data_parent: &Path,
        extra_args: &[String],
    ) -> anyhow::Result<Nodes> {
        if n == 0 || n > NODES_MAX {
            bail!("--nodes must be within 1..={NODES_MAX}");
        }
        if !binary.exists() {
            bail!(
                "no boxoffice binary at {} (cargo build --release -p boxoffice, or --binary)",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("boxoffice-bench-").tempdir_in(data_parent)?;
        let ports = testkit::free_ports(2 * n).context("picking loopback ports")?;
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let peers = (0..n).map(|i| format!("{}={}", i + 1, addr(ports[n + i]))).collect::<Vec<_>>().join(",");
        let mut nodes = Nodes { bases: Vec::new(), children: Vec::new(), logs: Vec::new(), dir: None };
        for i in 0..n {
            let data = dir.path().join(format!("node-{}", i + 1));
            std::fs::create_dir_all(&data)?;
            let log_path = dir.path().join(format!("node-{}.log", i + 1));
            let log = std::fs::File::create(&log_path)?;
            let child = Command::new(binary)
                .arg("serve")
                .args([
                    "--node-id",
                    &(i + 1).to_string(),
                    "--http",
                    &addr(ports[i]),
                    "--raft",
                    &addr(ports[n + i]),
                ])
                .arg("--data-dir")
                .arg(&data)
                .args(["--peers", &peers, "--cluster-secret", CLUSTER_SECRET])
                .args(extra_args)
                .env("BOXOFFICE_AUTH_SECRET", AUTH_SECRET)
                .env("RUST_LOG", std::env::var(NODE_LOG_ENV).unwrap_or_else(|_| "warn".into()))
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            nodes.children.push(child);
            nodes.logs.push(log_path);
            nodes.bases.push(format!("http://{}", addr(ports[i])));
        }
        nodes.dir = Some(dir);
        nodes.wait_ready().await?;
        Ok(nodes)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let started = Instant::now();
        for (i, base) in self.bases.clone().iter().enumerate() {
            let left = READY_TIMEOUT.saturating_sub(started.elapsed());
            let child = &mut self.children[i];
            let waited = testkit::wait_ready(&http, base, left, || {
                child.try_wait().ok().flatten().map(|status| status.to_string())
            })
            .await;
            if let Err(e) = waited {
                bail!("node {} {e}; its log:\n{}", i + 1, testkit::log_tail(&self.logs[i], LOG_TAIL_LINES));
            }
        }
        eprintln!("{} local node(s) ready in {:?}", self.bases.len(), started.elapsed());
        Ok(())
    }

    /// The pids of the local nodes, in node-id order (empty for `--target` nodes).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.id()).collect()
    }

    /// kill -9 the local node at `i` (0-based, node-id order) and reap it.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let child = self.children.get_mut(i).context("no such local node")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// kill -9 the local node at `i` and delete its data directory (a lost disk).
    pub fn wipe(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i)?;
        let dir = self.dir.as_ref().context("not a local node")?.path().join(format!("node-{}", i + 1));
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
    }

    /// The pid of the first local node (for its memory), if this tool started it.
    pub fn first_pid(&self) -> Option<u32> {
        self.children.first().map(|c| c.id())
    }

    /// The directory holding the local nodes' data (where the fsync probe writes).
    pub fn data_dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os(KEEP_ENV).is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("{KEEP_ENV}: nodes' data and logs kept in {}", dir.keep().display());
            }
        }
    }
}
