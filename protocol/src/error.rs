//! The one error type of the protocol crate. Every failure caused by the peer (bad frame, wrong
//! message, timeout, abort) is an `Error`, never a panic.

/// Result of any protocol step.
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The transport is gone: the peer closed the connection or the process died.
    #[error("connection to peer closed: {0}")]
    Closed(String),
    /// The peer sent nothing within the transport's timeout.
    #[error("peer sent nothing for {0} s (timeout); check that the peer node is running and reachable")]
    Timeout(u64),
    /// A frame's declared length exceeds the limit; nothing beyond the header was read.
    #[error("frame '{kind}' of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { kind: String, len: u64, limit: u64 },
    /// The peer sent a different message than the protocol step expects.
    #[error("expected message '{expected}' from peer but got '{got}'")]
    UnexpectedMessage { expected: String, got: String },
    /// A frame's payload did not decode as the expected message.
    #[error("cannot decode message '{kind}' from peer: {reason}")]
    Decode { kind: String, reason: String },
    /// The peer aborted the job and said why.
    #[error("peer aborted: {0}")]
    PeerAbort(String),
    /// The peer's messages are well-formed but inconsistent with the protocol (wrong sizes, ...).
    #[error("protocol violation by peer: {0}")]
    Protocol(String),
    /// Local input (IDs, parameters) is unusable; the message names the fix.
    #[error("{0}")]
    Input(String),
}
