//! What a node tells its peer when it ends a job: a reason code and a fixed message per code,
//! the step it was in and its own name — never the error text, which may hold IDs, values,
//! paths or line numbers of this node's data. The full text stays in this node's job record,
//! log and transcript outcome.
//!
//! Errors are classified by type ([`FailureKind::of`]): [`protocol::Error`] variants,
//! [`models::dataset::DataError`], refused job files, and errors a phase marks with [`input`].

use std::fmt;

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

    /// Classifies `e` by the first typed error in its chain (outermost first); `Internal` if none.
    pub fn of(e: &anyhow::Error) -> FailureKind {
        e.chain().find_map(kind_of).unwrap_or(FailureKind::Internal)
    }
}

fn kind_of(e: &(dyn std::error::Error + 'static)) -> Option<FailureKind> {
    if let Some(m) = e.downcast_ref::<Marked>() {
        return Some(m.kind);
    }
    if let Some(e) = e.downcast_ref::<protocol::Error>() {
        use protocol::Error as E;
        return Some(match e {
            E::Closed(_) => FailureKind::Transport("connection closed"),
            E::Timeout(_) => FailureKind::Transport("no message within the read timeout"),
            E::FrameTooLarge { .. } => FailureKind::Peer("a frame over the size limit"),
            E::UnexpectedMessage { .. } => FailureKind::Peer("an unexpected message"),
            E::Decode { .. } => FailureKind::Peer("a message that does not decode"),
            E::Protocol(_) | E::PeerAbort(_) => FailureKind::Peer("inconsistent protocol data"),
            E::Input(_) => FailureKind::Input,
        });
    }
    if e.is::<models::dataset::DataError>() {
        return Some(FailureKind::Input);
    }
    if let Some(f) = e.downcast_ref::<FileRefused>() {
        return Some(FailureKind::Policy(f.key));
    }
    None
}

/// Whether `e` is the peer's abort (the peer ended the job and need not be told).
pub fn is_peer_abort(e: &anyhow::Error) -> bool {
    e.chain().any(|c| matches!(c.downcast_ref::<protocol::Error>(), Some(protocol::Error::PeerAbort(_))))
}

/// An error marked with its kind; shows the marked error's whole chain.
#[derive(Debug)]
struct Marked {
    kind: FailureKind,
    inner: anyhow::Error,
}

impl fmt::Display for Marked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.inner)
    }
}

impl std::error::Error for Marked {}

/// Marks `e` as being of `kind` (its text is kept whole for this node's records).
pub fn mark(kind: FailureKind, e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Marked { kind, inner: e.into() })
}

/// Marks `e` as a problem of this node's own data, files or job parameters (code `input`).
pub fn input(e: impl Into<anyhow::Error>) -> anyhow::Error {
    mark(FailureKind::Input, e)
}

/// `?`-friendly [`input`].
pub trait InputResult<T> {
    fn input(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> InputResult<T> for Result<T, E> {
    fn input(self) -> anyhow::Result<T> {
        self.map_err(input)
    }
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
        let data = models::dataset::DataError::Row { file: "/x/bank.csv".into(), line: 5, message: "ID '7'".into() };
        let cases = [
            (anyhow::Error::new(data).context("phase 'psi'"), FailureKind::Input),
            (input(anyhow!("model 'x' is missing")).context("phase 'score'"), FailureKind::Input),
            (
                anyhow::Error::new(protocol::Error::Timeout(3)).context("phase 'psi'"),
                FailureKind::Transport("no message within the read timeout"),
            ),
            (
                anyhow::Error::new(protocol::Error::Decode { kind: "k".into(), reason: "r".into() }),
                FailureKind::Peer("a message that does not decode"),
            ),
            (anyhow::Error::new(protocol::Error::Input("ids".into())), FailureKind::Input),
            // Text that looks like a protocol error is still internal: only types count.
            (anyhow!("protocol violation by peer: timeout"), FailureKind::Internal),
            (
                anyhow::Error::new(std::io::Error::other("disk full")).context("cannot create job directory"),
                FailureKind::Internal,
            ),
        ];
        for (e, kind) in cases {
            assert_eq!(FailureKind::of(&e), kind, "{e:#}");
        }
        // A marked error keeps its whole text for the local record.
        let e = input(anyhow!("line 5: bad").context("dataset 'd'")).context("phase 'psi'");
        assert_eq!(format!("{e:#}"), "phase 'psi': dataset 'd': line 5: bad");
        let abort = anyhow::Error::new(protocol::Error::PeerAbort("x".into())).context("phase 'psi'");
        assert!(is_peer_abort(&abort) && !is_peer_abort(&e));
        assert_eq!(
            peer_notice("bank", "psi", FailureKind::of(&e)),
            "node 'bank', step 'psi', reason input: its own data, files or job parameters cannot be used for this \
             job; its operator's job record says why"
        );
    }
}
