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

/// A small tmpfs mounted for a test (root only), to run a node out of disk space; unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"4m"`) in a fresh directory; `None`, with the reason
    /// printed, where mounting is not permitted (the calling test then checks nothing).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!("SKIPPED: cannot mount a tmpfs: {}", String::from_utf8_lossy(&o.stderr).trim());
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills the file system until a write fails for lack of space.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0xa5u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        assert_eq!(std::fs::write(self.path().join("one-more"), b"x").unwrap_err().raw_os_error(), Some(28));
    }

    /// Frees what [`Tmpfs::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
