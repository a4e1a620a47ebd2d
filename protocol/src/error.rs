//! The one error type of the protocol crate. Every failure caused by the peer (bad frame, wrong
//! message, timeout, abort) is an `Error`, never a panic.
//!
//! The variant says whose fault a failure is, so callers branch on types, never on message text:
//! [`Error::Transport`] (the connection), [`Error::Peer`] (a check of the peer's messages failed),
//! [`Error::PeerAbort`] (the peer ended the job), [`Error::Mismatch`] (the nodes run different
//! jobs or parameters), [`Error::Input`] (this party's own input; the message names the fix) and
//! [`Error::Record`] (this party could not record a disclosure). Messages may hold this party's
//! IDs and values: they are for the local operator, never sent to the peer as they are.

/// Result of any protocol step.
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer's messages fail a check of the protocol: the peer misbehaves or runs other code.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The peer aborted the job and said why.
    #[error("peer aborted: {0}")]
    PeerAbort(String),
    /// The two nodes do not run the same job: `what` differs, `detail` says how and the fix.
    #[error("{what} differ from the peer's: {detail}")]
    Mismatch { what: &'static str, detail: String },
    /// This party's own input (IDs, parameters, arguments) is unusable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// This party could not record a disclosure (its gate's storage failed).
    #[error("cannot record a reveal: {0}")]
    Record(String),
}

/// The connection failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The transport is gone: the peer closed the connection or the process died.
    #[error("connection to peer closed: {0}")]
    Closed(String),
    /// The peer sent nothing within the transport's timeout.
    #[error("peer sent nothing for {0} s (timeout); check that the peer node is running and reachable")]
    Timeout(u64),
    /// A frame's declared length exceeds the limit; nothing beyond the header was read.
    #[error("frame '{kind}' of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { kind: String, len: u64, limit: u64 },
}

/// One variant per check of the peer's messages. `what` names the message or value checked.
/// Each message says the peer is at fault.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer sent a different message than the protocol step expects.
    #[error("expected message '{expected}' from peer but got '{got}'")]
    UnexpectedMessage { expected: String, got: String },
    /// A frame's payload did not decode as the expected message.
    #[error("cannot decode message '{kind}' from peer: {reason}")]
    Decode { kind: String, reason: String },
    /// A message's size differs from the one the protocol step fixes.
    #[error("protocol violation by peer: {what} carried {got} {unit}, expected {expected}")]
    WrongLength { what: String, unit: &'static str, expected: u64, got: u64 },
    /// An announced count is above the protocol's limit (or zero where one is needed).
    #[error("protocol violation by peer: {what}: the peer announced {got}, allowed {allowed}")]
    BadCount { what: String, got: u64, allowed: String },
    /// A received value is outside its range or repeats one that must be unique.
    #[error("protocol violation by peer: {what} is {got}, outside {range} or repeated")]
    OutOfRange { what: String, got: u64, range: String },
    /// Bytes that must encode a Ristretto255 point do not (or encode the identity).
    #[error("protocol violation by peer: {what} is not a valid Ristretto255 point encoding (or is the identity)")]
    NotOnCurve { what: String },
    /// A list the peer built from distinct items repeats one.
    #[error("protocol violation by peer: {what} repeats a tag")]
    DuplicateTag { what: String },
    /// Opened or announced values contradict each other or the job (e.g. counts above totals).
    #[error("protocol violation by peer: {what}")]
    Inconsistent { what: String },
    /// The peer's signature does not verify under the key the job names.
    #[error(
        "protocol violation by peer: {what} does not verify: the nodes saw different traffic, or the peer signs with another key"
    )]
    BadSignature { what: String },
}

impl Error {
    /// What this party may tell the peer about this failure: a fixed phrase per kind of failure,
    /// never the message (which may hold this party's IDs, values or paths).
    pub fn peer_notice(&self) -> &'static str {
        use {PeerError as P, TransportError as T};
        match self {
            Error::Transport(T::Closed(_)) => "connection closed",
            Error::Transport(T::Timeout(_)) => "no message within the read timeout",
            Error::Transport(T::FrameTooLarge { .. }) => "a frame over the size limit",
            Error::Peer(P::UnexpectedMessage { .. }) => "an unexpected message",
            Error::Peer(P::Decode { .. }) => "a message that does not decode",
            Error::Peer(P::BadSignature { .. }) => "a signature that does not verify",
            Error::Peer(_) | Error::PeerAbort(_) => "inconsistent protocol data",
            Error::Mismatch { .. } => "job terms that differ from its own",
            Error::Input(_) => "its own input cannot be used for this job",
            Error::Record(_) => "it could not record a disclosure",
        }
    }
}

impl PeerError {
    /// A payload of `got` bytes where the protocol step fixes `expected`.
    pub fn wrong_bytes(what: impl Into<String>, expected: u64, got: u64) -> PeerError {
        PeerError::WrongLength { what: what.into(), unit: "bytes", expected, got }
    }
}

/// This party's own input is unusable; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// An ID of this party's list does not parse as its kind.
    #[error("{file} line {line}: ID '{id}' {why} (kind {kind}; or skip bad IDs to drop such rows)")]
    InvalidId { file: String, line: usize, id: String, why: String, kind: String },
    /// An ID of this party's list repeats an earlier one.
    #[error(
        "{file} line {line}: ID '{id}' repeats the ID of line {first_line}: each entity must appear once; merge \
         or remove the repeated row (or skip bad IDs to keep the first)"
    )]
    RepeatedId { file: String, line: usize, id: String, first_line: usize },
    /// This party's PSI input holds repeated IDs (found after hashing).
    #[error(
        "{who}'s PSI input contains repeated IDs (or two tags collide, probability below 2^-40): deduplicate them \
         (prepare_ids reports repeats with line numbers) and rerun"
    )]
    RepeatedIds { who: &'static str },
    /// More IDs than one PSI run takes.
    #[error("PSI input has {n} IDs, more than the limit of {limit}: split the job")]
    TooManyIds { n: usize, limit: usize },
    /// The `min_intersection` rule refused the job; nothing was released.
    #[error(
        "PSI refused by rule min_intersection: {why} {min} entities; no result is released to either party (lower \
         min_intersection in both policies only if a smaller overlap is acceptable)"
    )]
    BelowMinimum { min: u64, why: String },
    /// The channel's gate does not allow opening values under `rule`.
    #[error("reveal refused: rule '{rule}' is not allowed for this job: the job's reveal list does not name it")]
    RevealRefused { rule: String },
    /// The channel has no gate: nothing may be opened.
    #[error("no reveal gate is set on this channel: nothing may be opened ('{what}')")]
    NoGate { what: String },
    /// A name given for a parameter is not one of the known values.
    #[error("unknown {what} '{got}': use {allowed}")]
    Unknown { what: &'static str, got: String, allowed: &'static str },
    /// The job's parameters are unusable or do not fit together; the message names the fix.
    #[error("{0}")]
    Param(String),
    /// This party's data gives a value the computation cannot use (e.g. a logit out of range).
    #[error("{0}")]
    Data(String),
    /// A function got inconsistent arguments (sizes, owners, ranges): a bug of the calling code.
    #[error("{op}: {detail}")]
    Usage { op: &'static str, detail: String },
}
