//! The console's own listener (`[console] listen`), besides the admin listener: HTTPS with the
//! configured certificate for a bureau's intranet, or plain HTTP on a loopback address (for a
//! local TLS reverse proxy). It serves only the console, never the JSON admin API.
//!
//! TLS handshakes run concurrently, each bounded by [`HANDSHAKE_TIMEOUT`], so a client that
//! stalls mid-handshake holds up no one else.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::config::ConsoleSection;
use crate::daemon::Node;

/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound console listener.
pub enum ConsoleListener {
    Plain(TcpListener),
    Tls(TlsListener),
}

impl ConsoleListener {
    /// Reads the certificate and key (if any) and binds `console.listen`; `None` without it.
    pub async fn bind(section: &ConsoleSection) -> Result<Option<ConsoleListener>> {
        let Some(addr) = section.listen else { return Ok(None) };
        let tls = match (&section.tls_cert, &section.tls_key) {
            (Some(cert), Some(key)) => Some(server_config(cert, key)?),
            _ => None,
        };
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (console.listen): is the port taken?"))?;
        Ok(Some(match tls {
            Some(config) => ConsoleListener::Tls(TlsListener::new(tcp, config)?),
            None => ConsoleListener::Plain(tcp),
        }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            ConsoleListener::Plain(l) => l.local_addr(),
            ConsoleListener::Tls(l) => Ok(l.local),
        }
    }

    /// Serves the console on this listener until `shutdown` completes.
    pub async fn serve(self, node: Arc<Node>, token: Arc<String>, shutdown: impl Future<Output = ()> + Send + 'static) {
        let result = match self {
            ConsoleListener::Plain(l) => {
                axum::serve(l, super::router(node, token, false)).with_graceful_shutdown(shutdown).await
            }
            ConsoleListener::Tls(l) => {
                axum::serve(l, super::router(node, token, true)).with_graceful_shutdown(shutdown).await
            }
        };
        if let Err(e) = result {
            tracing::error!("console listener stopped: {e}");
        }
    }
}

/// TLS server configuration from a PEM certificate chain and its PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| anyhow::anyhow!("console.tls_cert: cannot read PEM certificates from {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("console.tls_cert: {} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("console.tls_key: cannot read a PEM private key from {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("console.tls_cert / console.tls_key: the key does not fit the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections and hands on those whose TLS handshake completed.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` (the accept task ends when this listener is dropped).
    fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = tokio::select! {
                    _ = tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!("console: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("console: TLS handshake from {addr} failed: {e}"),
                        Err(_) => tracing::debug!("console: TLS handshake from {addr} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task ended (it only does when this listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
