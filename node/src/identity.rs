//! Node key material: `tandem init` writes it, the daemon loads it.
//!
//! Files in the node directory (all written with mode 0600, never overwritten):
//! - `tls.key` / `tls.crt`: ECDSA P-256 key (PKCS#8 PEM) and self-signed certificate for QUIC mTLS;
//! - `signing.key`: Ed25519 secret key (hex) that signs transcript heads; `signing.pub`: its public key;
//! - `admin.token`: bearer token for the local admin API.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::config::{cert_fingerprint, format_fingerprint};

pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const SIGNING_KEY: &str = "signing.key";
pub const SIGNING_PUB: &str = "signing.pub";
pub const ADMIN_TOKEN: &str = "admin.token";

/// What `tandem init` created.
#[derive(Debug)]
pub struct InitOutput {
    pub dir: PathBuf,
    /// `sha256:<hex>` of the certificate: give it to the peer's operator (their `peer.fingerprint`).
    pub fingerprint: String,
    pub signing_public_key: String,
}

/// Creates a node directory with fresh keys for node `name`. Refuses to overwrite existing keys.
pub fn init_node_dir(name: &str, out: &Path) -> Result<InitOutput> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!("--name '{name}': use letters, digits and '-' only (it becomes the certificate's DNS name)");
    }
    create_private_dir(out).with_context(|| format!("cannot create node directory {}", out.display()))?;
    for f in [TLS_CERT, TLS_KEY, SIGNING_KEY, SIGNING_PUB, ADMIN_TOKEN] {
        let p = out.join(f);
        if p.exists() {
            bail!("{} already exists: refusing to overwrite node keys; pick another --out directory", p.display());
        }
    }
    let (cert_pem, key_pem, der) = self_signed_cert(name)?;
    write_private(&out.join(TLS_KEY), key_pem.as_bytes())?;
    write_private(&out.join(TLS_CERT), cert_pem.as_bytes())?;

    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(seed.as_mut());
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = hex::encode(signing.verifying_key().as_bytes());
    write_private(&out.join(SIGNING_KEY), Zeroizing::new(hex::encode(seed.as_ref())).as_bytes())?;
    write_private(&out.join(SIGNING_PUB), public.as_bytes())?;

    let mut token = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(token.as_mut());
    write_private(&out.join(ADMIN_TOKEN), Zeroizing::new(hex::encode(token.as_ref())).as_bytes())?;

    Ok(InitOutput {
        dir: out.to_path_buf(),
        fingerprint: format_fingerprint(&cert_fingerprint(&der)),
        signing_public_key: public,
    })
}

/// A fresh ECDSA P-256 key and self-signed certificate naming `name` (and `localhost`).
/// Returns (certificate PEM, key PEM, certificate DER).
pub fn self_signed_cert(name: &str) -> Result<(String, Zeroizing<String>, Vec<u8>)> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string(), "localhost".to_string()])?;
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem()), cert.der().to_vec()))
}

/// Creates `dir` (and missing parents) owner-only (0700); an existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes a file readable by the owner only; fails if it exists.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_new_file(path, bytes, 0o600)
}

/// Writes a file that does not exist yet, all or nothing: the bytes go to `<path>.partial`,
/// are synced, then linked into place (which fails if `path` exists, so nothing is ever
/// overwritten). A crash leaves at most a `.partial` file, never a truncated result.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial); // left by a crash
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&partial)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&partial, path)
    };
    let result =
        write().with_context(|| format!("cannot create {} (an existing file is never overwritten)", path.display()));
    let _ = std::fs::remove_file(&partial);
    result
}

/// Loads the first certificate of a PEM file.
pub fn load_cert(path: &Path) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_file(path).map_err(|e| {
        anyhow::anyhow!("cannot read PEM certificate {}: {e}; run `tandem init` or fix node.tls_cert", path.display())
    })
}

/// Loads a PEM private key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        anyhow::anyhow!("cannot read PEM private key {}: {e}; run `tandem init` or fix node.tls_key", path.display())
    })
}

/// Loads the Ed25519 signing key (64 hex digits).
pub fn load_signing_key(path: &Path) -> Result<ed25519_dalek::SigningKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read signing key {}", path.display()))?,
    );
    let bytes = Zeroizing::new(hex::decode(text.trim()).ok().filter(|b| b.len() == 32).with_context(|| {
        format!("{}: expected 64 hex digits (an Ed25519 secret key written by `tandem init`)", path.display())
    })?);
    let seed: [u8; 32] = bytes.as_slice().try_into().expect("32 bytes");
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Reads the admin bearer token.
pub fn load_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read admin token {} (admin.token_file); run `tandem init` first", path.display())
    })?;
    let t = t.trim().to_string();
    if t.len() < 32 {
        bail!("admin token in {} is shorter than 32 characters: regenerate it with `tandem init`", path.display());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn result_files_are_written_whole_once_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.csv");
        write_new_file(&path, b"id,probability\n", 0o600).unwrap();
        let err = write_new_file(&path, b"other", 0o600).unwrap_err();
        assert!(format!("{err:#}").contains("never overwritten"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"id,probability\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no .partial file is left behind");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
