//! Boolean sharing, secure comparison (MSB extraction) and multiplexers, all on OT.
//!
//! Bits are XOR-shared and packed 64 per word (bit `i` of the vector = bit `i % 64` of word
//! `i / 64`).
//!
//! - AND triples: from two random OTs in opposite directions. As ROT sender a party gets bits
//!   `(h0, h1)` and sets `a = h0 ⊕ h1`, `u = h0`; as ROT receiver it picks random `b` and gets
//!   `v = u_peer ⊕ b·a_peer`. Then `c = a·b ⊕ u ⊕ v` gives `(a0⊕a1)(b0⊕b1) = c0⊕c1`. Each party
//!   only knows its own `a, b, c`: its `a` is a hash of OT keys the peer cannot compute
//!   (unknown Δ / unchosen message), its `b` are OT choices hidden from the peer (random choices,
//!   so the silent source sends nothing for them; see `source`).
//! - AND gate (Beaver): open `x⊕a`, `y⊕b` (uniform, since `a`, `b` are unknown to the peer).
//! - MSB of an arithmetic share `x = x0 + x1`: `msb(x) = msb(x0) ⊕ msb(x1) ⊕ carry`, where the
//!   carry out of the low 63 bits of `x0 + x1` is computed by a generate/propagate tree
//!   (`G = a∧b`, `P = a⊕b`; combine `G = G_hi ⊕ P_hi∧G_lo`, `P = P_hi∧P_lo`): 63 + 123 ANDs per
//!   element in 7 AND layers, bit-sliced over all elements. `msb_width` does the same on
//!   `x mod 2^width` (the low `width` bits of the shares) for values known to be small. Parties learn only uniformly masked
//!   openings; the output stays XOR-shared.
//! - Multiplexer `β·y` for XOR-shared `β` and arithmetic `y`: each party is COT sender with
//!   correlation `(1 − 2β_me)·y_me` against the peer's choice `β_peer` (one OT per element and
//!   direction); adding `β_me·y_me` locally gives shares of `(β_me ⊕ β_peer)·y_me`. Security is
//!   that of the arithmetic COT (see `cot`).

use super::Engine;
use super::cot::{CotRecv, CotSend};
use crate::{Result, Role};
use zeroize::Zeroize;

/// XOR shares of AND triples, packed; wiped on drop.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub(crate) struct Triples {
    a: Vec<u64>,
    b: Vec<u64>,
    c: Vec<u64>,
    used: usize,
}

/// Words of AND triples (64 each) made at once by [`Engine::and_triples`]: 2^20 triples.
const TRIPLE_WORDS_PER_PIECE: usize = 1 << 14;

/// Number of AND gates (per element) of the carry tree over `n` leaves, leaves excluded.
fn tree_ands(mut n: usize) -> usize {
    let mut total = 0;
    while n > 1 {
        total += (n / 2) * if n == 2 { 1 } else { 2 };
        n = n / 2 + n % 2;
    }
    total
}

fn xor(x: &[u64], y: &[u64]) -> Vec<u64> {
    x.iter().zip(y).map(|(a, b)| a ^ b).collect()
}

impl Engine<'_> {
    /// `64·words` AND triples from random OTs in both directions (at most one flight per
    /// [`TRIPLE_WORDS_PER_PIECE`] words, none with silent correlations). Made piece by piece, so
    /// the working memory (about 100 bytes per triple while a piece is made) stays bounded
    /// whatever the number of triples; the triples themselves take 3 bits each.
    pub(crate) fn and_triples(&mut self, words: usize) -> Result<Triples> {
        let mut all = Triples {
            a: Vec::with_capacity(words),
            b: Vec::with_capacity(words),
            c: Vec::with_capacity(words),
            used: 0,
        };
        for start in (0..words.max(1)).step_by(TRIPLE_WORDS_PER_PIECE) {
            let piece = self.and_triple_piece((words - start).min(TRIPLE_WORDS_PER_PIECE))?;
            all.a.extend_from_slice(&piece.a);
            all.b.extend_from_slice(&piece.b);
            all.c.extend_from_slice(&piece.c);
        }
        Ok(all)
    }

    fn and_triple_piece(&mut self, words: usize) -> Result<Triples> {
        let m = 64 * words;
        let (sent, received) = self.ot_keys("mpc.and.u", Some(m), Some((m, None)), true)?;
        let (sent, received) = (sent.expect("sender part"), received.expect("receiver part"));
        let (mut h0, mut h1, mut hv) = (vec![0u128; m], vec![0u128; m], vec![0u128; m]);
        let send_tweak = ((self.role.index() as u128) << 120) | ((sent.start as u128) << 32);
        let recv_tweak = ((self.role.peer().index() as u128) << 120) | ((received.start as u128) << 32);
        self.hash.expand(&sent.k0, send_tweak, 1, &mut h0);
        self.hash.expand(&sent.k1, send_tweak, 1, &mut h1);
        self.hash.expand(&received.keys, recv_tweak, 1, &mut hv);
        let pack = |h: &[u128]| -> Vec<u64> {
            let mut out = vec![0u64; words];
            for (i, v) in h.iter().enumerate() {
                out[i / 64] |= ((v & 1) as u64) << (i % 64);
            }
            out
        };
        let (mut u, mut h1p, mut v) = (pack(&h0), pack(&h1), pack(&hv));
        let a = xor(&u, &h1p);
        let b: Vec<u64> = (0..words).map(|w| (received.choices[w / 2] >> (64 * (w % 2))) as u64).collect();
        let c: Vec<u64> = (0..words).map(|w| (a[w] & b[w]) ^ u[w] ^ v[w]).collect();
        // Wipe the hashes the triples were made from (the keys wipe themselves on drop).
        for buf in [&mut h0, &mut h1, &mut hv] {
            buf.zeroize();
        }
        for buf in [&mut u, &mut h1p, &mut v] {
            buf.zeroize();
        }
        Ok(Triples { a, b, c, used: 0 })
    }

    /// XOR shares of `x ∧ y` (packed, equal lengths) using the next triples (one flight).
    pub(super) fn and(&mut self, x: &[u64], y: &[u64], tr: &mut Triples) -> Result<Vec<u64>> {
        let n = x.len();
        let (a, b, c) = (&tr.a[tr.used..tr.used + n], &tr.b[tr.used..tr.used + n], &tr.c[tr.used..tr.used + n]);
        tr.used += n;
        let mut open = xor(x, a);
        open.extend(xor(y, b));
        self.ch.send_u64s("mpc.and.open", &open)?;
        let peer = self.ch.recv_u64s("mpc.and.open", 2 * n)?;
        let gov = self.role == Role::Gov;
        Ok((0..n)
            .map(|i| {
                let (d, e) = (open[i] ^ peer[i], open[n + i] ^ peer[n + i]);
                c[i] ^ (d & b[i]) ^ (e & a[i]) ^ if gov { d & e } else { 0 }
            })
            .collect())
    }

    /// XOR shares of the most significant bit of each shared ring element (i.e. `[x < 0]` for
    /// two's complement), packed 64 per word.
    pub fn msb(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        self.msb_width(x, 64)
    }

    /// XOR shares of bit `width − 1` of each `x mod 2^width` (packed): `[x < 0]` whenever the
    /// true value satisfies `|x| < 2^(width−1)`. Shares mod 2^width are the low bits of the
    /// shares, so a narrower width costs fewer ANDs (`width − 1` leaves plus the tree).
    pub fn msb_width(&mut self, x: &[u64], width: u32) -> Result<Vec<u64>> {
        assert!((2..=64).contains(&width), "msb_width: width {width} not in 2..=64");
        let top_bit = width - 1;
        let mut out = self.carry_out(x, top_bit as usize)?;
        for (e, v) in x.iter().enumerate() {
            out[e / 64] ^= ((v >> top_bit) & 1) << (e % 64);
        }
        Ok(out)
    }

    /// XOR shares (packed) of the carry out of the low `low` bits of `x_gov + x_bank`, i.e.
    /// `[(x_gov mod 2^low) + (x_bank mod 2^low) ≥ 2^low]` (1 ≤ `low` ≤ 63).
    pub(crate) fn carry_out(&mut self, x: &[u64], low: usize) -> Result<Vec<u64>> {
        assert!((1..64).contains(&low), "carry_out: {low} low bits");
        let nw = x.len().div_ceil(64);
        if nw == 0 {
            return Ok(Vec::new());
        }
        // Bit slices of this party's share: slice p (nw words) holds bit p of every element.
        let mut own = vec![0u64; low * nw];
        for (e, v) in x.iter().enumerate() {
            for p in 0..low {
                own[p * nw + e / 64] |= ((v >> p) & 1) << (e % 64);
            }
        }
        let mut tr = self.and_triples(nw * (low + tree_ands(low)))?;
        let zeros = vec![0u64; own.len()];
        // Leaves: G_p = a_p ∧ b_p where gov holds a (its share bits) and bank holds b.
        let g =
            if self.role == Role::Gov { self.and(&own, &zeros, &mut tr)? } else { self.and(&zeros, &own, &mut tr)? };
        let mut nodes: Vec<(Vec<u64>, Vec<u64>)> =
            (0..low).map(|p| (g[p * nw..(p + 1) * nw].to_vec(), own[p * nw..(p + 1) * nw].to_vec())).collect();
        while nodes.len() > 1 {
            let last = nodes.len() == 2;
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for pair in nodes.chunks_exact(2) {
                let ((g_lo, p_lo), (_, p_hi)) = (&pair[0], &pair[1]);
                xs.extend_from_slice(p_hi);
                ys.extend_from_slice(g_lo);
                if !last {
                    xs.extend_from_slice(p_hi);
                    ys.extend_from_slice(p_lo);
                }
            }
            let z = self.and(&xs, &ys, &mut tr)?;
            let per = if last { nw } else { 2 * nw };
            let mut next: Vec<(Vec<u64>, Vec<u64>)> = nodes
                .chunks_exact(2)
                .enumerate()
                .map(|(i, pair)| {
                    let zi = &z[i * per..(i + 1) * per];
                    let g = xor(&pair[1].0, &zi[..nw]);
                    let p = if last { Vec::new() } else { zi[nw..].to_vec() };
                    (g, p)
                })
                .collect();
            if nodes.len() % 2 == 1 {
                next.push(nodes.pop().expect("odd node"));
            }
            nodes = next;
        }
        let mut out = nodes.swap_remove(0).0;
        if !x.len().is_multiple_of(64) {
            out[nw - 1] &= (1u64 << (x.len() % 64)) - 1;
        }
        Ok(out)
    }

    /// Shares of `β_i · y_i` for XOR-shared bits `β` (packed) and shared ring elements `y`.
    pub fn mux(&mut self, bits: &[u64], y: &[u64]) -> Result<Vec<u64>> {
        let n = y.len();
        if bits.len() != n.div_ceil(64) {
            return Err(crate::Error::Input(crate::InputError::Usage {
                op: "mux",
                detail: format!("{} bit words for {n} values", bits.len()),
            }));
        }
        let beta: Vec<u64> = (0..n).map(|i| (bits[i / 64] >> (i % 64)) & 1).collect();
        let corr: Vec<u64> = (0..n).map(|i| y[i].wrapping_mul(1u64.wrapping_sub(2 * beta[i]))).collect();
        let (s, r) = self.cot(
            Some(CotSend { corr: &corr, groups: n, width: 1, bits: 1 }),
            Some(CotRecv { choices: &beta, groups: n, width: 1, bits: 1 }),
        )?;
        Ok((0..n).map(|i| (beta[i] * y[i]).wrapping_add(s[i]).wrapping_add(r[i])).collect())
    }

    /// Fixed-point shares of `[x_i < 0]` (1.0 or 0.0): MSB extraction then a multiplexer.
    pub fn less_than_zero(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        let bits = self.msb(x)?;
        let one = self.add_public(&vec![0u64; x.len()], &vec![self.fp.encode(1.0); x.len()]);
        self.mux(&bits, &one)
    }
}
