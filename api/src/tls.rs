//! HTTPS on the public listener: [`HttpTls`] (this node's certificate and key) and
//! [`serve_tls`], which serves the same [`crate::router`] as [`crate::serve`] over TLS only.
//!
//! rustls with the `ring` provider (the one reqwest already builds), TLS 1.2 and 1.3, ALPN
//! `h2` and `http/1.1`. No client certificates are asked for: the API authenticates with its
//! bearer tokens. A plain-HTTP request to an HTTPS port fails its handshake and is closed.
//!
//! Handshakes run in their own tasks, at most [`TLS_HANDSHAKES_IN_FLIGHT_MAX`] at once and each
//! for at most [`TLS_HANDSHAKE_TIMEOUT`], so a slow or silent client holds up nobody else; the
//! finished connections are handed to axum through [`TlsListener`], an [`axum::serve::Listener`],
//! so graceful shutdown and `ConnectInfo<SocketAddr>` work as with plain HTTP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::router;
use crate::AppState;

/// Longest a client may take over its TLS handshake; at the limit the connection is closed.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TLS handshakes under way at once; at the limit no new connection is accepted until
/// one finishes (the kernel's backlog holds the rest).
pub const TLS_HANDSHAKES_IN_FLIGHT_MAX: usize = 256;
/// Connections through their handshake waiting for axum to take them; at the limit the
/// handshake tasks wait (and so, through [`TLS_HANDSHAKES_IN_FLIGHT_MAX`], does accepting).
const ACCEPTED_QUEUED_MAX: usize = 64;
/// After an accept error that is not about one connection (out of file descriptors), wait
/// this long before accepting again (as axum's own listener does).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// This node's HTTPS certificate and key, checked and ready to serve. Cheap to clone.
#[derive(Clone)]
pub struct HttpTls {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for HttpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTls").finish_non_exhaustive()
    }
}

impl HttpTls {
    /// `cert_pem`: the certificate chain, leaf first; `key_pem`: its private key (PKCS#8,
    /// PKCS#1 or SEC1). An error (`InvalidInput`) names the part that is wrong (`cert`, `key`,
    /// or the pair); the caller adds the file it came from.
    pub fn new(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<HttpTls> {
        let invalid = |text: String| io::Error::new(io::ErrorKind::InvalidInput, text);
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("HTTPS cert: not a PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("HTTPS cert: no PEM certificate in it".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| invalid(format!("HTTPS key: not a PEM private key: {e}")))?;
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| invalid(format!("HTTPS: {e}")))?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| invalid(format!("HTTPS cert and key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(HttpTls { config: Arc::new(config) })
    }
}

/// Serve the API over HTTPS on `listener` until `shutdown` resolves; in-flight requests
/// finish. The TLS twin of [`crate::serve`].
pub async fn serve_tls(
    listener: TcpListener,
    tls: HttpTls,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Hyper's own parse-error answers as problem+json, as over plain HTTP (`conn`).
    let listener = crate::conn::ProblemListener(TlsListener::new(listener, tls)?);
    // `tap_io` (a no-op here) because axum gives `ConnectInfo<SocketAddr>` to its own
    // `TcpListener` and to a tapped listener whose address is a `SocketAddr`, not to any
    // listener: this keeps the client's address available to handlers as with plain HTTP.
    axum::serve(listener.tap_io(|_| {}), router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// A TCP listener whose connections come out through their TLS handshake (see the module
/// doc). Dropping it stops accepting and closes the port.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: HttpTls) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUED_MAX);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls.config), tx));
        Ok(TlsListener { accepted, local, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accept loop ended (it only does when this listener drops, or if it
            // panicked): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accept TCP connections and run each one's handshake in its own task (bounded); hand the
/// finished ones to `tx`. Returns when the receiver is gone.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(TLS_HANDSHAKES_IN_FLIGHT_MAX));
    loop {
        let permit = tokio::select! {
            permit = handshakes.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = tx.closed() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "HTTPS accept failed; pausing");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
            }
        });
    }
}

/// Errors about one connection (the next accept may work at once).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
