//! The peer plane's wire: the `Peer` service of `proto/raft.proto`, on the same listener,
//! connections, MAC and identity checks as `Raft.Call`.
//!
//! This crate does not know what peers ask each other: a [`PeerHandler`] (the `cluster`
//! crate's) turns request bytes into answer bytes. A request is signed like a Raft RPC, with
//! [`PEER_GROUP`] in place of the group id, so a recorded Raft RPC cannot pass for a peer
//! request or the other way round. Failures of the call itself come back as
//! [`TransportError`]s, classified as for Raft RPCs (only `Network` may mean the peer ran it);
//! whatever the handler answers, refusals included, is in the payload.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::Stream;
use futures::StreamExt;
use tonic::Status;

use super::admit;
use super::proto::peer_client::PeerClient;
use super::proto::peer_server::Peer;
use super::proto::PeerReply;
use super::proto::PeerRequest;
use super::GrpcTransport;
use super::GRPC_MESSAGE_BYTES_MAX;
use crate::identity::Identity;
use crate::network::TransportError;
use crate::NodeId;

/// The name peer requests are signed under (where a Raft RPC names its group); `@` is not
/// allowed in group ids, so the two can never be confused.
pub const PEER_GROUP: &str = "@peer";

/// HTTP/2 connections to each peer for the peer plane, apart from the one that carries Raft
/// RPCs; calls take them in turn. All calls on one connection share its h2 connection task on
/// each side: with one, four concurrent relayed reads ran at 57 % of what four HTTP/1.1
/// connections did (`docs/benchmarks.md`, "Requests relayed over the peer plane").
pub const PEER_LANES: usize = 4;

/// A stream of answers to one [`PeerHandler::watch`].
pub type PeerStream = BoxStream<'static, Vec<u8>>;

/// What answers peer requests on this node (implemented by the layer above `raft`).
pub trait PeerHandler: Send + Sync + 'static {
    /// Answer one request. `Err`: the bytes are not a request (answered `INVALID_ARGUMENT`).
    fn call(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>>;
    /// Start a stream of answers; it ends when the source ends, and is dropped when the
    /// caller hangs up. `Err` as for [`PeerHandler::call`].
    fn watch(&self, payload: Vec<u8>) -> BoxFuture<'static, Result<PeerStream, String>>;
}

/// The server side: admits the request ([`admit`]), then hands it to the handler.
pub(super) struct PeerService {
    pub node: NodeId,
    pub identity: Arc<Identity>,
    pub secret: Option<Arc<[u8]>>,
    pub handler: Arc<dyn PeerHandler>,
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn call(&self, request: tonic::Request<PeerRequest>) -> Result<tonic::Response<PeerReply>, Status> {
        let (metadata, _, PeerRequest { payload }) = request.into_parts();
        admit(self.node, &self.identity, self.secret.as_deref(), &metadata, PEER_GROUP, &payload)?;
        let payload = self.handler.call(payload).await.map_err(Status::invalid_argument)?;
        Ok(tonic::Response::new(PeerReply { payload }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<PeerReply, Status>> + Send>>;

    async fn watch(
        &self,
        request: tonic::Request<PeerRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, Status> {
        let (metadata, _, PeerRequest { payload }) = request.into_parts();
        admit(self.node, &self.identity, self.secret.as_deref(), &metadata, PEER_GROUP, &payload)?;
        let answers = self.handler.watch(payload).await.map_err(Status::invalid_argument)?;
        Ok(tonic::Response::new(Box::pin(answers.map(|payload| Ok(PeerReply { payload })))))
    }
}

pub(super) fn server(service: PeerService) -> super::proto::peer_server::PeerServer<PeerService> {
    super::proto::peer_server::PeerServer::new(service)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
}

impl GrpcTransport {
    /// The next peer-plane lane (1..=[`PEER_LANES`]).
    fn peer_lane(&self) -> u8 {
        let n = self.inner.next_lane.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        1 + (n % PEER_LANES) as u8
    }

    /// A client on the next peer-plane lane to `target`, and the lane (for [`Self::failure`]).
    async fn peer_client(
        &self,
        target: NodeId,
        raft_addr: &str,
    ) -> Result<(PeerClient<super::direct::Direct>, u8), TransportError> {
        let lane = self.peer_lane();
        let connection = self.direct(target, raft_addr, lane).await?;
        let client = PeerClient::new(connection)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
        Ok((client, lane))
    }

    fn peer_request(
        &self,
        target: NodeId,
        payload: Vec<u8>,
    ) -> Result<tonic::Request<PeerRequest>, TransportError> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        self.sign(&mut metadata, target, PEER_GROUP, &payload)?;
        Ok(tonic::Request::from_parts(metadata, tonic::Extensions::default(), PeerRequest { payload }))
    }

    /// Ask node `target` (its Raft address `raft_addr`) one peer request; the answer's bytes,
    /// or why there is none within `deadline`.
    pub async fn peer_call(
        &self,
        target: NodeId,
        raft_addr: &str,
        payload: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        let mut request = self.peer_request(target, payload)?;
        request.set_timeout(deadline);
        let (mut client, lane) = self.peer_client(target, raft_addr).await?;
        match tokio::time::timeout(deadline, client.call(request)).await {
            Err(_) => Err(TransportError::Network(format!(
                "peer call to node {target}: no answer within {deadline:?}"
            ))),
            Ok(Ok(reply)) => Ok(reply.into_inner().payload),
            Ok(Err(status)) => Err(self.failure(status, target, raft_addr, lane, "peer call").await),
        }
    }

    /// Open a stream of answers from node `target`: the stream starts within `deadline`, then
    /// runs until the peer ends it, the connection breaks (the last item is then an error), or
    /// the returned stream is dropped.
    pub async fn peer_watch(
        &self,
        target: NodeId,
        raft_addr: &str,
        payload: Vec<u8>,
        deadline: Duration,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, TransportError>>, TransportError> {
        let request = self.peer_request(target, payload)?;
        let (mut client, lane) = self.peer_client(target, raft_addr).await?;
        let answers = match tokio::time::timeout(deadline, client.watch(request)).await {
            Err(_) => {
                return Err(TransportError::Network(format!(
                    "peer watch on node {target}: no answer within {deadline:?}"
                )))
            }
            Ok(Ok(answers)) => answers.into_inner(),
            Ok(Err(status)) => return Err(self.failure(status, target, raft_addr, lane, "peer watch").await),
        };
        Ok(answers
            .map(move |item| {
                item.map(|reply| reply.payload).map_err(|status| {
                    TransportError::Network(format!(
                        "peer watch on node {target}: {:?}: {}",
                        status.code(),
                        status.message()
                    ))
                })
            })
            .boxed())
    }
}
