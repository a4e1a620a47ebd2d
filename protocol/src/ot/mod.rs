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

/// The AES implementation the `aes` crate runs on this CPU, for the start-up log.
///
/// The build targets baseline x86-64 (no `target-feature` flags), so one binary runs on every
/// x86-64 CPU: `aes` detects the CPU's features at run time and takes VAES with AVX-512, VAES
/// with AVX2, AES-NI, or else its portable constant-time bitsliced code. This mirrors that
/// choice (aes 0.9 `lib.rs`). All paths give identical output (checked by the known-answer
/// tests); building with `RUSTFLAGS='--cfg aes_backend="soft"'` forces the portable one.
pub fn aes_backend() -> &'static str {
    if cfg!(aes_backend = "soft") {
        return "portable (forced by --cfg aes_backend=\"soft\")";
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        if std::arch::is_x86_feature_detected!("vaes") {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return "VAES (AVX-512)";
            }
            return "VAES (AVX2)";
        }
        if std::arch::is_x86_feature_detected!("aes") {
            return "AES-NI";
        }
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("aes") {
        return "ARMv8 AES";
    }
    "portable (no AES instructions detected)"
}

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

    /// One hash per input with its own tweak: `out[o] = H(xs[o], tweaks[o])` (equal lengths).
    /// `expand` with `blocks = 1` is this with `tweaks[o] = base + (o << 32)`.
    pub fn hash_each(&self, xs: &[u128], tweaks: &[u128], out: &mut [u128]) {
        assert!(xs.len() == tweaks.len() && out.len() == xs.len());
        let mut px = xs.to_vec();
        aes_encrypt_all(&self.pi, &mut px);
        for ((o, p), t) in out.iter_mut().zip(&px).zip(tweaks) {
            *o = p ^ t;
        }
        aes_encrypt_all(&self.pi, out);
        for (o, p) in out.iter_mut().zip(&px) {
            *o ^= p;
        }
        px.zeroize();
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

    fn hex_blocks(v: &[u128]) -> Vec<String> {
        v.iter().map(|x| format!("{x:032x}")).collect()
    }

    /// One block through the `aes` crate's single-block API, independent of [`aes_encrypt_all`].
    fn encrypt_one(cipher: &Aes128, x: u128) -> u128 {
        let mut b = Array::from(x.to_le_bytes());
        cipher.encrypt_block(&mut b);
        u128::from_le_bytes(b.into())
    }

    #[test]
    fn aes_matches_fips_197_and_single_block_encryption() {
        // FIPS-197 appendix C.1: AES-128, key 00..0f, plaintext 00112233..ff.
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let cipher = Aes128::new(&Array::from(key));
        let pt: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        let mut data = vec![u128::from_le_bytes(pt); 2 * AES_BATCH + 3];
        aes_encrypt_all(&cipher, &mut data);
        let want = u128::from_le_bytes(hex::decode("69c4e0d86a7b0430d8cdb78070b4c55a").unwrap().try_into().unwrap());
        assert!(data.iter().all(|&c| c == want), "every batch position, across batch boundaries");
        let xs: Vec<u128> =
            (0..AES_BATCH as u128 + 9).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)).collect();
        let mut batched = xs.clone();
        aes_encrypt_all(&cipher, &mut batched);
        assert!(xs.iter().zip(&batched).all(|(&x, &c)| encrypt_one(&cipher, x) == c));
        // `.ci/run` runs these tests once more on the forced portable path: the log names it.
        assert_eq!(cfg!(aes_backend = "soft"), aes_backend().starts_with("portable (forced"), "{}", aes_backend());
    }

    /// Known answers computed once by this code. A change to them is a format break: OT
    /// extension stops interoperating with nodes of the previous version.
    #[test]
    fn known_answers_of_hash_and_prg() {
        let h = CrHash::default();
        let mut out = vec![0u128; 4];
        h.expand(&[0, u128::MAX], 5 << 64, 2, &mut out);
        assert_eq!(
            hex_blocks(&out),
            [
                "8fd3ec3a45502fb881b96afcdb118b81",
                "842939d317faf1412d6f5a9091972872",
                "2238755b9626727f2b649a1443f34c09",
                "4e74ff9ce2a2703f76a8a501a67a6f31"
            ]
        );
        // The documented formula H(x, i) = π(π(x) ⊕ i) ⊕ π(x), block by block.
        for (o, x) in [0, u128::MAX].into_iter().enumerate() {
            for b in 0..2 {
                let px = encrypt_one(&h.pi, x);
                let i = (5 << 64) + ((o as u128) << 32) + b as u128;
                assert_eq!(out[2 * o + b], encrypt_one(&h.pi, px ^ i) ^ px, "input {o}, block {b}");
            }
        }
        let mut prg = CtrPrg::new(*b"tandem-prg-kat-1");
        let mut first = vec![0u128; 3];
        prg.fill(&mut first);
        let mut next = vec![0u128; 2];
        prg.fill(&mut next);
        assert_eq!(
            hex_blocks(&first),
            [
                "9bf18891cd94bf9de577ef0baa310395",
                "ca8258989f255d4b76b76410410811f1",
                "e5245cc6eae8323cb94a6ef38946c42b"
            ]
        );
        assert_eq!(
            hex_blocks(&next),
            ["f1132eae81703d4ff988ce770359abd7", "4723c816afbf43fb3adc8b47b3e688df"],
            "the stream continues across calls"
        );
    }

    /// A correlation-robust hash must not be linear: for `H(x, i) = x ⊕ i` (or any `H` linear in
    /// `x`) the difference `H(x, i) ⊕ H(x ⊕ Δ, i)` is `Δ`-determined and the same for every
    /// tweak, so an OT receiver would learn the sender's other message from its own.
    #[test]
    fn hash_is_not_linear_in_its_input() {
        let h = CrHash::default();
        let (x, delta) = (0x0123_4567_89ab_cdef_u128 << 37, 0xfeed_f00d_u128 << 71 | 1);
        let eval = |x: u128| {
            let mut out = vec![0u128; 8];
            h.expand(&[x], 0, 8, &mut out);
            out
        };
        let (hx, hxd, h0, hd) = (eval(x), eval(x ^ delta), eval(0), eval(delta));
        let diffs: Vec<u128> = hx.iter().zip(&hxd).map(|(a, b)| a ^ b).collect();
        assert!(diffs.windows(2).all(|w| w[0] != w[1]), "H(x,i) ⊕ H(x⊕Δ,i) varies with i: {diffs:x?}");
        assert!(diffs.iter().all(|&d| d != delta));
        for i in 0..8 {
            assert_ne!(hxd[i], hx[i] ^ hd[i] ^ h0[i], "not affine in x (tweak {i})");
            assert_ne!(hx[i] ^ x, i as u128, "not x ⊕ i");
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
