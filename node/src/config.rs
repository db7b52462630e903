//! Configuration, read once: the config file (TOML), then `BOXOFFICE_*` environment
//! variables, then flags — later wins — into one validated [`ServeConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// sled's cache when the config does not set one. sled may use up to ~10x this.
pub const CACHE_CAPACITY_MB_DEFAULT: u64 = 128;

/// The keys a config file may have; each is also a flag and a `BOXOFFICE_*` variable.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub node_id: Option<u64>,
    pub http: Option<String>,
    pub raft: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub peers: Option<String>,
    pub join: Option<String>,
    pub auth_secret: Option<String>,
    pub auth_secret_file: Option<PathBuf>,
    pub cluster_secret: Option<String>,
    pub cluster_secret_file: Option<PathBuf>,
    pub payment: Option<String>,
    pub stripe_base_url: Option<String>,
    pub stripe_secret_key: Option<String>,
    pub stripe_secret_key_file: Option<PathBuf>,
    pub cache_capacity_mb: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub dead_after: Option<String>,
    pub dev_login: Option<bool>,
    pub peer_tls_ca: Option<PathBuf>,
    pub peer_tls_cert: Option<PathBuf>,
    pub peer_tls_key: Option<PathBuf>,
    pub http_tls_cert: Option<PathBuf>,
    pub http_tls_key: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentChoice {
    Test,
    Stripe { base_url: String, secret_key: String },
}

/// Everything `serve` needs, validated.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// `--node-id`, or 1 (but see `node_id_given`).
    pub node_id: u64,
    /// Whether the operator named the id (with `--join` and no id, the cluster picks one).
    pub node_id_given: bool,
    pub http: String,
    pub raft: String,
    pub data_dir: PathBuf,
    pub auth_secret: Option<String>,
    pub cluster_secret: Option<String>,
    pub payment: PaymentChoice,
    pub cache_capacity_mb: u64,
    /// Raft entries between two snapshots of a group (each snapshot is the group's whole state).
    pub snapshot_every: u64,
    /// A node silent this long has its replicas made again elsewhere.
    pub dead_after: std::time::Duration,
    /// Static formation: node id -> Raft address, this node included. Empty: one node.
    pub peers: BTreeMap<u64, String>,
    /// HTTP address of a running node to join through.
    pub join: Option<String>,
    /// `POST /v1/dev/token` mints tokens for any user (admin too): for trying things out only.
    pub dev_login: bool,
    /// Mutual TLS on the peer (Raft) port and to other nodes' peer ports (docs/tls.md).
    pub peer_tls: Option<PeerTlsFiles>,
    /// HTTPS (only) on the public port.
    pub http_tls: Option<HttpTlsFiles>,
}

/// `--peer-tls-ca`, `--peer-tls-cert`, `--peer-tls-key`: PEM files, read at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTlsFiles {
    /// The cluster CA's certificate: peers must present a certificate it signed.
    pub ca: PathBuf,
    /// This node's certificate (chain), presented to peers both as server and as client.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// `--http-tls-cert`, `--http-tls-key`: PEM files, read at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Flags (clap fills them from the command line or the environment).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeFlags {
    /// TOML file with any of the keys below (snake_case).
    #[arg(long, env = "BOXOFFICE_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "BOXOFFICE_NODE_ID")]
    pub node_id: Option<u64>,
    /// HTTP listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "BOXOFFICE_HTTP")]
    pub http: Option<String>,
    /// Raft (peer) listen address [default: 127.0.0.1:9080].
    #[arg(long, env = "BOXOFFICE_RAFT")]
    pub raft: Option<String>,
    /// Data directory [default: ./data].
    #[arg(long, env = "BOXOFFICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Static cluster: ID=RAFT_ADDR,... (this node's id included).
    #[arg(long, env = "BOXOFFICE_PEERS")]
    pub peers: Option<String>,
    /// HTTP address of a running node to join.
    #[arg(long, env = "BOXOFFICE_JOIN")]
    pub join: Option<String>,
    /// Secret that signs JWTs [default: made on first start, kept in the data dir].
    #[arg(long, env = "BOXOFFICE_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// A file holding the auth secret (e.g. a container secret), instead of --auth-secret.
    #[arg(long, env = "BOXOFFICE_AUTH_SECRET_FILE")]
    pub auth_secret_file: Option<PathBuf>,
    /// Secret peers present to each other (the same on every node; needed with --peers or --join).
    #[arg(long, env = "BOXOFFICE_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret, instead of --cluster-secret.
    #[arg(long, env = "BOXOFFICE_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Payment provider: test or stripe [default: test].
    #[arg(long, env = "BOXOFFICE_PAYMENT")]
    pub payment: Option<String>,
    /// Base URL of the Stripe-compatible API [default: https://api.stripe.com].
    #[arg(long, env = "BOXOFFICE_STRIPE_BASE_URL")]
    pub stripe_base_url: Option<String>,
    /// The Stripe-compatible API's secret key (with --payment stripe).
    #[arg(long, env = "BOXOFFICE_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// A file holding the Stripe secret key, instead of --stripe-secret-key.
    #[arg(long, env = "BOXOFFICE_STRIPE_SECRET_KEY_FILE")]
    pub stripe_secret_key_file: Option<PathBuf>,
    /// sled cache size in MiB [default: 128]; sled may use up to ~10x this.
    #[arg(long, env = "BOXOFFICE_CACHE_CAPACITY_MB")]
    pub cache_capacity_mb: Option<u64>,
    /// Raft entries between two snapshots of a group [default: 20000]. Each snapshot writes
    /// the group's whole state; fewer means a longer log to replay at start.
    #[arg(long, env = "BOXOFFICE_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// How long a node may be silent before its event replicas are made again on other nodes
    /// [default: 5m]: 90s, 10m, 1h. At least 10s.
    #[arg(long, env = "BOXOFFICE_DEAD_AFTER")]
    pub dead_after: Option<String>,
    /// Let `POST /v1/dev/token {user}` mint tokens for anyone, admin included (the web pages'
    /// "sign in as"): for trying things out, never for a node others can reach [default: off].
    #[arg(long, env = "BOXOFFICE_DEV_LOGIN", num_args = 0..=1, default_missing_value = "true")]
    pub dev_login: Option<bool>,
    /// The cluster CA's certificate (PEM). With --peer-tls-cert and --peer-tls-key (all three or
    /// none), peers speak mutual TLS and accept only certificates this CA signed [default:
    /// plain]. `boxoffice certs` makes them.
    #[arg(long, env = "BOXOFFICE_PEER_TLS_CA")]
    pub peer_tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM) for the peer port, signed by --peer-tls-ca.
    #[arg(long, env = "BOXOFFICE_PEER_TLS_CERT")]
    pub peer_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --peer-tls-cert.
    #[arg(long, env = "BOXOFFICE_PEER_TLS_KEY")]
    pub peer_tls_key: Option<PathBuf>,
    /// Certificate (PEM) for HTTPS on the public port; with --http-tls-key (both or neither)
    /// the port serves HTTPS only [default: plain HTTP].
    #[arg(long, env = "BOXOFFICE_HTTP_TLS_CERT")]
    pub http_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --http-tls-cert.
    #[arg(long, env = "BOXOFFICE_HTTP_TLS_KEY")]
    pub http_tls_key: Option<PathBuf>,
}

/// The given ones of a group of flags that go together: all (`Some`, in order) or none.
/// Otherwise an error naming the missing ones.
fn all_or_none<const N: usize>(parts: [(&str, Option<PathBuf>); N]) -> anyhow::Result<Option<[PathBuf; N]>> {
    let missing: Vec<&str> = parts.iter().filter(|(_, p)| p.is_none()).map(|(flag, _)| *flag).collect();
    if missing.len() == N {
        return Ok(None);
    }
    if !missing.is_empty() {
        let all: Vec<&str> = parts.iter().map(|(flag, _)| *flag).collect();
        let twin = |flag: &str| {
            let key = flag.trim_start_matches("--").replace('-', "_");
            format!("{flag} (or BOXOFFICE_{}, or `{key}` in the config file)", key.to_uppercase())
        };
        bail!(
            "missing {}: {} go together, all or none",
            missing.iter().map(|f| twin(f)).collect::<Vec<_>>().join(" and "),
            all.join(", ")
        );
    }
    Ok(Some(parts.map(|(_, p)| p.expect("checked above"))))
}

/// Where a setting came from, to name it in an error the way the operator gave it: a flag
/// (or its environment twin), or a key in the config file.
#[derive(Clone, Debug)]
enum Origin<'a> {
    Flag(&'static str),
    File(&'static str, &'a Path),
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(key) => {
                write!(f, "--{} (BOXOFFICE_{})", key.replace('_', "-"), key.to_uppercase())
            }
            Origin::File(key, path) => write!(f, "`{key}` in {}", path.display()),
        }
    }
}

/// A setting's value from the flags (or environment) if given, else from the file, with where
/// it came from.
fn layered<'a, T>(
    flag: Option<T>,
    file: Option<T>,
    key: &'static str,
    path: Option<&'a Path>,
) -> Option<(T, Origin<'a>)> {
    match (flag, file, path) {
        (Some(v), _, _) => Some((v, Origin::Flag(key))),
        (None, Some(v), Some(path)) => Some((v, Origin::File(key, path))),
        (None, Some(v), None) => Some((v, Origin::Flag(key))),
        (None, None, _) => None,
    }
}

/// A secret given as a value or as a file that holds it (`--x` or `--x-file`), not both. The
/// file's trailing newline is not part of the secret.
fn secret(
    value: Option<(String, Origin)>,
    file: Option<(PathBuf, Origin)>,
) -> anyhow::Result<Option<String>> {
    match (value, file) {
        (Some((_, a)), Some((_, b))) => bail!("{a} and {b} both give the secret: give one"),
        (Some((v, _)), None) => Ok(Some(v)),
        (None, Some((path, origin))) => {
            read_secret_file(&path).with_context(|| format!("{origin}")).map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// The secret in `path`, without its trailing newline; an empty file is an error.
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(secret.to_string())
}

impl ServeFlags {
    /// Merge file < environment/flags, apply defaults, validate. An error names the setting
    /// as it was given: the flag and its variable, or the key and the config file.
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let path = self.config.as_deref();
        macro_rules! get {
            ($key:ident) => {
                layered(self.$key, file.$key, stringify!($key), path)
            };
        }
        let node_id_given = self.node_id.or(file.node_id).is_some();
        let node_id = match get!(node_id) {
            Some((0, origin)) => bail!("{origin} must be at least 1"),
            Some((id, _)) => id,
            None => 1,
        };
        let (http, http_origin) = get!(http).unwrap_or(("127.0.0.1:8080".into(), Origin::Flag("http")));
        let peers = match get!(peers) {
            Some((list, origin)) => parse_peers(&list).with_context(|| format!("{origin}"))?,
            None => BTreeMap::new(),
        };
        let (raft, raft_origin) = match (get!(raft), peers.get(&node_id)) {
            (Some((r, origin)), Some(p)) if &r != p => {
                bail!("{origin} is {r}, but this node's entry in --peers says {p}")
            }
            (Some(given), _) => given,
            (None, Some(p)) => (p.clone(), Origin::Flag("peers")),
            (None, None) => ("127.0.0.1:9080".into(), Origin::Flag("raft")),
        };
        if !peers.is_empty() && !peers.contains_key(&node_id) {
            bail!("--peers must list this node's own id ({node_id})");
        }
        for (origin, addr) in [(&http_origin, &http), (&raft_origin, &raft)] {
            addr.parse::<std::net::SocketAddr>()
                .with_context(|| format!("{origin}: {addr:?} is not an IP:PORT address"))?;
        }
        let join = self.join.or(file.join);
        if join.is_some() && !peers.is_empty() {
            bail!("use either --peers (static formation) or --join (add to a running cluster), not both");
        }
        let payment = match get!(payment) {
            None => PaymentChoice::Test,
            Some((p, _)) if p == "test" => PaymentChoice::Test,
            Some((p, _)) if p == "stripe" => PaymentChoice::Stripe {
                base_url: self
                    .stripe_base_url
                    .or(file.stripe_base_url)
                    .unwrap_or_else(|| "https://api.stripe.com".into()),
                secret_key: secret(get!(stripe_secret_key), get!(stripe_secret_key_file))?.context(
                    "--payment stripe needs --stripe-secret-key or --stripe-secret-key-file (or their \
                     BOXOFFICE_* variables or config keys)",
                )?,
            },
            Some((other, origin)) => bail!("{origin} must be test or stripe, not {other:?}"),
        };
        let cache_capacity_mb = match get!(cache_capacity_mb) {
            Some((0, origin)) => bail!("{origin} must be at least 1"),
            Some((mb, _)) => mb,
            None => CACHE_CAPACITY_MB_DEFAULT,
        };
        let snapshot_every = match get!(snapshot_every) {
            Some((n, origin)) if n < 100 => {
                bail!("{origin} must be at least 100, not {n} (a snapshot per few entries would do little else)")
            }
            Some((n, _)) => n,
            None => raft::HostConfig::default().snapshot_logs_since_last,
        };
        let dead_after = match get!(dead_after) {
            Some((text, origin)) => {
                let after =
                    std::time::Duration::from_secs(parse_ttl(&text).with_context(|| format!("{origin}"))?);
                if after < std::time::Duration::from_secs(10) {
                    bail!("{origin} must be at least 10s, not {text} (a node restarting must not lose its replicas)");
                }
                after
            }
            None => cluster::node::DEAD_AFTER_DEFAULT,
        };
        let peer_tls = all_or_none([
            ("--peer-tls-ca", self.peer_tls_ca.or(file.peer_tls_ca)),
            ("--peer-tls-cert", self.peer_tls_cert.or(file.peer_tls_cert)),
            ("--peer-tls-key", self.peer_tls_key.or(file.peer_tls_key)),
        ])?
        .map(|[ca, cert, key]| PeerTlsFiles { ca, cert, key });
        let http_tls = all_or_none([
            ("--http-tls-cert", self.http_tls_cert.or(file.http_tls_cert)),
            ("--http-tls-key", self.http_tls_key.or(file.http_tls_key)),
        ])?
        .map(|[cert, key]| HttpTlsFiles { cert, key });
        Ok(ServeConfig {
            peer_tls,
            http_tls,
            dead_after,
            node_id,
            node_id_given,
            http,
            raft,
            data_dir: self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./data")),
            auth_secret: secret(get!(auth_secret), get!(auth_secret_file))?,
            cluster_secret: secret(get!(cluster_secret), get!(cluster_secret_file))?,
            payment,
            cache_capacity_mb,
            snapshot_every,
            peers,
            join,
            dev_login: self.dev_login.or(file.dev_login).unwrap_or(false),
        })
    }
}

/// `1=127.0.0.1:9081,2=127.0.0.1:9082` into id -> Raft address.
pub fn parse_peers(list: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) =
            entry.split_once('=').with_context(|| format!("--peers entry {entry:?} is not ID=RAFT_ADDR"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("--peers id {id:?} is not a number"))?;
        if id == 0 {
            bail!("--peers ids start at 1");
        }
        let addr = addr.trim().to_string();
        addr.parse::<std::net::SocketAddr>()
            .with_context(|| format!("--peers address {addr:?} is not IP:PORT"))?;
        if peers.insert(id, addr).is_some() {
            bail!("--peers lists id {id} twice");
        }
    }
    Ok(peers)
}

/// Where `token` and `demo` find the auth secret that signs their tokens: given, in a file,
/// or the one a node made in its data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthSecretArgs {
    /// The secret the nodes were given with --auth-secret.
    #[arg(long, env = "BOXOFFICE_AUTH_SECRET", hide_env_values = true, conflicts_with = "auth_secret_file")]
    pub auth_secret: Option<String>,
    /// A file holding it (--auth-secret-file of the nodes).
    #[arg(long, env = "BOXOFFICE_AUTH_SECRET_FILE")]
    pub auth_secret_file: Option<PathBuf>,
    /// Where the node keeps its generated auth secret (when neither is given).
    #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

impl AuthSecretArgs {
    pub fn read(&self) -> anyhow::Result<String> {
        let given = match &self.auth_secret_file {
            Some(path) => {
                Some(read_secret_file(path).context("--auth-secret-file (BOXOFFICE_AUTH_SECRET_FILE)")?)
            }
            None => self.auth_secret.clone(),
        };
        auth_secret(given.as_deref(), &self.data_dir, false)
    }
}

/// The auth secret: given, or read from `<data_dir>/auth-secret`, made there on first start.
pub fn auth_secret(given: Option<&str>, data_dir: &Path, create: bool) -> anyhow::Result<String> {
    if let Some(s) = given {
        if s.len() < 16 {
            bail!("the auth secret must be at least 16 bytes");
        }
        return Ok(s.to_string());
    }
    let path = data_dir.join("auth-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
            let secret = hex::encode(rand::random::<[u8; 32]>());
            write_private(&path, &secret)?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| {
            format!("reading {} (start `boxoffice serve` once, or pass --auth-secret)", path.display())
        }),
    }
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    // And its name: a power cut must not take the secret that signed live tokens.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `1h`, `30m`, `45s`, `2d` or plain seconds.
pub fn parse_ttl(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("bad duration unit in {s:?} (use s, m, h or d)"),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("1h").unwrap(), 3600);
        assert_eq!(parse_ttl("30m").unwrap(), 1800);
        assert_eq!(parse_ttl("45").unwrap(), 45);
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn defaults_and_precedence() {
        let c = ServeFlags::default().resolve().unwrap();
        assert_eq!((c.node_id, c.http.as_str(), c.raft.as_str()), (1, "127.0.0.1:8080", "127.0.0.1:9080"));
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "http = \"127.0.0.1:7000\"\nnode_id = 1\n").unwrap();
        let flags = ServeFlags {
            config: Some(path.clone()),
            http: Some("127.0.0.1:7001".into()),
            ..Default::default()
        };
        assert_eq!(flags.resolve().unwrap().http, "127.0.0.1:7001");
        std::fs::write(&path, "htp = \"x\"\n").unwrap();
        assert!(ServeFlags { config: Some(path), ..Default::default() }.resolve().is_err());
    }

    #[test]
    fn peers_are_parsed_and_checked() {
        let p = parse_peers("1=127.0.0.1:9081, 2=127.0.0.1:9082").unwrap();
        assert_eq!(p.len(), 2);
        assert!(parse_peers("1=127.0.0.1:9081,1=127.0.0.1:9082").is_err());
        assert!(parse_peers("x=127.0.0.1:9081").is_err());
        assert!(parse_peers("1=nowhere").is_err());
        let flags = ServeFlags {
            node_id: Some(2),
            peers: Some("1=127.0.0.1:9081,2=127.0.0.1:9082".into()),
            ..Default::default()
        };
        assert_eq!(flags.resolve().unwrap().raft, "127.0.0.1:9082");
        let missing =
            ServeFlags { node_id: Some(3), peers: Some("1=127.0.0.1:9081".into()), ..Default::default() };
        assert!(missing.resolve().is_err());
        let both = ServeFlags {
            peers: Some("1=127.0.0.1:9081".into()),
            join: Some("127.0.0.1:8080".into()),
            ..Default::default()
        };
        assert!(both.resolve().is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(ServeFlags { http: Some("nope".into()), ..Default::default() }.resolve().is_err());
        assert!(ServeFlags { payment: Some("cash".into()), ..Default::default() }.resolve().is_err());
        assert!(ServeFlags { payment: Some("stripe".into()), ..Default::default() }.resolve().is_err());
        assert!(ServeFlags { snapshot_every: Some(10), ..Default::default() }.resolve().is_err());
    }

    #[test]
    fn dev_login_is_off_unless_asked() {
        assert!(!ServeFlags::default().resolve().unwrap().dev_login);
        assert!(ServeFlags { dev_login: Some(true), ..Default::default() }.resolve().unwrap().dev_login);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "dev_login = true\n").unwrap();
        let from_file = ServeFlags { config: Some(path.clone()), ..Default::default() };
        assert!(from_file.resolve().unwrap().dev_login);
        let flag_wins = ServeFlags { config: Some(path), dev_login: Some(false), ..Default::default() };
        assert!(!flag_wins.resolve().unwrap().dev_login);
    }

    #[test]
    fn tls_flags_go_together() {
        let none = ServeFlags::default().resolve().unwrap();
        assert_eq!((none.peer_tls, none.http_tls), (None, None));
        let two = ServeFlags {
            peer_tls_ca: Some("ca.pem".into()),
            peer_tls_cert: Some("n.pem".into()),
            ..Default::default()
        };
        let message = format!("{:#}", two.resolve().unwrap_err());
        assert!(message.contains("missing --peer-tls-key"), "{message}");
        assert!(!message.contains("missing --peer-tls-ca"), "{message}");
        let one = ServeFlags { http_tls_key: Some("k.pem".into()), ..Default::default() };
        let message = format!("{:#}", one.resolve().unwrap_err());
        assert!(message.contains("missing --http-tls-cert"), "{message}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "peer_tls_ca = \"ca.pem\"\npeer_tls_cert = \"n.pem\"\n").unwrap();
        let mixed =
            ServeFlags { config: Some(path), peer_tls_key: Some("n-key.pem".into()), ..Default::default() };
        let files = mixed.resolve().unwrap().peer_tls.unwrap();
        assert_eq!(files.key, PathBuf::from("n-key.pem"));
        assert_eq!(files.ca, PathBuf::from("ca.pem"));
    }

    /// `config/boxoffice.toml`, the commented sample.
    const SAMPLE: &str = include_str!("../../config/boxoffice.toml");

    /// The keys of `serve` (its flags but `--config`), each with its environment variable.
    fn serve_keys() -> Vec<(String, String)> {
        let cmd = <ServeFlags as clap::Args>::augment_args(clap::Command::new("serve"));
        cmd.get_arguments()
            .filter(|a| a.get_id() != "config")
            .map(|a| {
                let env = a.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
                (a.get_id().to_string(), env)
            })
            .collect()
    }

    /// The sample's commented `#key = value` lines, uncommented; `defaults_only`: just the
    /// ones marked `# default`.
    fn sample_lines(defaults_only: bool) -> Vec<&'static str> {
        SAMPLE
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()) && l.contains(" = "))
            .filter(|l| !defaults_only || l.ends_with("# default"))
            .collect()
    }

    #[test]
    fn every_flag_has_its_environment_twin_and_its_key_in_the_sample() {
        let keys = serve_keys();
        assert!(keys.len() >= 20, "{keys:?}");
        let in_sample: Vec<&str> =
            sample_lines(false).iter().map(|l| l.split(" = ").next().unwrap()).collect();
        for (key, env) in &keys {
            assert_eq!(env, &format!("BOXOFFICE_{}", key.to_uppercase()), "the variable of --{key}");
            assert!(in_sample.contains(&key.as_str()), "`{key}` is not in config/boxoffice.toml");
        }
        // And every key in the sample is a key of the file (deny_unknown_fields) of the right type.
        let all = sample_lines(false).join("\n");
        toml::from_str::<FileConfig>(&all).expect("every example line of the sample is a valid key");
    }

    #[test]
    fn the_sample_shows_the_real_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boxoffice.toml");
        let defaults = sample_lines(true);
        assert!(defaults.len() >= 8, "{defaults:?}");
        std::fs::write(&path, defaults.join("\n")).unwrap();
        let shown = ServeFlags { config: Some(path.clone()), ..Default::default() }.resolve().unwrap();
        let real = ServeFlags::default().resolve().unwrap();
        assert_eq!(
            format!("{shown:?}"),
            format!("{real:?}"),
            "a `# default` in the sample is not the default"
        );
        // The sample as shipped (all commented) loads too.
        std::fs::write(&path, SAMPLE).unwrap();
        ServeFlags { config: Some(path), ..Default::default() }.resolve().expect("the sample loads");
    }

    #[test]
    fn the_deploy_files_use_real_flags_and_variables() {
        let keys = serve_keys();
        let known_flag =
            |f: &str| keys.iter().any(|(k, _)| format!("--{}", k.replace('_', "-")) == f) || f == "--config";
        let known_var = |v: &str| keys.iter().any(|(_, e)| e == v) || v == "BOXOFFICE_CONFIG";
        let serve_args = |argv: &[String]| {
            let at = argv.iter().position(|a| a == "serve").expect("runs `boxoffice serve`");
            for flag in argv[at + 1..].iter().filter(|a| a.starts_with("--")) {
                assert!(known_flag(flag), "{flag} is not a flag of serve: {argv:?}");
            }
        };
        let unit = include_str!("../../deploy/boxoffice.service");
        let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
        serve_args(&exec.split_whitespace().map(String::from).collect::<Vec<_>>());
        for line in unit.lines().map(|l| l.trim_start_matches('#')) {
            if let Some(var) = line.strip_prefix("Environment=").and_then(|e| e.split('=').next()) {
                assert!(var == "RUST_LOG" || known_var(var), "{var} in the unit is not a variable of serve");
            }
        }
        let docker = include_str!("../../deploy/Dockerfile").replace("\\\n", " ");
        let json = |word: &str| -> Vec<String> {
            let line = docker.lines().find_map(|l| l.strip_prefix(word)).unwrap_or_else(|| panic!("{word}"));
            serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{word} is not exec form: {e}"))
        };
        serve_args(&[json("ENTRYPOINT "), json("CMD ")].concat());
        let env = docker.lines().find_map(|l| l.strip_prefix("ENV ")).expect("ENV");
        for var in env
            .split_whitespace()
            .filter_map(|kv| kv.split('=').next())
            .filter(|v| v.starts_with("BOXOFFICE_"))
        {
            assert!(known_var(var), "{var} in the Dockerfile is not a variable of serve");
        }
    }

    #[test]
    fn snapshot_interval_defaults_to_the_hosts_and_can_be_set() {
        let default = ServeFlags::default().resolve().unwrap();
        assert_eq!(default.snapshot_every, raft::HostConfig::default().snapshot_logs_since_last);
        let set = ServeFlags { snapshot_every: Some(5_000), ..Default::default() }.resolve().unwrap();
        assert_eq!(set.snapshot_every, 5_000);
    }
}
