//! The network transport: [`GrpcTransport`] (client) and [`serve_grpc`] (server), tonic 0.14
//! over HTTP/2, one unary `Raft.Call` for every RPC of every group (`proto/raft.proto`).
//!
//! A call carries the group id and the bincode [`RpcRequest`]; the answer carries the bincode
//! [`RpcResponse`]. Failures travel as gRPC statuses, mapped back to [`TransportError`]:
//!
//! | server side                               | status              | client side        |
//! |-------------------------------------------|---------------------|--------------------|
//! | connection refused (nothing listens)      | —                   | `Refused`          |
//! | no connection (connect timeout, other)    | —                   | `Unreachable`      |
//! | missing or wrong cluster MAC              | `UNAUTHENTICATED`   | `Unauthenticated`  |
//! | another cluster, or another store of the node (`identity`) | `FAILED_PRECONDITION` | `Remote` |
//! | host shutting down                        | `UNAVAILABLE`       | `Unreachable`      |
//! | group not open / raft stopped / bad bytes | `NOT_FOUND`, `INTERNAL`, `INVALID_ARGUMENT` | `Remote` |
//! | no answer within the call's deadline      | —                   | `Network`          |
//! | connection lost under a sent call (keep-alive timeout, reset stream, GOAWAY) | — | `Network` |
//! | anything else                             | other               | `Network`          |
//!
//! Only `Network` may mean the peer ran the request: the others are answers from its server, or
//! failures before a connection existed. The distinction matters for a forwarded `Propose`,
//! which is retried elsewhere after `Unreachable`/`Remote` and must not be after `Network`
//! (it would apply twice). tonic turns a dropped connection into statuses such as
//! `UNAVAILABLE` (keep-alive timeout) or `RESOURCE_EXHAUSTED` (h2 `ENHANCE_YOUR_CALM`); a status
//! tonic made itself carries its cause as `source()`, one the peer sent does not, and that is
//! how the client tells them apart.
//!
//! ## Connections
//!
//! One HTTP/2 [`Channel`] per peer, shared by all groups, opened on first use (never at
//! construction) and keyed by node id *and* `raft_addr`: a peer whose address changes gets a new
//! channel. The peer plane has [`peer::PEER_LANES`] connections of its own per peer, made with
//! hyper's HTTP/2 handle (`direct`) under the same rules. A failed connect answers
//! `Unreachable` and is remembered for [`CONNECT_FAILURE_BACKOFF_MS`], so thousands of groups
//! heartbeating a dead peer do not each dial it. An `UNAVAILABLE` answer or a lost connection
//! drops the channel; the next call dials again.
//!
//! ## Authentication
//!
//! With a cluster secret, every request carries [`CLUSTER_MAC_HEADER`]: the hex
//! HMAC-SHA256, keyed by the secret, of the group id (length-prefixed) and the payload. A server
//! with a secret refuses (`UNAUTHENTICATED`) a request whose MAC is missing or wrong, comparing
//! in constant time; the MAC also protects the payload against tampering. The secret never
//! crosses the wire. With [`PeerTls`] (in [`GrpcConfig::tls`] and `serve_grpc`'s `tls`) the
//! connections are mutual TLS besides (module `tls`): payloads are then private too, and only
//! holders of a certificate from the cluster CA can connect at all. **Caveats:** without TLS
//! payloads are readable on the network; and there is no replay protection (a recorded request
//! can be sent again; Raft RPCs tolerate that, a replayed `Propose` would apply its command
//! twice unless the command carries an idempotency key).
//! A server without a secret accepts everything: only for one-node setups and tests.
//!
//! ## Limits
//!
//! Messages up to [`GRPC_MESSAGE_BYTES_MAX`] each way; a snapshot travels in one message, so it
//! bounds the largest group state that can be replicated to a new or lagging node.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use futures::future::BoxFuture;
use hmac::Hmac;
use hmac::Mac;
use sha2::Sha256;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Channel;
use tonic::transport::Endpoint;
use tonic::Code;
use tonic::Status;

use crate::errors::RaftError;
use crate::identity::Identity;
use crate::identity::CLUSTER_HEADER;
use crate::identity::TO_NODE_HEADER;
use crate::identity::TO_STORE_HEADER;
use crate::network::RpcRequest;
use crate::network::RpcResponse;
use crate::network::Transport;
use crate::network::TransportError;
use crate::tls::PeerTls;
use crate::NodeAddr;
use crate::NodeId;
use crate::RaftHost;
use crate::StateMachine;

/// Code generated from `proto/raft.proto` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod proto {
    tonic::include_proto!("boxoffice.raft.v1");
}

mod direct;
pub(crate) mod peer;

use proto::raft_client::RaftClient;
use proto::raft_server::RaftServer;
use proto::RaftReply;
use proto::RaftRequest;

/// Largest gRPC message, in bytes, either way (client and server, encoding and decoding).
///
/// A whole snapshot travels in one message: an event with 100,000 tickets snapshots to about
/// 10 MB, so 64 MiB leaves room for six times that. A larger message is refused by the sender
/// (`Unreachable`, logged) or by the receiver (`RESOURCE_EXHAUSTED` → `Remote`); the follower
/// then never catches up, so keep group state well below this.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Streams a peer may reset before the server accepted them, per connection, before the
/// server drops the connection (h2's guard against "rapid reset" floods; its default is 20).
/// A peer's RPCs that time out are reset by the peer: when a node is overloaded (measured: a
/// failover with 1,000 reserves in flight) twenty of them come at once, and with h2's default
/// the whole channel between the two nodes was torn down, failing every RPC on it and making
/// the peers declare each other dead. Peers are cluster members (every request carries the
/// cluster MAC), so the bound is only against a runaway.
pub const PENDING_RESET_STREAMS_MAX: usize = 4_096;

/// The HTTP/2 receive window per connection, on both ends (fixed, not adaptive). h2 also drops a
/// connection (GOAWAY `ENHANCE_YOUR_CALM`, "too many small DATA frames") when the small DATA
/// frames it holds unread cost more than half this window; every Raft RPC is one small frame,
/// and with the adaptive window (which starts at 64 KiB) ~250 requests queued behind a busy
/// node were enough: in a failover with 1,000 reserves in flight the channel between the two
/// survivors was torn down again and again (504 "ResourceExhausted: h2 protocol error"). Half
/// of 16 MiB holds tens of thousands of queued RPCs; a peer cannot buffer more than this.
pub const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
/// The HTTP/2 receive window per stream, on both ends: a snapshot (one message) streams in at
/// this many bytes per round trip.
pub const STREAM_WINDOW_BYTES: u32 = 4 << 20;

/// The connection lane of Raft RPCs (see [`GrpcInner::peers`]).
const RAFT_LANE: u8 = 0;

/// gRPC metadata entry carrying the request's MAC (lower-case hex HMAC-SHA256).
pub const CLUSTER_MAC_HEADER: &str = "x-boxoffice-cluster-mac";

/// After a failed connect to a peer, calls to it answer `Unreachable` at once for this long
/// instead of dialing again.
pub const CONNECT_FAILURE_BACKOFF_MS: u64 = 100;

type HmacSha256 = Hmac<Sha256>;

/// Whether a failed connect was refused by the peer's host (an `io::Error` of kind
/// `ConnectionRefused` somewhere down the error's sources).
fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// What a connect that failed means: `Refused` (nothing listens) or `Unreachable`.
fn connect_error(refused: bool, message: String) -> TransportError {
    if refused {
        TransportError::Refused(message)
    } else {
        TransportError::Unreachable(message)
    }
}

/// `Some(refused)` when `e` is tonic's failure to (re)connect, so the request never left this
/// node; `None` when it failed on an established connection.
fn failed_to_connect(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<tonic::ConnectError>().is_some() {
            return Some(is_refused(s));
        }
        source = s.source();
    }
    None
}

/// The MAC of one request: HMAC-SHA256(secret, be_u64(len(group)) ‖ group ‖ payload).
fn request_mac(secret: &[u8], group: &str, payload: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC key of any length");
    mac.update(&(group.len() as u64).to_be_bytes());
    mac.update(group.as_bytes());
    mac.update(payload);
    mac
}

/// An optional secret as key bytes; an empty secret is a configuration error, not "no auth".
fn secret_key(secret: Option<String>) -> Result<Option<Arc<[u8]>>, RaftError> {
    match secret {
        None => Ok(None),
        Some(s) if s.is_empty() => {
            Err(RaftError::Config("cluster secret is empty; pass None to disable authentication".into()))
        }
        Some(s) => Ok(Some(Arc::from(s.into_bytes()))),
    }
}

/// Deadlines of a [`GrpcTransport`], in milliseconds.
#[derive(Clone, Debug)]
pub struct GrpcConfig {
    /// Longest wait for a TCP + HTTP/2 connection to a peer. Default 1000.
    pub connect_timeout_ms: u64,
    /// Deadline of every call except snapshots (also sent as `grpc-timeout`). openraft applies
    /// its own, usually shorter, per-RPC deadline on top. Default 5000.
    pub rpc_timeout_ms: u64,
    /// Deadline of an `InstallSnapshot` call: sending, restoring and saving a whole snapshot.
    /// openraft cuts it at `HostConfig::install_snapshot_timeout_ms`. Default 60000.
    pub snapshot_timeout_ms: u64,
    /// Dial peers over mutual TLS (`https://`, presenting this certificate, trusting only the
    /// CA); `None`: plain HTTP/2. Default `None`.
    pub tls: Option<PeerTls>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig { connect_timeout_ms: 1000, rpc_timeout_ms: 5000, snapshot_timeout_ms: 60_000, tls: None }
    }
}

/// The cached connection to one peer.
#[derive(Default)]
struct Peer {
    /// The `raft_addr` the channel (or the failure) belongs to.
    addr: String,
    /// Raft RPCs' connection (lane 0).
    channel: Option<Channel>,
    /// A peer-plane lane's connection (see `direct`).
    direct: Option<direct::Direct>,
    connect_failed_at: Option<Instant>,
    /// The failed connect was refused (nothing listens at `addr`).
    connect_refused: bool,
}

/// One connection slot; the async lock serializes dialing so concurrent calls share a connect.
type PeerSlot = Arc<tokio::sync::Mutex<Peer>>;

/// Client side of the gRPC transport; one per host, shared by all its groups. Cheap to clone.
#[derive(Clone)]
pub struct GrpcTransport {
    inner: Arc<GrpcInner>,
}

struct GrpcInner {
    secret: Option<Arc<[u8]>>,
    /// This node's identity, once the host exists: every request then carries the cluster id
    /// and the store id its target is registered with (see `identity`).
    identity: std::sync::OnceLock<Arc<Identity>>,
    config: GrpcConfig,
    /// [`GrpcConfig::tls`]'s client side for the peer plane's connections (`direct`).
    tls_client: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// One slot per peer; the async lock serializes dialing so concurrent calls share one
    /// connect.
    /// Keyed by (peer, lane): lane 0 carries Raft RPCs, lanes 1..=[`peer::PEER_LANES`] the
    /// peer plane (see `peer`).
    peers: Mutex<HashMap<(NodeId, u8), PeerSlot>>,
    /// Round-robin over the peer plane's lanes.
    next_lane: std::sync::atomic::AtomicUsize,
}

impl GrpcTransport {
    /// A transport with default deadlines. `cluster_secret`: sign every request with it (see
    /// the module doc); `None` sends no MAC (accepted only by servers without a secret).
    /// An empty secret is rejected with [`RaftError::Config`].
    pub fn new(cluster_secret: Option<String>) -> Result<GrpcTransport, RaftError> {
        GrpcTransport::with_config(cluster_secret, GrpcConfig::default())
    }

    /// A transport with explicit deadlines.
    pub fn with_config(
        cluster_secret: Option<String>,
        config: GrpcConfig,
    ) -> Result<GrpcTransport, RaftError> {
        if config.connect_timeout_ms == 0 || config.rpc_timeout_ms == 0 || config.snapshot_timeout_ms == 0 {
            return Err(RaftError::Config("gRPC timeouts must be > 0".into()));
        }
        Ok(GrpcTransport {
            inner: Arc::new(GrpcInner {
                secret: secret_key(cluster_secret)?,
                identity: std::sync::OnceLock::new(),
                tls_client: config.tls.as_ref().map(PeerTls::rustls_client_config).transpose()?,
                config,
                peers: Mutex::new(HashMap::new()),
                next_lane: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// Send this node's identity with every request from now on (set once; later calls are
    /// ignored). The host is made with the transport, so this comes after both exist.
    pub fn set_identity(&self, identity: Arc<Identity>) {
        let _ = self.inner.identity.set(identity);
    }

    fn slot(&self, target: NodeId, lane: u8) -> PeerSlot {
        let mut peers = self.inner.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.entry((target, lane)).or_default().clone()
    }

    /// The slot of (`target`, `lane`), locked, reset if `target`'s address is no longer
    /// `addr`; `Err` while a failed connect to it is younger than
    /// [`CONNECT_FAILURE_BACKOFF_MS`].
    async fn slot_for(
        &self,
        target: NodeId,
        addr: &str,
        lane: u8,
    ) -> Result<tokio::sync::OwnedMutexGuard<Peer>, TransportError> {
        let mut peer = self.slot(target, lane).lock_owned().await;
        if peer.addr != addr {
            if !peer.addr.is_empty() {
                tracing::info!(target, old = %peer.addr, new = %addr, "peer address changed; reconnecting");
            }
            *peer = Peer { addr: addr.to_string(), ..Peer::default() };
        }
        if peer.channel.is_none() && peer.direct.is_none() {
            if let Some(at) = peer.connect_failed_at {
                if at.elapsed() < Duration::from_millis(CONNECT_FAILURE_BACKOFF_MS) {
                    let message = format!("node {target} at {addr}: connect failed {:?} ago", at.elapsed());
                    return Err(connect_error(peer.connect_refused, message));
                }
            }
        }
        Ok(peer)
    }

    /// Remember a failed connect (see [`GrpcTransport::slot_for`]) and say what it means.
    fn connect_failed(peer: &mut Peer, refused: bool, message: String) -> TransportError {
        peer.connect_failed_at = Some(Instant::now());
        peer.connect_refused = refused;
        connect_error(refused, message)
    }

    /// The Raft lane's channel to `target` at `addr`, dialing it if there is none (or the
    /// address changed).
    async fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, TransportError> {
        let mut peer = self.slot_for(target, addr, RAFT_LANE).await?;
        if let Some(channel) = &peer.channel {
            return Ok(channel.clone());
        }
        let bad_address = |e: tonic::transport::Error| {
            TransportError::Unreachable(format!("node {target}: bad raft address {addr:?}: {e}"))
        };
        let scheme = if self.inner.config.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(bad_address)?;
        if let Some(tls) = &self.inner.config.tls {
            endpoint = endpoint.tls_config(tls.client_config()).map_err(bad_address)?;
        }
        let endpoint = endpoint
            .connect_timeout(Duration::from_millis(self.inner.config.connect_timeout_ms))
            .tcp_nodelay(true)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .initial_stream_window_size(STREAM_WINDOW_BYTES);
        match endpoint.connect().await {
            Ok(channel) => {
                tracing::debug!(target, %addr, "connected to peer");
                peer.channel = Some(channel.clone());
                peer.connect_failed_at = None;
                Ok(channel)
            }
            Err(e) => {
                let refused = is_refused(&e);
                Err(Self::connect_failed(
                    &mut peer,
                    refused,
                    format!("node {target} at {addr}: connect: {e}"),
                ))
            }
        }
    }

    /// The peer-plane connection of `lane` to `target` at `addr`, dialing it if there is none,
    /// it closed, or the address changed.
    async fn direct(&self, target: NodeId, addr: &str, lane: u8) -> Result<direct::Direct, TransportError> {
        let mut peer = self.slot_for(target, addr, lane).await?;
        if let Some(direct) = &peer.direct {
            if !direct.is_closed() {
                return Ok(direct.clone());
            }
            peer.direct = None;
        }
        let timeout = Duration::from_millis(self.inner.config.connect_timeout_ms);
        match direct::Direct::dial(addr, self.inner.tls_client.as_ref(), timeout).await {
            Ok(direct) => {
                tracing::debug!(target, %addr, lane, "connected to peer");
                peer.direct = Some(direct.clone());
                peer.connect_failed_at = None;
                Ok(direct)
            }
            Err(e) => Err(Self::connect_failed(
                &mut peer,
                e.refused,
                format!("node {target} at {addr}: connect: {}", e.message),
            )),
        }
    }

    /// Drop the channel to `target` (if still for `addr`): the next call dials again.
    async fn evict(&self, target: NodeId, addr: &str, lane: u8) {
        let slot = self.slot(target, lane);
        let mut peer = slot.lock().await;
        if peer.addr == addr {
            peer.channel = None;
            peer.direct = None;
        }
    }

    async fn call(
        &self,
        target: NodeId,
        addr: &NodeAddr,
        group: &str,
        rpc: RpcRequest,
    ) -> Result<RpcResponse, TransportError> {
        let kind = rpc.kind();
        let deadline = Duration::from_millis(match rpc {
            RpcRequest::InstallSnapshot { .. } => self.inner.config.snapshot_timeout_ms,
            _ => self.inner.config.rpc_timeout_ms,
        });
        let payload = rpc.encode().map_err(|e| TransportError::Network(format!("encode {kind}: {e}")))?;
        if payload.len() > GRPC_MESSAGE_BYTES_MAX {
            tracing::error!(
                group,
                target,
                rpc = kind,
                bytes = payload.len(),
                "rpc exceeds GRPC_MESSAGE_BYTES_MAX"
            );
            return Err(TransportError::Unreachable(format!(
                "{kind} of {} bytes exceeds GRPC_MESSAGE_BYTES_MAX ({GRPC_MESSAGE_BYTES_MAX})",
                payload.len()
            )));
        }
        let raft_addr = addr.raft_addr.as_str();
        let channel = self.channel(target, raft_addr).await?;
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
        let mut metadata = tonic::metadata::MetadataMap::new();
        self.sign(&mut metadata, target, group, &payload)?;
        let mut request = tonic::Request::from_parts(
            metadata,
            tonic::Extensions::default(),
            RaftRequest { group: group.to_string(), payload },
        );
        request.set_timeout(deadline);
        let answered = match tokio::time::timeout(deadline, client.call(request)).await {
            Err(_) => {
                return Err(TransportError::Network(format!(
                    "{kind} to node {target}: no answer within {deadline:?}"
                )))
            }
            Ok(answered) => answered,
        };
        match answered {
            Ok(reply) => RpcResponse::decode(&reply.into_inner().payload)
                .map_err(|e| TransportError::Network(format!("{kind} from node {target}: decode: {e}"))),
            Err(status) => Err(self.failure(status, target, raft_addr, RAFT_LANE, kind).await),
        }
    }

    /// Sign a request to `target`: the cluster MAC of (`group`, `payload`) when there is a
    /// secret, and this node's view of the cluster and of `target`'s identity.
    fn sign(
        &self,
        metadata: &mut tonic::metadata::MetadataMap,
        target: NodeId,
        group: &str,
        payload: &[u8],
    ) -> Result<(), TransportError> {
        if let Some(secret) = &self.inner.secret {
            let mac = hex::encode(request_mac(secret, group, payload).finalize().into_bytes());
            let value = MetadataValue::try_from(mac)
                .map_err(|e| TransportError::Network(format!("MAC metadata: {e}")))?;
            metadata.insert(CLUSTER_MAC_HEADER, value);
        }
        if let Some(identity) = self.inner.identity.get() {
            if let Some(value) = identity.cluster().and_then(|c| MetadataValue::try_from(c).ok()) {
                metadata.insert(CLUSTER_HEADER, value);
            }
            metadata.insert(TO_NODE_HEADER, MetadataValue::from(target));
            if let Some(store) = identity.registered(target) {
                if let Ok(value) = MetadataValue::try_from(format!("{store:x}")) {
                    metadata.insert(TO_STORE_HEADER, value);
                }
            }
        }
        Ok(())
    }

    /// What a failed call to `target` at `raft_addr` means (see the module doc's table);
    /// drops the channel when the connection is gone.
    async fn failure(
        &self,
        status: Status,
        target: NodeId,
        raft_addr: &str,
        lane: u8,
        kind: &str,
    ) -> TransportError {
        let message = format!("{kind} to node {target}: {:?}: {}", status.code(), status.message());
        if let Some(connect) = std::error::Error::source(&status).map(failed_to_connect) {
            // tonic made this status from a failure under the call, the peer did not
            // send it. Before the connection existed nothing was sent; after (a
            // keep-alive timeout, a reset stream, a GOAWAY) the peer may have run it.
            // A deadline that passed (Cancelled) leaves the connection usable.
            if status.code() != Code::Cancelled {
                self.evict(target, raft_addr, lane).await;
            }
            return match connect {
                Some(true) => TransportError::Refused(message),
                Some(false) => TransportError::Unreachable(message),
                None => TransportError::Network(message),
            };
        }
        match status.code() {
            Code::Unauthenticated => TransportError::Unauthenticated(message),
            Code::Unavailable => {
                self.evict(target, raft_addr, lane).await;
                TransportError::Unreachable(message)
            }
            Code::NotFound
            | Code::Internal
            | Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::ResourceExhausted => TransportError::Remote(message),
            // (tonic's own "transport error" is handled above, with the other
            // statuses made from a failure under the call.)
            _ => TransportError::Network(message),
        }
    }
}

impl Transport for GrpcTransport {
    fn send<'a>(
        &'a self,
        target: NodeId,
        addr: &'a NodeAddr,
        group: &'a str,
        rpc: RpcRequest,
    ) -> BoxFuture<'a, Result<RpcResponse, TransportError>> {
        Box::pin(self.call(target, addr, group, rpc))
    }
}

/// The server: checks the MAC and hands the RPC to the host.
struct RaftService<S: StateMachine> {
    host: RaftHost<S>,
    secret: Option<Arc<[u8]>>,
}

/// Refuse the request unless it carries the right MAC (when a secret is configured).
fn authenticate(
    secret: Option<&[u8]>,
    mac_hex: Option<&[u8]>,
    group: &str,
    payload: &[u8],
) -> Result<(), Status> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let Some(mac_hex) = mac_hex else {
        return Err(Status::unauthenticated("missing cluster MAC"));
    };
    let tag = hex::decode(mac_hex).map_err(|_| Status::unauthenticated("malformed cluster MAC"))?;
    // `verify_slice` compares in constant time.
    request_mac(secret, group, payload)
        .verify_slice(&tag)
        .map_err(|_| Status::unauthenticated("wrong cluster MAC"))
}

/// Admit a request to this node's server: the cluster MAC of (`group`, `payload`), then the
/// sender's view of the cluster and of this node (see `identity`). Every service of the
/// server runs this before anything else.
fn admit(
    node: NodeId,
    identity: &Identity,
    secret: Option<&[u8]>,
    metadata: &tonic::metadata::MetadataMap,
    group: &str,
    payload: &[u8],
) -> Result<(), Status> {
    let text = |name: &str| metadata.get(name).and_then(|v| v.to_str().ok());
    let mac = metadata.get(CLUSTER_MAC_HEADER).map(|v| v.as_bytes());
    if let Err(status) = authenticate(secret, mac, group, payload) {
        tracing::warn!(node, %group, reason = status.message(), "refused unauthenticated rpc");
        return Err(status);
    }
    let to_node = text(TO_NODE_HEADER).and_then(|v| v.parse::<NodeId>().ok());
    let to_store = text(TO_STORE_HEADER).and_then(|v| u64::from_str_radix(v, 16).ok());
    if let Err(refusal) = identity.check(node, text(CLUSTER_HEADER), to_node, to_store) {
        if refusal.first {
            tracing::error!(node, "{}", refusal.message);
        } else {
            tracing::debug!(node, %group, reason = %refusal.message, "refused rpc");
        }
        return Err(Status::failed_precondition(refusal.message));
    }
    Ok(())
}

fn status_of(e: RaftError) -> Status {
    match e {
        RaftError::GroupNotFound(_) => Status::not_found(e.to_string()),
        RaftError::InvalidGroupId(_) => Status::invalid_argument(e.to_string()),
        RaftError::ShuttingDown => Status::unavailable(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl<S: StateMachine> proto::raft_server::Raft for RaftService<S> {
    async fn call(&self, request: tonic::Request<RaftRequest>) -> Result<tonic::Response<RaftReply>, Status> {
        let (metadata, _, RaftRequest { group, payload }) = request.into_parts();
        let node = self.host.node_id();
        admit(node, self.host.identity(), self.secret.as_deref(), &metadata, &group, &payload)?;
        let rpc =
            RpcRequest::decode(&payload).map_err(|e| Status::invalid_argument(format!("decode rpc: {e}")))?;
        let response = self.host.handle_rpc(&group, rpc).await.map_err(status_of)?;
        let payload = response.encode().map_err(|e| Status::internal(format!("encode response: {e}")))?;
        Ok(tonic::Response::new(RaftReply { payload }))
    }
}

/// Serve the host's groups over gRPC on `listener` until `shutdown` resolves (then finish the
/// calls in flight and return).
///
/// `cluster_secret`: refuse every request without the matching MAC (see the module doc);
/// `None` accepts every request. An empty secret is a [`RaftError::Config`]. `tls`: accept only
/// TLS connections from peers presenting a certificate of its CA (module `tls`); `None`: plain
/// HTTP/2. The server keeps a clone of `host`; stopping it does not shut the host down (call
/// [`RaftHost::shutdown`]).
pub async fn serve_grpc<S: StateMachine>(
    host: RaftHost<S>,
    listener: tokio::net::TcpListener,
    cluster_secret: Option<String>,
    tls: Option<PeerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RaftError> {
    serve_node(host, listener, cluster_secret, tls, None, shutdown).await
}

/// [`serve_grpc`], and with `peer` the peer plane's `Peer` service beside `Raft` (see
/// [`peer::PeerHandler`]), behind the same TLS and admitted by the same MAC and identity
/// checks.
pub async fn serve_node<S: StateMachine>(
    host: RaftHost<S>,
    listener: tokio::net::TcpListener,
    cluster_secret: Option<String>,
    tls: Option<PeerTls>,
    peer: Option<Arc<dyn peer::PeerHandler>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RaftError> {
    let secret = secret_key(cluster_secret)?;
    let node = host.node_id();
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let peer = peer.map(|handler| {
        peer::server(peer::PeerService {
            node,
            identity: host.identity().clone(),
            secret: secret.clone(),
            handler,
        })
    });
    let service = RaftServer::new(RaftService { host, secret: secret.clone() })
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tracing::info!(
        node,
        addr = %local,
        authenticated = secret.is_some(),
        tls = tls.is_some(),
        "raft gRPC server listening"
    );
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        server = server
            .tls_config(tls.server_config())
            .map_err(|e| RaftError::Config(format!("peer TLS on {local}: {e}")))?;
    }
    let served = server
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .http2_max_pending_accept_reset_streams(Some(PENDING_RESET_STREAMS_MAX))
        .add_service(service)
        .add_optional_service(peer)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    tracing::info!(node, addr = %local, "raft gRPC server stopped");
    served.map_err(|e| RaftError::Transport(format!("gRPC server on {local}: {e}")))
}
