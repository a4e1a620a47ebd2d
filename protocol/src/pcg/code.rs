//! The compressing linear map of the generator: the transpose ("dual") of a systematic
//! Expand-Convolute code (Raghuraman–Rindal–Tanguy, "Expand-Convolute Codes for Pseudorandom
//! Correlation Generators from LPN", CRYPTO 2023, eprint 2023/882), computed in linear time in
//! the form libOTe's `ExConvCode::dualEncode` uses (systematic, convolution run twice).
//!
//! It maps `N ≥ 2·n` inputs `x = (p ‖ s)` (`p` the first `n`, `s` the other `N − n`) to `n`
//! outputs `p + E·C·s`, linear over GF(2) (so the same map applies to bits, to 128-bit strings
//! and to GF(2^128) elements, and it commutes with multiplication by a field scalar):
//! 1. *Convolute* `s` in place, twice (two independent mask streams): front to back, each
//!    position `i`, once final, is XORed into position `i + 1` (the accumulator) and into
//!    positions `i + 2 + j` for every set bit `j` of a pseudorandom 24-bit mask `m_i` (the
//!    convolution band). Targets past the end wrap around to the front (modulo `N − n`).
//! 2. *Expand*: output `k` is `p_k` plus [`WEIGHT`] = 7 convolved positions of `s`, one drawn
//!    uniformly from each of 7 equal regions (a regular sparse matrix; region `r` draws its
//!    indices from its own PRG stream).
//!
//! The masks and indices come from AES-CTR under a public fixed key, counter from zero: both
//! parties derive the identical code for a given `(n, N)`; the code is public.
//!
//! Speed: the convolution runs four positions at a time: their final values' 16 subset sums, then
//! one table read per later target instead of up to four masked XORs (a window of 29 positions,
//! cache-resident); the expansion reads each region in its own pass (one region's share of memory
//! at a time) and writes the outputs in place over `p` (no output buffer).

use aes::Aes128;
use aes::cipher::{Array, KeyInit};
use rayon::prelude::*;

use crate::ot::{CtrPrg, aes_encrypt_all};

/// Expander weight: positions summed into each output.
pub const WEIGHT: usize = 7;
/// Width of the random convolution band.
pub const BAND: u32 = 24;
/// Positions one convolution step touches after its own: the accumulator and the band.
const REACH: usize = 1 + BAND as usize;
/// Outputs per PRG batch.
const CHUNK: usize = 4096;
/// Convolution passes, each under its own mask stream.
const PASSES: [u8; 2] = [b'm', b'n'];

/// The dual systematic Expand-Convolute map from `big_n` inputs to `n` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    pub n: usize,
    pub big_n: usize,
}

fn key(domain: u8) -> [u8; 16] {
    let mut key = *b"tandem-pcg-code0";
    key[15] = domain;
    key
}

/// The 24-bit masks of one convolution pass, five per AES-CTR block, in order, a batch at a time.
struct Masks {
    prg: CtrPrg,
    words: Vec<u128>,
    masks: Vec<u32>,
}

impl Masks {
    fn new(domain: u8) -> Masks {
        Masks { prg: CtrPrg::new(key(domain)), words: vec![0; CHUNK / 5], masks: Vec::with_capacity(CHUNK) }
    }
    /// The next `5 · CHUNK / 5` masks.
    fn batch(&mut self) -> &[u32] {
        self.prg.fill(&mut self.words);
        self.masks.clear();
        // Constant shifts (a variable 128-bit shift costs a five-instruction sequence).
        let mask = |w: u128, part: u32| ((w >> (BAND * part)) as u32) & ((1 << BAND) - 1);
        self.masks
            .extend(self.words.iter().flat_map(|&w| [mask(w, 0), mask(w, 1), mask(w, 2), mask(w, 3), mask(w, 4)]));
        &self.masks
    }
}

/// The region-`r` draws of outputs `c·CHUNK ..`: 32-bit uniform values, four per AES-CTR block
/// (block `c·CHUNK/4 + i` of the region's stream, so chunks can be computed in any order).
fn draws(aes: &Aes128, c: usize) -> impl Iterator<Item = u32> {
    let mut words = [0u128; CHUNK / 4];
    for (i, v) in words.iter_mut().enumerate() {
        *v = (c * CHUNK / 4 + i) as u128;
    }
    aes_encrypt_all(aes, &mut words);
    words.into_iter().flat_map(|w| [w as u32, (w >> 32) as u32, (w >> 64) as u32, (w >> 96) as u32])
}

/// Index into a region of `len` positions from a uniform 32-bit draw.
fn scale(r: u32, len: usize) -> usize {
    ((r as u64 * len as u64) >> 32) as usize
}

impl Code {
    pub fn new(n: usize, big_n: usize) -> Code {
        assert!(
            n > 0 && big_n >= 2 * n && big_n - n >= WEIGHT.max(REACH + 1) && big_n < 1 << 32,
            "code sizes n = {n}, N = {big_n}"
        );
        Code { n, big_n }
    }

    fn region(&self) -> usize {
        (self.big_n - self.n) / WEIGHT
    }

    /// The whole map on 128-bit strings, in place: afterwards `x[..n]` holds the outputs
    /// (`x.len() == big_n`; the rest of `x` is left convolved).
    pub fn dual_encode(&self, x: &mut [u128]) {
        self.convolute(x);
        self.expand(x);
    }

    /// Step 1 on `x = (p ‖ s)`: convolutes `s` in place.
    pub fn convolute(&self, x: &mut [u128]) {
        assert_eq!(x.len(), self.big_n);
        for domain in PASSES {
            convolute(&mut x[self.n..], domain);
        }
    }

    /// Step 2 on `x = (p ‖ s)`, `s` convolved: adds the expander's sums into `p`.
    pub fn expand(&self, x: &mut [u128]) {
        assert_eq!(x.len(), self.big_n);
        let (p, s) = x.split_at_mut(self.n);
        let region = self.region();
        for k in 0..WEIGHT {
            let part = &s[k * region..(k + 1) * region];
            let aes = Aes128::new(&Array::from(key(b'0' + k as u8)));
            p.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
                for (o, r) in chunk.iter_mut().zip(draws(&aes, c)) {
                    *o ^= part[scale(r, region)];
                }
            });
        }
    }
}

/// One convolution pass over `s` in place (see the module docs), masks from stream `domain`.
/// Away from the end, four positions at a time ([`block4`]); single steps where a batch of
/// masks does not split into fours, and [`wrap_step`] where targets wrap around.
fn convolute(s: &mut [u128], domain: u8) {
    let len = s.len();
    let mut stream = Masks::new(domain);
    let mut i = 0;
    while i < len {
        let masks = stream.batch();
        // The positions whose whole reach lies inside `s`: no wrap-around test per position.
        let inner = masks.len().min((len - REACH).saturating_sub(i));
        let (fours, rest) = masks[..inner].as_chunks::<4>();
        for (b, m) in fours.iter().enumerate() {
            block4(s, i + 4 * b, m);
        }
        for (k, &m) in rest.iter().enumerate() {
            inner_step(s, i + 4 * fours.len() + k, m);
        }
        i += inner;
        for &m in &masks[inner..] {
            if i >= len {
                return;
            }
            wrap_step(s, i, m);
            i += 1;
        }
    }
}

/// `v` if `bit` is 1, else 0 (branch-free).
fn select(v: u128, bit: u32) -> u128 {
    v & 0u128.wrapping_sub((bit & 1) as u128)
}

/// One step at position `i` whose reach lies inside `s`.
fn inner_step(s: &mut [u128], i: usize, m: u32) {
    let v = s[i];
    let window = &mut s[i + 1..=i + REACH];
    window[0] ^= v;
    for (j, slot) in window[1..].iter_mut().enumerate() {
        *slot ^= select(v, m >> j);
    }
}

/// Bit `b` of a byte moved to bit `4b` (for [`spread`]).
const SPREAD: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut x = 0;
    while x < 256 {
        let mut b = 0;
        while b < 8 {
            table[x] |= ((x as u32 >> b) & 1) << (4 * b);
            b += 1;
        }
        x += 1;
    }
    table
};

/// Bit `b` of `p` (< 2^32) moved to bit `4b`.
fn spread(p: u32) -> u128 {
    (0..4).map(|byte| (SPREAD[((p >> (8 * byte)) & 0xff) as usize] as u128) << (32 * byte)).fold(0, |a, b| a | b)
}

/// Four steps at positions `i..i + 4` (their reach inside `s`), equal to four [`inner_step`]s
/// ("four Russians"): position `i + k` (final value `v_k`) adds `v_k` to `i + k + 1 + b` for
/// the set bits `b` of its pattern `p_k = 1 | m_k << 1`. First the block's own targets
/// (`i + 1 ..= i + 3`), so that `v_0..v_3` are final; then the 16 sums of subsets of
/// `v_0..v_3`, and each later target `i + 1 + d` (`d = 3..=27`) takes one: the subset whose
/// bit `k` is bit `d − k` of `p_k`. Those bits are read from one word holding `p_k`'s bit `b`
/// at bit `4(b + k) + k`.
fn block4(s: &mut [u128], i: usize, m: &[u32; 4]) {
    let p = m.map(|m| 1 | (m << 1));
    let v0 = s[i];
    let v1 = s[i + 1] ^ v0;
    let v2 = s[i + 2] ^ select(v0, p[0] >> 1) ^ v1;
    let v3 = s[i + 3] ^ select(v0, p[0] >> 2) ^ select(v1, p[1] >> 1) ^ v2;
    (s[i + 1], s[i + 2], s[i + 3]) = (v1, v2, v3);
    let (v01, v23) = (v0 ^ v1, v2 ^ v3);
    let sums = [
        0,
        v0,
        v1,
        v01,
        v2,
        v0 ^ v2,
        v1 ^ v2,
        v01 ^ v2,
        v3,
        v0 ^ v3,
        v1 ^ v3,
        v01 ^ v3,
        v23,
        v0 ^ v23,
        v1 ^ v23,
        v01 ^ v23,
    ];
    let subsets = (0..4).map(|k| spread(p[k]) << (5 * k)).fold(0, |a, b| a | b);
    // Targets d = 3..=15 read nibbles of the low word, d = 16..=27 of the high one (64-bit
    // shifts: a variable 128-bit shift costs a branch-free five-instruction sequence).
    let (low, high) = s[i + 4..i + 4 + REACH].split_at_mut(13);
    for (d, slot) in (3..).zip(low) {
        *slot ^= sums[((subsets as u64 >> (4 * d)) & 15) as usize];
    }
    for (d, slot) in (0..).zip(high) {
        *slot ^= sums[(((subsets >> 64) as u64 >> (4 * d)) & 15) as usize];
    }
}

/// One step of [`convolute`] near the end, where targets wrap around to the front.
fn wrap_step(s: &mut [u128], i: usize, m: u32) {
    let (len, v) = (s.len(), s[i]);
    s[(i + 1) % len] ^= v;
    for j in 0..BAND as usize {
        if (m >> j) & 1 == 1 {
            s[(i + 2 + j) % len] ^= v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The map straight from its definition in the module docs, one position and one index at
    /// a time (sequential PRG streams, `%` on every target): the reference for the fast code.
    fn reference(code: &Code, x: &[u128]) -> Vec<u128> {
        let (n, len) = (code.n, code.big_n - code.n);
        let mut s = x[n..].to_vec();
        for domain in PASSES {
            let mut words = vec![0u128; len.div_ceil(5)];
            CtrPrg::new(key(domain)).fill(&mut words);
            for i in 0..len {
                let m = (words[i / 5] >> (24 * (i % 5))) as u32 & 0xff_ffff;
                let v = s[i];
                s[(i + 1) % len] ^= v;
                for j in 0..24 {
                    if (m >> j) & 1 == 1 {
                        s[(i + 2 + j) % len] ^= v;
                    }
                }
            }
        }
        let region = len / 7;
        let mut out = x[..n].to_vec();
        for r in 0..7 {
            let mut words = vec![0u128; n.div_ceil(4)];
            CtrPrg::new(key(b'0' + r as u8)).fill(&mut words);
            for (k, o) in out.iter_mut().enumerate() {
                let draw = (words[k / 4] >> (32 * (k % 4))) as u32;
                *o ^= s[r * region + ((draw as u64 * region as u64) >> 32) as usize];
            }
        }
        out
    }

    fn random_blocks(rng: &mut impl Rng, len: usize) -> Vec<u128> {
        (0..len).map(|_| ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128).collect()
    }

    fn encode(code: &Code, x: &[u128]) -> Vec<u128> {
        let mut y = x.to_vec();
        code.dual_encode(&mut y);
        y.truncate(code.n);
        y
    }

    /// The fast map equals the reference on random strings, for sizes with several chunks and
    /// a partial last one, `N` above `2n`, and the smallest suffix.
    #[test]
    fn encoding_equals_the_reference() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (n, big_n) in [(40, 80), (26, 52), (1000, 2600), (3 * CHUNK + 5, 6 * CHUNK + 77)] {
            let code = Code::new(n, big_n);
            let x = random_blocks(&mut rng, big_n);
            assert_eq!(encode(&code, &x), reference(&code, &x), "n {n}, N {big_n}");
        }
    }

    /// The matrix has no zero column and no zero row (every input reaches some output and every
    /// output depends on inputs); the convolution makes the suffix columns dense.
    #[test]
    fn every_input_reaches_the_outputs() {
        let code = Code::new(64, 128);
        let cols: Vec<Vec<u128>> = (0..128)
            .map(|j| {
                let mut e = vec![0u128; 128];
                e[j] = 1;
                encode(&code, &e)
            })
            .collect();
        assert!(cols.iter().all(|c| c.contains(&1)), "zero column");
        for k in 0..64 {
            assert!(cols.iter().any(|c| c[k] == 1), "zero row {k}");
        }
        let avg: f64 = cols[64..].iter().map(|c| c.iter().filter(|&&b| b == 1).count() as f64).sum::<f64>() / 64.0;
        assert!(avg > 10.0, "suffix columns are sparse: average weight {avg}");
    }

    /// Known answer computed once by this code: a change is a format break (the two nodes must
    /// derive the same code).
    #[test]
    fn known_answer() {
        let code = Code::new(8, 40);
        let x: Vec<u128> = (0..40u128).map(|i| 1 << i).collect();
        let hex: Vec<String> = encode(&code, &x).iter().map(|v| format!("{v:010x}")).collect();
        assert_eq!(
            hex.join(" "),
            "57714bd701 01e4077f02 853d0f1e04 6cbb2d3508 266ff6de10 5e31afbd20 701867db40 47e2996f80"
        );
    }
}
