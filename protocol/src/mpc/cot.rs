//! Arithmetic correlated OT (Gilboa multiplication) on the IKNP instances.
//!
//! A *group* `g` is one receiver value `b_g` (its low `bits` bits are OT choice bits) and one
//! sender correlation vector `c_g` of `width` ring elements. The ring is `Z_2^ring` (`ring` ≤ 64,
//! `bits` ≤ `ring`; [`Engine::cot`] uses 64). OT `(g, k)` transfers, for each element `t`, `m0[t]`
//! or `m0[t] + c_g[t]` modulo `2^(ring−k)`: the sender sends the correction `d = m0 − m1 + c_g`
//! (low `ring − k` bits only, bit-packed), the receiver with choice `β` outputs
//! `(m_β + β·d) · 2^k` and the sender `−m0 · 2^k`. Summed over `k` the two outputs are additive
//! shares of `b_g · c_g` (mod 2^ring; outputs are reduced to their low `ring` bits). `m0`, `m1`
//! are the tweakable-hash expansions of the IKNP rows (`q`, `q ⊕ Δ`); the receiver's `H(t)`
//! equals `m_β`.
//!
//! What each party learns: the sender sees only the IKNP message (independent of the choices).
//! The receiver sees `d`, which is masked by the pad of the unchosen message `m_{1−β}`
//! (pseudorandom to it since it does not know Δ), so `d` is uniform in its view; its output
//! share is masked by `m0`. Both output shares are uniform on their own. Nothing is reused: each
//! call extends fresh OTs, and pads are bound to the OT index and element block by the tweak.

use zeroize::Zeroize;

use super::Engine;
use crate::ot::iknp;
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
    /// Runs this party's sender and/or receiver part (the peer runs the mirror image) and
    /// returns (sender output shares, receiver output shares), each `groups × width` values.
    /// Two flights: IKNP messages, then corrections.
    pub(crate) fn cot(&mut self, send: Option<CotSend>, recv: Option<CotRecv>) -> Result<(Vec<u64>, Vec<u64>)> {
        self.cot_ring(send, recv, 64)
    }

    /// [`Engine::cot`] in `Z_2^ring`: outputs are shares mod `2^ring` (low `ring` bits set only).
    pub(crate) fn cot_ring(
        &mut self,
        send: Option<CotSend>,
        recv: Option<CotRecv>,
        ring: u32,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        assert!(ring <= 64, "cot: ring of {ring} bits");
        assert!(
            send.as_ref().is_none_or(|s| s.bits <= ring) && recv.as_ref().is_none_or(|r| r.bits <= ring),
            "cot: more choice bits than ring bits"
        );
        let recv_state = match &recv {
            Some(r) => {
                assert_eq!(r.choices.len(), r.groups, "cot: one choice value per group");
                let m = r.groups * r.bits as usize;
                let mut words = vec![0u128; m.div_ceil(128)];
                for (g, &c) in r.choices.iter().enumerate() {
                    for k in 0..r.bits as usize {
                        let i = g * r.bits as usize + k;
                        words[i / 128] |= (((c >> k) & 1) as u128) << (i % 128);
                    }
                }
                let start = self.ot_recv.count;
                let (msg, t) = self.ot_recv.extend(m, &words);
                self.ch.send_bulk("mpc.cot.u", &msg)?;
                Some((start, t))
            }
            None => None,
        };
        let sender_shares = match &send {
            Some(s) => {
                assert_eq!(s.corr.len(), s.groups * s.width, "cot: correlation shape");
                let m = s.groups * s.bits as usize;
                let start = self.ot_send.count;
                let msg = self.ch.recv_bulk("mpc.cot.u", iknp::message_len(m) as u64)?;
                let mut q = self.ot_send.extend(m, &msg)?;
                let (shares, packed) = self.sender_corrections(s, &q, tweak_base(self.role, start), ring);
                q.zeroize();
                self.ch.send_u64s("mpc.cot.d", &packed)?;
                shares
            }
            None => Vec::new(),
        };
        let receiver_shares = match (&recv, recv_state) {
            (Some(r), Some((start, mut t))) => {
                let d = self.ch.recv_u64s("mpc.cot.d", correction_words(r.groups, r.width, r.bits, ring));
                let shares = d.map(|d| self.receiver_outputs(r, &t, &d, tweak_base(self.role.peer(), start), ring));
                t.zeroize();
                shares?
            }
            _ => Vec::new(),
        };
        Ok((sender_shares, receiver_shares))
    }

    fn sender_corrections(&self, s: &CotSend, q: &[u128], tweak: u128, ring: u32) -> (Vec<u64>, Vec<u64>) {
        let (bits, width) = (s.bits as usize, s.width);
        let blocks = width.div_ceil(2);
        let delta = self.ot_send.delta();
        let mut shares = vec![0u64; s.groups * width];
        let mut w =
            BitWriter { out: Vec::with_capacity(correction_words(s.groups, width, s.bits, ring)), acc: 0, n: 0 };
        let per = groups_per_batch(width, s.bits);
        let mut m0 = Vec::new();
        let mut m1 = Vec::new();
        for g0 in (0..s.groups).step_by(per) {
            let g1 = (g0 + per).min(s.groups);
            let rows = &q[g0 * bits..g1 * bits];
            let mut flipped: Vec<u128> = rows.iter().map(|x| x ^ delta).collect();
            let tw = tweak + (((g0 * bits) as u128) << 32);
            m0.resize(rows.len() * blocks, 0);
            m1.resize(rows.len() * blocks, 0);
            self.hash.expand(rows, tw, blocks, &mut m0);
            self.hash.expand(&flipped, tw, blocks, &mut m1);
            flipped.zeroize();
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
