//! rustls 0.23 configurations for mutual TLS 1.3 between the two nodes (ring provider).
//!
//! The peer is authenticated either by a pinned certificate (SHA-256 of its DER encoding, checked
//! by [`PinnedVerifier`], which still verifies the handshake signature with the provider's
//! algorithms) or by a private CA (rustls' WebPKI verifiers, plus a check that the certificate
//! names the configured peer). Both directions are checked: a node accepts only its configured peer
//! as client and connects only to its configured peer as server.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};

use crate::config::{cert_fingerprint, format_fingerprint};

/// ALPN protocol id of Tandem node-to-node QUIC.
pub const ALPN: &[u8] = b"tandem/1";

/// How this node authenticates its peer.
#[derive(Clone, Debug)]
pub enum PeerTrust {
    /// The peer's certificate must have exactly this SHA-256 fingerprint (`peer.fingerprint`).
    Pinned([u8; 32]),
    /// The peer's certificate must chain to one of these CA certificates (`peer.ca`) and name
    /// `peer.name` in its subject alternative names.
    Ca(Vec<CertificateDer<'static>>),
}

/// This node's certificate and key.
pub struct TlsIdentity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cert_error(msg: String) -> rustls::Error {
    #[derive(Debug)]
    struct Msg(String);
    impl std::fmt::Display for Msg {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Msg {}
    rustls::Error::Other(OtherError(Arc::new(Msg(msg))))
}

/// Accepts exactly one certificate, identified by its SHA-256 fingerprint, in either direction.
/// Signatures are still verified with the provider's algorithms, so the peer must hold the key.
#[derive(Debug)]
pub struct PinnedVerifier {
    fingerprint: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    pub fn new(fingerprint: [u8; 32], provider: &CryptoProvider) -> PinnedVerifier {
        PinnedVerifier { fingerprint, algorithms: provider.signature_verification_algorithms }
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let got = cert_fingerprint(end_entity);
        if got == self.fingerprint {
            Ok(())
        } else {
            Err(cert_error(format!(
                "peer certificate fingerprint {} does not match the pinned peer.fingerprint {}",
                format_fingerprint(&got),
                format_fingerprint(&self.fingerprint)
            )))
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Private-CA client verification: WebPKI chain check, then the certificate must name the peer.
#[derive(Debug)]
struct CaClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    peer_name: ServerName<'static>,
}

fn ca_refusal(e: rustls::Error) -> rustls::Error {
    cert_error(format!("peer certificate is not accepted by the private CA in peer.ca: {e}"))
}

impl ClientCertVerifier for CaClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now).map_err(ca_refusal)?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, &self.peer_name).map_err(|_| {
            cert_error(format!(
                "peer certificate is signed by the CA but does not name peer.name '{}'",
                self.peer_name.to_str()
            ))
        })?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Private-CA server verification with an error that names the config key.
#[derive(Debug)]
struct CaServerVerifier {
    inner: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for CaServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now).map_err(ca_refusal)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn roots(cas: &[CertificateDer<'static>]) -> Result<Arc<rustls::RootCertStore>> {
    let mut store = rustls::RootCertStore::empty();
    for ca in cas {
        store.add(ca.clone()).context("peer.ca: not a usable CA certificate")?;
    }
    Ok(Arc::new(store))
}

/// Server side: TLS 1.3 only, a client certificate is mandatory and must be the peer's.
pub fn server_config(identity: &TlsIdentity, trust: &PeerTrust, peer_name: &str) -> Result<rustls::ServerConfig> {
    let prov = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match trust {
        PeerTrust::Pinned(fp) => Arc::new(PinnedVerifier::new(*fp, &prov)),
        PeerTrust::Ca(cas) => Arc::new(CaClientVerifier {
            inner: rustls::server::WebPkiClientVerifier::builder_with_provider(roots(cas)?, prov.clone()).build()?,
            peer_name: ServerName::try_from(peer_name.to_string())
                .with_context(|| format!("peer.name '{peer_name}' is not a valid DNS name"))?,
        }),
    };
    let mut tls = rustls::ServerConfig::builder_with_provider(prov)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())
        .context("node.tls_cert / node.tls_key do not form a usable certificate and key pair")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(tls)
}

/// Client side: TLS 1.3 only, presents this node's certificate, accepts only the peer's.
pub fn client_config(identity: &TlsIdentity, trust: &PeerTrust) -> Result<rustls::ClientConfig> {
    let prov = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        PeerTrust::Pinned(fp) => Arc::new(PinnedVerifier::new(*fp, &prov)),
        PeerTrust::Ca(cas) => Arc::new(CaServerVerifier {
            inner: rustls::client::WebPkiServerVerifier::builder_with_provider(roots(cas)?, prov.clone()).build()?,
        }),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(prov)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())
        .context("node.tls_cert / node.tls_key do not form a usable certificate and key pair")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(tls)
}
