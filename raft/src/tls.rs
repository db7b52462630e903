//! Mutual TLS on the peer plane: [`PeerTls`], the cluster CA and this node's certificate and
//! key, carried by [`crate::GrpcConfig`] (the client, [`crate::GrpcTransport`]) and given to
//! [`crate::serve_grpc`] (the server).
//!
//! With it, the gRPC server asks every connecting peer for a certificate and accepts only one
//! that chains to the CA; the client dials `https://`, presents its own certificate and
//! accepts a server only if its certificate chains to the CA *and* names the address dialed (an
//! IP or DNS subject alternative name equal to the host of `raft_addr`). rustls with the `ring`
//! provider, through tonic's `tls-ring` feature.
//!
//! What is verified: "signed by the cluster CA, not expired, valid for this address". What is
//! not: *which* node a certificate belongs to (any node's certificate passes for any other's:
//! the CA is the trust boundary), revocation (no CRL or OCSP), and rotation (certificates are
//! read once, at start; a new one takes a restart). The cluster MAC ([`crate::CLUSTER_MAC_HEADER`])
//! is still checked on top: TLS keeps outsiders off the wire, the MAC says the sender knows the
//! cluster secret.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use tokio_rustls::rustls;
use tonic::transport::Certificate;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Identity;
use tonic::transport::ServerTlsConfig;

use crate::errors::RaftError;

/// Longest a TLS handshake may take, on the server (an accepted connection that does not finish
/// its handshake by then is closed) and on the client (the connect fails: `Unreachable`).
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// The PEM texts of a node's peer-plane TLS (see the module doc). Checked when made: each part
/// must parse, and the certificate and key must go together.
#[derive(Clone)]
pub struct PeerTls {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("PeerTls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("cert_pem_bytes", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

impl PeerTls {
    /// `ca_pem`: the certificate(s) of the cluster CA; `cert_pem`: this node's certificate
    /// (its chain, leaf first); `key_pem`: its private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// A part that holds no certificate (or no key), a key that does not go with the
    /// certificate, or a configuration rustls refuses is a [`RaftError::Config`] naming the
    /// part (`ca`, `cert`, `key`); the caller adds the file it came from.
    pub fn new(ca_pem: Vec<u8>, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Result<PeerTls, RaftError> {
        for (part, pem) in [("ca", &ca_pem), ("cert", &cert_pem)] {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RaftError::Config(format!("peer TLS {part}: not a PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(RaftError::Config(format!("peer TLS {part}: no PEM certificate in it")));
            }
        }
        PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| RaftError::Config(format!("peer TLS key: not a PEM private key: {e}")))?;
        let tls = PeerTls { ca_pem, cert_pem, key_pem };
        // Build both ends once now, so that a key of another certificate or a CA rustls does
        // not take is an error at start, not at the first connection.
        tonic::transport::Server::builder()
            .tls_config(tls.server_config())
            .map_err(|e| RaftError::Config(format!("peer TLS (server side): {}", error_chain(&e))))?;
        tonic::transport::Endpoint::from_static("https://127.0.0.1")
            .tls_config(tls.client_config())
            .map_err(|e| RaftError::Config(format!("peer TLS (client side): {}", error_chain(&e))))?;
        tls.rustls_client_config()?;
        Ok(tls)
    }

    /// The server's side: present our certificate, require one chaining to the CA.
    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(false)
            .timeout(Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS))
    }

    /// The client's side: trust only the CA (no system roots), present our certificate.
    pub(crate) fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .timeout(Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS))
    }

    /// The client's side for the peer plane's own connections (`grpc::direct`), the same
    /// policy as [`PeerTls::client_config`]: only the CA, our certificate, ALPN `h2`, and the
    /// server's certificate must name the address dialed (rustls's default verifier).
    pub(crate) fn rustls_client_config(&self) -> Result<Arc<rustls::ClientConfig>, RaftError> {
        let config_error =
            |e: &dyn std::fmt::Display| RaftError::Config(format!("peer TLS (client side): {e}"));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            roots.add(cert.map_err(|e| config_error(&e))?).map_err(|e| config_error(&e))?;
        }
        let chain = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error(&e))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| config_error(&e))?;
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| config_error(&e))?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .map_err(|e| config_error(&e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// An error and its sources, `: `-separated (tonic's own message is often just "transport error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
