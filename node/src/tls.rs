//! # TLS files: `boxoffice certs` makes them, `serve` reads them
//!
//! `boxoffice certs` makes a cluster CA and node certificates for a dev or test cluster
//! ([`make`]); [`load_peer_tls`] and [`load_http_tls`] read the files `serve` is given into
//! `raft::PeerTls` and `api::HttpTls`, with errors that name the files. See docs/tls.md.
//!
//! `certs` writes into `--out DIR`:
//!
//! | file | what | mode |
//! |---|---|---|
//! | `ca.pem` | the cluster CA's certificate (give it to every node as `--peer-tls-ca`) | 0644 |
//! | `ca-key.pem` | the CA's private key (keep it off the nodes) | 0600 |
//! | `NAME.pem` | a node's certificate, signed by the CA, for server *and* client auth | 0644 |
//! | `NAME-key.pem` | its private key | 0600 |
//!
//! Names are `node-1` … `node-N` (`--nodes N`, default 3) or the given `--names`. Every node
//! certificate carries the same subject alternative names, `--hosts` (default
//! `127.0.0.1,localhost`): an IP address or a DNS name for each address peers and clients
//! dial. Keys are ECDSA P-256, made with rcgen (ring). Nothing is overwritten without
//! `--force`, and nothing is written if any file is in the way.
//!
//! Not a PKI: no revocation lists, no intermediate CA, no renewal (docs/tls.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DistinguishedName;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;

/// Most node certificates one run makes.
pub const NAMES_MAX: usize = 100;
/// Certificates are valid from this long before now, so a peer whose clock is a little behind
/// does not refuse a fresh one.
const NOT_BEFORE_SLACK: time::Duration = time::Duration::hours(1);
/// The CA's common name.
pub const CA_NAME: &str = "boxoffice cluster CA";

/// What `boxoffice certs` makes.
#[derive(Clone, Debug)]
pub struct CertsOptions {
    pub out: PathBuf,
    /// Node names; each gives `NAME.pem` and `NAME-key.pem`.
    pub names: Vec<String>,
    /// Subject alternative names of every node certificate (IPs or DNS names).
    pub hosts: Vec<String>,
    /// Days the CA and the certificates are valid.
    pub days: u32,
    /// Replace files that exist.
    pub force: bool,
}

/// The names `node-1` … `node-n`.
pub fn node_names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("node-{i}")).collect()
}

/// A file to write: its name in `out`, its text, whether it holds a key.
struct Output {
    name: String,
    text: String,
    secret: bool,
}

/// Make the CA and the node certificates and write them; returns the paths written.
pub fn make(options: &CertsOptions) -> anyhow::Result<Vec<PathBuf>> {
    let names = &options.names;
    if names.is_empty() || names.len() > NAMES_MAX {
        bail!("give 1 to {NAMES_MAX} node names (--nodes N or --names a,b,...), not {}", names.len());
    }
    for name in names {
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name.starts_with('.')
        {
            bail!("node name {name:?}: use letters, digits, '-', '_' and '.' (it becomes a file name)");
        }
    }
    if options.hosts.is_empty() {
        bail!("--hosts needs at least one IP address or DNS name");
    }
    for host in &options.hosts {
        if host.parse::<std::net::IpAddr>().is_err() && !is_dns_name(host) {
            bail!("--hosts entry {host:?} is neither an IP address nor a DNS name");
        }
    }
    if options.days == 0 {
        bail!("--days must be at least 1");
    }
    let mut files = vec!["ca.pem".to_string(), "ca-key.pem".to_string()];
    for name in names {
        files.push(format!("{name}.pem"));
        files.push(format!("{name}-key.pem"));
    }
    let mut unique = files.clone();
    unique.sort();
    if let Some(pair) = unique.windows(2).find(|w| w[0] == w[1]) {
        bail!("two outputs would both be {}: choose other --names", pair[0]);
    }
    if !options.force {
        let present: Vec<String> = files
            .iter()
            .map(|f| options.out.join(f))
            .filter(|p| p.symlink_metadata().is_ok())
            .map(|p| p.display().to_string())
            .collect();
        if !present.is_empty() {
            bail!("{} already exist(s); pass --force to replace, or another --out", present.join(", "));
        }
    }

    let now = time::OffsetDateTime::now_utc();
    let (not_before, not_after) =
        (now - NOT_BEFORE_SLACK, now + time::Duration::days(i64::from(options.days)));
    let ca_key = KeyPair::generate().context("making the CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = distinguished_name(CA_NAME);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca = ca_params.self_signed(&ca_key).context("signing the CA certificate")?;
    let mut outputs = vec![
        Output { name: "ca.pem".into(), text: ca.pem(), secret: false },
        Output { name: "ca-key.pem".into(), text: ca_key.serialize_pem(), secret: true },
    ];
    for name in names {
        let key = KeyPair::generate().with_context(|| format!("making {name}'s key"))?;
        let mut params = CertificateParams::new(options.hosts.clone()).with_context(|| {
            format!("--hosts {:?}: not IP addresses or DNS names", options.hosts.join(","))
        })?;
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert =
            params.signed_by(&key, &ca, &ca_key).with_context(|| format!("signing {name}'s certificate"))?;
        outputs.push(Output { name: format!("{name}.pem"), text: cert.pem(), secret: false });
        outputs.push(Output { name: format!("{name}-key.pem"), text: key.serialize_pem(), secret: true });
    }

    create_private_dir(&options.out)?;
    let mut written = Vec::new();
    for output in &outputs {
        let path = options.out.join(&output.name);
        write_file(&path, &output.text, output.secret)?;
        written.push(path);
    }
    Ok(written)
}

/// Letters, digits and inner '-' in labels of 1 to 63 characters, separated by dots.
fn is_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "boxoffice");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// `dir` and its parents; a directory this makes is mode 0700 (it will hold keys).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Write `text` to `path` (replacing a file there), mode 0600 for a key, 0644 otherwise. A
/// replaced file is removed first, so a key never inherits an old file's wider mode.
fn write_file(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("replacing {}", path.display())),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Read the PEM file of `flag`, with an error naming both.
fn read_pem(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}: cannot read it", path.display()))
}

/// The peer TLS of `serve`, read and checked: an error names the files.
pub fn load_peer_tls(files: &crate::config::PeerTlsFiles) -> anyhow::Result<raft::PeerTls> {
    let ca = read_pem("--peer-tls-ca", &files.ca)?;
    let cert = read_pem("--peer-tls-cert", &files.cert)?;
    let key = read_pem("--peer-tls-key", &files.key)?;
    raft::PeerTls::new(ca, cert, key).with_context(|| {
        format!(
            "peer TLS from --peer-tls-ca {}, --peer-tls-cert {}, --peer-tls-key {}",
            files.ca.display(),
            files.cert.display(),
            files.key.display()
        )
    })
}

/// The HTTPS of `serve`, read and checked: an error names the files.
pub fn load_http_tls(files: &crate::config::HttpTlsFiles) -> anyhow::Result<api::HttpTls> {
    let cert = read_pem("--http-tls-cert", &files.cert)?;
    let key = read_pem("--http-tls-key", &files.key)?;
    api::HttpTls::new(&cert, &key).with_context(|| {
        format!("HTTPS from --http-tls-cert {}, --http-tls-key {}", files.cert.display(), files.key.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(out: &Path) -> CertsOptions {
        CertsOptions {
            out: out.to_path_buf(),
            names: node_names(2),
            hosts: vec!["127.0.0.1".into(), "localhost".into()],
            days: 30,
            force: false,
        }
    }

    #[test]
    fn makes_a_ca_and_node_files_that_load_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let written = make(&options(&out)).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            ["ca.pem", "ca-key.pem", "node-1.pem", "node-1-key.pem", "node-2.pem", "node-2-key.pem"]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("ca-key.pem"), 0o600);
            assert_eq!(mode("node-1-key.pem"), 0o600);
            assert_eq!(mode("node-1.pem"), 0o644);
        }
        let files = crate::config::PeerTlsFiles {
            ca: out.join("ca.pem"),
            cert: out.join("node-1.pem"),
            key: out.join("node-1-key.pem"),
        };
        load_peer_tls(&files).unwrap();
        // Another node's key does not go with this certificate.
        let mismatched = crate::config::PeerTlsFiles { key: out.join("node-2-key.pem"), ..files.clone() };
        assert!(load_peer_tls(&mismatched).is_err());
        let before = std::fs::read(out.join("ca.pem")).unwrap();
        let refused = format!("{:#}", make(&options(&out)).unwrap_err());
        assert!(refused.contains("--force"), "{refused}");
        assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), before, "nothing was replaced");
        make(&CertsOptions { force: true, ..options(&out) }).unwrap();
        assert_ne!(std::fs::read(out.join("ca.pem")).unwrap(), before, "--force replaced the CA");
    }

    #[test]
    fn bad_names_and_hosts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = |o: CertsOptions| make(&o).is_err();
        assert!(bad(CertsOptions { names: vec!["../x".into()], ..options(dir.path()) }));
        assert!(bad(CertsOptions { names: vec!["ca".into()], ..options(dir.path()) }));
        assert!(bad(CertsOptions { names: vec![], ..options(dir.path()) }));
        assert!(bad(CertsOptions { hosts: vec!["not a host!".into()], ..options(dir.path()) }));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written");
    }
}
