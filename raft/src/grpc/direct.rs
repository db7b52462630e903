//! The peer plane's connections: tonic's generated client over hyper's own HTTP/2 handle.
//!
//! tonic's `Channel` puts a tower `Buffer` in front of the connection, a task of its own that
//! every call passes through: caller → buffer task → h2 connection task and back. On a busy
//! machine each hop is a wake-up and often a context switch, and a relayed request crosses the
//! plane twice. [`Direct`] hands the request to hyper's `SendRequest` from the caller's task.
//! It does not reconnect by itself: the transport checks [`Direct::is_closed`] before each use
//! and dials again (see `GrpcTransport::direct`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

use super::is_refused;
use super::CONNECTION_WINDOW_BYTES;
use super::STREAM_WINDOW_BYTES;

/// One HTTP/2 connection to a peer; cheap to clone (clones share the connection).
#[derive(Clone)]
pub(super) struct Direct {
    send: SendRequest<tonic::body::Body>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
}

/// Why a dial failed: `refused` when nothing listens at the address.
pub(super) struct DialError {
    pub refused: bool,
    pub message: String,
}

impl Direct {
    /// Dial `addr` (`host:port`), over TLS with `tls`, within `timeout` (TCP and TLS
    /// handshakes together).
    pub(super) async fn dial(
        addr: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Direct, DialError> {
        let fail = |message: String| DialError { refused: false, message };
        let authority: http::uri::Authority =
            addr.parse().map_err(|e| fail(format!("bad raft address {addr:?}: {e}")))?;
        let dialing = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| DialError { refused: is_refused(&e), message: e.to_string() })?;
            tcp.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
            let (send, scheme) = match tls {
                None => (handshake(tcp).await.map_err(fail)?, http::uri::Scheme::HTTP),
                Some(config) => {
                    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
                    let name = ServerName::try_from(host.to_string())
                        .map_err(|e| fail(format!("bad raft address {addr:?}: {e}")))?;
                    let stream = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| fail(format!("TLS: {e}")))?;
                    (handshake(stream).await.map_err(fail)?, http::uri::Scheme::HTTPS)
                }
            };
            Ok(Direct { send, scheme, authority: authority.clone() })
        };
        match tokio::time::timeout(timeout, dialing).await {
            Ok(dialed) => dialed,
            Err(_) => Err(fail(format!("no connection within {timeout:?}"))),
        }
    }

    /// The connection is gone (closed by either side, or broken): dial again.
    pub(super) fn is_closed(&self) -> bool {
        self.send.is_closed()
    }
}

/// The HTTP/2 handshake over `io` (TCP or TLS) with the transport's windows; the connection's
/// task is spawned, the handle returned.
async fn handshake<I>(io: I) -> Result<SendRequest<tonic::body::Body>, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .max_concurrent_reset_streams(super::PENDING_RESET_STREAMS_MAX)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "peer connection ended");
        }
    });
    Ok(send)
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Direct {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // tonic's client sets only the path; HTTP/2 needs the scheme and authority too.
        let (mut parts, body) = request.into_parts();
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = parts.uri.path_and_query().cloned();
        if let Ok(uri) = http::Uri::from_parts(uri) {
            parts.uri = uri;
        }
        Box::pin(self.send.send_request(http::Request::from_parts(parts, body)))
    }
}
