//! Node-to-node transport: QUIC (quinn) with mutual TLS 1.3 (rustls, ring), an application-level
//! hello, and one bidirectional stream per job carrying `protocol::channel` frames.

pub mod link;
pub mod loopback;
pub mod stream;
pub mod tls;

pub use link::{Hello, Link, LinkSettings, PROTOCOL_VERSION, PeerConnection};
pub use stream::QuicTransport;
pub use tls::{PeerTrust, TlsIdentity};
