//! # boxoffice — the binary
//!
//! `boxoffice serve | token | demo | dev | certs`, as docs/api.md's command line says. Reads configuration
//! once (file, then `BOXOFFICE_*` environment, then flags), opens the node's sled database,
//! starts the store and the HTTP API, and stops gracefully on SIGTERM or Ctrl-C.

mod config;
mod demo;
mod dev;
mod tls;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::info;
use tracing::warn;

use config::{PaymentChoice, ServeFlags};

#[derive(Parser)]
#[command(name = "boxoffice", version, about = "A self-hosted ticket store on Raft and sled")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (a one-node cluster unless --peers or --join say otherwise).
    Serve(Box<ServeFlags>),
    /// Print a JWT for local use.
    Token {
        #[arg(long)]
        user: String,
        #[arg(long)]
        admin: bool,
        /// Lifetime: 1h, 30m, 45s, 2d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[command(flatten)]
        secret: config::AuthSecretArgs,
    },
    /// A local cluster of N real processes with demo data, for trying it out; Ctrl-C stops them all.
    Dev {
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Where the nodes keep their data (one directory per node).
        #[arg(long, default_value = "./data/dev")]
        data_dir: std::path::PathBuf,
        /// HTTP port of node 1; node i listens on base + i - 1 (and Raft on base + 1000 + i - 1).
        #[arg(long, default_value_t = 8080)]
        base_port: u16,
        /// Serve the public port over HTTPS too (with the dev CA's certificates in
        /// <data-dir>/certs); the peer port is mutual TLS either way.
        #[arg(long)]
        https: bool,
    },
    /// Make a cluster CA and node certificates (PEM) for a dev or test cluster: ca.pem,
    /// ca-key.pem, and NAME.pem / NAME-key.pem per node, valid for server and client auth.
    Certs {
        /// Directory to write them into (made, mode 0700, if missing).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Certificates for node-1 … node-N [default: 3].
        #[arg(long, conflicts_with = "names")]
        nodes: Option<u32>,
        /// Certificates for these names instead (comma-separated): NAME.pem, NAME-key.pem.
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// IP addresses and DNS names every node certificate is valid for (comma-separated):
        /// each address peers dial and clients use.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
        hosts: Vec<String>,
        /// Days the CA and the certificates are valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace files that exist (a new CA: every node needs its new certificate).
        #[arg(long)]
        force: bool,
    },
    /// Load sample venues, performers and events into a running node.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        #[command(flatten)]
        secret: config::AuthSecretArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(flags) => {
            let config = flags.resolve()?;
            init_tracing();
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config))
        }
        Command::Token { user, admin, ttl, secret } => {
            if user.is_empty() || user.len() > api::auth::USER_ID_BYTES_MAX {
                anyhow::bail!(
                    "--user must be 1..={} bytes (the server refuses a token for {user:?})",
                    api::auth::USER_ID_BYTES_MAX
                );
            }
            let secret = secret.read()?;
            let ttl = config::parse_ttl(&ttl)?;
            println!("{}", api::AuthKeys::new(secret.as_bytes()).mint(&user, admin, ttl));
            Ok(())
        }
        Command::Dev { nodes, data_dir, base_port, https } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(dev::run(nodes, &data_dir, base_port, https)),
        Command::Certs { out, nodes, names, hosts, days, force } => {
            let names = if names.is_empty() { tls::node_names(nodes.unwrap_or(3)) } else { names };
            let written = tls::make(&tls::CertsOptions { out, names, hosts, days, force })?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Demo { http, secret } => {
            let secret = secret.read()?;
            let token = api::AuthKeys::new(secret.as_bytes()).mint("demo-admin", true, 3_600);
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(demo::load(
                &reqwest::Client::new(),
                &http,
                &token,
            ))
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error,sled=warn"));
    // Colours only on a terminal: logs sent to a file or a pipe stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // A span that is enabled (the debug spans of the booking writes and of apply, when asked
    // for) logs one line when it closes, with its fields and how long it took.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
}

async fn serve(config: config::ServeConfig) -> anyhow::Result<()> {
    // Read and check the TLS files before anything else: a wrong path or a key of another
    // certificate is an operator's mistake, said at once with the file's name.
    let peer_tls = config.peer_tls.as_ref().map(tls::load_peer_tls).transpose()?;
    let http_tls = config.http_tls.as_ref().map(tls::load_http_tls).transpose()?;
    if peer_tls.is_none() && (!config.peers.is_empty() || config.join.is_some()) {
        tracing::warn!("no --peer-tls-*: Raft RPCs between nodes travel in plain text");
    }
    // Without a cluster secret a node takes Raft RPCs and peer requests from anyone who can
    // reach its peer port; with peers that is an operator's mistake, refused before anything
    // is written.
    if config.cluster_secret.is_none() && (!config.peers.is_empty() || config.join.is_some()) {
        anyhow::bail!(
            "--peers or --join without --cluster-secret: the nodes would take Raft RPCs from anyone who can \
             reach their peer port. Give every node the same secret (--cluster-secret, \
             BOXOFFICE_CLUSTER_SECRET, or cluster_secret in the config file)"
        );
    }
    raft::create_dir_durably(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let secret = config::auth_secret(config.auth_secret.as_deref(), &config.data_dir, true)?;
    // sled's directory: opened here, fsynced by the flusher after every flush (HostConfig::sled_dir).
    let sled_dir = config.data_dir.join("db");
    let db = raft::open_db(&sled_dir, config.cache_capacity_mb * 1024 * 1024)
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    let payments: Arc<dyn cluster::payment::PaymentProvider> = match &config.payment {
        // Its journal keeps refunds known over a crash (see the test provider's doc).
        PaymentChoice::Test => {
            let journal = config.data_dir.join(TEST_PAYMENTS_JOURNAL);
            Arc::new(
                cluster::payment::TestProvider::with_journal(&journal)
                    .with_context(|| format!("opening {}", journal.display()))?,
            )
        }
        PaymentChoice::Stripe { base_url, secret_key } => {
            Arc::new(cluster::payment::StripeProvider::new(cluster::payment::StripeConfig {
                base_url: base_url.clone(),
                secret_key: secret_key.clone(),
                ..Default::default()
            }))
        }
    };
    let listener = tokio::net::TcpListener::bind(&config.http)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http))?;
    let http_addr = listener.local_addr()?.to_string();
    let raft_listener = tokio::net::TcpListener::bind(&config.raft)
        .await
        .with_context(|| format!("binding Raft on {}", config.raft))?;
    let raft_addr = raft_listener.local_addr()?.to_string();
    let auth = api::AuthKeys::new(secret.as_bytes());
    let store_id = raft::Identity::open(&db, Some(&sled_dir))
        .context("reading the data directory's identity")?
        .store_id();
    let node_id = node_identity(&config, store_id, &auth, &raft_addr, &http_addr).await?;
    let options = cluster::StoreOptions {
        node_id,
        raft_addr,
        http_addr: http_addr.clone(),
        peers: config.peers.clone(),
        join: config.join.clone(),
        cluster_secret: config.cluster_secret.clone(),
        peer_tls,
        snapshot_dir: config.data_dir.join("snapshots"),
        dead_after: config.dead_after,
        ..Default::default()
    };
    let options = cluster::StoreOptions {
        raft: raft::HostConfig {
            snapshot_logs_since_last: config.snapshot_every,
            sled_dir: Some(sled_dir.clone()),
            ..options.raft.clone()
        },
        ..options
    };
    let index = search::SearchIndex::open(&config.data_dir.join("search"), search::SearchOptions::default())
        .with_context(|| format!("opening the search index in {}", config.data_dir.display()))?;
    let store =
        cluster::Store::start(options, db.clone(), payments, raft_listener, Some(std::sync::Arc::new(index)))
            .await
            .context("starting the store")?;
    // Histograms with buckets, and `# HELP` for every metric: see `api::metrics_catalog`.
    let metrics = match api::metrics_catalog::install() {
        Ok(handle) => Some(handle),
        Err(e) => {
            warn!(error = %e, "no metrics recorder: /metrics will be empty");
            None
        }
    };
    if let Some(handle) = metrics.clone() {
        // Histogram samples pile up in the recorder until something drains them; without this
        // they are drained only when `/metrics` is scraped, so an unscraped node grew by every
        // request it answered (~11 MB per 650,000 reserves in a heap profile).
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    tokio::spawn(restart_when_storage_recovers(store.clone(), config.data_dir.clone()));
    if config.dev_login {
        warn!("--dev-login: POST /v1/dev/token mints a token for anyone who asks, admin included");
    }
    let state = api::AppState {
        store: store.clone(),
        auth,
        metrics,
        streams: Default::default(),
        dev_login: config.dev_login,
        seat_caches: Default::default(),
    };
    let scheme = if http_tls.is_some() { "https" } else { "http" };
    info!(node = node_id, http = %http_addr, scheme, data = %config.data_dir.display(), "boxoffice serving");
    println!("boxoffice listening on {scheme}://{http_addr}");
    match http_tls {
        Some(tls) => api::serve_tls(listener, tls, state, shutdown_signal()).await?,
        None => api::serve(listener, state, shutdown_signal()).await?,
    }
    info!("shutting down");
    store.shutdown().await;
    db.flush().context("final flush")?;
    Ok(())
}

/// How often a node whose storage failed tries its disk again.
const STORAGE_PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A node whose storage failed (a full disk, a failed fsync) answers 503 to every request
/// (`Store::out_of_service`) and cannot recover in place: sled refuses writes after an IO
/// error, and after a failed fsync the page cache cannot be trusted (a retried fsync may
/// succeed with the data gone). So once a probe write + fsync in the data directory works
/// again, the process replaces itself with a fresh copy (`exec`, same pid, arguments and
/// environment), which recovers from what is on disk like any restart. It never acknowledged
/// what it could not make durable, so nothing acknowledged is lost.
async fn restart_when_storage_recovers(store: cluster::Store, data_dir: std::path::PathBuf) {
    loop {
        tokio::time::sleep(STORAGE_PROBE_EVERY).await;
        let Some(failure) = store.host().storage_failure() else { continue };
        let dir = data_dir.clone();
        let probe = tokio::task::spawn_blocking(move || probe_disk(&dir)).await;
        match probe {
            Ok(Ok(())) => {
                tracing::warn!(%failure, "the disk takes writes again: restarting in place");
                restart_in_place();
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "the disk still refuses writes"),
            Err(e) => tracing::debug!(error = %e, "disk probe task failed"),
        }
    }
}

/// Write, fsync and delete a 64 KiB file in `dir`.
fn probe_disk(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(".disk-probe");
    let result = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&[0u8; 64 * 1024])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result
}

/// Replace this process with a fresh run of the same command line; exits if that fails.
fn restart_in_place() -> ! {
    use std::os::unix::process::CommandExt;
    let err = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec(),
        Err(e) => e,
    };
    tracing::error!(error = %err, "restart in place failed: exiting (a supervisor must restart the node)");
    std::process::exit(75);
}

/// The file in the data directory that keeps the node's id: a data directory belongs to one
/// node, and a node that joined without `--node-id` learns its id only once.
const NODE_ID_FILE: &str = "node_id";
/// The built-in test payment provider's journal of refunds, in the data directory (what a
/// `kill -9` must not make it forget; `node/tests/refund.rs` reads it).
const TEST_PAYMENTS_JOURNAL: &str = "test-payments.jsonl";

/// This node's id: the one its data directory was made for (a different `--node-id` is an
/// error), else `--node-id` (default 1), else — joining with no id — the one the cluster picks.
/// A pristine node with `--join` joins here, before its store starts; a refused join exits.
async fn node_identity(
    config: &config::ServeConfig,
    store_id: u64,
    auth: &api::AuthKeys,
    raft_addr: &str,
    http_addr: &str,
) -> anyhow::Result<u64> {
    let path = config.data_dir.join(NODE_ID_FILE);
    let kept = match std::fs::read_to_string(&path) {
        Ok(text) => {
            Some(text.trim().parse::<u64>().with_context(|| format!("{} is not a node id", path.display()))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let id = match (kept, config.node_id_given) {
        (Some(kept), true) if kept != config.node_id => anyhow::bail!(
            "the data directory {} belongs to node {kept}, not to --node-id {}; start it as node {kept}, or \
             give this node its own empty data directory",
            config.data_dir.display(),
            config.node_id
        ),
        (Some(kept), _) => kept,
        (None, _) => match &config.join {
            Some(via) => {
                let request = cluster::join::JoinRequest {
                    id: config.node_id_given.then_some(config.node_id),
                    raft_addr: raft_addr.to_string(),
                    http_addr: http_addr.to_string(),
                    store_id,
                };
                let token = auth.mint("joining-node", true, 3_600);
                // A node serving HTTPS with a certificate of the cluster CA is trusted.
                let ca = match &config.peer_tls {
                    Some(files) => Some(
                        std::fs::read(&files.ca)
                            .with_context(|| format!("reading --peer-tls-ca {}", files.ca.display()))?,
                    ),
                    None => None,
                };
                cluster::join::join_cluster(via, &token, &request, ca.as_deref())
                    .await
                    .context("joining the cluster")?
            }
            None => config.node_id,
        },
    };
    if kept.is_none() {
        write_durably(&path, format!("{id}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(id)
}

/// Write a small file and make it durable (the file, then its directory).
fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// How often the metrics recorder folds its histogram samples into their buckets.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
