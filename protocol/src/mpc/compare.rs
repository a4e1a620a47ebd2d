//! Comparisons with public thresholds, exact truncation, and products of XOR-shared bits with
//! one party's plaintext, for outputs that must be opened exactly (grades, integer points, bin
//! counts).
//!
//! - `greater_than`: `[x > t] = msb(t − x)` ([`Engine::msb_offsets`]: the leaf OTs on the bank's
//!   bits serve every threshold); over `width < 64` bits when the caller knows
//!   `|x − t| < 2^(width−1)`, which saves OTs.
//! - `select`: shares of `β·v` for an XOR-shared bit `β = β_o ⊕ β_p` and a plaintext `v` of the
//!   owner `o`: `β·v = β_o·v + β_p·(1 − 2β_o)·v`, the second term by one correlated OT (owner
//!   is COT sender with correlation `(1 − 2β_o)·v`, the peer receiver with choice `β_p`). One OT
//!   per bit and one direction, whatever the width of `v`; the peer learns nothing about `v`,
//!   the owner nothing about `β_p` (see `cot`).
//! - `bits_to_arith`: `select` with `v = 1` (the gov's plaintext).
//! - `floor_shift`: exact `⌊x / 2^s⌋` (no ±1 error, unlike local truncation): with shares
//!   `x_j = h_j·2^s + l_j`, `⌊x / 2^s⌋ = h_gov + h_bank + carry(l_gov + l_bank ≥ 2^s)`
//!   modulo `2^(64−s)`, the carry by [`Engine::carry_out`].
//! - `thermometer`: `[x ≥ k]` for every `k = 0..=2^m` at once, far cheaper than `2^m + 1`
//!   comparisons: two signs (`x < 0`, `x < 2^m`), the low `m` bits of `x` (XOR-shared: share
//!   bit ⊕ carry into the bit, every carry from one `carry_out` on shifted shares), then
//!   `[v ≥ k]` for the m-bit `v` level by level: with top bit `t` and the lower levels'
//!   `G[k] = [r ≥ k]`, `[v ≥ k] = t ∨ G[k]` below `2^(l−1)`, `t` at `2^(l−1)`,
//!   `t ∧ G[k − 2^(l−1)]` above; one AND `t ∧ G[k]` serves both (about `2^m` ANDs in `m`
//!   layers), and `2^m` more ANDs mask the result outside `[0, 2^m)`. Each layer's ANDs share
//!   one operand, so their triples come from one pair of random OTs per element and layer.
//!
//! Nothing is opened here; every result stays shared.

use super::Engine;
use super::boolean::{MAX_ARITY, xor};
use super::cot::{CotRecv, CotSend, low_mask};
use crate::{Error, InputError, Result, Role};

/// Bit `e` of a packed XOR-share vector.
fn bit(bits: &[u64], e: usize) -> u64 {
    (bits[e / 64] >> (e % 64)) & 1
}

/// `count` bits starting at bit `from` of a packed vector, packed from bit 0.
fn extract(bits: &[u64], from: usize, count: usize) -> Vec<u64> {
    let mut out = vec![0u64; count.div_ceil(64)];
    for e in 0..count {
        out[e / 64] |= bit(bits, from + e) << (e % 64);
    }
    out
}

impl Engine<'_> {
    /// XOR shares, packed, of `[x_i > t_k]` for shared `x` (n elements) and public ring
    /// thresholds `t` (K): element `k·n + i`. Exact when `|x_i − t_k| < 2^(width−1)` as signed
    /// values (always for `width = 64` unless the difference wraps the ring).
    pub fn greater_than(&mut self, x: &[u64], thresholds: &[u64], width: u32) -> Result<Vec<u64>> {
        let neg: Vec<u64> = x.iter().map(|v| v.wrapping_neg()).collect();
        self.msb_offsets(&neg, thresholds, width)
    }

    /// Shares of `β_e · v_e` in `Z_2^ring` for the XOR-shared packed bits `β` (`n` of them) and
    /// `owner`'s plaintext values `v` (`width` per bit, element-major; Some at the owner, None at
    /// the peer). Returns `n × width` shares, each reduced to its low `ring` bits. One correlated
    /// OT per bit, owner to peer, with `ring` bits of correction per value: pass the smallest ring
    /// that holds the sums the caller forms (e.g. counts of at most `n` rows), 64 for values that
    /// go on into fixed-point arithmetic.
    pub fn select(
        &mut self,
        owner: Role,
        values: Option<&[u64]>,
        width: usize,
        bits: &[u64],
        n: usize,
        ring: u32,
    ) -> Result<Vec<u64>> {
        if bits.len() != n.div_ceil(64) {
            return Err(Error::Input(InputError::Usage {
                op: "select",
                detail: format!("{} bit words for {n} bits", bits.len()),
            }));
        }
        if !(1..=64).contains(&ring) {
            return Err(Error::Input(InputError::Usage {
                op: "select",
                detail: format!("ring of {ring} bits, use 1..=64"),
            }));
        }
        if n == 0 || width == 0 {
            return Ok(Vec::new());
        }
        if owner != self.role {
            let choices: Vec<u64> = (0..n).map(|e| bit(bits, e)).collect();
            let recv = CotRecv { choices: &choices, groups: n, width, bits: 1 };
            return Ok(self.cot_ring(None, Some(recv), ring)?.1);
        }
        let v = values.ok_or_else(|| {
            Error::Input(InputError::Usage { op: "select", detail: "the owner must pass its values".into() })
        })?;
        if v.len() != n * width {
            return Err(Error::Input(InputError::Usage {
                op: "select",
                detail: format!("{} values for {n} bits × {width}", v.len()),
            }));
        }
        // (1 − 2β_o)·v: v or −v.
        let corr: Vec<u64> =
            v.iter().enumerate().map(|(j, &x)| if bit(bits, j / width) == 1 { x.wrapping_neg() } else { x }).collect();
        let (cross, _) = self.cot_ring(Some(CotSend { corr: &corr, groups: n, width, bits: 1 }), None, ring)?;
        Ok(v.iter()
            .zip(cross)
            .enumerate()
            .map(|(j, (&x, c))| c.wrapping_add(x.wrapping_mul(bit(bits, j / width))) & low_mask(ring))
            .collect())
    }

    /// Arithmetic shares (integers 0 or 1, not fixed point) of `n` XOR-shared packed bits.
    pub fn bits_to_arith(&mut self, bits: &[u64], n: usize) -> Result<Vec<u64>> {
        let ones = (self.role == Role::Gov).then(|| vec![1u64; n]);
        self.select(Role::Gov, ones.as_deref(), 1, bits, n, 64)
    }

    /// Integer shares of `#{k : x_i > t_k}` per element: how many of the public thresholds each
    /// element is above (a bin or grade index when the thresholds ascend). Exact under the same
    /// condition as [`Engine::greater_than`].
    pub fn count_above(&mut self, x: &[u64], thresholds: &[u64], width: u32) -> Result<Vec<u64>> {
        let n = x.len();
        let bits = self.greater_than(x, thresholds, width)?;
        let ones = self.bits_to_arith(&bits, n * thresholds.len())?;
        let mut counts = vec![0u64; n];
        for per_threshold in ones.chunks_exact(n.max(1)) {
            counts = self.add(&counts, per_threshold);
        }
        Ok(counts)
    }

    /// XOR shares, packed, of `[x_i ≥ k]` for shared integers `x` (n) and every `k = 0..=2^m`
    /// (element `k·n + i`), exact when `|x_i|` and `|x_i − 2^m|` are below `2^(width−1)`.
    pub fn thermometer(&mut self, x: &[u64], m: u32, width: u32) -> Result<Vec<u64>> {
        assert!((1..=12).contains(&m) && m < width, "thermometer: {m} bits over width {width}");
        let n = x.len();
        let (nw, top) = (n.div_ceil(64), 1usize << m);
        if n == 0 {
            return Ok(Vec::new());
        }
        // Signs of x and x − 2^m in one batch (the leaf OTs on the bank's bits serve both).
        let signs = self.msb_offsets(x, &[0, (top as u64).wrapping_neg()], width)?;
        let (mut at_least_zero, below_top) = (extract(&signs, 0, n), extract(&signs, n, n));
        let mut at_least_top = below_top.clone();
        self.not_bits(&mut at_least_zero, 0, n);
        self.not_bits(&mut at_least_top, 0, n);
        // Bits of x mod 2^m: this party's share bit ⊕ its share of the carry into the bit. The
        // carry into bit j is the carry out of the low m − 1 bits of both shares shifted up by
        // m − 1 − j: one call for every j.
        let low = m as usize - 1;
        let shifted: Vec<u64> = (1..=low).flat_map(|j| x.iter().map(move |v| v << (low - j))).collect();
        let carries = if low > 0 { self.carry_out(&shifted, &[0], low)? } else { Vec::new() };
        let mut bits: Vec<Vec<u64>> = Vec::with_capacity(m as usize);
        for j in 0..m as usize {
            let mut b = vec![0u64; nw];
            for (e, v) in x.iter().enumerate() {
                b[e / 64] |= ((v >> j) & 1) << (e % 64);
            }
            if j > 0 {
                b = xor(&b, &extract(&carries, (j - 1) * n, n));
            }
            bits.push(b);
        }
        // Every AND below has one common operand per call (the next bit, then `in_range`), so
        // the triples share theirs: a call on k operands takes ⌈k / arity⌉ words per word of
        // input, whatever k.
        let arity = (top - 1).clamp(1, MAX_ARITY);
        let group_words = |k: usize| k.div_ceil(arity).max(1) * nw;
        let words = 2 * nw + (2..m).map(|l| group_words((1 << l) - 1)).sum::<usize>() + group_words(top - 1);
        let mut tr = self.and_triples(words, arity)?;
        // g[k − 1] = [v_l ≥ k] for the low l bits, k = 1..2^l − 1.
        // The first layer also computes `in_range` (below), saving it a flight.
        let mut g: Vec<Vec<u64>> = vec![bits[0].clone()];
        let mut in_range = None;
        for t in &bits[1..] {
            let both_set = if in_range.is_none() {
                // g = [bits[0]]: one operand, so the range pair rides along as more elements.
                let x = [g[0].as_slice(), &at_least_zero].concat();
                let mut both = self.and_common(&[&x], &[t.as_slice(), &below_top].concat(), &mut tr)?.swap_remove(0);
                in_range = Some(both.split_off(nw));
                vec![both]
            } else {
                let xs: Vec<&[u64]> = g.iter().map(Vec::as_slice).collect();
                self.and_common(&xs, t, &mut tr)?
            };
            let mut next: Vec<Vec<u64>> = g.iter().zip(&both_set).map(|(gk, a)| xor(&xor(t, gk), a)).collect();
            next.push(t.clone());
            next.extend(both_set);
            g = next;
        }
        // Outside [0, 2^m) the low bits mean nothing: [x ≥ k] = [x ≥ 2^m] there (0 < k < 2^m).
        let in_range = match in_range {
            Some(r) => r,
            None => self.and(&at_least_zero, &below_top, &mut tr)?,
        };
        let xs: Vec<&[u64]> = g.iter().map(Vec::as_slice).collect();
        let masked = self.and_common(&xs, &in_range, &mut tr)?;
        let mut per_k: Vec<Vec<u64>> = vec![at_least_zero];
        per_k.extend(masked.iter().map(|v| xor(v, &at_least_top)));
        per_k.push(at_least_top);
        let mut out = vec![0u64; (per_k.len() * n).div_ceil(64)];
        for (k, v) in per_k.iter().enumerate() {
            for i in 0..n {
                let e = k * n + i;
                out[e / 64] |= bit(v, i) << (e % 64);
            }
        }
        Ok(out)
    }

    /// Shares of `⌊x / 2^s⌋` exactly (two's complement, 1 ≤ s ≤ 63), valid modulo `2^(64−s)`:
    /// the high `s` bits of the result are meaningless, so the caller reduces it (e.g. shifts
    /// it left by `s` before opening, or compares it over at most `64 − s` bits).
    pub fn floor_shift(&mut self, x: &[u64], s: u32) -> Result<Vec<u64>> {
        let carry = self.carry_out(x, &[0], s as usize)?;
        let carry = self.bits_to_arith(&carry, x.len())?;
        Ok(x.iter().zip(carry).map(|(v, c)| (v >> s).wrapping_add(c)).collect())
    }
}
