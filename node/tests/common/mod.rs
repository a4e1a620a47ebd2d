//! Helpers shared by the node's integration tests: keys, certificates and link settings.
#![allow(dead_code)]

pub mod daemons;
pub mod jobs;

use std::time::{Duration, Instant};

use node::identity::self_signed_cert;
use node::transport::{Hello, Link, LinkSettings, PROTOCOL_VERSION, PeerConnection, PeerTrust, TlsIdentity};
use protocol::Role;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub fn tls_identity(name: &str) -> (TlsIdentity, [u8; 32]) {
    let (cert_pem, key_pem, der) = self_signed_cert(name).unwrap();
    let identity = TlsIdentity {
        cert: CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap(),
        key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
    };
    (identity, node::config::cert_fingerprint(&der))
}

/// A private CA; `leaf(name)` issues a certificate for node `name`.
pub struct TestCa {
    pub cert: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        p.distinguished_name.push(rcgen::DnType::CommonName, "tandem test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        TestCa { cert: cert.der().clone(), issuer: rcgen::Issuer::new(p, key) }
    }

    pub fn leaf(&self, name: &str) -> TlsIdentity {
        let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        p.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        TlsIdentity {
            cert: cert.der().clone(),
            key: PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        }
    }

    pub fn trust(&self) -> PeerTrust {
        PeerTrust::Ca(vec![self.cert.clone()])
    }
}

pub fn settings(name: &str, role: Role, peer_name: &str, peer_role: Role) -> LinkSettings {
    LinkSettings {
        me: Hello { version: PROTOCOL_VERSION, name: name.into(), role },
        peer_name: peer_name.into(),
        peer_role,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(10),
        keepalive: Duration::from_secs(2),
    }
}

pub fn link(identity: &TlsIdentity, trust: &PeerTrust, settings: LinkSettings) -> Link {
    Link::bind_addr(identity, trust, settings, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// `client` dials `server`; returns (server side, client side), errors as full strings.
pub async fn handshake(
    server: &Link,
    client: &Link,
) -> (Result<PeerConnection, String>, Result<PeerConnection, String>) {
    let addr = server.local_addr().unwrap();
    let accept = async {
        let incoming = server.accept().await.expect("endpoint open");
        server.handshake(incoming).await.map_err(|e| format!("{e:#}"))
    };
    let dial = async { client.connect(addr).await.map_err(|e| format!("{e:#}")) };
    tokio::join!(accept, dial)
}

/// Polls `check` every 20 ms until it gives a value. Panics naming `what` after 60 s: a hang
/// guard generous enough for a loaded 2-core CI machine, never a timing assertion.
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up after 60 s waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
