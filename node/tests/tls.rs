//! TLS with real processes on loopback, with the certificates `boxoffice certs` makes:
//!
//! - three nodes with mutual TLS on the peer port (one configured by a config file, two by
//!   flags) form a cluster and sell a ticket;
//! - their peer port answers HTTP/2 only through a TLS handshake with a certificate of the
//!   cluster CA: plain TCP, TLS without a certificate and TLS with another CA's certificate
//!   get no HTTP/2 answer (and the same probe with a right certificate does);
//! - a node whose certificate comes from another CA stays out of the cluster, which forms and
//!   serves without it;
//! - HTTPS on the public port (configured by the environment) answers a client that trusts
//!   `ca.pem`, and not plain HTTP;
//! - a missing peer TLS flag, a missing file, a file that is not PEM and a key of another
//!   certificate each stop `serve` at once with an error naming the flag or file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use common::{binary, small_event, token, Cluster, SECRET};

/// How long a probe of the peer port may take (connect, handshake, first answer).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the foreign node must stay unready after the others are ready.
const FOREIGN_WATCH: Duration = Duration::from_secs(6);
/// How long `serve` may take to refuse a bad configuration.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// `boxoffice certs --out DIR --nodes N`; panics with its output if it fails.
fn certs(dir: &Path, nodes: u32) {
    let out = Command::new(binary())
        .args(["certs", "--nodes", &nodes.to_string(), "--out"])
        .arg(dir)
        .output()
        .expect("run boxoffice certs");
    assert!(out.status.success(), "boxoffice certs failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The three `--peer-tls-*` flags for node `id` with the certificates in `dir`.
fn peer_tls_args(dir: &Path, id: u64) -> Vec<String> {
    let path = |f: String| dir.join(f).display().to_string();
    vec![
        "--peer-tls-ca".into(),
        path("ca.pem".into()),
        "--peer-tls-cert".into(),
        path(format!("node-{id}.pem")),
        "--peer-tls-key".into(),
        path(format!("node-{id}-key.pem")),
    ]
}

/// A rustls client trusting `ca` and presenting `identity` (certificate, key), if any.
fn tls_client(ca: &Path, identity: Option<(&Path, &Path)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The client's HTTP/2 preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Send the HTTP/2 preface over `stream` and read the answer: `Ok` if it starts with a
/// SETTINGS frame (the server speaks HTTP/2 to us), `Err` with what happened otherwise.
async fn h2_answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
) -> Result<(), String> {
    stream.write_all(H2_PREFACE).await.map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut header = [0u8; 9];
    match tokio::time::timeout(PROBE_TIMEOUT, stream.read_exact(&mut header)).await {
        Err(_) => Err("no answer".into()),
        Ok(Err(e)) => Err(format!("read: {e}")),
        // A frame header: 3 bytes of length, then the type (4: SETTINGS).
        Ok(Ok(_)) if header[3] == 0x04 => Ok(()),
        Ok(Ok(_)) => Err(format!("not an HTTP/2 SETTINGS frame: {header:02x?}")),
    }
}

/// Probe the peer port at `addr` over TLS with `connector`: `Ok` if the handshake succeeds
/// and the server answers HTTP/2.
async fn probe_tls(addr: &str, connector: &tokio_rustls::TlsConnector) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio::time::timeout(PROBE_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    h2_answer(tls).await
}

/// Probe the peer port at `addr` in plain text: `Ok` if the server answers HTTP/2.
async fn probe_plain(addr: &str) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    h2_answer(tcp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_with_mutual_tls_form_a_cluster_sell_a_ticket_and_refuse_other_peers() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    certs(&ours, 3);
    certs(&theirs, 1);
    // Node 1 reads its TLS files from a config file, the others from flags.
    let config = dir.path().join("node-1.toml");
    let key = |k: &str, f: &str| format!("{k} = {:?}\n", ours.join(f).display().to_string());
    let text = key("peer_tls_ca", "ca.pem")
        + &key("peer_tls_cert", "node-1.pem")
        + &key("peer_tls_key", "node-1-key.pem");
    std::fs::write(&config, text).unwrap();
    let cluster = Cluster::start_each(3, |id| match id {
        1 => vec!["--config".into(), config.display().to_string()],
        _ => peer_tls_args(&ours, id),
    })
    .await;

    // It serves: an event (through node 2, so the catalog write may cross the peer plane) and
    // a reserve through node 3.
    let event = small_event(&cluster.client(2), 600, 4).await;
    let alice = token("alice", false);
    let hold = cluster
        .client(3)
        .post("/v1/booking/reserve", &alice, json!({"event_id": event, "section": "GA", "quantity": 2}))
        .await;
    assert_eq!(hold.status, 201, "reserve through node 3: {}", hold.body);

    // The peer port speaks HTTP/2 only inside TLS with a certificate of the cluster CA.
    let raft = cluster.node(1).raft.clone();
    let ca = ours.join("ca.pem");
    let right = tls_client(&ca, Some((&ours.join("node-2.pem"), &ours.join("node-2-key.pem"))));
    probe_tls(&raft, &right).await.expect("a peer with the cluster CA's certificate gets HTTP/2");
    let plain = probe_plain(&raft).await;
    assert!(plain.is_err(), "plain HTTP/2 to the peer port was answered");
    let no_cert = probe_tls(&raft, &tls_client(&ca, None)).await;
    assert!(no_cert.is_err(), "TLS without a client certificate was answered");
    // Trusting our CA (so the server's certificate passes) but presenting another CA's.
    let foreign = tls_client(&ca, Some((&theirs.join("node-1.pem"), &theirs.join("node-1-key.pem"))));
    let foreign = probe_tls(&raft, &foreign).await;
    assert!(foreign.is_err(), "TLS with another CA's certificate was answered");
    eprintln!("refused: plain {plain:?}; no certificate {no_cert:?}; other CA {foreign:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_another_cas_certificate_stays_out_of_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    certs(&ours, 3);
    certs(&theirs, 3);
    // Node 3 trusts and presents the other CA: nodes 1 and 2 are a quorum of three without it.
    let mut cluster = Cluster::spawn_each(3, |id| peer_tls_args(if id == 3 { &theirs } else { &ours }, id));
    cluster.wait_ready(1, common::READY_TIMEOUT).await;
    cluster.wait_ready(2, common::READY_TIMEOUT).await;
    let event = small_event(&cluster.client(1), 600, 4).await;
    let hold = cluster
        .client(2)
        .post(
            "/v1/booking/reserve",
            &token("bob", false),
            json!({"event_id": event, "section": "GA", "quantity": 1}),
        )
        .await;
    assert_eq!(hold.status, 201, "reserve without node 3: {}", hold.body);
    let start = Instant::now();
    while start.elapsed() < FOREIGN_WATCH {
        let ready =
            cluster.client(3).try_send("GET", "/readyz", None, None, common::POLL_REQUEST_TIMEOUT).await;
        if let Ok(answer) = &ready {
            assert_ne!(
                answer.status, 200,
                "node 3, with another CA's certificate, became ready: {}",
                answer.body
            );
        }
        assert!(cluster.node(3).is_running(), "node 3 exited");
        tokio::time::sleep(common::POLL_INTERVAL).await;
    }
    assert!(
        common::node_status(&cluster.view(1).await, 3).as_deref() != Some("up"),
        "node 1 sees node 3 up: {}",
        cluster.view(1).await
    );
}

/// A `boxoffice serve` of one node with more environment `env`, reading its stdout for the
/// address.
struct OneNode {
    child: std::process::Child,
    base: String,
}

impl Drop for OneNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_one(data_dir: &Path, env: &[(&str, String)]) -> OneNode {
    let mut child = Command::new(binary())
        .args(["serve", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("BOXOFFICE_AUTH_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn boxoffice serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(base) = line.strip_prefix("boxoffice listening on ") {
                let _ = tx.send(base.trim().to_string());
            }
        }
    });
    let base = rx.recv_timeout(common::START_TIMEOUT).expect("the node printed its address");
    OneNode { child, base }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_on_the_public_port_with_certs_output() {
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    certs(&certs_dir, 1);
    let file = |f: &str| certs_dir.join(f).display().to_string();
    // Through the environment twins this time.
    let node = serve_one(
        &dir.path().join("node"),
        &[
            ("BOXOFFICE_HTTP_TLS_CERT", file("node-1.pem")),
            ("BOXOFFICE_HTTP_TLS_KEY", file("node-1-key.pem")),
        ],
    );
    let addr =
        node.base.strip_prefix("https://").unwrap_or_else(|| panic!("not an https address: {}", node.base));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs_dir.join("ca.pem")).unwrap()).unwrap();
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for base in [format!("https://{addr}"), format!("https://localhost:{}", addr.rsplit(':').next().unwrap())]
    {
        let health =
            trusting.get(format!("{base}/healthz")).send().await.unwrap_or_else(|e| panic!("{base}: {e}"));
        assert_eq!(health.status(), 200, "{base}/healthz");
    }
    // The whole API is there: once ready, an admin makes a venue.
    let client = common::Client { base: node.base.clone(), http: trusting.clone() };
    if let Err(e) = testkit::wait_ready(&trusting, &node.base, common::READY_TIMEOUT, || None).await {
        panic!("the node over HTTPS: {e}");
    }
    let venue = common::venue(&client, &token("admin", true), 10).await;
    assert!(!venue.is_empty());

    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let answered = plain.get(format!("http://{addr}/healthz")).send().await;
    assert!(
        answered.is_err(),
        "plain HTTP to the HTTPS port was answered: {:?}",
        answered.map(|r| r.status())
    );
    // A client that does not trust the dev CA refuses the server.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(untrusting.get(format!("{}/healthz", node.base)).send().await.is_err());
}

/// Run `serve` with `args` (on free ports, in `data_dir`); it must exit non-zero within
/// [`EXIT_TIMEOUT`]. Returns its stderr.
fn refused(data_dir: &Path, args: &[String]) -> String {
    let mut child = Command::new(binary())
        .args(["serve", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("BOXOFFICE_AUTH_SECRET", SECRET)
        .env("RUST_LIB_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn boxoffice serve");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > EXIT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {args:?} still runs after {EXIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "serve {args:?} exited successfully: {stderr}");
    stderr
}

#[test]
fn bad_tls_configuration_stops_serve_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    certs(&certs_dir, 2);
    let file = |f: &str| -> String { certs_dir.join(f).display().to_string() };
    let data = dir.path().join("data");
    let args = |ca: String, cert: String, key: String| -> Vec<String> {
        vec!["--peer-tls-ca".into(), ca, "--peer-tls-cert".into(), cert, "--peer-tls-key".into(), key]
    };

    let two = refused(&data, &args(file("ca.pem"), file("node-1.pem"), String::new())[..4]);
    assert!(two.contains("missing --peer-tls-key"), "{two}");
    let one_http = refused(&data, &["--http-tls-cert".into(), file("node-1.pem")]);
    assert!(one_http.contains("missing --http-tls-key"), "{one_http}");

    let nowhere: PathBuf = dir.path().join("nowhere.pem");
    let missing =
        refused(&data, &args(nowhere.display().to_string(), file("node-1.pem"), file("node-1-key.pem")));
    assert!(
        missing.contains("--peer-tls-ca") && missing.contains(&nowhere.display().to_string()),
        "{missing}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let not_pem =
        refused(&data, &args(file("ca.pem"), garbage.display().to_string(), file("node-1-key.pem")));
    assert!(not_pem.contains(&garbage.display().to_string()) && not_pem.contains("cert"), "{not_pem}");

    let mismatched = refused(&data, &args(file("ca.pem"), file("node-1.pem"), file("node-2-key.pem")));
    assert!(mismatched.contains(&file("node-2-key.pem")), "{mismatched}");

    let https_mismatched = refused(
        &data,
        &["--http-tls-cert".into(), file("node-1.pem"), "--http-tls-key".into(), file("node-2-key.pem")],
    );
    assert!(https_mismatched.contains(&file("node-2-key.pem")), "{https_mismatched}");
    eprintln!("errors:\n{two}\n{missing}\n{not_pem}\n{mismatched}\n{https_mismatched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_peer_plane_runs_inside_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), 4);
    let cluster = Cluster::start_each(4, |id| peer_tls_args(dir.path(), id)).await;
    let event = small_event(&cluster.client(1), 600, 4).await;
    let replicas = common::placement(&cluster.view(1).await)[&event].clone();
    let outsider =
        cluster.ids().into_iter().find(|id| !replicas.contains(id)).expect("a node without a replica");
    // Everything about the event through the node that holds none of it: asked of the
    // replicas over the peer plane, which is inside mutual TLS.
    let bea = token("bea", false);
    let c = cluster.client(outsider);
    let hold =
        c.post("/v1/booking/reserve", &bea, json!({"event_id": event, "section": "GA", "quantity": 1})).await;
    assert_eq!(hold.status, 201, "reserve through node {outsider}: {}", hold.body);
    let booking = c
        .post(
            "/v1/booking/confirm",
            &bea,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(booking.status, 201, "confirm through node {outsider}: {}", booking.body);
    let mine = c.get("/v1/me/bookings", Some(&bea)).await;
    assert_eq!(mine.body["bookings"].as_array().map(Vec::len), Some(1), "{}", mine.body);
}
