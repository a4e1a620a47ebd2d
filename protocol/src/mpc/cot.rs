//! Arithmetic correlated OT (Gilboa multiplication) on the engine's OT source ([`super::source`]).
//!
//! A *group* `g` is one receiver value `b_g` (its low `bits` bits are OT choice bits) and one
//! sender correlation vector `c_g` of `width` ring elements. The ring is `Z_2^ring` (`ring` ≤ 64,
//! `bits` ≤ `ring`; [`Engine::cot`] uses 64). OT `(g, k)` transfers, for each element `t`, `m0[t]`
//! or `m0[t] + c_g[t]` modulo `2^(ring−k)`: the sender sends the correction `d = m0 − m1 + c_g`
//! (low `ring − k` bits only, bit-packed), the receiver with choice `β` outputs
//! `(m_β + β·d) · 2^k` and the sender `−m0 · 2^k`. Summed over `k` the two outputs are additive
//! shares of `b_g · c_g` (mod 2^ring; outputs are reduced to their low `ring` bits). `m0`, `m1`
//! are the tweakable-hash expansions of the source's OT keys (`k0`, `k1 = k0 ⊕ Δ`); the
//! receiver's `H(k_β)` equals `m_β`.
//!
//! What each party learns: the sender sees only the source's receiver message (IKNP columns or
//! derandomisation bits, independent of the choices; see [`super::source`]). The receiver sees
//! `d`, which is masked by the pad of the unchosen message `m_{1−β}` (pseudorandom to it since
//! it does not know Δ), so `d` is uniform in its view; its output share is masked by `m0`. Both
//! output shares are uniform on their own. Nothing is reused: each call takes fresh OTs, and
//! pads are bound to the OT index and element block by the tweak.

use zeroize::Zeroize;

use super::Engine;
use super::source::{Received, Sent};
use crate::{Result, Role};

/// This party's part as COT sender: `corr` holds `groups` vectors of `width` elements.
pub(crate) struct CotSend<'a> {
    pub corr: &'a [u64],
    pub groups: usize,
    pub width: usize,
    pub bits: u32,
}

/// This party's part as COT receiver: `choices[g]` supplies the low `bits` choice bits.
pub(crate) struct CotRecv<'a> {
    pub choices: &'a [u64],
    pub groups: usize,
    pub width: usize,
    pub bits: u32,
}

/// Output shares of [`Engine::cot_many`], one vector per shape.
type SharesPerShape = Vec<Vec<u64>>;

/// Most OTs in one piece of an [`Engine::cot_ring`] call (2^21: 64 MB of keys at the sender).
const PIECE_OTS: usize = 1 << 21;
/// Most element-bits (`groups · width · bits`) in one piece: at most 2^25 corrections.
const PIECE_ENTRIES: usize = 1 << 25;

/// Tweak base for OT number `start` of the instance whose sender is `sender`.
fn tweak_base(sender: Role, start: u64) -> u128 {
    ((sender.index() as u128) << 120) | ((start as u128) << 32)
}

/// Number of packed correction words for the given shape.
fn correction_words(groups: usize, width: usize, bits: u32, ring: u32) -> usize {
    let per_elem: usize = (0..bits).map(|k| (ring - k) as usize).sum();
    (groups * width * per_elem).div_ceil(64)
}

/// Groups per hashing batch so that each AES batch holds about 16k blocks.
fn groups_per_batch(width: usize, bits: u32) -> usize {
    (16384 / (width.div_ceil(2) * bits as usize).max(1)).max(1)
}

fn pad(blocks: &[u128], t: usize) -> u64 {
    let b = blocks[t / 2];
    if t.is_multiple_of(2) { b as u64 } else { (b >> 64) as u64 }
}

pub(super) fn low_mask(n: u32) -> u64 {
    if n == 64 { u64::MAX } else { (1u64 << n) - 1 }
}

struct BitWriter {
    out: Vec<u64>,
    acc: u128,
    n: u32,
}

impl BitWriter {
    fn push(&mut self, v: u64, bits: u32) {
        self.acc |= ((v & low_mask(bits)) as u128) << self.n;
        self.n += bits;
        if self.n >= 64 {
            self.out.push(self.acc as u64);
            self.acc >>= 64;
            self.n -= 64;
        }
    }
    fn finish(mut self) -> Vec<u64> {
        if self.n > 0 {
            self.out.push(self.acc as u64);
        }
        self.out
    }
}

struct BitReader<'a> {
    words: &'a [u64],
    pos: usize,
    acc: u128,
    n: u32,
}

impl BitReader<'_> {
    /// Callers read exactly the bits the (validated) word count holds.
    fn pull(&mut self, bits: u32) -> u64 {
        if self.n < bits {
            self.acc |= (self.words[self.pos] as u128) << self.n;
            self.pos += 1;
            self.n += 64;
        }
        let v = self.acc as u64 & low_mask(bits);
        self.acc >>= bits;
        self.n -= bits;
        v
    }
}

impl Engine<'_> {
    /// Correlated OT keys for this call: `send` OTs with this party as sender and, if `recv` is
    /// Some((m, choices)), `m` as receiver with those choices (None: random ones). The peer calls
    /// with the mirror image. The receiver's message (if its source has one) goes out first,
    /// then the peer's is read: one flight. Counts the bytes as correlation traffic.
    pub(crate) fn ot_keys(
        &mut self,
        kind: &str,
        send: Option<usize>,
        recv: Option<(usize, Option<&[u128]>)>,
        random_choices: bool,
    ) -> Result<(Option<Sent>, Option<Received>)> {
        let before = self.ch.stats().total_bytes();
        let (send_m, recv_m) = (send.unwrap_or(0), recv.map_or(0, |r| r.0));
        self.ots.reserve(self.ch, send_m, recv_m, &mut self.rng.0)?;
        let received = match recv {
            Some((m, choices)) => {
                let r = self.ots.receive(m, choices, &mut self.rng.0);
                if self.ots.message_len(m, random_choices) > 0 {
                    self.ch.send_bulk(kind, &r.msg)?;
                }
                Some(r)
            }
            None => None,
        };
        let sent = match send {
            Some(m) => {
                let len = self.ots.message_len(m, random_choices);
                let msg = if len > 0 { self.ch.recv_bulk(kind, len as u64)? } else { Vec::new() };
                Some(self.ots.send(m, &msg, random_choices)?)
            }
            None => None,
        };
        self.correlation_bytes += self.ch.stats().total_bytes() - before;
        Ok((sent, received))
    }

    /// Runs this party's sender and/or receiver part (the peer runs the mirror image) and
    /// returns (sender output shares, receiver output shares), each `groups × width` values.
    /// Two flights: OT messages (none for some sources), then corrections.
    pub(crate) fn cot(&mut self, send: Option<CotSend>, recv: Option<CotRecv>) -> Result<(Vec<u64>, Vec<u64>)> {
        self.cot_ring(send, recv, 64)
    }

    /// [`Engine::cot`] in `Z_2^ring`: outputs are shares mod `2^ring` (low `ring` bits set only).
    ///
    /// A large call runs in pieces of whole groups, each at most [`PIECE_OTS`] OTs and
    /// [`PIECE_ENTRIES`] element-bits (unless one group alone is larger), two flights each, so
    /// that its keys, pads and corrections stay bounded in memory. The pieces follow from the
    /// public shape, so both parties cut alike.
    pub(crate) fn cot_ring(
        &mut self,
        send: Option<CotSend>,
        recv: Option<CotRecv>,
        ring: u32,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let per_piece = |groups: usize, width: usize, bits: u32| -> usize {
            let ots = PIECE_OTS / bits.max(1) as usize;
            let entries = PIECE_ENTRIES / (width.max(1) * bits.max(1) as usize);
            ots.min(entries).clamp(1, groups.max(1))
        };
        let send_step = send.as_ref().map_or(1, |s| per_piece(s.groups, s.width, s.bits));
        let recv_step = recv.as_ref().map_or(1, |r| per_piece(r.groups, r.width, r.bits));
        let pieces = |groups: usize, step: usize| groups.div_ceil(step).max(1);
        let count = pieces(send.as_ref().map_or(0, |s| s.groups), send_step)
            .max(pieces(recv.as_ref().map_or(0, |r| r.groups), recv_step));
        let (mut sender_shares, mut receiver_shares) = (Vec::new(), Vec::new());
        for p in 0..count {
            let send_part = send.as_ref().map(|s| {
                let (g0, g1) = ((p * send_step).min(s.groups), ((p + 1) * send_step).min(s.groups));
                CotSend { corr: &s.corr[g0 * s.width..g1 * s.width], groups: g1 - g0, width: s.width, bits: s.bits }
            });
            let recv_part = recv.as_ref().map(|r| {
                let (g0, g1) = ((p * recv_step).min(r.groups), ((p + 1) * recv_step).min(r.groups));
                CotRecv { choices: &r.choices[g0..g1], groups: g1 - g0, width: r.width, bits: r.bits }
            });
            let (s, r) = self.cot_piece(send_part, recv_part, ring)?;
            sender_shares.extend(s);
            receiver_shares.extend(r);
        }
        Ok((sender_shares, receiver_shares))
    }

    /// One piece of [`Engine::cot_ring`]: [`Engine::cot_many`] with one shape.
    fn cot_piece(&mut self, send: Option<CotSend>, recv: Option<CotRecv>, ring: u32) -> Result<(Vec<u64>, Vec<u64>)> {
        let (s, r) = self.cot_many(send.as_slice(), recv.as_slice(), ring)?;
        Ok((s.into_iter().next().unwrap_or_default(), r.into_iter().next().unwrap_or_default()))
    }

    /// [`Engine::cot_ring`] for several shapes at once (e.g. groups of different widths), in the
    /// same two flights: the OTs of all shapes in one batch, the corrections in one message. The
    /// peer passes the mirror image (its `recv` shapes are this party's `send` shapes, in the
    /// same order). Returns the output shares per shape. Not cut into pieces: for calls of
    /// moderate size (a few thousand OTs).
    pub(crate) fn cot_many(
        &mut self,
        send: &[CotSend],
        recv: &[CotRecv],
        ring: u32,
    ) -> Result<(SharesPerShape, SharesPerShape)> {
        assert!(ring <= 64, "cot: ring of {ring} bits");
        assert!(
            send.iter().all(|s| s.bits <= ring) && recv.iter().all(|r| r.bits <= ring),
            "cot: more choice bits than ring bits"
        );
        let ots = |groups: usize, bits: u32| groups * bits as usize;
        let words = (!recv.is_empty()).then(|| {
            let m: usize = recv.iter().map(|r| ots(r.groups, r.bits)).sum();
            let mut words = vec![0u128; m.div_ceil(128)];
            let mut i = 0;
            for r in recv {
                assert_eq!(r.choices.len(), r.groups, "cot: one choice value per group");
                for &c in r.choices {
                    for k in 0..r.bits as usize {
                        words[i / 128] |= (((c >> k) & 1) as u128) << (i % 128);
                        i += 1;
                    }
                }
            }
            (m, words)
        });
        for s in send {
            assert_eq!(s.corr.len(), s.groups * s.width, "cot: correlation shape");
        }
        let (sent, received) = self.ot_keys(
            "mpc.cot.u",
            (!send.is_empty()).then(|| send.iter().map(|s| ots(s.groups, s.bits)).sum()),
            words.as_ref().map(|(m, w)| (*m, Some(w.as_slice()))),
            false,
        )?;
        if let Some((_, mut w)) = words {
            w.zeroize();
        }
        let before = self.ch.stats().total_bytes();
        let mut sender_shares = Vec::with_capacity(send.len());
        if let Some(keys) = &sent {
            let (mut packed, mut off) = (Vec::new(), 0);
            for s in send {
                let m = ots(s.groups, s.bits);
                let tweak = tweak_base(self.role, keys.start + off as u64);
                let (shares, words) =
                    self.sender_corrections(s, &keys.k0[off..off + m], &keys.k1[off..off + m], tweak, ring);
                sender_shares.push(shares);
                packed.extend(words);
                off += m;
            }
            self.ch.send_u64s("mpc.cot.d", &packed)?;
        }
        let mut receiver_shares = Vec::with_capacity(recv.len());
        if let Some(keys) = &received {
            let total = recv.iter().map(|r| correction_words(r.groups, r.width, r.bits, ring)).sum();
            let d = self.ch.recv_u64s("mpc.cot.d", total)?;
            let (mut off, mut word) = (0, 0);
            for r in recv {
                let (m, w) = (ots(r.groups, r.bits), correction_words(r.groups, r.width, r.bits, ring));
                let tweak = tweak_base(self.role.peer(), keys.start + off as u64);
                receiver_shares.push(self.receiver_outputs(
                    r,
                    &keys.keys[off..off + m],
                    &d[word..word + w],
                    tweak,
                    ring,
                ));
                off += m;
                word += w;
            }
        }
        self.correction_bytes += self.ch.stats().total_bytes() - before;
        Ok((sender_shares, receiver_shares))
    }

    /// `k0`, `k1`: this shape's OT keys (`groups·bits` each).
    fn sender_corrections(
        &self,
        s: &CotSend,
        k0: &[u128],
        k1: &[u128],
        tweak: u128,
        ring: u32,
    ) -> (Vec<u64>, Vec<u64>) {
        let (bits, width) = (s.bits as usize, s.width);
        let blocks = width.div_ceil(2);
        let mut shares = vec![0u64; s.groups * width];
        let mut w =
            BitWriter { out: Vec::with_capacity(correction_words(s.groups, width, s.bits, ring)), acc: 0, n: 0 };
        let per = groups_per_batch(width, s.bits);
        let mut m0 = Vec::new();
        let mut m1 = Vec::new();
        for g0 in (0..s.groups).step_by(per) {
            let g1 = (g0 + per).min(s.groups);
            let (lo, hi) = (g0 * bits, g1 * bits);
            let tw = tweak + (((g0 * bits) as u128) << 32);
            m0.resize((hi - lo) * blocks, 0);
            m1.resize((hi - lo) * blocks, 0);
            self.hash.expand(&k0[lo..hi], tw, blocks, &mut m0);
            self.hash.expand(&k1[lo..hi], tw, blocks, &mut m1);
            for g in g0..g1 {
                let c = &s.corr[g * width..(g + 1) * width];
                let out = &mut shares[g * width..(g + 1) * width];
                for k in 0..bits {
                    let o = (g - g0) * bits + k;
                    let (p0, p1) = (&m0[o * blocks..(o + 1) * blocks], &m1[o * blocks..(o + 1) * blocks]);
                    for t in 0..width {
                        let (a, b) = (pad(p0, t), pad(p1, t));
                        w.push(a.wrapping_sub(b).wrapping_add(c[t]), ring - k as u32);
                        out[t] = out[t].wrapping_sub(a << k);
                    }
                }
            }
        }
        m0.zeroize();
        m1.zeroize();
        shares.iter_mut().for_each(|v| *v &= low_mask(ring));
        (shares, w.finish())
    }

    fn receiver_outputs(&self, r: &CotRecv, t_rows: &[u128], d: &[u64], tweak: u128, ring: u32) -> Vec<u64> {
        assert_eq!(t_rows.len(), r.groups * r.bits as usize, "cot: one key per OT");
        let (bits, width) = (r.bits as usize, r.width);
        let blocks = width.div_ceil(2);
        let mut shares = vec![0u64; r.groups * width];
        let mut rd = BitReader { words: d, pos: 0, acc: 0, n: 0 };
        let per = groups_per_batch(width, r.bits);
        let mut mb = Vec::new();
        for g0 in (0..r.groups).step_by(per) {
            let g1 = (g0 + per).min(r.groups);
            let rows = &t_rows[g0 * bits..g1 * bits];
            mb.resize(rows.len() * blocks, 0);
            self.hash.expand(rows, tweak + (((g0 * bits) as u128) << 32), blocks, &mut mb);
            for g in g0..g1 {
                let out = &mut shares[g * width..(g + 1) * width];
                for k in 0..bits {
                    let beta = (r.choices[g] >> k) & 1;
                    let o = (g - g0) * bits + k;
                    let p = &mb[o * blocks..(o + 1) * blocks];
                    for t in 0..width {
                        let dv = rd.pull(ring - k as u32);
                        let v = pad(p, t).wrapping_add(dv.wrapping_mul(beta));
                        out[t] = out[t].wrapping_add(v << k);
                    }
                }
            }
        }
        mb.zeroize();
        shares.iter_mut().for_each(|v| *v &= low_mask(ring));
        shares
    }
}
