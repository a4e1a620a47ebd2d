//! What a node tells its peer when it ends a job: a reason code and a fixed message per code,
//! the step it was in and its own name — never the error text, which may hold IDs, values,
//! paths or line numbers of this node's data. The full text stays in this node's job record,
//! log and transcript outcome.
//!
//! A failed step is a [`JobError`], whose variant is fixed where the error arises, from its type
//! ([`protocol::Error`] variants, [`DataError`], refused job files, errors a phase marks with
//! [`InputResult::input`]); [`JobError::kind`] maps it to the reason code.

use std::fmt;

use models::dataset::DataError;

use crate::audit::writer::PhaseEndError;
use crate::jobs::files::FileRefused;

/// Why a job ended, as far as the peer may know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// This node's own data, files or job parameters are unusable.
    Input,
    /// The job does not pass this node's check of the named rule (a config key or job parameter).
    Policy(&'static str),
    /// A message from the peer broke the protocol; the text says how, in fixed words.
    Peer(&'static str),
    /// The connection failed; the text says how, in fixed words.
    Transport(&'static str),
    /// This node failed (storage, keys, a bug).
    Internal,
    /// This node already runs as many jobs as `limits.max_concurrent_jobs` allows.
    Busy,
    /// This node is shutting down.
    Shutdown,
    /// This node's operator cancelled the job.
    Cancelled,
}

impl FailureKind {
    /// The reason code the peer sees.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::Input => "input",
            FailureKind::Policy(_) => "policy",
            FailureKind::Peer(_) => "peer",
            FailureKind::Transport(_) => "transport",
            FailureKind::Internal => "internal",
            FailureKind::Busy => "busy",
            FailureKind::Shutdown => "shutdown",
            FailureKind::Cancelled => "cancelled",
        }
    }

    /// The fixed message the peer sees for this kind.
    fn message(self) -> String {
        match self {
            FailureKind::Input => {
                "its own data, files or job parameters cannot be used for this job; its operator's job record says why"
                    .into()
            }
            FailureKind::Policy(rule) => {
                format!("the job does not pass its check of {rule}; its operator's job record says why")
            }
            FailureKind::Peer(how) => format!("a message it received breaks the protocol ({how})"),
            FailureKind::Transport(how) => format!("the connection failed ({how})"),
            FailureKind::Internal => "it failed internally (e.g. storage); its operator's job record says why".into(),
            FailureKind::Busy => "it already runs as many jobs as its limit allows (limits.max_concurrent_jobs); \
                 submit the job again once one has ended"
                .into(),
            FailureKind::Shutdown => "the node is shutting down; resubmit the job once both nodes run".into(),
            FailureKind::Cancelled => "its operator cancelled the job".into(),
        }
    }

    /// The kind of a protocol error, by its variant.
    pub fn of_protocol(e: &protocol::Error) -> FailureKind {
        use protocol::{Error as E, TransportError as T};
        match e {
            E::Transport(T::Closed(_) | T::Timeout(_)) => FailureKind::Transport(e.peer_notice()),
            E::Transport(T::FrameTooLarge { .. }) | E::Peer(_) | E::PeerAbort(_) | E::Mismatch { .. } => {
                FailureKind::Peer(e.peer_notice())
            }
            E::Input(_) => FailureKind::Input,
            E::Record(_) => FailureKind::Internal,
        }
    }
}

/// Why a job (or one of its steps) failed. The variant is fixed where the error arises, from
/// the error's type, and gives the [`FailureKind`] the peer is told; the text (with every
/// context) stays in this node's records. Deliberately not a `std::error::Error`: it cannot be
/// turned into an `anyhow::Error` (and classified as `internal`) by accident.
#[derive(Debug)]
pub enum JobError {
    /// A protocol step failed; the protocol error's variant says whose fault it is.
    Protocol(protocol::Error),
    /// This node's dataset cannot be read (code `input`).
    Data(DataError),
    /// A file the job names is refused by this node (code `policy`, naming the parameter).
    File(FileRefused),
    /// This node's own data, files or job parameters are unusable (code `input`).
    Input(anyhow::Error),
    /// The job does not pass this node's check of `rule` (code `policy`).
    Policy { rule: &'static str, error: anyhow::Error },
    /// The job was refused (by the peer, which told us, or by us, having told it).
    Refused(String),
    /// This node failed: storage, keys, a bug (code `internal`).
    Internal(anyhow::Error),
    /// `error`, which happened in `context` (e.g. `phase 'psi'`).
    Context { context: String, error: Box<JobError> },
}

impl JobError {
    /// What the peer is told about this failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            JobError::Protocol(e) => FailureKind::of_protocol(e),
            JobError::Data(_) | JobError::Input(_) => FailureKind::Input,
            JobError::File(f) => FailureKind::Policy(f.key),
            JobError::Policy { rule, .. } => FailureKind::Policy(rule),
            JobError::Refused(_) => FailureKind::Policy("policy"),
            JobError::Internal(_) => FailureKind::Internal,
            JobError::Context { error, .. } => error.kind(),
        }
    }

    /// Whether the peer ended the job (its abort, or its refusal) or we refused it having told
    /// the peer: either way the peer need not be told again.
    pub fn peer_knows(&self) -> bool {
        match self {
            JobError::Protocol(protocol::Error::PeerAbort(_)) | JobError::Refused(_) => true,
            JobError::Context { error, .. } => error.peer_knows(),
            _ => false,
        }
    }

    /// The error without its contexts.
    pub fn root(&self) -> &JobError {
        match self {
            JobError::Context { error, .. } => error.root(),
            e => e,
        }
    }

    /// Marks this error as a problem of this node's own input (code `input`), keeping its text.
    pub fn into_input(self) -> JobError {
        match self {
            JobError::Internal(e) => JobError::Input(e),
            e => JobError::Input(anyhow::anyhow!("{e}")),
        }
    }

    /// This error, which happened in `context`.
    pub fn context(self, context: impl fmt::Display) -> JobError {
        JobError::Context { context: context.to_string(), error: Box::new(self) }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Protocol(e) => write!(f, "{e}"),
            JobError::Data(e) => write!(f, "{e}"),
            JobError::File(e) => write!(f, "{e}"),
            JobError::Input(e) | JobError::Policy { error: e, .. } | JobError::Internal(e) => write!(f, "{e:#}"),
            JobError::Refused(reason) => f.write_str(reason),
            JobError::Context { context, error } => write!(f, "{context}: {error}"),
        }
    }
}

impl From<protocol::Error> for JobError {
    fn from(e: protocol::Error) -> JobError {
        JobError::Protocol(e)
    }
}

impl From<protocol::PeerError> for JobError {
    fn from(e: protocol::PeerError) -> JobError {
        JobError::Protocol(e.into())
    }
}

impl From<DataError> for JobError {
    fn from(e: DataError) -> JobError {
        JobError::Data(e)
    }
}

impl From<FileRefused> for JobError {
    fn from(e: FileRefused) -> JobError {
        JobError::File(e)
    }
}

impl From<PhaseEndError> for JobError {
    fn from(e: PhaseEndError) -> JobError {
        match e {
            PhaseEndError::Protocol(e) => JobError::Protocol(e),
            PhaseEndError::Local(e) => JobError::Internal(e),
        }
    }
}

/// Any other error (storage, I/O, encoding) is this node's failure: code `internal`.
impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> JobError {
        JobError::Internal(e)
    }
}

impl From<std::io::Error> for JobError {
    fn from(e: std::io::Error) -> JobError {
        JobError::Internal(e.into())
    }
}

impl From<serde_json::Error> for JobError {
    fn from(e: serde_json::Error) -> JobError {
        JobError::Internal(e.into())
    }
}

/// Result of a job step.
pub type Result<T, E = JobError> = std::result::Result<T, E>;

/// Context on results of job steps that keeps each error's kind (the job-error counterpart of
/// `anyhow::Context`; a missing `Option` value is an internal error).
pub trait JobContext<T> {
    /// Adds `context` to the error's text; the kind stays.
    fn context(self, context: impl fmt::Display) -> Result<T>;
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<JobError>> JobContext<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context.to_string()))
    }
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(f().to_string()))
    }
}

impl<T> JobContext<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| JobError::Internal(anyhow::anyhow!("{context}")))
    }
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| JobError::Internal(anyhow::anyhow!("{}", f())))
    }
}

/// Marks an error as a problem of this node's own data, files or parameters (code `input`).
pub trait InputResult<T> {
    fn input(self) -> Result<T>;
}

impl<T, E: Into<JobError>> InputResult<T> for std::result::Result<T, E> {
    fn input(self) -> Result<T> {
        self.map_err(|e| e.into().into_input())
    }
}

/// An error of this node's own data, files or parameters (code `input`).
pub fn input(e: impl Into<anyhow::Error>) -> JobError {
    JobError::Input(e.into())
}

/// `anyhow::bail!` for job steps: returns an internal [`JobError`] with the formatted text.
#[macro_export]
macro_rules! job_bail {
    ($($arg:tt)*) => {
        return Err($crate::jobs::failure::JobError::Internal(anyhow::anyhow!($($arg)*)))
    };
}

/// The abort text a node sends its peer: `node 'NAME', step 'STEP', reason CODE: MESSAGE`.
pub fn peer_notice(node: &str, step: &str, kind: FailureKind) -> String {
    format!("node '{node}', step '{step}', reason {}: {}", kind.code(), kind.message())
}

#[cfg(test)]
mod tests {
    use anyhow::anyhow;

    use super::*;

    #[test]
    fn errors_are_classified_by_type_not_text() {
        use protocol::{InputError, PeerError, TransportError};
        let data = DataError::Row { file: "/x/bank.csv".into(), line: 5, message: "ID '7'".into() };
        let protocol = |e: protocol::Error| Err::<(), _>(e).context("phase 'psi'").unwrap_err();
        let cases = [
            (Err::<(), _>(data).context("phase 'psi'").unwrap_err(), FailureKind::Input),
            (
                Err::<(), _>(anyhow!("model 'x' is missing")).input().context("phase 'score'").unwrap_err(),
                FailureKind::Input,
            ),
            (protocol(TransportError::Timeout(3).into()), FailureKind::Transport("no message within the read timeout")),
            (
                protocol(PeerError::Decode { kind: "k".into(), reason: "r".into() }.into()),
                FailureKind::Peer("a message that does not decode"),
            ),
            (
                protocol(PeerError::NotOnCurve { what: "p".into() }.into()),
                FailureKind::Peer("inconsistent protocol data"),
            ),
            (protocol(InputError::TooManyIds { n: 9, limit: 8 }.into()), FailureKind::Input),
            (
                protocol(protocol::Error::Mismatch { what: "PSI parameters", detail: "x".into() }),
                FailureKind::Peer("job terms that differ from its own"),
            ),
            (protocol(protocol::Error::Record("disk full".into())), FailureKind::Internal),
            // Text that looks like a protocol error is still internal: only types count.
            (anyhow!("protocol violation by peer: timeout").into(), FailureKind::Internal),
            (
                Err::<(), _>(std::io::Error::other("disk full")).context("cannot create job directory").unwrap_err(),
                FailureKind::Internal,
            ),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e}");
        }
        // A marked error keeps its whole text for the local record.
        let e = Err::<(), _>(anyhow!("line 5: bad").context("dataset 'd'")).input().context("phase 'psi'").unwrap_err();
        assert_eq!(e.to_string(), "phase 'psi': dataset 'd': line 5: bad");
        let abort = protocol(protocol::Error::PeerAbort("x".into()));
        assert!(abort.peer_knows() && !e.peer_knows());
        assert_eq!(
            peer_notice("bank", "psi", e.kind()),
            "node 'bank', step 'psi', reason input: its own data, files or job parameters cannot be used for this \
             job; its operator's job record says why"
        );
    }
}
