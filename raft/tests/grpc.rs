//! Hosts in one process talking real gRPC on 127.0.0.1: forwarding to the leader, follower
//! reads, failover after a host and its server stop, a multi-megabyte snapshot to a new learner,
//! cluster-secret authentication, and leader-stamped time.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use common::wait_until;
use openraft::async_runtime::WatchReceiver;
use raft::Group;
use raft::GrpcTransport;
use raft::HostConfig;
use raft::NodeAddr;
use raft::NodeId;
use raft::RaftError;
use raft::RaftHost;
use raft::RpcRequest;
use raft::RpcResponse;
use raft::StateMachine;
use raft::Transport;
use raft::TransportError;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TEST_TIMEOUT: Duration = Duration::from_secs(90);
const SECRET: &str = "test-cluster-secret";
const GID: &str = "evt_grpc";

// ---- A test machine whose commands carry the leader's time ----

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Op {
    /// Add `n` to `key`.
    Add { key: String, n: i64 },
    /// Append `bytes` deterministic pseudo-random bytes to the blob (to make snapshots big).
    Grow { bytes: u32 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Cmd {
    op: Op,
}

/// The machine: counters, the stamp of every applied command, and a blob.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Ledger {
    values: BTreeMap<String, i64>,
    /// `(log index, now_ms)` of every applied command.
    stamps: Vec<(u64, u64)>,
    blob: Vec<u8>,
}

impl StateMachine for Ledger {
    type Command = Cmd;
    /// The counter's new value (0 for `Grow`) and the stamp the command carried.
    type Reply = (i64, u64);
    type Snapshot = Ledger;

    fn apply(&mut self, command: Cmd, now_ms: u64, index: u64) -> (i64, u64) {
        self.stamps.push((index, now_ms));
        match command.op {
            Op::Add { key, n } => {
                let v = self.values.entry(key).or_insert(0);
                *v += n;
                (*v, now_ms)
            }
            Op::Grow { bytes } => {
                let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                self.blob.extend((0..bytes).map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }));
                (0, now_ms)
            }
        }
    }

    fn snapshot(&self) -> Ledger {
        self.clone()
    }

    fn encode_snapshot(snapshot: Ledger) -> Vec<u8> {
        bincode::serde::encode_to_vec(&snapshot, bincode::config::standard()).expect("encode snapshot")
    }

    fn restore(&mut self, bytes: &[u8], _index: u64) -> Result<(), String> {
        let (s, _): (Ledger, usize) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| e.to_string())?;
        *self = s;
        Ok(())
    }
}

fn add(key: &str, n: i64) -> Cmd {
    Cmd { op: Op::Add { key: key.to_string(), n } }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64
}

// ---- Nodes: a host, its gRPC transport and its gRPC server on 127.0.0.1:0 ----

struct Node {
    id: NodeId,
    addr: NodeAddr,
    host: RaftHost<Ledger>,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), RaftError>>>,
    _dir: tempfile::TempDir,
}

/// Start a host whose transport signs with `client_secret` and whose server requires
/// `server_secret`.
async fn start_node(config: HostConfig, client_secret: Option<&str>, server_secret: Option<&str>) -> Node {
    start_node_tls(config, client_secret, server_secret, None).await
}

/// [`start_node`], with mutual TLS on both its transport and its server when `tls` is given.
async fn start_node_tls(
    config: HostConfig,
    client_secret: Option<&str>,
    server_secret: Option<&str>,
    tls: Option<raft::PeerTls>,
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let addr = NodeAddr { raft_addr: local.to_string(), http_addr: String::new() };
    let transport = GrpcTransport::with_config(
        client_secret.map(String::from),
        raft::GrpcConfig { tls: tls.clone(), ..Default::default() },
    )
    .unwrap();
    let db = raft::open_db(dir.path().join("db"), 16 << 20).unwrap();
    let id = config.node_id;
    let factory: raft::MachineFactory<Ledger> = Arc::new(|_| Ledger::default());
    let host = RaftHost::new(config, db, dir.path().join("snapshots"), Arc::new(transport), factory).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server =
        tokio::spawn(raft::serve_grpc(host.clone(), listener, server_secret.map(String::from), tls, async {
            let _ = rx.await;
        }));
    Node { id, addr, host, stop_server: Some(tx), server: Some(server), _dir: dir }
}

impl Node {
    /// Stop the gRPC server (bounded) and shut the host down.
    async fn stop(&mut self) {
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let served =
                tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stops in time");
            served.expect("server task").expect("server ran cleanly");
        }
        self.host.shutdown().await;
    }
}

use raft::testing::{test_config as config, wait_leader};

/// Open `GID` on every node, initialize it on the first with all as voters, and wait until every
/// node knows the leader and the membership.
async fn form_group(nodes: &[Node]) -> BTreeMap<NodeId, Group<Ledger>> {
    let mut groups = BTreeMap::new();
    for n in nodes {
        groups.insert(n.id, n.host.open_group(GID).await.unwrap());
    }
    let members: BTreeMap<NodeId, NodeAddr> = nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
    groups[&nodes[0].id].initialize(members.clone()).await.unwrap();
    for g in groups.values() {
        wait_leader(g, Duration::from_secs(10)).await;
    }
    wait_until("members known everywhere", Duration::from_secs(10), || {
        groups.values().all(|g| g.members() == members)
    })
    .await;
    groups
}

async fn three_nodes(skews: [i64; 3]) -> (Vec<Node>, BTreeMap<NodeId, Group<Ledger>>) {
    let mut nodes = Vec::new();
    for (i, skew) in skews.into_iter().enumerate() {
        nodes.push(start_node(config(i as NodeId + 1, skew), Some(SECRET), Some(SECRET)).await);
    }
    let groups = form_group(&nodes).await;
    (nodes, groups)
}

/// Wait until every group has applied `index` and return their states, which must be equal.
async fn same_state(groups: &BTreeMap<NodeId, Group<Ledger>>, index: u64) -> Ledger {
    let mut states = Vec::new();
    for (id, g) in groups {
        g.wait_applied(index, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("node {id}: {e}"));
        states.push((*id, g.read_local(|s| s.clone())));
    }
    for (id, s) in &states[1..] {
        assert_eq!(s, &states[0].1, "node {id} differs from node {}", states[0].0);
    }
    states.swap_remove(0).1
}

// ---- Tests ----

/// Writes and linearizable reads through followers are forwarded to the leader; all replicas
/// agree; after the leader's host and server stop, the survivors elect a leader and writes
/// through either survivor work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forward_read_and_fail_over_over_grpc() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (mut nodes, mut groups) = three_nodes([0, 0, 0]).await;
        let leader = groups[&1].leader().unwrap();
        let followers: Vec<NodeId> = (1..=3).filter(|id| *id != leader).collect();

        let mut expected = 0;
        for (i, id) in followers.iter().cycle().take(10).enumerate() {
            expected += i as i64;
            let (value, _) = groups[id].write(add("x", i as i64)).await.unwrap();
            assert_eq!(value, expected, "forwarded write {i} through node {id}");
            // Read-your-writes through the same follower.
            let seen = groups[id].read_linearizable(|s| s.values["x"]).await.unwrap();
            assert_eq!(seen, expected, "linearizable read on follower {id}");
        }
        let index = groups[&leader].applied_index();
        let state = same_state(&groups, index).await;
        assert_eq!(state.values["x"], 45);
        assert_eq!(state.stamps.len(), 10);

        // Stop the leader's server and host.
        let started = std::time::Instant::now();
        let pos = nodes.iter().position(|n| n.id == leader).unwrap();
        nodes[pos].stop().await;
        groups.remove(&leader);
        wait_until("a new leader", Duration::from_secs(10), || {
            groups.values().any(|g| g.leader().is_some_and(|l| l != leader))
        })
        .await;
        let new_leader = groups.values().find_map(|g| g.leader().filter(|l| *l != leader)).unwrap();
        assert!(followers.contains(&new_leader));
        eprintln!("new leader {new_leader} after {:?}", started.elapsed());

        // Writes through both survivors (one of them forwards), possibly while the other still
        // names the old leader: the router retries until its deadline.
        for (i, id) in followers.iter().cycle().take(6).enumerate() {
            let (value, _) = groups[id]
                .write(add("x", 100))
                .await
                .unwrap_or_else(|e| panic!("write {i} through survivor {id}: {e}"));
            expected = 45 + 100 * (i as i64 + 1);
            assert_eq!(value, expected);
        }
        let index = groups[&new_leader].applied_index();
        let state = same_state(&groups, index).await;
        assert_eq!(state.values["x"], expected);
        for g in groups.values() {
            assert_eq!(g.read_linearizable(|s| s.values["x"]).await.unwrap(), expected);
        }
        for n in &mut nodes {
            n.stop().await;
        }
    })
    .await
    .expect("test timed out");
}

/// A ~6 MB snapshot goes over gRPC to a learner added after the log was purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn big_snapshot_to_new_learner_over_grpc() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let snap_config =
            |id| HostConfig { snapshot_logs_since_last: 10, max_in_snapshot_log_to_keep: 0, ..config(id, 0) };
        let mut n1 = start_node(snap_config(1), Some(SECRET), Some(SECRET)).await;
        let g1 = n1.host.open_group(GID).await.unwrap();
        g1.initialize(BTreeMap::from([(1, n1.addr.clone())])).await.unwrap();
        wait_leader(&g1, Duration::from_secs(5)).await;

        const MIB: u32 = 1 << 20;
        for _ in 0..6 {
            g1.write(Cmd { op: Op::Grow { bytes: MIB } }).await.unwrap();
        }
        for i in 0..20 {
            g1.write(add("k", i)).await.unwrap();
        }
        let applied = g1.applied_index();
        // A snapshot built while writes were still arriving may stop short of the last entry,
        // and nothing triggers another one once writes stop: ask until it covers everything.
        let metrics = g1.raft().metrics();
        let covered = || {
            let m = metrics.borrow_watched();
            m.snapshot.as_ref().is_some_and(|s| s.index >= applied)
                && m.purged.as_ref().is_some_and(|p| p.index >= 20)
        };
        let started = std::time::Instant::now();
        while !covered() {
            assert!(started.elapsed() < Duration::from_secs(30), "no snapshot + purge up to {applied}");
            g1.raft().trigger().snapshot().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let snapshot_bytes = g1.read_local(|s| Ledger::encode_snapshot(s.snapshot()).len());
        assert!(snapshot_bytes >= 6 * MIB as usize, "snapshot is {snapshot_bytes} bytes");

        // A new node joins as a learner: the entries it needs are gone, so it gets the snapshot.
        let mut n2 = start_node(snap_config(2), Some(SECRET), Some(SECRET)).await;
        let g2 = n2.host.open_group(GID).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), g1.raft().add_learner(2, n2.addr.clone(), true))
            .await
            .expect("learner caught up in time")
            .expect("add_learner");
        g2.wait_applied(applied, Duration::from_secs(20)).await.unwrap();
        let m2 = g2.raft().metrics().borrow_watched().clone();
        assert!(
            m2.snapshot.as_ref().is_some_and(|s| s.index >= 20),
            "the learner installed a snapshot: {:?}",
            m2.snapshot
        );
        assert_eq!(
            g2.read_local(|s| s.clone()),
            g1.read_local(|s| s.clone()),
            "learner state equals leader's"
        );
        // The hosts counted it on each side (a resend after a slow answer would count again),
        // and node 1 counted its one election. The sender counts when the answer is back,
        // which can be just after the learner shows the snapshot applied: wait for it.
        wait_until("the sender counts the snapshot", Duration::from_secs(10), || {
            n1.host.stats().snapshots_sent >= 1
        })
        .await;
        let (s1, s2) = (n1.host.stats(), n2.host.stats());
        assert!(s1.snapshots_sent >= 1 && s2.snapshots_installed >= 1, "{s1:?} {s2:?}");
        assert_eq!((s1.leader_changes, s2.leader_changes), (1, 0), "{s1:?} {s2:?}");
        // It keeps following: a new write reaches it.
        g1.write(add("k", 1000)).await.unwrap();
        g2.wait_applied(g1.applied_index(), Duration::from_secs(10)).await.unwrap();
        assert_eq!(g2.read_local(|s| s.values["k"]), 190 + 1000);
        eprintln!("snapshot of {snapshot_bytes} bytes replicated");
        n2.stop().await;
        n1.stop().await;
    })
    .await
    .expect("test timed out");
}

/// A request without the MAC, or with one made from another secret, is refused with
/// `Unauthenticated`; the right secret gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_secret_is_refused() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut n1 = start_node(config(1, 0), Some(SECRET), Some(SECRET)).await;
        let g1 = n1.host.open_group(GID).await.unwrap();
        g1.initialize(BTreeMap::from([(1, n1.addr.clone())])).await.unwrap();
        wait_leader(&g1, Duration::from_secs(5)).await;

        let missing = GrpcTransport::new(None).unwrap();
        let wrong = GrpcTransport::new(Some("not-the-secret".into())).unwrap();
        let right = GrpcTransport::new(Some(SECRET.into())).unwrap();
        for (name, t) in [("missing", &missing), ("wrong", &wrong)] {
            match t.send(1, &n1.addr, GID, RpcRequest::ReadIndex).await {
                Err(TransportError::Unauthenticated(msg)) => eprintln!("{name} secret refused: {msg}"),
                other => panic!("{name} secret: expected Unauthenticated, got {other:?}"),
            }
            // A forwarded write is refused too, and nothing is applied.
            let command = bincode::serde::encode_to_vec(add("x", 1), bincode::config::standard()).unwrap();
            let rpc = RpcRequest::Propose { commands: vec![raft::CommandBytes(command)] };
            assert!(
                matches!(t.send(1, &n1.addr, GID, rpc).await, Err(TransportError::Unauthenticated(_))),
                "{name} secret: propose must be refused"
            );
        }
        assert!(g1.read_local(|s| s.values.is_empty()), "no refused write was applied");
        match right.send(1, &n1.addr, GID, RpcRequest::ReadIndex).await {
            Ok(RpcResponse::ReadIndex(Ok(index))) => assert!(index >= 1),
            other => panic!("right secret: expected a read index, got {other:?}"),
        }
        // An unknown group with the right secret: refused by the host, not by authentication.
        assert!(matches!(
            right.send(1, &n1.addr, "no_such_group", RpcRequest::ReadIndex).await,
            Err(TransportError::Remote(_))
        ));
        // Nothing listening: refused (liveness takes that as death at once), also while the
        // failed connect is remembered.
        let closed = format!("127.0.0.1:{}", testkit::free_ports(1).unwrap()[0]);
        let nowhere = NodeAddr { raft_addr: closed, http_addr: String::new() };
        for _ in 0..2 {
            let sent = right.send(9, &nowhere, GID, RpcRequest::ReadIndex).await;
            assert!(matches!(sent, Err(TransportError::Refused(_))), "{sent:?}");
        }
        n1.stop().await;
    })
    .await
    .expect("test timed out");
}

/// A node whose secret differs from the others' never joins the replication: the other two
/// form a quorum and replicate among themselves, the odd one applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_with_wrong_secret_cannot_join() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut nodes = vec![
            start_node(config(1, 0), Some(SECRET), Some(SECRET)).await,
            start_node(config(2, 0), Some(SECRET), Some(SECRET)).await,
            start_node(config(3, 0), Some("intruder"), Some("intruder")).await,
        ];
        let mut groups = BTreeMap::new();
        for n in &nodes {
            groups.insert(n.id, n.host.open_group(GID).await.unwrap());
        }
        let members: BTreeMap<NodeId, NodeAddr> = nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
        groups[&1].initialize(members).await.unwrap();
        let leader = wait_leader(&groups[&1], Duration::from_secs(10)).await;
        assert!(leader == 1 || leader == 2, "leader {leader}");
        for i in 0..5 {
            groups[&1].write(add("x", i)).await.unwrap();
        }
        let index = groups[&leader].applied_index();
        groups[&2].wait_applied(index, Duration::from_secs(5)).await.unwrap();
        // Several election timeouts' worth of heartbeats later, node 3 has still heard nothing.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!groups[&3].is_initialized().await, "node 3 must not receive the membership");
        assert_eq!(groups[&3].applied_index(), 0);
        assert_eq!(groups[&3].leader(), None);
        assert!(groups[&3].read_local(|s| s.values.is_empty()));
        // And a write through node 3 cannot reach the group.
        let refused = groups[&3].write(add("x", 1)).await;
        assert!(matches!(refused, Err(raft::WriteError::Unavailable(_))), "got {refused:?}");
        for n in &mut nodes {
            n.stop().await;
        }
    })
    .await
    .expect("test timed out");
}

/// Commands are stamped by the leader with its clock, also when written through a follower.
/// Each node's clock is skewed by a different number of days so the stamp names its stamper.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_writes_carry_the_leaders_time() {
    const DAY_MS: i64 = 86_400_000;
    /// How far a stamp may be from `wall - skew` (test scheduling, not clock error).
    const SLACK_MS: i64 = 60_000;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let skews = [-DAY_MS, -2 * DAY_MS, -3 * DAY_MS];
        let (mut nodes, groups) = three_nodes(skews).await;
        let leader = groups[&1].leader().unwrap();
        // Which node's clock produced `stamp`?
        let stamper = |stamp: u64| -> Option<NodeId> {
            let lag = wall_ms() as i64 - stamp as i64;
            (1..=3).find(|id| (lag - (-skews[*id as usize - 1])).abs() < SLACK_MS)
        };
        for id in 1..=3u64 {
            let (_, stamp) = groups[&id].write(add("x", 1)).await.unwrap();
            assert_eq!(
                stamper(stamp),
                Some(leader),
                "write through node {id} (leader {leader}): stamp {stamp}"
            );
        }
        // Every replica recorded the same stamps.
        let index = groups[&leader].applied_index();
        let state = same_state(&groups, index).await;
        assert_eq!(state.stamps.len(), 3);
        for (i, stamp) in &state.stamps {
            assert_eq!(stamper(*stamp), Some(leader), "entry {i}");
        }
        for n in &mut nodes {
            n.stop().await;
        }
    })
    .await
    .expect("test timed out");
}

/// A peer that received a forwarded write and then lost the connection may have run it: the
/// transport says `Network` (outcome unknown), never `Unreachable`/`Remote`, which would let
/// the group propose it again elsewhere and apply it twice. The peer here is a bare TCP
/// server that speaks just enough HTTP/2 to take the request's HEADERS, then hangs up in one of
/// the ways an overloaded or dying server does (tonic turns the last two into `INTERNAL` and
/// `RESOURCE_EXHAUSTED`, the codes a server would send for "not run").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_the_request_left_is_an_unknown_outcome() {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    /// HTTP/2 error codes (RFC 9113 §7).
    const INTERNAL_ERROR: u8 = 0x2;
    const ENHANCE_YOUR_CALM: u8 = 0xb;
    tokio::time::timeout(TEST_TIMEOUT, async {
        for hang_up in ["close", "rst_stream internal", "goaway calm"] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr =
                NodeAddr { raft_addr: listener.local_addr().unwrap().to_string(), http_addr: String::new() };
            let (got_request, got) = oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut preface = [0u8; 24];
                socket.read_exact(&mut preface).await.unwrap();
                assert_eq!(&preface[..3], b"PRI", "an HTTP/2 client preface");
                // An empty SETTINGS frame: the server's half of the handshake.
                socket.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
                let stream = loop {
                    let mut header = [0u8; 9];
                    socket.read_exact(&mut header).await.unwrap();
                    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
                    let mut body = vec![0u8; len];
                    socket.read_exact(&mut body).await.unwrap();
                    if header[3] == 1 {
                        // HEADERS: the call has left the client.
                        break [header[5] & 0x7f, header[6], header[7], header[8]];
                    }
                };
                got_request.send(()).unwrap();
                let [s0, s1, s2, s3] = stream;
                match hang_up {
                    "rst_stream internal" => {
                        let frame = [0, 0, 4, 3, 0, s0, s1, s2, s3, 0, 0, 0, INTERNAL_ERROR];
                        socket.write_all(&frame).await.unwrap();
                    }
                    "goaway calm" => {
                        let frame = [0, 0, 8, 7, 0, 0, 0, 0, 0, s0, s1, s2, s3, 0, 0, 0, ENHANCE_YOUR_CALM];
                        socket.write_all(&frame).await.unwrap();
                    }
                    _ => {}
                }
                socket.flush().await.unwrap();
                // Keep the socket open a moment so the frame is read before the close.
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
            let t = GrpcTransport::new(None).unwrap();
            let command = bincode::serde::encode_to_vec(add("x", 1), bincode::config::standard()).unwrap();
            let rpc = RpcRequest::Propose { commands: vec![raft::CommandBytes(command)] };
            let sent = t.send(1, &addr, GID, rpc).await;
            got.await.expect("the fake peer saw the request");
            server.await.unwrap();
            eprintln!("{hang_up}: {sent:?}");
            assert!(matches!(sent, Err(TransportError::Network(_))), "{hang_up}: {sent:?}");
        }
    })
    .await
    .expect("test timed out");
}

// ---- Mutual TLS ----

/// A CA (certificate PEM, and the pieces to sign with) made with rcgen.
struct TestCa {
    pem: String,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn test_ca() -> TestCa {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key).unwrap();
    TestCa { pem: cert.pem(), cert, key }
}

/// `PeerTls` trusting `trust` and presenting a certificate for 127.0.0.1 signed by `signer`.
fn peer_tls(trust: &TestCa, signer: &TestCa) -> raft::PeerTls {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &signer.cert, &signer.key).unwrap();
    raft::PeerTls::new(trust.pem.clone().into(), cert.pem().into(), key.serialize_pem().into()).unwrap()
}

/// A server with mutual TLS answers a transport with a certificate of its CA, and no other: not
/// a plain one, not one with another CA's certificate, not one that does not trust the server's
/// CA. The MAC is still checked inside TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_certificates_of_the_cluster_ca() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (ours, theirs) = (test_ca(), test_ca());
        let mut n1 =
            start_node_tls(config(1, 0), Some(SECRET), Some(SECRET), Some(peer_tls(&ours, &ours))).await;
        let g1 = n1.host.open_group(GID).await.unwrap();
        g1.initialize(BTreeMap::from([(1, n1.addr.clone())])).await.unwrap();
        wait_leader(&g1, Duration::from_secs(5)).await;

        let transport = |secret: &str, tls: Option<raft::PeerTls>| {
            GrpcTransport::with_config(Some(secret.into()), raft::GrpcConfig { tls, ..Default::default() })
                .unwrap()
        };
        let right = transport(SECRET, Some(peer_tls(&ours, &ours)));
        match right.send(1, &n1.addr, GID, RpcRequest::ReadIndex).await {
            Ok(RpcResponse::ReadIndex(Ok(index))) => assert!(index >= 1),
            other => panic!("a certificate of the CA: expected a read index, got {other:?}"),
        }
        let wrong_secret = transport("not-the-secret", Some(peer_tls(&ours, &ours)));
        let sent = wrong_secret.send(1, &n1.addr, GID, RpcRequest::ReadIndex).await;
        assert!(matches!(sent, Err(TransportError::Unauthenticated(_))), "wrong secret inside TLS: {sent:?}");
        for (name, t) in [
            ("plain", transport(SECRET, None)),
            ("another CA's certificate", transport(SECRET, Some(peer_tls(&ours, &theirs)))),
            ("not trusting the server", transport(SECRET, Some(peer_tls(&theirs, &theirs)))),
        ] {
            let sent = t.send(1, &n1.addr, GID, RpcRequest::ReadIndex).await;
            assert!(sent.is_err(), "{name}: answered {sent:?}");
            eprintln!("{name}: refused: {sent:?}");
        }
        n1.stop().await;
    })
    .await
    .expect("test timed out");
}

/// What is not PEM, or a key of another certificate, is refused when `PeerTls` is made.
#[test]
fn peer_tls_checks_its_parts() {
    let ca = test_ca();
    let good = |k: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![k.to_string()])
            .unwrap()
            .signed_by(&key, &ca.cert, &ca.key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let ((cert, key), (_, other_key)) = (good("127.0.0.1"), good("localhost"));
    assert!(raft::PeerTls::new(ca.pem.clone().into(), cert.clone().into(), key.clone().into()).is_ok());
    let refused = |ca: &str, cert: &str, key: &str| {
        raft::PeerTls::new(ca.into(), cert.into(), key.into()).expect_err("refused").to_string()
    };
    assert!(refused("nope", &cert, &key).contains("ca"));
    assert!(refused(&ca.pem, &key, &key).contains("cert"));
    assert!(refused(&ca.pem, &cert, "nope").contains("key"));
    let mismatch = refused(&ca.pem, &cert, &other_key);
    assert!(mismatch.contains("server side"), "{mismatch}");
}
