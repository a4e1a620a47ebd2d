//! Shared harness for the fuzz targets: a cursor over the fuzz input, a scripted [`Transport`]
//! that plays frames decoded from it to a [`Channel`], and a recorded honest engine setup.
//!
//! Every target asserts only that the protocol step under test returns (`Ok` or `Err`) without
//! panicking; libFuzzer's `-malloc_limit_mb` / `-rss_limit_mb` (set by `testnet/fuzz.sh`) turn
//! an unbounded allocation into a reported crash. The scripted transport returns
//! [`TransportError::Closed`](protocol::TransportError::Closed) once its frames run out, so no step can hang.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use protocol::channel::{Frame, Transport, mem_transports};
use protocol::fixed::FixedPoint;
use protocol::mpc::{Engine, PlainMatrix, Sigmoid};
use protocol::{Channel, Error, Result, Role, TransportError};
use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};

/// Message kinds the protocols receive; a frame selector below `KINDS.len()` picks one, so the
/// fuzzer gets past the kind check without guessing strings.
pub const KINDS: &[&str] = &[
    "ot.base.s",
    "ot.base.r",
    "mpc.share",
    "open.fuzz",
    "mpc.cot.u",
    "mpc.cot.d",
    "mpc.cot.f",
    "mpc.and.u",
    "mpc.and.open",
    "mpc.cmp.leaf",
    "mpc.cmp.table",
    "lookup.table",
    "lookup.query",
    "open.partial_scores",
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

/// The frames a scripted peer still has to "send".
type Frames = Arc<Mutex<VecDeque<Frame>>>;

/// Encodes frames in the layout [`Input::frames`] reads (seed corpora): known kinds by selector,
/// other kinds raw; payloads above 0x7fff bytes in fill mode from their first 16 bytes (only
/// lengths steer the protocols, so such a seed still takes the honest path).
pub fn encode_frames(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        match KINDS.iter().position(|k| *k == f.kind) {
            Some(i) => out.push(i as u8),
            None => {
                out.push((72 + f.kind.len()) as u8);
                out.extend_from_slice(f.kind.as_bytes());
            }
        }
        let n = f.payload.len();
        if n < 0x8000 {
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.extend_from_slice(&f.payload);
        } else {
            assert!(n % 8 == 0 && n / 8 < 0x8000, "payload of {n} bytes has no fill-mode encoding");
            out.extend_from_slice(&((n / 8) as u16 | 0x8000).to_le_bytes());
            out.extend_from_slice(&f.payload[..16]);
        }
    }
    out
}

/// A transport that discards what is sent and receives the frames of its script, then `Closed`.
/// It does not enforce `max_payload`, so the channel's own limit check is exercised too.
struct Script {
    frames: Frames,
}

impl Transport for Script {
    fn send(&mut self, _frame: Frame) -> Result<()> {
        Ok(())
    }
    fn recv(&mut self, _max_payload: usize) -> Result<Frame> {
        let next = self.frames.lock().expect("script lock").pop_front();
        next.ok_or_else(|| Error::Transport(TransportError::Closed("fuzz script ended".into())))
    }
}

/// A channel for `me` whose peer "sends" exactly `frames`.
pub fn scripted_channel(me: Role, frames: VecDeque<Frame>) -> Channel {
    open_channel(Box::new(Script { frames: Arc::new(Mutex::new(frames)) }), me)
}

/// A channel whose gate allows every reveal (fuzzing has no policy).
fn open_channel(transport: Box<dyn Transport>, me: Role) -> Channel {
    let mut ch = Channel::new(transport, me);
    ch.set_gate(Box::new(protocol::disclose::Ledger::allow_all()));
    ch
}

thread_local! {
    /// One long-lived engine per role and the script its channel reads from.
    static ENGINES: RefCell<[Option<(Engine<'static>, Frames)>; 2]> = const { RefCell::new([None, None]) };
}

/// Runs `f` on this process's engine of role `me`, whose peer will "send" exactly `frames`.
/// The engine is set up once from [`recorded_setup`] (its channel is leaked, once per role):
/// 2 × 128 base OTs per input would cap the target at ~40 inputs/s. Its OT counters carry over
/// between inputs, which changes pseudorandom values only, never which path a step takes.
pub fn with_engine<T>(me: Role, frames: VecDeque<Frame>, f: impl FnOnce(&mut Engine<'static>) -> T) -> T {
    ENGINES.with_borrow_mut(|engines| {
        let (engine, script) = engines[me.index()].get_or_insert_with(|| {
            let script: Frames = Arc::new(Mutex::new(recorded_setup(me).iter().cloned().collect()));
            let ch = Box::leak(Box::new(open_channel(Box::new(Script { frames: script.clone() }), me)));
            let engine = Engine::new(ch, fixed(), &mut engine_rng(me)).expect("recorded setup replays");
            (engine, script)
        });
        *script.lock().expect("script lock") = frames;
        f(engine)
    })
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

/// Runs `f` at an honest gov and bank over connected in-memory channels and returns the frames
/// each party received (indexed by `Role::index`).
pub fn record_pair(f: impl Fn(&mut Channel) + Sync) -> [Vec<Frame>; 2] {
    let (g, b) = mem_transports(Duration::from_secs(30));
    let logs = [Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new()))];
    let mut gov = open_channel(Box::new(Recorder { inner: g, log: logs[0].clone() }), Role::Gov);
    let mut bank = open_channel(Box::new(Recorder { inner: b, log: logs[1].clone() }), Role::Bank);
    std::thread::scope(|s| {
        s.spawn(|| f(&mut gov));
        f(&mut bank);
    });
    logs.map(|l| std::mem::take(&mut *l.lock().expect("recorder lock")))
}

/// The frames each party receives during an honest `Engine::new` between two engines seeded with
/// [`engine_rng`] (indexed by `Role::index`). Since a party's own messages depend only on its
/// seed, replaying these to a fresh engine of that role completes its setup.
pub fn recorded_setup(me: Role) -> &'static [Frame] {
    static SETUP: OnceLock<[Vec<Frame>; 2]> = OnceLock::new();
    &SETUP.get_or_init(|| {
        record_pair(|ch| {
            let me = ch.role();
            Engine::new(ch, fixed(), &mut engine_rng(me)).map(drop).expect("honest setup");
        })
    })[me.index()]
}

/// One engine operation of the `engine_ops` target, decoded from 4 input bytes
/// `[op, n, shape, seed]`: `n % 17` elements, a `(shape % 5) × (shape / 5 % 5)` matrix, local
/// values from `seed`. `target` is the fuzzed party; run at the other party, the same call is
/// the honest mirror step (which is how the seed corpus is made).
/// The grant the fuzzed openings use (the fuzz channels' gate allows every rule).
pub fn fuzz_grant() -> protocol::disclose::Grant {
    protocol::disclose::Grant::new("fuzz", "fuzz", "a fuzzed opening")
}

pub fn engine_op(engine: &mut Engine, target: Role, [op, n, shape, seed]: [u8; 4]) -> Result<()> {
    let (n, rows, cols) = (n as usize % 17, shape as usize % 5, (shape / 5) as usize % 5);
    let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
    let mut vec = |len: usize| -> Vec<u64> { (0..len).map(|_| rng.next_u64()).collect() };
    let (x, y, v_cols, v_rows) = (vec(n), vec(n), vec(cols), vec(rows));
    let m = PlainMatrix { rows, cols, data: vec(rows * cols) };
    let bits = vec(n.div_ceil(64));
    let me = engine.role();
    let mine = |owner: Role| (owner == me).then_some(&m);
    let (peer, xs) = (target.peer(), (target.peer() == me).then_some(&x[..]));
    match op % 13 {
        0 => engine.share(peer, xs, n).map(drop),
        1 => engine.reveal_to(&fuzz_grant(), target, &x).map(drop),
        2 => engine.reveal_both(&fuzz_grant(), &x).map(drop),
        3 => engine.mul(&x, &y).map(drop),
        4 => engine.prepare_matrix(target, mine(target), rows, cols).and_then(|m| engine.matvec(&m, &v_cols)).map(drop),
        5 => engine.prepare_matrix(peer, mine(peer), rows, cols).and_then(|m| engine.matvec(&m, &v_cols)).map(drop),
        6 => engine.prepare_matrix(target, mine(target), rows, cols).and_then(|m| engine.matvec_t(&m, &v_rows)).map(drop),
        7 => engine.prepare_matrix(peer, mine(peer), rows, cols).and_then(|m| engine.matvec_t(&m, &v_rows)).map(drop),
        8 => engine.msb(&x).map(drop),
        9 => engine.mux(&bits, &y).map(drop),
        10 => engine.less_than_zero(&x).map(drop),
        11 => engine.sigmoid(&x, Sigmoid::ClippedLinear).map(drop),
        _ => engine.sigmoid(&x, Sigmoid::Poly3).map(drop),
    }
}
