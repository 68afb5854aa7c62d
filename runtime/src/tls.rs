//! TLS and QUIC settings: who may connect, with what, and who they are.
//!
//! Owns the rustls configurations (one crypto provider, ring; TLS 1.3
//! only, as QUIC requires), the ALPNs, the QUIC transport limits, and how a
//! connection's verified peer is named. Mutual TLS is the rule on both
//! ALPNs: a node presents its node certificate and demands one signed by
//! the cluster CA from whoever dials it. The one exception, a node that
//! lets clients in without a certificate, exists for `cairn dev
//! --insecure-dev` only. It must never accept a peer whose chain it has
//! not verified, and never name a peer from anything but its certificate.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::certs::{identity, CertError, Credentials, Identity};

/// The ALPN of node-to-node traffic: Raft on streams, gossip on datagrams.
pub const ALPN_PEER: &[u8] = b"cairn-peer/1";
/// The ALPN of clients.
pub const ALPN_CLIENT: &[u8] = b"cairn/1";

/// Streams a client may have open at once on one connection: its
/// requests in flight. More wait in the client for QUIC's credit.
pub const CLIENT_STREAMS_MAX: u32 = 256;

/// Why a TLS or QUIC configuration could not be built.
#[derive(Debug)]
pub enum TlsError {
    /// rustls refused the certificates or settings.
    Rustls(rustls::Error),
    /// The client verifier could not be built (no usable CA).
    Verifier(String),
    /// QUIC refused the TLS settings.
    Quic(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Rustls(error) => write!(f, "TLS: {error}"),
            TlsError::Verifier(error) => write!(f, "TLS client verifier: {error}"),
            TlsError::Quic(error) => write!(f, "QUIC TLS settings: {error}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(error: rustls::Error) -> Self {
        TlsError::Rustls(error)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(credentials: &Credentials) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for root in &credentials.roots {
        roots.add(root.clone())?;
    }
    Ok(Arc::new(roots))
}

fn key(credentials: &Credentials) -> Result<PrivateKeyDer<'static>, TlsError> {
    credentials
        .key
        .as_ref()
        .map(PrivateKeyDer::clone_key)
        .ok_or(TlsError::Rustls(rustls::Error::NoCertificatesPresented))
}

/// The transport limits shared by every connection: idle connections are
/// kept alive, dead ones noticed within seconds; streams are bounded.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(CLIENT_STREAMS_MAX.into())
        .max_concurrent_uni_streams(64u32.into())
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_idle_timeout(Some(
            Duration::from_secs(5)
                .try_into()
                .expect("five seconds is a valid idle timeout"),
        ))
        .datagram_receive_buffer_size(Some(1 << 20))
        .datagram_send_buffer_size(1 << 20);
    Arc::new(transport)
}

/// A node's server side: both ALPNs, a client certificate signed by the
/// cluster CA required (unless `insecure_clients`).
pub fn server_config(
    credentials: &Credentials,
    insecure_clients: bool,
) -> Result<quinn::ServerConfig, TlsError> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots(credentials)?, provider());
    let builder = if insecure_clients {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let verifier = builder
        .build()
        .map_err(|error| TlsError::Verifier(error.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(credentials.chain.clone(), key(credentials)?)?;
    tls.alpn_protocols = vec![ALPN_PEER.to_vec(), ALPN_CLIENT.to_vec()];
    let quic =
        QuicServerConfig::try_from(tls).map_err(|error| TlsError::Quic(error.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(transport());
    Ok(server)
}

/// A dialer's side, for `alpn`: verifies the node's chain against the
/// cluster CA and its name [`crate::certs::SERVER_NAME`], and presents
/// `credentials`' certificate (none when it has no chain: insecure dev
/// clients only).
pub fn client_config(
    credentials: &Credentials,
    alpn: &[u8],
) -> Result<quinn::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(credentials)?);
    let mut tls = if credentials.chain.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_auth_cert(credentials.chain.clone(), key(credentials)?)?
    };
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic =
        QuicClientConfig::try_from(tls).map_err(|error| TlsError::Quic(error.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    client.transport_config(transport());
    Ok(client)
}

/// The ALPN a connection agreed on.
pub fn alpn(connection: &quinn::Connection) -> Option<Vec<u8>> {
    connection
        .handshake_data()?
        .downcast::<HandshakeData>()
        .ok()?
        .protocol
}

/// Who the peer of a connection is, from its verified certificate; `None`
/// when it presented none (an insecure dev client).
pub fn peer(connection: &quinn::Connection) -> Result<Option<Identity>, CertError> {
    let Some(any) = connection.peer_identity() else {
        return Ok(None);
    };
    let chain = any
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| CertError::NoIdentity("not an X.509 chain".into()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| CertError::NoIdentity("empty chain".into()))?;
    identity(leaf).map(Some)
}
