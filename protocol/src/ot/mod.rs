//! Oblivious transfer: base OT on Ristretto255 ([`base`]) and IKNP OT extension ([`iknp`]),
//! plus the fixed-key AES primitives they share (correlation-robust hash, CTR PRG, bit transpose).
//!
//! Semi-honest security, 128-bit computational (κ = 128 base OTs), in the random-oracle model
//! for the base OT and with fixed-key AES modelled as a random permutation for the hash.

pub mod base;
pub mod iknp;

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use zeroize::Zeroize;

/// Blocks per `encrypt_blocks` call (keeps the staging buffer on the stack-sized side).
const AES_BATCH: usize = 512;

/// Encrypts every u128 of `data` in place with `cipher` (batched for AES-NI/VAES pipelining).
pub fn aes_encrypt_all(cipher: &Aes128, data: &mut [u128]) {
    let mut buf = [Array::from([0u8; 16]); AES_BATCH];
    for chunk in data.chunks_mut(AES_BATCH) {
        let blocks = &mut buf[..chunk.len()];
        for (b, x) in blocks.iter_mut().zip(chunk.iter()) {
            *b = Array::from(x.to_le_bytes());
        }
        cipher.encrypt_blocks(blocks);
        for (b, x) in blocks.iter().zip(chunk.iter_mut()) {
            let bytes: [u8; 16] = (*b).into();
            *x = u128::from_le_bytes(bytes);
        }
    }
}

/// Tweakable correlation-robust hash from fixed-key AES π (Guo–Katz–Wang–Yu TCCR):
/// `H(x, i) = π(π(x) ⊕ i) ⊕ π(x)`. The key is a public constant: security rests on π being an
/// ideal permutation, not on the key being secret. Tweaks must never repeat for related inputs:
/// callers build them from (OT instance, OT index, block index).
pub struct CrHash {
    pi: Aes128,
}

impl Default for CrHash {
    fn default() -> Self {
        CrHash { pi: Aes128::new(&Array::from(*b"tandem-tccr-key1")) }
    }
}

impl CrHash {
    /// For each input `xs[o]`, writes `blocks` hash blocks `H(xs[o], tweak(o, b))` to `out`
    /// (`out.len() == xs.len() * blocks`), with `tweak(o, b) = base + (o << 32) + b`.
    pub fn expand(&self, xs: &[u128], base_tweak: u128, blocks: usize, out: &mut [u128]) {
        assert!(blocks < (1 << 32) && out.len() == xs.len() * blocks);
        let mut px = xs.to_vec();
        aes_encrypt_all(&self.pi, &mut px);
        for (o, p) in px.iter().enumerate() {
            for b in 0..blocks {
                out[o * blocks + b] = p ^ (base_tweak + ((o as u128) << 32) + b as u128);
            }
        }
        aes_encrypt_all(&self.pi, out);
        for (o, p) in px.iter().enumerate() {
            for v in &mut out[o * blocks..(o + 1) * blocks] {
                *v ^= p;
            }
        }
    }
}

/// AES-128 in counter mode: a stateful PRG whose stream continues across calls, so every call
/// yields fresh output (IKNP expands each base-OT seed this way). The seed lives only in the AES
/// key schedule, which `aes` (feature `zeroize`) wipes when the PRG is dropped.
pub struct CtrPrg {
    aes: Aes128,
    counter: u128,
}

impl CtrPrg {
    pub fn new(mut seed: [u8; 16]) -> CtrPrg {
        let mut key = Array::from(seed);
        let aes = Aes128::new(&key);
        key[..].zeroize();
        seed.zeroize();
        CtrPrg { aes, counter: 0 }
    }
    pub fn fill(&mut self, out: &mut [u128]) {
        for v in out.iter_mut() {
            *v = self.counter;
            self.counter += 1;
        }
        aes_encrypt_all(&self.aes, out);
    }
}

/// In-place transpose of a 128×128 bit matrix: afterwards bit `j` of `a[i]` is the former bit
/// `i` of `a[j]` (bit 0 = least significant).
pub fn transpose128(a: &mut [u128; 128]) {
    let mut w = 64usize;
    let mut mask: u128 = (1u128 << 64) - 1;
    while w > 0 {
        let mut k = 0;
        while k < 128 {
            for r in k..k + w {
                let t = ((a[r] >> w) ^ a[r + w]) & mask;
                a[r + w] ^= t;
                a[r] ^= t << w;
            }
            k += 2 * w;
        }
        w /= 2;
        mask ^= mask << w;
    }
}

/// Turns 128 columns of `m` bits (`cols[j][blk]` bit `i` = column `j`, row `128·blk + i`) into
/// `m` rows of 128 bits (bit `j` of row `r` = column `j`, row `r`).
pub fn columns_to_rows(cols: &[Vec<u128>]) -> Vec<u128> {
    assert_eq!(cols.len(), 128);
    let nblk = cols[0].len();
    let mut rows = vec![0u128; nblk * 128];
    let mut a = [0u128; 128];
    for blk in 0..nblk {
        for (j, col) in cols.iter().enumerate() {
            a[j] = col[blk];
        }
        transpose128(&mut a);
        rows[blk * 128..(blk + 1) * 128].copy_from_slice(&a);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn transpose_matches_naive() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut a = [0u128; 128];
        for v in a.iter_mut() {
            *v = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
        }
        let orig = a;
        transpose128(&mut a);
        for i in 0..128 {
            for j in 0..128 {
                assert_eq!((a[i] >> j) & 1, (orig[j] >> i) & 1, "bit ({i},{j})");
            }
        }
    }

    #[test]
    fn hash_depends_on_input_and_tweak() {
        let h = CrHash::default();
        let mut out = vec![0u128; 6];
        h.expand(&[1, 2], 0, 3, &mut out);
        let mut seen = out.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 6);
        let mut again = vec![0u128; 3];
        h.expand(&[2], 1 << 32, 3, &mut again);
        assert_eq!(&again[..], &out[3..], "same (input, tweak) gives the same output");
    }
}
