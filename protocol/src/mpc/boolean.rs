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
//!   so the silent source sends nothing for them; see `source`). Bits `j < k ≤ 128` of each hash
//!   give `k` triples `(a_j, b, c_j)` with a common `b` from the same two OTs (the hash bits are
//!   independent and uniform to the peer, so each `a_j` is).
//! - AND gate (Beaver): open `x⊕a`, `y⊕b` (uniform, since `a`, `b` are unknown to the peer);
//!   `k` gates with a common operand `y` open `y⊕b` once.
//! - MSB of an arithmetic share `x = x0 + x1`: `msb(x) = msb(x0) ⊕ msb(x1) ⊕ carry`, where the
//!   carry out of the low `w − 1` bits of `x0 + x1` (`w` = 64, or the width of `msb_width`) is
//!   computed as in CrypTFlow2's millionaires' protocol (Rathee et al., CCS 2020): the bits are
//!   cut into leaves of 4; for each leaf, with the gov's bits `α` and the bank's `β`, XOR shares
//!   of generate `G = [α + β ≥ 16]` and propagate `P = [α + β = 15]` come from one 1-of-16 OT
//!   made of 4 correlated OTs (the bank receiver with its bits as choices, the gov sending the
//!   16-entry table of `(G(α, v), P(α, v))` masked with its random output bits, entry `v`
//!   encrypted under `H(⊕_i K_i^{v_i}, tweak(leaf, offset, v))` with the hashed keys
//!   `K_i^b = H(k_i^b, tweak(OT i))`; for the lowest leaf only `G`, whose `P` the tree never
//!   uses): 2 key hashes per bit and 16 pad hashes per leaf and offset at the gov, 1 and 1 at the
//!   bank; then the
//!   generate/propagate tree over the leaves (`G = G_hi ⊕ P_hi∧G_lo`, `P = P_hi∧P_lo`, one
//!   two-AND triple per combination), one layer per flight, bit-sliced over all elements. At
//!   `w = 64`: 63 OTs and 15 two-AND triples (30 random OTs) per element, 1 + 4 flights (the
//!   bit-by-bit tree took 372 random OTs and 7 flights). What each party learns: the gov sees
//!   the source's receiver message (uniform; `source`); the bank sees the tables, whose entries
//!   other than its own `β` are masked by hashes whose input contains a hashed key it does not
//!   hold (`K_i^{1−β_i}` for some `i`: `H` of the other OT message, unpredictable without Δ), so
//!   every such input is unpredictable to it and the pads are pseudorandom (random-oracle /
//!   ideal-permutation model for `H`, as the tree hash), and its own entry is masked by the gov's
//!   uniform output bits; AND openings are uniformly masked. The output stays XOR-shared.
//! - Multiplexer `β·y` for XOR-shared `β` and arithmetic `y`: each party is COT sender with
//!   correlation `(1 − 2β_me)·y_me` against the peer's choice `β_peer` (one OT per element and
//!   direction); adding `β_me·y_me` locally gives shares of `(β_me ⊕ β_peer)·y_me`. Security is
//!   that of the arithmetic COT (see `cot`).

use super::Engine;
use super::cot::{BitReader, BitWriter, CotRecv, CotSend, tweak_base};
use crate::{Result, Role};
use rand::Rng;
use zeroize::Zeroize;

/// XOR shares of AND triples with a common second operand, packed: `c[j] = a[j] ∧ b` for
/// `j < arity` (each of `a[j]`, `c[j]` as long as `b`); wiped on drop.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub(crate) struct Triples {
    a: Vec<Vec<u64>>,
    b: Vec<u64>,
    c: Vec<Vec<u64>>,
    used: usize,
}

/// Most first operands per common operand in one set of triples: the bits of one OT hash.
pub(super) const MAX_ARITY: usize = 128;

/// Words of AND triples (64 each) made at once by [`Engine::and_triples`]: 2^20 triples.
const TRIPLE_WORDS_PER_PIECE: usize = 1 << 14;

/// Bits of a share per leaf of the carry tree ([`Engine::carry_out`]): one 1-of-16 OT per leaf.
const LEAF_BITS: usize = 4;

/// Most leaf OTs per flight pair of [`Engine::carry_out`] (2^18: 8 MB of sender keys).
const LEAF_OTS_PER_PIECE: usize = 1 << 18;

/// Pads hashed per block of elements in [`Engine::carry_out`]'s leaves (1 MB of hash inputs).
const LEAF_HASH_BLOCKS: usize = 1 << 16;

/// Word-wise XOR of two packed bit vectors (XOR shares add locally).
pub(super) fn xor(x: &[u64], y: &[u64]) -> Vec<u64> {
    x.iter().zip(y).map(|(a, b)| a ^ b).collect()
}

impl Engine<'_> {
    /// `64·words` AND triples of each of `arity` (1 to [`MAX_ARITY`]) first operands against
    /// one common second operand, from random OTs in both directions (at most one flight per
    /// [`TRIPLE_WORDS_PER_PIECE`] words, none with silent correlations): the common operand `b`
    /// is the OT choices, the first operands are bits `0..arity` of the OT hashes (independent
    /// uniform bits), so `arity` triples with one common operand cost what one does. Made piece
    /// by piece, so the working memory (about 100 bytes per triple while a piece is made) stays
    /// bounded whatever the number of triples.
    pub(crate) fn and_triples(&mut self, words: usize, arity: usize) -> Result<Triples> {
        assert!((1..=MAX_ARITY).contains(&arity), "and_triples: arity {arity}");
        let mut all = Triples {
            a: vec![Vec::with_capacity(words); arity],
            b: Vec::with_capacity(words),
            c: vec![Vec::with_capacity(words); arity],
            used: 0,
        };
        for start in (0..words.max(1)).step_by(TRIPLE_WORDS_PER_PIECE) {
            let piece = self.and_triple_piece((words - start).min(TRIPLE_WORDS_PER_PIECE), arity)?;
            for j in 0..arity {
                all.a[j].extend_from_slice(&piece.a[j]);
                all.c[j].extend_from_slice(&piece.c[j]);
            }
            all.b.extend_from_slice(&piece.b);
        }
        Ok(all)
    }

    fn and_triple_piece(&mut self, words: usize, arity: usize) -> Result<Triples> {
        let m = 64 * words;
        let (sent, received) = self.ot_keys("mpc.and.u", Some(m), Some((m, None)), true)?;
        let (sent, received) = (sent.expect("sender part"), received.expect("receiver part"));
        let (mut h0, mut h1, mut hv) = (vec![0u128; m], vec![0u128; m], vec![0u128; m]);
        let send_tweak = tweak_base(self.role, sent.start);
        let recv_tweak = tweak_base(self.role.peer(), received.start);
        self.hash.expand(&sent.k0, send_tweak, 1, &mut h0);
        self.hash.expand(&sent.k1, send_tweak, 1, &mut h1);
        self.hash.expand(&received.keys, recv_tweak, 1, &mut hv);
        // Bit j of every hash, packed.
        let pack = |h: &[u128], j: usize| -> Vec<u64> {
            let mut out = vec![0u64; words];
            for (i, v) in h.iter().enumerate() {
                out[i / 64] |= (((v >> j) & 1) as u64) << (i % 64);
            }
            out
        };
        let b: Vec<u64> = (0..words).map(|w| (received.choices[w / 2] >> (64 * (w % 2))) as u64).collect();
        let (mut a, mut c) = (Vec::with_capacity(arity), Vec::with_capacity(arity));
        for j in 0..arity {
            let (mut u, mut h1p, mut v) = (pack(&h0, j), pack(&h1, j), pack(&hv, j));
            let aj = xor(&u, &h1p);
            c.push((0..words).map(|w| (aj[w] & b[w]) ^ u[w] ^ v[w]).collect());
            a.push(aj);
            for buf in [&mut u, &mut h1p, &mut v] {
                buf.zeroize();
            }
        }
        // Wipe the hashes the triples were made from (the keys wipe themselves on drop).
        for buf in [&mut h0, &mut h1, &mut hv] {
            buf.zeroize();
        }
        Ok(Triples { a, b, c, used: 0 })
    }

    /// XOR shares of `x ∧ y` (packed, equal lengths) using the next triples (one flight).
    pub(super) fn and(&mut self, x: &[u64], y: &[u64], tr: &mut Triples) -> Result<Vec<u64>> {
        Ok(self.and_common(&[x], y, tr)?.swap_remove(0))
    }

    /// XOR shares of `x_j ∧ y` for each `x_j` in `xs` (packed, all as long as `y`) using the
    /// next triples, in one flight: the operands in groups of the triples' arity, each group
    /// on the next `y.len()` words of triples, opening `x_j ⊕ a_j` and, per group, `y ⊕ b`.
    pub(super) fn and_common(&mut self, xs: &[&[u64]], y: &[u64], tr: &mut Triples) -> Result<Vec<Vec<u64>>> {
        let (n, k, arity) = (y.len(), xs.len(), tr.a.len());
        assert!(xs.iter().all(|x| x.len() == n), "and_common: operand lengths");
        let groups = k.div_ceil(arity).max(1);
        // Operand j: slot j % arity of group j / arity; group g on words `range(g)`.
        let first = tr.used;
        tr.used += groups * n;
        let range = |g: usize| first + g * n..first + (g + 1) * n;
        let mut open: Vec<u64> = Vec::with_capacity((k + groups) * n);
        for (j, x) in xs.iter().enumerate() {
            open.extend(xor(x, &tr.a[j % arity][range(j / arity)]));
        }
        for g in 0..groups {
            open.extend(xor(y, &tr.b[range(g)]));
        }
        self.ch.send_u64s("mpc.and.open", &open)?;
        let peer = self.ch.recv_u64s("mpc.and.open", (k + groups) * n)?;
        let gov = self.role == Role::Gov;
        Ok((0..k)
            .map(|j| {
                let g = j / arity;
                let (a, b, c) = (&tr.a[j % arity][range(g)], &tr.b[range(g)], &tr.c[j % arity][range(g)]);
                let e_at = (k + g) * n;
                (0..n)
                    .map(|i| {
                        let (d, e) = (open[j * n + i] ^ peer[j * n + i], open[e_at + i] ^ peer[e_at + i]);
                        c[i] ^ (d & b[i]) ^ (e & a[i]) ^ if gov { d & e } else { 0 }
                    })
                    .collect()
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
    /// shares, so a narrower width costs less (`width − 1` leaf OTs, `⌈(width − 1)/4⌉ − 1`
    /// triples).
    pub fn msb_width(&mut self, x: &[u64], width: u32) -> Result<Vec<u64>> {
        self.msb_offsets(x, &[0], width)
    }

    /// [`Engine::msb_width`] of `x + t_k` for each public offset `t_k` (element `k·n + i`):
    /// `[x_i + t_k < 0]` whenever `|x_i + t_k| < 2^(width−1)`. The leaf OTs on the bank's bits
    /// are shared by all offsets (only the gov's tables and the trees are per offset).
    pub fn msb_offsets(&mut self, x: &[u64], offsets: &[u64], width: u32) -> Result<Vec<u64>> {
        assert!((2..=64).contains(&width), "msb_width: width {width} not in 2..=64");
        let top_bit = width - 1;
        let gov = self.role == Role::Gov;
        let mut out = self.carry_out(x, offsets, top_bit as usize)?;
        for (k, t) in offsets.iter().enumerate() {
            for (i, v) in x.iter().enumerate() {
                let e = k * x.len() + i;
                let own = if gov { v.wrapping_add(*t) } else { *v };
                out[e / 64] ^= ((own >> top_bit) & 1) << (e % 64);
            }
        }
        Ok(out)
    }

    /// XOR shares (packed) of the carry out of the low `low` bits of `x_gov + t_k + x_bank` for
    /// each public offset `t_k` (added to the gov's share), i.e. `[((x_gov + t_k) mod 2^low) +
    /// (x_bank mod 2^low) ≥ 2^low]`, element `k·n + i` (1 ≤ `low` ≤ 63).
    ///
    /// Leaves of [`LEAF_BITS`] bits (the module docs' 1-of-16 OT: one set of OTs on the bank's
    /// bits serves every offset, the gov sending one table per offset), then the
    /// generate/propagate tree over the leaves, one layer per flight, each combination
    /// `G = G_hi ⊕ P_hi∧G_lo`, `P = P_hi∧P_lo` two ANDs with the common operand `P_hi` (one
    /// two-AND triple).
    pub(crate) fn carry_out(&mut self, x: &[u64], offsets: &[u64], low: usize) -> Result<Vec<u64>> {
        assert!((1..64).contains(&low), "carry_out: {low} low bits");
        let (n, k) = (x.len(), offsets.len());
        let (all, nw) = (n * k, (n * k).div_ceil(64));
        if all == 0 {
            return Ok(Vec::new());
        }
        let per_piece = (LEAF_OTS_PER_PIECE / low).max(1);
        let mut leaves: Vec<(Vec<u64>, Vec<u64>)> = vec![(vec![0; nw], vec![0; nw]); low.div_ceil(LEAF_BITS)];
        for first in (0..n).step_by(per_piece) {
            let piece = &x[first..n.min(first + per_piece)];
            for (e, per_leaf) in self.carry_leaves(piece, offsets, low)?.into_iter().enumerate() {
                for (l, leaf) in leaves.iter_mut().enumerate() {
                    for (j, &(g, p)) in per_leaf[l * k..(l + 1) * k].iter().enumerate() {
                        let i = j * n + first + e;
                        leaf.0[i / 64] |= (g as u64) << (i % 64);
                        leaf.1[i / 64] |= (p as u64) << (i % 64);
                    }
                }
            }
        }
        let mut tr = self.and_triples(nw * (leaves.len() - 1), 2)?;
        while leaves.len() > 1 {
            let pairs = leaves.len() / 2;
            let (mut g_lo, mut p_lo, mut p_hi) = (Vec::new(), Vec::new(), Vec::new());
            for pair in leaves.chunks_exact(2) {
                g_lo.extend_from_slice(&pair[0].0);
                p_lo.extend_from_slice(&pair[0].1);
                p_hi.extend_from_slice(&pair[1].1);
            }
            // The last combination's P is never used.
            let z = if leaves.len() == 2 {
                self.and_common(&[&g_lo], &p_hi, &mut tr)?
            } else {
                self.and_common(&[&g_lo, &p_lo], &p_hi, &mut tr)?
            };
            let mut next: Vec<(Vec<u64>, Vec<u64>)> = (0..pairs)
                .map(|i| {
                    let w = i * nw..(i + 1) * nw;
                    let g = xor(&leaves[2 * i + 1].0, &z[0][w.clone()]);
                    (g, z.get(1).map_or_else(Vec::new, |p| p[w].to_vec()))
                })
                .collect();
            if leaves.len() % 2 == 1 {
                next.push(leaves.pop().expect("odd leaf"));
            }
            leaves = next;
        }
        let mut out = leaves.swap_remove(0).0;
        if !all.is_multiple_of(64) {
            out[nw - 1] &= (1u64 << (all % 64)) - 1;
        }
        Ok(out)
    }

    /// This party's XOR shares `(G, P)` of every leaf and offset of every element (per element
    /// `leaf·K + k` for `K` offsets): for leaf `l` over bits `4l..min(4l + 4, low)` with the
    /// bits `α` of `x_gov + t_k` and `β` of `x_bank`, `G = [α + β ≥ 2^m]` and
    /// `P = [α + β = 2^m − 1]`. The bank is receiver of one OT per bit with its share bits as
    /// choices (the source's message, if any, first); both hash each OT key once,
    /// `K_i^b = H(k_i^b, tweak(OT i, 0))` (so the two keys of an OT are unrelated), and the gov
    /// sends each leaf's table per offset, the 2^m entries `(G(α, v) ⊕ r_G, P(α, v) ⊕ r_P)`,
    /// entry `v` masked by `H(⊕_i K_i^{v_i}, tweak(the leaf's first OT, 1 + offset·2^4 + v))`,
    /// and keeps `(r_G, r_P)`.
    fn carry_leaves(&mut self, x: &[u64], offsets: &[u64], low: usize) -> Result<Vec<Vec<(bool, bool)>>> {
        let (leaves, k) = (low.div_ceil(LEAF_BITS), offsets.len());
        let ots = x.len() * low;
        let leaf = |l: usize| (LEAF_BITS * l, LEAF_BITS.min(low - LEAF_BITS * l));
        // The bits of `v` in leaf `l`, as a table index.
        let leaf_value = |v: u64, l: usize| {
            let (p0, m) = leaf(l);
            ((v >> p0) as usize) & ((1 << m) - 1)
        };
        // Bits per table entry of leaf `l`: (G, P), or G alone for the lowest leaf (its P is
        // never used: the lowest node of the tree is never a high half); 2^m entries per table.
        let entry_bits = |l: usize| if l == 0 { 1u32 } else { 2 };
        let table_bits = |l: usize| entry_bits(l) << leaf(l).1;
        let tables_len = (x.len() * k * (0..leaves).map(|l| table_bits(l) as usize).sum::<usize>()).div_ceil(64);
        // Tweak of entry `v`'s pad for offset `j` of the leaf whose first OT is `o` (the key
        // hashes have 0 below bit 32).
        let pad_tweak =
            |base: u128, o: usize, j: usize, v: usize| base + ((o as u128) << 32) + (1 + (j << LEAF_BITS) + v) as u128;
        if self.role == Role::Bank {
            let mut choices = vec![0u128; ots.div_ceil(128)];
            for (e, v) in x.iter().enumerate() {
                for p in 0..low {
                    let o = e * low + p;
                    choices[o / 128] |= (((v >> p) & 1) as u128) << (o % 128);
                }
            }
            let (_, received) = self.ot_keys("mpc.cmp.leaf", None, Some((ots, Some(&choices))), false)?;
            choices.zeroize();
            let received = received.expect("receiver part");
            let tables = self.ch.recv_u64s("mpc.cmp.table", tables_len)?;
            let mut tables = BitReader::new(&tables);
            let base = tweak_base(Role::Gov, received.start);
            let mut hashed = vec![0u128; ots];
            self.hash.expand(&received.keys, base, 1, &mut hashed);
            let mut out = Vec::with_capacity(x.len());
            let (mut sums, mut tweaks, mut pads) = (Vec::new(), Vec::new(), Vec::new());
            // Per block of elements: the pad of the bank's entry for every leaf and offset.
            let block_elements = (LEAF_HASH_BLOCKS / (leaves * k)).max(1);
            for first in (0..x.len()).step_by(block_elements) {
                let block = &x[first..x.len().min(first + block_elements)];
                sums.clear();
                tweaks.clear();
                for (b, &v) in block.iter().enumerate() {
                    for l in 0..leaves {
                        let (p0, m) = leaf(l);
                        let beta = leaf_value(v, l);
                        let o = (first + b) * low + p0;
                        let sum = hashed[o..o + m].iter().fold(0, |a, h| a ^ h);
                        for j in 0..k {
                            sums.push(sum);
                            tweaks.push(pad_tweak(base, o, j, beta));
                        }
                    }
                }
                pads.resize(sums.len(), 0);
                self.hash.hash_each(&sums, &tweaks, &mut pads);
                let mut next = pads.iter();
                for &v in block {
                    let mut per_leaf = Vec::with_capacity(leaves * k);
                    for l in 0..leaves {
                        let beta = leaf_value(v, l);
                        for _ in 0..k {
                            let pad = *next.next().expect("one pad per leaf and offset") as u32;
                            let table = tables.pull(table_bits(l)) as u32;
                            let entry = ((table >> (entry_bits(l) * beta as u32)) ^ pad) & ((1 << entry_bits(l)) - 1);
                            per_leaf.push((entry & 1 == 1, entry & 2 == 2));
                        }
                    }
                    out.push(per_leaf);
                }
            }
            for buf in [&mut hashed, &mut sums, &mut pads] {
                buf.zeroize();
            }
            return Ok(out);
        }
        let (sent, _) = self.ot_keys("mpc.cmp.leaf", Some(ots), None, false)?;
        let sent = sent.expect("sender part");
        let base = tweak_base(self.role, sent.start);
        // The hashed keys `K^0`, `K^1` of every OT.
        let mut hashed = [vec![0u128; ots], vec![0u128; ots]];
        self.hash.expand(&sent.k0, base, 1, &mut hashed[0]);
        self.hash.expand(&sent.k1, base, 1, &mut hashed[1]);
        // The XOR of the hashed keys of OTs `o..o + m` chosen by the bits of `v`.
        let key_sum = |o: usize, m: usize, v: usize| (0..m).fold(0, |a, i| a ^ hashed[(v >> i) & 1][o + i]);
        let mut tables = BitWriter::new(tables_len);
        let mut out = Vec::with_capacity(x.len());
        let (mut sums, mut tweaks, mut pads) = (Vec::new(), Vec::new(), Vec::new());
        // Per block of elements: every entry's pad of every leaf and offset.
        let block_elements = (LEAF_HASH_BLOCKS / ((leaves * k) << LEAF_BITS)).max(1);
        for first in (0..x.len()).step_by(block_elements) {
            let block = &x[first..x.len().min(first + block_elements)];
            sums.clear();
            tweaks.clear();
            for b in 0..block.len() {
                for l in 0..leaves {
                    let (p0, m) = leaf(l);
                    let o = (first + b) * low + p0;
                    let mut leaf_sums = [0u128; 1 << LEAF_BITS];
                    for (v, sum) in leaf_sums[..1 << m].iter_mut().enumerate() {
                        *sum = key_sum(o, m, v);
                    }
                    for j in 0..k {
                        sums.extend_from_slice(&leaf_sums[..1 << m]);
                        tweaks.extend((0..1 << m).map(|v| pad_tweak(base, o, j, v)));
                    }
                    leaf_sums.zeroize();
                }
            }
            pads.resize(sums.len(), 0);
            self.hash.hash_each(&sums, &tweaks, &mut pads);
            let mut next = pads.iter();
            for &v in block {
                let mut per_leaf = Vec::with_capacity(leaves * k);
                for l in 0..leaves {
                    let m = leaf(l).1;
                    let mask = (1 << entry_bits(l)) - 1;
                    for &t in offsets {
                        let alpha = leaf_value(v.wrapping_add(t), l);
                        let r = self.rng.0.next_u32() & mask;
                        let mut table = 0u32;
                        for beta in 0..1usize << m {
                            let sum = alpha + beta;
                            let entry = (sum >> m) as u32 | (u32::from(sum == (1 << m) - 1) << 1);
                            let pad = *next.next().expect("one pad per entry") as u32;
                            table |= ((entry ^ r ^ pad) & mask) << (entry_bits(l) * beta as u32);
                        }
                        tables.push(table as u64, table_bits(l));
                        per_leaf.push((r & 1 == 1, r & 2 == 2));
                    }
                }
                out.push(per_leaf);
            }
        }
        hashed.zeroize();
        sums.zeroize();
        pads.zeroize();
        self.ch.send_u64s("mpc.cmp.table", &tables.finish())?;
        Ok(out)
    }

    /// Negates the XOR-shared bits `from..from + count` of a packed vector (the gov flips its
    /// share bits; no message).
    pub(super) fn not_bits(&self, bits: &mut [u64], from: usize, count: usize) {
        if self.role == Role::Gov {
            for e in from..from + count {
                bits[e / 64] ^= 1 << (e % 64);
            }
        }
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
