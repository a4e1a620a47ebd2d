//! Frames over one QUIC bidirectional stream, and the blocking [`QuicTransport`] that lets the
//! synchronous protocol code (run on a blocking thread) use such a stream.
//!
//! Wire format is `protocol::channel`'s: `u32 LE payload length ‖ u8 kind length ‖ kind ‖ payload`.
//! The declared length is checked against the limit before any payload byte is read.

use std::time::Duration;

use protocol::channel::{Frame, HEADER_LEN, Transport};
use protocol::{Error, PeerError, TransportError};
use quinn::{ReadExactError, RecvStream, SendStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

/// Application error code sent when a stream or connection is abandoned by this node.
pub const ABORT_CODE: u32 = 1;

fn read_error(e: ReadExactError) -> Error {
    match e {
        ReadExactError::FinishedEarly(_) => {
            Error::Transport(TransportError::Closed("peer closed the job stream".into()))
        }
        ReadExactError::ReadError(quinn::ReadError::ConnectionLost(c)) => {
            Error::Transport(TransportError::Closed(c.to_string()))
        }
        ReadExactError::ReadError(e) => Error::Transport(TransportError::Closed(e.to_string())),
    }
}

/// Reads one frame, refusing a declared payload over `max_payload` before reading it.
pub async fn read_frame(recv: &mut RecvStream, max_payload: usize) -> Result<Frame, Error> {
    let mut prefix = [0u8; HEADER_LEN];
    recv.read_exact(&mut prefix).await.map_err(read_error)?;
    let (len, kind_len) = Frame::parse_header(prefix, max_payload)?;
    let mut kind = vec![0u8; kind_len];
    recv.read_exact(&mut kind).await.map_err(read_error)?;
    let kind = Frame::parse_kind(&kind)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await.map_err(read_error)?;
    Ok(Frame { kind, payload })
}

/// Writes one frame.
pub async fn write_frame(send: &mut SendStream, frame: &Frame) -> Result<(), Error> {
    // A lost connection says why it closed (e.g. "closed by peer: node shutting down").
    let closed = |e: quinn::WriteError| match e {
        quinn::WriteError::ConnectionLost(c) => Error::Transport(TransportError::Closed(c.to_string())),
        e => Error::Transport(TransportError::Closed(e.to_string())),
    };
    send.write_all(&frame.header()).await.map_err(closed)?;
    send.write_all(&frame.payload).await.map_err(closed)
}

/// Awaits `fut` for at most `limit`; a timeout becomes [`TransportError::Timeout`](protocol::TransportError::Timeout).
pub async fn within<T>(limit: Duration, fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(limit, fut).await.unwrap_or(Err(Error::Transport(TransportError::Timeout(limit.as_secs()))))
}

/// A job's stream as a synchronous [`Transport`]. Must be used from a thread outside the tokio
/// runtime (e.g. `spawn_blocking`): receives block on the runtime `handle`.
///
/// Sends never wait for the peer: frames go to a writer task (one per stream) through an unbounded
/// queue, so when both parties send large messages before receiving, neither blocks on QUIC flow
/// control (the queue holds only what this node itself sends). The writer gives up when the peer
/// reads nothing for `io_timeout`; its failure is returned by the next `send` or `recv`. Dropping
/// the transport lets the writer deliver every queued frame, then finish the stream;
/// [`QuicTransport::flushed`] tells when the peer has acknowledged it all.
///
/// Receives are bounded: the frame limit is checked on the header before the payload is read,
/// the peer must send within `io_timeout`, and a [`Stop`] set on `stop` fails pending and later
/// receives at once. Sends are not cut by a stop, so an abort message still reaches the peer.
pub struct QuicTransport {
    outbox: mpsc::UnboundedSender<Frame>,
    writer: watch::Receiver<Writer>,
    recv: RecvStream,
    handle: Handle,
    io_timeout: Duration,
    stop: watch::Receiver<Option<Stop>>,
}

/// Why this node stops one of its running jobs before it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The node's operator cancelled the job.
    Cancelled,
    /// The node is shutting down.
    Shutdown,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Cancelled => "job cancelled by the operator",
            Stop::Shutdown => "node shutting down",
        })
    }
}

/// What a transport's writer task is doing.
#[derive(Clone, Debug, PartialEq)]
enum Writer {
    Writing,
    /// The stream is finished and the peer acknowledged every byte (or stopped the stream).
    Done,
    /// Writing failed; the reason.
    Failed(String),
}

impl QuicTransport {
    /// Wraps a job stream; spawns its writer task on `handle`.
    pub fn new(
        send: SendStream,
        recv: RecvStream,
        handle: Handle,
        io_timeout: Duration,
        stop: watch::Receiver<Option<Stop>>,
    ) -> QuicTransport {
        let (outbox, queue) = mpsc::unbounded_channel();
        let (state, writer) = watch::channel(Writer::Writing);
        handle.spawn(async move {
            let _ = state.send(match write_queue(send, queue, io_timeout).await {
                Ok(()) => Writer::Done,
                Err(e) => Writer::Failed(e),
            });
        });
        QuicTransport { outbox, writer, recv, handle, io_timeout, stop }
    }

    /// Resolves once the writer has ended: after the transport is dropped, every frame sent has
    /// been acknowledged by the peer, or writing failed (each step bounded by `io_timeout`).
    /// Closing the connection before that would discard frames still in flight, such as an abort.
    pub fn flushed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut writer = self.writer.clone();
        async move {
            let _ = writer.wait_for(|w| *w != Writer::Writing).await;
        }
    }

    fn send_failure(reason: &str) -> Error {
        Error::Transport(TransportError::Closed(format!("sending to the peer failed: {reason}")))
    }
}

/// The writer task: writes queued frames in order until the queue closes (the transport was
/// dropped), then finishes the stream and waits until the peer acknowledged all of it. The peer
/// must take each frame, and acknowledge the end, within `io_timeout`; on a write failure the
/// stream is reset and the reason returned.
async fn write_queue(
    mut send: SendStream,
    mut queue: mpsc::UnboundedReceiver<Frame>,
    io_timeout: Duration,
) -> Result<(), String> {
    while let Some(frame) = queue.recv().await {
        let failure = match tokio::time::timeout(io_timeout, write_frame(&mut send, &frame)).await {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("the peer took no data for {} s (timeout)", io_timeout.as_secs()),
        };
        let _ = send.reset(ABORT_CODE.into());
        return Err(failure);
    }
    send.finish().map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(io_timeout, send.stopped()).await;
    Ok(())
}

impl Transport for QuicTransport {
    fn send(&mut self, frame: Frame) -> Result<(), Error> {
        if let Writer::Failed(reason) = &*self.writer.borrow() {
            return Err(Self::send_failure(reason));
        }
        self.outbox.send(frame).map_err(|_| Self::send_failure("the stream writer stopped"))
    }

    fn recv(&mut self, max_payload: usize) -> Result<Frame, Error> {
        let QuicTransport { recv, handle, io_timeout, stop, writer, .. } = self;
        let r = handle.block_on(async {
            tokio::select! {
                // A frame already received (e.g. the peer's abort) wins over a send failure.
                biased;
                r = within(*io_timeout, read_frame(recv, max_payload)) => r,
                s = stop.wait_for(Option::is_some) => Err(Error::Transport(TransportError::Closed(match s.as_deref() {
                    Ok(Some(stop)) => stop.to_string(),
                    _ => "the node stopped the job".into(),
                }))),
                w = writer.wait_for(|w| matches!(w, Writer::Failed(_))) => Err(Self::send_failure(match w.as_deref() {
                    Ok(Writer::Failed(reason)) => reason,
                    _ => "the stream writer stopped",
                })),
            }
        });
        if matches!(
            r,
            Err(Error::Transport(TransportError::FrameTooLarge { .. }) | Error::Peer(PeerError::Decode { .. }))
        ) {
            // The rest of the stream cannot be trusted; tell the peer to stop sending.
            let _ = self.recv.stop(ABORT_CODE.into());
        }
        r
    }
}

/// Kind of the first frame on every job stream; its payload is the job id (ASCII).
pub const JOB_OPEN: &str = "job.open";
const MAX_JOB_ID: usize = 64;

/// Opens a job stream on `conn`; the first frame names the job.
pub async fn open_job_stream(conn: &quinn::Connection, job_id: &str) -> Result<(SendStream, RecvStream), Error> {
    let (mut send, recv) = conn.open_bi().await.map_err(|e| Error::Transport(TransportError::Closed(e.to_string())))?;
    write_frame(&mut send, &Frame { kind: JOB_OPEN.into(), payload: job_id.as_bytes().to_vec() }).await?;
    Ok((send, recv))
}

/// Reads the first frame of a job stream the peer opened; returns the job id it names.
pub async fn read_job_open(recv: &mut RecvStream, limit: Duration) -> Result<String, Error> {
    let frame = within(limit, read_frame(recv, MAX_JOB_ID)).await?;
    if frame.kind != JOB_OPEN {
        return Err(Error::Peer(PeerError::UnexpectedMessage { expected: JOB_OPEN.into(), got: frame.kind }));
    }
    String::from_utf8(frame.payload)
        .map_err(|_| Error::Peer(PeerError::Decode { kind: JOB_OPEN.into(), reason: "job id is not UTF-8".into() }))
}
