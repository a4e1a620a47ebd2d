//! The typed, length-limited message channel every two-party protocol runs over.
//!
//! A [`Channel`] wraps a byte-frame [`Transport`] (in memory for tests, QUIC in the node) and is the
//! only way protocol code talks to the peer. It guarantees:
//! - every frame carries a message kind and the receiver names the kind it expects; anything else
//!   (including a peer `abort`) is an error, never a panic;
//! - no frame larger than `max_frame` is accepted, and bulk transfers are chunked and bounded by a
//!   caller-given maximum, so a peer cannot make a node allocate without bound;
//! - every frame is hashed into the [`SharedView`] and reported to the transcript observer;
//! - bytes, frames and rounds are counted for benchmarks.
//!
//! Wire format of a frame: `u32 LE payload length ‖ u8 kind length ‖ kind (ASCII) ‖ payload`.

use std::sync::mpsc;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use crate::disclose::{DenyAll, Disclosure, Gate, Grant, Ledger, OPEN_PREFIX};
use crate::transcript::{Direction, FrameEvent, FrameObserver, SharedView};
use crate::{Error, InputError, PeerError, Result, Role, TransportError};

/// Default limit for one frame's payload.
pub const DEFAULT_MAX_FRAME: usize = 8 << 20;
/// Chunk size for bulk transfers.
pub const BULK_CHUNK: usize = 1 << 20;
/// Longest message kind name.
pub const MAX_KIND_LEN: usize = 64;
/// Frame kind that carries a peer's abort reason.
pub const ABORT: &str = "abort";
/// Length of the fixed frame header before the kind bytes.
pub const HEADER_LEN: usize = 5;

/// bincode configuration for control messages; the limit caps any claimed length while decoding.
fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DEFAULT_MAX_FRAME>()
}

/// One frame: a message kind and its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: String,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Header bytes for this frame (`u32 len ‖ u8 kind len ‖ kind`).
    pub fn header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(HEADER_LEN + self.kind.len());
        h.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        h.push(self.kind.len() as u8);
        h.extend_from_slice(self.kind.as_bytes());
        h
    }

    /// Checks a received header prefix against `max_payload` before anything else is read.
    /// Returns (payload length, kind length).
    pub fn parse_header(prefix: [u8; HEADER_LEN], max_payload: usize) -> Result<(usize, usize)> {
        let len = u32::from_le_bytes(prefix[..4].try_into().expect("4 bytes")) as usize;
        let kind_len = prefix[4] as usize;
        if kind_len == 0 || kind_len > MAX_KIND_LEN {
            return Err(Error::Peer(PeerError::Decode {
                kind: "frame header".into(),
                reason: format!("kind length {kind_len} outside 1..={MAX_KIND_LEN}"),
            }));
        }
        if len > max_payload {
            return Err(Error::Transport(TransportError::FrameTooLarge {
                kind: "?".into(),
                len: len as u64,
                limit: max_payload as u64,
            }));
        }
        Ok((len, kind_len))
    }

    /// Validates kind bytes read from the wire.
    pub fn parse_kind(bytes: &[u8]) -> Result<String> {
        match std::str::from_utf8(bytes) {
            Ok(s) if valid_kind(s) => Ok(s.to_string()),
            _ => Err(Error::Peer(PeerError::Decode {
                kind: "frame header".into(),
                reason: "kind is not a printable ASCII name".into(),
            })),
        }
    }
}

fn valid_kind(kind: &str) -> bool {
    !kind.is_empty() && kind.len() <= MAX_KIND_LEN && kind.bytes().all(|b| b.is_ascii_graphic())
}

/// A reliable, ordered, bidirectional frame pipe. Implementations enforce `max_payload` before
/// buffering a frame and return [`TransportError::Timeout`](crate::TransportError::Timeout) when the peer stays silent past their timeout.
pub trait Transport: Send {
    fn send(&mut self, frame: Frame) -> Result<()>;
    fn recv(&mut self, max_payload: usize) -> Result<Frame>;
}

/// Traffic counters. `rounds` counts turns from sending to receiving (one per round trip).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub rounds: u64,
}

impl Stats {
    /// Counters accumulated since `earlier` (a snapshot of the same channel).
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            frames_sent: self.frames_sent - earlier.frames_sent,
            frames_received: self.frames_received - earlier.frames_received,
            rounds: self.rounds - earlier.rounds,
        }
    }
    pub fn total_bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
}

/// See the module docs.
pub struct Channel {
    transport: Box<dyn Transport>,
    me: Role,
    phase: String,
    max_frame: usize,
    stats: Stats,
    shared: SharedView,
    observer: Option<Box<dyn FrameObserver>>,
    sending: bool,
    /// Decides and records reveals ([`crate::disclose`]); denies all until set.
    gate: Box<dyn Gate>,
    /// Payload hashes of the frames of the reveal in progress.
    opening: Option<Vec<[u8; 32]>>,
}

impl Channel {
    pub fn new(transport: Box<dyn Transport>, me: Role) -> Channel {
        Channel {
            transport,
            me,
            phase: "setup".into(),
            max_frame: DEFAULT_MAX_FRAME,
            stats: Stats::default(),
            shared: SharedView::default(),
            observer: None,
            sending: false,
            gate: Box::new(DenyAll),
            opening: None,
        }
    }

    /// Installs the gate that allows and records reveals on this channel ([`crate::disclose`]).
    pub fn set_gate(&mut self, gate: Box<dyn Gate>) {
        self.gate = gate;
    }

    /// Reports every later frame to `observer` (the transcript writer).
    pub fn set_observer(&mut self, observer: Box<dyn FrameObserver>) {
        self.observer = Some(observer);
    }

    /// Lowers (or raises) the per-frame payload limit; bulk transfers chunk below it.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame.max(64);
    }

    pub fn role(&self) -> Role {
        self.me
    }
    pub fn phase(&self) -> &str {
        &self.phase
    }
    /// Names the protocol phase that later frames belong to (recorded in the transcript).
    pub fn set_phase(&mut self, phase: &str) {
        self.phase = phase.to_string();
    }
    pub fn stats(&self) -> Stats {
        self.stats
    }
    pub fn shared_view(&self) -> SharedView {
        self.shared
    }

    fn record(&mut self, direction: Direction, kind: &str, payload: &[u8]) {
        let payload_hash = *blake3::hash(payload).as_bytes();
        let sender = match direction {
            Direction::Sent => self.me,
            Direction::Received => self.me.peer(),
        };
        self.shared.record(sender, kind, payload.len() as u64, &payload_hash);
        if let Some(hashes) = self.opening.as_mut() {
            hashes.push(payload_hash);
        }
        let wire = (HEADER_LEN + kind.len() + payload.len()) as u64;
        match direction {
            Direction::Sent => {
                self.stats.bytes_sent += wire;
                self.stats.frames_sent += 1;
            }
            Direction::Received => {
                self.stats.bytes_received += wire;
                self.stats.frames_received += 1;
            }
        }
        if let Some(obs) = self.observer.as_mut() {
            obs.on_frame(&FrameEvent { direction, phase: &self.phase, kind, payload, payload_hash });
        }
    }

    /// Sends one raw frame. `payload` must not exceed the frame limit (use `send_bulk` for more).
    /// Kinds starting with `open.` are reserved for [`Channel::reveal_send`].
    pub fn send_frame(&mut self, kind: &str, payload: Vec<u8>) -> Result<()> {
        assert!(valid_kind(kind), "message kind '{kind}' must be 1..=64 printable ASCII bytes");
        assert!(
            self.opening.is_some() || !kind.starts_with(OPEN_PREFIX),
            "frame kind '{kind}' opens a value: send it with Channel::reveal_send"
        );
        if payload.len() > self.max_frame {
            return Err(Error::Transport(TransportError::FrameTooLarge {
                kind: kind.into(),
                len: payload.len() as u64,
                limit: self.max_frame as u64,
            }));
        }
        self.record(Direction::Sent, kind, &payload);
        self.sending = true;
        self.transport.send(Frame { kind: kind.to_string(), payload })
    }

    /// Receives the next frame, whatever its kind (a peer abort is still an error).
    pub fn recv_any(&mut self) -> Result<Frame> {
        if self.sending {
            self.stats.rounds += 1;
            self.sending = false;
        }
        let frame = self.transport.recv(self.max_frame)?;
        if !valid_kind(&frame.kind) {
            return Err(Error::Peer(PeerError::Decode { kind: "frame header".into(), reason: "invalid kind".into() }));
        }
        if frame.payload.len() > self.max_frame {
            return Err(Error::Transport(TransportError::FrameTooLarge {
                kind: frame.kind,
                len: frame.payload.len() as u64,
                limit: self.max_frame as u64,
            }));
        }
        self.record(Direction::Received, &frame.kind, &frame.payload);
        if frame.kind == ABORT {
            let reason: String = String::from_utf8_lossy(&frame.payload).chars().take(1000).collect();
            return Err(Error::PeerAbort(reason));
        }
        Ok(frame)
    }

    /// Receives the next frame and checks that it is of `kind` (an `open.` kind only inside
    /// [`Channel::reveal_recv`]).
    pub fn recv_frame(&mut self, kind: &str) -> Result<Vec<u8>> {
        assert!(
            self.opening.is_some() || !kind.starts_with(OPEN_PREFIX),
            "frame kind '{kind}' opens a value: receive it with Channel::reveal_recv"
        );
        let frame = self.recv_any()?;
        if frame.kind != kind {
            return Err(Error::Peer(PeerError::UnexpectedMessage { expected: kind.into(), got: frame.kind }));
        }
        Ok(frame.payload)
    }

    /// Sends a control message encoded with bincode 2.
    pub fn send<T: Serialize>(&mut self, kind: &str, value: &T) -> Result<()> {
        self.send_frame(kind, encode(kind, value)?)
    }

    /// Receives a control message of `kind`; trailing bytes or any decode failure is an error.
    pub fn recv<T: DeserializeOwned>(&mut self, kind: &str) -> Result<T> {
        let bytes = self.recv_frame(kind)?;
        decode(kind, &bytes)
    }

    /// Sends `data` of any size as a length frame followed by chunks of at most [`BULK_CHUNK`].
    pub fn send_bulk(&mut self, kind: &str, data: &[u8]) -> Result<()> {
        self.send_frame(kind, (data.len() as u64).to_le_bytes().to_vec())?;
        let chunk = BULK_CHUNK.min(self.max_frame);
        for part in data.chunks(chunk) {
            self.send_frame(kind, part.to_vec())?;
        }
        Ok(())
    }

    /// Receives a bulk transfer of `kind`, refusing one whose declared size exceeds `max_len`.
    pub fn recv_bulk(&mut self, kind: &str, max_len: u64) -> Result<Vec<u8>> {
        let header = self.recv_frame(kind)?;
        let total = u64::from_le_bytes(header.as_slice().try_into().map_err(|_| {
            Error::Peer(PeerError::Decode { kind: kind.into(), reason: "bulk header must be 8 bytes".into() })
        })?);
        if total > max_len {
            return Err(Error::Transport(TransportError::FrameTooLarge {
                kind: kind.into(),
                len: total,
                limit: max_len,
            }));
        }
        let mut out = Vec::with_capacity(total as usize);
        while (out.len() as u64) < total {
            let part = self.recv_frame(kind)?;
            if part.is_empty() || out.len() as u64 + part.len() as u64 > total {
                return Err(PeerError::Inconsistent {
                    what: format!("bulk '{kind}' chunks do not add up to {total} bytes"),
                }
                .into());
            }
            out.extend_from_slice(&part);
        }
        Ok(out)
    }

    /// Receives a bulk transfer of `kind` of exactly `len` bytes; any other size is the peer's
    /// protocol violation.
    pub fn recv_bulk_exact(&mut self, kind: &str, len: u64) -> Result<Vec<u8>> {
        let bytes = self.recv_bulk(kind, len)?;
        if bytes.len() as u64 != len {
            return Err(PeerError::wrong_bytes(format!("'{kind}'"), len, bytes.len() as u64).into());
        }
        Ok(bytes)
    }

    /// Sends a vector of ring elements (little-endian u64s) as bulk data.
    pub fn send_u64s(&mut self, kind: &str, values: &[u64]) -> Result<()> {
        self.send_bulk(kind, &u64s_to_bytes(values))
    }

    /// Receives exactly `expected_len` u64s of `kind`.
    pub fn recv_u64s(&mut self, kind: &str, expected_len: usize) -> Result<Vec<u64>> {
        let bytes = self.recv_bulk(kind, expected_len as u64 * 8)?;
        bytes_to_u64s(kind, &bytes, expected_len)
    }

    /// The one reveal path, sending side: checks `grant.rule` with the gate (refused: nothing is
    /// sent), sends `value` (this party's share of an opened value, or a value it reveals) as bulk
    /// frames of kind `open.<name>`, and records the disclosure from this party to the peer.
    pub fn reveal_send(&mut self, grant: &Grant, value: &[u8]) -> Result<()> {
        self.gate.allow(&grant.rule)?;
        self.opening = Some(Vec::new());
        let sent = self.send_bulk(&grant.kind(), value);
        let frames = self.opening.take().unwrap_or_default();
        sent?;
        self.record_disclosure(grant, self.me, value, frames)
    }

    /// The one reveal path, receiving side: checks `grant.rule` with the gate (refused: nothing is
    /// read), receives at most `max_len` bytes of kind `open.<name>` and records the disclosure
    /// from the peer to this party.
    pub fn reveal_recv(&mut self, grant: &Grant, max_len: u64) -> Result<Vec<u8>> {
        self.gate.allow(&grant.rule)?;
        self.opening = Some(Vec::new());
        let received = self.recv_bulk(&grant.kind(), max_len);
        let frames = self.opening.take().unwrap_or_default();
        let value = received?;
        self.record_disclosure(grant, self.me.peer(), &value, frames)?;
        Ok(value)
    }

    /// [`Channel::reveal_send`] of ring elements (little-endian u64s).
    pub fn reveal_send_u64s(&mut self, grant: &Grant, values: &[u64]) -> Result<()> {
        self.reveal_send(grant, &u64s_to_bytes(values))
    }

    /// [`Channel::reveal_recv`] of exactly `len` ring elements.
    pub fn reveal_recv_u64s(&mut self, grant: &Grant, len: usize) -> Result<Vec<u64>> {
        let bytes = self.reveal_recv(grant, len as u64 * 8)?;
        bytes_to_u64s(&grant.kind(), &bytes, len)
    }

    fn record_disclosure(&mut self, grant: &Grant, from: Role, value: &[u8], frames: Vec<[u8; 32]>) -> Result<()> {
        self.gate.record(Disclosure {
            phase: self.phase.clone(),
            name: grant.name.clone(),
            rule: grant.rule.clone(),
            summary: grant.summary.clone(),
            from,
            to: from.peer(),
            value_hash: *blake3::hash(value).as_bytes(),
            frames,
        })
    }

    /// Tells the peer the job is aborted and why (best effort: the link may already be gone).
    pub fn abort(&mut self, reason: &str) {
        let reason: String = reason.chars().take(1000).collect();
        let _ = self.send_frame(ABORT, reason.into_bytes());
    }
}

/// Ring elements as little-endian bytes (the payload of [`Channel::send_u64s`]).
fn u64s_to_bytes(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Exactly `expected_len` little-endian u64s from a received payload of `kind`; any other length
/// is the peer's protocol violation.
fn bytes_to_u64s(kind: &str, bytes: &[u8], expected_len: usize) -> Result<Vec<u64>> {
    if bytes.len() != expected_len * 8 {
        return Err(PeerError::wrong_bytes(format!("'{kind}'"), expected_len as u64 * 8, bytes.len() as u64).into());
    }
    Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// Encodes a control message with bincode 2 (the inverse of [`decode`]).
pub fn encode<T: Serialize>(kind: &str, value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| InputError::Usage { op: "encode", detail: format!("cannot encode '{kind}': {e}") }.into())
}

/// Decodes a bincode 2 control message; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(kind: &str, bytes: &[u8]) -> Result<T> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode_config())
        .map_err(|e| Error::Peer(PeerError::Decode { kind: kind.into(), reason: e.to_string() }))?;
    if used != bytes.len() {
        return Err(Error::Peer(PeerError::Decode {
            kind: kind.into(),
            reason: format!("{} trailing bytes", bytes.len() - used),
        }));
    }
    Ok(value)
}

/// In-memory transport for tests and single-process runs.
pub struct MemTransport {
    tx: mpsc::Sender<Frame>,
    rx: mpsc::Receiver<Frame>,
    timeout: Duration,
}

impl Transport for MemTransport {
    fn send(&mut self, frame: Frame) -> Result<()> {
        self.tx.send(frame).map_err(|_| Error::Transport(TransportError::Closed("in-memory peer dropped".into())))
    }
    fn recv(&mut self, max_payload: usize) -> Result<Frame> {
        let frame = self.rx.recv_timeout(self.timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => Error::Transport(TransportError::Timeout(self.timeout.as_secs())),
            mpsc::RecvTimeoutError::Disconnected => {
                Error::Transport(TransportError::Closed("in-memory peer dropped".into()))
            }
        })?;
        if frame.payload.len() > max_payload {
            return Err(Error::Transport(TransportError::FrameTooLarge {
                kind: frame.kind,
                len: frame.payload.len() as u64,
                limit: max_payload as u64,
            }));
        }
        Ok(frame)
    }
}

/// Two connected in-memory transports with the given receive timeout.
pub fn mem_transports(timeout: Duration) -> (MemTransport, MemTransport) {
    let (a_tx, b_rx) = mpsc::channel();
    let (b_tx, a_rx) = mpsc::channel();
    (MemTransport { tx: a_tx, rx: a_rx, timeout }, MemTransport { tx: b_tx, rx: b_rx, timeout })
}

/// A connected (gov, bank) channel pair in memory, 60 s receive timeout, for tests and
/// benchmarks: each channel's gate is a [`Ledger`] that allows every rule (there is no policy).
pub fn mem_pair() -> (Channel, Channel) {
    let (g, b) = mem_transports(Duration::from_secs(60));
    let (mut g, mut b) = (Channel::new(Box::new(g), Role::Gov), Channel::new(Box::new(b), Role::Bank));
    g.set_gate(Box::new(Ledger::allow_all()));
    b.set_gate(Box::new(Ledger::allow_all()));
    (g, b)
}

/// Runs `gov` and `bank` on two threads over an in-memory channel pair and returns both results.
/// Test and bench helper: each closure gets its own party's channel.
pub fn run_pair<A, B, FA, FB>(gov: FA, bank: FB) -> (A, B)
where
    A: Send,
    B: Send,
    FA: FnOnce(&mut Channel) -> A + Send,
    FB: FnOnce(&mut Channel) -> B + Send,
{
    let (mut g, mut b) = mem_pair();
    std::thread::scope(|s| {
        let hg = s.spawn(move || gov(&mut g));
        let hb = s.spawn(move || bank(&mut b));
        (hg.join().expect("gov thread panicked"), hb.join().expect("bank thread panicked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_messages_round_trip_and_shared_views_agree() {
        let (a, b) = run_pair(
            |ch| {
                ch.send("hello", &("gov".to_string(), 7u32)).unwrap();
                let v: Vec<u64> = ch.recv_u64s("vec", 3).unwrap();
                (v, ch.shared_view(), ch.stats())
            },
            |ch| {
                ch.send_u64s("vec", &[1, 2, u64::MAX]).unwrap();
                let h: (String, u32) = ch.recv("hello").unwrap();
                (h, ch.shared_view(), ch.stats())
            },
        );
        assert_eq!(a.0, vec![1, 2, u64::MAX]);
        assert_eq!(b.0, ("gov".to_string(), 7));
        assert_eq!(a.1, b.1, "both parties must compute the same shared view");
        assert_eq!(a.1.sent_by_gov.frames, 1);
        assert_eq!(a.1.sent_by_bank.frames, 2, "bulk = length frame + one chunk");
        assert_eq!(a.2.bytes_sent, b.2.bytes_received);
        assert_eq!(a.2.bytes_received, b.2.bytes_sent);
    }

    #[test]
    fn oversized_frame_is_refused_not_buffered() {
        let (mut g, mut b) = mem_pair();
        b.set_max_frame(1024);
        g.send_frame("big", vec![0u8; 4096]).unwrap();
        match b.recv_frame("big") {
            Err(Error::Transport(TransportError::FrameTooLarge { len: 4096, limit: 1024, .. })) => {}
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        assert!(matches!(
            g.send_frame("big", vec![0u8; DEFAULT_MAX_FRAME + 1]),
            Err(Error::Transport(TransportError::FrameTooLarge { .. }))
        ));
    }

    #[test]
    fn bulk_transfer_chunks_and_enforces_declared_maximum() {
        let data: Vec<u8> = (0..(3 * BULK_CHUNK + 17)).map(|i| (i * 31) as u8).collect();
        let (mut g, mut b) = mem_pair();
        g.send_bulk("data", &data).unwrap();
        assert_eq!(b.recv_bulk("data", data.len() as u64).unwrap(), data);
        assert_eq!(g.stats().frames_sent, 5);
        g.send_bulk("data", &data).unwrap();
        assert!(matches!(b.recv_bulk("data", 100), Err(Error::Transport(TransportError::FrameTooLarge { .. }))));
    }

    #[test]
    fn wrong_kind_garbage_abort_and_silence_are_errors() {
        let (g, b) = mem_transports(Duration::from_millis(50));
        let (mut g, mut b) = (Channel::new(Box::new(g), Role::Gov), Channel::new(Box::new(b), Role::Bank));
        g.send("x", &1u32).unwrap();
        assert!(matches!(b.recv::<u32>("y"), Err(Error::Peer(PeerError::UnexpectedMessage { .. }))));
        g.send_frame("x", vec![0xff; 3]).unwrap();
        assert!(matches!(b.recv::<String>("x"), Err(Error::Peer(PeerError::Decode { .. }))));
        g.send("x", &(1u32, 2u32)).unwrap();
        assert!(matches!(b.recv::<u8>("x"), Err(Error::Peer(PeerError::Decode { .. }))), "trailing bytes");
        g.abort("operator cancelled");
        assert!(matches!(b.recv::<u8>("x"), Err(Error::PeerAbort(r)) if r == "operator cancelled"));
        assert!(matches!(b.recv::<u8>("x"), Err(Error::Transport(TransportError::Timeout(_)))));
        drop(g);
        assert!(matches!(b.recv::<u8>("x"), Err(Error::Transport(TransportError::Closed(_)))));
        let _ = &mut b;
    }

    #[test]
    fn header_parsing_rejects_bad_lengths_before_reading() {
        let f = Frame { kind: "psi.points".into(), payload: vec![1, 2, 3] };
        let h = f.header();
        let prefix: [u8; HEADER_LEN] = h[..HEADER_LEN].try_into().unwrap();
        assert_eq!(Frame::parse_header(prefix, 10).unwrap(), (3, 10));
        assert!(matches!(Frame::parse_header(prefix, 2), Err(Error::Transport(TransportError::FrameTooLarge { .. }))));
        assert!(Frame::parse_header([0, 0, 0, 0, 0], 10).is_err());
        assert!(Frame::parse_kind(b"ok.kind").is_ok());
        assert!(Frame::parse_kind(b"bad kind").is_err());
    }
}
