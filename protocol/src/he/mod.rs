//! Additively homomorphic RLWE encryption for "plaintext × encrypted" products (Cheetah-style
//! coefficient encoding, Huang et al., USENIX Security 2022), used by [`crate::mpc`] for products
//! of the two parties' plaintext matrices.
//!
//! Ring `R_q = Z_q[X]/(X^N + 1)`, `N = 8192`, `q = p0·p1·p2` with three primes `p_i < 2^62`,
//! `p_i ≡ 1 (mod 2N)` (RNS, one u64 limb each), `log2 q ≈ 186`. Secret key: uniform ternary
//! `s`. Errors: centered binomial with 21 coin pairs (σ ≈ 3.24, hard bound 21). The
//! HomomorphicEncryption.org security standard (Albrecht et al., 2018, Table 1, ternary
//! secret, σ ≈ 3.2) allows `log2 q ≤ 218` at `N = 8192` for 128-bit classical security; 186
//! is within it.
//!
//! Plaintexts live in `Z_t[X]/(X^N + 1)`, `t = 2^ℓ`, `ℓ ≤ `[`RING_BITS`]` = 64`, encoded as
//! `Δ(m) = round(q·m/t)` (t need not divide q; the rounding error `|ε| ≤ ½` per coefficient
//! becomes at most `‖p‖₁/2` after a product with a plaintext polynomial `p`).
//!
//! Protocol (key owner K, evaluator E):
//! - K keeps `s`; its public key is `(b0 = −a0·s + e0, a0)` and its ciphertexts
//!   `(b = −a·s + e + Δ(m), a)`, each `a` expanded from a 32-byte seed sent instead of `a`.
//! - E computes `Σ ct_i·p_i` for its plaintext polynomials `p_i`, adds `Δ(−r)` for its uniform
//!   mask `r` (its output share is `r`, K's is `Σ m_i·p_i − r`), re-randomises with a fresh
//!   public-key encryption of zero `(u·b0 + e1, u·a0 + e2)` (else `a·p` would reveal `p` to K,
//!   who knows `a`), adds flooding noise uniform in `[−2^f, 2^f)` with `2^f ≥ 2^`[`FLOOD_STAT_BITS`]
//!   × the bound on the `p`-dependent noise, switches to the modulus `2^L`, `L = ℓ + 15`, and
//!   returns the whole `a` part but only the wanted coefficients of the `b` part.
//!
//! Noise budget (worst case, so decryption never fails): before the switch the noise is
//! `Σ p_i·(e_i + ε_i)` (at most `B = 21.5·Σ‖p_i‖₁`), plus `u·e0 + e1 + e2·s` (at most
//! `2·21·N + 21 < 2^19`), plus `½` from `Δ(−r)`, plus the flood `2^f`: in all below `2^(f+1)`,
//! and [`Budget::check`] requires `2^(f+1) ≤ q/(4t)`. The switch to `2^L` adds at most
//! `0.875·(1 + ‖s‖₁) ≤ 0.875·(N + 1) < 2^L/(4t)`, so the total stays below `2^L/(2t)` and
//! rounding recovers the plaintext exactly. With `f = 70 + log2 B` this needs
//! `ℓ + log2 B ≤ 111`; e.g. the training cross block (ℓ = 46, 20-bit entries, 8·1024 rows per
//! plaintext) uses `ℓ + log2 B ≈ 82`.
//!
//! What each party learns: E sees only K's public key and ciphertexts (IND-CPA under RLWE) —
//! nothing. K sees `a'`, pseudo-random under RLWE thanks to the re-randomisation, and the wanted
//! coefficients, which decrypt to its share `m·p − r` (uniform, as `r` is) plus noise whose
//! `p`-dependent part is hidden by the flood: statistical distance at most `2^−70` per flooded
//! coefficient, so at most `2^−40` for the [`MAX_FLOODED`] coefficients one key may receive.

mod ntt;

use std::sync::OnceLock;

use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroize;

use crate::{Error, InputError, PeerError, Result};
use ntt::Prime;

/// Ring degree.
pub(crate) const N: usize = 8192;
/// The ciphertext primes, largest `p ≡ 1 (mod 2N)` below `2^62`.
const PRIMES: [u64; 3] = [0x3fff_ffff_ffff_0001, 0x3fff_ffff_fffe_8001, 0x3fff_ffff_fff1_c001];
/// `⌊log2 q⌋`.
const LOG_Q: u32 = 185;
/// Statistical security bits of the flood per coefficient (`2^−70` each).
pub(crate) const FLOOD_STAT_BITS: u32 = 70;
/// Flooded coefficients one key may receive: `2^30·2^−70 = 2^−40` in all.
pub(crate) const MAX_FLOODED: u64 = 1 << 30;
/// Largest plaintext modulus bits `ℓ`: the shares' ring `Z_2^64` (replies then carry
/// `ℓ + 15 = 79`-bit coefficients).
pub(crate) const RING_BITS: u32 = 64;
/// Largest `ℓ` of one `cross_gram` chunk: keeps its reply coefficients within 64 bits.
pub(crate) const MAX_PLAIN_BITS: u32 = 49;
/// Bytes of one fresh ciphertext on the wire: the seed of `a` and the `b` limbs.
pub(crate) const CT_BYTES: usize = 32 + 3 * N * 8;

/// The three primes with their NTT tables and CRT constants (built once).
struct Ring {
    primes: [Prime; 3],
    /// `(q/p_i)^−1 mod p_i`.
    crt_inv: [u64; 3],
    /// `p0^−1 mod p1` (Garner).
    p0_inv_p1: u64,
}

fn ring() -> &'static Ring {
    static RING: OnceLock<Ring> = OnceLock::new();
    RING.get_or_init(|| {
        let primes = PRIMES.map(|p| Prime::new(p, N));
        let crt_inv = std::array::from_fn(|i| {
            let pr = &primes[i];
            let qi = (0..3).filter(|&j| j != i).fold(1, |acc, j| pr.mul(acc, PRIMES[j] % pr.p));
            pr.inv(qi)
        });
        let p0_inv_p1 = primes[1].inv(PRIMES[0] % PRIMES[1]);
        Ring { primes, crt_inv, p0_inv_p1 }
    })
}

/// A polynomial in RNS form: limb `i` (mod `p_i`) at `[i·N, (i+1)·N)`. Wiped on drop (keys,
/// plaintexts and masks pass through it).
pub(crate) struct Poly(Vec<u64>);

impl Drop for Poly {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Poly {
    fn zero() -> Poly {
        Poly(vec![0; 3 * N])
    }

    /// From signed coefficients (`len ≤ N`, |c| < 2^63).
    pub fn from_signed(c: &[i64]) -> Poly {
        let r = ring();
        let mut p = Poly::zero();
        for (i, pr) in r.primes.iter().enumerate() {
            for (dst, &v) in p.0[i * N..].iter_mut().zip(c) {
                *dst = pr.reduce_i128(v as i128);
            }
        }
        p
    }

    fn limbs_mut(&mut self) -> impl Iterator<Item = (&Prime, &mut [u64])> {
        ring().primes.iter().zip(self.0.chunks_exact_mut(N))
    }

    fn ntt(mut self) -> Poly {
        self.limbs_mut().for_each(|(pr, l)| pr.forward(l));
        self
    }

    fn intt(mut self) -> Poly {
        self.limbs_mut().for_each(|(pr, l)| pr.inverse(l));
        self
    }

    /// `self += x·y` pointwise (NTT domain).
    fn add_mul(&mut self, x: &Poly, y: &Poly) {
        for (i, pr) in ring().primes.iter().enumerate() {
            let r = i * N..(i + 1) * N;
            for ((d, a), b) in self.0[r.clone()].iter_mut().zip(&x.0[r.clone()]).zip(&y.0[r]) {
                *d = pr.add(*d, pr.mul(*a, *b));
            }
        }
    }

    fn add_signed(&mut self, k: usize, v: i128) {
        for (i, pr) in ring().primes.iter().enumerate() {
            let d = &mut self.0[i * N + k];
            *d = pr.add(*d, pr.reduce_i128(v));
        }
    }

    /// Adds `hi·2^64 + lo − 2^f`, uniform in `[−2^f, 2^f)`, at coefficient `k` (`64 < f < 191`).
    fn add_flood<R: Rng + ?Sized>(&mut self, k: usize, f: u32, rng: &mut R) {
        let hi = (((rng.next_u64() as u128) << 64) | rng.next_u64() as u128) & ((1u128 << (f + 1 - 64)) - 1);
        let lo = rng.next_u64();
        for (i, pr) in ring().primes.iter().enumerate() {
            let two64 = pr.pow(2, 64);
            let v = pr.add(pr.mul((hi % pr.p as u128) as u64, two64), lo % pr.p);
            let d = &mut self.0[i * N + k];
            *d = pr.add(*d, pr.sub(v, pr.pow(2, f as u64)));
        }
    }

    /// Coefficients `k` of `x·2^L/q` rounded, mod `2^L` (fractional CRT with 64 fractional
    /// bits: `x/q ≡ Σ y_i/p_i (mod 1)`, error at most 0.875; `L ≤ 79`). The weights
    /// `w_i = round(2^(L+64)/p_i)` are split at bit 64 so every product fits a u128.
    fn switch_to_pow2(&self, l: u32, coefficients: &[usize]) -> Vec<u128> {
        let r = ring();
        let w: [u128; 3] = std::array::from_fn(|i| round_pow2_div(l + 64, PRIMES[i]));
        let (w_hi, w_lo) = (w.map(|w| w >> 64), w.map(|w| w & u64::MAX as u128));
        coefficients
            .iter()
            .map(|&k| {
                let (mut hi, mut lo) = (0u128, 0u128);
                for i in 0..3 {
                    let y = r.primes[i].mul(self.0[i * N + k], r.crt_inv[i]) as u128;
                    hi = hi.wrapping_add(y.wrapping_mul(w_hi[i]));
                    lo += y * w_lo[i]; // < 3·2^126
                }
                hi.wrapping_add((lo + (1 << 63)) >> 64) & low_mask128(l)
            })
            .collect()
    }

    /// Residues of a uniform polynomial expanded from `seed` (public).
    fn uniform(seed: &[u8; 32]) -> Poly {
        let mut rng = ChaCha20Rng::from_seed(*seed);
        let mut p = Poly::zero();
        for (pr, limb) in p.limbs_mut() {
            for c in limb.iter_mut() {
                *c = loop {
                    let x = rng.next_u64() >> 2;
                    if x < pr.p {
                        break x;
                    }
                };
            }
        }
        p
    }
}

/// `round(2^e / p)` for `p ≥ 2` and `2^e/p < 2^127` (binary long division).
fn round_pow2_div(e: u32, p: u64) -> u128 {
    let p = p as u128;
    let (mut q, mut r) = (0u128, 1u128);
    for _ in 0..e {
        q <<= 1;
        r <<= 1;
        if r >= p {
            r -= p;
            q |= 1;
        }
    }
    if 2 * r >= p { q + 1 } else { q }
}

fn low_mask(bits: u32) -> u64 {
    if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
}

fn low_mask128(bits: u32) -> u128 {
    if bits >= 128 { u128::MAX } else { (1u128 << bits) - 1 }
}

/// Uniform ternary coefficients.
fn ternary<R: Rng + ?Sized>(rng: &mut R) -> Vec<i64> {
    let mut out = Vec::with_capacity(N);
    while out.len() < N {
        for byte in rng.next_u64().to_le_bytes() {
            if byte < 255 && out.len() < N {
                out.push((byte % 3) as i64 - 1);
            }
        }
    }
    out
}

/// Centered binomial error, 21 coin pairs: `|e| ≤ 21`.
fn error<R: Rng + ?Sized>(rng: &mut R) -> i64 {
    let x = rng.next_u64();
    (x & 0x1f_ffff).count_ones() as i64 - ((x >> 21) & 0x1f_ffff).count_ones() as i64
}

fn error_poly<R: Rng + ?Sized>(rng: &mut R) -> Vec<i64> {
    (0..N).map(|_| error(rng)).collect()
}

/// `Δ(m) = round(q·m/t)` for `m < t = 2^bits`, in RNS, added to `out` at coefficient `k`.
struct Encoder {
    bits: u32,
    /// `q mod t`.
    q_mod_t: u64,
    /// `⌊q/t⌋ mod p_i`.
    q_div_t: [u64; 3],
}

impl Encoder {
    fn new(bits: u32) -> Encoder {
        let r = ring();
        let q_mod_t = PRIMES.iter().fold(1u64, |a, &p| a.wrapping_mul(p)) & low_mask(bits);
        // ⌊q/t⌋ = (q − q mod t)/t ≡ −(q mod t)·t^−1 (mod p_i).
        let q_div_t = std::array::from_fn(|i| {
            let pr = &r.primes[i];
            let t_inv = pr.inv(pr.pow(2, bits as u64));
            pr.mul(pr.sub(0, q_mod_t % pr.p), t_inv)
        });
        Encoder { bits, q_mod_t, q_div_t }
    }

    fn add_to(&self, out: &mut Poly, k: usize, m: u64) {
        let frac = ((self.q_mod_t as u128 * m as u128 + (1u128 << (self.bits - 1))) >> self.bits) as u64;
        for (i, pr) in ring().primes.iter().enumerate() {
            let v = pr.add(pr.mul(self.q_div_t[i], m % pr.p), frac % pr.p);
            let d = &mut out.0[i * N + k];
            *d = pr.add(*d, v);
        }
    }
}

/// The key owner's secret key (wiped on drop, as every [`Poly`]).
pub(crate) struct SecretKey {
    /// `s` in NTT form.
    s: Poly,
    /// The public key's `b0` (coefficients), sent once.
    public: PublicKeyMsg,
}

/// What the key owner sends as its public key: the seed of `a0` and `b0`'s limbs.
struct PublicKeyMsg {
    seed: [u8; 32],
    b: Poly,
}

/// Bytes of a public key on the wire.
pub(crate) const PK_BYTES: usize = CT_BYTES;

impl SecretKey {
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> SecretKey {
        let mut s_coef = ternary(rng);
        let s = Poly::from_signed(&s_coef).ntt();
        s_coef.zeroize();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut key = SecretKey { s, public: PublicKeyMsg { seed, b: Poly::zero() } };
        key.public.b = key.encrypt_raw(&seed, &Poly::zero(), rng);
        key
    }

    /// `−a·s + e + plain` in coefficient form, `a` from `seed`.
    fn encrypt_raw<R: Rng + ?Sized>(&self, seed: &[u8; 32], plain: &Poly, rng: &mut R) -> Poly {
        let mut neg_as = Poly::zero();
        neg_as.add_mul(&Poly::uniform(seed).ntt(), &self.s);
        let mut b = neg_as.intt();
        let e = error_poly(rng);
        for (i, pr) in ring().primes.iter().enumerate() {
            for (k, d) in b.0[i * N..(i + 1) * N].iter_mut().enumerate() {
                *d = pr.add(pr.sub(0, *d), pr.add(pr.reduce_i128(e[k] as i128), plain.0[i * N + k]));
            }
        }
        b
    }

    /// The public key's wire form ([`PK_BYTES`]).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        wire(&self.public.seed, &self.public.b)
    }

    /// A fresh ciphertext of `m` (`len ≤ N` coefficients, each `< 2^bits`) on the wire
    /// ([`CT_BYTES`]).
    pub fn encrypt<R: CryptoRng + ?Sized>(&self, m: &[u64], bits: u32, rng: &mut R) -> Vec<u8> {
        let enc = Encoder::new(bits);
        let mut plain = Poly::zero();
        for (k, &v) in m.iter().enumerate() {
            enc.add_to(&mut plain, k, v);
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let b = self.encrypt_raw(&seed, &plain, rng);
        wire(&seed, &b)
    }

    /// Decrypts a [`Evaluator::finish`] reply (`reply_bytes(bits, positions.len())` bytes): the
    /// plaintext coefficients (mod `2^bits`) at `positions`, in order.
    pub fn decrypt(&self, reply: &[u8], bits: u32, positions: &[usize]) -> Result<Vec<u64>> {
        let l = bits + 15;
        let expected = reply_bytes(bits, positions.len());
        if reply.len() != expected {
            return Err(PeerError::wrong_bytes("he.prod reply", expected as u64, reply.len() as u64).into());
        }
        let (a_bytes, b_bytes) = reply.split_at(packed_len(N, l));
        let a = unpack_bits(a_bytes, l, N);
        let b = unpack_bits(b_bytes, l, positions.len());
        // a·s over the integers (|coefficient| < N·2^L ≤ 2^92 < p0·p1/2): limbs 0 and 1, then
        // Garner.
        let r = ring();
        let mut limbs: [Vec<u64>; 2] =
            std::array::from_fn(|i| a.iter().map(|&v| (v % PRIMES[i] as u128) as u64).collect());
        for (i, limb) in limbs.iter_mut().enumerate() {
            let pr = &r.primes[i];
            pr.forward(limb);
            limb.iter_mut().zip(&self.s.0[i * N..(i + 1) * N]).for_each(|(x, s)| *x = pr.mul(*x, *s));
            pr.inverse(limb);
        }
        let (p0, p1) = (PRIMES[0] as u128, PRIMES[1] as u128);
        let half = p0 * p1 / 2;
        let shift = l - bits;
        Ok(positions
            .iter()
            .zip(&b)
            .map(|(&k, &bk)| {
                let (x0, x1) = (limbs[0][k], limbs[1][k]);
                let h = r.primes[1].mul(r.primes[1].sub(x1, x0 % PRIMES[1]), r.p0_inv_p1);
                let x = x0 as u128 + p0 * h as u128;
                let a_s = if x > half { (x as i128 - (p0 * p1) as i128) as u128 } else { x };
                let v = bk.wrapping_add(a_s) & low_mask128(l);
                (((v + (1 << (shift - 1))) >> shift) as u64) & low_mask(bits)
            })
            .collect())
    }
}

fn wire(seed: &[u8; 32], b: &Poly) -> Vec<u8> {
    let mut out = Vec::with_capacity(CT_BYTES);
    out.extend_from_slice(seed);
    b.0.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// A ciphertext (or public key) from the wire, in NTT form: `(b, a)`. Every residue must be
/// below its prime.
fn parse_wire(bytes: &[u8], what: &str) -> Result<(Poly, Poly)> {
    if bytes.len() != CT_BYTES {
        return Err(PeerError::wrong_bytes(what, CT_BYTES as u64, bytes.len() as u64).into());
    }
    let seed: [u8; 32] = bytes[..32].try_into().expect("32 bytes");
    let mut b = Poly::zero();
    for (k, chunk) in bytes[32..].chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        if v >= PRIMES[k / N] {
            return Err(
                PeerError::OutOfRange { what: format!("{what} residue"), got: v, range: "[0, p_i)".into() }.into()
            );
        }
        b.0[k] = v;
    }
    Ok((b.ntt(), Poly::uniform(&seed).ntt()))
}

/// Bytes of an evaluator's reply with `wanted` coefficients at plaintext bits `bits`.
pub(crate) fn reply_bytes(bits: u32, wanted: usize) -> usize {
    packed_len(N, bits + 15) + packed_len(wanted, bits + 15)
}

fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

/// Little-endian bit stream of `bits`-bit values (`bits ≤ 120`).
fn pack_bits(values: &[u128], bits: u32, out: &mut Vec<u8>) {
    let (mut acc, mut have) = (0u128, 0u32);
    for &v in values {
        acc |= v << have;
        have += bits;
        while have >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            have -= 8;
        }
    }
    if have > 0 {
        out.push(acc as u8);
    }
}

fn unpack_bits(bytes: &[u8], bits: u32, count: usize) -> Vec<u128> {
    let (mut acc, mut have, mut it) = (0u128, 0u32, bytes.iter());
    (0..count)
        .map(|_| {
            while have < bits {
                acc |= (*it.next().unwrap_or(&0) as u128) << have;
                have += 8;
            }
            let v = acc & low_mask128(bits);
            acc >>= bits;
            have -= bits;
            v
        })
        .collect()
}

/// The public bounds of one homomorphic product, checked against the noise budget.
pub(crate) struct Budget {
    /// Plaintext bits `ℓ`.
    pub bits: u32,
    /// Flood exponent `f`.
    flood_bits: u32,
}

impl Budget {
    /// For products whose plaintext polynomials (summed over the accumulated products) have
    /// `‖p‖₁ ≤ l1_bound`. Errors when `ℓ` or the bound leave no room.
    pub fn check(op: &'static str, bits: u32, l1_bound: u128) -> Result<Budget> {
        // B = 21.5·‖p‖₁ ≤ 22·‖p‖₁ ≤ 2^noise_bits.
        let noise_bits = 128 - (l1_bound.saturating_mul(22)).leading_zeros();
        let flood_bits = FLOOD_STAT_BITS + noise_bits.max(20);
        if bits == 0 || bits > RING_BITS || flood_bits + 3 + bits > LOG_Q {
            return Err(Error::Input(InputError::Usage {
                op,
                detail: format!(
                    "a homomorphic product with {bits}-bit plaintexts and plaintext-polynomial norm up to 2^{} exceeds the noise budget (plaintext bits 1..={RING_BITS}, plaintext bits + log2 norm ≤ {}); use smaller batches or fewer value bits",
                    128 - l1_bound.leading_zeros(),
                    LOG_Q - 3 - FLOOD_STAT_BITS - 5
                ),
            }));
        }
        Ok(Budget { bits, flood_bits })
    }
}

/// A peer's public key in NTT form.
pub(crate) struct PublicKey {
    b: Poly,
    a: Poly,
}

impl PublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey> {
        let (b, a) = parse_wire(bytes, "he.pk")?;
        Ok(PublicKey { b, a })
    }
}

/// A received ciphertext in NTT form.
pub(crate) struct Ciphertext {
    b: Poly,
    a: Poly,
}

impl Ciphertext {
    pub fn from_bytes(bytes: &[u8]) -> Result<Ciphertext> {
        let (b, a) = parse_wire(bytes, "he.ct")?;
        Ok(Ciphertext { b, a })
    }
}

/// A plaintext polynomial of the evaluator in NTT form.
pub(crate) struct Plain(Poly);

impl Plain {
    /// From signed coefficients (`len ≤ N`).
    pub fn new(c: &[i64]) -> Plain {
        Plain(Poly::from_signed(c).ntt())
    }
}

/// The evaluator's running sum `Σ ct_i·p_i` (NTT form).
pub(crate) struct Evaluator {
    b: Poly,
    a: Poly,
}

impl Evaluator {
    pub fn new() -> Evaluator {
        Evaluator { b: Poly::zero(), a: Poly::zero() }
    }

    pub fn add_product(&mut self, ct: &Ciphertext, p: &Plain) {
        self.b.add_mul(&ct.b, &p.0);
        self.a.add_mul(&ct.a, &p.0);
    }

    /// Masks, re-randomises, floods and switches the sum, then serialises the reply for the key
    /// owner: it decrypts to `Σ m_i·p_i − r` at `positions`. Returns the reply and `r` (this
    /// party's share, mod `2^bits`, one per position).
    pub fn finish<R: CryptoRng + ?Sized>(
        mut self,
        pk: &PublicKey,
        budget: &Budget,
        positions: &[usize],
        rng: &mut R,
    ) -> (Vec<u8>, Vec<u64>) {
        let bits = budget.bits;
        // Encryption of zero under pk: (u·b0 + e1, u·a0 + e2).
        let mut u_coef = ternary(rng);
        let u = Poly::from_signed(&u_coef).ntt();
        u_coef.zeroize();
        self.b.add_mul(&u, &pk.b);
        self.a.add_mul(&u, &pk.a);
        let mut a = self.a.intt();
        let mut b = self.b.intt();
        for (k, e) in error_poly(rng).into_iter().enumerate() {
            a.add_signed(k, e as i128);
        }
        let enc = Encoder::new(bits);
        let mut r = Vec::with_capacity(positions.len());
        for &k in positions {
            let rk = rng.next_u64() & low_mask(bits);
            enc.add_to(&mut b, k, rk.wrapping_neg() & low_mask(bits));
            b.add_flood(k, budget.flood_bits, rng);
            b.add_signed(k, error(rng) as i128);
            r.push(rk);
        }
        let l = bits + 15;
        let all: Vec<usize> = (0..N).collect();
        let mut out = Vec::with_capacity(reply_bytes(bits, positions.len()));
        pack_bits(&a.switch_to_pow2(l, &all), l, &mut out);
        let wanted = b.switch_to_pow2(l, positions);
        pack_bits(&wanted, l, &mut out);
        (out, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    /// Negacyclic product mod p, schoolbook, at coefficient `k`.
    fn schoolbook_at(pr: &Prime, a: &[u64], b: &[u64], k: usize) -> u64 {
        let n = a.len();
        (0..n).fold(0, |acc, j| {
            let (i, wrap) = if j <= k { (k - j, false) } else { (n + k - j, true) };
            let t = pr.mul(a[j], b[i]);
            if wrap { pr.sub(acc, t) } else { pr.add(acc, t) }
        })
    }

    #[test]
    fn ntt_product_matches_schoolbook_negacyclic_product() {
        let mut g = rng(1);
        // Dense at n = 256 for every prime (all coefficients checked), and the real n = N with
        // 64 checked coefficients.
        for (n, checked) in [(256, 256), (N, 64)] {
            for &p in &PRIMES {
                let pr = Prime::new(p, n);
                let a: Vec<u64> = (0..n).map(|_| g.next_u64() % p).collect();
                let b: Vec<u64> = (0..n).map(|_| g.next_u64() % p).collect();
                let (mut fa, mut fb) = (a.clone(), b.clone());
                pr.forward(&mut fa);
                pr.forward(&mut fb);
                let mut prod: Vec<u64> = fa.iter().zip(&fb).map(|(x, y)| pr.mul(*x, *y)).collect();
                pr.inverse(&mut prod);
                for c in 0..checked {
                    let k = if checked == n { c } else { (c * 977 + 5) % n };
                    assert_eq!(prod[k], schoolbook_at(&pr, &a, &b, k), "p = {p:#x}, n = {n}, k = {k}");
                }
                pr.inverse(&mut fa);
                assert_eq!(fa, a, "inverse ∘ forward is the identity");
            }
        }
    }

    #[test]
    fn barrett_and_shoup_agree_with_u128_remainder() {
        let mut g = rng(2);
        let pr = Prime::new(PRIMES[2], 16);
        for _ in 0..10_000 {
            let (a, b) = (g.next_u64() % pr.p, g.next_u64() % pr.p);
            let want = ((a as u128 * b as u128) % pr.p as u128) as u64;
            assert_eq!(pr.mul(a, b), want);
            let x = g.next_u64() | (1 << 63); // any u64, not only residues
            assert_eq!(pr.mul_shoup(x, b, pr.shoup(b)) as u128, x as u128 * b as u128 % pr.p as u128);
            assert_eq!(pr.mul_shoup(a, b, pr.shoup(b)), want);
        }
        assert_eq!(pr.mul(pr.p - 1, pr.p - 1), 1);
    }

    #[test]
    fn rounded_powers_of_two_over_primes_match_u128_division() {
        // The ciphertext primes leave small remainders; the others test the rounding up.
        for p in PRIMES.into_iter().chain([3, 1_000_003, 0x2f3a_5b7c_9d1e_0f23, (1 << 63) - 25]) {
            for e in [2, 64, 100, 127] {
                let (q, r) = ((1u128 << e) / p as u128, (1u128 << e) % p as u128);
                assert_eq!(round_pow2_div(e, p), q + (2 * r >= p as u128) as u128, "e = {e}");
            }
            if p < 1 << 20 {
                continue;
            }
            // 2^143/p = 2^16·(2^127/p): floor within 2^16 of 2^16·floor(2^127/p).
            let q127 = (1u128 << 127) / p as u128;
            let q143 = round_pow2_div(143, p);
            assert!(q143 >= q127 << 16 && q143 <= (q127 + 1) << 16, "e = 143");
        }
    }

    #[test]
    fn bit_packing_round_trips() {
        let mut g = rng(3);
        for bits in [1, 7, 33, 61, 64, 79] {
            let v: Vec<u128> =
                (0..101).map(|_| (((g.next_u64() as u128) << 64) | g.next_u64() as u128) & low_mask128(bits)).collect();
            let mut out = Vec::new();
            pack_bits(&v, bits, &mut out);
            assert_eq!(out.len(), packed_len(v.len(), bits));
            assert_eq!(unpack_bits(&out, bits, v.len()), v);
        }
    }

    /// Coefficient `k` of the negacyclic product of `m` (mod 2^bits) and signed `p`.
    fn plain_product_at(m: &[u64], p: &[i64], k: usize, bits: u32) -> u64 {
        let mut acc = 0u64;
        for (j, &pj) in p.iter().enumerate() {
            if pj == 0 {
                continue;
            }
            let (i, sign) = if j <= k { (k - j, 1) } else { (N + k - j, -1) };
            acc = acc.wrapping_add(m[i].wrapping_mul((pj * sign) as u64));
        }
        acc & low_mask(bits)
    }

    /// Encrypts random `m < 2^bits`, multiplies by plaintexts whose coefficients sit at ±the
    /// largest magnitude the budget allows (summed over `terms` products), and checks the
    /// decrypted share plus `r` against the product computed here.
    fn round_trip(bits: u32, terms: usize, seed: u64) {
        let mut g = rng(seed);
        let key = SecretKey::generate(&mut g);
        let pk = PublicKey::from_bytes(&key.public_key_bytes()).unwrap();
        // Largest per-coefficient magnitude c with terms·N·c within the budget.
        let max_log = (0..63).rev().find(|&e| Budget::check("test", bits, (terms * N) as u128 * (1u128 << e)).is_ok());
        let e = max_log.expect("some magnitude fits");
        // The magnitude is the budget's largest (or the largest i64 power of two).
        assert!(e == 62 || Budget::check("test", bits, (terms * N) as u128 * (1u128 << (e + 1))).is_err());
        let budget = Budget::check("test", bits, (terms * N) as u128 * (1u128 << e)).unwrap();
        let mag = 1i64 << e;
        let mut eval = Evaluator::new();
        let mut want = vec![0u64; N];
        let positions: Vec<usize> = (0..40).map(|c| (c * 211 + 3) % N).chain([0, N - 1]).collect();
        for _ in 0..terms {
            let m: Vec<u64> = (0..N).map(|_| g.next_u64() & low_mask(bits)).collect();
            let p: Vec<i64> = (0..N).map(|_| if g.next_u64() & 1 == 0 { mag } else { -mag }).collect();
            let ct = Ciphertext::from_bytes(&key.encrypt(&m, bits, &mut g)).unwrap();
            eval.add_product(&ct, &Plain::new(&p));
            for &k in &positions {
                want[k] = want[k].wrapping_add(plain_product_at(&m, &p, k, bits));
            }
        }
        let (reply, r) = eval.finish(&pk, &budget, &positions, &mut g);
        assert_eq!(reply.len(), reply_bytes(bits, positions.len()));
        let got = key.decrypt(&reply, bits, &positions).unwrap();
        for (i, &k) in positions.iter().enumerate() {
            assert_eq!(got[i].wrapping_add(r[i]) & low_mask(bits), want[k] & low_mask(bits), "bits {bits}, k {k}");
        }
    }

    #[test]
    fn decryption_is_exact_at_the_maximal_bounds() {
        round_trip(RING_BITS, 2, 4);
        round_trip(MAX_PLAIN_BITS, 1, 9);
        round_trip(46, 2, 5);
        round_trip(1, 1, 6);
    }

    #[test]
    fn the_reply_is_re_randomised() {
        // Without the encryption of zero, the reply's a part would be a·p (switched), which the
        // key owner could compute for candidate p from the a it expanded from its own seed.
        let mut g = rng(8);
        let key = SecretKey::generate(&mut g);
        let pk = PublicKey::from_bytes(&key.public_key_bytes()).unwrap();
        let bits = 30;
        let wire = key.encrypt(&[3; 100], bits, &mut g);
        let ct = Ciphertext::from_bytes(&wire).unwrap();
        let p: Vec<i64> = (0..N as i64).map(|i| i % 7 - 3).collect();
        let mut eval = Evaluator::new();
        eval.add_product(&ct, &Plain::new(&p));
        let (reply, _) = eval.finish(&pk, &Budget::check("test", bits, 3 * N as u128).unwrap(), &[0], &mut g);
        let l = bits + 15;
        let got = unpack_bits(&reply, l, N);
        let mut a_p = Poly::zero();
        a_p.add_mul(&Poly::uniform(&wire[..32].try_into().unwrap()).ntt(), &Plain::new(&p).0);
        let all: Vec<usize> = (0..N).collect();
        let plain_a = a_p.intt().switch_to_pow2(l, &all);
        let close =
            got.iter().zip(&plain_a).filter(|(x, y)| x.wrapping_sub(**y).wrapping_add(2) & low_mask128(l) <= 4).count();
        assert!(close < 10, "{close} of {N} coefficients of the reply's a part equal a·p");
    }

    #[test]
    fn budget_refuses_plaintext_bits_and_norms_outside_it() {
        assert!(Budget::check("t", 0, 1).is_err());
        assert!(Budget::check("t", RING_BITS + 1, 1).is_err());
        assert!(Budget::check("t", RING_BITS, 1 << 43).is_ok());
        assert!(Budget::check("t", RING_BITS, 1 << 44).is_err());
        assert!(Budget::check("t", 46, 1 << 62).is_err());
        assert!(Budget::check("t", 46, 1 << 58).is_ok());
        assert!(Budget::check("t", 46, 1 << 32).is_ok());
    }

    #[test]
    fn malformed_peer_ciphertexts_are_errors() {
        let mut g = rng(7);
        let key = SecretKey::generate(&mut g);
        let mut ct = key.encrypt(&[1, 2, 3], 10, &mut g);
        assert!(matches!(Ciphertext::from_bytes(&ct[1..]), Err(Error::Peer(PeerError::WrongLength { .. }))));
        ct[32..40].copy_from_slice(&PRIMES[0].to_le_bytes());
        assert!(matches!(Ciphertext::from_bytes(&ct), Err(Error::Peer(PeerError::OutOfRange { .. }))));
        assert!(matches!(key.decrypt(&[0; 5], 10, &[0]), Err(Error::Peer(PeerError::WrongLength { .. }))));
    }
}
