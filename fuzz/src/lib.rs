//! Shared harness for the fuzz targets: a cursor over the fuzz input, a scripted [`Transport`]
//! that plays frames decoded from it to a [`Channel`], and a recorded honest engine setup.
//!
//! Every target asserts only that the protocol step under test returns (`Ok` or `Err`) without
//! panicking; libFuzzer's `-malloc_limit_mb` / `-rss_limit_mb` (set by `testnet/fuzz.sh`) turn
//! an unbounded allocation into a reported crash. The scripted transport returns
//! [`Error::Closed`] once its frames run out, so no step can hang.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use protocol::channel::{Frame, Transport, mem_transports};
use protocol::fixed::FixedPoint;
use protocol::mpc::Engine;
use protocol::{Channel, Error, Result, Role};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Message kinds the protocols receive; a frame selector below `KINDS.len()` picks one, so the
/// fuzzer gets past the kind check without guessing strings.
pub const KINDS: &[&str] = &[
    "ot.base.s",
    "ot.base.r",
    "mpc.share",
    "mpc.reveal",
    "mpc.cot.u",
    "mpc.cot.d",
    "mpc.and.u",
    "mpc.and.open",
    "lookup.table",
    "lookup.query",
    "lookup.answer",
    "abort",
    "x",
];

/// A cursor over the fuzz input; reads past the end yield zeros / empty slices.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }
    pub fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    pub fn u16(&mut self) -> u16 {
        let b = self.take(2);
        u16::from_le_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)])
    }
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let t = self.take(8);
        b[..t.len()].copy_from_slice(t);
        u64::from_le_bytes(b)
    }
    pub fn role(&mut self) -> Role {
        if self.byte() & 1 == 0 { Role::Gov } else { Role::Bank }
    }

    /// Decodes the rest of the input as frames. Per frame: a selector byte (below
    /// `KINDS.len()`: that kind; otherwise a raw kind of `selector % 72` bytes, which may be
    /// invalid), a u16 LE length word and the payload. If bit 15 of the length word is set, the
    /// payload is a pattern of up to 16 bytes repeated to `8 · (len & 0x7fff)` bytes, so short
    /// inputs can carry the long OT messages.
    pub fn frames(&mut self) -> VecDeque<Frame> {
        let mut out = VecDeque::new();
        while !self.is_empty() {
            let sel = self.byte() as usize;
            let kind = match KINDS.get(sel) {
                Some(k) => k.to_string(),
                None => String::from_utf8_lossy(self.take(sel % 72)).into_owned(),
            };
            let len = self.u16();
            let payload = if len & 0x8000 != 0 {
                let pattern = self.take(16);
                let n = 8 * (len & 0x7fff) as usize;
                if pattern.is_empty() { vec![0; n] } else { pattern.iter().copied().cycle().take(n).collect() }
            } else {
                self.take(len as usize).to_vec()
            };
            out.push_back(Frame { kind, payload });
        }
        out
    }
}

/// A transport that discards what is sent and receives a fixed list of frames, then `Closed`.
/// It does not enforce `max_payload`, so the channel's own limit check is exercised too.
pub struct Script {
    frames: VecDeque<Frame>,
}

impl Transport for Script {
    fn send(&mut self, _frame: Frame) -> Result<()> {
        Ok(())
    }
    fn recv(&mut self, _max_payload: usize) -> Result<Frame> {
        self.frames.pop_front().ok_or_else(|| Error::Closed("fuzz script ended".into()))
    }
}

/// A channel for `me` whose peer "sends" exactly `frames`.
pub fn scripted_channel(me: Role, frames: VecDeque<Frame>) -> Channel {
    Channel::new(Box::new(Script { frames }), me)
}

/// Fixed-point format used by the engine targets.
pub fn fixed() -> FixedPoint {
    FixedPoint::new(16)
}

/// The engine RNG of `role` in the engine targets (fixed, so recorded setups replay).
pub fn engine_rng(role: Role) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(0xf022 + role.index() as u64)
}

/// Wraps a transport and records every frame it receives.
struct Recorder<T> {
    inner: T,
    log: Arc<Mutex<Vec<Frame>>>,
}

impl<T: Transport> Transport for Recorder<T> {
    fn send(&mut self, frame: Frame) -> Result<()> {
        self.inner.send(frame)
    }
    fn recv(&mut self, max_payload: usize) -> Result<Frame> {
        let frame = self.inner.recv(max_payload)?;
        self.log.lock().expect("recorder lock").push(frame.clone());
        Ok(frame)
    }
}

/// The frames each party receives during an honest `Engine::new` between two engines seeded with
/// [`engine_rng`] (indexed by `Role::index`). Since a party's own messages depend only on its
/// seed, replaying these to a fresh engine of that role completes its setup.
pub fn recorded_setup(me: Role) -> &'static [Frame] {
    static SETUP: OnceLock<[Vec<Frame>; 2]> = OnceLock::new();
    &SETUP.get_or_init(|| {
        let (g, b) = mem_transports(Duration::from_secs(30));
        let logs = [Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new()))];
        let mut gov = Channel::new(Box::new(Recorder { inner: g, log: logs[0].clone() }), Role::Gov);
        let mut bank = Channel::new(Box::new(Recorder { inner: b, log: logs[1].clone() }), Role::Bank);
        std::thread::scope(|s| {
            s.spawn(|| Engine::new(&mut gov, fixed(), &mut engine_rng(Role::Gov)).map(|_| ()).expect("gov setup"));
            Engine::new(&mut bank, fixed(), &mut engine_rng(Role::Bank)).map(|_| ()).expect("bank setup");
        });
        logs.map(|l| std::mem::take(&mut *l.lock().expect("recorder lock")))
    })[me.index()]
}
