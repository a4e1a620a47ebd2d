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
//! Flights. With IKNP two: the receiver's OT message for its choices `β = b` bits, then the
//! corrections. With a source whose random-choice OTs cost no message (silent, the test dealer)
//! one: the receiver takes OTs with random choices `c` and sends the flips `f = b ⊕ c` (1 bit
//! per OT) while the sender, in the same flight, sends the corrections for those OTs (which do
//! not depend on `f`); the transfer above gives shares `s_send + s_recv = c·c_g·2^k`. Since
//! `b·x = f·x + (1 − 2f)·c·x`, the sender outputs `f·c_g·2^k + (1 − 2f)·s_send` (it hashes its
//! `k0` again once the flips arrive) and the receiver `(1 − 2f)·s_recv`. A party that is
//! sender and receiver in one call sends its flips and corrections, then receives: one turn.
//!
//! What each party learns: the sender sees only the receiver's OT message: the IKNP columns,
//! independent of the choices, or the flips, which are `b` one-time-padded by the OTs' random
//! choices `c` (uniform and unknown to the sender, see [`super::source`]): exactly the silent
//! source's derandomisation bits of the two-flight protocol, so uniform in its view. The
//! receiver sees `d`, which is masked by the pad of the unchosen message `m_{1−β}`
//! (pseudorandom to it since it does not know Δ), so `d` is uniform in its view; its output
//! share is masked by `m0`. Both output shares are uniform on their own (the fix-up multiplies
//! a uniform share by ±1 and adds a value the party knows). Nothing is reused: each call takes
//! fresh OTs, and pads are bound to the OT index and element block by the tweak.

use zeroize::{Zeroize, Zeroizing};

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

/// The receiver's choice bits of a call, packed 128 per word in OT order: the OTs' (`used`:
/// random with one flight) and its own (`own`), from OT `first` on (one shape's first OT).
struct Choices<'a> {
    used: &'a [u128],
    own: &'a [u128],
    first: usize,
}

/// Output shares of [`Engine::cot_many`], one vector per shape.
type SharesPerShape = Vec<Vec<u64>>;

/// Most OTs in one piece of an [`Engine::cot_ring`] call (2^21: 64 MB of keys at the sender).
const PIECE_OTS: usize = 1 << 21;
/// Most element-bits (`groups · width · bits`) in one piece: at most 2^25 corrections.
const PIECE_ENTRIES: usize = 1 << 25;

/// Tweak base for OT number `start` of the instance whose sender is `sender`.
pub(super) fn tweak_base(sender: Role, start: u64) -> u128 {
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

pub(super) struct BitWriter {
    out: Vec<u64>,
    acc: u128,
    n: u32,
}

impl BitWriter {
    pub(super) fn new(words: usize) -> BitWriter {
        BitWriter { out: Vec::with_capacity(words), acc: 0, n: 0 }
    }
    pub(super) fn push(&mut self, v: u64, bits: u32) {
        self.acc |= ((v & low_mask(bits)) as u128) << self.n;
        self.n += bits;
        if self.n >= 64 {
            self.out.push(self.acc as u64);
            self.acc >>= 64;
            self.n -= 64;
        }
    }
    pub(super) fn finish(mut self) -> Vec<u64> {
        if self.n > 0 {
            self.out.push(self.acc as u64);
        }
        self.out
    }
}

pub(super) struct BitReader<'a> {
    words: &'a [u64],
    pos: usize,
    acc: u128,
    n: u32,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(words: &'a [u64]) -> BitReader<'a> {
        BitReader { words, pos: 0, acc: 0, n: 0 }
    }
    /// Callers read exactly the bits the (validated) word count holds.
    pub(super) fn pull(&mut self, bits: u32) -> u64 {
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
    /// One flight or two (module docs: flights).
    pub(crate) fn cot(&mut self, send: Option<CotSend>, recv: Option<CotRecv>) -> Result<(Vec<u64>, Vec<u64>)> {
        self.cot_ring(send, recv, 64)
    }

    /// [`Engine::cot`] in `Z_2^ring`: outputs are shares mod `2^ring` (low `ring` bits set only).
    ///
    /// A large call runs in pieces of whole groups, each at most [`PIECE_OTS`] OTs and
    /// [`PIECE_ENTRIES`] element-bits (unless one group alone is larger), one call of
    /// [`Engine::cot_many`] each, so
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

    /// [`Engine::cot_ring`] for several shapes at once (e.g. groups of different widths): the OTs
    /// of all shapes in one batch, the corrections in one message. The peer passes the mirror
    /// image (its `recv` shapes are this party's `send` shapes, in the same order). Returns the
    /// output shares per shape. Not cut into pieces: for calls of moderate size (a few thousand
    /// OTs).
    ///
    /// One flight if the source's random-choice OTs need no message (`message_len(m, true)` is
    /// 0: silent, test dealer), else two (module docs: flights).
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
        let (m_send, m_recv): (usize, usize) =
            (send.iter().map(|s| ots(s.groups, s.bits)).sum(), recv.iter().map(|r| ots(r.groups, r.bits)).sum());
        let mut words = Zeroizing::new(vec![0u128; m_recv.div_ceil(128)]);
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
        for s in send {
            assert_eq!(s.corr.len(), s.groups * s.width, "cot: correlation shape");
        }
        let one_flight = self.ots.message_len(1, true) == 0;
        // One flight: random choices c (the source sends nothing), fixed up by the flips b ⊕ c.
        let (sent, received) = self.ot_keys(
            "mpc.cot.u",
            (!send.is_empty()).then_some(m_send),
            (!recv.is_empty()).then_some((m_recv, (!one_flight).then_some(words.as_slice()))),
            one_flight,
        )?;
        let before = self.ch.stats().total_bytes();
        if one_flight && let Some(keys) = &received {
            let mut flips: Vec<u8> = (0..m_recv.div_ceil(8))
                .map(|j| ((words[j / 16] ^ keys.choices[j / 16]) >> (8 * (j % 16))) as u8)
                .collect();
            if let Some(last) = flips.last_mut() {
                *last &= low_mask(((m_recv - 1) % 8 + 1) as u32) as u8;
            }
            self.ch.send_bulk("mpc.cot.f", &flips)?;
        }
        self.correlation_bytes += self.ch.stats().total_bytes() - before;
        let mut before = self.ch.stats().total_bytes();
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
            if one_flight {
                self.correction_bytes += self.ch.stats().total_bytes() - before;
                let flips_at = self.ch.stats().total_bytes();
                let flips = self.ch.recv_bulk_exact("mpc.cot.f", m_send.div_ceil(8) as u64)?;
                self.correlation_bytes += self.ch.stats().total_bytes() - flips_at;
                before = self.ch.stats().total_bytes();
                let mut off = 0;
                for (s, shares) in send.iter().zip(&mut sender_shares) {
                    let m = ots(s.groups, s.bits);
                    let tweak = tweak_base(self.role, keys.start + off as u64);
                    self.sender_unflip(s, &keys.k0[off..off + m], tweak, ring, (&flips, off), shares);
                    off += m;
                }
            }
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
                    Choices { used: &keys.choices, own: &words, first: off },
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
        let mut w = BitWriter::new(correction_words(s.groups, width, s.bits, ring));
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

    /// Adds `f·(c + 2·m0)·2^k` to the sender's share of each OT `(g, k)` whose flip bit `f` is
    /// set, so that the shares of `c_OT·c_g` (random choice `c_OT`) become shares of
    /// `b·c_g` for `b = c_OT ⊕ f`: `f·c_g + (1 − 2f)·(−m0)`. `flips`: the peer's flip bits and
    /// the index of this shape's first OT in them; `k0`: this shape's keys (for `m0` again).
    fn sender_unflip(
        &self,
        s: &CotSend,
        k0: &[u128],
        tweak: u128,
        ring: u32,
        (flips, first): (&[u8], usize),
        shares: &mut [u64],
    ) {
        let (bits, width) = (s.bits as usize, s.width);
        let blocks = width.div_ceil(2);
        let per = groups_per_batch(width, s.bits);
        let mut m0 = Vec::new();
        for g0 in (0..s.groups).step_by(per) {
            let g1 = (g0 + per).min(s.groups);
            let (lo, hi) = (g0 * bits, g1 * bits);
            m0.resize((hi - lo) * blocks, 0);
            self.hash.expand(&k0[lo..hi], tweak + ((lo as u128) << 32), blocks, &mut m0);
            for g in g0..g1 {
                let c = &s.corr[g * width..(g + 1) * width];
                let out = &mut shares[g * width..(g + 1) * width];
                for k in 0..bits {
                    let i = first + g * bits + k;
                    if (flips[i / 8] >> (i % 8)) & 1 == 0 {
                        continue;
                    }
                    let o = (g - g0) * bits + k;
                    let p0 = &m0[o * blocks..(o + 1) * blocks];
                    for t in 0..width {
                        out[t] = out[t].wrapping_add(c[t].wrapping_add(pad(p0, t) << 1) << k);
                    }
                }
            }
        }
        m0.zeroize();
        shares.iter_mut().for_each(|v| *v &= low_mask(ring));
    }

    /// The receiver's output shares of one shape: per OT `(g, k)` with OT choice `β` (from
    /// `choices.used`) and flip `f = β ⊕ b` (`b` from `choices.own`; 0 with two flights),
    /// `(1 − 2f)·(m_β + β·d)·2^k`.
    fn receiver_outputs(
        &self,
        r: &CotRecv,
        t_rows: &[u128],
        choices: Choices,
        d: &[u64],
        tweak: u128,
        ring: u32,
    ) -> Vec<u64> {
        assert_eq!(t_rows.len(), r.groups * r.bits as usize, "cot: one key per OT");
        let (bits, width) = (r.bits as usize, r.width);
        let blocks = width.div_ceil(2);
        let mut shares = vec![0u64; r.groups * width];
        let mut rd = BitReader::new(d);
        let per = groups_per_batch(width, r.bits);
        let mut mb = Vec::new();
        let bit = |w: &[u128], i: usize| ((w[i / 128] >> (i % 128)) & 1) as u64;
        for g0 in (0..r.groups).step_by(per) {
            let g1 = (g0 + per).min(r.groups);
            let rows = &t_rows[g0 * bits..g1 * bits];
            mb.resize(rows.len() * blocks, 0);
            self.hash.expand(rows, tweak + (((g0 * bits) as u128) << 32), blocks, &mut mb);
            for g in g0..g1 {
                let out = &mut shares[g * width..(g + 1) * width];
                for k in 0..bits {
                    let i = choices.first + g * bits + k;
                    let beta = bit(choices.used, i);
                    let flip = beta ^ bit(choices.own, i);
                    let o = (g - g0) * bits + k;
                    let p = &mb[o * blocks..(o + 1) * blocks];
                    for t in 0..width {
                        let dv = rd.pull(ring - k as u32);
                        let v = pad(p, t).wrapping_add(dv.wrapping_mul(beta)) << k;
                        out[t] = if flip == 1 { out[t].wrapping_sub(v) } else { out[t].wrapping_add(v) };
                    }
                }
            }
        }
        mb.zeroize();
        shares.iter_mut().for_each(|v| *v &= low_mask(ring));
        shares
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::channel::run_pair;
    use crate::fixed::FixedPoint;
    use crate::mpc::Correlations;
    use crate::{Channel, Error, PeerError};

    /// Shapes of one call as (groups, width, bits), by sender: the gov's, then the bank's.
    const GOV_SENDS: [(usize, usize, u32); 2] = [(5, 3, 46), (130, 1, 1)];
    const BANK_SENDS: [(usize, usize, u32); 1] = [(7, 4, 46)];
    const RING: u32 = 46;

    /// Correlations and choices of a shape (the sender's and the receiver's inputs), from a seed
    /// both the parties and the check use.
    fn inputs(seed: u64, (groups, width, _): (usize, usize, u32)) -> (Vec<u64>, Vec<u64>) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let corr = (0..groups * width).map(|_| rng.next_u64()).collect();
        (corr, (0..groups).map(|_| rng.next_u64()).collect())
    }

    fn engine(ch: &mut Channel, c: Correlations) -> Engine<'_> {
        let seed = ch.role().index() as u64;
        Engine::with_correlations(ch, FixedPoint::new(16), c, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
    }

    /// One `cot_many` call with the gov's and the bank's shapes: (sender shares, receiver shares,
    /// turns of the call; the OTs are reserved before counting).
    fn party(ch: &mut Channel, c: Correlations) -> (SharesPerShape, SharesPerShape, u64) {
        let mut e = engine(ch, c);
        let me = e.role();
        let (mine, peers): (&[_], &[_]) =
            if me == Role::Gov { (&GOV_SENDS, &BANK_SENDS) } else { (&BANK_SENDS, &GOV_SENDS) };
        let seed = |who: Role, i: usize| 10 * who.index() as u64 + i as u64;
        let sends: Vec<_> = mine.iter().enumerate().map(|(i, &s)| inputs(seed(me, i), s).0).collect();
        let recvs: Vec<_> = peers.iter().enumerate().map(|(i, &s)| inputs(seed(me.peer(), i), s).1).collect();
        let send: Vec<CotSend> = mine
            .iter()
            .zip(&sends)
            .map(|(&(groups, width, bits), corr)| CotSend { corr, groups, width, bits })
            .collect();
        let recv: Vec<CotRecv> = peers
            .iter()
            .zip(&recvs)
            .map(|(&(groups, width, bits), choices)| CotRecv { choices, groups, width, bits })
            .collect();
        let ots = |shapes: &[(usize, usize, u32)]| shapes.iter().map(|&(g, _, b)| g * b as usize).sum::<usize>();
        e.ots.reserve(e.ch, ots(mine), ots(peers), &mut e.rng.0).unwrap();
        let before = e.stats();
        let (s, r) = e.cot_many(&send, &recv, RING).unwrap();
        (s, r, e.stats().since(&before).rounds)
    }

    /// Checks that the sender's and the receiver's shares add up to `b·c` mod 2^RING per shape.
    fn check(sender: Role, sent: &SharesPerShape, received: &SharesPerShape, shapes: &[(usize, usize, u32)]) {
        for (i, &shape) in shapes.iter().enumerate() {
            let (corr, _) = inputs(10 * sender.index() as u64 + i as u64, shape);
            let (_, choices) = inputs(10 * sender.index() as u64 + i as u64, shape);
            let (groups, width, bits) = shape;
            for g in 0..groups {
                let b = choices[g] & low_mask(bits);
                for t in 0..width {
                    let want = b.wrapping_mul(corr[g * width + t]) & low_mask(RING);
                    let got = sent[i][g * width + t].wrapping_add(received[i][g * width + t]) & low_mask(RING);
                    assert_eq!(got, want, "{sender} sends, shape {i}, group {g}, element {t}");
                }
            }
        }
    }

    fn run(c: Correlations) -> u64 {
        let ((gs, gr, g_turns), (bs, br, b_turns)) = run_pair(|ch| party(ch, c), |ch| party(ch, c));
        check(Role::Gov, &gs, &br, &GOV_SENDS);
        check(Role::Bank, &bs, &gr, &BANK_SENDS);
        assert_eq!(g_turns, b_turns);
        g_turns
    }

    #[test]
    fn silent_cot_takes_one_turn_in_both_directions_and_gives_the_products() {
        assert_eq!(run(Correlations::Silent), 1);
    }

    #[test]
    fn iknp_cot_keeps_two_turns_and_gives_the_products() {
        assert_eq!(run(Correlations::Iknp), 2);
    }

    /// The gov runs one silent call of 130 one-bit OTs in `Z_2^8` as sender (`gov_sends`) or
    /// receiver; the bank, honest up to its reservation of the OTs, then sends one bulk message of
    /// `kind` with `bytes` zero bytes and reads the gov's message. Returns the gov's error.
    fn gov_error_on(gov_sends: bool, kind: &'static str, bytes: usize) -> Error {
        let (gov, ()) = run_pair(
            |ch| {
                let mut e = engine(ch, Correlations::Silent);
                let v = vec![1u64; 130];
                let (send, recv) = if gov_sends {
                    (vec![CotSend { corr: &v, groups: 130, width: 1, bits: 1 }], vec![])
                } else {
                    (vec![], vec![CotRecv { choices: &v, groups: 130, width: 1, bits: 1 }])
                };
                e.cot_many(&send, &recv, 8).expect_err("a short frame is refused")
            },
            |ch| {
                let mut e = engine(ch, Correlations::Silent);
                let (send, recv) = if gov_sends { (0, 130) } else { (130, 0) };
                e.ots.reserve(e.ch, send, recv, &mut e.rng.0).unwrap();
                e.ch.send_bulk(kind, &vec![0; bytes]).unwrap();
                // The gov's own message (its corrections or flips), sent before it reads.
                let _ = e.ch.recv_bulk(if gov_sends { "mpc.cot.d" } else { "mpc.cot.f" }, 1 << 10);
            },
        );
        gov
    }

    #[test]
    fn short_flips_and_short_corrections_are_peer_errors() {
        // 130 OTs: 17 bytes of flips; corrections of 8 − 0 bits each, 17 words.
        let short_flips = gov_error_on(true, "mpc.cot.f", 16);
        assert!(matches!(short_flips, Error::Peer(PeerError::WrongLength { .. })), "{short_flips:?}");
        let short_corrections = gov_error_on(false, "mpc.cot.d", 16 * 8);
        assert!(matches!(short_corrections, Error::Peer(PeerError::WrongLength { .. })), "{short_corrections:?}");
    }
}
