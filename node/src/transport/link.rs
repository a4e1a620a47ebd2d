//! The QUIC endpoint of a node and the application-level hello.
//!
//! After the TLS handshake (which already authenticated the peer's certificate, see
//! [`super::tls`]) the dialling node opens a stream and sends [`Hello`]; the accepting node checks
//! protocol version, name and role against its config and answers with its own hello or a
//! refusal. The dialling node checks the answer the same way. Only then is the connection used
//! for jobs. The role is never taken from the peer's word: the hello must repeat the role that
//! this node's config assigns to the (already verified) certificate.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use protocol::Role;
use protocol::channel::{Frame, decode};
use quinn::{Connection, ConnectionError, Endpoint, Incoming};
use serde::{Deserialize, Serialize};

use super::stream::{read_frame, within, write_frame};
use super::tls::{PeerTrust, TlsIdentity, client_config, server_config};

/// Node-to-node protocol version; both nodes must speak the same one.
pub const PROTOCOL_VERSION: u32 = 1;
/// Connection close code: the hello was refused.
pub const REFUSED_CODE: u32 = 2;
/// Connection close code: the node is shutting down.
pub const SHUTDOWN_CODE: u32 = 3;
const MAX_HELLO: usize = 4096;

/// What a node says about itself when a connection opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, Deserialize)]
enum HelloReply {
    Welcome(Hello),
    Refused(String),
}

/// Everything the link needs from the node config.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    /// This node's hello (tests may change the version).
    pub me: Hello,
    /// The configured peer: name and role bound to its certificate by config.
    pub peer_name: String,
    pub peer_role: Role,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive: Duration,
}

/// A QUIC connection to the configured peer that passed TLS and the hello.
#[derive(Clone, Debug)]
pub struct PeerConnection {
    pub connection: Connection,
    pub peer: Hello,
}

/// A node's QUIC endpoint: accepts the peer's connections and dials the peer from the same socket.
pub struct Link {
    endpoint: Endpoint,
    settings: Arc<LinkSettings>,
}

/// Checks a peer's hello against config; the error names what does not match.
pub fn check_hello(settings: &LinkSettings, hello: &Hello) -> Result<(), String> {
    if hello.version != settings.me.version {
        return Err(format!(
            "protocol version mismatch: peer '{}' speaks version {}, this node '{}' speaks version {}; upgrade the older node",
            hello.name, hello.version, settings.me.name, settings.me.version
        ));
    }
    if hello.name != settings.peer_name {
        return Err(format!(
            "name mismatch: the peer certificate belongs to '{}' (peer.name) but the peer calls itself '{}'",
            settings.peer_name, hello.name
        ));
    }
    if hello.role != settings.peer_role {
        return Err(format!(
            "role mismatch: peer '{}' claims role '{}' but config assigns role '{}' to its certificate (peer.role)",
            hello.name, hello.role, settings.peer_role
        ));
    }
    Ok(())
}

fn transport_config(s: &LinkSettings) -> Result<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(s.idle_timeout.try_into().context("timeouts.idle_secs is too large")?));
    t.keep_alive_interval(Some(s.keepalive));
    Ok(t)
}

/// Describes why a connection ended, from this node's point of view.
pub fn describe_close(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => {
            format!("peer closed the connection: {}", String::from_utf8_lossy(&c.reason))
        }
        ConnectionError::ConnectionClosed(c) => {
            format!(
                "peer closed the connection during the TLS handshake ({c}); it did not accept this node's certificate"
            )
        }
        ConnectionError::TransportError(t) => format!("TLS/QUIC handshake failed: {t}"),
        ConnectionError::TimedOut => {
            "peer did not answer (timeout); check peer.addr and that the peer node runs".into()
        }
        other => other.to_string(),
    }
}

/// The QUIC/TLS configuration of a [`Link`], built (and so checked) before any socket is used.
pub struct LinkConfig {
    server: quinn::ServerConfig,
    client: quinn::ClientConfig,
    settings: LinkSettings,
}

impl LinkConfig {
    /// Builds both TLS configurations; fails if the certificate and key do not form a pair or
    /// the peer trust is unusable.
    pub fn new(identity: &TlsIdentity, trust: &PeerTrust, settings: LinkSettings) -> Result<LinkConfig> {
        let transport = Arc::new(transport_config(&settings)?);
        let server_tls = server_config(identity, trust, &settings.peer_name)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).context("QUIC server TLS config")?,
        ));
        server.transport_config(transport.clone());
        let client_tls = client_config(identity, trust)?;
        let mut client = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).context("QUIC client TLS config")?,
        ));
        client.transport_config(transport);
        Ok(LinkConfig { server, client, settings })
    }

    /// Opens the endpoint on an already bound UDP socket.
    pub fn bind(self, socket: UdpSocket) -> Result<Link> {
        let runtime = quinn::default_runtime().context("no async runtime for QUIC")?;
        let mut endpoint = Endpoint::new(quinn::EndpointConfig::default(), Some(self.server), socket, runtime)
            .context("cannot open the QUIC endpoint")?;
        endpoint.set_default_client_config(self.client);
        Ok(Link { endpoint, settings: Arc::new(self.settings) })
    }
}

impl Link {
    /// Binds the endpoint on an already bound UDP socket (lets tests and the daemon pick ports).
    pub fn bind(identity: &TlsIdentity, trust: &PeerTrust, settings: LinkSettings, socket: UdpSocket) -> Result<Link> {
        LinkConfig::new(identity, trust, settings)?.bind(socket)
    }

    /// Binds a fresh UDP socket on `addr`.
    pub fn bind_addr(
        identity: &TlsIdentity,
        trust: &PeerTrust,
        settings: LinkSettings,
        addr: SocketAddr,
    ) -> Result<Link> {
        let socket = UdpSocket::bind(addr).with_context(|| format!("cannot bind UDP {addr} (node.listen)"))?;
        Link::bind(identity, trust, settings, socket)
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    pub fn settings(&self) -> &LinkSettings {
        &self.settings
    }

    /// Dials the peer, completes TLS and the hello.
    pub async fn connect(&self, addr: SocketAddr) -> Result<PeerConnection> {
        let s = &self.settings;
        let connecting = self
            .endpoint
            .connect(addr, &s.peer_name)
            .with_context(|| format!("cannot dial peer '{}' at {addr}", s.peer_name))?;
        let outcome = tokio::time::timeout(s.connect_timeout, async {
            let conn = connecting.await.map_err(|e| anyhow!(describe_close(&e)))?;
            let peer = client_hello(&conn, s).await?;
            Ok::<_, anyhow::Error>(PeerConnection { connection: conn, peer })
        })
        .await;
        match outcome {
            Ok(r) => r.with_context(|| format!("connecting to peer '{}' at {addr}", s.peer_name)),
            Err(_) => bail!(
                "connecting to peer '{}' at {addr}: no answer within {} s (timeouts.connect_secs); check peer.addr and that the peer node runs",
                s.peer_name,
                s.connect_timeout.as_secs()
            ),
        }
    }

    /// Next incoming connection attempt, or `None` once the endpoint is closed.
    pub async fn accept(&self) -> Option<Incoming> {
        self.endpoint.accept().await
    }

    /// Completes TLS and the hello for an incoming connection.
    pub async fn handshake(&self, incoming: Incoming) -> Result<PeerConnection> {
        let s = &self.settings;
        let remote = incoming.remote_address();
        let outcome = tokio::time::timeout(s.connect_timeout, async {
            let conn = incoming.await.map_err(|e| anyhow!(describe_close(&e)))?;
            let peer = server_hello(&conn, s).await?;
            Ok::<_, anyhow::Error>(PeerConnection { connection: conn, peer })
        })
        .await;
        match outcome {
            Ok(r) => r.with_context(|| format!("refused connection from {remote}")),
            Err(_) => bail!("refused connection from {remote}: no hello within {} s", s.connect_timeout.as_secs()),
        }
    }

    /// Closes every connection and stops accepting.
    pub async fn shutdown(&self) {
        self.endpoint.close(SHUTDOWN_CODE.into(), b"node shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("hello messages encode")
}

fn lost(conn: &Connection, e: protocol::Error) -> anyhow::Error {
    match conn.close_reason() {
        Some(reason) => anyhow!(describe_close(&reason)),
        None => anyhow!("hello failed: {e}"),
    }
}

/// Refuses the connection: tells the peer why, then closes with the reason.
async fn refuse(conn: &Connection, send: Option<&mut quinn::SendStream>, reason: String) -> anyhow::Error {
    if let Some(send) = send {
        let frame = Frame { kind: "hello".into(), payload: encode(&HelloReply::Refused(reason.clone())) };
        if write_frame(send, &frame).await.is_ok() {
            let _ = send.finish();
            // Give the peer a moment to read the refusal and close first.
            let _ = tokio::time::timeout(Duration::from_millis(500), conn.closed()).await;
        }
    }
    let bounded: String = reason.chars().take(900).collect();
    conn.close(REFUSED_CODE.into(), bounded.as_bytes());
    anyhow!(reason)
}

async fn client_hello(conn: &Connection, s: &LinkSettings) -> Result<Hello> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| anyhow!(describe_close(&e)))?;
    let frame = Frame { kind: "hello".into(), payload: encode(&s.me) };
    write_frame(&mut send, &frame).await.map_err(|e| lost(conn, e))?;
    let reply = within(s.connect_timeout, read_frame(&mut recv, MAX_HELLO)).await.map_err(|e| lost(conn, e))?;
    let reply: HelloReply = decode_hello(&reply)?;
    match reply {
        HelloReply::Refused(reason) => {
            conn.close(REFUSED_CODE.into(), b"refusal received");
            bail!("peer refused this node: {reason}")
        }
        HelloReply::Welcome(hello) => match check_hello(s, &hello) {
            Ok(()) => Ok(hello),
            Err(reason) => Err(refuse(conn, None, reason).await),
        },
    }
}

async fn server_hello(conn: &Connection, s: &LinkSettings) -> Result<Hello> {
    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| anyhow!(describe_close(&e)))?;
    let frame = within(s.connect_timeout, read_frame(&mut recv, MAX_HELLO)).await.map_err(|e| lost(conn, e))?;
    let hello: Hello = decode_hello(&frame)?;
    if let Err(reason) = check_hello(s, &hello) {
        return Err(refuse(conn, Some(&mut send), reason).await);
    }
    let reply = Frame { kind: "hello".into(), payload: encode(&HelloReply::Welcome(s.me.clone())) };
    write_frame(&mut send, &reply).await.map_err(|e| lost(conn, e))?;
    let _ = send.finish();
    Ok(hello)
}

fn decode_hello<T: serde::de::DeserializeOwned>(frame: &Frame) -> Result<T> {
    if frame.kind != "hello" {
        bail!("expected a hello from the peer, got '{}'", frame.kind);
    }
    decode("hello", &frame.payload).map_err(|e| anyhow!("{e}"))
}
