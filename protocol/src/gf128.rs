//! The field GF(2^128) for VOLE ([`crate::pcg`]) and VOLE-based PSI.
//!
//! Representation: POLYVAL's (RFC 8452 §3). A [`Gf128`] holds a polynomial over GF(2) modulo
//! `P(x) = x^128 + x^127 + x^126 + x^121 + 1`, bit `i` of the `u128` (and of the little-endian
//! bytes) being the coefficient of `x^i`. Addition is XOR. The product is POLYVAL's
//! `dot(a, b) = a·b·x^-128 mod P`: multiplication in Montgomery form with `R = x^128`. The map
//! `a ↦ a·x^128` carries ordinary multiplication mod `P` to `dot`, so `(Gf128, ⊕, dot)` *is* the
//! field GF(2^128) (unit [`Gf128::ONE`] = `x^128 mod P`); the tests check `dot` against a
//! bit-by-bit reference product and the RFC 8452 Appendix A vector.
//!
//! The product runs on the RustCrypto `polyval` crate, which detects carry-less multiplication
//! (PCLMULQDQ on x86-64, PMULL on aarch64) at run time and otherwise takes its portable
//! constant-time code. `unsafe` is forbidden in this workspace, and calling a
//! `#[target_feature]` function after `is_x86_feature_detected!` still needs `unsafe` on
//! Rust 1.95, so the intrinsics live in that audited dependency, not here. Building with
//! `RUSTFLAGS='--cfg polyval_backend="soft"'` forces the portable code.

use std::ops::{Add, AddAssign, Mul, MulAssign};

use polyval::Polyval;
use polyval::universal_hash::UniversalHash;
use rand::CryptoRng;
use zeroize::Zeroize;

use crate::{PeerError, Result};

/// An element of GF(2^128) in POLYVAL's representation (see the module docs).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Zeroize)]
pub struct Gf128(pub u128);

impl std::fmt::Debug for Gf128 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gf128({:032x})", self.0)
    }
}

impl Gf128 {
    pub const ZERO: Gf128 = Gf128(0);
    /// The multiplicative unit: `x^128 mod P = x^127 + x^126 + x^121 + 1`.
    pub const ONE: Gf128 = Gf128((1 << 127) | (1 << 126) | (1 << 121) | 1);

    /// Little-endian bytes (RFC 8452 block order).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
    pub fn from_bytes(bytes: [u8; 16]) -> Gf128 {
        Gf128(u128::from_le_bytes(bytes))
    }

    /// A uniform element from a CSPRNG.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Gf128 {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        let x = Gf128::from_bytes(b);
        b.zeroize();
        x
    }

    /// `self^e` by square-and-multiply (not constant time in `e`; `e` is public).
    pub fn pow(self, mut e: u128) -> Gf128 {
        let (mut base, mut acc) = (self, Gf128::ONE);
        while e > 0 {
            if e & 1 == 1 {
                acc *= base;
            }
            base *= base;
            e >>= 1;
        }
        acc
    }

    /// The multiplicative inverse (`self^(2^128 − 2)`); zero maps to zero.
    pub fn inverse(self) -> Gf128 {
        self.pow(u128::MAX - 1)
    }
}

// Addition in characteristic 2 is XOR.
#[allow(clippy::suspicious_arithmetic_impl)]
impl Add for Gf128 {
    type Output = Gf128;
    fn add(self, rhs: Gf128) -> Gf128 {
        Gf128(self.0 ^ rhs.0)
    }
}

#[allow(clippy::suspicious_op_assign_impl)]
impl AddAssign for Gf128 {
    fn add_assign(&mut self, rhs: Gf128) {
        self.0 ^= rhs.0;
    }
}

impl Mul for Gf128 {
    type Output = Gf128;
    /// POLYVAL `dot(self, rhs)`: one POLYVAL block with key `rhs`.
    fn mul(self, rhs: Gf128) -> Gf128 {
        Multiplier::new(rhs).mul(self)
    }
}

impl MulAssign for Gf128 {
    fn mul_assign(&mut self, rhs: Gf128) {
        *self = *self * rhs;
    }
}

impl std::iter::Sum for Gf128 {
    fn sum<I: Iterator<Item = Gf128>>(iter: I) -> Gf128 {
        iter.fold(Gf128::ZERO, |a, b| a + b)
    }
}

/// Multiplication by one fixed element, with its key schedule computed once: use it to multiply
/// many elements by the same `c` (e.g. by Δ). The schedule is wiped on drop.
pub struct Multiplier(Polyval);

impl Multiplier {
    pub fn new(c: Gf128) -> Multiplier {
        let mut key = c.to_bytes();
        let p = Polyval::new(&key.into());
        key.zeroize();
        Multiplier(p)
    }

    /// `x · c`.
    pub fn mul(&mut self, x: Gf128) -> Gf128 {
        self.0.update(&[x.to_bytes().into()]);
        Gf128::from_bytes(self.0.finalize_reset().into())
    }
}

/// Hash to the field: BLAKE3 keyed by a context string (domain separation), first 16 bytes of
/// the output. Build it once per context and call [`FieldHasher::hash`] per item.
pub struct FieldHasher(blake3::Hasher);

impl FieldHasher {
    pub fn new(context: &str) -> FieldHasher {
        FieldHasher(blake3::Hasher::new_derive_key(context))
    }
    pub fn hash(&self, data: &[u8]) -> Gf128 {
        let mut h = self.0.clone();
        h.update(data);
        let mut out = [0u8; 16];
        h.finalize_xof().fill(&mut out);
        Gf128::from_bytes(out)
    }
}

/// Elements as consecutive 16-byte little-endian blocks (the wire format of element vectors).
pub fn to_bytes(xs: &[Gf128]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_bytes()).collect()
}

/// Exactly `expected_len` elements from a received payload of message `kind`; any other length is
/// the peer's protocol violation.
pub fn from_bytes(kind: &str, bytes: &[u8], expected_len: usize) -> Result<Vec<Gf128>> {
    if bytes.len() != expected_len * 16 {
        return Err(PeerError::wrong_bytes(
            format!("'{kind}' ({expected_len} field elements)"),
            expected_len as u64 * 16,
            bytes.len() as u64,
        )
        .into());
    }
    Ok(bytes.chunks_exact(16).map(|c| Gf128::from_bytes(c.try_into().expect("16 bytes"))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// `x^128 mod P` in the bit order of [`Gf128`].
    const X128: u128 = Gf128::ONE.0;

    /// Ordinary product `a·b mod P`, one bit of `b` at a time (shift-and-add): an independent
    /// reference that shares no code with `polyval`.
    fn plain_mul(a: u128, b: u128) -> u128 {
        let (mut acc, mut shifted) = (0u128, a);
        for i in 0..128 {
            if (b >> i) & 1 == 1 {
                acc ^= shifted;
            }
            let carry = shifted >> 127;
            shifted <<= 1;
            if carry == 1 {
                shifted ^= X128;
            }
        }
        acc
    }

    fn hex_le(s: &str) -> Gf128 {
        Gf128::from_bytes(hex::decode(s).unwrap().try_into().unwrap())
    }

    #[test]
    fn product_matches_bitwise_reference_in_montgomery_form() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut cases: Vec<(u128, u128)> = vec![(0, 5), (1, 1), (X128, 3), (u128::MAX, u128::MAX), (1 << 127, 2)];
        for _ in 0..200 {
            cases.push((Gf128::random(&mut rng).0, Gf128::random(&mut rng).0));
        }
        for (a, b) in cases {
            let dot = (Gf128(a) * Gf128(b)).0;
            // dot(a, b) = a·b·x^-128  ⇔  dot(a, b)·x^128 = a·b.
            assert_eq!(plain_mul(dot, X128), plain_mul(a, b), "a={a:032x} b={b:032x}");
            assert_eq!(Multiplier::new(Gf128(b)).mul(Gf128(a)).0, dot, "fixed-multiplier path");
        }
    }

    /// RFC 8452 Appendix A: POLYVAL(H, X_1, X_2) = (X_1·H + X_2)·H with `·` = dot.
    #[test]
    fn rfc_8452_polyval_vector() {
        let h = hex_le("25629347589242761d31f826ba4b757b");
        let x1 = hex_le("4f4f95668c83dfb6401762bb2d01a262");
        let x2 = hex_le("d1a24ddd2721d006bbe45f20d3c9f362");
        assert_eq!((x1 * h + x2) * h, hex_le("f7a3b47b846119fae5b7866cf5e5b77e"));
    }

    #[test]
    fn field_laws_unit_and_inverse() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
        for _ in 0..20 {
            let (a, b, c) = (Gf128::random(&mut rng), Gf128::random(&mut rng), Gf128::random(&mut rng));
            assert_eq!(a * Gf128::ONE, a);
            assert_eq!(a * b, b * a);
            assert_eq!((a * b) * c, a * (b * c));
            assert_eq!(a * (b + c), a * b + a * c);
            assert_eq!(a * a.inverse(), Gf128::ONE);
        }
        assert_eq!(Gf128::ZERO.inverse(), Gf128::ZERO);
    }

    #[test]
    fn bytes_round_trip_and_wrong_lengths_are_errors() {
        let xs = [Gf128(1), Gf128(u128::MAX), Gf128::ONE];
        let bytes = to_bytes(&xs);
        assert_eq!(bytes[..16], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(from_bytes("x", &bytes, 3).unwrap(), xs);
        assert!(from_bytes("x", &bytes[1..], 3).is_err());
        assert!(from_bytes("x", &bytes, 2).is_err());
        let h = FieldHasher::new("tandem gf128 test");
        assert_eq!(h.hash(b"id-1"), h.hash(b"id-1"));
        assert_ne!(h.hash(b"id-1"), h.hash(b"id-2"));
        assert_ne!(h.hash(b"id-1"), FieldHasher::new("other context").hash(b"id-1"));
    }
}
